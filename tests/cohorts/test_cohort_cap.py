"""Issue 15 red-team finding 8: a member could slow every write with many cohorts, since each
create or update parsed every cohort of the project inside the write transaction. A project
now holds at most ``max_cohorts_per_project`` cohorts (409 beyond), and the checks run on a
snapshot read before the write, which only confirms that the cohorts did not change."""

from __future__ import annotations

import pytest
from pydantic import SecretStr
from sqlalchemy.engine import Connection, Engine

from cohortsync.app import create_app
from cohortsync.clock import FrozenClock
from cohortsync.domain.accounts import Project
from cohortsync.domain.errors import Conflict, status_for
from cohortsync.services.cohort_snapshot import CohortSnapshot, write_checked
from cohortsync.services.cohorts import CohortService
from cohortsync.settings import Settings
from tests.conftest import TEST_KEY
from tests.helpers import admin_token
from tests.web.conftest import in_process

PRO = {"property": "plan", "op": "equals", "value": "pro"}


def test_a_project_holds_at_most_the_configured_number_of_cohorts(
    engine: Engine, clock: FrozenClock, project: Project
) -> None:
    assert Settings.model_fields["max_cohorts_per_project"].default == 1000
    service = CohortService(engine, clock, max_cohorts=3)
    first = service.create(project.id, "one", PRO)
    service.create(project.id, "two", {"in_cohort": first.id})
    third = service.create_static(project.id, "three", distinct_ids=["ana"])
    for static in (False, True):
        with pytest.raises(Conflict) as refused:
            if static:
                service.create_static(project.id, "four", distinct_ids=["ana"])
            else:
                service.create(project.id, "four", PRO)
        assert status_for(refused.value) == 409
        assert "at most 3 cohorts" in refused.value.message
        assert "COHORTSYNC_MAX_COHORTS_PER_PROJECT" in refused.value.message
    service.update(project.id, first.id, definition={"not": PRO})  # changes are not capped
    service.delete(project.id, third.id)
    service.create(project.id, "four", PRO)  # room again
    assert len(service.list(project.id)) == 3


def test_a_change_made_while_the_checks_ran_is_checked_again(
    engine: Engine, clock: FrozenClock, project: Project
) -> None:
    service = CohortService(engine, clock)
    seen: list[int] = []

    def check(snapshot: CohortSnapshot) -> None:
        seen.append(len(snapshot.cohorts))
        if len(seen) == 1:  # another person adds a cohort between the read and the write
            service.create(project.id, "meanwhile", PRO)

    def write(_: Connection, snapshot: CohortSnapshot) -> int:
        return len(snapshot.cohorts)

    assert write_checked(engine, project.id, check, write) == 1
    assert seen == [0, 1]


def test_the_setting_caps_the_served_api(
    engine: Engine, database_url: str, project: Project
) -> None:
    settings = Settings(
        database_url=database_url,
        secret_key=SecretStr(TEST_KEY),
        max_cohorts_per_project=1,
        scheduler=False,
    )
    app = create_app(settings, engine=engine)
    headers = {"Authorization": f"Bearer {admin_token(engine, project.id)}"}
    url = f"/api/v1/projects/{project.id}/cohorts"
    answers = [
        in_process(app, "POST", url, json={"name": name, "definition": PRO}, headers=headers)
        for name in ("one", "two")
    ]
    assert [a.status_code for a in answers] == [201, 409]
