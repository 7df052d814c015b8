"""The web UI over plain HTTP (no browser): malformed requests, sessions, origins, limits, and
what one project's people may see of another's."""

from __future__ import annotations

import html
import json
import logging
import re

import pytest

from cohortsync.domain.accounts import Project
from cohortsync.services import cohorts
from cohortsync.storage.database import read_transaction
from tests.conftest import LiveServer
from tests.sync.test_api import engage
from tests.web.conftest import ADMIN, SQLITE_ONLY, Signed

pytestmark = SQLITE_ONLY

SENTINEL = "sentinel-password-" + "s" * 1100  # longer than the login form accepts


def test_malformed_requests_get_400_naming_the_fields_and_nothing_submitted_is_logged(
    live_server: LiveServer,
    people: Project,
    admin_http: Signed,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    base, csrf, client = f"/projects/{people.id}", admin_http.csrf, admin_http.client
    answers = {
        "cursor": client.get(f"{base}/cohorts/1/members"),
        "group": client.get(f"{base}/cohorts/builder/condition"),
        "cohort_id": client.get(f"{base}/cohorts/abc"),
        "mode": client.post(f"{base}/cohorts/1/export/1", data={"csrf_token": csrf}),
        "file": client.post(
            f"{base}/cohorts/static",
            data={"csrf_token": csrf, "name": SENTINEL[:200]},
            files={"other": ("x.txt", b"distinct_id\nana\n", "text/csv")},
        ),
        "no_project": client.get("/login", params={"no_project": "abc"}),
    }
    with live_server.client() as stranger:
        answers["password"] = stranger.post("/login", data={"email": ADMIN, "password": SENTINEL})
    for field, answer in answers.items():
        assert answer.status_code == 400, (field, answer.status_code)
        assert field in answer.text, field
        assert "Something went wrong" not in answer.text
        assert SENTINEL[:30] not in answer.text
    logged = "\n".join(
        record.getMessage() + str(record.exc_info) + str(record.__dict__)
        for record in caplog.records
    )
    assert SENTINEL[:30] not in logged
    assert "web request failed" not in logged


def test_the_definition_the_builder_shows_is_the_one_it_saves(
    live_server: LiveServer, people: Project, admin_http: Signed
) -> None:
    engage(live_server, people, {"ana": {"amount": 30}, "ben": {"amount": 10}})
    built = {
        "csrf_token": admin_http.csrf,
        "group": "g",
        "condition": "c",
        "c.group": "g",
        "c.kind": "property",
        "c.property": "amount",
        "c.op": "gt",
        "c.value": "20",
        "c.type": "auto",  # as the page offers it
    }
    base = f"/projects/{people.id}/cohorts"
    counted = admin_http.client.post(f"{base}/count", data=built)
    shown = re.search(r'<pre class="definition">(.*?)</pre>', counted.text, re.S)
    assert shown, counted.text
    definition = json.loads(html.unescape(shown.group(1)))
    assert definition == {"all": [{"property": "amount", "op": "gt", "value": 20}]}
    assert re.search(r'data-testid="live-count">1<', counted.text)

    saved = admin_http.client.post(base, data={**built, "name": "Big spenders"})
    assert saved.status_code == 303
    cohort_id = int(saved.headers["location"].rsplit("/", 1)[1])
    with read_transaction(live_server.engine) as connection:
        assert cohorts.get_cohort(connection, people.id, cohort_id).definition == definition
