"""Identity: simplified and original ID merge, cluster limit, CleverTap auto-alias (R-ING-5..7)."""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy.engine import Engine

from cohortsync.clock import SystemClock
from cohortsync.domain.accounts import Project
from cohortsync.domain.identity import IdentityMode
from cohortsync.services.ingestion import IngestionService
from cohortsync.services.projects import ProjectService
from cohortsync.storage.database import read_transaction
from cohortsync.warehouse.events import export_events
from cohortsync.warehouse.profiles import get_profile
from tests.conftest import NOW_MS

_counter = iter(range(1_000_000))


def ev(name: str, **props: Any) -> dict[str, Any]:
    props.setdefault("time", NOW_MS - 60_000)
    props.setdefault("$insert_id", f"i{next(_counter)}")
    return {"event": name, "properties": props}


def owners(engine: Engine, project: Project) -> dict[str, str]:
    """$insert_id → canonical distinct_id, as the export shows them."""
    with read_transaction(engine) as connection:
        lines = list(export_events(connection, project.id, 0, NOW_MS + 1))
    return {
        e["properties"]["$insert_id"]: e["properties"]["distinct_id"]
        for e in map(orjson.loads, lines)
    }


def use_original(engine: Engine, project: Project) -> Project:
    projects = ProjectService(engine, SystemClock())
    projects.set_identity_mode(project.id, IdentityMode.ORIGINAL)
    return projects.get(project.id)


def test_simplified_merge_attributes_earlier_device_events_to_the_user(
    service: IngestionService, engine: Engine, project: Project
) -> None:
    service.import_events(
        project,
        [
            ev("Page View", **{"$device_id": "d1", "$insert_id": "before"}),  # distinct_id derived
            ev("Page View", distinct_id="$device:d1", **{"$device_id": "d1"}),
        ],
    )
    service.engage([{"$token": project.token, "$distinct_id": "$device:d1", "$set": {"utm": "ad"}}])
    service.import_events(
        project,
        [
            ev("Sign Up", **{"$device_id": "d1", "$user_id": "alice", "$insert_id": "login"}),
            ev("Purchase", **{"$user_id": "alice", "$insert_id": "after"}),
        ],
    )
    service.engage([{"$token": project.token, "$distinct_id": "alice", "$set": {"plan": "pro"}}])
    assert set(owners(engine, project).values()) == {"alice"}
    with read_transaction(engine) as connection:
        user = get_profile(connection, project.id, "$device:d1")
    assert user is not None
    assert user.distinct_id == "alice"
    assert set(user.ids) == {"alice", "$device:d1", "d1"}
    assert user.properties == {"utm": "ad", "plan": "pro"}  # the device's profile folded in


def test_simplified_device_stays_with_its_first_user(
    service: IngestionService, engine: Engine, project: Project
) -> None:
    service.import_events(
        project,
        [
            ev("Login", **{"$device_id": "shared", "$user_id": "alice"}),
            ev("Login", **{"$device_id": "shared", "$user_id": "bob", "$insert_id": "bob-login"}),
            ev("Browse", **{"$device_id": "shared", "$insert_id": "browse"}),
        ],
    )
    found = owners(engine, project)
    assert found["bob-login"] == "bob"
    assert found["browse"] == "alice"


