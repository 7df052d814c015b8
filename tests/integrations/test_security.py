"""Partner credentials never leave the process (R-INT-4): not in responses, logs, errors or the
database; key rotation keeps every integration readable."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from cohortsync.clock import SystemClock
from cohortsync.domain.accounts import Project
from cohortsync.keyring import Keyring, KeyringError, read_key_file
from cohortsync.sandbox.fleet import RunningSandbox
from cohortsync.sandbox.server import RunningServer, start
from cohortsync.services.integrations import IntegrationService
from cohortsync.settings import Settings
from cohortsync.storage.database import read_transaction
from cohortsync.storage.tables import integrations
from tests.conftest import LiveServer
from tests.helpers import admin_token

SENTINELS = {
    "iterable": {"api_key": "SENTINEL-ITERABLE-7d1f0c9a2b"},
    "clevertap": {"account_id": "SENTINEL-CT-ACCOUNT-55e1", "passcode": "SENTINEL-CT-PASS-91ab"},
    "xtremepush": {"app_token": "SENTINEL-XP-TOKEN-3c7d"},
    "webhook": {"username": "SENTINEL-WH-USER-a0", "password": "SENTINEL-WH-PASS-77f2"},
}
ALL_SENTINELS = [v for creds in SENTINELS.values() for v in creds.values()]


@pytest.fixture
def sentinel_sandboxes(sandboxes: dict[str, RunningSandbox]) -> Iterator[dict[str, RunningSandbox]]:
    saved = {name: dict(s.state.credentials) for name, s in sandboxes.items()}
    for name, sandbox in sandboxes.items():
        sandbox.state.reset()
        sandbox.state.credentials = dict(SENTINELS[name])
    yield sandboxes
    for name, sandbox in sandboxes.items():
        sandbox.state.credentials = saved[name]


@pytest.fixture
def echoing_partner() -> Iterator[RunningServer]:
    """A careless partner that repeats the API key it was sent in its error message."""

    async def lists(request: Request) -> JSONResponse:
        key = request.headers.get("api-key", "")
        return JSONResponse({"msg": f"Invalid API key {key}", "code": "BadApiKey"}, 401)

    server = start(Starlette(routes=[Route("/api/lists", lists)]))
    yield server
    server.stop()


def database_text(engine: Engine, url: str) -> str:
    """Everything the database holds, as text (the raw files on SQLite)."""
    if url.startswith("sqlite"):
        path = Path(sa.engine.make_url(url).database or "")
        files = [path, path.with_name(path.name + "-wal")]
        return "".join(f.read_bytes().decode("latin-1") for f in files if f.exists())
    with read_transaction(engine) as connection:
        rows = connection.execute(sa.select(integrations)).all()
    return repr(rows)


def test_no_response_log_or_database_row_holds_a_secret(
    live_server: LiveServer,
    project: Project,
    database_url: str,
    sentinel_sandboxes: dict[str, RunningSandbox],
    echoing_partner: RunningServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    token = admin_token(live_server.engine, project.id)
    api = live_server.client(headers={"Authorization": f"Bearer {token}"})
    path = f"/api/v1/projects/{project.id}/integrations"
    replies: list[httpx.Response] = []
    for partner, sandbox in sentinel_sandboxes.items():
        good = api.post(path, json=sandbox.integration())
        assert good.json()["status"] == "connected", good.text
        wrong: dict[str, Any] = sandbox.integration()
        wrong["credentials"] = {k: v + "-WRONG" for k, v in wrong["credentials"].items()}
        replies += [good, api.post(path, json=wrong)]
        item = f"{path}/{good.json()['id']}"
        replies += [api.get(item), api.put(item, json={"name": f"{partner} 2"})]
    careless = {
        "type": "iterable",
        "credentials": SENTINELS["iterable"],
        "settings": {"base_url": echoing_partner.url},
    }
    echoed = api.post(path, json=careless)
    assert echoed.json()["status"] == "error"
    assert "Invalid API key ***" in echoed.json()["error"]
    replies += [echoed, api.get(path)]
    replies += [api.delete(f"{path}/{i['id']}") for i in api.get(path).json()]
    texts = [r.text for r in replies] + [r.getMessage() for r in caplog.records]
    texts.append(api.get("/openapi.json").text)
    for secret in ALL_SENTINELS:
        assert not any(secret in text for text in texts), secret
    stored = database_text(live_server.engine, database_url)
    assert stored  # the check below reads something
    for secret in ALL_SENTINELS:
        assert secret not in stored


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "cohortsync", *args]
    environment = {**os.environ, **env}
    return subprocess.run(command, check=False, env=environment, capture_output=True, text=True)


def sealed(engine: Engine) -> dict[int, str]:
    with read_transaction(engine) as connection:
        query = sa.select(integrations.c.id, integrations.c.credentials)
        return {row.id: row.credentials for row in connection.execute(query)}


def test_key_rotation_keeps_every_integration_readable(
    engine: Engine,
    database_url: str,
    project: Project,
    sandboxes: dict[str, RunningSandbox],
    tmp_path: Path,
) -> None:
    key_file = tmp_path / "keys" / "cohortsync.key"
    settings = Settings(database_url=database_url, secret_key_file=str(key_file))
    service = IntegrationService(
        engine,
        Keyring.from_settings(settings),
        SystemClock(),
        allow_custom_endpoints=True,
        allow_private_endpoints=True,
    )
    created = []
    for partner in ("iterable", "clevertap"):
        body = sandboxes[partner].integration()
        created.append(service.connect(project.id, partner, body["credentials"], body["settings"]))
    assert key_file.stat().st_mode & 0o077 == 0  # owner-only
    (old_key,) = read_key_file(key_file)
    with read_transaction(engine) as connection:
        before = dict(
            connection.execute(sa.select(integrations.c.id, integrations.c.credentials)).all()
        )
    env = {"COHORTSYNC_DATABASE_URL": database_url, "COHORTSYNC_SECRET_KEY_FILE": str(key_file)}
    rotated = run_cli("keys", "rotate", "--retire-old", env=env)
    assert rotated.returncode == 0, rotated.stderr
    assert "re-sealed 2 integrations" in rotated.stdout
    (new_key,) = read_key_file(key_file)
    assert new_key != old_key
    with read_transaction(engine) as connection:
        after = dict(
            connection.execute(sa.select(integrations.c.id, integrations.c.credentials)).all()
        )
    assert set(after) == set(before)
    fresh = IntegrationService(
        engine,
        Keyring.from_settings(settings),
        SystemClock(),
        allow_custom_endpoints=True,
        allow_private_endpoints=True,
    )
    for integration in created:
        assert after[integration.id] != before[integration.id]
        destination = fresh.destination(project.id, integration.id)
        destination.check()  # the partner accepts the decrypted credentials
        destination.close()
        with pytest.raises(KeyringError):
            Keyring([old_key]).open(after[integration.id])
