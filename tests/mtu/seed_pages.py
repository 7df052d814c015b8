"""The product's seed pages (Mixpanel's integration pages, ``../shared/seeds/*.txt`` beside the
repository) read for the events each partner page lists as exempt from MTU."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

SEEDS = Path(__file__).resolve().parents[2].parent / "shared" / "seeds"
_PARTNER = re.compile(r"Events coming from (\w+) are marked")
_BULLET = re.compile(r"^\s*[-•*]\s+(\S.*?)\s*$")
_NAMED = re.compile(r"(.+?)(?:\s+\(([A-Z][A-Z0-9_]*)\))?")  # xp.message.open (EVENT_MESSAGE_OPEN)


@dataclass(frozen=True)
class ExemptList:
    """One seed page's list: the partner it is about and its items, word for word."""

    page: str
    partner: str  # the source, lower case: "xtremepush"
    items: tuple[str, ...]

    def names(self) -> tuple[str, ...]:
        """The event names, without the constant some items add in parentheses."""
        return tuple(self._split(item)[0] for item in self.items)

    def constants(self) -> dict[str, str]:
        """Constant → name, for the items that give one (Xtremepush's ``EVENT_…``)."""
        split = (self._split(item) for item in self.items)
        return {constant: name for name, constant in split if constant}

    @staticmethod
    def _split(item: str) -> tuple[str, str | None]:
        named = _NAMED.fullmatch(item)
        assert named is not None, f"a seed list item with no name: {item!r}"
        return named.group(1), named.group(2)


def exempt_list(page: str, text: str) -> ExemptList | None:
    """The exempt events a page lists after "… exempt from MTU calculations:" (None: the page
    lists none, as the older CleverTap page)."""
    partner = _PARTNER.search(text)
    lines = text.splitlines()
    intro = [i for i, line in enumerate(lines) if "exempt from MTU calculations:" in line]
    if partner is None or not intro:
        return None
    items: list[str] = []
    for line in lines[intro[0] + 1 :]:
        bullet = _BULLET.match(line)
        if bullet:
            items.append(bullet.group(1))
        elif line.strip() and items:
            break
    assert items, f"{page} says events are exempt from MTU but lists none"
    return ExemptList(page, partner.group(1).lower(), tuple(items))


def exempt_lists(partner: str) -> list[ExemptList]:
    """Every seed page's list for ``partner``; skips when the seeds are not beside the repository,
    fails when they are but no page lists the partner's events."""
    if not SEEDS.is_dir():
        pytest.skip(f"the seed pages are not at {SEEDS} (CI has them as ../shared/seeds)")
    pages = sorted(SEEDS.glob("*.txt"))
    found = [exempt_list(p.name, p.read_text(encoding="utf-8")) for p in pages]
    mine = [x for x in found if x is not None and x.partner == partner]
    assert mine, f"no seed page in {SEEDS} lists the {partner} events exempt from MTU"
    return mine
