"""The ``cohortsync`` command line, run as a real process against a real database."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest
import sqlalchemy as sa

from cohortsync.domain.accounts import Role
from cohortsync.storage.database import create_engine, read_transaction
from cohortsync.storage.tables import events, identities, import_checkpoints, profiles
from tests.helpers import accounts


def run(
    db: str, *args: str, check: bool = True, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COHORTSYNC_DATABASE_URL": db, "COLUMNS": "200"}
    result = subprocess.run(
        [sys.executable, "-m", "cohortsync", *args],
        check=False,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if check:
        assert result.returncode == 0, result.stdout + result.stderr
    return result


@pytest.fixture
def db(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    run(url, "migrate")
    return url


def test_commands_on_an_empty_database_say_to_migrate(tmp_path: Path) -> None:
    result = run(f"sqlite:///{tmp_path / 'new.db'}", "projects", "show", check=False)
    assert result.returncode == 1
    assert "run `cohortsync migrate` first" in result.stderr


def test_people_tokens_and_project_secret(db: str) -> None:
    email = ["--email", "Ops@Example.com"]
    created = run(
        db, "users", "create", *email, "--role", "admin", "--password-stdin", stdin="s3cret-pass\n"
    )
    assert "ops@example.com is admin of project 1" in created.stdout
    assert "s3cret-pass" not in created.stdout + created.stderr
    token = run(db, "tokens", "create", "--email", "ops@example.com").stdout.strip()
    engine = create_engine(db)
    user = accounts(engine).user_for_token(token)
    assert user is not None and user.role_in(1) is Role.ADMIN
    assert accounts(engine).login("ops@example.com", "s3cret-pass")

    first = run(db, "projects", "show").stdout
    second = run(db, "projects", "show").stdout
    assert "API secret:      csa_" in first
    assert "csa_" not in second and "already shown" in second
    short = run(
        db, "users", "create", "--email", "x@y.z", "--password-stdin", check=False, stdin="short"
    )
    assert short.returncode == 1 and "at least 8 characters" in short.stderr
    missing = run(db, "tokens", "create", "--email", "nobody@y.z", check=False)
    assert missing.returncode == 1 and "no user with email" in missing.stderr


def _events_file(path: Path, count: int, bad_every: int = 0) -> Path:
    with path.open("wb") as handle:
        for i in range(count):
            if bad_every and i % bad_every == bad_every - 1:
                handle.write(b'{"event": "Broken", "properties": {"distinct_id": "null"}}\n')
                continue
            record = {
                "event": "Imported",
                "properties": {
                    "distinct_id": f"u{i % 50}",
                    "time": 1_700_000_000 + i,
                    "$insert_id": f"f{i}",
                },
            }
            handle.write(orjson.dumps(record) + b"\n")
    return path


def test_import_reports_bad_lines_and_keeps_the_good_ones(db: str, tmp_path: Path) -> None:
    path = _events_file(tmp_path / "events.ndjson", 100, bad_every=25)
    result = run(db, "import", "events", str(path), check=False)
    assert result.returncode == 1
    assert "stored 96 events records" in result.stdout
    assert "4 records were rejected" in result.stderr
    assert "line 25: 'properties.distinct_id' is the reserved placeholder 'null'" in result.stderr
    rejected = (tmp_path / "events.ndjson.rejected.ndjson").read_bytes().splitlines()
    assert [orjson.loads(r)["line"] for r in rejected] == [25, 50, 75, 100]
    again = run(db, "import", "events", str(path))
    assert "already imported completely" in again.stdout
    with read_transaction(create_engine(db)) as connection:
        assert connection.execute(sa.select(sa.func.count()).select_from(events)).scalar() == 96


def test_import_csv_events_and_profiles(db: str, tmp_path: Path) -> None:
    (tmp_path / "e.csv").write_text(
        "event,distinct_id,time,$insert_id,amount,coupon\n"
        "Purchase,007,1700000000,p1,19.5,\n"
        'Purchase,008,1700000100,p2,5,"SAVE,10"\n'
    )
    (tmp_path / "p.csv").write_text("distinct_id,$email,plan,seats\n007,a@b.c,pro,3\n")
    run(db, "import", "events", str(tmp_path / "e.csv"))
    run(db, "import", "profiles", str(tmp_path / "p.csv"))
    with read_transaction(create_engine(db)) as connection:
        rows = connection.execute(
            sa.select(events.c.distinct_id, events.c.properties).order_by(events.c.time)
        ).all()
        stored = connection.execute(sa.select(profiles.c.distinct_id, profiles.c.properties)).all()
    assert [(r.distinct_id, r.properties) for r in rows] == [
        ("007", {"amount": 19.5}),
        ("008", {"amount": 5, "coupon": "SAVE,10"}),
    ]
    assert [(r.distinct_id, r.properties) for r in stored] == [
        ("007", {"$email": "a@b.c", "plan": "pro", "seats": 3})
    ]


def test_import_resumes_after_a_kill_and_applies_nothing_twice(db: str, tmp_path: Path) -> None:
    path = tmp_path / "adds.ndjson"
    users, rounds = 100, 600  # 60,000 $add updates in 30 batches
    with path.open("wb") as handle:
        for r in range(rounds):
            for u in range(users):
                handle.write(
                    orjson.dumps({"$distinct_id": f"u{u}", "$add": {"n": 1, "r": r}}) + b"\n"
                )
    env = {**os.environ, "COHORTSYNC_DATABASE_URL": db}
    engine = create_engine(db)
    process = subprocess.Popen(
        [sys.executable, "-m", "cohortsync", "import", "profiles", str(path)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    position = 0
    while time.monotonic() < deadline and position == 0:
        time.sleep(0.05)
        with read_transaction(engine) as connection:
            position = connection.execute(sa.select(import_checkpoints.c.position)).scalar() or 0
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert 0 < position < path.stat().st_size, "the kill should land mid-import"
    resumed = run(db, "import", "profiles", str(path))
    assert "resumed at byte" in resumed.stdout
    with read_transaction(engine) as connection:
        totals = {r.distinct_id: r.properties for r in connection.execute(sa.select(profiles))}
    assert len(totals) == users
    assert {p["n"] for p in totals.values()} == {rounds}
    assert {p["r"] for p in totals.values()} == {sum(range(rounds))}


def test_demo_seed_makes_a_realistic_dataset(db: str) -> None:
    result = run(db, "demo", "seed", "--users", "300", "--events-per-user", "8")
    assert "seeded project 1" in result.stdout
    with read_transaction(create_engine(db)) as connection:
        people = connection.execute(sa.select(profiles.c.properties)).scalars().all()
        names = set(connection.execute(sa.select(events.c.event).distinct()).scalars())
        merged = connection.execute(sa.select(sa.func.count()).select_from(identities)).scalar()
        anonymous_events = connection.execute(
            sa.select(sa.func.count())
            .select_from(events)
            .where(events.c.distinct_id.like("$device:%"))
        ).scalar()
    assert 200 < len(people) < 300  # some users stay anonymous
    assert sum("$email" in p for p in people) > 0.8 * len(people)
    assert {"Sign Up", "Purchase", "App Open"} <= names
    assert merged and anonymous_events


def test_cohort_commands(db: str, tmp_path: Path) -> None:
    run(db, "demo", "seed", "--users", "200", "--events-per-user", "6")
    definition = tmp_path / "buyers.json"
    definition.write_text(
        '{"all": [{"property": "plan", "op": "in", "value": ["pro", "enterprise"]},'
        ' {"event": "Purchase", "within": {"last": 90, "unit": "day"}}]}'
    )
    created = run(db, "cohorts", "create", "--name", "Paying buyers", "--file", str(definition))
    assert "created cohort 1 'Paying buyers'" in created.stdout
    count = int(run(db, "cohorts", "count", "1").stdout)
    assert count > 0
    listed = run(db, "cohorts", "list", "--counts").stdout
    assert "Paying buyers" in listed and f"{count:,}" in listed
    page = run(db, "cohorts", "members", "1", "--limit", "5", "--properties", "plan")
    lines = [orjson.loads(line) for line in page.stdout.splitlines()]
    assert len(lines) == min(5, count)
    assert all(m["properties"]["plan"] in ("pro", "enterprise") for m in lines)
    assert f"{count} members" in page.stderr
    bad = tmp_path / "bad.json"
    bad.write_text('{"event": "Purchase", "within": {"last": 2, "unit": "year"}}')
    refused = run(db, "cohorts", "create", "--name", "x", "--file", str(bad), check=False)
    assert refused.returncode == 1
    assert "$.within.unit: unknown unit 'year'" in refused.stderr


def test_sync_demo_and_sync_commands(db: str) -> None:
    """The demo exports a cohort to every emulator and checks each list after every run; the
    syncs it leaves behind are listed, stopped, and refuse to run."""
    demo = run(db, "demo", "sync", "--users", "300", "--rounds", "2")
    assert "every list matched its cohort after every run" in demo.stdout
    for partner in ("iterable", "clevertap", "xtremepush"):
        assert f"{partner}: " in demo.stderr and "campaign events came back" in demo.stderr
    assert "users reached only by outreach, not counted: clevertap" in demo.stderr
    assert orjson.loads(run(db, "mtu", "--json").stdout)["exempt_events"] > 0
    again = run(db, "demo", "sync", "--skip-if-done")
    assert "ran on this database already" in again.stdout
    listed = run(db, "syncs", "list")
    assert listed.stdout.count("stopped") == 4
    refused = run(db, "syncs", "run", "1", check=False)
    assert refused.returncode == 1
    assert "sync 1 is stopped; export the cohort again" in refused.stderr
    preview = run(db, "syncs", "preview", "--cohort", "1", "--integration", "1", check=False)
    assert preview.returncode == 1 and "disconnected" in preview.stderr


def test_mtu_report_and_exemptions(db: str, tmp_path: Path) -> None:
    november = 1_794_268_800  # 2026-11-10, in seconds
    sent = [("emailSend", "a", "iterable"), ("emailOpen", "b", "iterable"), ("Purchase", "c", None)]
    lines = [
        {
            "event": name,
            "properties": {
                "distinct_id": user,
                "time": november + 600,
                "$insert_id": f"m{i}",
                **({"$source": source} if source else {}),
            },
        }
        for i, (name, user, source) in enumerate(sent)
    ]
    path = tmp_path / "mtu.ndjson"
    path.write_bytes(b"\n".join(orjson.dumps(line) for line in lines))
    run(db, "import", "events", str(path))
    report = run(db, "mtu", "--month", "2026-11")
    assert "MTU 2026-11 (project 1): 2" in report.stdout
    assert "emailSend" in report.stdout
    assert "users iterable reached only through exempt events: 1" in report.stdout
    as_json = orjson.loads(run(db, "mtu", "--month", "2026-11", "--json").stdout)
    assert as_json["mtu"] == 2 and as_json["exempt"] == {"iterable": {"emailSend": 1}}
    bad = run(db, "mtu", "--month", "11/2026", check=False)
    assert bad.returncode == 1 and "YYYY-MM" in bad.stderr
    run(db, "mtu", "exemptions", "remove", "iterable", "emailSend")
    assert orjson.loads(run(db, "mtu", "--month", "2026-11", "--json").stdout)["mtu"] == 3
    missing = run(db, "mtu", "exemptions", "remove", "iterable", "emailSend", check=False)
    assert missing.returncode == 1 and "is not exempt" in missing.stderr
    run(db, "mtu", "exemptions", "add", "iterable", "emailSend")
    assert "emailSend" in run(db, "mtu", "exemptions", "list").stdout


def test_only_a_named_admin_may_confirm_a_blocked_run(db: str) -> None:
    password = "a long password"
    run(db, "users", "create", "--email", "ana@example.com", "--password-stdin", stdin=password)
    for who in ("nobody@example.com", "ana@example.com"):
        refused = run(db, "syncs", "confirm", "1", "--by", who, check=False)
        assert refused.returncode == 1, refused.stdout
        assert f"{who} is not an admin of project 1" in refused.stderr
    root = ["--email", "root@example.com", "--role", "admin", "--password-stdin"]
    run(db, "users", "create", *root, stdin=password)
    no_sync = run(db, "syncs", "confirm", "1", "--by", "ROOT@example.com", check=False)
    assert no_sync.returncode == 1 and "sync 1" in no_sync.stderr  # past the admin check
    missing = run(db, "syncs", "confirm", "1", check=False)
    assert missing.returncode == 2 and "--by" in missing.stderr
