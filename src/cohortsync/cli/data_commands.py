"""``cohortsync import …`` and ``cohortsync demo seed``: bulk data in, with a progress bar."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import orjson
import typer
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
)
from sqlalchemy.engine import Engine

from cohortsync.cli.context import (
    ProjectOption,
    console,
    fail,
    friendly_errors,
    migrated_engine,
    out,
)
from cohortsync.clock import SystemClock, now_ms
from cohortsync.demo.dataset import DemoConfig, generate
from cohortsync.domain.accounts import Project
from cohortsync.services.file_import import ImportKind, import_file
from cohortsync.services.ingestion import IngestionService
from cohortsync.services.projects import ProjectService

import_app = typer.Typer(help="Import NDJSON or CSV files (resumable).", no_args_is_help=True)
demo_app = typer.Typer(help="Demo data.", no_args_is_help=True)


def project_ingestion(engine: Engine, project: int | None) -> tuple[Project, IngestionService]:
    """The target project (the first one by default) and a service that writes into it."""
    projects = ProjectService(engine, SystemClock())
    target = projects.ensure_default()[0] if project is None else projects.get(project)
    return target, IngestionService(engine, SystemClock())


def _run_import(path: Path, kind: ImportKind, project: int | None) -> None:
    if not path.is_file():
        raise fail(f"{path} is not a file")
    if path.suffix.lower() not in (".ndjson", ".jsonl", ".json", ".csv"):
        raise fail(f"{path.name}: expected a .ndjson, .jsonl or .csv file")
    with migrated_engine() as engine:
        target, service = project_ingestion(engine, project)
        total = path.stat().st_size
        with Progress(
            TextColumn(f"importing {kind.value} from {path.name}"),
            BarColumn(),
            DownloadColumn(),
            TextColumn("{task.fields[stored]} stored"),
            TimeRemainingColumn(),
            console=console,
        ) as progress:
            task = progress.add_task("import", total=total, stored=0)
            report = import_file(
                service,
                target,
                path,
                kind,
                progress=lambda done, stored: progress.update(task, completed=done, stored=stored),
            )
    if report.already_done:
        out.print(f"{path.name} was already imported completely; nothing to do")
        return
    if report.resumed_at:
        out.print(f"resumed at byte {report.resumed_at} (an earlier run was interrupted)")
    out.print(f"stored {report.stored} {kind.value} records into project {target.id}")
    if report.rejected:
        rejects = path.with_name(path.name + ".rejected.ndjson")
        with rejects.open("wb") as handle:
            for line, failed in report.rejected:
                handle.write(orjson.dumps({"line": line, **failed.as_json()}) + b"\n")
        for line, failed in report.rejected[:10]:
            console.print(f"  line {line}: {failed.message}")
        raise fail(
            f"{len(report.rejected)} records were rejected (listed in {rejects}); "
            "the valid ones were stored. Fix them and import that file.",
        )


@import_app.command("events")
@friendly_errors
def import_events(
    path: Annotated[
        Path, typer.Argument(help="NDJSON (one event a line) or CSV (event, distinct_id, time, …).")
    ],
    project: ProjectOption = None,
) -> None:
    """Import events; re-running after a crash continues where it stopped."""
    _run_import(path, ImportKind.EVENTS, project)


@import_app.command("profiles")
@friendly_errors
def import_profiles(
    path: Annotated[
        Path, typer.Argument(help="NDJSON of /engage updates, or CSV with distinct_id.")
    ],
    project: ProjectOption = None,
) -> None:
    """Import profile updates; re-running after a crash continues where it stopped."""
    _run_import(path, ImportKind.PROFILES, project)


@demo_app.command("seed")
@friendly_errors
def demo_seed(
    users: Annotated[int, typer.Option(help="How many users.")] = 1000,
    events_per_user: Annotated[int, typer.Option(help="Average events per user.")] = 10,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 7,
    project: ProjectOption = None,
) -> None:
    """Generate a realistic dataset (sign-ups, sessions, purchases, plans, merged identities)."""
    if users < 1:
        raise fail("--users must be at least 1")
    with migrated_engine() as engine:
        target, _ = project_ingestion(engine, project)
        stored = seed_demo(engine, target, users, events_per_user, seed)
    out.print(
        f"seeded project {target.id}: {stored['profiles']} profiles, {stored['events']} events"
    )


def seed_demo(
    engine: Engine, target: Project, users: int, events_per_user: int = 10, seed: int = 7
) -> dict[str, int]:
    """Store a generated dataset in ``target``, with a progress bar; returns what was stored."""
    config = DemoConfig(users=users, events_per_user=events_per_user, seed=seed)
    service = IngestionService(engine, SystemClock())
    stored = {"events": 0, "profiles": 0}
    with Progress(
        TextColumn("seeding demo data"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("records"),
        console=console,
    ) as progress:
        task = progress.add_task("seed", total=users * (events_per_user + 1))
        for kind, batch in generate(config, now_ms(SystemClock())):
            if kind == "events":
                result = service.import_events(target, batch)
            else:
                result = service.import_profiles(target, batch)
            stored[kind] += result.imported
            progress.advance(task, len(batch))
    return stored
