"""The web UI over plain HTTP (no browser): malformed requests, sessions, origins, limits, and
what one project's people may see of another's."""

from __future__ import annotations

import logging

import pytest

from cohortsync.domain.accounts import Project
from tests.conftest import LiveServer
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
