"""Issue 15 red-team findings 5 and 7.

Finding 5: members read the partner's reply text in a run's error (GET …/syncs/{id},
…/syncs/{id}/runs and the Syncs page); they now read a generic sentence, admins the full text.

Finding 7: inputs a signed-in member or admin could send that answered 500.
An event count above 2³¹ was saved and every evaluation failed on PostgreSQL (an INTEGER cast);
months such as 9999-12 or 0000-01 overflowed a datetime; a NUL in a distinct_id, a members
cursor or an audit action filter failed inside PostgreSQL; audit-log ``to=9999-12-31``
overflowed a date. Each is now a cohort that evaluates, a 400 that names the parameter, or a
404 — on both engines."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
import sqlalchemy as sa

from cohortsync.services.run_errors import MEMBER_READ_BACK_ERROR, MEMBER_RUN_ERROR
from cohortsync.storage.database import write_transaction
from cohortsync.storage.tables import sync_runs
from tests.security.conftest import PERSON, SecurityWorld

BIG = 2**31  # one more than a PostgreSQL INTEGER holds


def test_an_event_count_beyond_32_bits_evaluates(security_world: SecurityWorld) -> None:
    project = security_world.project
    definition = {"event": "e", "count": {"op": ">=", "value": BIG}}
    with security_world.client(security_world.callers["member"]) as api:
        made = api.post(
            f"/api/v1/projects/{project.id}/cohorts",
            json={"name": "Very busy", "definition": definition},
        )
        assert made.status_code == 201, made.text
        members = api.get(f"/api/v1/projects/{project.id}/cohorts/{made.json()['id']}/members")
        assert members.status_code == 200, members.text
        assert members.json()["count"] == 0
        negated = api.post(
            f"/api/v1/projects/{project.id}/cohorts",
            json={"name": "Not very busy", "definition": {"not": definition}},
        )
        assert negated.status_code == 201, negated.text
        everyone = api.get(f"/api/v1/projects/{project.id}/cohorts/{negated.json()['id']}")
        assert everyone.status_code == 200, everyone.text


# (caller, path, expected status, the word the error message must hold; None: a 404)
REFUSED: list[tuple[str, str, int, str | None]] = [
    ("member", "/api/v1/projects/{p}/mtu?month=9999-12", 400, "month"),
    ("member", "/api/v1/projects/{p}/mtu?month=0000-01", 400, "month"),
    ("member", "/api/v1/projects/{p}/mtu?month=1969-12", 400, "month"),
    ("member", "/projects/{p}/mtu?month=9999-12", 400, None),
    ("member", "/projects/{p}/mtu/chart?month=0000-01", 400, None),
    ("member", "/api/v1/projects/{p}/profiles/a%00b", 404, None),
    ("member", "/api/v1/projects/{p}/cohorts/{c}/members?cursor=%00", 400, "cursor"),
    ("admin", "/api/v1/projects/{p}/audit-log?to=9999-12-31", 400, "to"),
    ("admin", "/api/v1/projects/{p}/audit-log?from=0001-01-01", 400, "from"),
    ("admin", "/api/v1/projects/{p}/audit-log?action=%00", 400, "action"),
]


@pytest.mark.parametrize(("who", "path", "status", "word"), REFUSED)
def test_out_of_range_inputs_are_refused_not_500(
    security_world: SecurityWorld, who: str, path: str, status: int, word: str | None
) -> None:
    url = path.format(p=security_world.project.id, c=security_world.cohort_id)
    with security_world.client(security_world.callers[who]) as api:
        reply: httpx.Response = api.get(url)
    assert reply.status_code == status, reply.text
    if word is not None:
        assert word in reply.json()["error"]["message"]


def test_sane_values_still_answer(security_world: SecurityWorld) -> None:
    p = security_world.project.id
    with security_world.client() as api:
        assert api.get(f"/api/v1/projects/{p}/mtu?month=2026-01").status_code == 200
        assert api.get(f"/api/v1/projects/{p}/profiles/{PERSON}").status_code == 200
        assert api.get(f"/api/v1/projects/{p}/audit-log?to=2999-12-31").status_code == 200


PARTNER_WORDS = "the partner refused every part of the batch: INTERNAL:s3cr3t-reply"


@pytest.fixture
def failed_run(security_world: SecurityWorld) -> Iterator[int]:
    """The world's run, its error and read-back error set to the partner's words for the test."""
    run = sync_runs.c.id == security_world.run_id
    with write_transaction(security_world.engine) as connection:
        before = connection.execute(sa.select(sync_runs.c.error, sync_runs.c.counts).where(run))
        error, counts = before.one()
        failed = {**counts, "read_back_error": PARTNER_WORDS}
        connection.execute(sync_runs.update().where(run).values(error=PARTNER_WORDS, counts=failed))
    yield security_world.run_id
    with write_transaction(security_world.engine) as connection:
        connection.execute(sync_runs.update().where(run).values(error=error, counts=counts))


@pytest.mark.parametrize(("who", "sees_partner"), [("member", False), ("admin", True)])
def test_only_admins_read_the_partner_words_of_a_run(
    security_world: SecurityWorld, failed_run: int, who: str, sees_partner: bool
) -> None:
    p, sync_id = security_world.project.id, security_world.sync_id
    with security_world.client(security_world.callers[who]) as api:
        last_run = api.get(f"/api/v1/projects/{p}/syncs/{sync_id}").json()["last_run"]
        history = api.get(f"/api/v1/projects/{p}/syncs/{sync_id}/runs").json()
        page = api.get(f"/projects/{p}/syncs").text
        runs_page = api.get(f"/projects/{p}/syncs/{sync_id}/runs").text
    run = next(r for r in history if r["id"] == failed_run)
    for shown in (last_run, run):
        expected = PARTNER_WORDS if sees_partner else MEMBER_RUN_ERROR
        assert shown["error"] == expected
        read_back = shown["counts"]["read_back_error"]
        assert read_back == (PARTNER_WORDS if sees_partner else MEMBER_READ_BACK_ERROR)
    for html in (page, runs_page):
        assert ("s3cr3t-reply" in html) is sees_partner
