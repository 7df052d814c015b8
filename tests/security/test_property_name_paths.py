"""Issue 15, finding 16: a ``"`` or ``.`` in a property name changed the SQLite JSON path, so a
cohort on ``a"b`` read another property (or none). Any UTF-8 name is now read as itself, on
profiles and on events, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.engine import Engine

from cohortsync.clock import FrozenClock
from cohortsync.domain.accounts import Project
from cohortsync.domain.cohorts import parse_definition
from cohortsync.services.cohorts import CohortService
from cohortsync.services.ingestion import IngestionService
from cohortsync.storage.cohort_store import CohortStore
from cohortsync.storage.database import read_transaction
from tests.conftest import NOW, NOW_MS

QUOTED = 'a"b'
NAMES = [
    "a.b",
    'a"b',
    "$x",
    "a[0]",
    "ключ",
    "a\\b",
    "a'b",
    "😀",
    "a b",
    'a\\"b',
    "$.a",
    "tab\tname",
    'a"].b',
    "é",
]
# Profiles that a path built by pasting the name would read instead: the parts around a dot,
# the text before a quote, an index into a list, a key without its "$".
DECOYS: dict[str, dict[str, Any]] = {
    "d-nested": {"a": {"b": "yes"}, "$": {"a": "yes"}},
    "d-a": {"a": "yes", "b": "yes"},
    "d-x": {"x": "yes"},
    "d-list": {"a": ["yes"]},
    "d-escaped": {"a\\\\b": "yes", "\\u043a\\u043b\\u044e\\u0447": "yes"},
}


def _definitions(name: str) -> list[tuple[dict[str, Any], set[str]]]:
    """Conditions on ``name`` and who, of the seeded users, each holds for."""
    text, listed, number = (f"{kind}-{NAMES.index(name)}" for kind in ("text", "list", "num"))
    buyer = f"buyer-{NAMES.index(name)}"

    def on(op: str, value: Any = None) -> dict[str, Any]:
        node = {"property": name, "op": op}
        return node if value is None else {**node, "value": value}

    return [
        (on("equals", "yes"), {text}),
        (on("in", ["no", "yes"]), {text}),
        (on("is_set"), {text, listed, number}),
        (on("contains", "yes"), {text, listed}),
        (on("contains", 2), {listed}),
        (on("gt", 4), {number}),
        ({"all": [on("is_set"), {"not": on("equals", "yes")}]}, {listed, number}),
        ({"event": "Buy", "where": [on("equals", "yes")]}, {buyer}),
    ]


@pytest.fixture
def seeded(engine: Engine, project: Project) -> Project:
    profiles: dict[str, dict[str, Any]] = dict(DECOYS)
    records = []
    for number, name in enumerate(NAMES):
        profiles[f"text-{number}"] = {name: "yes"}
        profiles[f"list-{number}"] = {name: ["yes", 2]}
        profiles[f"num-{number}"] = {name: 5}
        for who, value in ((f"buyer-{number}", "yes"), ("decoy-buyer", "no")):
            properties = {"distinct_id": who, "time": NOW_MS - 1000, name: value}
            records.append(
                {"event": "Buy", "properties": {**properties, "$insert_id": f"{who}-{number}"}}
            )
    records.append(
        {
            "event": "Buy",
            "properties": {"distinct_id": "nested-buyer", "time": NOW_MS, "a": {"b": "yes"}},
        }
    )
    service = IngestionService(engine, FrozenClock(NOW))
    assert not service.import_events(project, records).failed
    updates = [{"$token": project.token, "$distinct_id": u, "$set": p} for u, p in profiles.items()]
    assert not service.engage(updates).failed
    return project


def test_any_property_name_is_read_as_itself(engine: Engine, seeded: Project) -> None:
    wrong: dict[tuple[str, str], set[str]] = {}
    with read_transaction(engine) as connection:
        store = CohortStore(connection)
        for name in NAMES:
            for definition, expected in _definitions(name):
                condition = parse_definition(definition)
                query = store.definition_query(seeded.id, condition, NOW_MS, False)
                got = {row.distinct_id for row in connection.execute(query)}
                if got != expected:
                    wrong[(name, str(definition))] = got
    assert wrong == {}


def test_a_saved_cohort_on_such_a_name_lists_its_members(engine: Engine, seeded: Project) -> None:
    cohorts = CohortService(engine, FrozenClock(NOW))
    made = cohorts.create(seeded.id, "quoted", {"property": 'a"b', "op": "equals", "value": "yes"})
    page = cohorts.member_page(seeded.id, made.id, properties=['a"b'])
    owner = f"text-{NAMES.index(QUOTED)}"
    assert page.members == [
        {
            "distinct_id": owner,
            "properties": {'a"b': "yes"},
            "identified": True,
        }
    ]
