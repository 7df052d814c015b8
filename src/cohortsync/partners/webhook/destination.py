"""Webhook: Mixpanel's documented cohort-webhook protocol.

Source (checked 2026-11): docs.mixpanel.com/docs/cohort-sync/webhooks.

- ``POST <url>`` (optional HTTP Basic) with ``{"action": "members"|"add_members"|"remove_members",
  "parameters": {"mixpanel_project_id", "mixpanel_cohort_id", "mixpanel_cohort_name",
  "mixpanel_cohort_description", "mixpanel_session_id", "page_info": {"total_pages",
  "page_count"}, "members": [{"email", "mixpanel_distinct_id", "first_name", "last_name", …}]}}``;
  ``page_count`` starts at 1 and counts the messages of one session.
- The server replies ``{"action", "status": "success"|"failure", "error": {"message", "code"}}``.
- At most 1,000 members a call; every 30 minutes; 400/401/403/404 pause the sync, 429 and 5xx
  are retried. A ``failure`` reply is judged by its ``error.code`` the same way.
- ``members`` carries "all members of the cohort, sent the first time the cohort is being synced
  or to refresh the cohort if there are any intermediate errors": one session of pages numbered
  1 … ``total_pages`` whose union is the whole membership, replacing what the receiver held.
- The protocol has no read or ping call: the connection check sends an ``add_members`` with no
  members for the cohort id ``0`` (the docs' own example sends empty diffs when nothing changed).

This project's reading: the list is the cohort itself (``mixpanel_cohort_id``), so there is
nothing to create or find, and a member's key is ``mixpanel_distinct_id``. A refresh
(:meth:`WebhookDestination.replace_members`) is handed keys only, so its pages carry
``{"mixpanel_distinct_id"}`` for each member and no email, names or columns (a receiver has
those from the ``add_members`` that brought the member in; the emulator keeps them). The engine
refreshes only when drift is suspected (``snapshot_membership`` is False): every run sends
diffs, as Mixpanel does.
"""

from __future__ import annotations

import base64
import math
import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import timedelta
from typing import Any

import httpx

from cohortsync.destinations.base import (
    BatchOutcome,
    Capabilities,
    CohortInfo,
    PartnerList,
    PartnerMember,
    RunInfo,
    Skip,
)
from cohortsync.destinations.connection import ConnectorConfig, HttpConnector
from cohortsync.destinations.members import text

CAPABILITIES = Capabilities(
    max_batch=1000,
    max_concurrency=1,  # pages of one session are numbered in order
    requests_per_second=None,
    max_body_bytes=None,
    interval=timedelta(minutes=30),
)
MEMBER_COLUMNS = {
    "email": "$email",
    "first_name": "$first_name",
    "last_name": "$last_name",
    "phone_number": "$phone",
}
CHECK_COHORT = CohortInfo(0, "cohortsync connection check")


def describe_error(body: Any) -> str | None:
    """``error.message`` of a protocol reply."""
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and error.get("message"):
        return str(error["message"])
    return None


def reply_status(response: httpx.Response) -> int:
    """The status a reply stands for: a ``failure`` reply's ``error.code`` (400 when it names
    none), so failures are retried or stop the run like any other partner's statuses."""
    if not 200 <= response.status_code < 300:
        return response.status_code
    try:
        answer = response.json()
    except ValueError:
        return 400  # not a protocol reply
    if isinstance(answer, dict) and answer.get("status") == "success":
        return response.status_code
    error = answer.get("error") if isinstance(answer, dict) else None
    code = error.get("code") if isinstance(error, dict) else None
    return code if isinstance(code, int) and code >= 400 else 400


