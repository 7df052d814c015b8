"""The README's production section shows the commands the production test starts, so what an
operator copies is what was tested."""

from __future__ import annotations

from pathlib import Path

from tests.production.test_many_workers import MIGRATE, SERVE, WORKER

README = Path(__file__).resolve().parents[2] / "README.md"


def _section() -> str:
    text = README.read_text()
    start = text.index("## Production")
    return text[start : text.index("\n## ", start + 1)]


def test_the_production_section_runs_what_the_test_starts() -> None:
    lines = _section().splitlines()
    for argv in (MIGRATE, [part.format(port=8000) for part in SERVE], WORKER):
        command = "cohortsync " + " ".join(argv)
        assert any(command in line for line in lines), command
    serve = next(line for line in lines if "cohortsync serve --workers" in line)
    assert serve.startswith("COHORTSYNC_SCHEDULER=0 "), serve  # as the test's API runs
