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
    fail,
    friendly_errors,
    migrated_engine,
    out,
    settings,
)
from cohortsync.clock import SystemClock
from cohortsync.keyring import Keyring, environment_keys, generate_key, key_file_path
from cohortsync.sandbox.fleet import start_all
from cohortsync.services.integrations import IntegrationService
from cohortsync.services.key_rotation import ENVIRONMENT_PROCEDURE, KeyRotation

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
    restarted: Annotated[
        bool,
        typer.Option(
            help="COHORTSYNC_SECRET_KEY only: every process was restarted with the new key "
            "first there."
        ),
    ] = False,
) -> None:
    """Seal every integration's credentials with a new key; older keys keep opening them until
    retired. Safe while the server runs with a key file (it reads the file again); with
    COHORTSYNC_SECRET_KEY, put the new key first there and restart every process first."""
    current = settings()
    with migrated_engine() as engine:
        rotation = KeyRotation(engine, SystemClock())
        if current.secret_key is not None:
            keys = environment_keys(current)
            if len(keys) < 2 or not restarted:
                raise fail(f"nothing re-sealed: {ENVIRONMENT_PROCEDURE}")
            done = rotation.reseal_environment(keys)
            out.print(
                f"re-sealed {done.resealed} integrations with the first key of "
                "COHORTSYNC_SECRET_KEY; remove the other keys there and restart"
            )
        else:
            done = rotation.rotate_file(key_file_path(current), retire_old=retire_old)
            kept = "only the new key" if retire_old else f"the new key and {done.older_keys} older"
            out.print(f"re-sealed {done.resealed} integrations; {done.key_file} holds {kept}")
    if done.stale:
        console.print(
            f"warning: {done.stale} stored secrets are still sealed with an older key (a "
            "process seals with other keys); the older keys must stay until they are re-sealed"
        )


@keys_app.command("retire")
@friendly_errors
def keys_retire() -> None:
    """Keep only the newest key of the key file, once nothing stored needs the older ones."""
    current = settings()
    if current.secret_key is not None:
        raise fail("with COHORTSYNC_SECRET_KEY, remove the older keys there and restart")
    with migrated_engine() as engine:
        done = KeyRotation(engine, SystemClock()).retire(key_file_path(current))
    out.print(f"{done.key_file} holds only its newest key ({done.resealed} re-sealed first)")


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
