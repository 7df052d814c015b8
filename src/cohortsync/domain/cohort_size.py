"""How big a definition is once every ``in_cohort`` is inlined, as the compiler inlines them
(issue 15, finding 4): each definition keeps its own bounds, and references must not multiply
them past what one SQL statement can carry (PostgreSQL takes at most 65,535 parameters)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from cohortsync.domain.cohorts import (
    CohortReference,
    Condition,
    EventCondition,
    Group,
    Not,
    PropertyCondition,
)
from cohortsync.domain.definition_bounds import MAX_INLINED_DEPTH, DefinitionError

MAX_INLINED_CONDITIONS = 1_000
MAX_INLINED_VALUES = 20_000


@dataclass(frozen=True, slots=True)
class Size:
    """Conditions, values and nesting levels (the height of the tree) of a condition with its
    references inlined."""

    conditions: int
    values: int
    depth: int

    def problem(self) -> str | None:
        """What bound the size breaks, in words, or None."""
        if self.depth > MAX_INLINED_DEPTH:
            return f"nests more than {MAX_INLINED_DEPTH} levels"
        if self.conditions > MAX_INLINED_CONDITIONS:
            return f"holds {self.conditions:,} conditions, over {MAX_INLINED_CONDITIONS:,}"
        if self.values > MAX_INLINED_VALUES:
            return f"holds {self.values:,} values, over {MAX_INLINED_VALUES:,}"
        return None


def _values(condition: PropertyCondition) -> int:
    if condition.value is None:
        return 0
    return len(condition.value) if isinstance(condition.value, tuple) else 1


def inlined_size(condition: Condition, resolve: Callable[[int], Condition | None]) -> Size:
    """The size of ``condition`` with each reference replaced by what ``resolve`` gives for it
    (None: a static cohort, one membership test). Stops at the first level past the depth
    bound, so a long chain of references costs no deep recursion."""
    known: dict[int, Size] = {}

    def walk(node: Condition, level: int) -> Size:
        if level > MAX_INLINED_DEPTH:
            return Size(1, 0, MAX_INLINED_DEPTH + 1)  # too deep already: look no further
        if isinstance(node, Group | Not):
            items = node.items if isinstance(node, Group) else (node.item,)
            parts = [walk(item, level + 1) for item in items]
            return Size(
                1 + sum(p.conditions for p in parts),
                sum(p.values for p in parts),
                1 + max(p.depth for p in parts),
            )
        if isinstance(node, PropertyCondition):
            return Size(1, _values(node), 1)
        if isinstance(node, EventCondition):
            return Size(1 + len(node.where), sum(_values(f) for f in node.where), 2)
        assert isinstance(node, CohortReference)
        if node.cohort_id not in known:
            target = resolve(node.cohort_id)
            known[node.cohort_id] = Size(1, 0, 1) if target is None else walk(target, level)
        return known[node.cohort_id]

    return walk(condition, 1)


def check_inlined(
    condition: Condition, resolve: Callable[[int], Condition | None], whose: str
) -> None:
    """Refuse a definition that, with its references inlined, breaks the bounds; ``whose``
    says which definition (this one, or one that refers to it)."""
    problem = inlined_size(condition, resolve).problem()
    if problem is not None:
        raise DefinitionError(
            "$", f"{whose} with the cohorts it refers to {problem}; refer to fewer cohorts"
        )
