"""The benchmark table: each suite returns rows of (metric, value, unit, target, verdict)."""

from __future__ import annotations

import platform
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import psutil


@dataclass(frozen=True)
class Row:
    """One measured figure and the target it is held to (if any)."""

    suite: str
    metric: str
    value: float
    unit: str
    target: str = ""
    met: bool | None = None

    def cells(self) -> list[str]:
        """The row as table cells."""
        verdict = {True: "met", False: "MISSED", None: ""}[self.met]
        shown = f"{self.value:,.0f}" if abs(self.value) >= 100 else f"{self.value:,.2f}"
        return [self.suite, self.metric, f"{shown} {self.unit}", self.target, verdict]


def render(rows: list[Row]) -> str:
    """A Markdown table of ``rows`` with a line saying where they were measured."""
    header = ["suite", "metric", "value", "target", "verdict"]
    lines = [
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {platform.machine()}, "
        f"{psutil.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB, "
        f"Python {platform.python_version()}",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
    ]
    lines += ["| " + " | ".join(row.cells()) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def write_results(text: str, path: Path) -> None:
    """Keep the latest table next to the benchmarks."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
