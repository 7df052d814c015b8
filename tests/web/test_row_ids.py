"""An id past what the databases store (PostgreSQL's INTEGER is 32-bit) or below 1, in any
page's path, is a 4xx page, never a driver's overflow answered as 500."""

from __future__ import annotations

import pytest

from cohortsync.domain.accounts import Project
from tests.web.conftest import Signed

HUGE = "9" * 25


@pytest.mark.parametrize("bad", [HUGE, str(2**31), "0", "-3"])
def test_an_id_out_of_range_in_a_page_path_is_a_4xx(
    admin_http: Signed, people: Project, bad: str
) -> None:
    base = f"/projects/{people.id}"
    csrf = {"X-CSRF-Token": admin_http.csrf}  # not htmx: errors keep their 4xx status
    reads = [
        f"/projects/{bad}/cohorts",
        f"{base}/cohorts/{bad}",
        f"{base}/cohorts/{bad}/members",
        f"{base}/syncs/{bad}/row",
    ]
    writes = [
        f"{base}/syncs/{bad}/stop",
        f"{base}/integrations/{bad}/disconnect",
        f"{base}/cohorts/{bad}/delete",
    ]
    answers = [admin_http.client.get(path) for path in reads]
    answers += [admin_http.client.post(path, headers=csrf) for path in writes]
    for answer in answers:
        assert 400 <= answer.status_code < 500, (answer.request.url, answer.status_code)
