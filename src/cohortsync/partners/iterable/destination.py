"""Iterable: the wire format of list sync (Iterable REST API).

Documented by Iterable (shared/PARTNER_FACTS.md, "Iterable": the Swagger spec bundled in its
official client ``Iterable/api-client`` (``api-docs.json``, ``src/client/lists.ts``), and the
support articles on identifying users in email-based, userID-based and hybrid projects):

- Hosts: US ``https://api.iterable.com``, EU ``https://api.eu.iterable.com``; key in ``Api-Key``
  (a key belongs to one data center: the other host answers 401).
- A subscriber is identified by its top-level ``email`` or ``userId``; ``dataFields`` (where
  ``$email`` travels as an export column) identify nobody. In an email-based project, sending
  both makes email win and overwrites the stored userId with the one sent, so ``userId`` goes
  beside the email only from ``$iterable_user_id`` (Mixpanel's rule), never the distinct_id.
  ``preferUserId: true`` with a userId nobody has makes a new placeholder user: never sent.
  (The Swagger field text says "an email or a userId (but not both)"; the support article on
  email-based projects describes both, email winning.)
- ``POST /api/lists/subscribe`` ``{"listId", "subscribers": [{"email", "userId"?,
  "dataFields"}], "updateExistingUsersOnly": false}`` creates users for unknown emails;
  ``POST /api/lists/unsubscribe`` ``{"listId", "subscribers": [{"email"}],
  "channelUnsubscribe": false}`` (``true`` is close to a global unsubscribe from the channel).
  Both answer HTTP 200 even when users failed: ``{"successCount", "failCount", "failedUpdates":
  {"invalidEmails", "notFoundUserIds", "conflictUserIds", …}}`` plus the deprecated top-level
  ``invalidEmails``/``invalidUserIds``; every listed user is a rejection.
- ``GET /api/lists`` → ``{"lists": [{"id", "name", "description", "createdAt", "listType"}]}``
  (100 req/s; also the credentials check); ``POST /api/lists`` ``{"name", "description"}`` →
  ``{"listId"}``; list names may repeat, ids are unique.
- ``GET /api/lists/getUsers?listId=`` → ``text/plain``, one email a line (with
  ``preferUserId=true`` the userId where there is one: not asked, since members are keyed by
  email); **5 requests a minute per project**, as is ``GET /api/lists/{id}/size``; either may
  answer 503 "Request timeout" (retried). Every try waits for the account's read turn
  (``reads_per_minute``: one each 12.5 s), shared by every sync of the account.
- Errors ``{"msg", "code", "params"}``: 401 ``BadApiKey``, 429 ``RateLimitExceeded``; the HTTP
  status decides, never ``code`` (an unknown listId is a 400 whose code says "Success").

Inferred, not confirmed by Iterable's documents:

- At most 1,000 subscribers a call (the spec only has a ``BatchTooLarge`` error code; 1,000 is
  what integrations use) and 4 MB a body (documented for bulk user updates); 5 req/s is the
  documented rate of ``users/bulkUpdate``, none is stated for ``lists/subscribe``.
- ``Retry-After`` on a 429: honoured when present, else jittered backoff (the HTTP client).
- A removal Iterable answers with ``notFound*``/``forgotten*`` is done: a user the project
  does not have (any more) is on no list.
- Whether Iterable keeps an email's case (``Kim@Example.com``) or lowers it: both readings
  work, since a member's key, the failures of a reply and the lines of ``getUsers`` are
  compared lower-cased, while the email is sent as the profile spells it.
- ``GET /api/lists`` returns every list of the project (the spec shows no paging), so a list
  id missing from it is a list deleted on Iterable's side.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import timedelta
from typing import Any

from cohortsync.destinations.base import (
    BatchOutcome,
    Capabilities,
    CohortInfo,
    PartnerList,
    PartnerMember,
    Rejection,
    Skip,
)
from cohortsync.destinations.connection import ConnectorConfig, HttpConnector
from cohortsync.destinations.errors import PartnerConfigError
from cohortsync.destinations.members import export_columns, text

CAPABILITIES = Capabilities(
    max_batch=1000,
    max_concurrency=4,
    requests_per_second=5.0,
    max_body_bytes=4 * 1024 * 1024,
    interval=timedelta(minutes=15),
    reads_members=True,
    reads_per_minute=5,
)
USER_ID_PROPERTY = "$iterable_user_id"
# failedUpdates lists, and the reason each stands for.
FAILURE_REASONS = {
    "invalidEmails": "invalid email",
    "invalidUserIds": "invalid userId",
    "notFoundEmails": "email not found",
    "notFoundUserIds": "userId not found",
    "forgottenEmails": "user forgotten (GDPR)",
    "forgottenUserIds": "user forgotten (GDPR)",
    "conflictEmails": "email conflict",
    "conflictUserIds": "userId conflict",
    "invalidDataEmails": "invalid data fields",
    "invalidDataUserIds": "invalid data fields",
}
DEPRECATED_FAILURES = ("invalidEmails", "invalidUserIds")  # top-level copies, older replies
# Failures that leave a user off the list anyway: a removal they answer is done.
ABSENT_USER = frozenset(FAILURE_REASONS[name] for name in ("notFoundEmails", "forgottenEmails"))


def describe_error(body: Any) -> str | None:
    """Iterable's ``{"msg", "code"}`` as one sentence."""
    if isinstance(body, dict) and ("msg" in body or "code" in body):
        return f"{body.get('code', 'Error')}: {str(body.get('msg', '')).strip()}"
    return None


