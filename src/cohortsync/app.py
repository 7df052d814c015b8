"""The FastAPI application: the state built once, the REST API and ingestion, the web UI, and
the security headers on all of it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from sqlalchemy.engine import Engine

from cohortsync import __version__
from cohortsync.api.routes import install_api
from cohortsync.app_state import build_state
from cohortsync.clock import Clock
from cohortsync.security_headers import install_security_headers
from cohortsync.services.integrations import IntegrationService
from cohortsync.services.syncs import SyncService
from cohortsync.settings import Settings, load_settings
from cohortsync.web.app import mount_web


def create_app(
    settings: Settings | None = None,
    *,
    engine: Engine | None = None,
    clock: Clock | None = None,
    integration_service: IntegrationService | None = None,
    sync_service: SyncService | None = None,
) -> FastAPI:
    """Build the app around one engine and clock (tests inject theirs)."""
    state = build_state(
        settings or load_settings(),
        engine=engine,
        clock=clock,
        integration_service=integration_service,
        sync_service=sync_service,
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if state.syncs.scheduler is not None:
            state.syncs.scheduler.start()
        yield
        state.close()

    app = FastAPI(
        title="cohortsync",
        version=__version__,
        description="Mixpanel-compatible ingestion, cohorts and cohort sync.",
        lifespan=lifespan,
    )
    app.state.cohortsync = state
    install_api(app, state)
    mount_web(app)
    install_security_headers(app, trust_proxy=state.settings.trust_proxy)
    return app


def app_from_environment() -> FastAPI:
    """Factory for ``uvicorn --factory`` (each worker process builds its own)."""
    return create_app()
