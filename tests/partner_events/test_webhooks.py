"""Partner events in (R-EVT-1, R-EVT-2): the partners' documented payloads stored under the
right name, $source, time and user; authentication, replays and bad bodies."""

from __future__ import annotations

import base64
import gzip
import json
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import sqlalchemy as sa

from cohortsync.partners.clevertap.outreach import clevertap_campaign, clevertap_event
from cohortsync.partners.iterable.outreach import iterable_webhook
from cohortsync.partners.xtremepush.events import SIGNATURE_HEADER
from cohortsync.partners.xtremepush.outreach import xtremepush_webhook
from cohortsync.services.ingestion import IngestionService
from cohortsync.storage.tables import profiles
from tests.helpers import profile
from tests.partner_events.conftest import USERS, Partners

FIXTURES = Path(__file__).parent / "fixtures"


def fixture_cases(partner: str) -> list[dict[str, Any]]:
    document = json.loads((FIXTURES / f"{partner}.json").read_text())
    assert document["_source"].count("https://") >= 1  # every fixture names its source
    cases: list[dict[str, Any]] = document["cases"]
    return cases


@pytest.mark.parametrize("partner", ["iterable", "clevertap", "xtremepush"])
def test_documented_payloads_are_stored_with_name_source_time_and_user(
    partners: Partners, partner: str
) -> None:
    caller = partners.caller(partner)
    cases = fixture_cases(partner)
    for case in cases:
        reply = caller.send(case["payload"])
        assert reply.status_code == 200, reply.text
        assert reply.json()["received"] == 1
    stored = partners.events()
    assert len(stored) == len(cases)
    received_ms = int(partners.server.clock.now().timestamp() * 1000)
    expected = sorted(
        (
            c["name"],
            received_ms
            if c["time"] == "received"
            else int(datetime.fromisoformat(c["time"]).timestamp() * 1000),
            c["user"],
        )
        for c in cases
    )
    got = sorted(
        (e["event"], e["properties"]["time"], e["properties"]["distinct_id"]) for e in stored
    )
    assert got == expected
    assert {e["properties"]["$source"] for e in stored} == {partner}
    assert all(len(e["properties"]["$insert_id"]) == 32 for e in stored)


def test_iterable_user_is_found_by_user_id_then_email(partners: Partners) -> None:
    now = partners.server.clock.now()
    caller = partners.caller("iterable")
    # $iterable_user_id wins over a different email; an unknown userId falls back to the email
    assert (
        caller.send(
            iterable_webhook("emailOpen", "nobody@example.com", now, user_id="it-grace")
        ).status_code
        == 200
    )
    assert (
        caller.send(
            iterable_webhook("emailClick", "ada@example.com", now, user_id="zz-9")
        ).status_code
        == 200
    )
    # userId that is a distinct_id (simplified ID merge sends those)
    assert (
        caller.send(
            iterable_webhook("pushOpen", "other@example.com", now, user_id="mo")
        ).status_code
        == 200
    )
    owners = {e["event"]: e["properties"]["distinct_id"] for e in partners.events()}
    assert owners == {"emailOpen": "grace", "emailClick": "ada", "pushOpen": "mo"}


def test_an_email_finds_its_user_whatever_its_case(partners: Partners) -> None:
    engage = IngestionService(partners.server.engine, partners.server.clock).engage(
        [
            {
                "$token": partners.project.token,
                "$distinct_id": "kim",
                "$set": {"$email": "Kim@Example.COM"},
            }
        ]
    )
    assert not engage.failed
    now = partners.server.clock.now()
    caller = partners.caller("iterable")
    assert caller.send(iterable_webhook("emailOpen", "kim@example.com", now)).status_code == 200
    assert caller.send(iterable_webhook("emailClick", "ADA@EXAMPLE.COM", now)).status_code == 200
    owners = {e["event"]: e["properties"]["distinct_id"] for e in partners.events()}
    assert owners == {"emailOpen": "kim", "emailClick": "ada"}


