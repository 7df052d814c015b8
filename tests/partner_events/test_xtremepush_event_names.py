"""Xtremepush's event constants (``EVENT_MESSAGE_DELIVERY``) are stored under the names Mixpanel's
Xtremepush page pairs them with (``xp.message.delivery``), so the MTU exemptions apply."""

from __future__ import annotations

from cohortsync.partners.xtremepush.events import event_name
from cohortsync.partners.xtremepush.outreach import xtremepush_webhook
from tests.mtu.seed_pages import exempt_lists
from tests.partner_events.conftest import Partners


def test_each_constant_on_the_seed_page_becomes_its_exempt_name() -> None:
    (seed, *_) = exempt_lists("xtremepush")
    pairs = seed.constants()
    assert len(pairs) == len(seed.items)  # the page gives every exempt event its constant
    for constant, name in pairs.items():
        assert event_name(constant) == name
        assert event_name(name) == name  # already in Mixpanel's form: kept
        lower = constant.removeprefix("EVENT_").lower()
        assert event_name(lower) == name  # message_delivery, as the webhooks page spells it


def test_outreach_sent_as_constants_is_exempt_from_mtu(partners: Partners) -> None:
    now = partners.server.clock.now()
    caller = partners.caller("xtremepush")
    for number, constant in enumerate(("EVENT_MESSAGE_SEND_BATCH", "EVENT_MESSAGE_DELIVERY")):
        reply = caller.send(xtremepush_webhook(constant, "mo", now, message_id=number))
        assert reply.status_code == 200, reply.text
    stored = sorted(e["event"] for e in partners.events())
    assert stored == ["xp.message.delivery", "xp.message.send.batch"]
    month = now.strftime("%Y-%m")
    path = f"/api/v1/projects/{partners.project.id}/mtu"
    report = partners.api.get(path, params={"month": month}).json()
    assert report["mtu"] == 0  # messaged, never engaged: not counted
    assert report["exempt"]["xtremepush"] == {"xp.message.delivery": 1, "xp.message.send.batch": 1}
    assert report["reached_only_by_exempt"]["xtremepush"] == 1
