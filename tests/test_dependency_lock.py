"""Dependencies install from lock files (issue 15, finding 17): every dependency pyproject.toml
names, the development extras too, is pinned to one version with hashes, `make install` insists
on the hashes, and python-multipart is at a version past its advisories."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PATCHED_MULTIPART = (0, 0, 31)  # the last multipart and form-parsing advisory known was fixed here
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^ \\;]+)", re.M)


def _name(requirement: str) -> str:
    """A requirement's distribution name, normalised as the lock files write it."""
    bare = re.split(r"[\[<>=!~; ]", requirement, maxsplit=1)[0]
    return re.sub(r"[-_.]+", "-", bare).lower()


def _pins(lock: str) -> dict[str, str]:
    text = (ROOT / lock).read_text()
    blocks = re.split(r"\n(?=[A-Za-z0-9])", text)
    pinned = {}
    for block in blocks:
        found = _PIN.match(block)
        if found:
            assert "--hash=sha256:" in block, f"{found.group(1)} has no hash in {lock}"
            pinned[_name(found.group(1))] = found.group(2)
    return pinned


def test_every_dependency_is_pinned_with_hashes_and_installed_from_the_lock() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    service, development = _pins("requirements.lock"), _pins("requirements-dev.lock")
    for requirement in project["dependencies"]:
        assert _name(requirement) in service, requirement
        assert _name(requirement) in development, requirement
    for requirement in project["optional-dependencies"]["dev"]:
        assert _name(requirement) in development, requirement
    multipart = tuple(int(part) for part in service["python-multipart"].split("."))
    assert multipart >= PATCHED_MULTIPART
    makefile = (ROOT / "Makefile").read_text()
    assert "--require-hashes -r $(LOCK)" in makefile and "LOCK   := requirements-dev.lock" in (
        makefile
    )
