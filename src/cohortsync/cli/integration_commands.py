"""``cohortsync keys …`` (encryption keys of partner credentials), ``cohortsync integrations
list`` and ``cohortsync sandbox`` (the partner emulators on loopback)."""

from __future__ import annotations

import time
from typing import Annotated

import typer
from rich.table import Table

from cohortsync.cli.context import (
    ProjectOption,
    console,
    default_project_id,
    friendly_errors,
    migrated_engine,
    out,
    settings,
)
from cohortsync.clock import SystemClock
from cohortsync.keyring import (
    Keyring,
    generate_key,
    key_file_path,
    read_key_file,
    write_key_file,
)
from cohortsync.sandbox.fleet import start_all
from cohortsync.services.integrations import IntegrationService, reseal_all

keys_app = typer.Typer(help="Encryption keys of partner credentials.", no_args_is_help=True)
integrations_app = typer.Typer(help="Connected partner accounts.", no_args_is_help=True)


@keys_app.command("generate")
def keys_generate() -> None:
    """Print a new key (for COHORTSYNC_SECRET_KEY)."""
    out.print(generate_key())


@keys_app.command("rotate")
@friendly_errors
def keys_rotate(
    retire_old: Annotated[
        bool, typer.Option(help="Drop the older keys from the key file once all is re-sealed.")
    ] = False,
) -> None:
    """Seal every integration's credentials with a new key; older keys keep opening them until
    retired. With COHORTSYNC_SECRET_KEY set, put the new key first there, then run this."""
    current = settings()
    with migrated_engine() as engine:
        if current.secret_key is not None:
            keyring = Keyring.from_settings(current)
            count = reseal_all(engine, keyring)
            out.print(
                f"re-sealed {count} integrations with the first key of COHORTSYNC_SECRET_KEY; "
                "the other keys there can now be removed"
            )
            return
        path = key_file_path(current)
        old = read_key_file(path) if path.exists() else []
        new = generate_key()
        write_key_file(path, [new, *old])  # every key stays usable until all is re-sealed
        count = reseal_all(engine, Keyring([new, *old]))
        if retire_old:
            write_key_file(path, [new])
        kept = "only the new key" if retire_old else f"the new key and {len(old)} older"
        out.print(f"re-sealed {count} integrations; {path} holds {kept}")


@integrations_app.command("list")
@friendly_errors
def integrations_list(project: ProjectOption = None) -> None:
    """The project's integrations and their status (never their credentials)."""
    project_id = default_project_id(project)
    current = settings()
    with migrated_engine() as engine:
        service = IntegrationService(engine, Keyring.from_settings(current), SystemClock())
        table = Table("id", "type", "name", "status", "error")
        for integration in service.list(project_id):
            table.add_row(
                str(integration.id),
                integration.type,
                integration.name,
                integration.status,
                integration.error or "",
            )
    out.print(table)


def sandbox(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="First port (one per partner, consecutive).")] = 9100,
) -> None:
    """Run the Iterable, CleverTap, Xtremepush and webhook emulators until interrupted."""
    running = start_all(host, port)
    for partner, sandbox in running.items():
        credentials = " ".join(f"{k}={v}" for k, v in sandbox.state.credentials.items())
        typer.echo(f"{partner:<11} {sandbox.base_url:<32} {credentials}")
    console.print(
        "Connect an integration with these credentials and settings.base_url (webhook: "
        "settings.url); the server needs COHORTSYNC_ALLOW_CUSTOM_ENDPOINTS=1 and "
        "COHORTSYNC_ALLOW_PRIVATE_ENDPOINTS=1 (the emulators listen on loopback). "
        "List membership: GET <base URL>/_sandbox/lists. Ctrl-C stops."
    )
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        for sandbox in running.values():
            sandbox.server.stop()