def email_of(member: PartnerMember) -> str:
    """The member's email as the profile spells it (the key is its lower-cased form)."""
    return str(member.fields.get("email") or member.key)


def subscriber(member: PartnerMember) -> dict[str, Any]:
    """One entry of a subscribe call: the email, the Iterable userId beside it when the
    profile has one, and the export columns."""
    entry: dict[str, Any] = {"email": email_of(member)}
    user_id = member.fields.get("userId")
    if user_id:
        entry["userId"] = user_id
    entry["dataFields"] = dict(member.fields.get("dataFields") or {})
    return entry


def failures(body: Mapping[str, Any]) -> dict[str, str]:
    """Every email or userId a subscribe/unsubscribe reply lists as failed, with the reason."""
    failed: dict[str, str] = {}
    updates = body.get("failedUpdates") or {}
    for name, reason in FAILURE_REASONS.items():
        for value in updates.get(name) or []:
            failed.setdefault(str(value), reason)
    for name in DEPRECATED_FAILURES:
        for value in body.get(name) or []:
            failed.setdefault(str(value), FAILURE_REASONS[name])
    return failed


def outcome(
    members: Sequence[PartnerMember], body: Mapping[str, Any], done_if: frozenset[str]
) -> BatchOutcome:
    """Per-member results from a reply: a member listed under its email or its userId is
    rejected, unless its reason is one of ``done_if``."""
    failed = failures(body)
    emails = {value.lower(): reason for value, reason in failed.items()}
    result = BatchOutcome()
    for member in members:
        user_id = member.fields.get("userId")
        refusal = emails.get(member.key) or (failed.get(str(user_id)) if user_id else None)
        if refusal is None or refusal in done_if:
            result.accepted.append(member.key)
        else:
            result.rejected.append(Rejection(member.key, refusal))
    return result


class IterableDestination(HttpConnector):
    """Iterable lists, one per cohort, named by the integration's template."""

    capabilities = CAPABILITIES

    def __init__(self, config: ConnectorConfig) -> None:
        key = config.credentials["api_key"]
        self._http = config.client(
            "iterable",
            CAPABILITIES,
            account=key,
            headers={"Api-Key": key, "Content-Type": "application/json"},
            describe=describe_error,
        )

    def member(self, distinct_id: str, profile: Mapping[str, Any]) -> PartnerMember | Skip:
        """Keyed by ``$email`` (required), lower-cased so that it compares with what getUsers
        answers however Iterable cases it (unconfirmed); sent as the profile spells it.
        ``userId`` only from ``$iterable_user_id``."""
        email = text(profile, "$email")
        if email is None:
            return Skip("missing email")
        fields: dict[str, Any] = {
            "dataFields": export_columns(profile, distinct_id, (USER_ID_PROPERTY,))
        }
        key = email.lower()
        if email != key:
            fields["email"] = email
        user_id = text(profile, USER_ID_PROPERTY)
        if user_id:
            fields["userId"] = user_id
        return PartnerMember(key=key, distinct_id=distinct_id, fields=fields)

    def check(self) -> None:
        """``GET /api/lists``: read-only and cheap."""
        self._http.request("GET", "/api/lists")

    def _lists(self) -> list[dict[str, Any]]:
        body = self._http.request("GET", "/api/lists").json()
        return list(body.get("lists") or [])

    def find_list(self, list_id: str, cohort: CohortInfo) -> PartnerList | None:
        """The list with this id under the name it has on Iterable now, or None."""
        for entry in self._lists():
            if str(entry.get("id")) == list_id:
                return PartnerList(list_id, str(entry.get("name", "")), cohort)
        return None

    def ensure_list(
        self, name: str, cohort: CohortInfo, taken: frozenset[str] = frozenset()
    ) -> PartnerList:
        """The list named ``name`` whose id is not ``taken``, else a new one."""
        for entry in self._lists():
            if entry.get("name") == name and str(entry.get("id")) not in taken:
                return PartnerList(str(entry["id"]), name, cohort)
        created = self._http.request(
            "POST",
            "/api/lists",
            json={"name": name, "description": f"Cohort {cohort.id} exported by cohortsync"},
        ).json()
        if "listId" not in created:
            raise PartnerConfigError("Iterable did not return a listId")
        return PartnerList(str(created["listId"]), name, cohort, created=True)

    def add_members(self, target: PartnerList, members: Sequence[PartnerMember]) -> BatchOutcome:
        """``POST /api/lists/subscribe``; users listed in ``failedUpdates`` are rejected."""
        body = {
            "listId": int(target.id),
            "subscribers": [subscriber(m) for m in members],
            "updateExistingUsersOnly": False,
        }
        reply = self._http.request("POST", "/api/lists/subscribe", json=body).json()
        return outcome(members, reply, done_if=frozenset())

    def remove_members(self, target: PartnerList, members: Sequence[PartnerMember]) -> BatchOutcome:
        """``POST /api/lists/unsubscribe`` by email, keeping the channel subscription."""
        body = {
            "listId": int(target.id),
            "subscribers": [{"email": email_of(m)} for m in members],
            "channelUnsubscribe": False,
        }
        reply = self._http.request("POST", "/api/lists/unsubscribe", json=body).json()
        return outcome(members, reply, done_if=ABSENT_USER)

    def read_members(self, target: PartnerList) -> Iterator[str]:
        """The emails on the list (``GET /api/lists/getUsers``), lower-cased like the keys, line
        by line as they arrive; waits for the account's read turn (5 a minute: for
        reconciliation, not every run)."""
        lines = self._http.lines("/api/lists/getUsers", params={"listId": target.id}, read=True)
        return (line.lower() for line in lines)
