"""Each partner's emulator on loopback, and a connector pointed at it with instant retries."""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass, field

import pytest

from cohortsync.destinations import registry
from cohortsync.destinations.base import CohortInfo, Destination, PartnerMember
from cohortsync.destinations.connection import ConnectorConfig
from cohortsync.destinations.http import RetryPolicy
from cohortsync.sandbox.fleet import EMULATORS, RunningSandbox

PARTNERS = sorted(EMULATORS)


@dataclass
class Harness:
    """A running emulator and connectors built against it; sleeps are recorded, not slept."""

    sandbox: RunningSandbox
    sleeps: list[float] = field(default_factory=list)

    @property
    def partner(self) -> str:
        return self.sandbox.partner

    def list_name(self, cohort: CohortInfo) -> str:
        """The list name the integration's default template gives ``cohort``."""
        template = registry.partner(self.partner).list_template
        return registry.list_name({"list_name_template": template}, cohort.name, cohort.id)

    def destination(self, **credentials: str) -> Destination:
        spec = registry.partner(self.partner)
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
        )
        return spec.build(config)


def fresh(sandboxes: dict[str, RunningSandbox], partner: str) -> Harness:
    """A harness on ``partner``'s emulator, emptied of lists and faults."""
    sandbox = sandboxes[partner]
    sandbox.state.reset()
    return Harness(sandbox)


@pytest.fixture(params=PARTNERS)
def harness(request: pytest.FixtureRequest, sandboxes: dict[str, RunningSandbox]) -> Harness:
    return fresh(sandboxes, request.param)


def members_of(keys: Iterable[str]) -> tuple[list[PartnerMember], int]:
    """``replace_members``' arguments for members known only by their keys."""
    made = [PartnerMember(key, key) for key in keys]
    return made, len(made)
