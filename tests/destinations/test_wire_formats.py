"""Each connector's requests and its reading of replies, against bodies from the vendors' docs
(fixtures under ``fixtures/``, each naming the page it came from). The partner is a plain
function behind httpx's transport seam; the emulators are tested by the conformance suite."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from cohortsync.destinations import registry
from cohortsync.destinations.base import (
    CohortInfo,
    Destination,
    PartnerList,
    PartnerMember,
    ReadableDestination,
    SnapshotDestination,
)
from cohortsync.destinations.connection import ConnectorConfig
from cohortsync.destinations.errors import PartnerConfigError, TransientError
from cohortsync.destinations.http import RetryPolicy
from cohortsync.domain.errors import BatchError
from tests.destinations.conftest import members_of

FIXTURES = Path(__file__).parent / "fixtures"
COHORT = CohortInfo(12, "Cart abandoners", "left a cart")
Responder = Callable[[httpx.Request], httpx.Response]


def fixture(partner: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((FIXTURES / f"{partner}.json").read_text())
    assert loaded["sources"], "every fixture file names the docs it came from"
    return loaded


class Recorder:
    """The partner: answers with documented bodies and keeps the requests it got."""

    def __init__(self, respond: Responder) -> None:
        self.requests: list[httpx.Request] = []
        self._respond = respond

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self._respond(request)

    def body(self, index: int = -1) -> Any:
        return json.loads(self.requests[index].content)


def connector(
    partner: str, recorder: Recorder, credentials: dict[str, str], **settings: Any
) -> Destination:
    spec = registry.partner(partner)
    checked = registry.check_settings(spec, settings, allow_custom_endpoints=False)
    config = ConnectorConfig(
        credentials=credentials,
        settings=checked,
        base_url=registry.base_url(spec, checked),
        project_id=3,
        retry=RetryPolicy(attempts=2, base_seconds=0),
        sleep=lambda _: None,
        transport=httpx.MockTransport(recorder),
    )
    return spec.build(config)


def member(destination: Destination, distinct_id: str, **profile: Any) -> PartnerMember:
    made = destination.member(distinct_id, profile)
    assert isinstance(made, PartnerMember)
    return made


# Iterable ---------------------------------------------------------------------------------


def iterable_lists(lists: dict[str, Any], created: dict[str, Any]) -> Recorder:
    """Iterable answering ``GET /api/lists`` with ``lists`` and creating ``created``."""
    return Recorder(
        lambda r: (
            httpx.Response(200, json=lists)
            if r.method == "GET"
            else httpx.Response(200, json=created)
        )
    )


def test_iterable_finds_a_list_by_name_or_creates_it_on_the_regional_host() -> None:
    docs = fixture("iterable")
    recorder = iterable_lists(docs["get_lists_response"], docs["create_list_response"])
    iterable = connector("iterable", recorder, {"api_key": "k1"}, region="eu")
    assert iterable.ensure_list("Even Higher Value", COHORT).id == "982908"
    created = iterable.ensure_list("List One", COHORT)
    assert created.id == "1064799"
    first = recorder.requests[0]
    assert str(first.url) == "https://api.eu.iterable.com/api/lists"
    assert first.headers["Api-Key"] == "k1"
    assert recorder.body()["name"] == docs["create_list_request"]["name"]


def test_iterable_finds_its_list_by_id_and_leaves_lists_other_syncs_own() -> None:
    docs = fixture("iterable")
    recorder = iterable_lists(docs["get_lists_response"], docs["create_list_response"])
    iterable = connector("iterable", recorder, {"api_key": "k1"})
    found = iterable.find_list("982908", COHORT)
    assert found == PartnerList("982908", "Even Higher Value", COHORT)  # the partner's name
    assert iterable.find_list("1064799", COHORT) is None  # not among the lists: deleted
    made = iterable.ensure_list("Even Higher Value", COHORT, taken=frozenset({"982908"}))
    assert made.id == "1064799"  # the same-named list belongs to another sync: a new one
    assert [r.method for r in recorder.requests] == ["GET", "GET", "GET", "POST"]


def test_iterable_subscribers_carry_the_email_and_only_the_iterable_user_id() -> None:
    docs = fixture("iterable")
    recorder = Recorder(lambda r: httpx.Response(200, json=docs["subscribe_response_failed"]))
    iterable = connector("iterable", recorder, {"api_key": "k1"})
    good = member(iterable, "u1", **{"$email": "caio.silveira@mailinator.com", "$first_name": "C"})
    bad = member(iterable, "u2", **{"$email": "invalid@email"})
    by_id = member(iterable, "u3", **{"$email": "x@y.io", "$iterable_user_id": "it-3"})
    outcome = iterable.add_members(PartnerList("1064799", "l", COHORT), [good, bad, by_id])
    assert str(recorder.requests[0].url) == "https://api.iterable.com/api/lists/subscribe"
    example = docs["subscribe_request"]
    assert recorder.body() == {
        "listId": example["listId"],
        "subscribers": [
            {
                "email": example["subscribers"][0]["email"],
                "dataFields": {
                    "$distinct_id": "u1",
                    "$email": "caio.silveira@mailinator.com",
                    "$first_name": "C",
                },
            },
            {
                "email": "invalid@email",
                "dataFields": {"$distinct_id": "u2", "$email": "invalid@email"},
            },
            {
                "email": "x@y.io",
                "userId": "it-3",
                "dataFields": {
                    "$distinct_id": "u3",
                    "$email": "x@y.io",
                    "$iterable_user_id": "it-3",
                },
            },
        ],
        "updateExistingUsersOnly": False,
    }
    assert [m.key for m in (good, bad, by_id)] == [
        "caio.silveira@mailinator.com",
        "invalid@email",
        "x@y.io",
    ]
    assert outcome.accepted == [good.key, by_id.key]
    assert [(r.key, r.reason) for r in outcome.rejected] == [("invalid@email", "invalid email")]


def test_iterable_failed_updates_in_a_200_are_rejections_by_email_or_user_id() -> None:
    docs = fixture("iterable")
    body = docs["subscribe_response_failed_updates"]
    recorder = Recorder(lambda r: httpx.Response(200, json=body))
    iterable = connector("iterable", recorder, {"api_key": "k1"})
    fine = member(iterable, "u1", **{"$email": "fine@example.com"})
    forgotten = member(iterable, "u2", **{"$email": "gone@example.com"})
    conflict = member(
        iterable, "u3", **{"$email": "c@example.com", "$iterable_user_id": "it-taken"}
    )
    odd = member(iterable, "u4", **{"$email": "odd-data@example.com"})
    outcome = iterable.add_members(PartnerList("7", "l", COHORT), [fine, forgotten, conflict, odd])
    assert outcome.accepted == ["fine@example.com"]
    assert [(r.key, r.reason) for r in outcome.rejected] == [
        ("gone@example.com", "user forgotten (GDPR)"),
        ("c@example.com", "userId conflict"),
        ("odd-data@example.com", "invalid data fields"),
    ]


def test_iterable_unsubscribes_by_email_and_keeps_the_channel_subscription() -> None:
    docs = fixture("iterable")
    recorder = Recorder(lambda r: httpx.Response(200, json=docs["unsubscribe_response_not_found"]))
    iterable = connector("iterable", recorder, {"api_key": "k1"})
    leaving = member(
        iterable, "u1", **{"$email": "caio.silveira@mailinator.com", "$iterable_user_id": "it-1"}
    )
    absent = member(iterable, "u2", **{"$email": "never-here@example.com"})
    bad = member(iterable, "u3", **{"$email": "invalid@email"})
    outcome = iterable.remove_members(PartnerList("1064799", "l", COHORT), [leaving, absent, bad])
    assert str(recorder.requests[0].url) == "https://api.iterable.com/api/lists/unsubscribe"
    assert recorder.body() == {
        **docs["unsubscribe_request"],
        "subscribers": [
            {"email": "caio.silveira@mailinator.com"},
            {"email": "never-here@example.com"},
            {"email": "invalid@email"},
        ],
    }
    assert recorder.body()["channelUnsubscribe"] is False
    # A user the project does not have is on no list: that removal is done.
    assert outcome.accepted == [leaving.key, absent.key]
    assert [(r.key, r.reason) for r in outcome.rejected] == [("invalid@email", "invalid email")]


@pytest.mark.parametrize(
    ("status", "body", "message"),
    [
        (401, "bad_api_key_401", "BadApiKey: Invalid API key"),
        (400, "invalid_list_400", "error.lists.invalidListId(999999999)"),  # code "Success"
    ],
)
def test_iterable_refusals_are_judged_by_status(status: int, body: str, message: str) -> None:
    docs = fixture("iterable")
    recorder = Recorder(lambda r: httpx.Response(status, json=docs[body]))
    iterable = connector("iterable", recorder, {"api_key": "k1"})
    with pytest.raises(PartnerConfigError, match=re.escape(message)):
        iterable.add_members(
            PartnerList("999999999", "l", COHORT), [member(iterable, "u", **{"$email": "a@b.co"})]
        )
    assert len(recorder.requests) == 1  # not retried


def test_iterable_reads_members_as_emails_from_plain_text() -> None:
    docs = fixture("iterable")
    recorder = Recorder(lambda r: httpx.Response(200, text=docs["get_users_text"]))
    iterable = connector("iterable", recorder, {"api_key": "k1"})
    assert isinstance(iterable, ReadableDestination)
    assert list(iterable.read_members(PartnerList("7", "l", COHORT))) == [
        "user1@example.com",
        "user2@example.com",
    ]
    request = recorder.requests[0]
    assert request.url.path == "/api/lists/getUsers"
    assert dict(request.url.params) == {"listId": "7"}  # emails: no preferUserId


def test_iterable_skips_members_without_email() -> None:
    iterable = connector("iterable", Recorder(lambda r: httpx.Response(200)), {"api_key": "k"})
    skipped = iterable.member("u1", {"$iterable_user_id": "it-1"})
    assert not isinstance(skipped, PartnerMember)
    assert skipped.reason == "missing email"


# CleverTap --------------------------------------------------------------------------------


def clevertap(recorder: Recorder, **settings: Any) -> Destination:
    return connector("clevertap", recorder, {"account_id": "ACC-1", "passcode": "p4ss"}, **settings)


def clevertap_custom_list(docs: dict[str, Any]) -> Responder:
    """CleverTap and its S3 bucket answering the three Custom List steps as documented."""
    presigned = docs["custom_list_url_response"]["presignedS3URL"]

    def respond(request: httpx.Request) -> httpx.Response:
        if request.method == "PUT" and str(request.url) == presigned:
            return httpx.Response(200)
        if request.url.path == "/get_custom_list_segment_url":
            return httpx.Response(200, json=docs["custom_list_url_response"])
        if request.url.path == "/upload_custom_list_segment_completed":
            return httpx.Response(200, json=docs["custom_list_completed_response"])
        return httpx.Response(404, json={"status": "fail", "error": "no such path"})

    return respond


def as_json(value: Any) -> Any:
    """A fixture reply kept as recorded text, or already JSON."""
    return json.loads(value) if isinstance(value, str) else value


@pytest.mark.parametrize("reply", ["upload_partial", "upload_partial_status"])
def test_clevertap_uploads_profiles_with_identity_and_reads_skipped_records(reply: str) -> None:
    docs = fixture("clevertap")
    recorder = Recorder(lambda r: httpx.Response(200, json=as_json(docs[reply])))
    partner = clevertap(recorder, region="in1", export_properties=["plan"])
    first = member(partner, "mp-1", **{"$email": "a@b.io", "plan": "pro", "secret": "x"})
    second = member(partner, "mp-2", **{"$CleverTap_user_id": "ct-2"})
    outcome = partner.add_members(PartnerList("1698765432", "s", COHORT), [first, second])
    assert len(recorder.requests) == 1  # profiles only: the segment is set by the snapshot
    upload = recorder.requests[0]
    assert str(upload.url) == "https://in1.api.clevertap.com/1/upload"
    assert upload.headers["X-CleverTap-Account-Id"] == "ACC-1"
    assert upload.headers["X-CleverTap-Passcode"] == "p4ss"
    assert upload.headers["Content-Type"].startswith("application/json")
    records = recorder.body(0)["d"]
    shape = docs["upload_request"]["d"][0]
    assert all(set(r) == set(shape) for r in records)
    assert all(isinstance(r["ts"], int) and r["ts"] > 1_700_000_000 for r in records)
    assert [r["identity"] for r in records] == ["mp-1", "ct-2"]  # $CleverTap_user_id first
    assert records[0]["type"] == "profile"
    assert records[0]["profileData"] == {"$distinct_id": "mp-1", "Email": "a@b.io", "plan": "pro"}
    # record number 2 was skipped (code 523) inside the HTTP 200
    assert outcome.accepted == ["mp-1"]
    assert outcome.rejected[0].key == "ct-2" and outcome.rejected[0].reason.startswith("523 ")


def test_clevertap_a_fail_reply_naming_no_record_refuses_the_whole_batch() -> None:
    body = {"status": "fail", "processed": 0, "error": "Account is suspended"}
    recorder = Recorder(lambda r: httpx.Response(200, json=body))
    partner = clevertap(recorder)
    batch = [member(partner, "a"), member(partner, "b")]
    outcome = partner.add_members(PartnerList("1", "s", COHORT), batch)
    assert outcome.accepted == []
    assert [(r.key, r.reason) for r in outcome.rejected] == [
        ("a", "Account is suspended"),
        ("b", "Account is suspended"),
    ]


def test_clevertap_lists_and_removals_need_no_call() -> None:
    recorder = Recorder(lambda r: httpx.Response(500))
    partner = clevertap(recorder, list_name_template="cohort {cohort_id}: {cohort_name}")
    assert partner.capabilities.snapshot_membership
    made = partner.ensure_list("cohort 12: Cart abandoners", COHORT)
    assert (made.id, made.name) == ("pending-12", "cohort 12: Cart abandoners")  # no segment yet
    found = partner.find_list("1698765432", COHORT)
    assert found == PartnerList("1698765432", "cohort 12: Cart abandoners", COHORT)
    leaving = [member(partner, "u1"), member(partner, "u2")]
    outcome = partner.remove_members(found, leaving)
    assert outcome.accepted == ["u1", "u2"] and outcome.rejected == []
    assert recorder.requests == []


def test_clevertap_snapshot_is_the_three_documented_custom_list_steps() -> None:
    docs = fixture("clevertap")
    recorder = Recorder(clevertap_custom_list(docs))
    partner = clevertap(recorder, region="in1")
    assert isinstance(partner, SnapshotDestination)
    target = PartnerList("", "mixpanel_Cart abandoners_12", COHORT)
    keys = iter(["user-1@example.com", "user-2@example.com", 'ann, "the first"'])
    made = partner.replace_members(target, *members_of(keys))

    presign, upload, completed = recorder.requests
    assert (presign.method, str(presign.url)) == (
        "POST",
        "https://in1.api.clevertap.com/get_custom_list_segment_url",
    )
    assert presign.headers["X-CleverTap-Account-Id"] == "ACC-1"
    assert presign.headers["X-CleverTap-Passcode"] == "p4ss"
    assert presign.content == b""  # no body parameters
    presigned = docs["custom_list_url_response"]["presignedS3URL"]
    assert (upload.method, str(upload.url)) == ("PUT", presigned)
    assert not [h for h in upload.headers if h.lower().startswith("x-clevertap")]
    assert "authorization" not in upload.headers  # the URL's signature is the credential
    assert upload.headers["Content-Length"] == str(len(upload.content))  # S3: no chunking
    assert upload.content.decode() == (
        docs["custom_list_csv"] + 'i,"ann, ""the first"""\n'
    )  # header Type,Identity, one i,<identity> row per key, CSV-quoted
    sent = json.loads(completed.content)
    assert (
        str(completed.url) == "https://in1.api.clevertap.com/upload_custom_list_segment_completed"
    )
    assert completed.headers["X-CleverTap-Passcode"] == "p4ss"
    assert set(sent) == set(docs["custom_list_completed_request"])
    assert sent == {
        "name": "mixpanel_Cart abandoners_12",
        "email": "noreply@cohortsync.invalid",
        "filename": "cohort-12.csv",
        "creator": "cohortsync",
        "url": presigned,
        "replace": True,
    }
    assert made == PartnerList("1698765432", "mixpanel_Cart abandoners_12", COHORT)


