"""CleverTap: members' profiles through ``/1/upload`` and one segment per cohort through
CleverTap's Custom List API, a full snapshot every run.

Sources (checked 2026-11): developer.clevertap.com "Authentication" (incl. "Authorize Partners"),
"Common API Components" (regions, headers), "Upload User Profiles", "API Errors", "API rate
limits", "Custom List API"; docs.clevertap.com "Mixpanel integration"; RudderStack's CleverTap
segment destination (the same three Custom List steps).

Documented:
- Headers ``X-CleverTap-Account-Id`` (the dashboard's "Project ID") and ``X-CleverTap-Passcode``;
  hosts ``api.clevertap.com`` (EU, default) and ``{in1,sg1,us1,aps3,mec1}.api.clevertap.com``.
- ``GET /v1/connect?partner=…``: the call partners use to verify a customer's credentials.
- ``POST /1/upload`` ``{"d": [{"identity", "type": "profile", "profileData": {…}}]}``: an unknown
  identity creates a profile; at most 1,000 records, 15 concurrent requests per account (over
  it: 429 "Too many concurrent requests"). The reply is HTTP 200 ``{"status": "success" |
  "partial" | "fail", "processed", "unprocessed": [{"status", "code", "error": "… Skipped record
  number : N", "record": "<JSON text>"}]}``: each unprocessed record is a rejection here.
- Bad credentials: 401 ``{"status": "fail", "error": "Account ID is not valid", "code": 401}``.
- The Custom List API, CleverTap's only documented way to put users in a segment:
  (1) ``POST /get_custom_list_segment_url`` with no body → ``{"presignedS3URL", "expiry",
  "status"}``, valid 24 hours; (2) ``PUT`` of a CSV to that URL, header row ``Type,Identity``
  and a row ``i,<identity>`` per user (an S3 URL whose signature is the credential, so no
  CleverTap header goes with it); (3) ``POST /upload_custom_list_segment_completed`` ``{name,
  email, filename, creator, url, replace}`` → ``{"Segment ID": n, "status": "success"}``. With
  ``replace: true`` the segment becomes exactly the file. No call adds or removes one member,
  or lists segments.
- A cohort lands as a segment; its identity is ``$CleverTap_user_id`` when set, else the
  distinct_id ("Mixpanel integration": user identity management).

So membership is a snapshot (``capabilities.snapshot_membership``): ``add_members`` upserts the
members' profiles with the export columns, ``remove_members`` has nothing to send, and at the
end of every run the sync engine hands ``replace_members`` every acknowledged key. CleverTap
finds the segment by its name: ``ensure_list`` and ``find_list`` make no call, the first
snapshot makes the segment (until then its id is ``pending-<cohort id>``), and a segment deleted
on CleverTap's side comes back (under a new Segment ID) with the next snapshot. Two syncs
giving the same name would share one segment: nothing documented can tell them apart, so
``taken`` cannot be honoured.

Inferred (the public pages stop short; correct here against the real service):
- the free-plan refusal as 403 ``{"status": "fail", "error": "App may not submit cohort updates
  from Mixpanel"}`` on the Custom List calls, shown to the admin verbatim;
- ``email`` as the address CleverTap tells when the segment is ready and ``creator`` as the name
  it shows: the settings ``segment_email`` (default :data:`DEFAULT_SEGMENT_EMAIL`, an address
  that reaches nobody) and ``connector_name`` (default ``cohortsync``);
- a ``"fail"`` reply listing no record refuses the whole batch with its ``error``.

The snapshot CSV is written row by row from the keys' iterator to a spooled temporary file
(memory up to 8 MiB, then disk), never built as one string. S3 wants a Content-Length (no
chunked upload) and the shared client sends a ``bytes`` body, so the finished file is read once
into that body (about 40 MB for a million identities); streaming it from the file would need
the client to take a re-readable body.
"""

from __future__ import annotations

import csv
import io
import re
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from datetime import timedelta
from typing import IO, Any

import orjson

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
from cohortsync.partners import list_names
from cohortsync.partners.fields import DEFAULT_LIST_TEMPLATE

