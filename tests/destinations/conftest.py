"""Each partner's emulator on loopback, and a connector pointed at it with instant retries.

Tests that take the ``harness`` fixture (the conformance suite) run once for every partner with
an emulator, or only for the partner ``COHORTSYNC_CONFORMANCE_PARTNER`` names: a registered
type (``iterable``), or the module of a partner declared outside the registry
(``tests.destinations.fixture_partner``), whose ``SPEC`` is then registered for this pytest
session only.
"""

from __future__ import annotations

import importlib
import os
import random
from collections.abc import Iterable
from contextlib import closing
from dataclasses import dataclass, field

import pytest

from cohortsync.destinations import registry
from cohortsync.destinations.base import CohortInfo, Destination, PartnerMember
from cohortsync.destinations.connection import ConnectorConfig
from cohortsync.destinations.http import (
    MAX_REPLY_BYTES,
    AccountBudget,
    PartnerClient,
    RetryPolicy,
)
from cohortsync.outbound.guard import OutboundGuard
from cohortsync.partners.registry import PARTNERS
from cohortsync.partners.spec import Contract, PartnerSpec
from cohortsync.sandbox.fleet import EMULATORS, RunningSandbox

CONFORMANCE_PARTNER = "COHORTSYNC_CONFORMANCE_PARTNER"


def declared_elsewhere(named: str) -> PartnerSpec:
    """The ``SPEC`` of the module ``named``, a partner outside the registry."""
    try:
        module = importlib.import_module(named)
    except ModuleNotFoundError as missing:
        if missing.name is None or not named.startswith(missing.name):
            raise
        known = ", ".join(PARTNERS)
        raise pytest.UsageError(
            f"{CONFORMANCE_PARTNER}={named!r} is neither a partner type ({known}) nor a module"
        ) from None
    spec = getattr(module, "SPEC", None)
    if not isinstance(spec, PartnerSpec):
        raise pytest.UsageError(f"{named} has no SPEC = PartnerSpec(...)")
    return spec


def chosen_partner() -> str | None:
    """The type of the one partner ``COHORTSYNC_CONFORMANCE_PARTNER`` names, if it names one."""
    named = os.environ.get(CONFORMANCE_PARTNER, "").strip()
    if not named or named in PARTNERS:
        return named or None
    return declared_elsewhere(named).type


def pytest_configure(config: pytest.Config) -> None:
    """Register the partner module ``COHORTSYNC_CONFORMANCE_PARTNER`` names, for this session."""
    named = os.environ.get(CONFORMANCE_PARTNER, "").strip()
    if named and named not in PARTNERS:
        config.add_cleanup(PARTNERS.register(declared_elsewhere(named)))


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A test taking ``harness`` runs against every emulator, or the chosen partner's."""
    if "harness" in metafunc.fixturenames:
        chosen = chosen_partner()
        partners = [chosen] if chosen is not None else sorted(EMULATORS)
        metafunc.parametrize("harness", partners, indirect=True)


@dataclass
class Harness:
    """A running emulator and connectors built against it; sleeps are recorded, not slept."""

    sandbox: RunningSandbox
    sleeps: list[float] = field(default_factory=list)

    @property
    def partner(self) -> str:
        return self.sandbox.partner

    @property
    def spec(self) -> PartnerSpec:
        """What the partner declares about itself."""
        return registry.partner(self.partner)

    @property
    def contract(self) -> Contract:
        """What the partner declares the conformance suite checks it for."""
        contract = self.spec.contract
        assert contract is not None, f"{self.partner} declares no contract"
        return contract

    def list_name(self, cohort: CohortInfo) -> str:
        """The list name the integration's default template gives ``cohort``."""
        template = self.spec.list_template
        return registry.list_name({"list_name_template": template}, cohort.name, cohort.id)

    def destination(self, **credentials: str) -> Destination:
        spec = self.spec
        body = self.sandbox.integration()
        settings = registry.check_settings(spec, body["settings"], allow_custom_endpoints=True)
        config = ConnectorConfig(
            credentials={**body["credentials"], **credentials},
            settings=settings,
            base_url=registry.base_url(spec, settings),
            project_id=7,
            retry=RetryPolicy(attempts=5, base_seconds=0.2, cap_seconds=2, budget_seconds=60),
            sleep=self.sleeps.append,
            rng=random.Random(1),
            guard=OutboundGuard(allow_private=True),  # the emulators listen on loopback
        )
        return spec.build(config)


def fresh(sandboxes: dict[str, RunningSandbox], partner: str) -> Harness:
    """A harness on ``partner``'s emulator, emptied of lists and faults."""
    sandbox = sandboxes[partner]
    sandbox.state.reset()
    return Harness(sandbox)


@pytest.fixture
def harness(request: pytest.FixtureRequest, sandboxes: dict[str, RunningSandbox]) -> Harness:
    """A harness on the emulator of the partner the test is parametrized with."""
    return fresh(sandboxes, request.param)


def members_of(keys: Iterable[str]) -> tuple[list[PartnerMember], int]:
    """``replace_members``' arguments for members known only by their keys."""
    made = [PartnerMember(key, key) for key in keys]
    return made, len(made)


def loopback_client(
    url: str,
    *,
    partner: str = "webhook",
    timeout: float = 5.0,
    max_reply_bytes: int = MAX_REPLY_BYTES,
) -> closing[PartnerClient]:
    """A partner client of one try for a test server on loopback (the guard lets it through)."""
    made = PartnerClient(
        partner=partner,
        base_url=url,
        headers={},
        secrets=[],
        budget=AccountBudget(1, None),
        retry=RetryPolicy(attempts=1),
        guard=OutboundGuard(allow_private=True),
        timeout=timeout,
        max_reply_bytes=max_reply_bytes,
    )
    return closing(made)
