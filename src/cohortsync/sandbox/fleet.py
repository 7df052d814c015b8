"""All four emulators started together on loopback (``cohortsync sandbox``, tests, demos)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette

from cohortsync.sandbox import clevertap, iterable, webhook, xtremepush
from cohortsync.sandbox.faults import SandboxState
from cohortsync.sandbox.server import RunningServer, start


@dataclass
class RunningSandbox:
    """One emulator: its state (credentials, lists, faults) and where it listens."""

    partner: str
    state: SandboxState
    server: RunningServer

    @property
    def base_url(self) -> str:
        """The URL an integration's ``base_url`` (or the webhook's ``url``) points at."""
        return self.server.url + ("/cohorts" if self.partner == "webhook" else "")

    def integration(self) -> dict[str, Any]:
        """The POST body that connects an integration to this emulator."""
        settings: dict[str, Any] = {"base_url": self.server.url}
        if self.partner == "webhook":
            settings = {"url": self.base_url}
        return {
            "type": self.partner,
            "credentials": dict(self.state.credentials),
            "settings": settings,
        }


EMULATORS: dict[str, tuple[Callable[[], SandboxState], Callable[[Any], Starlette]]] = {
    "iterable": (iterable.IterableSandbox, iterable.create_app),
    "clevertap": (clevertap.CleverTapSandbox, clevertap.create_app),
    "xtremepush": (xtremepush.XtremepushSandbox, xtremepush.create_app),
    "webhook": (webhook.WebhookSandbox, webhook.create_app),
}


def start_sandbox(partner: str, host: str = "127.0.0.1", port: int = 0) -> RunningSandbox:
    """Start one partner's emulator."""
    make_state, make_app = EMULATORS[partner]
    state = make_state()
    return RunningSandbox(partner, state, start(make_app(state), host, port))


def start_all(host: str = "127.0.0.1", first_port: int = 0) -> dict[str, RunningSandbox]:
    """Start every emulator (on consecutive ports from ``first_port``, or any free ones)."""
    return {
        partner: start_sandbox(partner, host, first_port + offset if first_port else 0)
        for offset, partner in enumerate(EMULATORS)
    }