CAPABILITIES = Capabilities(
    max_batch=1000,
    max_concurrency=15,
    requests_per_second=None,
    max_body_bytes=None,
    interval=timedelta(minutes=15),
    snapshot_membership=True,
)
USER_ID_PROPERTY = "$CleverTap_user_id"
PARTNER_NAME = "cohortsync"
DEFAULT_SEGMENT_EMAIL = "noreply@cohortsync.invalid"  # RFC 2606: delivers to nobody
CUSTOM_LIST_HEADER = ("Type", "Identity")
IDENTITY_ROW = "i"
SPOOL_BYTES = 8 * 1024 * 1024
# Mixpanel property names → CleverTap's profile keys for the default columns.
PROFILE_KEYS = {
    "$email": "Email",
    "$phone": "Phone",
    "$first_name": "First Name",
    "$last_name": "Last Name",
    "$name": "Name",
}
_RECORD_NUMBER = re.compile(r"Skipped record number\s*:\s*(\d+)")


def describe_error(body: Any) -> str | None:
    """CleverTap's ``error`` text."""
    if isinstance(body, dict) and body.get("error"):
        return str(body["error"])
    return None


def pending_segment_id(cohort: CohortInfo) -> str:
    """The id a cohort's segment goes by until the first snapshot makes it and CleverTap gives
    its Segment ID (never empty: a kept id says the sync has its list)."""
    return f"pending-{cohort.id}"


def unprocessed(identities: Sequence[str], body: Mapping[str, Any]) -> dict[str, str]:
    """Identity → error of each record the reply lists as unprocessed; every identity when the
    reply is a ``fail`` that lists none."""
    failed: dict[str, str] = {}
    for entry in body.get("unprocessed") or []:
        if not isinstance(entry, dict):
            continue
        error = str(entry.get("error") or "unprocessed")
        reason = _RECORD_NUMBER.sub("", error).rstrip(" .") or error
        match = _RECORD_NUMBER.search(error)
        identity: str | None = None
        if match and 1 <= int(match.group(1)) <= len(identities):
            identity = identities[int(match.group(1)) - 1]
        else:
            record = entry.get("record")
            try:
                parsed = orjson.loads(record) if isinstance(record, str) else record
            except orjson.JSONDecodeError:
                parsed = None
            if isinstance(parsed, dict) and parsed.get("identity") is not None:
                identity = str(parsed["identity"])
        if identity is not None:
            failed[identity] = f"{entry.get('code', '')} {reason}".strip()
    if not failed and body.get("status") == "fail":
        reason = describe_error(body) or "refused by CleverTap"
        failed = dict.fromkeys(identities, reason)
    return failed


def custom_list_csv(keys: Iterable[str]) -> IO[bytes]:
    """The Custom List file of ``keys``, rewound: ``Type,Identity`` then ``i,<identity>`` rows,
    spooled to disk past :data:`SPOOL_BYTES`."""
    spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)  # noqa: SIM115 (caller closes)
    rows = io.TextIOWrapper(spool, encoding="utf-8", newline="")
    writer = csv.writer(rows, lineterminator="\n")
    writer.writerow(CUSTOM_LIST_HEADER)
    writer.writerows((IDENTITY_ROW, key) for key in keys)
    rows.flush()
    rows.detach()
    spool.seek(0)
    return spool


