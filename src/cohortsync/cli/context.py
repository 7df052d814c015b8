"""What every CLI command needs: settings, an engine, and errors turned into a sentence."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from typing import Annotated, ParamSpec, TypeVar

import typer
from rich.console import Console
from sqlalchemy.engine import Engine

from cohortsync.clock import SystemClock
from cohortsync.domain.errors import CohortsyncError
from cohortsync.services.projects import ProjectService
from cohortsync.settings import Settings, load_settings
from cohortsync.storage.database import create_engine
from cohortsync.storage.migrate import current_revision

console = Console(stderr=True, soft_wrap=True, highlight=False)
out = Console(soft_wrap=True, highlight=False)

P = ParamSpec("P")
R = TypeVar("R")


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print ``message`` as an error and return the Exit to raise."""
    console.print(f"[bold red]error:[/] {message}")
    return typer.Exit(code)


def friendly_errors(function: Callable[P, R]) -> Callable[P, R]:
    """Turn domain errors into one sentence and exit code 1."""

    @wraps(function)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return function(*args, **kwargs)
        except CohortsyncError as exc:
            raise fail(exc.message) from None

    return wrapper


ProjectOption = Annotated[
    int | None, typer.Option("--project", help="Project id (default: the first project).")
]


def default_project_id(project: int | None) -> int:
    """The given project id, or the first project's."""
    if project is not None:
        return project
    with migrated_engine() as engine:
        found, _ = ProjectService(engine, SystemClock()).ensure_default()
    return found.id


def settings() -> Settings:
    """The process settings."""
    return load_settings()


@contextmanager
def migrated_engine() -> Iterator[Engine]:
    """An engine on a database that has been migrated (or a clear error saying how to)."""
    engine = create_engine(settings().database_url)
    try:
        if current_revision(engine) is None:
            raise fail("the database is empty; run `cohortsync migrate` first")
        yield engine
    finally:
        engine.dispose()