def test_clevertap_snapshot_names_the_connector_and_the_admins_email() -> None:
    recorder = Recorder(clevertap_custom_list(fixture("clevertap")))
    partner = clevertap(recorder, connector_name="Mixpanel cohorts", segment_email="ops@shop.io")
    assert isinstance(partner, SnapshotDestination)
    partner.replace_members(PartnerList("", "s", COHORT), *members_of([]))
    sent = recorder.body()
    assert (sent["creator"], sent["email"]) == ("Mixpanel cohorts", "ops@shop.io")
    assert recorder.requests[1].content == b"Type,Identity\n"  # an empty cohort empties it
    with pytest.raises(BatchError, match="segment_email must be an email address"):
        clevertap(recorder, segment_email="ops at shop")


def test_clevertap_snapshot_of_many_keys_is_written_from_an_iterator() -> None:
    recorder = Recorder(clevertap_custom_list(fixture("clevertap")))
    partner = clevertap(recorder)
    assert isinstance(partner, SnapshotDestination)
    partner.replace_members(
        PartnerList("", "s", COHORT), *members_of(f"user-{i}" for i in range(200_000))
    )
    lines = recorder.requests[1].content.decode().splitlines()
    assert len(lines) == 200_001
    assert (lines[0], lines[1], lines[-1]) == ("Type,Identity", "i,user-0", "i,user-199999")


