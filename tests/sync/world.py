"""A project with users, cohorts and integrations on the sandboxes, and a sync engine over it.

Retry waits are recorded rather than slept (the runner's sleep seam), so fault tests run fast;
the list each partner holds is read back from its emulator.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from itertools import count
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from cohortsync.clock import FrozenClock, now_ms
from cohortsync.destinations.http import RetryPolicy, forget_budgets
from cohortsync.domain.accounts import Project
from cohortsync.domain.cohorts import parse_definition
from cohortsync.domain.identity import DEVICE_PREFIX
from cohortsync.domain.syncs import SyncRun
from cohortsync.keyring import Keyring
from cohortsync.sandbox.fleet import RunningSandbox
from cohortsync.services.cohorts import CohortService
from cohortsync.services.ingestion import IngestionService
from cohortsync.services.integrations import IntegrationService
from cohortsync.services.syncs import SyncService
from cohortsync.storage.cohort_store import CohortStore
from cohortsync.storage.database import read_transaction
from cohortsync.storage.tables import sync_members
from cohortsync.sync.plan import MemberSource, cohort_members
from cohortsync.sync.runner import SyncConfig, SyncRunner
from tests.cohorts.reference import evaluate, load_world
from tests.conftest import TEST_KEY

DAY_MS = 24 * 3600 * 1000
_ids = count()


@dataclass
class SyncWorld:
    """Everything a sync test touches."""

    engine: Engine
    clock: FrozenClock
    project: Project
    ingestion: IngestionService
    integrations: IntegrationService
    sleeps: list[float] = field(default_factory=list)
    config: SyncConfig = field(
        default_factory=lambda: SyncConfig(
            lease_seconds=30,
            retry=RetryPolicy(attempts=5, base_seconds=0.5, cap_seconds=8, budget_seconds=120),
        )
    )

    real_waits: bool = False  # sleep for real (timing tests) as well as recording

    def runner(
        self,
        on_batch: Callable[[SyncRun], None] | None = None,
        source: MemberSource = cohort_members,
        **overrides: Any,
    ) -> SyncRunner:
        """A runner over this world (``overrides`` go to its SyncConfig)."""
        config = SyncConfig(**{**self.config.__dict__, **overrides})
        return SyncRunner(
            self.engine, self.integrations, self.clock, config, source=source, on_batch=on_batch
        )

    def wait(self, seconds: float) -> None:
        """The connectors' sleep: recorded, and slept only when ``real_waits`` is on."""
        self.sleeps.append(seconds)
        if self.real_waits:
            time.sleep(seconds)

    def service(self, runner: SyncRunner | None = None) -> SyncService:
        """The sync service, without a background scheduler (runs happen when asked)."""
        return SyncService(self.engine, self.integrations, self.clock, runner or self.runner())

    # -- data ---------------------------------------------------------------------------------

    def set_profile(self, user: str, **properties: Any) -> None:
        """``$set`` on a user's profile."""
        result = self.ingestion.engage(
            [{"$token": self.project.token, "$distinct_id": user, "$set": properties}]
        )
        assert not result.failed, result.failed

    def users(self, count: int, prefix: str = "u", **properties: Any) -> list[str]:
        """``count`` users with profiles (``$email`` = ``<id>@x.io``), made in chunks."""
        made = [f"{prefix}{i:06d}" for i in range(count)]
        for start in range(0, count, 1000):
            result = self.ingestion.engage(
                [
                    {
                        "$token": self.project.token,
                        "$distinct_id": user,
                        "$set": {"$email": f"{user}@x.io", **properties},
                    }
                    for user in made[start : start + 1000]
                ]
            )
            assert not result.failed, result.failed[:3]
        return made

    def unset(self, user: str, *names: str) -> None:
        """``$unset`` properties of a user's profile."""
        result = self.ingestion.engage(
            [{"$token": self.project.token, "$distinct_id": user, "$unset": list(names)}]
        )
        assert not result.failed, result.failed

    def event(self, user: str, name: str, days_ago: float = 0, **properties: Any) -> None:
        """One event of ``user`` (a ``$device:``-less id) ``days_ago`` before now."""
        when = now_ms(self.clock) - int(days_ago * DAY_MS)
        record = {
            "event": name,
            "properties": {
                "distinct_id": user,
                "time": when,
                "$insert_id": f"e{next(_ids)}",
                **properties,
            },
        }
        result = self.ingestion.import_events(self.project, [record])
        assert not result.failed, result.failed

    def anonymous_event(self, device: str, name: str) -> None:
        """An event from a device nobody logged in on."""
        record = {
            "event": name,
            "properties": {
                "$device_id": device,
                "time": now_ms(self.clock),
                "$insert_id": f"e{next(_ids)}",
            },
        }
        result = self.ingestion.import_events(self.project, [record])
        assert not result.failed, result.failed

    def cohort(self, name: str, definition: Any) -> int:
        """A dynamic cohort."""
        return CohortService(self.engine, self.clock).create(self.project.id, name, definition).id

    def connect(self, sandbox: RunningSandbox, **settings: Any) -> int:
        """An integration on ``sandbox``."""
        body = sandbox.integration()
        integration = self.integrations.connect(
            self.project.id, body["type"], body["credentials"], {**body["settings"], **settings}
        )
        assert integration.status == "connected", integration.error
        return integration.id

    def advance(self, days: float) -> None:
        """Move the clock (windows expire)."""
        self.clock.advance(timedelta(days=days))

    # -- expectations -------------------------------------------------------------------------

    def qualifying(self, cohort_id: int) -> tuple[set[str], dict[str, dict[str, Any]]]:
        """The reference evaluator's members of a cohort now, and the stored profiles."""
        with read_transaction(self.engine) as connection:
            world = load_world(connection, self.project.id)
            definition = CohortStore(connection).get(self.project.id, cohort_id).definition
        members = evaluate(world, parse_definition(definition), now_ms(self.clock))
        return members, world.profiles

    def expected(self, partner: str, cohort_id: int) -> tuple[set[str], dict[str, int]]:
        """What the partner's list should hold, and the skips by reason, written plainly."""
        members, profiles = self.qualifying(cohort_id)
        keys: set[str] = set()
        skipped: dict[str, int] = {}

        def skip(reason: str) -> None:
            skipped[reason] = skipped.get(reason, 0) + 1

        for user in members:
            profile = profiles.get(user) or {}
            if not profile or user.startswith(DEVICE_PREFIX):
                skip("anonymous")
            elif partner == "iterable":
                if not profile.get("$email"):
                    skip("missing email")
                else:  # Iterable's key is the email, always
                    keys.add(str(profile["$email"]))
            elif partner == "clevertap":
                keys.add(str(profile.get("$CleverTap_user_id") or user))
            else:
                keys.add(user)
        return keys, skipped

    def acknowledged(self, sync_id: int) -> set[str]:
        """The member keys the engine believes the partner holds."""
        with read_transaction(self.engine) as connection:
            rows = connection.execute(
                sa.select(sync_members.c.member_key).where(sync_members.c.sync_id == sync_id)
            )
            return {row[0] for row in rows}


def make_world(engine: Engine, clock: FrozenClock, project: Project) -> SyncWorld:
    """A sync world over a migrated database; connector waits are recorded, not slept."""
    forget_budgets()  # the emulators' accounts start with no read or request turn taken
    worlds: list[SyncWorld] = []

    def sleep(seconds: float) -> None:
        worlds[0].wait(seconds)

    integrations = IntegrationService(
        engine,
        Keyring([TEST_KEY]),
        clock,
        allow_custom_endpoints=True,
        allow_private_endpoints=True,
        sleep=sleep,
        timeout=2.0,
    )
    world = SyncWorld(engine, clock, project, IngestionService(engine, clock), integrations)
    worlds.append(world)
    return world