def test_an_exact_email_wins_over_another_case_and_non_ascii_is_matched_exactly(
    partners: Partners,
) -> None:
    updates = [
        {"$distinct_id": "a-upper", "$set": {"$email": "Lee@Example.com"}},
        {"$distinct_id": "b-lower", "$set": {"$email": "lee@example.com"}},
        {"$distinct_id": "jose", "$set": {"$email": "JOSÉ@Example.com"}},
    ]
    service = IngestionService(partners.server.engine, partners.server.clock)
    assert not service.engage([{"$token": partners.project.token, **u} for u in updates]).failed
    now = partners.server.clock.now()
    caller = partners.caller("iterable")
    for name, email in [
        ("emailOpen", "lee@example.com"),  # b-lower's exactly, though a-upper sorts first
        ("emailClick", "LEE@EXAMPLE.COM"),  # nobody's exactly: the smallest id in any case
        ("emailSend", "JOSÉ@Example.com"),  # exactly, non-ASCII letters and all
    ]:
        assert caller.send(iterable_webhook(name, email, now)).status_code == 200
    owners = {e["event"]: e["properties"]["distinct_id"] for e in partners.events()}
    assert owners == {"emailOpen": "b-lower", "emailClick": "a-upper", "emailSend": "jose"}


def test_unknown_users_are_stored_under_the_partner_id_and_create_no_profile(
    partners: Partners,
) -> None:
    now = partners.server.clock.now()
    assert (
        partners.caller("iterable")
        .send(iterable_webhook("emailSend", "stranger@example.com", now))
        .status_code
        == 200
    )
    assert (
        partners.caller("xtremepush")
        .send(xtremepush_webhook("message_delivery", "xp-stranger", now))
        .status_code
        == 200
    )
    owners = sorted(e["properties"]["distinct_id"] for e in partners.events())
    assert owners == ["stranger@example.com", "xp-stranger"]
    for owner in owners:  # the API knows them from their events, but nothing was made for them
        known = profile(partners.api, partners.token, partners.project.id, owner).json()
        assert known["properties"] == {} and known["identified"] is False
    with partners.server.engine.connect() as connection:
        stored = connection.execute(sa.select(profiles.c.distinct_id)).scalars().all()
    assert sorted(stored) == sorted(USERS)


def test_a_replayed_call_is_stored_once(partners: Partners) -> None:
    now = partners.server.clock.now()
    payloads = {
        "iterable": iterable_webhook("emailSend", "ada@example.com", now),
        "clevertap": clevertap_event("Notification Sent", "ct-lin", now),
        "xtremepush": xtremepush_webhook("message_delivery", "mo", now),
    }
    for partner, payload in payloads.items():
        for _ in range(3):
            assert partners.caller(partner).send(payload).status_code == 200
    # A campaign call has no time of its own: a retry a minute later keeps the first receipt's.
    campaign = clevertap_campaign(42, ["ct-lin", "ct-unknown"])
    assert partners.caller("clevertap").send(campaign).json()["received"] == 2
    first = partners.server.clock.now()
    partners.server.clock.advance(timedelta(minutes=1))
    assert partners.caller("clevertap").send(campaign).status_code == 200
    stored = partners.events()
    assert len(stored) == 3 + 2
    deliveries = [e for e in stored if e["event"] == "Webhook Delivered"]
    assert {e["properties"]["time"] for e in deliveries} == {int(first.timestamp() * 1000)}
    assert sorted(e["properties"]["distinct_id"] for e in deliveries) == ["ct-unknown", "lin"]


def test_a_campaign_call_sent_again_after_the_retry_window_is_a_new_delivery(
    partners: Partners,
) -> None:
    campaign = clevertap_campaign(43, ["ct-lin"])
    caller = partners.caller("clevertap")
    assert caller.send(campaign).json()["received"] == 1
    partners.server.clock.advance(timedelta(minutes=59))
    assert caller.send(campaign).status_code == 200  # CleverTap's retry: stored once
    assert len(partners.events()) == 1
    partners.server.clock.advance(timedelta(hours=2))
    assert caller.send(campaign).status_code == 200  # the live campaign fired again
    times = sorted(e["properties"]["time"] for e in partners.events())
    assert len(times) == 2 and times[1] - times[0] == (59 + 120) * 60_000


def test_a_campaign_key_value_named_event_does_not_rename_the_delivery(
    partners: Partners,
) -> None:
    campaign = clevertap_campaign(44, ["ct-lin"])
    campaign["key_values"] = {"event": "Black Friday", "offer": "20%", "$source": "campaign-x"}
    assert partners.caller("clevertap").send(campaign).status_code == 200
    [stored] = partners.events()
    assert stored["event"] == "Webhook Delivered"  # an outreach event, exempt from MTU
    assert stored["properties"]["$source"] == "clevertap"  # ... with CleverTap's $source
    assert (stored["properties"]["event"], stored["properties"]["offer"]) == (
        "Black Friday",
        "20%",
    )