def test_clevertap_custom_list_refusal_is_the_message() -> None:
    refusal = {"status": "fail", "error": "App may not submit cohort updates from Mixpanel"}
    recorder = Recorder(lambda r: httpx.Response(403, json=refusal))
    partner = clevertap(recorder)
    assert isinstance(partner, SnapshotDestination)
    with pytest.raises(PartnerConfigError, match=r"^App may not submit cohort updates"):
        partner.replace_members(PartnerList("", "s", COHORT), *members_of(["u1"]))
    assert len(recorder.requests) == 1  # not retried, nothing uploaded


def test_clevertap_bad_credentials_body_is_the_message() -> None:
    docs = fixture("clevertap")
    recorder = Recorder(lambda r: httpx.Response(401, text=docs["bad_credentials_401"]))
    with pytest.raises(PartnerConfigError, match=r"^Account ID is not valid$"):
        clevertap(recorder).check()
    assert recorder.requests[0].url.path == "/v1/connect"
    assert str(recorder.requests[0].url).startswith("https://api.clevertap.com/")  # EU default


def test_clevertap_record_errors_without_a_number_fall_back_to_the_record() -> None:
    docs = fixture("clevertap")
    body = docs["upload_invalid_email"]
    recorder = Recorder(lambda r: httpx.Response(200, json=body))
    partner = clevertap(recorder)
    outcome = partner.add_members(PartnerList("s", "s", COHORT), [member(partner, "only")])
    assert [(r.key, r.reason) for r in outcome.rejected] == [
        ("only", "515 Profile data is incorrect. Email is not valid")
    ]


