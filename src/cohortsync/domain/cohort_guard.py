"""Exports are the admin's (issue 15, finding 3): a cohort that feeds an active export, itself or
through ``in_cohort`` references, is changed or deleted by a project admin only, and deleting it
waits until its exports are stopped.

A member who redefined such a cohort would choose whom the next scheduled run sends to the
partner; exporting is an admin's decision, so is changing what is exported.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from cohortsync.domain.audit import actor_for
from cohortsync.domain.cohorts import Cohort, reference_paths
from cohortsync.domain.errors import Conflict, PermissionDenied


@dataclass(frozen=True, slots=True)
class CohortEditor:
    """Who changes cohorts: a signed-in user with their role in the project, or the operator
    at the command line (``user_id`` None, acting as an admin)."""

    user_id: int | None
    is_admin: bool

    @property
    def actor(self) -> str | None:
        """The audit log's actor when there is no user to take it from."""
        return actor_for(self.user_id)


OPERATOR = CohortEditor(user_id=None, is_admin=True)


@dataclass(frozen=True, slots=True)
class ActiveExport:
    """A sync that is not stopped or finished, with what names it to a person."""

    sync_id: int
    cohort_id: int
    partner: str
    integration: str

    def describe(self) -> str:
        """``sync 4 (iterable 'Iterable EU', cohort 7)``."""
        return f"sync {self.sync_id} ({self.partner} {self.integration!r}, cohort {self.cohort_id})"


def feeding(cohorts: Iterable[Cohort], target_id: int) -> set[int]:
    """``target_id`` and every cohort whose members depend on it through ``in_cohort``."""
    referrers: dict[int, set[int]] = {}
    for cohort in cohorts:
        for _, referenced in reference_paths(cohort.definition):
            referrers.setdefault(referenced, set()).add(cohort.id)
    return _reachable(referrers, {target_id})


def _reachable(edges: dict[int, set[int]], start: set[int]) -> set[int]:
    """``start`` and every cohort reached from it along ``edges``."""
    found = set(start)
    pending = list(start)
    while pending:
        for following in edges.get(pending.pop(), set()) - found:
            found.add(following)
            pending.append(following)
    return found


def _listed(exports: Sequence[ActiveExport]) -> str:
    return "; ".join(e.describe() for e in exports)


def check_change(
    editor: CohortEditor, cohort: Cohort, exports: Sequence[ActiveExport], verb: str
) -> None:
    """Refuse a member ``verb``-ing (change, delete) a cohort that feeds ``exports``."""
    if exports and not editor.is_admin:
        raise PermissionDenied(
            f"cohort {cohort.id} ({cohort.name!r}) feeds active exports: {_listed(exports)}; "
            f"only a project admin may {verb} it"
        )


def check_delete(editor: CohortEditor, cohort: Cohort, exports: Sequence[ActiveExport]) -> None:
    """Refuse deleting a cohort that feeds exports: members may not; admins stop them first."""
    check_change(editor, cohort, exports, "delete")
    if exports:
        raise Conflict(
            f"cohort {cohort.id} ({cohort.name!r}) feeds active exports: {_listed(exports)}; "
            "stop them first (Syncs page, or DELETE …/syncs/{id}), then delete the cohort"
        )


def change_summary(before: Cohort, values: dict[str, Any]) -> str:
    """What an update changes, in a few words for the audit log."""
    parts = []
    if "name" in values and values["name"] != before.name:
        parts.append(f"renamed from {before.name!r}")
    if "description" in values and values["description"] != before.description:
        parts.append("description changed")
    if "definition" in values and values["definition"] != before.definition:
        parts.append("definition changed")
    return ", ".join(parts) or "nothing changed"


def fed_by(cohorts: Iterable[Cohort], exported: set[int]) -> set[int]:
    """The ``exported`` cohorts and every cohort they refer to, directly or not: the cohorts
    whose change would change what is exported."""
    references = {c.id: {i for _, i in reference_paths(c.definition)} for c in cohorts}
    return _reachable(references, exported)
