"""CleverTap: the wire format of segment sync (CleverTap REST API).

Sources (checked 2026-11): developer.clevertap.com "Authentication" (incl. "Authorize Partners"),
"Common API Components" (regions), "Upload User Profiles", "Errors", "API rate limits",
"Create Segment API", "Update Segment API"; docs.clevertap.com "Mixpanel integration".

Documented:
- Headers ``X-CleverTap-Account-Id`` (the dashboard's "Project ID") and ``X-CleverTap-Passcode``;
  hosts ``api.clevertap.com`` (EU, default) and ``{in1,sg1,us1,aps3,mec1}.api.clevertap.com``.
- ``GET /v1/connect?partner=…``: the call partners use to verify a customer's credentials.
- ``POST /1/upload`` ``{"d": [{"identity", "type": "profile", "profileData": {…}}]}``, at most
  1,000 records, 15 concurrent requests per account (over it: 429 "Too many concurrent
  requests"); always 200 with ``{"status": "success", "processed", "unprocessed": [{"status",
  "code", "error": "… Skipped record number : N", "record": "<JSON text>"}]}``.
- Bad credentials: 401 ``{"status": "fail", "error": "Account ID is not valid", "code": 401}``.
- A cohort lands as a segment; its identity is ``$CleverTap_user_id`` when set, else the
  distinct_id ("Mixpanel integration": user identity management).

Inferred (the public pages stop short; correct here against the real service): the bodies of
``POST /api/createSegment`` ``{"segments": [{"segment_name", "customer_segment_id"}]}`` (409 when
the id exists) and ``POST /api/updateSegment`` ``{"bulk_profiles": [{"user_profiles":
[{"identity"}], "segments": [{"customer_segment_id", "action": "add"|"remove"}]}]}`` answered
like ``/1/upload``; the free-plan refusal as 403 ``{"status": "fail", "error": "App may not
submit cohort updates from Mixpanel"}``, shown to the admin verbatim.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

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
from cohortsync.destinations.connection import ConnectorConfig, HttpConnector, PartnerSpec
from cohortsync.destinations.members import export_columns, text
from cohortsync.destinations.setting_checks import plain_text, property_names

REGIONS = {
    "eu1": "https://api.clevertap.com",
    "in1": "https://in1.api.clevertap.com",
    "sg1": "https://sg1.api.clevertap.com",
    "us1": "https://us1.api.clevertap.com",
    "aps3": "https://aps3.api.clevertap.com",
    "mec1": "https://mec1.api.clevertap.com",
}
CAPABILITIES = Capabilities(
    max_batch=1000,
    max_concurrency=15,
    requests_per_second=None,
    max_body_bytes=None,
    interval=timedelta(minutes=15),
)
USER_ID_PROPERTY = "$CleverTap_user_id"
PARTNER_NAME = "cohortsync"
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


def segment_id(cohort: CohortInfo) -> str:
    """Our id for the cohort's segment (``customer_segment_id``), stable across runs."""
    return f"cohortsync-{cohort.id}"


def unprocessed(identities: Sequence[str], body: Mapping[str, Any]) -> dict[str, str]:
    """Identity → error of each record the reply lists as unprocessed."""
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
    return failed


class CleverTapDestination(HttpConnector):
    """A CleverTap segment per cohort; members' export columns upserted as profiles."""

    capabilities = CAPABILITIES

    def __init__(self, config: ConnectorConfig) -> None:
        account = config.credentials["account_id"]
        self._columns = list(config.settings.get("export_properties") or [])
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

    def member(self, distinct_id: str, profile: Mapping[str, Any]) -> PartnerMember | Skip:
        """Identity ``$CleverTap_user_id`` when set, else the distinct_id; export columns."""
        identity = text(profile, USER_ID_PROPERTY) or distinct_id
        columns = export_columns(profile, distinct_id, (USER_ID_PROPERTY, *self._columns))
        data = {PROFILE_KEYS.get(name, name): value for name, value in columns.items()}
        return PartnerMember(key=identity, distinct_id=distinct_id, fields={"profileData": data})

    def check(self) -> None:
        """``GET /v1/connect?partner=…``: CleverTap's credential check for partners."""
        self._http.request("GET", "/v1/connect", params={"partner": PARTNER_NAME})

    def ensure_list(self, name: str, cohort: CohortInfo) -> PartnerList:
        """Create the segment; a 409 (the id exists already) means it is there."""
        body = {"segments": [{"segment_name": name, "customer_segment_id": segment_id(cohort)}]}
        self._http.request("POST", "/api/createSegment", json=body, accept=(409,))
        return PartnerList(segment_id(cohort), name, cohort)

    def _segment(
        self, target: PartnerList, identities: Sequence[str], action: str
    ) -> dict[str, str]:
        body = {
            "bulk_profiles": [
                {
                    "user_profiles": [{"identity": i} for i in identities],
                    "segments": [{"customer_segment_id": target.id, "action": action}],
                }
            ]
        }
        reply = self._http.request("POST", "/api/updateSegment", json=body).json()
        return unprocessed(identities, reply)

    def add_members(self, target: PartnerList, members: Sequence[PartnerMember]) -> BatchOutcome:
        """Upsert the profiles (``/1/upload``), then add the ones taken to the segment."""
        records = [
            {"identity": m.key, "type": "profile", "profileData": dict(m.fields["profileData"])}
            for m in members
        ]
        reply = self._http.request("POST", "/1/upload", json={"d": records}).json()
        keys = [m.key for m in members]
        failed = unprocessed(keys, reply)
        taken = [k for k in keys if k not in failed]
        if taken:
            failed.update(self._segment(target, taken, "add"))
        return _outcome(keys, failed)

    def remove_members(self, target: PartnerList, members: Sequence[PartnerMember]) -> BatchOutcome:
        """Take identities out of the segment (profiles stay)."""
        keys = [m.key for m in members]
        return _outcome(keys, self._segment(target, keys, "remove"))


def _outcome(keys: Sequence[str], failed: Mapping[str, str]) -> BatchOutcome:
    result = BatchOutcome()
    for key in keys:
        if key in failed:
            result.rejected.append(Rejection(key, failed[key]))
        else:
            result.accepted.append(key)
    return result


SPEC = PartnerSpec(
    type="clevertap",
    title="CleverTap",
    credentials=("account_id", "passcode"),
    optional_credentials=(),
    regions=REGIONS,
    default_region="eu1",
    capabilities=CAPABILITIES,
    build=CleverTapDestination,
    extra_settings={"export_properties": property_names, "connector_name": plain_text},
)