class WebhookDestination(HttpConnector):
    """A customer server speaking the cohort-webhook protocol."""

    capabilities = CAPABILITIES

    def __init__(self, config: ConnectorConfig) -> None:
        headers = {"Content-Type": "application/json"}
        username = config.credentials.get("username")
        password = config.credentials.get("password")
        if username or password:
            pair = f"{username or ''}:{password or ''}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
        self._project_id = config.project_id
        self._url = config.base_url  # the webhook's full URL (its path included)
        self._extra = list(config.settings.get("export_properties") or [])
        self._http = config.client(
            "webhook",
            CAPABILITIES,
            account=str(config.settings.get("url", "")),
            headers=headers,
            describe=describe_error,
            status_of=reply_status,
        )
        self._session = RunInfo(str(uuid.uuid4()), 0, 0)
        self._pages = 0
        self._sent = 0

    def member(self, distinct_id: str, profile: Mapping[str, Any]) -> PartnerMember | Skip:
        """``mixpanel_distinct_id``, email, names and phone when present, and chosen columns."""
        fields: dict[str, Any] = {"mixpanel_distinct_id": distinct_id}
        for wire, name in MEMBER_COLUMNS.items():
            value = text(profile, name)
            if value is not None:
                fields[wire] = value
        for name in self._extra:
            if name in profile:
                fields[name] = profile[name]
        return PartnerMember(key=distinct_id, distinct_id=distinct_id, fields=fields)

    def begin_run(self, run: RunInfo) -> None:
        """A new session: its pages are numbered 1 … total."""
        self._session = run
        batch = CAPABILITIES.max_batch
        self._pages = max(math.ceil(run.adds / batch) + math.ceil(run.removes / batch), 1)
        self._sent = run.batches_done

    def _post(
        self,
        action: str,
        cohort: CohortInfo,
        members: Sequence[Mapping[str, Any]],
        session_id: str,
        page: tuple[int, int],
    ) -> None:
        """One protocol message: page ``page[0]`` of ``page[1]`` of session ``session_id``."""
        page_count, total_pages = page
        body = {
            "action": action,
            "parameters": {
                "mixpanel_project_id": str(self._project_id),
                "mixpanel_cohort_id": str(cohort.id),
                "mixpanel_cohort_name": cohort.name,
                "mixpanel_cohort_description": cohort.description,
                "mixpanel_session_id": session_id,
                "page_info": {"total_pages": total_pages, "page_count": page_count},
                "members": [dict(m) for m in members],
            },
        }
        self._http.request("POST", self._url, json=body)

    def _post_diff(self, action: str, cohort: CohortInfo, members: Sequence[PartnerMember]) -> None:
        """The next page of the run's session."""
        self._sent += 1
        page = (self._sent, max(self._pages, self._sent))
        fields = [m.fields for m in members]
        self._post(action, cohort, fields, self._session.session_id, page)

    def check(self) -> None:
        """An empty ``add_members`` for cohort 0: proves the URL and credentials."""
        self._post("add_members", CHECK_COHORT, [], str(uuid.uuid4()), (1, 1))

    def find_list(self, list_id: str, cohort: CohortInfo) -> PartnerList | None:
        """The webhook's list is the cohort: always there (the receiver keeps it by id)."""
        return PartnerList(list_id, cohort.name, cohort)

    def ensure_list(
        self, name: str, cohort: CohortInfo, taken: frozenset[str] = frozenset()
    ) -> PartnerList:
        """The cohort, addressed by its id; nothing to create. ``taken`` cannot apply: two
        cohorts never share an id, and one cohort has one export per integration."""
        return PartnerList(str(cohort.id), name, cohort)

    def add_members(self, target: PartnerList, members: Sequence[PartnerMember]) -> BatchOutcome:
        """``add_members``; the protocol acknowledges a batch as a whole."""
        self._post_diff("add_members", target.cohort, members)
        return BatchOutcome(accepted=[m.key for m in members])

    def remove_members(self, target: PartnerList, members: Sequence[PartnerMember]) -> BatchOutcome:
        """``remove_members``."""
        self._post_diff("remove_members", target.cohort, members)
        return BatchOutcome(accepted=[m.key for m in members])

    def replace_members(
        self, target: PartnerList, members: Iterable[PartnerMember], total: int
    ) -> PartnerList:
        """A ``members`` refresh in a session of its own: every member as last sent (email,
        names, columns), in pages of at most 1,000 streamed as they come (one empty page for an
        empty cohort)."""
        batch = CAPABILITIES.max_batch
        pages = max(math.ceil(total / batch), 1)
        session_id = str(uuid.uuid4())
        page: list[Mapping[str, Any]] = []
        number = 0
        for member in members:
            page.append(member.fields)
            if len(page) == batch and number + 1 < pages:
                number += 1
                self._post("members", target.cohort, page, session_id, (number, pages))
                page = []
        self._post("members", target.cohort, page, session_id, (number + 1, pages))
        return target
