"""Postbox: the wire format of its Lists API (an invented partner, the contract below is the
whole of it).

- Host ``https://api.postbox.invalid``; every call carries ``Authorization: Bearer
  <api_token>``. A wrong, missing or revoked token is a 401 ``{"error": {"type":
  "unauthorized", "message": "Invalid API token"}}``; every error has that envelope.
- ``GET /v1/me`` → ``{"account"}``: the connection check.
- ``GET /v1/lists?name=`` → ``{"lists": [{"id", "name"}]}``; names may repeat, ids are unique.
  ``GET /v1/lists/{id}`` → ``{"id", "name"}``, or 404 ``list_not_found`` once deleted.
  ``POST /v1/lists`` ``{"name"}`` → 201 ``{"id", "name"}``.
- ``POST /v1/lists/{id}/members`` ``{"members": [{"email", "properties"}]}``, at most 100 a
  call (more: 400 ``invalid_request``) → 200 ``{"added", "refused": [{"email", "reason"}]}``:
  addresses it refuses (bounced, say) are listed, the others are on the list.
  ``POST /v1/lists/{id}/members/remove`` ``{"emails": [...]}`` → 200 ``{"removed"}``.
- 429 with ``Retry-After`` (seconds) when over the rate; 5xx are worth retrying.

A member is known by their email (``$email``); members without one are skipped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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
from cohortsync.destinations.members import text

CAPABILITIES = Capabilities(
    max_batch=100,
    max_concurrency=2,
    requests_per_second=None,
    max_body_bytes=None,
    interval=timedelta(hours=1),
)
PROPERTIES = {"first_name": "$first_name", "last_name": "$last_name"}


def describe_error(body: Any) -> str | None:
    """``error.message`` of the error envelope."""
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and error.get("message"):
        return str(error["message"])
    return None


class PostboxDestination(HttpConnector):
    """Postbox mailing lists, one per cohort, holding members by email."""

    capabilities = CAPABILITIES

    def __init__(self, config: ConnectorConfig) -> None:
        token = config.credentials["api_token"]
        self._http = config.client(
            "postbox",
            CAPABILITIES,
            account=token,
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
            describe=describe_error,
        )

    def member(self, distinct_id: str, profile: Mapping[str, Any]) -> PartnerMember | Skip:
        """The email is the key; first and last names travel as properties."""
        email = text(profile, "$email")
        if email is None:
            return Skip("no $email")
        properties = {wire: text(profile, name) for wire, name in PROPERTIES.items()}
        fields = {"email": email, "properties": {k: v for k, v in properties.items() if v}}
        return PartnerMember(key=email, distinct_id=distinct_id, fields=fields)

    def check(self) -> None:
        """``GET /v1/me``: reads, changes nothing."""
        self._http.request("GET", "/v1/me")

    def find_list(self, list_id: str, cohort: CohortInfo) -> PartnerList | None:
        """``GET /v1/lists/{id}``: the list under its current name, or None once deleted."""
        reply = self._http.request("GET", f"/v1/lists/{list_id}", accept=(404,))
        if reply.status_code == 404:
            return None
        return PartnerList(list_id, str(reply.json()["name"]), cohort)

    def ensure_list(
        self, name: str, cohort: CohortInfo, taken: frozenset[str] = frozenset()
    ) -> PartnerList:
        """A list named ``name`` whose id is not in ``taken``, else a new one."""
        found = self._http.request("GET", "/v1/lists", params={"name": name}).json()
        for entry in found.get("lists") or []:
            if entry.get("name") == name and str(entry.get("id")) not in taken:
                return PartnerList(str(entry["id"]), name, cohort)
        created = self._http.request("POST", "/v1/lists", json={"name": name}).json()
        return PartnerList(str(created["id"]), name, cohort, created=True)

    def add_members(self, target: PartnerList, members: Sequence[PartnerMember]) -> BatchOutcome:
        """``POST /v1/lists/{id}/members``: the refused addresses are rejections."""
        body = {"members": [dict(m.fields) for m in members]}
        reply = self._http.request("POST", f"/v1/lists/{target.id}/members", json=body).json()
        refused = {str(r["email"]): str(r.get("reason") or "refused") for r in reply["refused"]}
        outcome = BatchOutcome()
        for member in members:
            if member.key in refused:
                outcome.rejected.append(Rejection(member.key, refused[member.key]))
            else:
                outcome.accepted.append(member.key)
        return outcome

    def remove_members(self, target: PartnerList, members: Sequence[PartnerMember]) -> BatchOutcome:
        """``POST /v1/lists/{id}/members/remove`` by email."""
        emails = [m.key for m in members]
        self._http.request("POST", f"/v1/lists/{target.id}/members/remove", json={"emails": emails})
        return BatchOutcome(accepted=emails)
