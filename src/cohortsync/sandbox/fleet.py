"""Every partner's emulator started together on loopback (``cohortsync sandbox``, tests, demos),
as each partner's spec declares it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cohortsync.partners.registry import Parts
from cohortsync.partners.spec import Emulator
from cohortsync.sandbox.faults import SandboxState
from cohortsync.sandbox.server import RunningServer, start

EMULATORS: Mapping[str, Emulator] = Parts(lambda spec: spec.emulator)


@dataclass
class RunningSandbox:
    """One emulator: its state (credentials, lists, faults) and where it listens."""

    partner: str
    state: SandboxState
    server: RunningServer

    @property
    def base_url(self) -> str:
        """The URL an integration's ``base_url`` (or the webhook's ``url``) points at."""
        return self.server.url + EMULATORS[self.partner].path

    def integration(self) -> dict[str, Any]:
        """The POST body that connects an integration to this emulator."""
        return {
            "type": self.partner,
            "credentials": dict(self.state.credentials),
            "settings": {EMULATORS[self.partner].url_setting: self.base_url},
        }


def start_sandbox(partner: str, host: str = "127.0.0.1", port: int = 0) -> RunningSandbox:
    """Start one partner's emulator."""
    emulator = EMULATORS[partner]
    state = emulator.state()
    return RunningSandbox(partner, state, start(emulator.app(state), host, port))


def start_all(host: str = "127.0.0.1", first_port: int = 0) -> dict[str, RunningSandbox]:
    """Start every emulator (on consecutive ports from ``first_port``, or any free ones)."""
    return {
        partner: start_sandbox(partner, host, first_port + offset if first_port else 0)
        for offset, partner in enumerate(EMULATORS)
    }
