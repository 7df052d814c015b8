"""``python -m bench.load`` (``make load``): load and overload against a real server.

For SQLite (and PostgreSQL when ``COHORTSYNC_TEST_POSTGRES_URL`` is set): a fresh database with a
100 k-member cohort, ``cohortsync serve`` in a child process, the webhook partner's emulator on
loopback answering each batch after ``--latency`` seconds. Locust (headless, ``--seconds``)
floods /track on one project's token far beyond the per-token limit, sends politely on another
project's token, and reads the API as an admin; a few seconds in, the cohort is exported to the
emulator and its 100 k-member run starts. Held to:

(a) ingestion beyond the limit is answered 429 with Retry-After, never left without an answer
    (timeout, reset) nor a 5xx, and the polite client on another token is not refused;
(b) the p99 of GET cohorts, GET syncs and GET runs while the sync runs is under 500 ms;
(c) every event acknowledged with a 200 is stored (read back through the export API), and the
    sync ends with the partner's list equal to the cohort.

Prints a table, writes it to bench/results/load-<date>.md, exits 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson

from bench.harness import Row, render, write_results
from bench.load.server import (
    RATE_SETTING,
    Seeded,
    fresh_database,
    rate_limit_exists,
    seed,
    serving,
    variable,
)
from cohortsync.sandbox.fleet import RunningSandbox, start_sandbox

POSTGRES_ENV = "COHORTSYNC_TEST_POSTGRES_URL"
LOCUSTFILE = Path(__file__).with_name("locustfile.py")
RESULTS = Path(__file__).resolve().parents[1] / "results"
WARM_UP_SECONDS = 5.0
P99_TARGET_MS = 500.0
MIN_READS = 10  # of each kind while the sync ran: fewer measure nothing
READS = ("GET cohorts", "GET syncs", "GET runs")
DONE = ("succeeded", "partial", "failed")


def _locust(server_url: str, seeded: Seeded, out: Path, seconds: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "COHORTSYNC_LOAD_FLOOD_TOKEN": seeded.flood_token,
        "COHORTSYNC_LOAD_POLITE_TOKEN": seeded.polite_token,
        "COHORTSYNC_LOAD_BEARER": seeded.bearer,
        "COHORTSYNC_LOAD_PROJECT": str(seeded.flood_project),
        "COHORTSYNC_LOAD_OUT": str(out),
    }
    command = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless"]
    command += ["--users", "8", "--spawn-rate", "8", "--run-time", f"{seconds}s"]
    command += ["--host", server_url, "--only-summary", "--stop-timeout", "5"]
    command += ["--loglevel", "WARNING", "--exit-code-on-error", "0"]
    return subprocess.Popen(command, env=env)


def _epoch(iso: str | None) -> float | None:
    return datetime.fromisoformat(iso).timestamp() if iso else None


def _latest_run(api: httpx.Client, seeded: Seeded, sync_id: int) -> dict[str, Any] | None:
    response = api.get(f"/api/v1/projects/{seeded.flood_project}/syncs/{sync_id}/runs")
    response.raise_for_status()
    runs: list[dict[str, Any]] = response.json()
    return runs[0] if runs else None


def _watch(api: httpx.Client, seeded: Seeded, sync_id: int, until: float) -> dict[str, Any] | None:
    """The sync's run once it ends, or as it stands at ``until`` (monotonic)."""
    run = None
    while time.monotonic() < until:
        run = _latest_run(api, seeded, sync_id)
        if run is not None and run["status"] in DONE:
            return run
        time.sleep(1)
    return run


def _stored_ids(api: httpx.Client, project_id: int) -> set[str]:
    """Every stored event's $insert_id, through the export API."""
    today = datetime.now(UTC).date()
    params = {"from": str(today - timedelta(days=1)), "to": str(today + timedelta(days=1))}
    found: set[str] = set()
    path = f"/api/v1/projects/{project_id}/events"
    with api.stream("GET", path, params=params, timeout=300) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if line.strip():
                found.add(orjson.loads(line)["properties"]["$insert_id"])
    return found