def test_an_iterable_event_without_created_at_is_stored_at_its_receipt(
    partners: Partners,
) -> None:
    now = partners.server.clock.now()
    payload = {"email": "ada@example.com", "eventName": "journeyExit", "dataFields": {}}
    for _ in range(2):
        assert partners.caller("iterable").send(payload).status_code == 200
    [stored] = partners.events()
    assert stored["event"] == "journeyExit"
    assert stored["properties"]["time"] == int(now.timestamp() * 1000)


def test_a_clevertap_record_keeps_its_own_insert_id(partners: Partners) -> None:
    now = partners.server.clock.now()
    record = clevertap_event("Notification Sent", "ct-lin", now)
    record["properties"]["$insert_id"] = "ct-own-id-1"
    assert partners.caller("clevertap").send(record).status_code == 200
    [stored] = partners.events()
    assert stored["properties"]["$insert_id"] == "ct-own-id-1"


def test_a_campaign_test_call_stores_nothing(partners: Partners) -> None:
    test_call = {"is_test": True, "targetId": 1234, "key_values": {"key": "value"},
                 "profiles": [{"Identity": "UserId", "Email": "x@example.com"}]}  # fmt: skip
    reply = partners.caller("clevertap").send(test_call)
    assert reply.status_code == 200 and reply.json()["received"] == 0
    assert partners.events() == []


@pytest.mark.parametrize("partner", ["iterable", "clevertap", "xtremepush"])
def test_wrong_or_missing_credentials_are_refused_and_store_nothing(
    partners: Partners, partner: str
) -> None:
    now = partners.server.clock.now()
    payload = {
        "iterable": iterable_webhook("emailSend", "ada@example.com", now),
        "clevertap": clevertap_event("Notification Sent", "ct-lin", now),
        "xtremepush": xtremepush_webhook("message_delivery", "mo", now),
    }[partner]
    wrong = partners.caller(partner, secret="cswh_" + "x" * 43).send(payload)
    assert wrong.status_code == 401
    assert "does not match" in wrong.json()["error"]["message"]
    url = partners.integrations[partner]["webhook"]["path"]
    bare = partners.server.client().post(url, content=orjson.dumps(payload))
    assert bare.status_code == 401
    assert "no credentials" in bare.json()["error"]["message"]
    secret = partners.integrations[partner]["webhook"]["secret"]
    assert secret not in wrong.text + bare.text
    assert partners.events() == []


@pytest.mark.parametrize(
    "authorization",
    [
        "{secret}",  # Iterable's Basic auth type: the token as typed
        "Basic {secret}",
        "Bearer {secret}",
        "OAuth2 {secret}",
        "Basic {basic}",  # real Basic auth, the secret as password
    ],
)
def test_iterable_presents_its_token_in_any_documented_form(
    partners: Partners, authorization: str
) -> None:
    secret = partners.integrations["iterable"]["webhook"]["secret"]
    basic = base64.b64encode(f"iterable:{secret}".encode()).decode()
    body = orjson.dumps(
        iterable_webhook("emailSend", "ada@example.com", partners.server.clock.now())
    )
    url = partners.server.url + partners.integrations["iterable"]["webhook"]["path"]
    headers = {"Authorization": authorization.format(secret=secret, basic=basic)}
    assert partners.api.post(url, content=body, headers=headers).status_code == 200
    assert len(partners.events()) == 1


def test_xtremepush_signatures_are_checked_with_a_replay_window(partners: Partners) -> None:
    caller = partners.caller("xtremepush")
    body = orjson.dumps(xtremepush_webhook("message_open", "mo", partners.server.clock.now()))
    client = partners.server.client()
    now_s = int(partners.server.clock.now().timestamp())
    stale = client.post(
        caller.url, content=body, headers=caller.headers(body, signed_at=now_s - 301)
    )
    assert stale.status_code == 401 and "replay window" in stale.json()["error"]["message"]
    headers = caller.headers(body, signed_at=now_s - 10)
    tampered = client.post(caller.url, content=body.replace(b"mo", b"mx"), headers=headers)
    assert tampered.status_code == 401 and "signature" in tampered.json()["error"]["message"]
    # during Xtremepush's own key rotation it sends two v1 values; one matching is enough
    headers[SIGNATURE_HEADER] = headers[SIGNATURE_HEADER].replace("v1=", "v1=00,v1=")
    assert client.post(caller.url, content=body, headers=headers).status_code == 200
    assert len(partners.events()) == 1


