"""The partners' side of partner events: calls to an integration's webhook authenticated as its
partner does (each partner's ``outreach`` module shapes the bodies), for demos, benchmarks and
tests."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import orjson

from cohortsync.partners.registry import PARTNERS


def partner_headers(
    partner: str, secret: str, body: bytes, signed_at: int | None = None
) -> dict[str, str]:
    """The headers ``partner`` sends ``body`` with: a token or a signature of the payload (at
    ``signed_at``, default now), as the partner's outreach declares."""
    outreach = PARTNERS[partner].outreach
    if outreach is None:
        raise ValueError(f"{partner} sends no events")
    return outreach.headers(secret, body, signed_at)


@dataclass
class PartnerCaller:
    """Posts partner events to one integration's webhook, authenticated as the partner does."""

    url: str
    partner: str
    secret: str
    client: httpx.Client

    def headers(self, body: bytes, signed_at: int | None = None) -> dict[str, str]:
        """The partner's headers for ``body``."""
        return partner_headers(self.partner, self.secret, body, signed_at)

    def send(self, payload: Any) -> httpx.Response:
        """POST one payload."""
        body = orjson.dumps(payload)
        return self.client.post(self.url, content=body, headers=self.headers(body))
