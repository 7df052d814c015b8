"""What every CLI command needs: settings, an engine, and errors turned into a sentence."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from typing import ParamSpec, TypeVar

import typer
from rich.console import Console
from sqlalchemy.engine import Engine

from cohortsync.domain.errors import CohortsyncError
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