class CleverTapDestination(HttpConnector):
    """Profiles upserted with the export columns; a cohort's segment set whole by a snapshot
    at the end of every run."""

    capabilities = CAPABILITIES

    def __init__(self, config: ConnectorConfig) -> None:
        account = config.credentials["account_id"]
        settings = config.settings
        self._columns = list(settings.get("export_properties") or [])
        self._clock = config.clock
        self._template = str(settings.get("list_name_template", DEFAULT_LIST_TEMPLATE))
        self._email = str(settings.get("segment_email") or DEFAULT_SEGMENT_EMAIL)
        self._creator = str(settings.get("connector_name") or PARTNER_NAME)
        self._http = config.client(
            "clevertap",
            CAPABILITIES,
            account=account,
            headers={
                "X-CleverTap-Account-Id": account,
                "X-CleverTap-Passcode": config.credentials["passcode"],
                "Content-Type": "application/json; charset=utf-8",
            },
            describe=describe_error,
        )
        # The presigned S3 URL carries its own signature: no CleverTap header goes with it.
        self._s3 = config.client(
            "clevertap", CAPABILITIES, account=account, headers={}, describe=describe_error
        )
        self._s3.stats = self._http.stats  # one connector, one set of counters

    def member(self, distinct_id: str, profile: Mapping[str, Any]) -> PartnerMember | Skip:
        """Identity ``$CleverTap_user_id`` when set, else the distinct_id; export columns."""
        identity = text(profile, USER_ID_PROPERTY) or distinct_id
        columns = export_columns(profile, distinct_id, (USER_ID_PROPERTY, *self._columns))
        data = {PROFILE_KEYS.get(name, name): value for name, value in columns.items()}
        return PartnerMember(key=identity, distinct_id=distinct_id, fields={"profileData": data})

    def check(self) -> None:
        """``GET /v1/connect?partner=…``: CleverTap's credential check for partners."""
        self._http.request("GET", "/v1/connect", params={"partner": PARTNER_NAME})

    def find_list(self, list_id: str, cohort: CohortInfo) -> PartnerList | None:
        """The stored segment, without a call (none can look one up): the next snapshot
        re-makes it by name if it was deleted on CleverTap's side."""
        name = list_names.render(self._template, cohort.name, cohort.id)
        return PartnerList(list_id, name, cohort)

    def ensure_list(
        self, name: str, cohort: CohortInfo, taken: frozenset[str] = frozenset()
    ) -> PartnerList:
        """The segment to be: the run's snapshot makes it (or takes over the one of that name)
        and gives its Segment ID."""
        return PartnerList(pending_segment_id(cohort), name, cohort)

    def add_members(self, target: PartnerList, members: Sequence[PartnerMember]) -> BatchOutcome:
        """Upsert the members' profiles (``/1/upload``, stamped with the time of sending as
        the documented body shows); the snapshot puts them in the segment."""
        now = int(self._clock.now().timestamp())
        records = [
            {
                "identity": m.key,
                "ts": now,
                "type": "profile",
                "profileData": dict(m.fields["profileData"]),
            }
            for m in members
        ]
        reply = self._http.request("POST", "/1/upload", json={"d": records}).json()
        keys = [m.key for m in members]
        return _outcome(keys, unprocessed(keys, reply))

    def remove_members(self, target: PartnerList, members: Sequence[PartnerMember]) -> BatchOutcome:
        """Nothing to send: the run's snapshot leaves them out (their profiles stay)."""
        return BatchOutcome(accepted=[m.key for m in members])

    def replace_members(
        self, target: PartnerList, members: Iterable[PartnerMember], total: int
    ) -> PartnerList:
        """The Custom List API's three steps with ``replace: true``: the segment named
        ``target.name`` becomes exactly the members' identities."""
        with custom_list_csv(m.key for m in members) as snapshot:
            presigned = self._custom_list_call("/get_custom_list_segment_url", "presignedS3URL")
            self._s3.request("PUT", str(presigned), content=snapshot.read())
        body = {
            "name": target.name,
            "email": self._email,
            "filename": f"cohort-{target.cohort.id}.csv",
            "creator": self._creator,
            "url": presigned,
            "replace": True,
        }
        made = self._custom_list_call("/upload_custom_list_segment_completed", "Segment ID", body)
        return PartnerList(str(made), target.name, target.cohort)

    def _custom_list_call(self, path: str, field: str, body: Any = None) -> Any:
        reply = self._http.request("POST", path, json=body).json()
        if not isinstance(reply, dict) or reply.get("status") != "success" or field not in reply:
            raise PartnerConfigError(
                self._http.message(
                    describe_error(reply) or f"CleverTap answered {path} without its {field}"
                )
            )
        return reply[field]

    def close(self) -> None:
        """Close both HTTP clients."""
        self._http.close()
        self._s3.close()


def _outcome(keys: Sequence[str], failed: Mapping[str, str]) -> BatchOutcome:
    result = BatchOutcome()
    for key in keys:
        if key in failed:
            result.rejected.append(Rejection(key, failed[key]))
        else:
            result.accepted.append(key)
    return result
