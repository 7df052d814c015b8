"""Property: profile operations, sent in any batching, give what a plain reference model gives."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import Engine

from cohortsync.clock import FrozenClock, SystemClock
from cohortsync.services.ingestion import IngestionService
from cohortsync.services.projects import ProjectService
from cohortsync.storage.database import read_transaction
from cohortsync.warehouse.profiles import get_profile
from tests.conftest import NOW

USERS = ["alice", "bob"]
KEYS = ["plan", "tags"]
# A small pool of values, so operations collide on the same keys and list elements often.
scalars = st.sampled_from([0, 2, 0.5, "pro", "free", True])
values = st.one_of(scalars, st.lists(scalars, max_size=3))
numbers = st.one_of(st.integers(-3, 3), st.sampled_from([0.5, 2.25]))

operations = st.one_of(
    st.tuples(st.just("$set"), st.dictionaries(st.sampled_from(KEYS), values, min_size=1)),
    st.tuples(st.just("$set_once"), st.dictionaries(st.sampled_from(KEYS), values, min_size=1)),
    st.tuples(st.just("$add"), st.dictionaries(st.sampled_from(KEYS), numbers, min_size=1)),
    st.tuples(st.just("$append"), st.dictionaries(st.sampled_from(KEYS), scalars, min_size=1)),
    st.tuples(
        st.just("$union"),
        st.dictionaries(st.sampled_from(KEYS), st.lists(scalars, max_size=3), min_size=1),
    ),
    st.tuples(st.just("$remove"), st.dictionaries(st.sampled_from(KEYS), scalars, min_size=1)),
    st.tuples(st.just("$unset"), st.lists(st.sampled_from(KEYS), min_size=1, max_size=2)),
    st.tuples(st.just("$delete"), st.just("")),
)
updates = st.lists(st.tuples(st.sampled_from(USERS), operations), min_size=1, max_size=25)


def _is_number(value: Any) -> bool:
    return type(value) in (int, float)


def reference(history: list[tuple[str, tuple[str, Any]]]) -> dict[str, dict[str, Any] | None]:
    """Mixpanel's documented profile semantics, written as plainly as possible."""
    people: dict[str, dict[str, Any] | None] = dict.fromkeys(USERS)
    for user, (operation, value) in history:
        if operation == "$delete":
            people[user] = None
            continue
        profile = people[user] if people[user] is not None else {}
        assert profile is not None
        if operation == "$set":
            for key in value:
                profile[key] = value[key]
        elif operation == "$set_once":
            for key in value:
                if key not in profile:
                    profile[key] = value[key]
        elif operation == "$add":
            for key in value:
                if key not in profile:
                    profile[key] = value[key]
                elif _is_number(profile[key]):
                    profile[key] = profile[key] + value[key]
        elif operation == "$append":
            for key in value:
                if key not in profile:
                    profile[key] = [value[key]]
                elif isinstance(profile[key], list):
                    profile[key] = profile[key] + [value[key]]
        elif operation == "$union":
            for key in value:
                if key not in profile:
                    profile[key] = []
                if isinstance(profile[key], list):
                    for item in value[key]:
                        if item not in profile[key]:
                            profile[key] = profile[key] + [item]
        elif operation == "$remove":
            for key in value:
                if key in profile and isinstance(profile[key], list):
                    profile[key] = [x for x in profile[key] if x != value[key]]
        elif operation == "$unset":
            for key in value:
                if key in profile:
                    del profile[key]
        people[user] = profile
    return people


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(history=updates, sizes=st.lists(st.integers(1, 10), max_size=6))
def test_profile_operations_match_the_reference_model(
    fresh_engine: Callable[[], Engine], history: list[tuple[str, tuple[str, Any]]], sizes: list[int]
) -> None:
    engine = fresh_engine()
    project, _ = ProjectService(engine, SystemClock()).ensure_default()
    service = IngestionService(engine, FrozenClock(NOW))
    records = [
        {"$token": project.token, "$distinct_id": user, operation: value}
        for user, (operation, value) in history
    ]
    start = 0
    for size in [*sizes, len(records)]:
        batch = records[start : start + size]
        start += size
        if batch:
            assert not service.engage(batch).failed
    expected = reference(history)
    with read_transaction(engine) as connection:
        for user in USERS:
            stored = get_profile(connection, project.id, user)
            assert (stored.properties if stored else None) == expected[user], user
