"""A hypothesis state machine over the sync engine: members join, leave and rejoin, change
their email or partner id; the partner rate-limits, fails, refuses members or revokes the key;
its own users delete the list, take members off or put strangers on by hand, or rename it; runs
crash mid-way, and some runs are asked to reconcile.

After every run that succeeds, where the partner's list is known to be true (CleverTap: each run
sets the segment whole; Iterable: the run read the list back, or nobody touched it by hand since
one did, or the list was deleted and made again), the emulator's list holds exactly the cohort's
matchable members (minus those the partner refuses), and the engine's acknowledged state equals
the list. CleverTap runs the most examples (its identity can change, and it has no request rate
to pace); Iterable's 5 requests a second make its examples slower, so it runs fewer.)"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test
from sqlalchemy.engine import Engine

from cohortsync.clock import FrozenClock, SystemClock
from cohortsync.domain.syncs import SyncRun
from cohortsync.partners.iterable.emulator import IterableSandbox
from cohortsync.sandbox.fleet import RunningSandbox
from cohortsync.services.projects import ProjectService
from cohortsync.storage.database import create_engine
from tests.conftest import NOW
from tests.sync.world import SyncWorld, make_world

USERS = ["ann", "bob", "cat", "dov", "eva", "fin"]
PRO_OR_BUYER = {
    "any": [
        {"property": "plan", "op": "equals", "value": "pro"},
        {"event": "Purchase", "count": {"op": ">=", "value": 1}},
    ]
}


class SimulatedCrash(BaseException):
    """The worker dies between two batches (nothing after the last checkpoint runs)."""


def sync_machine(
    new_engine: Callable[[], Engine], sandbox: RunningSandbox
) -> type[RuleBasedStateMachine]:
    """The machine class, over fresh databases from ``new_engine`` and ``sandbox``'s partner."""
    partner = sandbox.partner

    class SyncMachine(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            sandbox.state.reset()
            if isinstance(sandbox.state, IterableSandbox):  # reads are paced by recorded waits
                sandbox.state.reads_per_minute = None
            engine = new_engine()
            project, _ = ProjectService(engine, SystemClock()).ensure_default()
            self.world: SyncWorld = make_world(engine, FrozenClock(NOW), project)
            self.cohort_id = self.world.cohort("Pro or buyer", PRO_OR_BUYER)
            self.integration_id = self.world.connect(sandbox)
            self.sync_id = (
                self.world.service()
                .export(project.id, self.cohort_id, self.integration_id, "dynamic")
                .id
            )
            # A first run makes the (empty) list, so the partner's users can edit it at once.
            self.world.service().run_now(project.id, self.sync_id)
            self.crash_after: int | None = None
            self.generation = 0
            self.last: SyncRun | None = None
            self.edited_by_hand = False  # since the list was last known to be true
            self.strangers = 0

        # -- the cohort changes --------------------------------------------------------------

        @rule(user=st.sampled_from(USERS))
        def join(self, user: str) -> None:
            self.world.set_profile(user, plan="pro")

        @rule(user=st.sampled_from(USERS))
        def leave(self, user: str) -> None:
            self.world.set_profile(user, plan="free")

        @rule(user=st.sampled_from(USERS), present=st.booleans())
        def email(self, user: str, present: bool) -> None:
            if present:
                self.generation += 1
                self.world.set_profile(user, **{"$email": f"{user}{self.generation}@x.io"})
            else:
                self.world.unset(user, "$email")

        @rule(user=st.sampled_from(USERS))
        def buy(self, user: str) -> None:  # a user without a profile yet joins as anonymous
            self.world.event(user, "Purchase")

        @rule(user=st.sampled_from(USERS))
        def partner_id(self, user: str) -> None:
            self.generation += 1
            self.world.set_profile(user, **{"$CleverTap_user_id": f"ct-{user}-{self.generation}"})

        # -- the partner and the worker misbehave --------------------------------------------

        @rule(
            fault=st.sampled_from(["rate_limit", "outage", "refuse", "revoke_key", "recover"]),
            user=st.sampled_from(USERS),
        )
        def partner_changes(self, fault: str, user: str) -> None:
            faults = sandbox.state.faults
            if fault == "rate_limit":
                faults.rate_limit_next = 2
            elif fault == "outage":
                faults.server_error_next = 50  # longer than the retry budget
            elif fault == "refuse":
                faults.reject_keys = self.keys_of(user)
            elif fault == "revoke_key":
                faults.bad_credentials = True
            else:
                faults.server_error_next = faults.rate_limit_next = 0
                faults.reject_keys = set()
                faults.bad_credentials = False

        def keys_of(self, user: str) -> set[str]:
            """Every key the partner may know ``user`` by."""
            if partner == "iterable":
                return {f"{user}{g}@x.io" for g in range(self.generation + 1)}
            return {user} | {f"ct-{user}-{g}" for g in range(self.generation + 1)}

        def list_id(self) -> str | None:
            return self.world.service().get(self.world.project.id, self.sync_id).list_id

        @rule()
        def partner_deletes_the_list(self) -> None:
            list_id = self.list_id()
            if list_id is not None and sandbox.state.delete_list(list_id):
                self.edited_by_hand = False  # the next run makes it anew, whole

        @rule(user=st.sampled_from(USERS), put_on=st.booleans())
        def partner_edits_by_hand(self, user: str, put_on: bool) -> None:
            list_id = self.list_id()
            if list_id is None or list_id not in sandbox.state.lists:
                return
            if put_on:
                self.strangers += 1
                stranger = f"stranger{self.strangers}"
                key = f"{stranger}@x.io" if partner == "iterable" else stranger
                sandbox.state.edit_by_hand(list_id, add=[key])
            else:
                sandbox.state.edit_by_hand(list_id, remove=self.keys_of(user))
            self.edited_by_hand = True

        @rule()
        def partner_renames_the_list(self) -> None:
            list_id = self.list_id()
            if list_id is not None and list_id in sandbox.state.lists:
                self.generation += 1
                sandbox.state.edit_by_hand(list_id, rename=f"renamed by hand {self.generation}")

        @rule(batches=st.integers(0, 2))
        def crash_next_run(self, batches: int) -> None:
            self.crash_after = batches

        # -- runs -------------------------------------------------------------------------------

        @rule(reconcile=st.booleans())
        def sync(self, reconcile: bool) -> None:
            world, project_id = self.world, self.world.project.id
            integration = world.integrations.get(project_id, self.integration_id)
            if integration.status == "error" and not sandbox.state.faults.bad_credentials:
                world.integrations.update(project_id, self.integration_id)  # the admin fixes it
            crash_after, self.crash_after = self.crash_after, None
            done = [0]

            def on_batch(_run: SyncRun) -> None:
                done[0] += 1
                if crash_after is not None and done[0] > crash_after:
                    raise SimulatedCrash()

            service = world.service(world.runner(on_batch=on_batch, batch_size=2))
            try:
                run = service.run_now(project_id, self.sync_id, reconcile=reconcile)
            except SimulatedCrash:
                self.last = None
                return
            if run.status == "blocked":
                assert not world.qualifying(self.cohort_id)[0], run.blocked_reason
                run = service.confirm(project_id, self.sync_id, user_id=1, wait=True)
            if run.counts.reconciled or run.counts.list_recreated:
                self.edited_by_hand = False
            self.last = run

        @invariant()
        def list_is_exact_after_a_successful_run(self) -> None:
            run, self.last = self.last, None
            if run is None or run.status not in ("succeeded", "partial"):
                return
            if self.edited_by_hand and partner != "clevertap":
                return  # drift the partner has not been asked about yet
            expected, skipped = self.world.expected(partner, self.cohort_id)
            list_id = self.list_id()
            assert list_id is not None
            with sandbox.state.lock:
                held = set(sandbox.state.lists[list_id].members)
            refused = sandbox.state.faults.reject_keys
            if run.status == "succeeded":
                assert held == expected
            else:
                assert held == expected - refused and sum(run.counts.rejected.values()) >= 1
            assert self.world.acknowledged(self.sync_id) == held
            assert dict(run.counts.skipped) == skipped

    return SyncMachine


# `make fuzz` multiplies the examples (a longer hunt than `make test` can afford).
SCALE = float(os.environ.get("COHORTSYNC_FUZZ_SCALE", "1"))


def _run(new_engine: Callable[[], Engine], sandbox: RunningSandbox, examples: int) -> None:
    machine = sync_machine(new_engine, sandbox)
    run_state_machine_as_test(
        machine,
        settings=settings(
            max_examples=max(int(examples * SCALE), 1),
            stateful_step_count=20,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )


@pytest.mark.parametrize(("partner", "examples"), [("clevertap", 160), ("iterable", 40)])
def test_lists_stay_exact_through_joins_faults_and_crashes(
    tmp_path: Path,
    sqlite_template: Path,
    sandbox_fleet: dict[str, RunningSandbox],
    partner: str,
    examples: int,
) -> None:
    """Most examples on the embedded default (SQLite)."""
    made: list[Engine] = []

    def new_engine() -> Engine:
        for previous in made:
            previous.dispose()
        target = tmp_path / f"machine-{len(made)}.db"
        shutil.copy(sqlite_template, target)
        made.append(create_engine(f"sqlite:///{target}"))
        return made[-1]

    _run(new_engine, sandbox_fleet[partner], examples=examples)


@pytest.mark.postgres
@pytest.mark.parametrize(("partner", "examples"), [("clevertap", 50), ("iterable", 12)])
def test_lists_stay_exact_on_postgresql(
    database_url: Any,
    fresh_engine: Callable[[], Engine],
    sandbox_fleet: dict[str, RunningSandbox],
    partner: str,
    examples: int,
) -> None:
    """Fewer examples on PostgreSQL: the same machine, the other engine."""
    if not database_url.startswith("postgresql"):
        pytest.skip("the SQLite run is the test above")
    _run(fresh_engine, sandbox_fleet[partner], examples=examples)
