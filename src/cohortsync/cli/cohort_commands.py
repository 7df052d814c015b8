"""``cohortsync cohorts …``: list, show, count, members, create from a definition file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich.table import Table

from cohortsync.cli.context import (
    ProjectOption,
    default_project_id,
    fail,
    friendly_errors,
    migrated_engine,
    out,
    settings,
)
from cohortsync.clock import SystemClock
from cohortsync.services.cohorts import CohortService

cohorts_app = typer.Typer(help="Cohorts: definitions and their members.", no_args_is_help=True)


def _size(count: int | None) -> str:
    return "invalid" if count is None else f"{count:,}"


def _definition(file: Path) -> Any:
    """The JSON document in ``file``, or a clear failure."""
    try:
        return orjson.loads(file.read_bytes())
    except FileNotFoundError:
        raise fail(f"{file} does not exist") from None
    except orjson.JSONDecodeError as exc:
        raise fail(f"{file} is not valid JSON: {exc}") from None


@cohorts_app.command("list")
@friendly_errors
def list_cohorts(
    project: ProjectOption = None,
    counts: Annotated[bool, typer.Option(help="Also count members (evaluates each).")] = False,
) -> None:
    """List the project's cohorts."""
    project_id = default_project_id(project)
    table = Table("id", "name", "kind", *(["members"] if counts else []), "description")
    with migrated_engine() as engine:
        service = CohortService(engine, SystemClock())
        if counts:
            listed = [(c, [_size(n)]) for c, n in service.list_with_counts(project_id)]
        else:
            listed = [(c, []) for c in service.list(project_id)]
    for cohort, extra in listed:
        table.add_row(str(cohort.id), cohort.name, cohort.kind.value, *extra, cohort.description)
    out.print(table)


@cohorts_app.command("show")
@friendly_errors
def show(cohort_id: int, project: ProjectOption = None) -> None:
    """Print a cohort as JSON, with its member count now."""
    project_id = default_project_id(project)
    with migrated_engine() as engine:
        cohort, size = CohortService(engine, SystemClock()).with_count(project_id, cohort_id)
    print(orjson.dumps({**cohort.as_json(), "count": size}, option=orjson.OPT_INDENT_2).decode())


@cohorts_app.command("count")
@friendly_errors
def count(cohort_id: int, project: ProjectOption = None) -> None:
    """Print how many users qualify now."""
    project_id = default_project_id(project)
    with migrated_engine() as engine:
        print(CohortService(engine, SystemClock()).count(project_id, cohort_id))


@cohorts_app.command("members")
@friendly_errors
def members(
    cohort_id: int,
    project: ProjectOption = None,
    limit: Annotated[int, typer.Option(help="Members per page.")] = 100,
    cursor: Annotated[str | None, typer.Option(help="Continue after this distinct_id.")] = None,
    properties: Annotated[str | None, typer.Option(help="Comma-separated properties.")] = None,
) -> None:
    """Print one page of members as NDJSON (the next cursor goes to stderr)."""
    project_id = default_project_id(project)
    chosen = [p.strip() for p in properties.split(",")] if properties else []
    with migrated_engine() as engine:
        page = CohortService(engine, SystemClock()).member_page(
            project_id, cohort_id, limit=limit, cursor=cursor, properties=chosen
        )
    for member in page.members:
        print(orjson.dumps(member).decode())
    typer.echo(f"{page.count} members; next cursor: {page.next_cursor or '(end)'}", err=True)


@cohorts_app.command("create")
@friendly_errors
def create(
    name: Annotated[str, typer.Option(help="Cohort name.")],
    file: Annotated[Path, typer.Option("--file", help="JSON definition file.")],
    description: Annotated[str, typer.Option(help="What the cohort is for.")] = "",
    project: ProjectOption = None,
) -> None:
    """Create a dynamic cohort from a definition file (audited, actor "cli")."""
    definition = _definition(file)
    project_id = default_project_id(project)
    with migrated_engine() as engine:
        cohorts = CohortService(
            engine, SystemClock(), max_cohorts=settings().max_cohorts_per_project
        )
        cohort = cohorts.create(project_id, name, definition, description)
    out.print(f"created cohort {cohort.id} {cohort.name!r}")


@cohorts_app.command("update")
@friendly_errors
def update(
    cohort_id: int,
    name: Annotated[str | None, typer.Option(help="New name.")] = None,
    description: Annotated[str | None, typer.Option(help="New description.")] = None,
    file: Annotated[Path | None, typer.Option("--file", help="New JSON definition.")] = None,
    project: ProjectOption = None,
) -> None:
    """Rename, describe or redefine a cohort (audited, actor "cli"). Like an admin, the operator
    may change a cohort that feeds an active export: its next run sends the new members."""
    definition = _definition(file) if file is not None else None
    project_id = default_project_id(project)
    with migrated_engine() as engine:
        service = CohortService(engine, SystemClock())
        exports = service.exports_fed_by(project_id, cohort_id)
        cohort = service.update(
            project_id, cohort_id, name=name, description=description, definition=definition
        )
    out.print(f"updated cohort {cohort.id} {cohort.name!r}")
    for export in exports:
        out.print(f"  feeds {export.describe()}: its next run sends the changed members")


@cohorts_app.command("delete")
@friendly_errors
def delete(cohort_id: int, project: ProjectOption = None) -> None:
    """Delete a cohort (audited, actor "cli"); refused while an active export reads it: stop
    the export first."""
    project_id = default_project_id(project)
    with migrated_engine() as engine:
        CohortService(engine, SystemClock()).delete(project_id, cohort_id)
    out.print(f"deleted cohort {cohort_id}")
