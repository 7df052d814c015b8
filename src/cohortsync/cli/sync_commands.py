"""``cohortsync syncs …``: export a cohort, list, preview, run (with progress), stop, confirm,
explain; and ``cohortsync worker``, which runs syncs without the API."""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import orjson
import typer
from prometheus_client import start_http_server
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy.engine import Engine

from cohortsync.cli.context import (
    ProjectOption,
    console,
    default_project_id,
    fail,
    friendly_errors,
    migrated_engine,
    out,
    settings,
)
from cohortsync.cli.data_commands import demo_app, project_ingestion, seed_demo
from cohortsync.cli.explain_text import explanation_text
from cohortsync.clock import Clock, SystemClock
from cohortsync.demo.sync_tour import demo_done, has_profiles, run_tour
from cohortsync.domain.accounts import Role
from cohortsync.domain.errors import Conflict
from cohortsync.domain.sync_status import RunStatus
from cohortsync.domain.syncs import SyncRun
from cohortsync.keyring import Keyring
from cohortsync.metrics import PROCESS
from cohortsync.services.accounts import AccountService
from cohortsync.services.explain import Explainer
from cohortsync.services.integrations import IntegrationService
from cohortsync.services.syncs import SyncService, build_sync_service, sync_config, sync_queue
from cohortsync.sync.runner import SyncRunner

syncs_app = typer.Typer(help="Exports of cohorts to partners.", no_args_is_help=True)

SyncArgument = Annotated[int, typer.Argument(help="The sync's id (see `cohortsync syncs list`).")]


@contextmanager
def _service(progress: Progress | None = None, scheduled: bool = False) -> Iterator[SyncService]:
    with migrated_engine() as engine:
        yield _build(engine, progress, scheduled)


def _integrations(engine: Engine, clock: Clock) -> IntegrationService:
    current = settings()
    return IntegrationService(
        engine,
        Keyring.from_settings(current),
        clock,
        allow_custom_endpoints=current.allow_custom_endpoints,
        allow_private_endpoints=current.allow_private_endpoints,
    )


def _build(engine: Engine, progress: Progress | None, scheduled: bool) -> SyncService:
    current = settings()
    clock = SystemClock()
    integrations = _integrations(engine, clock)
    task = progress.add_task("sending", total=None) if progress is not None else None

    def on_batch(run: SyncRun) -> None:
        if progress is not None and task is not None:
            planned = run.counts
            total = planned.planned_add + planned.planned_update + planned.planned_remove
            done = planned.added + planned.updated + planned.removed
            done += sum(planned.rejected.values())
            progress.update(task, total=total, completed=done)

    return build_sync_service(
        current, engine, integrations, clock, scheduled=scheduled, on_batch=on_batch
    )


def _describe(run: SyncRun) -> str:
    counts = run.counts
    skipped = ", ".join(f"{n} {reason}" for reason, n in sorted(counts.skipped.items()))
    rejected = ", ".join(f"{n} {reason}" for reason, n in sorted(counts.rejected.items()))
    line = (
        f"run {run.id} {run.status}: {counts.members} members, added {counts.added}, "
        f"updated {counts.updated}, removed {counts.removed}"
    )
    if skipped:
        line += f"; skipped {skipped}"
    if rejected:
        line += f"; refused by the partner {rejected}"
    if counts.list_recreated:
        line += "\n  the partner's list was gone: it was made again and refilled whole"
    if counts.reconciled:
        line += (
            f"\n  read back from the partner: {counts.drift_missing} missing (sent again), "
            f"{counts.drift_extra} extra (taken off)"
        )
    if run.error:
        line += f"\n  error: {run.error}"
    if run.blocked_reason:
        line += (
            f"\n  blocked: {run.blocked_reason}"
            f"\n  confirm with `cohortsync syncs confirm {run.sync_id} --by <admin email>`"
        )
    return line


def _exit_code(run: SyncRun) -> int:
    return {RunStatus.FAILED: 1, RunStatus.BLOCKED: 2}.get(run.status, 0)


@syncs_app.command("export")
@friendly_errors
def syncs_export(
    cohort: Annotated[int, typer.Option(help="The cohort's id.")],
    integration: Annotated[int, typer.Option(help="The integration's id.")],
    mode: Annotated[str, typer.Option(help="one_time or dynamic.")] = "dynamic",
    interval: Annotated[
        int | None, typer.Option(help="Seconds between dynamic runs (default: the partner's).")
    ] = None,
    project: ProjectOption = None,
) -> None:
    """Start exporting a cohort to an integration (a re-export replaces the previous one)."""
    project_id = default_project_id(project)
    with _service() as service:
        sync = service.export(project_id, cohort, integration, mode, interval_seconds=interval)
    out.print(f"sync {sync.id}: cohort {cohort} → integration {integration}, {sync.mode}")


