"""Iterable: the wire format of list sync (Iterable REST API).

Sources (checked 2026-11): Iterable API reference (``https://api.iterable.com/api-docs``) and
the support articles "Getting Started with Iterable's API" and "API Keys".

- Hosts: US ``https://api.iterable.com``, EU ``https://api.eu.iterable.com``; key in ``Api-Key``.
- ``GET /api/lists`` → ``{"lists": [{"id", "name", "createdAt", "listType"}]}`` (the check:
  read-only, 100 req/s); ``POST /api/lists`` ``{"name", "description"}`` → ``{"listId"}``.
- ``POST /api/lists/subscribe`` ``{"listId", "subscribers": [{"email"|"userId", "dataFields",
  "preferUserId"}], "updateExistingUsersOnly": false}`` and ``POST /api/lists/unsubscribe``
  ``{"listId", "subscribers": [{"email"|"userId"}], "channelUnsubscribe": false}`` →
  ``{"successCount", "failCount", "failedUpdates": {"invalidEmails", "notFoundUserIds", …}}``.
- ``GET /api/lists/getUsers?listId=&preferUserId=true`` → plain text, one id a line.
- Errors ``{"msg", "code", "params"}``: 401 ``BadApiKey``, 429 ``RateLimitExceeded``; the HTTP
  status decides, never ``code`` (an unknown listId is a 400 whose code says "Success").
- Limits: SPEC §5 says 1,000 subscribers a call, 5 requests/s and 4 MB a body (the per-call
  figure is not in the API reference; 5 req/s and 4 MB are documented for bulk user updates).
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
from cohortsync.destinations.connection import ConnectorConfig, HttpConnector, PartnerSpec
from cohortsync.destinations.errors import PartnerConfigError
from cohortsync.destinations.members import export_columns, text

HOSTS = {"us": "https://api.iterable.com", "eu": "https://api.eu.iterable.com"}
CAPABILITIES = Capabilities(
    max_batch=1000,
    max_concurrency=4,
    requests_per_second=5.0,
    max_body_bytes=4 * 1024 * 1024,
    interval=timedelta(minutes=15),
    reads_members=True,
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


def describe_error(body: Any) -> str | None:
    """Iterable's ``{"msg", "code"}`` as one sentence."""
    if isinstance(body, dict) and ("msg" in body or "code" in body):
        return f"{body.get('code', 'Error')}: {str(body.get('msg', '')).strip()}"
    return None


def subscriber(member: PartnerMember, with_fields: bool) -> dict[str, Any]:
    """One entry of ``subscribers``: by userId when known, else by email."""
    user_id = member.fields.get("userId")
    entry: dict[str, Any] = (
        {"userId": user_id, "preferUserId": True} if user_id else {"email": member.fields["email"]}
    )
    if with_fields:
        entry["dataFields"] = dict(member.fields.get("dataFields", {}))
    elif user_id:
        entry.pop("preferUserId")
    return entry


def outcome(members: Sequence[PartnerMember], body: Mapping[str, Any]) -> BatchOutcome:
    """Per-member results from a subscribe/unsubscribe reply."""
    failed: dict[str, str] = {}
    updates = body.get("failedUpdates") or {}
    for field, reason in FAILURE_REASONS.items():
        for value in updates.get(field) or []:
            failed.setdefault(str(value), reason)
    for field in ("invalidEmails", "invalidUserIds"):  # deprecated top-level lists
        for value in body.get(field) or []:
            failed.setdefault(str(value), FAILURE_REASONS[field])
    result = BatchOutcome()
    for member in members:
        wire_id = str(member.fields.get("userId") or member.fields.get("email"))
        refusal = failed.get(wire_id)
        if refusal is None:
            result.accepted.append(member.key)
        else:
            result.rejected.append(Rejection(member.key, refusal))
    return result


class IterableDestination(HttpConnector):
    """Iterable lists, one per cohort, named by the integration's template."""

    capabilities = CAPABILITIES

    def __init__(self, config: ConnectorConfig) -> None:
        key = config.credentials["api_key"]
        self._simplified = config.simplified_id_merge
        self._http = config.client(
            "iterable",
            CAPABILITIES,
            account=key,
            headers={"Api-Key": key, "Content-Type": "application/json"},
            describe=describe_error,
        )

    def member(self, distinct_id: str, profile: Mapping[str, Any]) -> PartnerMember | Skip:
        """userId from ``$iterable_user_id`` when set, else by email; email is required."""
        email = text(profile, "$email")
        if email is None:
            return Skip("missing email")
        user_id = text(profile, USER_ID_PROPERTY) or (distinct_id if self._simplified else None)
        fields: dict[str, Any] = {
            "email": email,
            "dataFields": export_columns(profile, distinct_id, (USER_ID_PROPERTY,)),
        }
        if user_id:
            fields["userId"] = user_id
        return PartnerMember(key=user_id or email, distinct_id=distinct_id, fields=fields)

    def check(self) -> None:
        """``GET /api/lists``: read-only and cheap."""
        self._http.request("GET", "/api/lists")

    def _lists(self) -> list[dict[str, Any]]:
        body = self._http.request("GET", "/api/lists").json()
        return list(body.get("lists") or [])

    def ensure_list(self, name: str, cohort: CohortInfo) -> PartnerList:
        """Find the list by name, else create it."""
        for entry in self._lists():
            if entry.get("name") == name:
                return PartnerList(str(entry["id"]), name, cohort)
        created = self._http.request(
            "POST",
            "/api/lists",
            json={"name": name, "description": f"Cohort {cohort.id} exported by cohortsync"},
        ).json()
        if "listId" not in created:
            raise PartnerConfigError(f"Iterable did not return a listId: {created}")
        return PartnerList(str(created["listId"]), name, cohort)

    def add_members(self, target: PartnerList, members: Sequence[PartnerMember]) -> BatchOutcome:
        """``POST /api/lists/subscribe``."""
        body = {
            "listId": int(target.id),
            "subscribers": [subscriber(m, with_fields=True) for m in members],
            "updateExistingUsersOnly": False,
        }
        return outcome(
            members, self._http.request("POST", "/api/lists/subscribe", json=body).json()
        )

    def remove_members(self, target: PartnerList, members: Sequence[PartnerMember]) -> BatchOutcome:
        """``POST /api/lists/unsubscribe`` without unsubscribing from the channel."""
        body = {
            "listId": int(target.id),
            "subscribers": [subscriber(m, with_fields=False) for m in members],
            "channelUnsubscribe": False,
        }
        reply = self._http.request("POST", "/api/lists/unsubscribe", json=body).json()
        return outcome(members, reply)

    def read_members(self, target: PartnerList) -> Iterator[str]:
        """``GET /api/lists/getUsers`` (5 requests a minute: for reconciliation only)."""
        response = self._http.request(
            "GET", "/api/lists/getUsers", params={"listId": target.id, "preferUserId": "true"}
        )
        for line in response.text.splitlines():
            if line.strip():
                yield line.strip()


SPEC = PartnerSpec(
    type="iterable",
    title="Iterable",
    credentials=("api_key",),
    optional_credentials=(),
    regions=HOSTS,
    default_region="us",
    capabilities=CAPABILITIES,
    build=IterableDestination,
)
