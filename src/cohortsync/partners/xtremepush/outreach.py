"""Xtremepush's outreach events: the message events its integration page lists as not counting
toward MTU, and a message event call as Xtremepush sends and signs one."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from cohortsync.ingest.partners.auth import hmac_sha256_hex
from cohortsync.partners.spec import Outreach
from cohortsync.partners.xtremepush.events import SIGNATURE_HEADER, signed_message

EVENTS = (
    "xp.message.send.batch",
    "xp.message.delivery",
    "xp.message.bounce",
    "xp.message.open",
    "xp.message.click",
    "xp.message.unsubscribe",
    "xp.message.complaint",
)


def xtremepush_webhook(
    event: str, user_id: str, at: datetime, message_id: int = 1
) -> dict[str, Any]:
    """An Xtremepush message event: ``{event, time, properties}``."""
    return {
        "event": event,
        "time": int(at.timestamp()),
        "properties": {"user_id": user_id, "campaign_id": 77, "message_id": message_id},
    }


def headers(secret: str, body: bytes, signed_at: int | None = None) -> dict[str, str]:
    """Xtremepush signs the payload (at ``signed_at``, default now) with the secret."""
    at = int(time.time()) if signed_at is None else signed_at
    signature = hmac_sha256_hex(secret, signed_message(at, body))
    return {"Content-Type": "application/json", SIGNATURE_HEADER: f"t={at},v1={signature}"}


OUTREACH = Outreach(EVENTS, headers)
