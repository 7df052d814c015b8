"""The partner events part of the demo: each partner "sends a campaign" to the members on its
list and reports back through its webhook, as it would (signed or with its token), and the
month's MTU shows that users who were only messaged do not count."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import Any

import orjson
from sqlalchemy.engine import Engine

from cohortsync.clock import Clock
from cohortsync.domain.accounts import Project
from cohortsync.keyring import Keyring
from cohortsync.partners.clevertap.outreach import clevertap_event
from cohortsync.partners.iterable.outreach import iterable_webhook
from cohortsync.partners.xtremepush.outreach import xtremepush_webhook
from cohortsync.sandbox.outreach import partner_headers
from cohortsync.services import mtu
from cohortsync.services.partner_events import PartnerEventService

# partner → (outreach sent to everyone, engagement by some); which of these count is the
# exemption list's business
CAMPAIGN = {
    "iterable": ("emailSend", "emailOpen"),
    "clevertap": ("Notification Sent", "Notification Clicked"),
    "xtremepush": ("message_delivery", "message_open"),
}
ENGAGED_SHARE = 0.3


def _payload(partner: str, name: str, key: str, clock: Clock, n: int) -> dict[str, Any]:
    at = clock.now() - timedelta(minutes=5)
    if partner == "iterable":  # Iterable's keys are an email, or a userId
        email, user_id = (key, None) if "@" in key else ("", key)
        return iterable_webhook(name, email, at, user_id=user_id, message_id=f"{n:032x}")
    if partner == "clevertap":
        return clevertap_event(name, key, at, **{"Campaign ID": 1})
    return xtremepush_webhook(name, key, at, n)


def send_campaigns(
    engine: Engine,
    keyring: Keyring,
    clock: Clock,
    project: Project,
    lists: Iterable[tuple[str, int, str, set[str]]],
    say: Callable[[str], None] = print,
    seed: int = 11,
) -> dict[str, Any]:
    """For each (partner, integration id, webhook secret, member keys): the partner's events
    for every member, through the webhook; returns this month's MTU report."""
    rng = random.Random(seed)
    service = PartnerEventService(engine, keyring, clock, max_body_bytes=1 << 20)
    for partner, integration_id, secret, keys in lists:
        sent, engaged = CAMPAIGN[partner]
        stored = 0
        for n, key in enumerate(sorted(keys)):
            names = [sent, engaged] if rng.random() < ENGAGED_SHARE else [sent]
            for name in names:
                body = orjson.dumps(_payload(partner, name, key, clock, n))
                headers = partner_headers(partner, secret, body)
                result = service.receive(integration_id, headers, body)
                stored += result.received
        say(f"{partner}: {stored} campaign events came back through its webhook")
    report = mtu.MtuReports(engine).report(project.id, mtu.Month.of(clock.now())).as_json()
    reached = ", ".join(f"{p} {n:,}" for p, n in report["reached_only_by_exempt"].items())
    say(
        f"MTU {report['month']}: {report['mtu']:,} users; {report['exempt_events']:,} outreach "
        f"events exempt; users reached only by outreach, not counted: {reached}"
    )
    return report
