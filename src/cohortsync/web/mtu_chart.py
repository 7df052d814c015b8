"""The MTU chart: bars of MTU by month, laid out for an inline SVG drawn on the server."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from cohortsync.services.mtu import Month

WIDTH = 720
HEIGHT = 220
TOP = 24  # room for the value above the tallest bar
BOTTOM = 28  # room for the month under each bar
GAP = 0.3  # share of each slot left between bars


@dataclass(frozen=True)
class Bar:
    """One month's bar, in SVG user units."""

    label: str
    value: int
    x: float
    y: float
    width: float
    height: float
    current: bool


@dataclass(frozen=True)
class Chart:
    """Every bar, and the drawing's size."""

    bars: list[Bar]
    width: int = WIDTH
    height: int = HEIGHT

    @property
    def baseline(self) -> float:
        """Where the bars stand."""
        return self.height - BOTTOM


def mtu_chart(months: Sequence[tuple[str, int]], current: str) -> Chart:
    """Bars for ``(month, MTU)`` in order, scaled to the largest; ``current`` is highlighted."""
    slot = WIDTH / max(len(months), 1)
    tallest = max((value for _, value in months), default=0) or 1
    room = HEIGHT - TOP - BOTTOM
    bars = []
    for index, (label, value) in enumerate(months):
        height = room * value / tallest
        bars.append(
            Bar(
                label=label,
                value=value,
                x=index * slot + slot * GAP / 2,
                y=HEIGHT - BOTTOM - height,
                width=slot * (1 - GAP),
                height=height,
                current=label == current,
            )
        )
    return Chart(bars)


def months_up_to(last: Month, count: int) -> list[Month]:
    """The ``count`` calendar months ending with ``last``, oldest first."""
    months = [last]
    while len(months) < count:
        months.append(months[-1].previous())
    return months[::-1]
