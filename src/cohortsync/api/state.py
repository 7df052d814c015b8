"""What every request handler shares: settings, the database engine, the clock, the services."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.engine import Engine

from cohortsync.clock import Clock
from cohortsync.services.cohorts import CohortService
from cohortsync.services.ingestion import IngestionService
from cohortsync.services.integrations import IntegrationService
from cohortsync.services.mtu import MtuHistory
from cohortsync.services.partner_events import PartnerEventService
from cohortsync.services.syncs import SyncService
from cohortsync.settings import Settings


@dataclass
class AppState:
    """Long-lived objects of one API process."""

    settings: Settings
    engine: Engine
    clock: Clock
    cohorts: CohortService
    ingestion: IngestionService
    integrations: IntegrationService
    syncs: SyncService
    partner_events: PartnerEventService
    mtu_history: MtuHistory
