"""``python -m bench``: run the benchmark suites and print one table."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from bench import cohorts, ingest, partner_events, reconcile, static_cohorts, sync, workers
from bench.harness import Row, render, write_results


def main() -> None:
    """Parse options, run the chosen suites, print and save the table."""
    parser = argparse.ArgumentParser(description="cohortsync benchmarks")
    parser.add_argument("--events", type=int, default=400_000, help="events for the ingest suite")
    parser.add_argument("--repeats", type=int, default=3, help="runs per measurement")
    parser.add_argument("--users", type=int, default=1_000_000, help="users for the cohort suite")
    parser.add_argument(
        "--members",
        type=int,
        default=1_000_000,
        help="members for the sync suite's diff and memory",
    )
    parser.add_argument(
        "--throughput-members",
        type=int,
        default=100_000,
        help="members of the sync suite's unthrottled first syncs",
    )
    parser.add_argument(
        "--webhook-events",
        type=int,
        default=10_000,
        help="events per partner for the webhook ingestion measurement",
    )
    parser.add_argument(
        "--only",
        choices=[
            "ingest",
            "cohorts",
            "sync",
            "reconcile",
            "partner-events",
            "static-cohorts",
            "workers",
        ],
        default=None,
        help="run one suite only",
    )
    args = parser.parse_args()
    rows: list[Row] = []
    if args.only in (None, "ingest"):
        rows += ingest.run(args.events, args.repeats)
    if args.only in (None, "cohorts"):
        postgres = os.environ.get("COHORTSYNC_BENCH_POSTGRES_URL")
        rows += cohorts.run(args.users, args.repeats, postgres_url=postgres)
    if args.only in (None, "sync"):
        rows += sync.run(args.members, args.repeats, throughput_members=args.throughput_members)
    if args.only in (None, "reconcile"):
        rows += reconcile.run(args.members)
    if args.only in (None, "partner-events"):
        rows += partner_events.run(args.users, args.repeats, webhook_events=args.webhook_events)
    if args.only in (None, "static-cohorts"):
        postgres = os.environ.get("COHORTSYNC_BENCH_POSTGRES_URL")
        rows += static_cohorts.run(args.repeats, postgres_url=postgres)
    if args.only in (None, "workers"):
        rows += workers.run()
    table = render(rows)
    print(table)
    name = "latest.md" if args.only is None else f"latest-{args.only}.md"
    write_results(table, Path(__file__).parent / "results" / name)


if __name__ == "__main__":
    main()
