"""Key rotation while the service runs (issue 15, finding 9): a running server follows its key
file, so a rotation neither breaks syncs nor leaves values sealed with a retired key."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio.to_thread
import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from starlette.types import ASGIApp, Receive, Scope, Send
from typer.testing import CliRunner

from cohortsync.app import create_app
from cohortsync.cli.main import app as cli
from cohortsync.clock import FrozenClock, SystemClock
from cohortsync.domain.accounts import Project
from cohortsync.keyring import (
    Keyring,
    KeyringError,
    generate_key,
    read_key_file,
    write_key_file,
)
from cohortsync.sandbox.fleet import EMULATORS
from cohortsync.sandbox.server import RunningServer, start
from cohortsync.services import webhook_secrets
from cohortsync.services.integrations import IntegrationService
from cohortsync.services.key_rotation import KeyRotation
from cohortsync.settings import Settings, load_settings
from cohortsync.storage.database import read_transaction
from cohortsync.storage.tables import audit_log, integrations
from tests.helpers import admin_token
from tests.sync.test_api import create_cohort, export, run_now, syncs_url, wait_for

PRO = {"property": "plan", "op": "equals", "value": "pro"}
SUBSCRIBE = "/api/lists/subscribe"  # where the partner takes a batch of members


@dataclass
class Hold:
    """Where the gate holds a request: armed, it holds the next request to ``path``, sets
    ``reached`` and waits for ``release``."""

    path: str
    armed: bool = False
    reached: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)


class Gate:
    """ASGI middleware of the partner emulator that holds a request as :class:`Hold` says, so
    a sync is known to be in the middle of its run while the test acts."""

    def __init__(self, app: ASGIApp, hold: Hold) -> None:
        self.app = app
        self.hold = hold

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        hold = self.hold
        if scope["type"] == "http" and scope["path"] == hold.path and hold.armed:
            hold.armed = False
            hold.reached.set()
            await anyio.to_thread.run_sync(lambda: hold.release.wait(30))
        await self.app(scope, receive, send)


@dataclass
class Partner:
    """The Iterable emulator behind a gate."""

    server: RunningServer
    credentials: dict[str, str]
    hold: Hold

    def integration(self) -> dict[str, Any]:
        return {
            "type": "iterable",
            "credentials": dict(self.credentials),
            "settings": {"base_url": self.server.url},
        }


@pytest.fixture
def partner() -> Iterator[Partner]:
    emulator = EMULATORS["iterable"]
    state = emulator.state()
    app = emulator.app(state)
    hold = Hold(SUBSCRIBE)
    app.add_middleware(Gate, hold=hold)
    server = start(app)
    yield Partner(server, dict(state.credentials), hold)
    hold.release.set()
    server.stop()


def pro(user: str) -> dict[str, str]:
    """A pro user's profile, with the email Iterable knows people by."""
    return {"plan": "pro", "$email": f"{user}@example.com"}


def set_profiles(url: str, project: Project, profiles: dict[str, dict[str, str]]) -> None:
    """``$set`` each user's properties through /engage."""
    updates = [
        {"$token": project.token, "$distinct_id": user, "$set": props}
        for user, props in profiles.items()
    ]
    reply = httpx.post(f"{url}/engage?verbose=1", json=updates)
    assert reply.status_code == 200 and reply.json()["status"] == 1, reply.text


@dataclass
class KeyFileServer:
    """The app serving on loopback with its keys in a key file (not the environment)."""

    url: str
    key_file: Path
    engine: Engine

    def client(self, token: str) -> httpx.Client:
        return httpx.Client(
            base_url=self.url, timeout=30, headers={"Authorization": f"Bearer {token}"}
        )


@pytest.fixture
def key_file_server(engine: Engine, database_url: str, tmp_path: Path) -> Iterator[KeyFileServer]:
    key_file = tmp_path / "keys" / "cohortsync.key"
    settings = Settings.model_validate(
        {
            "database_url": database_url,
            "secret_key_file": str(key_file),
            "allow_custom_endpoints": True,
            "allow_private_endpoints": True,  # the emulator is on loopback
        }
    )
    app = create_app(settings, engine=engine, clock=FrozenClock(SystemClock().now()))
    server = start(app)
    yield KeyFileServer(server.url, key_file, engine)
    server.stop()


def integration_service(engine: Engine, keyring: Keyring) -> IntegrationService:
    """The integrations of ``engine`` as a process with ``keyring`` sees them (partners on
    loopback allowed)."""
    return IntegrationService(
        engine,
        keyring,
        SystemClock(),
        allow_custom_endpoints=True,
        allow_private_endpoints=True,
    )


