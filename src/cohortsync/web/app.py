"""Mount the web UI on the FastAPI app: its pages and its static files."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from cohortsync.web.routes import (
    audit,
    cohort_builder,
    cohorts,
    exports,
    integrations,
    login,
    mtu,
    syncs,
)

STATIC = Path(__file__).parent / "static"


def mount_web(app: FastAPI) -> None:
    """Serve the pages at ``/`` (``/login``, ``/projects/{id}/…``) and assets at ``/static``."""
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    # the builder's /cohorts/new before /cohorts/{cohort_id}
    for module in (login, integrations, cohort_builder, cohorts, exports, syncs, mtu, audit):
        app.include_router(module.router)
