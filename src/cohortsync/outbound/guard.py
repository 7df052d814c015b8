"""The outbound guard: before any connection to a user-given host, every address the host
resolves to is checked (:func:`~cohortsync.outbound.addresses.refusal`), and the connection
then goes to one of those checked addresses, never to a second lookup's answer (no DNS
rebinding). ``COHORTSYNC_ALLOW_PRIVATE_ENDPOINTS=1`` lets requests reach private addresses
(the partner emulators on loopback, an on-premises webhook)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from cohortsync.domain.errors import BatchError
from cohortsync.outbound.addresses import Resolver, refusal, system_resolver

ALLOW_HINT = "set COHORTSYNC_ALLOW_PRIVATE_ENDPOINTS=1 if this is intended"
LOOPBACK_NAMES = ("localhost", "localhost.localdomain")


class OutboundRefused(BatchError):
    """A request was not sent: its host is, or resolves to, an address requests may not reach.
    The message names the address and the setting that allows it."""

    code = "endpoint_refused"


def _loopback_name(name: str) -> bool:
    lowered = name.lower()
    return lowered in LOOPBACK_NAMES or lowered.endswith(".localhost")  # RFC 6761


@dataclass(frozen=True)
class OutboundGuard:
    """Where outbound requests may go: ``allow_private`` opens private addresses; ``resolve``
    is the name lookup and ``refuses`` the address rule (the system's and :func:`refusal`;
    tests give their own names, and an address standing for a public host)."""

    allow_private: bool = False
    resolve: Resolver = system_resolver
    refuses: Callable[[str], str | None] = refusal

    def addresses(self, host: str, port: int) -> list[str]:
        """The addresses to connect to for ``host``: all it resolves to, each checked; raises
        :class:`OutboundRefused` when any is refused, ``OSError`` when the name does not
        resolve. With ``allow_private`` the host itself, looked up when connecting."""
        if self.allow_private:
            return [host]
        name = host.strip("[]")
        name = name[:-1] if name.endswith(".") else name  # "localhost." is "localhost"
        if _loopback_name(name):
            raise OutboundRefused(f"{host} is a loopback name; {ALLOW_HINT}")
        found = list(self.resolve(name, port))
        if not found:
            raise OSError(f"{host} resolves to no address")
        for address in found:
            kind = self.refuses(address)
            if kind is not None:
                raise OutboundRefused(f"{host} resolves to {kind} {address}; {ALLOW_HINT}")
        return found
