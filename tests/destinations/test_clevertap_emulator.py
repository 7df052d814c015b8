"""CleverTap's emulator keeps CleverTap's documented rules (Upload User Profiles, the Custom List
API and its S3 upload), checked over HTTP on loopback without our connector; then the connector
against it where a rule meets a sync: deleted and hand-edited segments, the concurrency cap and
the free plan."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx
import orjson
import pytest

from cohortsync.destinations.base import CohortInfo, PartnerMember, SnapshotDestination
from cohortsync.destinations.errors import PartnerConfigError
from cohortsync.partners.clevertap.emulator import CleverTapSandbox
from cohortsync.sandbox.fleet import RunningSandbox
from tests.destinations.conftest import Harness, fresh, members_of

COHORT = CohortInfo(8, "Big spenders")


@pytest.fixture
def clevertap(sandboxes: dict[str, RunningSandbox]) -> Harness:
    return fresh(sandboxes, "clevertap")


def emulator(harness: Harness) -> CleverTapSandbox:
    state = harness.sandbox.state
    assert isinstance(state, CleverTapSandbox)
    return state


def api(harness: Harness) -> httpx.Client:
    """A client of the emulator's CleverTap API with the account's headers."""
    credentials = harness.sandbox.state.credentials
    return httpx.Client(
        base_url=harness.sandbox.server.url,
        headers={
            "X-CleverTap-Account-Id": credentials["account_id"],
            "X-CleverTap-Passcode": credentials["passcode"],
        },
    )


def profile(identity: str, **data: Any) -> dict[str, Any]:
    return {"type": "profile", "identity": identity, "profileData": data}


def upload(harness: Harness, records: list[Any]) -> httpx.Response:
    with api(harness) as client:
        return client.post("/1/upload", json={"d": records})


def presign(harness: Harness) -> str:
    with api(harness) as client:
        reply = client.post("/get_custom_list_segment_url")
    assert reply.status_code == 200
    body = reply.json()
    assert body["status"] == "success"
    expiry = datetime.strptime(body["expiry"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert abs(expiry - datetime.now(UTC) - timedelta(hours=24)) < timedelta(minutes=1)
    url: str = body["presignedS3URL"]
    assert url.startswith(f"{harness.sandbox.server.url}/_s3/")
    return url


def complete(harness: Harness, url: str, name: str, *, replace: bool) -> httpx.Response:
    body = {
        "name": name,
        "email": "ops@shop.io",
        "filename": "list.csv",
        "creator": "Ops",
        "url": url,
        "replace": replace,
    }
    with api(harness) as client:
        return client.post("/upload_custom_list_segment_completed", json=body)


def custom_list(harness: Harness, csv: str, name: str, *, replace: bool) -> httpx.Response:
    """The three documented steps; the PUT carries no CleverTap header, as S3 wants."""
    url = presign(harness)
    assert httpx.put(url, content=csv.encode()).status_code == 200
    return complete(harness, url, name, replace=replace)


def with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query)) | changes
    return urlunsplit(parts._replace(query=urlencode(query)))


def s3_error(reply: httpx.Response) -> str:
    assert reply.headers["content-type"].startswith("application/xml")
    return reply.text


# /1/upload ----------------------------------------------------------------------------------


def test_upload_skips_each_record_breaking_a_documented_limit_inside_a_200(
    clevertap: Harness,
) -> None:
    custom = {f"key{i}": i for i in range(257)}
    records = [
        profile("ann", Email="ann@x.io", **{"k" * 120: "v" * 512}),  # both limits met exactly
        profile("bob", **{"k" * 121: 1}),  # key over 120 bytes
        profile("cy", **{"é" * 61: 1}),  # 61 characters, 122 bytes
        profile("dee", note="v" * 513),  # value over 512 bytes
        profile("eve", **custom),  # 257 custom keys
        profile(""),  # no identity
        {**profile("fay"), "ts": "yesterday"},  # not epoch seconds
        {**profile("gus"), "type": "thing"},  # neither event nor profile
    ]
    reply = upload(clevertap, records)
    assert reply.status_code == 200
    body = reply.json()
    assert (body["status"], body["processed"]) == ("partial", 1)
    failed = body["unprocessed"]
    assert [(f["code"], f["error"].rsplit(": ", 1)[1]) for f in failed] == [
        (555, "2"),
        (555, "3"),
        (555, "4"),
        (522, "5"),
        (523, "6"),
        (525, "7"),
        (524, "8"),
    ]
    assert all("Skipped record number : " in f["error"] for f in failed)
    assert [orjson.loads(f["record"]) for f in failed] == records[1:]
    assert set(emulator(clevertap).profiles) == {"ann"}


def test_upload_of_only_broken_records_fails_and_over_1000_is_refused_whole(
    clevertap: Harness,
) -> None:
    body = upload(clevertap, [profile(""), profile("x" * 121)]).json()
    assert (body["status"], body["processed"], len(body["unprocessed"])) == ("fail", 0, 2)
    assert upload(clevertap, [profile("ok")]).json() == {
        "status": "success",
        "processed": 1,
        "unprocessed": [],
    }
    too_many = upload(clevertap, [profile(f"u{i}") for i in range(1001)])
    assert too_many.status_code == 400
    assert too_many.json()["status"] == "fail"
    assert set(emulator(clevertap).profiles) == {"ok"}


# The Custom List API ------------------------------------------------------------------------


def test_replace_makes_the_segment_exactly_the_file_and_append_adds_to_it(
    clevertap: Harness,
) -> None:
    state = emulator(clevertap)
    upload(clevertap, [profile(name) for name in ("ann", "bob", "cy", "dee")])
    first = custom_list(clevertap, "Type,Identity\ni,ann\ni,bob\ni,zed\n", "Spenders", replace=True)
    assert first.status_code == 200
    segment_id = first.json()["Segment ID"]
    assert first.json() == {"Segment ID": segment_id, "status": "success"}
    assert state.members("Spenders") == {"ann", "bob"}
    assert state.unmatched[str(segment_id)] == 1  # zed has no profile
    appended = custom_list(clevertap, "Type,Identity\ni,cy\n", "Spenders", replace=False)
    assert appended.json()["Segment ID"] == segment_id
    assert state.members("Spenders") == {"ann", "bob", "cy"}
    by_id = f"Type,Identity\ng,{state.clevertap_id('dee')}\ni,ann\n"
    assert custom_list(clevertap, by_id, "Spenders", replace=True).json()["Segment ID"] == (
        segment_id
    )
    assert state.members("Spenders") == {"ann", "dee"}
    shown = httpx.get(f"{clevertap.sandbox.server.url}/_sandbox/lists").json()
    assert shown == {"Spenders": {"id": str(segment_id), "members": ["ann", "dee"]}}


def test_the_presigned_url_is_the_only_credential_and_lasts_24_hours(
    clevertap: Harness,
) -> None:
    state = emulator(clevertap)
    with httpx.Client(base_url=clevertap.sandbox.server.url) as anonymous:
        assert anonymous.post("/get_custom_list_segment_url").status_code == 401
    url = presign(clevertap)
    csv = b"Type,Identity\ni,ann\n"
    tampered = with_query(url, **{"X-Amz-Signature": "0" * 64})
    refused = httpx.put(tampered, content=csv)
    assert refused.status_code == 403
    assert "<Code>SignatureDoesNotMatch</Code>" in s3_error(refused)
    longer = httpx.put(with_query(url, **{"X-Amz-Expires": "604800"}), content=csv)
    assert "<Code>SignatureDoesNotMatch</Code>" in s3_error(longer)
    unknown = httpx.put(url.replace("/_s3/", "/_s3/x"), content=csv)
    assert unknown.status_code == 403
    assert "<Code>AccessDenied</Code>" in s3_error(unknown)
    now = time.time()
    state.clock = lambda: now + timedelta(hours=24, minutes=1).total_seconds()
    expired = httpx.put(url, content=csv)
    assert expired.status_code == 403
    assert "Request has expired" in s3_error(expired)
    state.clock = lambda: now + timedelta(hours=23).total_seconds()
    assert httpx.put(url, content=csv).status_code == 200


def test_an_upload_without_content_length_is_refused_as_s3_does(clevertap: Harness) -> None:
    url = presign(clevertap)
    chunked = httpx.put(url, content=iter([b"Type,Identity\n", b"i,ann\n"]))
    assert chunked.status_code == 411
    assert "<Code>MissingContentLength</Code>" in s3_error(chunked)
    assert complete(clevertap, url, "Spenders", replace=True).status_code == 400  # no file


@pytest.mark.parametrize(
    ("csv", "message"),
    [
        ("Identity,Type\nann,i\n", "header row must be Type,Identity"),
        ("identity\nann\n", "header row must be Type,Identity"),
        ("", "header row must be Type,Identity"),
        ("Type,Identity\ni,ann\nx,bob\n", "Row 3 must be i,<identity> or g,<CleverTap ID>"),
    ],
)
def test_a_file_that_is_not_a_custom_list_is_refused_clearly(
    clevertap: Harness, csv: str, message: str
) -> None:
    upload(clevertap, [profile("ann")])
    reply = custom_list(clevertap, csv, "Spenders", replace=True)
    assert reply.status_code == 400
    assert reply.json()["status"] == "fail"
    assert message in reply.json()["error"]
    assert emulator(clevertap).lists == {}


def test_the_completed_call_wants_every_field_and_a_url_of_this_account(
    clevertap: Harness,
) -> None:
    url = presign(clevertap)
    assert httpx.put(url, content=b"Type,Identity\n").status_code == 200
    with api(clevertap) as client:
        no_email = client.post(
            "/upload_custom_list_segment_completed",
            json={"name": "S", "filename": "f.csv", "creator": "Ops", "url": url},
        )
    assert no_email.status_code == 400
    assert no_email.json()["error"] == "Some mandatory parameter was missing: email"
    forged = with_query(url, **{"X-Amz-Signature": "f" * 64})
    assert complete(clevertap, forged, "S", replace=True).status_code == 400
    assert emulator(clevertap).lists == {}
    assert complete(clevertap, url, "S", replace=True).status_code == 200


# The connector against it ----------------------------------------------------------------


def spenders(destination: SnapshotDestination, count: int, start: int = 0) -> list[PartnerMember]:
    made = []
    for i in range(start, start + count):
        member = destination.member(f"user-{i}", {"$email": f"user-{i}@x.io"})
        assert isinstance(member, PartnerMember)
        made.append(member)
    return made


def snapshot_destination(harness: Harness) -> SnapshotDestination:
    destination = harness.destination()
    assert isinstance(destination, SnapshotDestination)
    return destination


def test_a_deleted_segment_comes_back_when_a_snapshot_is_uploaded_under_its_name(
    clevertap: Harness,
) -> None:
    destination = snapshot_destination(clevertap)
    state = emulator(clevertap)
    name = clevertap.list_name(COHORT)
    batch = spenders(destination, 3)
    accepted = destination.add_members(destination.ensure_list(name, COHORT), batch).accepted
    made = destination.replace_members(destination.ensure_list(name, COHORT), *members_of(accepted))
    assert made.name == name and state.members(name) == set(accepted)
    deleted = httpx.post(
        f"{clevertap.sandbox.server.url}/_sandbox/lists/{made.id}", json={"delete": True}
    )
    assert deleted.status_code == 200
    assert state.members(name) == set()
    calls = len(state.requests)
    found = destination.find_list(made.id, COHORT)
    assert found is not None and found.name == name
    assert len(state.requests) == calls  # no call can tell it is gone
    again = destination.replace_members(found, *members_of(accepted))
    assert again.id != made.id
    assert state.lists[again.id].name == name
    assert state.members(name) == set(accepted)


def test_a_hand_edit_of_the_segment_is_undone_by_the_next_snapshot(clevertap: Harness) -> None:
    destination = snapshot_destination(clevertap)
    state = emulator(clevertap)
    name = clevertap.list_name(COHORT)
    target = destination.ensure_list(name, COHORT)
    accepted = destination.add_members(target, spenders(destination, 4)).accepted
    upload(clevertap, [profile("intruder")])
    made = destination.replace_members(target, *members_of(accepted))
    state.edit_by_hand(made.id, add=["intruder"], remove=[accepted[0]])
    assert state.members(name) == {"intruder", *accepted[1:]}
    assert destination.replace_members(made, *members_of(accepted)).id == made.id
    assert state.members(name) == set(accepted)


def test_three_syncs_of_one_account_never_exceed_fifteen_concurrent_requests(
    clevertap: Harness,
) -> None:
    state = emulator(clevertap)
    state.faults.latency_seconds = 0.05
    destinations = [snapshot_destination(clevertap) for _ in range(3)]
    target = destinations[0].ensure_list(clevertap.list_name(COHORT), COHORT)
    accepted: list[str] = []
    errors: list[BaseException] = []

    def send(index: int) -> None:
        destination = destinations[index % 3]
        batch = spenders(destination, 2, start=index * 2)
        try:
            accepted.extend(destination.add_members(target, batch).accepted)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=send, args=(i,)) for i in range(40)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert 1 < state.peak_in_flight <= 15
    assert all(d.stats.rate_limited == 0 for d in destinations)
    assert len(state.profiles) == 80
    destinations[1].replace_members(target, *members_of(accepted))
    assert len(state.members(target.name)) == 80


def test_the_free_plan_refusal_is_shown_verbatim(clevertap: Harness) -> None:
    emulator(clevertap).faults.free_plan = True
    destination = snapshot_destination(clevertap)
    target = destination.ensure_list(clevertap.list_name(COHORT), COHORT)
    accepted = destination.add_members(target, spenders(destination, 2)).accepted
    with pytest.raises(PartnerConfigError) as refused:
        destination.replace_members(target, *members_of(accepted))
    assert refused.value.message == "App may not submit cohort updates from Mixpanel"
    assert emulator(clevertap).lists == {}
