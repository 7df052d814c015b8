"""Hypothesis: random datasets and random definitions; SQL members == reference members,
on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import Engine

from cohortsync.clock import FrozenClock, SystemClock
from cohortsync.domain.cohorts import parse_definition
from cohortsync.services.cohorts import CohortService
from cohortsync.services.ingestion import IngestionService
from cohortsync.services.projects import ProjectService
from cohortsync.storage.cohort_store import CohortStore
from cohortsync.storage.database import read_transaction
from tests.cohorts.reference import evaluate, load_world
from tests.conftest import NOW, NOW_MS

DAY = 86_400_000
USERS = ["u0", "u1", "u2", "u3", "u4"]
# One name no JSON path can spell as written: a quote, a dot, a bracket, non-ASCII (issue 15).
ODD = 'a."[ü'
KEYS = ["plan", "age", "tags", "vip", ODD]
scalars = st.sampled_from(["pro", "free", "Pro", "", 0, 1, 30, 30.0, 2.5, -1, True, False])
values = st.one_of(scalars, st.none(), st.lists(scalars, max_size=3))
# Four users with profiles (one may be empty), u4 anonymous: dense enough that most definitions
# split the users, which is where a wrong SQL translation shows.
profiles = st.fixed_dictionaries(
    {user: st.dictionaries(st.sampled_from(KEYS), values, max_size=4) for user in USERS[:4]}
)
# Mostly on window edges (7 days = 1 week, 1 day, 30 days; the evaluation time itself).
offsets = st.sampled_from(
    [0, -1, DAY, DAY + 1, 7 * DAY, 7 * DAY, 7 * DAY + 1, 30 * DAY, 30 * DAY + 1, 400 * DAY]
)
events = st.lists(
    st.tuples(
        st.sampled_from([*USERS, "device-a", "device-b"]),
        st.sampled_from(["Open", "Buy"]),
        offsets,
        st.dictionaries(st.sampled_from(["amount", "plan", ODD]), values, max_size=2),
    ),
    min_size=4,
    max_size=30,
)
links = st.dictionaries(st.sampled_from(["device-a", "device-b"]), st.sampled_from(USERS))


def property_condition() -> st.SearchStrategy[dict[str, Any]]:
    name = st.sampled_from([*KEYS, "amount", "missing"])
    scalar_ops = st.sampled_from(["equals", "not_equals", "contains", "not_contains"])
    ordered_ops = st.sampled_from(["gt", "gte", "lt", "lte"])
    return st.one_of(
        st.builds(lambda n, o, v: {"property": n, "op": o, "value": v}, name, scalar_ops, scalars),
        st.builds(
            lambda n, o, v: {"property": n, "op": o, "value": v},
            name,
            ordered_ops,
            st.sampled_from([0, 1, 30, 2.5, "free", "pro"]),
        ),
        st.builds(
            lambda n, lo, hi: {"property": n, "op": "between", "value": [lo, hi]},
            name,
            st.integers(-1, 30),
            st.integers(0, 40),
        ),
        st.builds(
            lambda n, o: {"property": n, "op": o}, name, st.sampled_from(["is_set", "is_not_set"])
        ),
        st.builds(
            lambda n, o, v: {"property": n, "op": o, "value": v},
            name,
            st.sampled_from(["in", "not_in"]),
            st.lists(scalars, min_size=1, max_size=3),
        ),
    )


def event_condition() -> st.SearchStrategy[dict[str, Any]]:
    window = st.one_of(
        st.none(),
        st.builds(
            lambda n, u: {"last": n, "unit": u},
            st.sampled_from([1, 7, 30]),
            st.sampled_from(["day", "week"]),
        ),
        st.just({"between": ["2026-11-16", "2026-11-22"]}),
    )

    def build(name: str, op: str, n: int, within: Any, where: list[Any]) -> dict[str, Any]:
        node: dict[str, Any] = {"event": name, "count": {"op": op, "value": n}}
        if within is not None:
            node["within"] = within
        if where:
            node["where"] = where
        return node

    return st.builds(
        build,
        st.sampled_from(["Open", "Buy"]),
        st.sampled_from([">=", ">", "=", "!=", "<", "<="]),
        st.integers(0, 3),
        window,
        st.lists(property_condition(), max_size=2),
    )


definitions = st.recursive(
    st.one_of(property_condition(), event_condition()),
    lambda children: st.one_of(
        st.builds(lambda items: {"all": items}, st.lists(children, min_size=1, max_size=3)),
        st.builds(lambda items: {"any": items}, st.lists(children, min_size=1, max_size=3)),
        st.builds(lambda item: {"not": item}, children),
    ),
    max_leaves=6,
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@example(  # an event exactly on the window's edge is inside it
    people={},
    happened=[("u0", "Open", 7 * DAY, {})],
    linked={},
    definition={
        "event": "Open",
        "count": {"op": ">=", "value": 1},
        "within": {"last": 1, "unit": "week"},
    },
)
@given(people=profiles, happened=events, linked=links, definition=definitions)
def test_random_definitions_match_the_reference(
    fresh_engine: Callable[[], Engine],
    people: dict[str, dict[str, Any]],
    happened: list[tuple[str, str, int, dict[str, Any]]],
    linked: dict[str, str],
    definition: dict[str, Any],
) -> None:
    engine = fresh_engine()
    project, _ = ProjectService(engine, SystemClock()).ensure_default()
    service = IngestionService(engine, FrozenClock(NOW))
    records = []
    for number, (who, name, offset, props) in enumerate(happened):
        properties = {**props, "time": NOW_MS - offset, "$insert_id": f"e{number}"}
        if who.startswith("device"):
            properties["$device_id"] = who
        else:
            properties["distinct_id"] = who
        records.append({"event": name, "properties": properties})
    for number, (device, user) in enumerate(linked.items()):
        records.append(
            {
                "event": "Login",
                "properties": {
                    "time": NOW_MS - 3 * DAY,
                    "$device_id": device,
                    "$user_id": user,
                    "$insert_id": f"l{number}",
                },
            }
        )
    if records:
        assert not service.import_events(project, records).failed
    updates = [{"$token": project.token, "$distinct_id": u, "$set": p} for u, p in people.items()]
    if updates:
        assert not service.engage(updates).failed
    cohort = CohortService(engine, SystemClock()).create(project.id, "random", definition)
    with read_transaction(engine) as connection:
        rows = connection.execute(
            CohortStore(connection).members_query(project.id, cohort.id, NOW_MS)
        )
        got = {r.distinct_id for r in rows}
        expected = evaluate(
            load_world(connection, project.id), parse_definition(definition), NOW_MS
        )
    assert got == expected
