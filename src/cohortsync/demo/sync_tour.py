"""The sync demo: the four partner emulators, a cohort exported to each, users joining and
leaving between runs, every list checked against the cohort after each run, and the partners'
campaign events coming back through their webhooks, with the month's MTU.

It runs in one process (``cohortsync demo sync``, and once on a new database from ``make run``);
at the end its syncs are stopped and its integrations disconnected, so the server that starts
afterwards has the history to show and nothing pointing at emulators that are gone.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from sqlalchemy.engine import Engine

from cohortsync.clock import Clock, SystemClock
from cohortsync.demo.outreach_tour import send_campaigns
from cohortsync.domain.accounts import Project
from cohortsync.domain.sync_status import RunStatus, SyncMode
from cohortsync.keyring import Keyring
from cohortsync.sandbox.fleet import start_all
from cohortsync.services.cohorts import CohortService
from cohortsync.services.ingestion import IngestionService
from cohortsync.services.integrations import IntegrationService
from cohortsync.services.stored_data import StoredData
from cohortsync.services.syncs import build_sync_service
from cohortsync.settings import Settings

COHORT_NAME = "Demo: paying customers"
DEFINITION = {"property": "plan", "op": "in", "value": ["pro", "enterprise"]}


@dataclass(frozen=True)
class RoundReport:
    """One run of one partner's sync, checked against the cohort."""

    partner: str
    round: int
    status: RunStatus
    added: int
    removed: int
    skipped: dict[str, int]
    on_list: int
    expected: int

    @property
    def exact(self) -> bool:
        """The list holds exactly the cohort's matchable members."""
        return self.on_list == self.expected and self.status.done


def demo_done(engine: Engine, project_id: int) -> bool:
    """Whether this database has had the demo already (its cohort exists)."""
    cohorts = CohortService(engine, SystemClock()).list(project_id)
    return any(cohort.name == COHORT_NAME for cohort in cohorts)


def has_profiles(engine: Engine, project_id: int) -> bool:
    """Whether the project has any profile (else the demo seeds a dataset first)."""
    return bool(StoredData(engine).profiled_ids(project_id, limit=1))


def _shuffle_plans(
    engine: Engine, ingestion: IngestionService, project: Project, rng: random.Random, share: float
) -> int:
    """Move ``share`` of the profiled users to another plan (some join, some leave)."""
    users = StoredData(engine).profiled_ids(project.id)
    chosen = rng.sample(users, max(1, int(len(users) * share)))
    updates = [
        {
            "$token": project.token,
            "$distinct_id": user,
            "$set": {"plan": rng.choice(["free", "pro", "enterprise"])},
        }
        for user in chosen
    ]
    ingestion.engage(updates)
    return len(chosen)


def run_tour(
    engine: Engine,
    settings: Settings,
    project: Project,
    clock: Clock,
    *,
    rounds: int = 3,
    say: Callable[[str], None] = print,
    seed: int = 7,
) -> Iterator[RoundReport]:
    """Export the demo cohort to every emulator and run ``rounds`` times, changing plans in
    between; yields each run's report."""
    rng = random.Random(seed)
    running = start_all()
    keyring = Keyring.from_settings(settings)
    integrations = IntegrationService(
        engine, keyring, clock, allow_custom_endpoints=True, allow_private_endpoints=True
    )
    service = build_sync_service(settings, engine, integrations, clock, scheduled=False)
    ingestion = IngestionService(engine, clock)
    try:
        cohort_service = CohortService(engine, clock)
        cohort = cohort_service.create(project.id, COHORT_NAME, DEFINITION)
        members = cohort_service.count(project.id, cohort.id)
        say(f"cohort {cohort.id} {COHORT_NAME!r}: {members} members")
        syncs: dict[str, int] = {}
        secrets: dict[str, tuple[int, str]] = {}
        for partner, sandbox in running.items():
            body = sandbox.integration()
            integration = integrations.connect(
                project.id, partner, body["credentials"], body["settings"], f"Demo {partner}"
            )
            say(f"{partner}: emulator on {sandbox.base_url}, integration {integration.status}")
            if integration.webhook_secret is not None:
                secrets[partner] = (integration.id, integration.webhook_secret)
            syncs[partner] = service.export(
                project.id, cohort.id, integration.id, SyncMode.DYNAMIC
            ).id
        for number in range(1, rounds + 1):
            if number > 1:
                moved = _shuffle_plans(engine, ingestion, project, rng, 0.05)
                say(f"round {number}: {moved} users changed plan")
            for partner, sync_id in syncs.items():
                run = service.run_now(project.id, sync_id, wait=True)
                sync = service.get(project.id, sync_id)
                on_list = len(running[partner].state.members(sync.list_name or ""))
                yield RoundReport(
                    partner=partner,
                    round=number,
                    status=run.status,
                    added=run.counts.added + run.counts.updated,
                    removed=run.counts.removed,
                    skipped=dict(run.counts.skipped),
                    on_list=on_list,
                    expected=run.counts.members
                    - sum(run.counts.skipped.values())
                    - sum(run.counts.rejected.values()),
                )
        lists = [
            (
                partner,
                integration_id,
                secret,
                running[partner].state.members(
                    service.get(project.id, syncs[partner]).list_name or ""
                ),
            )
            for partner, (integration_id, secret) in secrets.items()
        ]
        send_campaigns(engine, keyring, clock, project, lists, say)
        for sync_id in syncs.values():
            service.stop(project.id, sync_id)
            integration_id = service.get(project.id, sync_id).integration_id
            integrations.disconnect(project.id, integration_id)
    finally:
        for sandbox in running.values():
            sandbox.server.stop()
