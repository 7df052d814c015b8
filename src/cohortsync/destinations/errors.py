"""What a destination raises when a partner call fails; each class says what the caller does.

DestinationError                 a partner call failed
├── TransientError               try again later (5xx, timeout, connection refused)
│   └── RateLimited              the partner said slow down (429); ``retry_after`` seconds
└── PartnerConfigError           stop: credentials or settings are wrong, or the partner refuses
    │                            (400/401/403/404, free plan); the admin must act
    └── EndpointRefused          nothing was sent: the host is (or resolves to) an address
                                 partner calls may not reach (COHORTSYNC_ALLOW_PRIVATE_ENDPOINTS)

Every message is safe to show an admin and to log: connectors build it from the partner's
documented error field (never a reply body as such) with the integration's secrets redacted,
and it is cut to one line of at most :data:`MESSAGE_LIMIT` characters. The runner decides with
``isinstance``, never by parsing text.
"""

from __future__ import annotations

import re

from cohortsync.domain.errors import CohortsyncError

MESSAGE_LIMIT = 300
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f\s]+")


def trimmed(text: str, limit: int = MESSAGE_LIMIT) -> str:
    """``text`` on one line (control characters and runs of space made one space), cut to
    ``limit`` characters."""
    flat = _UNPRINTABLE.sub(" ", text).strip()
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


class DestinationError(CohortsyncError):
    """A call to a partner failed; ``status`` is the HTTP status, if there was a reply."""

    code = "partner_error"

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(trimmed(message))
        self.status = status


class TransientError(DestinationError):
    """Retrying later may succeed."""

    code = "partner_unavailable"


class RateLimited(TransientError):
    """The partner asked us to slow down; ``retry_after`` is its wish in seconds, if it said."""

    code = "partner_rate_limited"

    def __init__(self, message: str, status: int | None = 429, retry_after: float | None = None):
        super().__init__(message, status)
        self.retry_after = retry_after


class PartnerConfigError(DestinationError):
    """Retrying will not help: the credentials, settings or plan need an admin's attention."""

    code = "partner_refused"


class EndpointRefused(PartnerConfigError):
    """The outbound guard refused the partner's host before anything was sent."""

    code = "endpoint_refused"
