"""Issue 15, finding 3: exports are the admin's. A cohort that feeds an active export (itself,
or through an ``in_cohort`` reference) is changed or deleted by an admin only; a member gets a
403 naming the exports, an admin's delete a 409 listing the exports to stop first. Every
cohort create, update and delete is in the audit log. API, pages and CLI."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from cohortsync.cli.main import app as cli
from cohortsync.settings import load_settings
from cohortsync.storage.tables import audit_log
from tests.security.conftest import ADMIN, MEMBER, SecurityWorld
from tests.sync.test_api import PRO, create_cohort, export, syncs_url

FREE = {"property": "plan", "op": "equals", "value": "free"}


def _cohorts(world: SecurityWorld, suffix: str = "") -> str:
    return f"/api/v1/projects/{world.project.id}/cohorts{suffix}"


def _sync(world: SecurityWorld, sync_id: int) -> dict[str, Any]:
    with world.client() as api:
        body: dict[str, Any] = api.get(syncs_url(world.project, f"/{sync_id}")).json()
        return body


def _definition(world: SecurityWorld, cohort_id: int) -> Any:
    with world.client() as api:
        return api.get(_cohorts(world, f"/{cohort_id}")).json()["definition"]


def _last_entry(world: SecurityWorld) -> int:
    with world.engine.connect() as connection:
        return int(connection.execute(sa.select(sa.func.max(audit_log.c.id))).scalar() or 0)


def _audited(world: SecurityWorld, cohort_id: int, after: int) -> list[tuple[str, str | None, Any]]:
    """The audit entries about ``cohort_id`` since entry ``after`` (SQLite reuses the id of
    a deleted cohort, so older entries may name another cohort)."""
    with world.engine.connect() as connection:
        rows = connection.execute(
            sa.select(audit_log.c.action, audit_log.c.actor, audit_log.c.detail)
            .where(audit_log.c.target == f"cohort:{cohort_id}", audit_log.c.id > after)
            .order_by(audit_log.c.id)
        )
        return [(r.action, r.actor, r.detail) for r in rows]


def test_a_member_may_not_change_or_delete_an_exported_cohort(
    security_world: SecurityWorld,
) -> None:
    world = security_world
    exported = world.cohort_id
    with world.client(world.callers["member"]) as member:
        redefined = member.put(_cohorts(world, f"/{exported}"), json={"definition": FREE})
        renamed = member.put(_cohorts(world, f"/{exported}"), json={"name": "Anyone"})
        deleted = member.delete(_cohorts(world, f"/{exported}"))
    for answer in (redefined, renamed, deleted):
        assert answer.status_code == 403, answer.text
        message = answer.json()["error"]["message"]
        # the export is named: its sync id, partner and integration
        assert f"sync {world.sync_id}" in message and "iterable" in message, message
        assert "only a project admin" in message
    assert _definition(world, exported) == PRO
    assert _sync(world, world.sync_id)["status"] == "active"


def test_a_cohort_feeding_an_export_through_a_reference_is_guarded_too(
    security_world: SecurityWorld,
) -> None:
    world = security_world
    with world.client() as admin:
        inner = create_cohort(admin, world.project, "Free users", FREE)
        outer = create_cohort(admin, world.project, "Free via ref", {"in_cohort": inner})
        integration = world.new_integration()
        sync = admin.post(
            syncs_url(world.project),
            json={"cohort_id": outer, "integration_id": integration, "mode": "dynamic"},
        ).json()
    with world.client(world.callers["member"]) as member:
        refused = member.put(_cohorts(world, f"/{inner}"), json={"definition": PRO})
        assert refused.status_code == 403, refused.text
        assert f"sync {sync['id']}" in refused.json()["error"]["message"]
        assert _definition(world, inner) == FREE
        # a cohort no active export reads stays any member's to change
        loose = world.new_cohort("Nobody exports me")
        assert member.put(_cohorts(world, f"/{loose}"), json={"definition": FREE}).is_success


def test_an_admin_changes_freely_and_deletes_once_the_exports_are_stopped(
    security_world: SecurityWorld,
) -> None:
    world = security_world
    after = _last_entry(world)
    cohort_id = world.new_cohort("Admin's export")
    integration = world.new_integration()
    with world.client() as admin:
        sync_id = export(admin, world.project, cohort_id, integration, "dynamic")["id"]
        changed = admin.put(
            _cohorts(world, f"/{cohort_id}"),
            json={"name": "Admin's export, v2", "definition": FREE},
        )
        assert changed.status_code == 200, changed.text
        refused = admin.delete(_cohorts(world, f"/{cohort_id}"))
        assert refused.status_code == 409, refused.text
        assert f"sync {sync_id}" in refused.json()["error"]["message"]
        assert "stop" in refused.json()["error"]["message"]
        assert admin.get(_cohorts(world, f"/{cohort_id}")).status_code == 200
        assert admin.delete(syncs_url(world.project, f"/{sync_id}")).is_success
    with world.client(world.callers["member"]) as member:
        # stopped exports no longer guard the cohort
        assert member.delete(_cohorts(world, f"/{cohort_id}")).status_code == 204
    audited = _audited(world, cohort_id, after)
    assert [(action, actor) for action, actor, _ in audited] == [
        ("cohort.create", ADMIN),
        ("cohort.update", ADMIN),
        ("cohort.delete", MEMBER),
    ]
    assert audited[0][2]["name"] == "Admin's export"
    assert audited[1][2]["name"] == "Admin's export, v2"
    assert "renamed from" in audited[1][2]["changes"]
    assert "definition changed" in audited[1][2]["changes"]
    assert audited[2][2]["name"] == "Admin's export, v2"


def test_static_cohorts_are_audited_with_their_size(security_world: SecurityWorld) -> None:
    world = security_world
    after = _last_entry(world)
    with world.client(world.callers["member"]) as member:
        made = member.post(
            _cohorts(world, "/static"), json={"name": "Two", "distinct_ids": ["ana", "ben"]}
        )
    assert made.status_code == 201, made.text
    [(action, actor, detail)] = _audited(world, made.json()["id"], after)
    assert (action, actor) == ("cohort.create", MEMBER)
    assert detail == {"name": "Two", "kind": "static", "members": 2}


def test_pages_offer_delete_only_to_whom_it_is_allowed(security_world: SecurityWorld) -> None:
    world = security_world
    loose = world.new_cohort("Loose for pages")
    page = f"/projects/{world.project.id}/cohorts"
    with world.client(world.callers["member"]) as member:
        listing = member.get(page)
        assert listing.status_code == 200, listing.text
        exported_row, loose_row = (_row(listing.text, i) for i in (world.cohort_id, loose))
        assert 'data-testid="delete-cohort"' not in exported_row
        assert "only admins may change or delete it" in exported_row
        assert 'data-testid="delete-cohort"' in loose_row
        one = member.get(f"{page}/{world.cohort_id}").text
        assert 'data-testid="delete-cohort"' not in one
        refused = member.post(f"{page}/{world.cohort_id}/delete")
        assert refused.status_code == 403
        assert f"sync {world.sync_id}" in refused.text
        assert member.post(f"{page}/{loose}/delete").status_code in (200, 303)
    with world.client() as admin:
        assert 'data-testid="delete-cohort"' in admin.get(f"{page}/{world.cohort_id}").text
        assert admin.post(f"{page}/{world.cohort_id}/delete").status_code == 409
        assert admin.get(_cohorts(world, f"/{loose}")).status_code == 404


def _row(html: str, cohort_id: int) -> str:
    """The table row of the cohorts page that links to ``cohort_id``."""
    start = html.index(f'/cohorts/{cohort_id}"')
    return html[start : html.index("</tr>", start)]


@pytest.fixture
def cli_env(
    security_world: SecurityWorld, monkeypatch: pytest.MonkeyPatch
) -> Iterator[SecurityWorld]:
    """The CLI, run in this process, pointed at the world's database."""
    url = security_world.engine.url.render_as_string(hide_password=False)
    monkeypatch.setenv("COHORTSYNC_DATABASE_URL", url)
    load_settings.cache_clear()
    yield security_world
    load_settings.cache_clear()


def test_the_cli_deletes_only_unexported_cohorts_and_is_audited_as_cli(
    cli_env: SecurityWorld,
) -> None:
    world = cli_env
    loose = world.new_cohort("Loose for the CLI")
    after = _last_entry(world)
    project = ["--project", str(world.project.id)]
    runner = CliRunner()
    refused = runner.invoke(cli, ["cohorts", "delete", str(world.cohort_id), *project])
    assert refused.exit_code == 1
    assert f"sync {world.sync_id}" in refused.output and "stop them first" in refused.output
    renamed = runner.invoke(cli, ["cohorts", "update", str(loose), "--name", "Renamed", *project])
    assert renamed.exit_code == 0, renamed.output
    deleted = runner.invoke(cli, ["cohorts", "delete", str(loose), *project])
    assert deleted.exit_code == 0, deleted.output
    assert [(a, actor) for a, actor, _ in _audited(world, loose, after)] == [
        ("cohort.update", "cli"),
        ("cohort.delete", "cli"),
    ]