def sealed_credentials(engine: Engine, integration_id: int) -> str:
    with read_transaction(engine) as connection:
        query = sa.select(integrations.c.credentials).where(integrations.c.id == integration_id)
        return str(connection.execute(query).scalar_one())


def test_rotating_while_a_sync_runs_breaks_nothing(
    key_file_server: KeyFileServer, project: Project, partner: Partner
) -> None:
    live = key_file_server
    (old_key,) = read_key_file(live.key_file)  # made by the server on its first start
    api = live.client(admin_token(live.engine, project.id))
    set_profiles(live.url, project, {f"u{n}": pro(f"u{n}") for n in range(3)})
    connected = api.post(
        f"/api/v1/projects/{project.id}/integrations", json=partner.integration()
    ).json()
    assert connected["status"] == "connected", connected
    cohort_id = create_cohort(api, project, "Pro", PRO)
    sync = export(api, project, cohort_id, connected["id"], "dynamic")

    partner.hold.armed = True
    started = api.post(syncs_url(project, f"/{sync['id']}/run"))
    assert started.status_code == 202, started.text
    assert partner.hold.reached.wait(30), "the run never sent its batch"
    # the run is waiting on the partner: rotate now, as `cohortsync keys rotate --retire-old`
    rotation = KeyRotation(live.engine, SystemClock()).rotate_file(live.key_file, retire_old=True)
    partner.hold.release.set()
    assert rotation.resealed == 1 and rotation.stale == 0
    (new_key,) = read_key_file(live.key_file)
    assert new_key != old_key

    assert wait_for(api, project, sync["id"], started.json()["id"])["status"] == "succeeded"
    # the next run opens the credentials the rotation re-sealed with a key the server had not
    # read when it started
    set_profiles(live.url, project, {"u9": pro("u9")})
    later = run_now(api, project, sync["id"])
    assert later["status"] == "succeeded", later["error"]
    assert later["counts"]["added"] == 1

    # connected after the rotation: sealed with the new key, so it opens after a restart with
    # only the new key (a fresh keyring from the file)
    after = api.post(f"/api/v1/projects/{project.id}/integrations", json=partner.integration())
    assert after.json()["status"] == "connected", after.text
    restarted = Keyring.from_file(live.key_file)
    assert restarted.key_count == 1
    new_id = after.json()["id"]
    assert restarted.open(sealed_credentials(live.engine, new_id)) == partner.credentials
    with pytest.raises(KeyringError):
        Keyring([old_key]).open(sealed_credentials(live.engine, new_id))
    with read_transaction(live.engine) as connection:
        secrets = webhook_secrets.load(connection, restarted, new_id)  # its webhook secret too
    assert secrets is not None and secrets.current.startswith(webhook_secrets.PREFIX)
    service = integration_service(live.engine, restarted)
    destination = service.destination(project.id, connected["id"])
    destination.check()  # the partner accepts what the fresh keyring opens
    destination.close()


def test_a_keyring_follows_its_key_file(tmp_path: Path) -> None:
    path = tmp_path / "cohortsync.key"
    first, second, third = generate_key(), generate_key(), generate_key()
    write_key_file(path, [first])
    running = Keyring.from_file(path)  # a server that started before the rotations
    before = running.seal({"api_key": "before"})

    write_key_file(path, [second, first])  # another process rotates: the new key first
    during = running.seal({"api_key": "during"})
    assert Keyring([second]).open(during) == {"api_key": "during"}  # sealed with the new key
    assert running.open(before) == {"api_key": "before"}

    other = Keyring([third, second, first])  # a process that already has a later key
    write_key_file(path, [third, second, first])
    assert running.open(other.seal({"api_key": "later"})) == {"api_key": "later"}

    write_key_file(path, [third])  # the older keys retired
    assert running.key_count == 1
    assert Keyring([third]).open(running.seal({"api_key": "after"})) == {"api_key": "after"}
    with pytest.raises(KeyringError):
        running.open(before)  # sealed with a retired key, and never re-sealed