# Xtremepush -------------------------------------------------------------------------------


def test_xtremepush_posts_method_and_model_with_the_token_in_the_body() -> None:
    docs = fixture("xtremepush")
    recorder = Recorder(lambda r: httpx.Response(200, json={"code": 200, "success": True}))
    partner = connector("xtremepush", recorder, {"app_token": "tok"}, region="us")
    outcome = partner.add_members(
        PartnerList("ID_of_YOUR_LIST", "l", COHORT),
        [member(partner, "user-1"), member(partner, "user-2")],
    )
    request = recorder.requests[0]
    assert str(request.url) == "https://api.us.xtremepush.com/api/external/import/list"
    assert set(recorder.body()) == set(docs["list_import_request"])
    assert recorder.body()["apptoken"] == "tok"
    assert recorder.body()["items"] == ["user-1", "user-2"]  # ids only, no profile data
    assert outcome.accepted == ["user-1", "user-2"]


def test_xtremepush_error_envelope_is_the_message() -> None:
    docs = fixture("xtremepush")
    body = {"code": 401, "success": False, "message": "Authentication failed", "errors": ["token"]}
    assert set(body) == set(docs["error_response_fields"])
    recorder = Recorder(lambda r: httpx.Response(401, json=body))
    with pytest.raises(PartnerConfigError, match="Authentication failed"):
        connector("xtremepush", recorder, {"app_token": "bad"}).check()
    assert (
        str(recorder.requests[0].url)
        == "https://external-api.xtremepush.com/api/external/list/list"
    )


