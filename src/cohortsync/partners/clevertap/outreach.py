"""CleverTap's outreach events: the system events its integration page lists as not counting
toward MTU, and its event records and webhook campaign calls as CleverTap sends them."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from cohortsync.partners.spec import Outreach

EVENTS = (
    "Notification Sent",
    "Notification Viewed",
    "Notification Clicked",
    "Push Impressions",
    "Notification Replied",
    "Push Unregistered",
    "Control Group",
    "Channel Unsubscribed",
    "Reachable By",
    "Notification Delivered",
    "AB Experiment Rendered",
    "AB Experiment Stopped",
    "AB Experiment Rolled Out",
    "Geocluster Entered",
    "Geocluster Exited",
    "Reply Sent",
    "App Uninstalled",
    "Webhook Delivered",
    "State Transitioned",
    "UTM Visited",
)


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


def headers(secret: str, body: bytes, signed_at: int | None = None) -> dict[str, str]:
    """CleverTap presents the secret as a bearer token."""
    return {"Content-Type": "application/json", "Authorization": f"Bearer {secret}"}


OUTREACH = Outreach(EVENTS, headers)