@syncs_app.command("list")
@friendly_errors
def syncs_list(project: ProjectOption = None) -> None:
    """The project's syncs, with their last run."""
    project_id = default_project_id(project)
    table = Table("id", "cohort", "integration", "mode", "status", "next run", "last run")
    with _service() as service:
        for sync in service.all(project_id):
            runs = service.runs(project_id, sync.id, limit=1)
            last = f"{runs[0].status} ({runs[0].counts.members} members)" if runs else "never"
            table.add_row(
                str(sync.id),
                str(sync.cohort_id),
                str(sync.integration_id),
                sync.mode,
                sync.status + (" (running)" if sync.running else ""),
                f"{sync.next_run_at:%Y-%m-%d %H:%M}" if sync.next_run_at else "-",
                last,
            )
    out.print(table)


@syncs_app.command("preview")
@friendly_errors
def syncs_preview(
    cohort: Annotated[int, typer.Option(help="The cohort's id.")],
    integration: Annotated[int, typer.Option(help="The integration's id.")],
    project: ProjectOption = None,
) -> None:
    """What a run would add, update, remove and skip (by reason) now; nothing is sent."""
    project_id = default_project_id(project)
    with _service() as service:
        preview = service.preview(project_id, cohort, integration).as_json()
    out.print(
        f"{preview['members']} members: add {preview['add']}, update {preview['update']}, "
        f"remove {preview['remove']}"
    )
    for reason, count in sorted(preview["skip"].items()):
        out.print(f"  skip {count}: {reason}")
    if preview["coverage"] is not None:
        out.print(f"  {preview['coverage']:.0%} of the cohort can be matched by the partner")


@syncs_app.command("run")
@friendly_errors
def syncs_run(
    sync_id: SyncArgument,
    wait_for_lease: Annotated[
        float,
        typer.Option(help="Seconds to wait while another worker holds the sync (0: fail at once)."),
    ] = 0.0,
    reconcile: Annotated[
        bool,
        typer.Option(
            "--reconcile",
            help="Read the partner's list back first and repair drift (where it can be read).",
        ),
    ] = False,
    project: ProjectOption = None,
) -> None:
    """Run a sync now, in this process, with progress; resumes an interrupted run."""
    project_id = default_project_id(project)
    deadline = time.monotonic() + wait_for_lease
    with (
        Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        ) as progress,
        _service(progress) as service,
    ):
        while True:
            try:
                run = service.run_now(project_id, sync_id, wait=True, reconcile=reconcile)
                break
            except Conflict:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.5)
    out.print(_describe(run))
    raise typer.Exit(_exit_code(run))


@syncs_app.command("confirm")
@friendly_errors
def syncs_confirm(
    sync_id: SyncArgument,
    by: Annotated[
        str, typer.Option("--by", help="Email of the admin who confirms (kept in the audit log).")
    ],
    project: ProjectOption = None,
) -> None:
    """Let a blocked run go ahead (recorded in the audit log) and run it."""
    project_id = default_project_id(project)
    with migrated_engine() as engine:
        admin = AccountService(engine, SystemClock()).user_by_email(by)
        if admin is None or admin.role_in(project_id) is not Role.ADMIN:
            raise fail(
                f"{by} is not an admin of project {project_id}: only an admin may confirm a "
                "blocked run (`cohortsync users create --role admin` makes one)"
            )
        service = _build(engine, None, scheduled=False)
        run = service.confirm(project_id, sync_id, user_id=admin.id, wait=True)
    out.print(_describe(run))
    raise typer.Exit(_exit_code(run))


@syncs_app.command("stop")
@friendly_errors
def syncs_stop(sync_id: SyncArgument, project: ProjectOption = None) -> None:
    """Stop a sync: no more runs; one in progress ends after its current batch."""
    project_id = default_project_id(project)
    with _service() as service:
        sync = service.stop(project_id, sync_id)
    out.print(f"sync {sync.id} is {sync.status}")


