"""The partners' side of partner events: calls shaped as Iterable, CleverTap and Xtremepush send
them (see ``cohortsync.ingest.partners``), authenticated as each does, for demos, benchmarks and
tests."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson

from cohortsync.ingest.partners.auth import hmac_sha256_hex
from cohortsync.ingest.partners.xtremepush import SIGNATURE_HEADER, signed_message


def iterable_webhook(
    event_name: str,
    email: str,
    at: datetime,
    *,
    user_id: str | None = None,
    campaign_id: int = 1001,
    message_id: str = "5f0c1b2a3d4e5f60718293a4b5c6d7e8",
) -> dict[str, Any]:
    """An Iterable system webhook body: ``{email, eventName, userId?, dataFields}``."""
    body: dict[str, Any] = {
        "email": email,
        "eventName": event_name,
        "dataFields": {
            "email": email,
            "createdAt": at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S +00:00"),
            "campaignId": campaign_id,
            "templateId": campaign_id * 10,
            "messageId": message_id,
            "campaignName": f"Campaign {campaign_id}",
            "channelId": 3420,
        },
    }
    if user_id is not None:
        body["userId"] = user_id
    return body


def clevertap_event(name: str, identity: str, at: datetime, **properties: Any) -> dict[str, Any]:
    """A CleverTap event record (the shape of its Mixpanel export)."""
    return {
        "event": name,
        "properties": {"distinct_id": identity, "time": int(at.timestamp()), **properties},
    }


def clevertap_campaign(
    target_id: int, identities: Iterable[str], event: str | None = None
) -> dict[str, Any]:
    """A CleverTap webhook campaign call (broadcast: a list of profiles)."""
    key_values: dict[str, Any] = {"campaign": f"target-{target_id}"}
    if event is not None:
        key_values["event"] = event
    return {
        "targetId": target_id,
        "key_values": key_values,
        "profiles": [{"Identity": i, "ObjectId": f"__g{i}"} for i in identities],
    }


def xtremepush_webhook(
    event: str, user_id: str, at: datetime, message_id: int = 1
) -> dict[str, Any]:
    """An Xtremepush message event: ``{event, time, properties}``."""
    return {
        "event": event,
        "time": int(at.timestamp()),
        "properties": {"user_id": user_id, "campaign_id": 77, "message_id": message_id},
    }


def partner_headers(
    partner: str, secret: str, body: bytes, signed_at: int | None = None
) -> dict[str, str]:
    """The headers ``partner`` sends ``body`` with: Iterable and CleverTap present the secret
    as a token, Xtremepush signs the payload (at ``signed_at``, default now)."""
    headers = {"Content-Type": "application/json"}
    if partner == "xtremepush":
        at = int(time.time()) if signed_at is None else signed_at
        signature = hmac_sha256_hex(secret, signed_message(at, body))
        headers[SIGNATURE_HEADER] = f"t={at},v1={signature}"
    elif partner == "iterable":
        # Iterable's "Basic" auth type sends the token as typed, bare (its System Webhooks page)
        headers["Authorization"] = secret
    else:
        headers["Authorization"] = f"Bearer {secret}"
    return headers


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
