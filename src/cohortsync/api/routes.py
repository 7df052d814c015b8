"""The REST API and ingestion endpoints, installed on the app: their routers, the uniform error
body, health, readiness and Prometheus metrics."""

from __future__ import annotations

from fastapi import FastAPI, Response

from cohortsync.api import (
    accounts,
    audit,
    cohorts,
    data,
    ingestion,
    integrations,
    mtu,
    syncs,
    webhooks,
)
from cohortsync.api.errors import install_error_handlers
from cohortsync.api.openapi import install_error_documentation
from cohortsync.app_state import AppState
from cohortsync.metrics import CONTENT_TYPE, Metrics


def install_api(app: FastAPI, state: AppState) -> None:
    """Add the API's routes, middleware and error handlers to ``app``."""
    install_error_handlers(app)
    install_error_documentation(app)
    app.include_router(ingestion.router)
    app.add_middleware(ingestion.BrowserCors)  # web pages send to /track, /engage, /groups
    app.include_router(accounts.router)
    app.include_router(data.router)
    app.include_router(cohorts.router)
    app.include_router(integrations.router)
    app.include_router(syncs.router)
    app.include_router(mtu.router)
    app.include_router(webhooks.router)
    app.include_router(audit.router)

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict[str, str]:
        """The process is up."""
        return {"status": "ok"}

    metrics = Metrics(state.engine, state.clock)

    @app.get("/metrics", tags=["health"], response_class=Response)
    def prometheus_metrics() -> Response:
        """Prometheus metrics: sync runs, members sent, partner errors, sync lag, data in."""
        return Response(metrics.exposition(), media_type=CONTENT_TYPE)

    @app.get("/readyz", tags=["health"])
    def readyz() -> dict[str, str]:
        """The database answers."""
        state.data.ping()
        return {"status": "ready"}
