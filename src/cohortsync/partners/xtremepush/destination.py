"""Xtremepush: the wire format of user-list sync (Xtremepush External API).

Sources (checked 2026-11): "External API overview" (docs.xtremepush.com/docs/external-api-overview),
"External API Responses, Status & Error Codes" (support.xtremepush.com), "List import"
(docs.xtremepush.com/reference/list-import), "Set scopes" (docs.xtremepush.com/docs/set-scopes).

Documented: every call is ``POST {host}/api/external/{method}/{model}`` with a JSON body carrying
``apptoken``; hosts EU ``https://external-api.xtremepush.com``, US ``https://api.us.xtremepush.com``;
replies ``{"code", "success", "message", "errors", "data", "model"}`` with the HTTP status
mirrored in ``code``; ``import/list`` takes ``{"apptoken", "id", "items": [...]}``, at most 10,000
items a request; 400 for a request without a token, 401 when authentication fails, 429 when rate
limited. The scopes page lists create, update, delete and list for user lists, and listing their
items.

Inferred (unconfirmed in PARTNER_FACTS; correct here when checked against the real service):

- The user-list model is ``list``: ``list/list`` with ``condition`` ``[[field, "=", value]]``
  finds lists by ``id`` or ``title``, ``create/list`` with ``title`` returns ``model.id``, and
  ``delete/list-item`` takes the same body as ``import/list``. A list is known by its id; titles
  may repeat, so two cohorts of one name get two lists and a sync finds its own by id
  (:meth:`XtremepushDestination.find_list`). Should ``list/list`` ignore a condition, the reply
  holds every list; the connector picks by id or title from the reply itself, so either reading
  gives the same answer. A list the project no longer has is an empty ``data`` (then ``None``:
  the engine makes a new list and refills it); a 404 from ``list/list`` is not read as "gone"
  (it would rather mean the path is wrong, and re-creating lists in a loop would hide that).
- ``import/list`` is read as *appending* the items (removal has its own call, which a replacing
  import would not need). Were it to *replace* the list, every batch after the first would drop
  the batches before it; the connector cannot tell the readings apart (listing list items is
  unconfirmed too), so a replacing import would need the whole membership in one call (cohorts
  of at most 10,000) and this module would change there. The emulator models appending.
- ``import/list`` and ``delete/list-item`` on a list id the project does not hold answer 404 in
  the error envelope; ids unknown to Xtremepush come back in ``errors`` as ``{"item",
  "message"}`` and are never created (Mixpanel's page: ids only, never creates users).
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
from cohortsync.destinations.errors import PartnerConfigError

CAPABILITIES = Capabilities(
    max_batch=10_000,
    max_concurrency=2,
    requests_per_second=None,
    max_body_bytes=None,
    interval=timedelta(hours=2),
)


def describe_error(body: Any) -> str | None:
    """``message`` and ``errors`` of an error reply."""
    if not isinstance(body, dict) or not body.get("message"):
        return None
    errors = body.get("errors")
    return f"{body['message']} ({errors})" if errors else str(body["message"])


def rejected_items(body: Mapping[str, Any]) -> dict[str, str]:
    """Items the reply lists under ``errors`` as ``{"item", "message"}``."""
    found: dict[str, str] = {}
    for entry in body.get("errors") or []:
        if isinstance(entry, dict) and "item" in entry:
            found[str(entry["item"])] = str(entry.get("message") or "refused")
    return found


class XtremepushDestination(HttpConnector):
    """Xtremepush user lists, one per cohort, holding user ids only."""

    capabilities = CAPABILITIES

    def __init__(self, config: ConnectorConfig) -> None:
        self._token = config.credentials["app_token"]
        self._http = config.client(
            "xtremepush",
            CAPABILITIES,
            account=self._token,
            headers={"Content-Type": "application/json", "Accept": "application/json"},
            describe=describe_error,
        )

    def member(self, distinct_id: str, profile: Mapping[str, Any]) -> PartnerMember | Skip:
        """The user id is the distinct_id (the ``$user_id`` on simplified-merge projects)."""
        return PartnerMember(key=distinct_id, distinct_id=distinct_id)

    def _call(self, method: str, model: str, **fields: Any) -> dict[str, Any]:
        body = {"apptoken": self._token, **fields}
        reply = self._http.request("POST", f"/api/external/{method}/{model}", json=body).json()
        if not isinstance(reply, dict):
            raise PartnerConfigError(f"Xtremepush answered {method}/{model} with no JSON object")
        if reply.get("success") is False:
            message = reply.get("message")
            raise PartnerConfigError(
                self._http.message(str(message or f"Xtremepush refused {method}/{model}"))
            )
        return reply

    def check(self) -> None:
        """``list/list`` with a limit of one: reads, changes nothing."""
        self._call("list", "list", limit=1)

    def _lists(self, condition: list[str]) -> list[dict[str, Any]]:
        """The user lists meeting ``condition``, checked again here (see the module notes)."""
        field, _, value = condition
        found = self._call("list", "list", condition=[condition], select=["id", "title"])
        return [
            entry
            for entry in found.get("data") or []
            if isinstance(entry, dict) and str(entry.get(field)) == value
        ]

    def find_list(self, list_id: str, cohort: CohortInfo) -> PartnerList | None:
        """``list/list`` by ``id``: the list under its current title, or None when gone."""
        found = next(iter(self._lists(["id", "=", list_id])), None)
        return None if found is None else PartnerList(list_id, str(found.get("title")), cohort)

    def ensure_list(
        self, name: str, cohort: CohortInfo, taken: frozenset[str] = frozenset()
    ) -> PartnerList:
        """A user list titled ``name`` whose id is not in ``taken``, else ``create/list``."""
        for entry in self._lists(["title", "=", name]):
            if str(entry.get("id")) not in taken:
                return PartnerList(str(entry["id"]), name, cohort)
        created = self._call("create", "list", title=name)
        model = created.get("model") or {}
        if "id" not in model:
            raise PartnerConfigError("Xtremepush did not return the new list's id")
        return PartnerList(str(model["id"]), name, cohort, created=True)

    def _items(
        self, method: str, target: PartnerList, members: Sequence[PartnerMember]
    ) -> BatchOutcome:
        keys = [m.key for m in members]
        model = "list" if method == "import" else "list-item"
        reply = self._call(method, model, id=target.id, items=keys)
        refused = rejected_items(reply)
        outcome = BatchOutcome()
        for key in keys:
            if key in refused:
                outcome.rejected.append(Rejection(key, refused[key]))
            else:
                outcome.accepted.append(key)
        return outcome

    def add_members(self, target: PartnerList, members: Sequence[PartnerMember]) -> BatchOutcome:
        """``import/list``: ids onto the list (unknown ids are refused, never created)."""
        return self._items("import", target, members)

    def remove_members(self, target: PartnerList, members: Sequence[PartnerMember]) -> BatchOutcome:
        """``delete/list-item``: ids off the list."""
        return self._items("delete", target, members)
