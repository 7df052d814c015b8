"""``cohortsync mtu``: the month's MTU report, and the exemption list it reads."""

from __future__ import annotations

from typing import Annotated

import orjson
import typer
from rich.table import Table

from cohortsync.cli.context import (
    ProjectOption,
    default_project_id,
    friendly_errors,
    migrated_engine,
    out,
)
from cohortsync.clock import SystemClock
from cohortsync.domain.outreach import ANY_SOURCE
from cohortsync.services import mtu

mtu_app = typer.Typer(
    help="Monthly Tracked Users, with partner outreach events exempt.",
    invoke_without_command=True,
)
exemptions_app = typer.Typer(help="Events that do not count toward MTU.", no_args_is_help=True)
mtu_app.add_typer(exemptions_app, name="exemptions")

SourceArgument = Annotated[
    str,
    typer.Argument(
        help=f"The $source it applies to (iterable, clevertap, …; {ANY_SOURCE!r}: any)."
    ),
]
EventArgument = Annotated[str, typer.Argument(help="The event name.")]


@mtu_app.callback()
@friendly_errors
def report(
    context: typer.Context,
    month: Annotated[
        str | None, typer.Option(help="The calendar month, YYYY-MM (UTC); default: this month.")
    ] = None,
    project: ProjectOption = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """MTU of a month: users with a qualifying event, the events, what was exempt, and the users
    partners reached only through exempt events."""
    if context.invoked_subcommand is not None:
        return
    chosen = mtu.Month.parse(month) if month else mtu.Month.of(SystemClock().now())
    project_id = default_project_id(project)
    with migrated_engine() as engine:
        body = mtu.MtuReports(engine).report(project_id, chosen).as_json()
    if json_output:
        out.print(orjson.dumps(body, option=orjson.OPT_INDENT_2).decode(), markup=False)
        return
    out.print(f"MTU {body['month']} (project {project_id}): [bold]{body['mtu']:,}[/]")
    out.print(
        f"events {body['events']:,}: {body['qualifying_events']:,} qualifying, "
        f"{body['exempt_events']:,} exempt"
    )
    out.print(f"users with events but not counted: {body['not_counted_users']:,}")
    table = Table("source", "event", "exempt events")
    for source, names in body["exempt"].items():
        for name, count in names.items():
            table.add_row(source, name, f"{count:,}")
    if table.row_count:
        out.print(table)
    for source, users in body["reached_only_by_exempt"].items():
        out.print(f"users {source} reached only through exempt events: {users:,}")


@exemptions_app.command("list")
@friendly_errors
def exemptions_list() -> None:
    """The exemption list, by source."""
    with migrated_engine() as engine:
        rows = mtu.MtuReports(engine).exemptions()
    table = Table("source", "event")
    for exemption in rows:
        table.add_row(exemption.source, exemption.event)
    out.print(table)


@exemptions_app.command("add")
@friendly_errors
def exemptions_add(source: SourceArgument, event: EventArgument) -> None:
    """Exempt an event name when it carries this $source."""
    with migrated_engine() as engine:
        added = mtu.MtuReports(engine).add_exemption(source, event)
    out.print(f"{added.event!r} from {added.source!r} no longer counts toward MTU")


@exemptions_app.command("remove")
@friendly_errors
def exemptions_remove(source: SourceArgument, event: EventArgument) -> None:
    """Make an event name from this $source count toward MTU again."""
    with migrated_engine() as engine:
        removed = mtu.MtuReports(engine).remove_exemption(source, event)
    out.print(f"{removed.event!r} from {removed.source!r} counts toward MTU again")
