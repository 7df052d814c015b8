"""A plain reference for MTU: the definition of R-MTU-1/2 in a few lines of Python over the
events as they were sent, with identity merges given explicitly."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

from cohortsync.domain.outreach import ANY_SOURCE, Exemption


def reference_report(
    sent: Iterable[Mapping[str, Any]],
    canonical: Mapping[str, str],
    exemptions: Iterable[Exemption],
    start_ms: int,
    end_ms: int,
) -> dict[str, Any]:
    """MTU, events, exempt counts and not-counted users for [start_ms, end_ms)."""
    listed = set(exemptions)
    qualifying: set[str] = set()
    seen: set[str] = set()
    reached: dict[str, set[str]] = defaultdict(set)
    exempt: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    total = 0
    for event in sent:
        props = event["properties"]
        if not start_ms <= props["time"] < end_ms:
            continue
        total += 1
        user = canonical.get(props["distinct_id"], props["distinct_id"])
        seen.add(user)
        name, source = event["event"], props.get("$source")
        if Exemption(ANY_SOURCE, name) in listed:
            exempt[ANY_SOURCE][name] += 1
        elif source is not None and Exemption(source, name) in listed:
            exempt[source][name] += 1
            reached[source].add(user)
        else:
            qualifying.add(user)
    sources = sorted({e.source for e in listed if e.source != ANY_SOURCE})
    return {
        "mtu": len(qualifying),
        "events": total,
        "exempt": {s: dict(names) for s, names in exempt.items()},
        "not_counted_users": len(seen - qualifying),
        "reached_only_by_exempt": {s: len(reached[s] - qualifying) for s in sources},
    }
