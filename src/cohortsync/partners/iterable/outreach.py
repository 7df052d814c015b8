"""Iterable's outreach events: the system webhook events its integration page lists as not
counting toward MTU, and a system webhook call as Iterable sends one."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from cohortsync.partners.spec import Outreach

EVENTS = (
    "emailSend",
    "emailBounce",
    "emailComplaint",
    "emailSendSkip",
    "emailSubscribe",
    "emailUnSubscribe",
    "hostedUnsubscribeClick",
    "inAppSend",
    "inAppSendSkip",
    "pushBounce",
    "pushSend",
    "pushSendSkip",
    "smsBounce",
    "smsReceived",
    "smsSend",
    "smsSendSkip",
    "webPushSendSkip",
)


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


def headers(secret: str, body: bytes, signed_at: int | None = None) -> dict[str, str]:
    """Iterable's "Basic" auth type sends the token as typed, bare (its System Webhooks page)."""
    return {"Content-Type": "application/json", "Authorization": secret}


OUTREACH = Outreach(EVENTS, headers)
