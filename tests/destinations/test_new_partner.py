"""A new partner needs no edit to the conformance suite: Postbox, a partner declared in a fixture
folder (``fixture_partner/``), passes the whole suite once registered, and its Connect dialog
and credential checks come from its spec. It is registered only inside the run or block that
uses it, so no other test sees it."""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree

import pytest

from cohortsync.destinations import registry
from cohortsync.domain.errors import BatchError
from cohortsync.partners.registry import PARTNERS
from cohortsync.sandbox.fleet import EMULATORS
from cohortsync.web.partner_forms import connect_fields
from tests.destinations import test_conformance
from tests.destinations.conftest import CONFORMANCE_PARTNER
from tests.destinations.fixture_partner import SPEC

ROOT = Path(__file__).resolve().parents[2]
SUITE = Path(test_conformance.__file__).resolve().relative_to(ROOT)
NOT_PASSED = {"failure", "error", "skipped"}  # what a junit test case holds unless it passed


def conformance_tests() -> set[str]:
    """The suite's tests that run once per partner (those taking the ``harness`` fixture)."""
    return {
        name
        for name, test in vars(test_conformance).items()
        if name.startswith("test_") and "harness" in inspect.signature(test).parameters
    }


def test_the_whole_conformance_suite_passes_for_a_partner_from_a_fixture_folder(
    tmp_path: Path,
) -> None:
    assert SPEC.type not in PARTNERS  # registered only inside the run below
    report = tmp_path / "conformance.xml"
    env = {**os.environ, CONFORMANCE_PARTNER: "tests.destinations.fixture_partner"}
    command = [sys.executable, "-m", "pytest", str(SUITE), "-q", "-p", "no:randomly"]
    command += ["-p", "no:cacheprovider", f"--junitxml={report}"]
    run = subprocess.run(
        command, check=False, cwd=ROOT, env=env, capture_output=True, text=True, timeout=240
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    cases = ElementTree.parse(report).getroot().iter("testcase")
    outcomes = {case.get("name"): {child.tag for child in case} for case in cases}
    assert set(outcomes) == {f"{name}[{SPEC.type}]" for name in conformance_tests()}
    not_passed = {name: tags for name, tags in outcomes.items() if tags & NOT_PASSED}
    assert not_passed == {}  # every test ran, none was skipped
    assert SPEC.type not in PARTNERS


def test_its_connect_dialog_and_credential_checks_come_from_its_spec() -> None:
    with PARTNERS.registered(SPEC):
        spec = registry.partner(SPEC.type)
        assert SPEC.type in EMULATORS
        assert [(f.label, f.secret) for f in connect_fields(spec)] == [
            ("API token", True),
            ("Region", False),
        ]
        assert registry.check_credentials(spec, {"api_token": " tok "}) == {"api_token": "tok"}
        with pytest.raises(BatchError, match=r"credentials\.api_token is required for Postbox"):
            registry.check_credentials(spec, {})
    assert SPEC.type not in PARTNERS and SPEC.type not in EMULATORS
