"""Issue 15, finding 4: definitions without limits. A 400-deep ``not`` chain was saved and from
then on every ``GET …/cohorts`` answered 500; numbers above 2⁶³ were saved and failed every
evaluation. Definitions are now bounded where they are parsed, each refusal naming the JSON path
of the offending node, and a stored definition that breaks the bounds is listed as invalid."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy.engine import Engine

from cohortsync.clock import FrozenClock
from cohortsync.domain.accounts import Project
from cohortsync.domain.cohorts import CohortKind, DefinitionError, parse_definition
from cohortsync.domain.definition_bounds import (
    MAX_CONDITIONS,
    MAX_DEPTH,
    MAX_INTEGER,
    MAX_LIST_VALUES,
    MIN_INTEGER,
)
from cohortsync.services.cohorts import CohortService
from cohortsync.services.ingestion import IngestionService
from cohortsync.storage.cohort_store import CohortStore
from cohortsync.storage.database import write_transaction
from tests.conftest import NOW, LiveServer
from tests.helpers import admin_token

SET = {"property": "plan", "op": "is_set"}


def nots(depth: int, leaf: dict[str, Any] = SET) -> dict[str, Any]:
    """``depth`` nested ``not``s around ``leaf``."""
    node = leaf
    for _ in range(depth):
        node = {"not": node}
    return node


def equals(value: Any, name: str = "plan") -> dict[str, Any]:
    return {"property": name, "op": "equals", "value": value}


def values(count: int) -> list[int]:
    return list(range(count))


REFUSED: list[tuple[str, Any, str, str]] = [
    ("400-deep not chain", nots(400), "$" + ".not" * MAX_DEPTH, "nested more than 16"),
    ("one level too deep", nots(MAX_DEPTH), "$" + ".not" * MAX_DEPTH, "nested more than 16"),
    (
        "too many conditions",
        {"any": [SET] * MAX_CONDITIONS},
        f"$.any[{MAX_CONDITIONS - 1}]",
        "at most 200 conditions",
    ),
    (
        "a list too long",
        {"property": "n", "op": "in", "value": values(MAX_LIST_VALUES + 1)},
        "$.value",
        "at most 1,000 values",
    ),
    (
        "too many values in all",
        {"any": [{"property": "n", "op": "not_in", "value": values(1000)}] * 6},
        "$.any[5].value",
        "at most 5,000 values",
    ),
    ("an integer above 2^63", equals(2**64), "$.value", "out of range"),
    ("an integer of 2^63", equals(MAX_INTEGER + 1), "$.value", "out of range"),
    ("an integer below -2^63", equals(MIN_INTEGER - 1), "$.value", "out of range"),
    (
        "a huge integer in a list",
        {"property": "n", "op": "in", "value": [1, 10**30]},
        "$.value[1]",
        "out of range",
    ),
    (
        "a huge integer in a between",
        {"property": "n", "op": "between", "value": [0, 2**70]},
        "$.value[1]",
        "out of range",
    ),
    (
        "a huge event count",
        {"event": "Open", "count": {"op": ">=", "value": 2**63}},
        "$.count.value",
        "out of range",
    ),
    ("a huge cohort id", {"in_cohort": 2**40}, "$.in_cohort", "out of range"),
    ("not a number", equals(float("nan")), "$.value", "not a finite number"),
    ("infinity", {"property": "n", "op": "gt", "value": float("inf")}, "$.value", "finite"),
    (
        "a window over ten years",
        {"event": "Open", "within": {"last": 3661, "unit": "day"}},
        "$.within.last",
        "at most 3,660 days",
    ),
    (
        "a window of 600 weeks",
        {"all": [SET, {"event": "Open", "within": {"last": 600, "unit": "week"}}]},
        "$.all[1].within.last",
        "522 weeks",
    ),
    (
        "a day before 1970",
        {"event": "Open", "within": {"between": ["0001-01-01", "2026-01-01"]}},
        "$.within.between[0]",
        "out of range",
    ),
    (
        "the last representable day",
        {"event": "Open", "within": {"between": ["2026-01-01", "9999-12-31"]}},
        "$.within.between[1]",
        "out of range",
    ),
    ("a long property name", equals("x", "p" * 256), "$.property", "over 255 characters"),
    (
        "a long event name",
        {"not": {"event": "E" * 256}},
        "$.not.event",
        "over 255 characters",
    ),
    ("a long value", equals("v" * 1025), "$.value", "over 1,024 characters"),
    (
        "a long value in an event filter",
        {"event": "Open", "where": [SET, equals("v" * 2000)]},
        "$.where[1].value",
        "over 1,024 characters",
    ),
    ("a NUL in a name", equals("x", "a\x00b"), "$.property", "NUL"),
    ("a lone surrogate", equals("\ud800"), "$.value", "UTF-8"),
]


@pytest.mark.parametrize("case", REFUSED, ids=[c[0] for c in REFUSED])
def test_each_bound_is_refused_naming_the_path(case: tuple[str, Any, str, str]) -> None:
    _, definition, path, words = case
    with pytest.raises(DefinitionError) as refused:
        parse_definition(definition)
    assert refused.value.path == path
    assert words in refused.value.message


ACCEPTED: list[tuple[str, Any]] = [
    ("16 levels", nots(MAX_DEPTH - 1)),
    ("200 conditions", {"any": [SET] * (MAX_CONDITIONS - 1)}),
    ("1,000 values", {"property": "n", "op": "in", "value": values(MAX_LIST_VALUES)}),
    ("the largest integer", equals(MAX_INTEGER)),
    ("the smallest integer", equals(MIN_INTEGER)),
    ("ten years", {"event": "Open", "within": {"last": 3660, "unit": "day"}}),
    ("120 months", {"event": "Open", "within": {"last": 122, "unit": "month"}}),
    ("a 255-character name", equals("x", "p" * 255)),
    ("a 1,024-character value", equals("v" * 1024)),
]


@pytest.mark.parametrize("case", ACCEPTED, ids=[c[0] for c in ACCEPTED])
def test_definitions_at_the_bounds_are_accepted(case: tuple[str, Any]) -> None:
    parse_definition(case[1])


@pytest.fixture
def api(live_server: LiveServer, engine: Engine, project: Project) -> httpx.Client:
    token = admin_token(engine, project.id)
    return live_server.client(headers={"Authorization": f"Bearer {token}"})


def test_the_api_refuses_unbounded_definitions_with_their_path(
    api: httpx.Client, project: Project
) -> None:
    base = f"/api/v1/projects/{project.id}/cohorts"
    deep = api.post(base, json={"name": "deep", "definition": nots(400)})
    assert deep.status_code == 400, deep.text
    assert deep.json()["error"]["path"] == "$" + ".not" * MAX_DEPTH
    huge = api.post(base, json={"name": "huge", "definition": equals(2**64)})
    assert huge.status_code == 400 and huge.json()["error"]["path"] == "$.value"
    deeper = "".join(['{"name": "deeper", "definition": ', '{"not": ' * 3000, "{}", "}" * 3001])
    refused = api.post(base, content=deeper, headers={"Content-Type": "application/json"})
    assert refused.status_code == 400, refused.text
    made = api.post(base, json={"name": "fine", "definition": equals("pro")}).json()
    changed = api.put(f"{base}/{made['id']}", json={"definition": nots(30)})
    assert changed.status_code == 400 and changed.json()["error"]["path"].startswith("$.not")
    long = api.put(f"{base}/{made['id']}", json={"description": "d" * 2001})
    assert long.status_code == 400
    assert api.get(base).status_code == 200
    assert [c["name"] for c in api.get(base).json()] == ["fine"]


def test_a_stored_definition_beyond_the_bounds_is_listed_as_invalid(
    api: httpx.Client, live_server: LiveServer, engine: Engine, project: Project
) -> None:
    """Definitions saved before the bounds: the list, the cohort and its page still answer."""
    with write_transaction(engine) as connection:  # as an older version saved them
        store = CohortStore(connection)
        deep, huge = (
            store.insert(project.id, name, "", CohortKind.DYNAMIC, definition, None, NOW)
            for name, definition in (("deep", nots(400)), ("huge", equals(2**63)))
        )
    base = f"/api/v1/projects/{project.id}/cohorts"
    listed = api.get(base)
    assert listed.status_code == 200, listed.text
    by_name = {c["name"]: c for c in listed.json()}
    assert by_name["deep"]["invalid"]["path"] == "$" + ".not" * MAX_DEPTH
    assert by_name["deep"]["definition"] is None  # too deep to send back
    assert by_name["huge"]["invalid"]["path"] == "$.value"
    assert by_name["huge"]["definition"] == equals(2**63)
    one = api.get(f"{base}/{huge}")
    assert one.status_code == 200 and one.json()["count"] is None
    assert one.json()["invalid"]["message"].startswith("$.value")
    assert api.get(f"{base}/{deep}").json()["count"] is None
    members = api.get(f"{base}/{deep}/members")
    assert members.status_code == 400 and members.json()["error"]["code"] == "invalid_definition"
    # correcting it is a PUT like any other
    fixed = api.put(f"{base}/{huge}", json={"definition": equals(2**62)})
    assert fixed.status_code == 200 and "invalid" not in fixed.json()
    counts = CohortService(engine, FrozenClock(NOW)).list_with_counts(project.id)
    assert {c.name: n for c, n in counts} == {"deep": None, "huge": 0}


def test_definitions_at_the_bounds_evaluate_on_both_engines(
    engine: Engine, project: Project
) -> None:
    """The largest lists and the deepest nesting the bounds allow compile to SQL both engines
    run (an OR per value would pass SQLite's expression depth of 1,000)."""
    people = {"u1": {"n": 999, "tag": "t999"}, "u2": {"n": 1000, "tag": "x"}, "u3": {}}
    IngestionService(engine, FrozenClock(NOW)).engage(
        [{"$token": project.token, "$distinct_id": u, "$set": p} for u, p in people.items()]
    )
    in_list = {"property": "n", "op": "in", "value": values(MAX_LIST_VALUES)}
    tags = {"property": "tag", "op": "in", "value": [f"t{i}" for i in range(MAX_LIST_VALUES)]}
    service = CohortService(engine, FrozenClock(NOW))
    assert service.count_definition(project.id, in_list) == 1
    assert service.count_definition(project.id, {"all": [in_list, tags]}) == 1
    not_in = {**in_list, "op": "not_in"}
    assert service.count_definition(project.id, not_in) == 2
    assert service.count_definition(project.id, nots(MAX_DEPTH - 2, in_list)) == 1
    wide = {"any": [equals(i, "n") for i in range(MAX_CONDITIONS - 1)]}
    assert service.count_definition(project.id, wide) == 0


def test_references_may_not_multiply_a_definition_past_one_statement(
    engine: Engine, project: Project
) -> None:
    """Each cohort keeps its bounds; inlining its references must not carry one SQL statement
    past 20,000 values, 1,000 conditions or 64 levels (PostgreSQL takes 65,535 parameters)."""
    service = CohortService(engine, FrozenClock(NOW))
    full = {"any": [{"property": "n", "op": "in", "value": values(1000)}] * 5}  # 5,000 values
    heavy = [service.create(project.id, f"heavy {i}", full).id for i in range(4)]

    def refers(*ids: int) -> dict[str, Any]:
        return {"any": [{"in_cohort": i} for i in ids]}

    four = service.create(project.id, "four", refers(*heavy))
    assert service.count(project.id, four.id) == 0  # 20,000 values: still one statement
    small = service.create(project.id, "small", equals(1))
    with pytest.raises(DefinitionError) as refused:
        service.create(project.id, "five", refers(*heavy, small.id))
    assert refused.value.path == "$" and "20,001 values, over 20,000" in refused.value.message
    # growing a cohort is refused when a cohort referring to it would pass the bound
    in_four = refers(small.id, *heavy[:3])["any"]
    referrer = service.create(project.id, "referrer", {"any": [*in_four, equals(2)]})
    with pytest.raises(DefinitionError) as grown:
        service.update(project.id, small.id, definition=full)
    assert f"cohort {referrer.id} ('referrer'), which refers to this one" in grown.value.message
    # a chain of references: 16 + 3 x 15 = 61 levels evaluate on both engines; 76 do not pass
    chain = service.create(project.id, "link 0", nots(MAX_DEPTH - 1)).id
    for link in range(1, 4):
        more = nots(MAX_DEPTH - 1, {"in_cohort": chain})
        chain = service.create(project.id, f"link {link}", more).id
    assert service.count(project.id, chain) == 0
    with pytest.raises(DefinitionError) as deep:
        service.create(project.id, "link 4", nots(MAX_DEPTH - 1, {"in_cohort": chain}))
    assert "nests more than 64 levels" in deep.value.message
