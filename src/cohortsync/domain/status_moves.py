"""Moves between statuses, each kind's allowed by one table: ``{status: statuses it may move
to}``. Stores turn a move into one conditional UPDATE (``WHERE status IN`` the statuses allowed
to move there), so a move the table lacks never happens, whichever worker asks."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import TypeVar

from cohortsync.domain.errors import CohortsyncError

S = TypeVar("S", bound=StrEnum)


class IllegalMove(CohortsyncError):
    """A status change the table does not allow (a defect, never the user's doing)."""

    code = "illegal_status_change"


def allowed_from(
    moves: Mapping[S, frozenset[S]], new: S, only_from: tuple[S, ...] | None = None
) -> tuple[S, ...]:
    """The statuses ``moves`` lets move to ``new`` (of ``only_from``, when given)."""
    return tuple(
        status
        for status, targets in moves.items()
        if new in targets and (only_from is None or status in only_from)
    )


def check_move(moves: Mapping[S, frozenset[S]], current: S, new: S) -> None:
    """IllegalMove unless ``moves`` lets ``current`` move to ``new``."""
    if new not in moves[current]:
        raise IllegalMove(f"a {type(current).__name__} cannot go from {current} to {new}")
