"""``cohortsync cohorts …``: list, show, count, members, create from a definition file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

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
)
from cohortsync.clock import SystemClock, now_ms
from cohortsync.services import cohorts
from cohortsync.storage.database import read_transaction, write_transaction

cohorts_app = typer.Typer(help="Cohorts: definitions and their members.", no_args_is_help=True)


@cohorts_app.command("list")
@friendly_errors
def list_cohorts(
    project: ProjectOption = None,
    counts: Annotated[bool, typer.Option(help="Also count members (evaluates each).")] = False,
) -> None:
    """List the project's cohorts."""
    project_id = default_project_id(project)
    table = Table("id", "name", "kind", *(["members"] if counts else []), "description")
    with migrated_engine() as engine, read_transaction(engine) as connection:
        for cohort in cohorts.list_cohorts(connection, project_id):
            extra = []
            if counts:
                size = cohorts.count_members(
                    connection, project_id, cohort.id, now_ms(SystemClock())
                )
                extra = [f"{size:,}"]
            table.add_row(str(cohort.id), cohort.name, cohort.kind, *extra, cohort.description)
    out.print(table)


@cohorts_app.command("show")
@friendly_errors
def show(cohort_id: int, project: ProjectOption = None) -> None:
    """Print a cohort as JSON, with its member count now."""
    project_id = default_project_id(project)
    with migrated_engine() as engine, read_transaction(engine) as connection:
        cohort = cohorts.get_cohort(connection, project_id, cohort_id)
        size = cohorts.count_members(connection, project_id, cohort_id, now_ms(SystemClock()))
    print(orjson.dumps({**cohort.as_json(), "count": size}, option=orjson.OPT_INDENT_2).decode())


@cohorts_app.command("count")
@friendly_errors
def count(cohort_id: int, project: ProjectOption = None) -> None:
    """Print how many users qualify now."""
    project_id = default_project_id(project)
    with migrated_engine() as engine, read_transaction(engine) as connection:
        print(cohorts.count_members(connection, project_id, cohort_id, now_ms(SystemClock())))


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
    with migrated_engine() as engine, read_transaction(engine) as connection:
        page = cohorts.member_page(
            connection,
            project_id,
            cohort_id,
            now_ms(SystemClock()),
            limit=limit,
            cursor=cursor,
            properties=chosen,
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
    """Create a dynamic cohort from a definition file."""
    try:
        definition = orjson.loads(file.read_bytes())
    except FileNotFoundError:
        raise fail(f"{file} does not exist") from None
    except orjson.JSONDecodeError as exc:
        raise fail(f"{file} is not valid JSON: {exc}") from None
    project_id = default_project_id(project)
    with migrated_engine() as engine, write_transaction(engine) as connection:
        cohort = cohorts.create_cohort(connection, project_id, name, definition, description)
    out.print(f"created cohort {cohort.id} {cohort.name!r}")
