"""The FastAPI application: ingestion, REST API, health."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

from fastapi import FastAPI, Response
from sqlalchemy import text
from sqlalchemy.engine import Engine

from cohortsync import __version__
from cohortsync.api import accounts, cohorts, data, ingestion, integrations, mtu, syncs, webhooks
from cohortsync.api.deps import StateDep
from cohortsync.api.errors import install_error_handlers
from cohortsync.api.state import AppState
from cohortsync.clock import Clock, SystemClock
from cohortsync.ingest.parse_pool import default_processes
from cohortsync.keyring import Keyring
from cohortsync.metrics import CONTENT_TYPE, Metrics
from cohortsync.services.cohorts import CohortService
from cohortsync.services.ingestion import IngestionService
from cohortsync.services.integrations import IntegrationService
from cohortsync.services.mtu import MTU_RECOUNT_AFTER, MtuHistory
from cohortsync.services.partner_events import PartnerEventService
from cohortsync.services.syncs import SyncService, build_sync_service
from cohortsync.settings import Settings, load_settings
from cohortsync.storage.database import create_engine
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
    settings = settings or load_settings()
    engine = engine or create_engine(settings.database_url)
    clock = clock or SystemClock()
    processes = settings.ingest_processes
    ingestion_service = IngestionService(
        engine,
        clock,
        settings.track_max_age_days,
        default_processes() if processes is None else processes,
    )
    keyring = Keyring.from_settings(settings)
    integration_service = integration_service or IntegrationService(
        engine,
        keyring,
        clock,
        allow_custom_endpoints=settings.allow_custom_endpoints,
        secret_overlap=timedelta(hours=settings.webhook_secret_overlap_hours),
    )
    partner_events = PartnerEventService(
        engine,
        keyring,
        clock,
        max_body_bytes=settings.webhook_max_body_bytes,
        replay_window=timedelta(minutes=settings.webhook_replay_minutes),
    )

    sync_service = sync_service or build_sync_service(
        settings, engine, integration_service, clock, scheduled=settings.scheduler
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if sync_service.scheduler is not None:
            sync_service.scheduler.start()
        yield
        sync_service.close()
        ingestion_service.close()

    app = FastAPI(
        title="cohortsync",
        version=__version__,
        description="Mixpanel-compatible ingestion, cohorts and cohort sync.",
        lifespan=lifespan,
    )
    app.state.cohortsync = AppState(
        settings=settings,
        engine=engine,
        clock=clock,
        cohorts=CohortService(engine, clock),
        ingestion=ingestion_service,
        integrations=integration_service,
        syncs=sync_service,
        partner_events=partner_events,
        mtu_history=MtuHistory(engine, clock, MTU_RECOUNT_AFTER),
    )
    install_error_handlers(app)
    app.include_router(ingestion.router)
    app.add_middleware(ingestion.BrowserCors)  # web pages send to /track, /engage, /groups
    app.include_router(accounts.router)
    app.include_router(data.router)
    app.include_router(cohorts.router)
    app.include_router(integrations.router)
    app.include_router(syncs.router)
    app.include_router(mtu.router)
    app.include_router(webhooks.router)
    mount_web(app)

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict[str, str]:
        """The process is up."""
        return {"status": "ok"}

    metrics = Metrics(engine, clock)

    @app.get("/metrics", tags=["health"], response_class=Response)
    def prometheus_metrics() -> Response:
        """Prometheus metrics: sync runs, members sent, partner errors, sync lag, data in."""
        return Response(metrics.exposition(), media_type=CONTENT_TYPE)

    @app.get("/readyz", tags=["health"])
    def readyz(state: StateDep) -> dict[str, str]:
        """The database answers."""
        with state.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        return {"status": "ready"}

    return app


def app_from_environment() -> FastAPI:
    """Factory for ``uvicorn --factory`` (each worker process builds its own)."""
    return create_app()
