"""``cohortsync syncs explain``, run as a real process, for a sync that ran on the emulators."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from cohortsync.clock import FrozenClock, SystemClock
from cohortsync.sandbox.fleet import RunningSandbox
from cohortsync.services.projects import ProjectService
from cohortsync.storage.database import create_engine
from tests.cli.test_cli import run
from tests.conftest import TEST_KEY
from tests.sync.world import make_world

PRO = {"property": "plan", "op": "equals", "value": "pro"}


@pytest.fixture
def synced(
    tmp_path: Path, sandboxes: dict[str, RunningSandbox], monkeypatch: pytest.MonkeyPatch
) -> tuple[str, int]:
    """A database whose Pro cohort was sent to the Xtremepush emulator (kim is pro, lee is
    not), and the sync's id; the CLI gets the key the integration was sealed with."""
    url = f"sqlite:///{tmp_path / 'explain.db'}"
    run(url, "migrate")
    monkeypatch.setenv("COHORTSYNC_SECRET_KEY", TEST_KEY)
    engine = create_engine(url)
    try:
        project, _ = ProjectService(engine, SystemClock()).ensure_default()
        world = make_world(engine, FrozenClock(SystemClock().now()), project)
        world.set_profile("kim", plan="pro")
        world.set_profile("lee", plan="free")
        service = world.service()
        sync = service.export(
            project.id, world.cohort("Pro", PRO), world.connect(sandboxes["xtremepush"]), "dynamic"
        )
        assert service.run_now(project.id, sync.id).status == "succeeded"
    finally:
        engine.dispose()
    return url, sync.id


def test_explain_says_why_in_words_and_in_json(synced: tuple[str, int]) -> None:
    db, sync_id = synced
    kim = run(db, "syncs", "explain", str(sync_id), "kim").stdout.splitlines()
    assert kim[0] == "On the list: in the cohort, identified, sent as kim, acknowledged."
    assert "in the cohort: yes (all of these must hold)" in kim
    assert '  ✓ 1. plan equals "pro": plan is "pro"' in kim
    assert "partner key:   kim" in kim and "acknowledged:  yes, as kim" in kim

    lee = orjson.loads(run(db, "syncs", "explain", str(sync_id), "lee", "--json").stdout)
    assert lee["summary"] == (
        'Not on the list: condition 1 (plan equals "pro") is not met: plan is "free".'
    )
    assert (lee["in_cohort"], lee["acknowledged"], lee["partner_key"]) == (False, False, "lee")
    assert lee["conditions"][0]["actual"] == "free"

    missing = run(db, "syncs", "explain", str(sync_id), "nobody", check=False)
    assert missing.returncode == 1
    assert "no user with distinct_id 'nobody' in project 1" in missing.stderr
    other = run(db, "syncs", "explain", "99", "kim", check=False)
    assert other.returncode == 1 and "sync 99 does not exist" in other.stderr