CREATED = {"createdAt": "2026-11-02 20:21:04 +00:00"}
MALFORMED = [
    ("iterable", {"email": "ada@example.com", "dataFields": CREATED}, "eventName"),
    (
        "iterable",
        {"email": "a@example.com", "eventName": "emailSend", "dataFields": {"createdAt": "today"}},
        "dataFields.createdAt",
    ),
    ("iterable", {"eventName": "emailSend", "dataFields": CREATED}, "email"),
    (
        "clevertap",
        {"event": "Notification Sent", "properties": {"time": 1762300800}},
        "properties.distinct_id",
    ),
    (
        "clevertap",
        {"targetId": 1, "profiles": [{"Email": "x@example.com"}]},
        "profiles[0].identity",
    ),
    ("xtremepush", {"event": "message_open", "time": 1762300800}, "properties.user_id"),
    (
        "xtremepush",
        {"event": "message_open", "time": "soon", "properties": {"user_id": "mo"}},
        "time",
    ),
]


@pytest.mark.parametrize(("partner", "payload", "field"), MALFORMED)
def test_a_malformed_payload_is_a_400_naming_the_field(
    partners: Partners, partner: str, payload: dict[str, Any], field: str
) -> None:
    reply = partners.caller(partner).send(payload)
    assert reply.status_code == 400, reply.text
    assert reply.json()["error"]["path"] == field
    assert (
        field.rsplit(".", maxsplit=1)[-1].split("[", maxsplit=1)[0]
        in reply.json()["error"]["message"]
    )
    assert partners.events() == []


def test_bad_json_and_a_mixed_batch(partners: Partners) -> None:
    caller = partners.caller("iterable")
    broken = b'{"email": "ada@example.com", "eventName": '
    reply = partners.server.client().post(
        caller.url, content=broken, headers=caller.headers(broken)
    )
    assert reply.status_code == 400 and "not valid JSON" in reply.json()["error"]["message"]
    now = partners.server.clock.now()
    batch = [
        iterable_webhook("emailSend", "ada@example.com", now),
        {"email": "ada@example.com", "eventName": "emailOpen", "dataFields": {"createdAt": "?"}},
        iterable_webhook("emailOpen", "grace@example.com", now),
    ]
    mixed = caller.send(batch)
    assert mixed.status_code == 400
    assert mixed.json()["received"] == 2
    assert [f["index"] for f in mixed.json()["failed_records"]] == [1]
    assert len(partners.events()) == 2  # the valid ones are kept


def test_a_body_over_the_cap_is_413_and_gzip_is_accepted(partners: Partners) -> None:
    caller = partners.caller("iterable")
    now = partners.server.clock.now()
    big = [
        iterable_webhook("emailSend", "ada@example.com", now, campaign_id=i) for i in range(6000)
    ]
    body = orjson.dumps(big)
    assert len(body) > 1_048_576
    reply = partners.server.client().post(caller.url, content=body, headers=caller.headers(body))
    assert reply.status_code == 413
    small = orjson.dumps(big[:10])
    headers = {**caller.headers(small), "Content-Encoding": "gzip"}
    zipped = partners.server.client().post(
        caller.url, content=gzip.compress(small), headers=headers
    )
    assert zipped.status_code == 200 and zipped.json()["received"] == 10


def test_the_secret_is_shown_once_and_rotates_with_an_overlap(partners: Partners) -> None:
    base = f"/api/v1/projects/{partners.project.id}/integrations"
    iterable = partners.integrations["iterable"]
    old = iterable["webhook"]["secret"]
    assert old.startswith("cswh_") and len(old) >= 40
    shown = partners.api.get(f"{base}/{iterable['id']}").json()
    assert shown["webhook"] == {"path": f"/webhooks/{iterable['id']}"}
    assert old not in partners.api.get(base).text
    rotated = partners.api.post(f"{base}/{iterable['id']}/webhook-secret")
    assert rotated.status_code == 200
    new = rotated.json()["webhook"]["secret"]
    assert new != old
    now = partners.server.clock.now()
    assert (
        partners.caller("iterable", new)
        .send(iterable_webhook("emailSend", "ada@example.com", now))
        .status_code
        == 200
    )
    assert (
        partners.caller("iterable", old)
        .send(iterable_webhook("emailOpen", "ada@example.com", now))
        .status_code
        == 200
    )
    partners.server.clock.advance(timedelta(hours=25))
    late = partners.caller("iterable", old).send(
        iterable_webhook("emailClick", "ada@example.com", now)
    )
    assert late.status_code == 401
    assert (
        partners.caller("iterable", new)
        .send(iterable_webhook("emailClick", "ada@example.com", now))
        .status_code
        == 200
    )