def _p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] if ordered else float("nan")


def _judge(
    suite: str,
    out: Path,
    run: dict[str, Any] | None,
    list_size: int,
    seeded: Seeded,
    stored: dict[str, set[str]],
    rate: int,
) -> list[Row]:
    summary = json.loads((out / "replies.json").read_text())
    flood: dict[str, int] = summary["replies"]["flood"]
    polite: dict[str, int] = summary["replies"]["polite"]
    rows: list[Row] = []

    def row(metric: str, value: float, target: str, met: bool, unit: str = "") -> None:
        rows.append(Row(suite, metric, value, unit, target, met))

    limited = flood.get("429", 0)
    if rate_limit_exists():
        row(f"(a) flood /track replies 429 ({rate:,} records/s)", limited, "> 0", limited > 0)
    else:
        row(
            f"(a) flood /track replies 429: this build has no {variable(RATE_SETTING)} setting",
            limited,
            "> 0",
            False,
        )
    unanswered = sum(n for status, n in flood.items() if status not in ("200", "429"))
    replies = ", ".join(f"{status}: {n}" for status, n in sorted(flood.items()))
    row(
        f"(a) flood /track: no reply (timeout, reset) or another status than 200/429 ({replies})",
        unanswered,
        "0",
        unanswered == 0,
        "requests",
    )
    missing = summary["retry_after_missing"]
    row("(a) 429 replies without Retry-After", missing, "0", missing == 0)
    refused = sum(n for status, n in polite.items() if status != "200")
    row(
        f"(a) polite client on another token: replies other than 200 (of {sum(polite.values())})",
        refused,
        "0",
        refused == 0,
    )

    started = _epoch(run["started_at"]) if run else None
    ended = (_epoch(run["finished_at"]) if run else None) or time.time()
    reads = json.loads((out / "reads.json").read_text())
    during = [r for r in reads if started is not None and started <= r[0] <= ended]
    for name in READS:
        times = [r[2] for r in during if r[1] == name]
        errors = sum(1 for r in during if r[1] == name and r[3] != 200)
        p99 = _p99(times)
        few = f", too few: at least {MIN_READS}" if len(times) < MIN_READS else ""
        row(
            f"(b) {name} p99 while the sync ran ({len(times)} reads{few}, {errors} not 200)",
            p99,
            f"< {P99_TARGET_MS:.0f} ms",
            len(times) >= MIN_READS and errors == 0 and p99 < P99_TARGET_MS,
            "ms",
        )
    status = run["status"] if run else "never started"
    exact = status == "succeeded" and list_size == seeded.members
    row(
        f"(b) the {seeded.members:,}-member sync under load: {status}, partner list "
        f"{list_size:,}; its run time",
        (ended - started) if started is not None else 0.0,
        "succeeded, list = cohort",
        exact,
        "s",
    )

    for kind in ("flood", "polite"):
        acked = {i for i in (out / f"acknowledged-{kind}.txt").read_text().split("\n") if i}
        lost = len(acked - stored[kind])
        row(
            f"(c) {kind}: acknowledged events not stored (of {len(acked):,} acknowledged, "
            f"{len(stored[kind]):,} stored)",
            lost,
            "0",
            lost == 0,
        )
    return rows


def run_once(kind: str, args: argparse.Namespace) -> list[Row]:
    """The whole scenario on one engine; the rows it measured."""
    suite = f"load {kind}"
    with tempfile.TemporaryDirectory(prefix="cohortsync-load-") as tmp:
        work = Path(tmp)
        out = work / "locust"
        with fresh_database(kind, work, os.environ.get(POSTGRES_ENV)) as url:
            began = time.monotonic()
            seeded = seed(url, args.members)
            print(f"[{kind}] seeded {args.members:,} members in {time.monotonic() - began:.0f} s")
            sandbox = start_sandbox("webhook")
            sandbox.state.faults.latency_seconds = args.latency
            try:
                with serving(url, work, args.rate, args.burst) as server:
                    rows = _scenario(suite, server.url, seeded, sandbox, out, args)
                    print(f"[{kind}] server log: {server.log.stat().st_size} bytes")
            finally:
                sandbox.server.stop()
    return rows


