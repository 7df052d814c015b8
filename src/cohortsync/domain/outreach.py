"""Which events do not make a user count toward MTU (R-MTU-1): the partners' outreach events,
as their integration pages list them, and Mixpanel's identity-management events.

These lists only *seed* the ``mtu_exemptions`` table; the report reads the table, which an
operator may edit (``cohortsync mtu exemptions``).
"""

from __future__ import annotations

from typing import NamedTuple

from cohortsync.domain.identity import IDENTITY_EVENTS

ANY_SOURCE = "*"  # an exemption that applies whatever the event's $source


class Exemption(NamedTuple):
    """An event name that is not qualifying for MTU when it carries ``source`` as $source."""

    source: str
    event: str


XTREMEPUSH_OUTREACH = (
    "xp.message.send.batch",
    "xp.message.delivery",
    "xp.message.bounce",
    "xp.message.open",
    "xp.message.click",
    "xp.message.unsubscribe",
    "xp.message.complaint",
)

ITERABLE_OUTREACH = (
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

CLEVERTAP_OUTREACH = (
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


def seeded_exemptions() -> list[Exemption]:
    """The exemption list a new database starts with."""
    return [
        *(Exemption(ANY_SOURCE, name) for name in sorted(IDENTITY_EVENTS)),
        *(Exemption("xtremepush", name) for name in XTREMEPUSH_OUTREACH),
        *(Exemption("iterable", name) for name in ITERABLE_OUTREACH),
        *(Exemption("clevertap", name) for name in CLEVERTAP_OUTREACH),
    ]
