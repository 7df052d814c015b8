"""The FastAPI application: the state built once, the REST API and ingestion, the web UI, and
the request-body caps and security headers on all of it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response
from sqlalchemy.engine import Engine

from cohortsync import __version__
from cohortsync.api.errors import error_response
from cohortsync.api.ingestion import INGEST_BODY
from cohortsync.api.routes import install_api
from cohortsync.app_state import build_state
from cohortsync.body_limit import BodyLimit, RouteCap, StreamCap
from cohortsync.clock import Clock
from cohortsync.domain.errors import PayloadTooLarge
from cohortsync.security_headers import install_security_headers
from cohortsync.services.cohorts import MAX_STATIC_BYTES, STATIC_TOO_LARGE
from cohortsync.services.integrations import IntegrationService
from cohortsync.services.syncs import SyncService
from cohortsync.settings import Settings, load_settings
from cohortsync.web.app import mount_web
from cohortsync.web.pages import notice
from cohortsync.web.routes.cohorts import FORM_OVERHEAD, MAX_UPLOAD_BYTES, TOO_LARGE


def _as_json(_request: Request, message: str) -> Response:
    return error_response(413, PayloadTooLarge.code, message)


def _as_page(request: Request, message: str) -> Response:
    return notice(request, message, status=413)


def body_caps(settings: Settings) -> tuple[RouteCap, ...]:
    """Every request's body cap, by path (the first match applies): the ingestion endpoints,
    partner webhooks and static-cohort uploads have their own; any other API call or page
    form carries at most ``max_body_bytes``."""
    webhook, most = settings.webhook_max_body_bytes, settings.max_body_bytes
    advice = "send fewer events a call (COHORTSYNC_WEBHOOK_MAX_BODY_BYTES)"
    return (
        RouteCap(r"/(track|engage|groups|import)/?", INGEST_BODY, _as_json),
        RouteCap(
            r"/webhooks/[^/]+",
            BodyLimit(webhook, f"body is larger than {webhook:,} bytes; {advice}"),
            _as_json,
        ),
        RouteCap(
            r"/api/v1/projects/[^/]+/cohorts/static",
            BodyLimit(MAX_STATIC_BYTES, STATIC_TOO_LARGE),
            _as_json,
        ),
        RouteCap(
            r"/projects/[^/]+/cohorts/static",
            BodyLimit(MAX_UPLOAD_BYTES + FORM_OVERHEAD, TOO_LARGE),
            _as_page,
        ),
        RouteCap(
            r"/(api|webhooks)(/.*)?",
            BodyLimit(most, f"body is larger than {most:,} bytes; send a smaller request"),
            _as_json,
        ),
        RouteCap(
            r".*",
            BodyLimit(most, f"the form is larger than {most:,} bytes; send less in it"),
            _as_page,
        ),
    )


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
        if state.syncs.dispatch is not None:
            state.syncs.dispatch.start()
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
    app.add_middleware(StreamCap, caps=body_caps(state.settings))
    install_security_headers(app, trust_proxy=state.settings.trust_proxy)
    return app


def app_from_environment() -> FastAPI:
    """Factory for ``uvicorn --factory`` (each worker process builds its own)."""
    return create_app()