def _scenario(
    suite: str,
    url: str,
    seeded: Seeded,
    sandbox: RunningSandbox,
    out: Path,
    args: argparse.Namespace,
) -> list[Row]:
    headers = {"Authorization": f"Bearer {seeded.bearer}"}
    base = f"/api/v1/projects/{seeded.flood_project}"
    with httpx.Client(base_url=url, headers=headers, timeout=30) as api:
        connected = api.post(f"{base}/integrations", json=sandbox.integration())
        if connected.status_code != 201 or connected.json().get("status") != "connected":
            raise RuntimeError(f"connecting the emulator failed: {connected.text[:500]}")
        locust = _locust(url, seeded, out, args.seconds)
        try:
            time.sleep(WARM_UP_SECONDS)
            exported = api.post(
                f"{base}/syncs",
                json={
                    "cohort_id": seeded.cohort_id,
                    "integration_id": connected.json()["id"],
                    "mode": "dynamic",
                },
            )
            exported.raise_for_status()
            sync = exported.json()
            run = _watch(api, seeded, sync["id"], time.monotonic() + args.seconds + 120)
            locust.wait(timeout=args.seconds + 60)
        finally:
            if locust.poll() is None:
                locust.kill()
                locust.wait()
        name = api.get(f"{base}/syncs/{sync['id']}").json()["list_name"]
        list_size = len(sandbox.state.members(name)) if name else 0
        stored = {
            "flood": _stored_ids(api, seeded.flood_project),
            "polite": _stored_ids(api, seeded.polite_project),
        }
    return _judge(suite, out, run, list_size, seeded, stored, args.rate)


def main() -> None:
    """Run the scenario on each engine, print and save the table, exit 1 on a missed target."""
    parser = argparse.ArgumentParser(description="cohortsync load and overload")
    parser.add_argument("--seconds", type=int, default=90, help="how long locust runs")
    parser.add_argument("--members", type=int, default=100_000, help="members of the sync")
    parser.add_argument(
        "--rate", type=int, default=1_000, help="the per-token limit, records a second"
    )
    parser.add_argument("--burst", type=int, default=2_000, help="the limit's burst, records")
    parser.add_argument(
        "--latency", type=float, default=0.25, help="the partner's answer time per batch, s"
    )
    parser.add_argument("--engine", choices=["sqlite", "postgresql"], action="append")
    args = parser.parse_args()
    if importlib.util.find_spec("locust") is None:
        sys.exit("locust is not installed: it is in the dev extras; run make lock, then make load")
    kinds = args.engine or ["sqlite", *(["postgresql"] if os.environ.get(POSTGRES_ENV) else [])]
    rows: list[Row] = []
    for kind in kinds:
        rows += run_once(kind, args)
    command = "make load  # python -m bench.load " + " ".join(sys.argv[1:])
    text = (
        f"# Load and overload\n\n`{command.strip()}`: {args.seconds} s of locust (4 flood, "
        f"1 polite, 3 API readers), {args.members:,}-member sync to the webhook emulator "
        f"answering each batch after {args.latency} s, per-token limit {args.rate:,} records/s "
        f"(burst {args.burst:,}).\n\n" + render(rows)
    )
    if "postgresql" not in kinds:
        text += f"\nPostgreSQL not run: set {POSTGRES_ENV} to run it too.\n"
    print(text)
    write_results(text, RESULTS / f"load-{datetime.now(UTC):%Y-%m-%d}.md")
    sys.exit(1 if any(row.met is False for row in rows) else 0)


if __name__ == "__main__":
    main()
