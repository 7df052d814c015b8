"""``cohortsync``: serve, migrate, people and tokens, projects, imports and demo data."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
import uvicorn

from cohortsync.cli import (
    account_commands,
    cohort_commands,
    data_commands,
    integration_commands,
    mtu_commands,
    sync_commands,
)
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
from cohortsync.domain.identity import IdentityMode
from cohortsync.keyring import Keyring
from cohortsync.logs import configure_logging
from cohortsync.metrics import shared_across_processes
from cohortsync.services.accounts import AccountService
from cohortsync.services.projects import ProjectService
from cohortsync.storage.database import create_engine, is_sqlite
from cohortsync.storage.migrate import upgrade

app = typer.Typer(
    help="cohortsync: Mixpanel-compatible ingestion, cohorts and cohort sync.", no_args_is_help=True
)
projects_app = typer.Typer(help="Projects and their ingestion credentials.", no_args_is_help=True)
service_accounts_app = typer.Typer(help="Service accounts for /import.", no_args_is_help=True)
app.add_typer(account_commands.users_app, name="users")
app.add_typer(account_commands.tokens_app, name="tokens")
app.add_typer(projects_app, name="projects")
app.add_typer(service_accounts_app, name="service-accounts")
app.add_typer(data_commands.import_app, name="import")
app.add_typer(data_commands.demo_app, name="demo")
app.add_typer(cohort_commands.cohorts_app, name="cohorts")
app.add_typer(integration_commands.integrations_app, name="integrations")
app.add_typer(integration_commands.keys_app, name="keys")
app.add_typer(sync_commands.syncs_app, name="syncs")
app.add_typer(mtu_commands.mtu_app, name="mtu")
app.command("sandbox")(integration_commands.sandbox)
app.command("worker")(sync_commands.worker)

# SQLite has one writer at a time: a second HTTP process helps reads, more only queue up.
SQLITE_MAX_WORKERS = 2


def _this_command() -> str:
    """How the operator invoked us (``.venv/bin/cohortsync`` under ``make run``)."""
    invoked = sys.argv[0]
    return invoked if invoked.endswith("cohortsync") else "cohortsync"


@app.command()
def migrate() -> None:
    """Create or upgrade the database schema, and the default project on an empty database."""
    engine = create_engine(settings().database_url)
    try:
        upgrade(engine)
        project, created = ProjectService(engine, SystemClock()).ensure_default()
    finally:
        engine.dispose()
    out.print(f"database is up to date ({settings().database_url.split('@')[-1]})")
    if created:
        out.print(f"created project {project.id} {project.name!r}; ingestion token {project.token}")


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address.")] = None,
    port: Annotated[int | None, typer.Option(help="Port.")] = None,
    workers: Annotated[
        int | None, typer.Option(help="HTTP processes (PostgreSQL: any; SQLite: 1-2).")
    ] = None,
) -> None:
    """Serve the API and ingestion endpoints."""
    config = settings()
    configure_logging(config.log_level, config.log_format)
    processes = workers or config.workers
    with migrated_engine() as engine:
        if processes < 1:
            raise fail("--workers must be at least 1")
        if is_sqlite(engine) and processes > SQLITE_MAX_WORKERS:
            raise fail(
                f"SQLite serves at most {SQLITE_MAX_WORKERS} HTTP processes (one writer at a "
                "time); use PostgreSQL for more"
            )
        project, _ = ProjectService(engine, SystemClock()).ensure_default()
        people = AccountService.from_settings(engine, SystemClock(), config).count_users()
    if processes > 1:
        Keyring.from_settings(config)  # the key file, made once here rather than by each process
    bind_host, bind_port = host or config.host, port or config.port
    out.print(
        f"cohortsync serving on [bold]http://{bind_host}:{bind_port}[/] "
        f"(web UI there, API docs at /docs); project {project.id} token {project.token}"
    )
    if people == 0:
        out.print(
            "no users yet; create the first admin (then sign in to the web UI) with:\n"
            f"  {_this_command()} users create --email you@example.com --role admin"
        )
    # uvicorn starts each of several processes as a fresh interpreter that inherits this
    # environment, so each imports prometheus_client already in multiprocess mode.
    with shared_across_processes(config.metrics_dir, processes):
        uvicorn.run(
            "cohortsync.app:app_from_environment",
            factory=True,
            host=bind_host,
            port=bind_port,
            workers=processes,
            # Only a proxy the operator trusts may say who the client is (sign-in throttling
            # counts failures per address): uvicorn would otherwise believe any loopback peer.
            proxy_headers=config.trust_proxy,
            log_config=None,
            access_log=False,
        )


@projects_app.command("list")
def projects_list() -> None:
    """List projects."""
    with migrated_engine() as engine:
        found = ProjectService(engine, SystemClock()).list()
    for project in found:
        print(f"{project.id}\t{project.name}\t{project.token}\t{project.identity_mode}")


@projects_app.command("show")
@friendly_errors
def projects_show(project: ProjectOption = None) -> None:
    """Show a project's ingestion token, and its API secret the first time (shown once)."""
    project_id = default_project_id(project)
    with migrated_engine() as engine:
        service = ProjectService(engine, SystemClock())
        found = service.get(project_id)
        secret = service.reveal_api_secret(project_id)
    out.print(f"project {found.id}: {found.name}")
    out.print(f"  ingestion token: {found.token}   (goes in each event sent to /track, /engage)")
    out.print(f"  identity mode:   {found.identity_mode}")
    if secret is not None:
        out.print(f"  API secret:      {secret}   (shown once; for /import as the Basic username)")
    else:
        out.print(
            "  API secret:      (already shown; `cohortsync projects rotate-secret` for a new one)"
        )


@projects_app.command("rotate-secret")
@friendly_errors
def projects_rotate_secret(project: ProjectOption = None) -> None:
    """Replace the project's API secret and print the new one (shown once)."""
    project_id = default_project_id(project)
    with migrated_engine() as engine:
        service = ProjectService(engine, SystemClock())
        service.get(project_id)
        secret = service.rotate_api_secret(project_id)
    print(secret)


@projects_app.command("create")
def projects_create(
    name: Annotated[str, typer.Option(help="Project name.")],
    identity_mode: Annotated[IdentityMode, typer.Option(help="ID merge system.")] = (
        IdentityMode.SIMPLIFIED
    ),
) -> None:
    """Create another project."""
    with migrated_engine() as engine:
        project = ProjectService(engine, SystemClock()).create(name, identity_mode)
    out.print(f"created project {project.id} {project.name!r}; ingestion token {project.token}")


@projects_app.command("set-identity-mode")
@friendly_errors
def projects_set_identity_mode(
    mode: Annotated[IdentityMode, typer.Argument(help="simplified or original.")],
    project: ProjectOption = None,
) -> None:
    """Switch a project's ID merge system (affects data sent from now on)."""
    project_id = default_project_id(project)
    with migrated_engine() as engine:
        service = ProjectService(engine, SystemClock())
        service.get(project_id)
        service.set_identity_mode(project_id, mode)
    out.print(f"project {project_id} now uses {mode.value} ID merge")


@service_accounts_app.command("create")
@friendly_errors
def service_accounts_create(
    username: Annotated[str, typer.Option(help="Service account user name.")],
    project: ProjectOption = None,
) -> None:
    """Create a service account for /import and print its secret (shown once)."""
    project_id = default_project_id(project)
    with migrated_engine() as engine:
        secret = ProjectService(engine, SystemClock()).create_service_account(project_id, username)
    out.print(f"service account {username} for project {project_id}; use ?project_id={project_id}")
    print(secret)
