"""What the sync engine is given rather than reaching for: where its partner connectors come
from, and where runs asked for now execute (a :class:`RunDispatch`). (The member source is
``sync.plan.MemberSource``; syncs and runs are ``SyncStore``.)"""

from __future__ import annotations

from typing import Protocol

from cohortsync.destinations.base import Destination
from cohortsync.destinations.http import RetryPolicy
from cohortsync.domain.integrations import Integration
from cohortsync.domain.sync_status import RunTrigger
from cohortsync.domain.syncs import SyncRun


class Destinations(Protocol):
    """The integrations a sync exports to, and connectors for them (the integrations service
    in the application; anything with these three methods in a test or a benchmark)."""

    def get(self, project_id: int, integration_id: int) -> Integration:
        """The integration as it is now (NotFound when it is gone)."""
        ...

    def connector(self, integration: Integration, retry: RetryPolicy | None = None) -> Destination:
        """A connector for the integration, with ``retry`` as the policy of its calls."""
        ...

    def flag(self, project_id: int, integration_id: int, message: str) -> None:
        """Mark the integration as refused by the partner, with the partner's words."""
        ...


class RunDispatch(Protocol):
    """Starts begun runs somewhere in the background."""

    def submit(self, sync_id: int, trigger: RunTrigger) -> SyncRun:
        """Open a run now (Conflict if one is in progress) and have it executed."""
        ...

    def resume(self, run: SyncRun) -> None:
        """Have a run already begun (a confirmed blocked run) executed."""
        ...

    def start(self) -> None:
        """Start looking for due syncs in the background."""
        ...

    def close(self) -> None:
        """Stop, letting running runs reach a checkpoint."""
        ...