def test_members_cannot_rotate_and_a_disconnected_integration_refuses_events(
    partners: Partners,
) -> None:
    from cohortsync.domain.accounts import Role
    from tests.helpers import accounts as accounts_at_test_cost

    accounts = accounts_at_test_cost(partners.server.engine)
    accounts.create_user("m@example.com", "correct horse battery", Role.MEMBER, partners.project.id)
    member = accounts.create_token("m@example.com")
    base = f"/api/v1/projects/{partners.project.id}/integrations"
    xp = partners.integrations["xtremepush"]
    refused = partners.server.client().post(
        f"{base}/{xp['id']}/webhook-secret", headers={"Authorization": f"Bearer {member}"}
    )
    assert refused.status_code == 403
    assert partners.api.delete(f"{base}/{xp['id']}").status_code == 200
    now = partners.server.clock.now()
    gone = partners.caller("xtremepush").send(xtremepush_webhook("message_open", "mo", now))
    assert gone.status_code == 409 and "disconnected" in gone.json()["error"]["message"]
    nowhere = partners.server.client().post("/webhooks/999", content=b"{}")
    assert nowhere.status_code == 404
    assert partners.events() == []


def test_xtremepush_signs_with_the_key_it_made_once_an_admin_pastes_it(
    partners: Partners,
) -> None:
    base = f"/api/v1/projects/{partners.project.id}/integrations"
    xp = partners.integrations["xtremepush"]
    ours = xp["webhook"]["secret"]
    theirs = "xp-generated-signing-key-0123456789"  # Xtremepush's "Webhook Secret Key"
    body = orjson.dumps(xtremepush_webhook("message_open", "mo", partners.server.clock.now()))
    signed = partners.caller("xtremepush", theirs).headers(body)
    xp_url = partners.server.url + xp["webhook"]["path"]
    assert partners.api.post(xp_url, content=body, headers=signed).status_code == 401

    reply = partners.api.post(f"{base}/{xp['id']}/webhook-secret", json={"secret": theirs})
    assert reply.status_code == 200, reply.text
    assert theirs not in reply.text and "secret" not in reply.json()["webhook"]  # not shown back
    assert partners.api.post(xp_url, content=body, headers=signed).status_code == 200
    # the secret it replaced keeps working through the overlap
    again = xtremepush_webhook("message_click", "mo", partners.server.clock.now())
    assert partners.caller("xtremepush", ours).send(again).status_code == 200
    assert len(partners.events()) == 2

    too_short = partners.api.post(f"{base}/{xp['id']}/webhook-secret", json={"secret": "short"})
    assert too_short.status_code == 400 and "16-512" in too_short.json()["error"]["message"]
    iterable = partners.integrations["iterable"]
    not_theirs = partners.api.post(
        f"{base}/{iterable['id']}/webhook-secret", json={"secret": theirs}
    )
    assert not_theirs.status_code == 409


def test_concurrent_calls_are_each_stored_and_answered_for_themselves(
    partners: Partners,
) -> None:
    now = partners.server.clock.now()
    caller = partners.caller("iterable")
    good = [
        iterable_webhook("emailSend", f"{user}@example.com", now, message_id=f"{i:032x}")
        for i, user in enumerate(["ada", "grace", "lin", "mo"] * 10)
    ]
    bad = {"email": "ada@example.com", "eventName": "emailOpen", "dataFields": {"createdAt": "?"}}
    payloads = [*good, bad, *good[:5]]  # five replays among them

    def send(payload: dict[str, Any]) -> httpx.Response:
        with httpx.Client(timeout=30) as client:
            body = orjson.dumps(payload)
            return client.post(caller.url, content=body, headers=caller.headers(body))

    with ThreadPoolExecutor(max_workers=12) as pool:
        replies = list(pool.map(send, payloads))
    statuses = [reply.status_code for reply in replies]
    assert statuses == [200] * 40 + [400] + [200] * 5
    assert all(reply.json()["received"] == 1 for reply in replies if reply.status_code == 200)
    assert replies[40].json()["failed_records"][0]["field"] == "dataFields.createdAt"
    stored = partners.events()
    assert len(stored) == 40  # every good call once, replays included
    owners = sorted(e["properties"]["distinct_id"] for e in stored)
    assert owners == sorted(["ada", "grace", "lin", "mo"] * 10)