def xtremepush_lists(*replies: dict[str, Any]) -> tuple[Recorder, Destination]:
    """An Xtremepush connector whose partner answers ``replies`` in turn."""
    answers = iter(replies)
    recorder = Recorder(lambda r: httpx.Response(200, json=next(answers)))
    return recorder, connector("xtremepush", recorder, {"app_token": "YOUR_APPTOKEN"})


def test_xtremepush_finds_its_list_by_id_and_none_once_gone() -> None:
    inferred = fixture("xtremepush")["inferred"]
    recorder, partner = xtremepush_lists(
        {"code": 200, "success": True, "data": [{"id": 77, "title": "Renamed by hand"}]},
        {"code": 200, "success": True, "data": []},
    )
    found = partner.find_list("77", COHORT)
    assert found == PartnerList("77", "Renamed by hand", COHORT)  # the partner's title now
    wanted = {**inferred["list_by_id_request"], "condition": [["id", "=", "77"]]}
    assert recorder.body() == wanted
    assert str(recorder.requests[0].url).endswith("/api/external/list/list")
    assert partner.find_list("77", COHORT) is None


def test_xtremepush_ignored_condition_still_finds_the_right_list() -> None:
    lists = [{"id": 5, "title": "a"}, {"id": 9, "title": "b"}]
    everything = {"code": 200, "success": True, "data": lists}
    _, partner = xtremepush_lists(everything, everything)
    assert partner.find_list("9", COHORT) == PartnerList("9", "b", COHORT)
    assert partner.find_list("6", COHORT) is None