def test_a_broken_key_file_keeps_the_keys_in_memory(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "cohortsync.key"
    good = generate_key()
    write_key_file(path, [good])
    running = Keyring.from_file(path)
    sealed = running.seal({"api_key": "kept"})
    write_key_file(path, ["not-a-key", good])  # an edit by hand gone wrong
    assert running.open(sealed) == {"api_key": "kept"}
    assert Keyring([good]).open(running.seal({"api_key": "still"})) == {"api_key": "still"}
    assert [r.levelname for r in caplog.records if "cannot be used" in r.getMessage()] == [
        "ERROR"
    ]  # once for that version of the file, not at every use
    fixed = generate_key()
    write_key_file(path, [fixed, good])
    assert Keyring([fixed]).open(running.seal({"api_key": "new"})) == {"api_key": "new"}


def test_keyring_reads_a_changing_key_file_from_many_threads(tmp_path: Path) -> None:
    path = tmp_path / "cohortsync.key"
    keys = [generate_key()]
    write_key_file(path, keys)
    shared = Keyring.from_file(path)
    sealed: list[str] = []
    lock = threading.Lock()

    def work() -> None:
        for n in range(40):
            value = shared.seal({"n": str(n)})
            assert shared.open(value) == {"n": str(n)}
            with lock:
                sealed.append(value)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for _ in range(10):  # rotations while they seal and open
        keys = [generate_key(), *keys]
        write_key_file(path, keys)
    for thread in threads:
        thread.join()
    everything = Keyring(keys)
    assert len(sealed) == 160
    assert all(everything.open(value) for value in sealed)


def test_retiring_reseals_what_a_straggler_sealed_with_an_older_key(
    engine: Engine, project: Project, partner: Partner, tmp_path: Path
) -> None:
    path = tmp_path / "cohortsync.key"
    old = generate_key()
    write_key_file(path, [old])
    rotation = KeyRotation(engine, SystemClock())
    rotation.rotate_file(path)
    # a process that never read the new key (started with its own copy of the old one)
    straggler = integration_service(engine, Keyring([old]))
    body = partner.integration()
    made = straggler.connect(project.id, "iterable", body["credentials"], body["settings"])
    new_key = read_key_file(path)[0]
    with pytest.raises(KeyringError):
        Keyring([new_key]).open(sealed_credentials(engine, made.id))

    retired = rotation.retire(path)
    assert retired.resealed == 1
    assert read_key_file(path) == [new_key]
    only_new = Keyring([new_key])
    assert only_new.open(sealed_credentials(engine, made.id)) == partner.credentials
    with read_transaction(engine) as connection:
        assert webhook_secrets.load(connection, only_new, made.id) is not None
        actions = connection.execute(
            sa.select(audit_log.c.action, audit_log.c.actor, audit_log.c.project_id)
        ).all()
    assert ("keys.rotate", "cli", None) in actions
    assert ("keys.retire", "cli", None) in actions


def test_retiring_keeps_the_keys_a_stored_value_still_needs(
    engine: Engine, project: Project, partner: Partner, tmp_path: Path
) -> None:
    path = tmp_path / "cohortsync.key"
    write_key_file(path, [generate_key()])
    lost = Keyring([generate_key()])  # sealed a value, but is in no key file
    body = partner.integration()
    elsewhere = integration_service(engine, lost)
    elsewhere.connect(project.id, "iterable", body["credentials"], body["settings"])
    before = path.read_text()
    with pytest.raises(KeyringError):
        KeyRotation(engine, SystemClock()).retire(path)
    assert path.read_text() == before


@pytest.fixture
def cli_settings() -> Iterator[None]:
    """The CLI reads the settings of the environment each test gives it (not a cached copy)."""
    load_settings.cache_clear()
    yield
    load_settings.cache_clear()


@pytest.mark.usefixtures("cli_settings")
def test_keys_from_the_environment_are_not_rotated_under_a_running_server(
    engine: Engine, database_url: str, project: Project, partner: Partner
) -> None:
    current, new = generate_key(), generate_key()
    service = integration_service(engine, Keyring([current]))
    body = partner.integration()
    made = service.connect(project.id, "iterable", body["credentials"], body["settings"])
    sealed = sealed_credentials(engine, made.id)
    runner = CliRunner()
    env = {"COHORTSYNC_DATABASE_URL": database_url, "COHORTSYNC_SECRET_KEY": f"{new},{current}"}

    refused = runner.invoke(cli, ["keys", "rotate"], env=env)
    assert refused.exit_code == 1
    assert "restart" in refused.output and "--restarted" in refused.output
    assert sealed_credentials(engine, made.id) == sealed  # nothing re-sealed

    done = runner.invoke(cli, ["keys", "rotate", "--restarted"], env=env)
    assert done.exit_code == 0, done.output
    assert "re-sealed 1 integrations" in done.output
    assert Keyring([new]).open(sealed_credentials(engine, made.id)) == partner.credentials
