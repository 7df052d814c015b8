"""``cohortsync syncs explain``'s human output: the summary, the conditions as a tree, the facts."""

from __future__ import annotations

from collections.abc import Iterator

from cohortsync.domain.explanation import ConditionCheck, Explanation


def _tree(check: ConditionCheck, depth: int) -> Iterator[str]:
    for item in check.items:
        mark = "✓" if item.met else "✗"
        yield f"{'  ' * depth}{mark} {item.number}. {item.label}: {item.finding}"
        yield from _tree(item, depth + 1)


def explanation_text(explanation: Explanation) -> str:
    """The explanation as lines for a terminal."""
    e = explanation
    others = [i for i in e.ids if i != e.distinct_id]
    user = e.distinct_id + (f" (also {', '.join(others)})" if others else "")
    definition = e.definition
    lines = [
        e.summary(),
        "",
        f"user:          {user}",
        f"in the cohort: {'yes' if e.in_cohort else 'no'} ({definition.kind} of these must hold)",
        *_tree(definition, 1),
        f"identified:    {'yes' if e.identified else 'no (no profile properties)'}",
    ]
    if e.partner_key is not None:
        lines.append(f"partner key:   {e.partner_key}")
    else:
        lines.append(f"skipped:       {e.skip_reason}")
    acknowledged = f"yes, as {e.acknowledged_key}" if e.on_list else "no"
    lines.append(f"acknowledged:  {acknowledged}")
    rejection = e.last_rejection
    if rejection is not None:
        lines.append(
            f"rejected:      {rejection.key} ({rejection.op}) in run {rejection.run_id}: "
            f"{rejection.reason}"
        )
    lines.append(
        f"read back:     {e.read_back_sentence() or 'never (or the partner cannot be read)'}"
    )
    return "\n".join(lines)