def test_original_identify_alias_and_merge(
    service: IngestionService, engine: Engine, project: Project
) -> None:
    project = use_original(engine, project)
    service.import_events(
        project,
        [
            ev("Visit", distinct_id="anon-1", **{"$insert_id": "v1"}),
            ev("Visit", distinct_id="anon-2", **{"$insert_id": "v2"}),
            ev("Visit", distinct_id="phone-9", **{"$insert_id": "v3"}),
        ],
    )
    service.engage(
        [
            {
                "$token": project.token,
                "$distinct_id": "anon-1",
                "$set": {"plan": "free", "utm": "x"},
            },
            {"$token": project.token, "$distinct_id": "carol", "$set": {"plan": "pro"}},
        ]
    )
    result = service.import_events(
        project,
        [
            ev("$identify", **{"$identified_id": "carol", "$anon_id": "anon-1"}),
            ev("$create_alias", distinct_id="carol", alias="anon-2"),
            ev("$merge", **{"$distinct_ids": ["carol", "phone-9"]}),
        ],
    )
    assert not result.failed
    found = owners(engine, project)
    assert [found["v1"], found["v2"], found["v3"]] == ["carol"] * 3
    with read_transaction(engine) as connection:
        carol = get_profile(connection, project.id, "anon-2")
    assert carol is not None
    assert sorted(carol.ids) == ["anon-1", "anon-2", "carol", "phone-9"]
    assert carol.properties == {"plan": "pro", "utm": "x"}  # the identified user's values win


def test_alias_of_an_id_already_in_another_cluster_is_ignored(
    service: IngestionService, engine: Engine, project: Project
) -> None:
    project = use_original(engine, project)
    service.import_events(
        project,
        [
            ev("$create_alias", distinct_id="dave", alias="shared-alias"),
            ev("$create_alias", distinct_id="erin", alias="shared-alias"),
            ev("Visit", distinct_id="shared-alias", **{"$insert_id": "visit"}),
        ],
    )
    assert owners(engine, project)["visit"] == "dave"


def test_cluster_over_500_ids_is_refused_and_reported(
    service: IngestionService, engine: Engine, project: Project
) -> None:
    project = use_original(engine, project)
    aliases = [ev("$create_alias", distinct_id="big", alias=f"a{i}") for i in range(499)]
    for start in range(0, len(aliases), 200):
        assert not service.import_events(project, aliases[start : start + 200]).failed
    service.import_events(project, [ev("$create_alias", distinct_id="small", alias="s1")])
    result = service.import_events(
        project,
        [
            ev("Visit", distinct_id="s1", **{"$insert_id": "ok"}),
            ev("$merge", **{"$distinct_ids": ["big", "small"], "$insert_id": "too-big"}),
        ],
    )
    assert [(f.index, f.insert_id) for f in result.failed] == [(1, "too-big")]
    assert "at most 500" in result.failed[0].message
    assert result.imported == 1
    found = owners(engine, project)
    assert found["ok"] == "small"
    assert "too-big" not in found


def test_clevertap_user_id_becomes_an_alias(
    service: IngestionService, engine: Engine, project: Project
) -> None:
    service.import_events(
        project,
        [
            ev(
                "Notification Clicked",
                distinct_id="ct-42",
                **{"$insert_id": "click", "$source": "clevertap"},
            ),
        ],
    )
    service.engage(
        [
            {
                "$token": project.token,
                "$distinct_id": "frank",
                "$set": {"$CleverTap_user_id": "ct-42"},
            },
            {
                "$token": project.token,
                "$distinct_id": "gina",
                "$set": {"$CleverTap_user_id": "ct-42"},
            },
        ]
    )
    assert owners(engine, project)["click"] == "frank"  # the first claim wins; gina's is ignored
    with read_transaction(engine) as connection:
        frank = get_profile(connection, project.id, "ct-42")
    assert frank is not None and frank.distinct_id == "frank"


def test_identified_only_with_profile_properties(
    service: IngestionService, engine: Engine, project: Project
) -> None:
    service.import_events(
        project, [ev("Visit", distinct_id="henry"), ev("Visit", distinct_id="iris")]
    )
    service.engage(
        [{"$token": project.token, "$distinct_id": "iris", "$set": {"$email": "i@x.io"}}]
    )
    with read_transaction(engine) as connection:
        henry = get_profile(connection, project.id, "henry")
        iris = get_profile(connection, project.id, "iris")
        nobody = get_profile(connection, project.id, "nobody")
    assert henry is not None and henry.identified is False
    assert iris is not None and iris.identified is True
    assert nobody is None