@syncs_app.command("explain")
@friendly_errors
def syncs_explain(
    sync_id: SyncArgument,
    distinct_id: Annotated[str, typer.Argument(help="Any id of the user.")],
    json_output: Annotated[bool, typer.Option("--json", help="Print the answer as JSON.")] = False,
    project: ProjectOption = None,
) -> None:
    """Why a user is (or is not) on the sync's partner list: condition by condition, partner
    key or skip reason, acknowledged, last rejection; the partner is not called."""
    project_id = default_project_id(project)
    with migrated_engine() as engine:
        clock = SystemClock()
        explainer = Explainer(engine, _integrations(engine, clock), clock)
        explanation = explainer.explain(project_id, sync_id, distinct_id)
    if json_output:
        body = orjson.dumps(explanation.as_json(), option=orjson.OPT_INDENT_2).decode()
        out.print(body, markup=False)
    else:
        out.print(explanation_text(explanation), markup=False)


@demo_app.command("sync")
@friendly_errors
def demo_sync(
    rounds: Annotated[int, typer.Option(help="Runs per partner, with plan changes between.")] = 3,
    users: Annotated[int, typer.Option(help="Users to seed when the project has none.")] = 2000,
    skip_if_done: Annotated[
        bool, typer.Option(help="Do nothing when this database has had the demo.")
    ] = False,
    project: ProjectOption = None,
) -> None:
    """Start the partner emulators, export a cohort to each, change who qualifies between runs,
    and check after each run that every list holds exactly the cohort's matchable members."""
    project_id = default_project_id(project)
    current = settings()
    with migrated_engine() as engine:
        target, _ = project_ingestion(engine, project_id)
        if skip_if_done and demo_done(engine, project_id):
            out.print(
                "the sync demo ran on this database already (`cohortsync demo sync` reruns it)"
            )
            return
        if not has_profiles(engine, project_id):
            seed_demo(engine, target, users)
        table = Table(
            "round", "partner", "status", "sent", "removed", "skipped", "on list", "exact"
        )
        converged = True
        for report in run_tour(
            engine, current, target, SystemClock(), rounds=rounds, say=console.print
        ):
            skipped = ", ".join(f"{n} {r}" for r, n in sorted(report.skipped.items())) or "-"
            converged &= report.exact
            table.add_row(
                str(report.round),
                report.partner,
                report.status,
                str(report.added),
                str(report.removed),
                skipped,
                f"{report.on_list} / {report.expected}",
                "yes" if report.exact else "NO",
            )
        out.print(table)
    if not converged:
        raise fail("a list did not match its cohort; see the table above")
    out.print("every list matched its cohort after every run; the demo's syncs are now stopped")


def worker(
    concurrency: Annotated[
        int | None,
        typer.Option(
            min=1, help="Runs at once in this worker (default: COHORTSYNC_SYNC_PARALLEL_RUNS)."
        ),
    ] = None,
    metrics_port: Annotated[
        int | None,
        typer.Option(help="Serve this worker's Prometheus counters on 127.0.0.1:PORT/metrics."),
    ] = None,
) -> None:
    """Run due syncs until stopped (SIGTERM or Ctrl-C): on PostgreSQL a worker of the job queue
    (start as many as you like, on any machines); on SQLite the scheduler, without the API."""
    if metrics_port is not None:
        start_http_server(metrics_port, addr="127.0.0.1", registry=PROCESS)
    current = settings()
    runs = concurrency or current.sync_parallel_runs
    with migrated_engine() as engine:
        if engine.dialect.name == "postgresql":
            _queue_worker(engine, runs)
        else:
            _scheduler_worker(engine, runs)


def _queue_worker(engine: Engine, runs: int) -> None:
    current = settings()
    clock = SystemClock()
    runner = SyncRunner(engine, _integrations(engine, clock), clock, sync_config(current))
    queue = sync_queue(current, engine, runner, clock)
    console.print(
        f"worker taking sync jobs from the PostgreSQL queue, {runs} at once; SIGTERM or Ctrl-C "
        f"stops it (runs still going after {current.worker_grace_seconds:g} s stop at their next "
        "checkpoint, for another worker to resume)"
    )
    asyncio.run(queue.work(runs))  # procrastinate handles SIGINT and SIGTERM
    console.print("worker stopped")


def _scheduler_worker(engine: Engine, runs: int) -> None:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    current = settings().model_copy(update={"sync_parallel_runs": runs})
    clock = SystemClock()
    service = build_sync_service(
        current, engine, _integrations(engine, clock), clock, scheduled=True
    )
    if service.dispatch is None:
        raise fail("the scheduler could not start")
    service.dispatch.start()
    console.print(
        f"worker running due syncs, {runs} at once; SIGTERM or Ctrl-C stops it after "
        "the current batches"
    )
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        service.close()
    console.print("worker stopped")
