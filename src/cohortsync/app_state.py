"""The composition root: the long-lived objects of one process (settings, engine, clock and every
service), built once and shared by the API routes and the web pages."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.engine import Engine

from cohortsync.clock import Clock, SystemClock
from cohortsync.ingest.parse_pool import default_processes
from cohortsync.keyring import Keyring
from cohortsync.services.accounts import AccountService
from cohortsync.services.audit import AuditLog
from cohortsync.services.cohorts import CohortService
from cohortsync.services.explain import Explainer
from cohortsync.services.ingestion import IngestionService
from cohortsync.services.integrations import IntegrationService
from cohortsync.services.mtu import MTU_RECOUNT_AFTER, MtuHistory, MtuReports
from cohortsync.services.partner_events import PartnerEventService
from cohortsync.services.projects import ProjectService
from cohortsync.services.run_members import RunMemberReport
from cohortsync.services.stored_data import StoredData
from cohortsync.services.syncs import SyncService, build_sync_service
from cohortsync.settings import Settings
from cohortsync.storage.database import create_engine


@dataclass
class AppState:
    """Long-lived objects of one API process."""

    settings: Settings
    engine: Engine
    clock: Clock
    accounts: AccountService
    projects: ProjectService
    cohorts: CohortService
    data: StoredData
    ingestion: IngestionService
    integrations: IntegrationService
    syncs: SyncService
    run_members: RunMemberReport
    explainer: Explainer
    partner_events: PartnerEventService
    mtu: MtuReports
    mtu_history: MtuHistory
    audit: AuditLog

    def close(self) -> None:
        """Stop what runs in the background (the sync scheduler, the parse pool)."""
        self.syncs.close()
        self.ingestion.close()


def build_state(
    settings: Settings,
    *,
    engine: Engine | None = None,
    clock: Clock | None = None,
    integration_service: IntegrationService | None = None,
    sync_service: SyncService | None = None,
) -> AppState:
    """Every service around one engine and clock (tests inject theirs)."""
    engine = engine or create_engine(settings.database_url)
    clock = clock or SystemClock()
    processes = settings.ingest_processes
    keyring = Keyring.from_settings(settings)
    integration_service = integration_service or IntegrationService(
        engine,
        keyring,
        clock,
        allow_custom_endpoints=settings.allow_custom_endpoints,
        allow_private_endpoints=settings.allow_private_endpoints,
        secret_overlap=timedelta(hours=settings.webhook_secret_overlap_hours),
    )
    sync_service = sync_service or build_sync_service(
        settings, engine, integration_service, clock, scheduled=settings.scheduler
    )
    return AppState(
        settings=settings,
        engine=engine,
        clock=clock,
        accounts=AccountService.from_settings(engine, clock, settings),
        projects=ProjectService(engine, clock),
        cohorts=CohortService(engine, clock, max_cohorts=settings.max_cohorts_per_project),
        data=StoredData(engine),
        ingestion=IngestionService.from_settings(
            engine, clock, settings, default_processes() if processes is None else processes
        ),
        integrations=integration_service,
        syncs=sync_service,
        run_members=RunMemberReport(engine),
        explainer=Explainer(engine, integration_service, clock),
        partner_events=PartnerEventService(
            engine,
            keyring,
            clock,
            max_body_bytes=settings.webhook_max_body_bytes,
            replay_window=timedelta(minutes=settings.webhook_replay_minutes),
        ),
        mtu=MtuReports(engine),
        mtu_history=MtuHistory(engine, clock, MTU_RECOUNT_AFTER),
        audit=AuditLog(engine, clock),
    )


def get_state(request: Request) -> AppState:
    """The process-wide state of the app serving ``request``."""
    state: AppState = request.app.state.cohortsync
    return state


StateDep = Annotated[AppState, Depends(get_state)]