def test_xtremepush_ensure_list_skips_taken_ids_then_creates_by_title() -> None:
    inferred = fixture("xtremepush")["inferred"]
    same_title = [{"id": 501, "title": "Cart abandoners"}, {"id": 502, "title": "Cart abandoners"}]
    listed = {"code": 200, "success": True, "data": same_title}
    recorder, partner = xtremepush_lists(
        listed, listed, listed, {"code": 200, "success": True, "model": {"id": 503}}
    )
    assert partner.ensure_list("Cart abandoners", COHORT).id == "501"
    assert recorder.body() == inferred["list_by_title_request"]
    assert partner.ensure_list("Cart abandoners", COHORT, frozenset({"501"})).id == "502"
    created = partner.ensure_list("Cart abandoners", COHORT, frozenset({"501", "502"}))
    assert created == PartnerList("503", "Cart abandoners", COHORT, created=True)
    assert recorder.body() == inferred["create_list_request"]
    assert str(recorder.requests[-1].url).endswith("/api/external/create/list")


def test_xtremepush_items_of_a_list_it_no_longer_has_stop_with_its_message() -> None:
    gone = {"code": 404, "success": False, "message": "list 77 not found", "errors": {"id": []}}
    recorder = Recorder(lambda r: httpx.Response(404, json=gone))
    partner = connector("xtremepush", recorder, {"app_token": "tok"})
    with pytest.raises(PartnerConfigError, match="list 77 not found") as refused:
        partner.remove_members(PartnerList("77", "l", COHORT), [member(partner, "user-1")])
    assert refused.value.status == 404
    assert str(recorder.requests[0].url).endswith("/api/external/delete/list-item")
    assert recorder.body() == {"apptoken": "tok", "id": "77", "items": ["user-1"]}


# Webhook ----------------------------------------------------------------------------------


def webhook(recorder: Recorder) -> Destination:
    credentials = {"username": "mp", "password": "s3cret"}
    return connector("webhook", recorder, credentials, url="https://hooks.example.com/cohorts")


def test_webhook_request_has_the_documented_shape_and_basic_auth() -> None:
    docs = fixture("webhook")
    recorder = Recorder(lambda r: httpx.Response(200, json=docs["reply_success"]))
    partner = webhook(recorder)
    ada = member(partner, "ada", **{"$email": "ada@x.io", "$first_name": "Ada", "$last_name": "L"})
    partner.add_members(partner.ensure_list("Cart abandoners", COHORT), [ada])
    sent = recorder.body()
    example = docs["request_example"]
    assert set(sent) == set(example)
    assert set(sent["parameters"]) == set(example["parameters"])
    assert sent["action"] == "add_members"
    assert sent["parameters"]["mixpanel_cohort_id"] == "12"
    assert sent["parameters"]["page_info"] == {"total_pages": 1, "page_count": 1}
    assert sent["parameters"]["members"] == [
        {"mixpanel_distinct_id": "ada", "email": "ada@x.io", "first_name": "Ada", "last_name": "L"}
    ]
    assert recorder.requests[0].headers["Authorization"] == "Basic bXA6czNjcmV0"
    assert str(recorder.requests[0].url) == "https://hooks.example.com/cohorts"


def test_webhook_failure_reply_is_judged_by_its_error_code() -> None:
    docs = fixture("webhook")
    recorder = Recorder(lambda r: httpx.Response(200, json=docs["reply_failure"]))
    with pytest.raises(PartnerConfigError, match="this will be displayed in our UI"):
        webhook(recorder).check()
    transient = {**docs["reply_failure"], "error": {"message": "busy", "code": 503}}
    retried = Recorder(lambda r: httpx.Response(200, json=transient))
    with pytest.raises(TransientError):
        webhook(retried).check()
    assert len(retried.requests) == 2  # retried like any partner's 503, then raised
