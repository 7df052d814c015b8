"""The integrations API (R-INT-1 … R-INT-5) against the partner emulators on loopback."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from cohortsync.clock import SystemClock
from cohortsync.domain.accounts import Project, Role
from cohortsync.sandbox.fleet import EMULATORS, RunningSandbox
from cohortsync.services import integrations
from tests.conftest import LiveServer
from tests.helpers import accounts, admin_token

PARTNERS = sorted(EMULATORS)  # every registered partner with an emulator


def member_token(server: LiveServer, project: Project) -> str:
    people = accounts(server.engine)
    people.create_user("analyst@example.com", "correct horse battery", Role.MEMBER, project.id)
    return people.create_token("analyst@example.com")


@pytest.fixture
def api(live_server: LiveServer, project: Project) -> httpx.Client:
    token = admin_token(live_server.engine, project.id)
    return live_server.client(headers={"Authorization": f"Bearer {token}"})


def base(project: Project) -> str:
    return f"/api/v1/projects/{project.id}/integrations"


@pytest.mark.parametrize("partner", PARTNERS)
def test_connect_checks_the_credentials_first(
    api: httpx.Client, project: Project, sandboxes: dict[str, RunningSandbox], partner: str
) -> None:
    sandbox = sandboxes[partner]
    good = api.post(base(project), json=sandbox.integration())
    assert good.status_code == 201, good.text
    assert good.json()["status"] == "connected"
    assert "error" not in good.json()
    if partner == "webhook":  # the check speaks for this project
        sent = sandbox.state.last_parameters  # type: ignore[attr-defined]
        assert sent["mixpanel_project_id"] == str(project.id)
    body: dict[str, Any] = sandbox.integration()
    body["credentials"] = {k: f"wrong-{v}" for k, v in body["credentials"].items()}
    bad = api.post(base(project), json=body)
    assert bad.status_code == 201
    assert bad.json()["status"] == "error"
    assert "refused the credentials" in bad.json()["error"]
    listed = api.get(base(project)).json()
    assert [(i["type"], i["status"]) for i in listed] == [
        (partner, "connected"),
        (partner, "error"),
    ]
    assert all("credentials" not in i for i in listed)


def test_an_unreachable_partner_is_an_error_that_says_to_try_again(
    api: httpx.Client, project: Project
) -> None:
    body = {
        "type": "iterable",
        "credentials": {"api_key": "k" * 32},
        "settings": {"base_url": "http://127.0.0.1:9"},  # nothing listens on the discard port
    }
    reply = api.post(base(project), json=body)
    assert reply.status_code == 201
    assert reply.json()["status"] == "error"
    assert "could not be reached" in reply.json()["error"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"type": "braze", "credentials": {}}, "unknown integration type 'braze'"),
        ({"type": "iterable", "credentials": {}}, "credentials.api_key is required"),
        (
            {"type": "iterable", "credentials": {"api_key": "k", "token": "x"}},
            "credentials.token is not a Iterable credential",
        ),
        (
            {"type": "iterable", "credentials": {"api_key": "k"}, "settings": {"region": "mars"}},
            "settings.region must be one of us, eu",
        ),
        (
            {
                "type": "clevertap",
                "credentials": {"account_id": "a", "passcode": "p"},
                "settings": {"region": "eu"},
            },
            "settings.region must be one of eu1, in1, sg1, us1, aps3, mec1",
        ),
        ({"type": "webhook", "credentials": {}}, "settings.url is required"),
        (
            {"type": "webhook", "settings": {"url": "ftp://x"}},
            "settings.url must be an http:// or https:// URL",
        ),
        (
            {
                "type": "iterable",
                "credentials": {"api_key": "k"},
                "settings": {"list_name_template": "{cohort_name}_{owner}"},
            },
            "may use only {cohort_name} and {cohort_id}",
        ),
    ],
)
def test_bad_requests_say_what_is_wrong(
    api: httpx.Client, project: Project, body: dict[str, Any], message: str
) -> None:
    reply = api.post(base(project), json=body)
    assert reply.status_code == 400
    assert message in reply.json()["error"]["message"]
    assert api.get(base(project)).json() == []


def test_a_member_may_look_but_not_connect_edit_or_disconnect(
    api: httpx.Client,
    live_server: LiveServer,
    project: Project,
    sandboxes: dict[str, RunningSandbox],
) -> None:
    created = api.post(base(project), json=sandboxes["iterable"].integration()).json()
    token = member_token(live_server, project)
    member = live_server.client(headers={"Authorization": f"Bearer {token}"})
    item = f"{base(project)}/{created['id']}"
    assert member.get(base(project)).status_code == 200
    assert member.get(item).json()["status"] == "connected"
    attempts = [
        member.post(base(project), json=sandboxes["iterable"].integration()),
        member.put(item, json={"name": "renamed"}),
        member.delete(item),
    ]
    assert [r.status_code for r in attempts] == [403, 403, 403]
    assert all("only project admins" in r.json()["error"]["message"] for r in attempts)
    assert [i["name"] for i in api.get(base(project)).json()] == ["Iterable"]


def test_edit_rechecks_and_disconnect_forgets(
    api: httpx.Client, project: Project, sandboxes: dict[str, RunningSandbox]
) -> None:
    sandbox = sandboxes["xtremepush"]
    created = api.post(base(project), json=sandbox.integration()).json()
    item = f"{base(project)}/{created['id']}"
    broken = api.put(item, json={"credentials": {"app_token": "not-it"}})
    assert broken.json()["status"] == "error"
    assert "Authentication failed" in broken.json()["error"]
    fixed = api.put(item, json={"credentials": sandbox.state.credentials, "name": "XP EU"})
    assert (fixed.json()["status"], fixed.json()["name"]) == ("connected", "XP EU")
    gone = api.delete(item)
    assert gone.json()["status"] == "disconnected"
    again = api.put(item, json={"name": "back"})
    assert again.status_code == 409
    assert api.get(item).json()["status"] == "disconnected"


def test_base_url_needs_the_operators_permission(
    engine: Any, project: Project, sandboxes: dict[str, RunningSandbox], tmp_path: Any
) -> None:
    from cohortsync.domain.errors import BatchError
    from cohortsync.keyring import Keyring, generate_key
    from cohortsync.services.integrations import IntegrationService

    strict = IntegrationService(engine, Keyring([generate_key()]), SystemClock())
    body = sandboxes["iterable"].integration()
    with pytest.raises(BatchError, match="COHORTSYNC_ALLOW_CUSTOM_ENDPOINTS=1"):
        strict.connect(project.id, "iterable", body["credentials"], body["settings"])
    assert strict.list(project.id) == []


def test_disconnecting_also_drops_the_webhook_from_the_cache_at_once() -> None:
    done: list[str] = []

    class Service:
        def disconnect(self, project_id: int, integration_id: int, user_id: int | None) -> str:
            done.append(f"disconnect {project_id}/{integration_id} by {user_id}")
            return "disconnected"

    class Webhooks:
        def forget(self, integration_id: int) -> None:
            done.append(f"forget {integration_id}")

    answer: object = integrations.disconnect(Service(), Webhooks(), 3, 7, 5)  # type: ignore[arg-type]
    assert answer == "disconnected"
    assert done == ["disconnect 3/7 by 5", "forget 7"]
