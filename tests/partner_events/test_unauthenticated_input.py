"""No malformed input from someone without an account answers 5xx (issue 15, finding 13).

Every endpoint a stranger may call (/track, /engage, /groups, /import with or without credentials,
and each partner's /webhooks/{id}) is sent huge integers, bytes that are not UTF-8, bad base64 and
gzip, JSON nested past any limit, JSON of the wrong type, missing and garbage credentials, the NUL
character (PostgreSQL refuses it in text and JSON), and headers of 60 KB. Each answers the 4xx
named in its row, in its endpoint's error shape; a valid record sent beside an invalid one is
stored all the same.
"""

from __future__ import annotations

import base64
import dataclasses
import gzip
import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from cohortsync.clock import SystemClock
from cohortsync.domain.accounts import Project
from cohortsync.domain.profiles import PROFILE_OPERATIONS
from cohortsync.ingest.partners.registry import FORMATS
from cohortsync.partners.clevertap.outreach import clevertap_event
from cohortsync.partners.iterable.outreach import iterable_webhook
from cohortsync.partners.xtremepush.events import SIGNATURE_HEADER
from cohortsync.partners.xtremepush.outreach import xtremepush_webhook
from cohortsync.sandbox.outreach import partner_headers
from cohortsync.services.projects import ProjectService
from cohortsync.storage.database import read_transaction
from cohortsync.storage.tables import events, group_profiles, profiles
from tests.conftest import LiveServer
from tests.partner_events.conftest import Partners

JSON = {"Content-Type": "application/json"}
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
DEEP = b"[" * 5000 + b"]" * 5000  # past orjson's depth limit of 1024
NUL = "\x00"
_ids = itertools.count()


@dataclass
class Target:
    """What a row builds its request from, and the valid records it expects to find stored."""

    token: str
    secret: str
    now: datetime
    hooks: dict[str, str]  # partner -> webhook path
    secrets: dict[str, str]  # partner -> webhook secret
    kept: list[tuple[str, str]] = field(default_factory=list)  # (table, id) to find stored

    def event(self, props: dict[str, Any] | None = None, keep: bool = False) -> dict[str, Any]:
        """A /track event (valid unless ``props`` spoil it); ``keep``: it must be stored."""
        insert_id = f"keep-{next(_ids)}"
        if keep:
            self.kept.append(("event", insert_id))
        base = {"token": self.token, "distinct_id": "u", "time": int(self.now.timestamp())}
        properties = {**base, "$insert_id": insert_id, **(props or {})}
        return {"event": "Played", "properties": properties}

    def update(self, fields: dict[str, Any] | None = None, keep: bool = False) -> dict[str, Any]:
        """An /engage update (valid unless ``fields`` spoil it)."""
        distinct_id = f"keep-{next(_ids)}"
        if keep:
            self.kept.append(("profile", distinct_id))
        update: dict[str, Any] = {"$token": self.token, "$distinct_id": distinct_id}
        update.update(fields or {})
        if not any(name in PROFILE_OPERATIONS for name in update):
            update["$set"] = {"a": 1}
        return update

    def group(self, fields: dict[str, Any] | None = None, keep: bool = False) -> dict[str, Any]:
        """A /groups update (valid unless ``fields`` spoil it)."""
        group_id = f"keep-{next(_ids)}"
        if keep:
            self.kept.append(("group", group_id))
        ids = {"$token": self.token, "$group_key": "company", "$group_id": group_id}
        update: dict[str, Any] = {**ids, **(fields or {})}
        if not any(name in PROFILE_OPERATIONS for name in update):
            update["$set"] = {"a": 1}
        return update

    def partner_event(self, partner: str, keep: bool = False) -> dict[str, Any]:
        """One valid event in ``partner``'s format, for a user known by nobody else."""
        user = f"keep-{next(_ids)}"
        if keep:
            self.kept.append(("partner", user))
        if partner == "iterable":
            return iterable_webhook("emailOpen", f"{user}@example.com", self.now, user_id=user)
        if partner == "clevertap":
            return clevertap_event("Notification Viewed", user, self.now)
        return xtremepush_webhook("message_delivery", user, self.now)

    def signed(self, partner: str, body: bytes, **headers: str) -> dict[str, Any]:
        """``body`` posted with the partner's credentials (and ``headers`` on top)."""
        sent = partner_headers(partner, self.secrets[partner], body)
        return {"content": body, "headers": {**sent, **headers}}


def _json(records: Any) -> dict[str, Any]:
    return {"content": orjson.dumps(records), "headers": JSON}


def _basic(value: bytes | str) -> dict[str, Any]:
    text = value if isinstance(value, str) else base64.b64encode(value).decode()
    return {"content": b"[]", "headers": {**JSON, "Authorization": f"Basic {text}"}}


def _nothing(t: Target) -> dict[str, Any]:
    return {}


def _with_secret(t: Target, records: Any) -> dict[str, Any]:
    return {**_json(records), "auth": (t.secret, "")}


Build = Callable[[Target], dict[str, Any]]


@dataclass(frozen=True)
class Row:
    """One malformed request and the 4xx it answers, in its endpoint's error shape."""

    name: str
    path: str
    build: Build
    status: int
    shape: str  # "sdk" ({"status": 0, "error"}), "strict" ({"code", "error"}), "api"
    method: str = "POST"


def _deep_profile(t: Target) -> dict[str, Any]:
    deep = orjson.dumps(t.update({"$set": {"n": "here"}}))
    deep = deep.replace(b'"here"', b"[" * 1000 + b"]" * 1000)
    return {"content": b"[" + deep + b"," + orjson.dumps(t.update(keep=True)) + b"]"}


def _deep_property(t: Target) -> dict[str, Any]:
    return _json([t.event({"nested": [[[[1]]]]}), t.event(keep=True)])


INGESTION = [
    # bytes that are not what they claim
    Row("non-UTF-8 JSON", "/track?verbose=1", lambda t: {"content": b"\xff\xfe[]"}, 400, "sdk"),
    Row(
        "non-UTF-8 base64 data",
        "/track?verbose=1",
        lambda t: {"content": b"data=" + base64.b64encode(b"\xff\xfe"), "headers": FORM},
        400,
        "sdk",
    ),
    Row("bad base64 data", "/engage?verbose=1", lambda t: {"content": b"data=%%%"}, 400, "sdk"),
    Row(
        "bad gzip",
        "/track?verbose=1",
        lambda t: {"content": b"\x1f\x8bnot gzip", "headers": {"Content-Encoding": "gzip"}},
        400,
        "sdk",
    ),
    Row(
        "truncated gzip",
        "/groups?verbose=1",
        lambda t: {
            "content": gzip.compress(b"[" * 100)[:-6],
            "headers": {"Content-Encoding": "gzip"},
        },
        400,
        "sdk",
    ),
    Row("JSON nested 5,000 deep", "/track?verbose=1", lambda t: {"content": DEEP}, 400, "sdk"),
    Row("pixel of non-UTF-8", "/track?verbose=1&data=%FF%FE", _nothing, 400, "sdk", "GET"),
    # JSON of the wrong type
    Row("a string body", "/track?verbose=1", lambda t: _json("hello"), 401, "sdk"),
    Row("a null body", "/engage?verbose=1", lambda t: _json(None), 401, "sdk"),
    Row(
        "a number beside a valid event",
        "/track?verbose=1",
        lambda t: _json([5, t.event(keep=True)]),
        400,
        "sdk",
    ),
    Row(
        "properties as a list",
        "/track?verbose=1",
        lambda t: _json([{"event": "x", "properties": [1]}, t.event(keep=True)]),
        400,
        "sdk",
    ),
    Row(
        "$set as a list",
        "/engage?verbose=1",
        lambda t: _json([t.update({"$set": [1]}), t.update(keep=True)]),
        400,
        "sdk",
    ),
    # credentials missing or garbage
    Row("no token", "/track?verbose=1", lambda t: _json([{"event": "x"}]), 401, "sdk"),
    Row(
        "a token of NUL", "/track?verbose=1", lambda t: _json([t.event({"token": NUL})]), 401, "sdk"
    ),
    Row(
        "a token that is an object",
        "/engage?verbose=1",
        lambda t: _json([t.update({"$token": {"a": 1}})]),
        401,
        "sdk",
    ),
    # huge numbers
    Row(
        "a time of -1e308 seconds",
        "/track?verbose=1",
        lambda t: _json([t.event({"time": -1e308}), t.event(keep=True)]),
        400,
        "sdk",
    ),
    Row(
        "$add of 1e308",
        "/engage?verbose=1",
        lambda t: _json([t.update({"$add": {"n": 1e308}}), t.update(keep=True)]),
        400,
        "sdk",
    ),
    # the NUL character, which PostgreSQL cannot store
    Row(
        "NUL in an event name",
        "/track?verbose=1",
        lambda t: _json([{**t.event(), "event": f"a{NUL}"}, t.event(keep=True)]),
        400,
        "sdk",
    ),
    Row(
        "NUL in a distinct_id",
        "/track?verbose=1",
        lambda t: _json([t.event({"distinct_id": f"u{NUL}"}), t.event(keep=True)]),
        400,
        "sdk",
    ),
    Row(
        "NUL in a property name",
        "/track?verbose=1",
        lambda t: _json([t.event({f"a{NUL}": 1}), t.event(keep=True)]),
        400,
        "sdk",
    ),
    Row(
        "NUL deep in a property value",
        "/track?verbose=1",
        lambda t: _json([t.event({"nested": {"a": [f"b{NUL}"]}}), t.event(keep=True)]),
        400,
        "sdk",
    ),
    Row(
        "NUL in a profile value",
        "/engage?verbose=1",
        lambda t: _json([t.update({"$set": {"a": NUL}}), t.update(keep=True)]),
        400,
        "sdk",
    ),
    Row(
        "NUL in a $distinct_id",
        "/engage?verbose=1",
        lambda t: _json([t.update({"$distinct_id": NUL}), t.update(keep=True)]),
        400,
        "sdk",
    ),
    Row(
        "NUL in a $unset name",
        "/engage?verbose=1",
        lambda t: _json([t.update({"$unset": [NUL]}), t.update(keep=True)]),
        400,
        "sdk",
    ),
    Row(
        "NUL in a group key",
        "/groups?verbose=1",
        lambda t: _json([t.group({"$group_key": NUL}), t.group(keep=True)]),
        400,
        "sdk",
    ),
    Row(
        "NUL in a group property",
        "/groups?verbose=1",
        lambda t: _json([t.group({"$set": {NUL: 1}}), t.group(keep=True)]),
        400,
        "sdk",
    ),
    # nested past the limit inside a record
    Row("a property nested 4 deep", "/track?verbose=1", _deep_property, 400, "sdk"),
    Row("a profile value nested 1,000 deep", "/engage?verbose=1", _deep_profile, 400, "sdk"),
    # /import: the query string and the Basic credentials
    Row(
        "project_id of 5,000 digits",
        "/import?strict=1&project_id=" + "9" * 5000,
        lambda t: {**_json([]), "auth": ("account", "secret")},
        401,
        "strict",
    ),
    Row(
        "project_id of 30 digits",
        "/import?strict=1&project_id=" + "9" * 30,
        lambda t: {**_json([]), "auth": ("account", "secret")},
        401,
        "strict",
    ),
    Row(
        "project_id in superscript digits",
        "/import?strict=1&project_id=%C2%B2",
        lambda t: {**_json([]), "auth": ("account", "secret")},
        401,
        "strict",
    ),
    Row("Basic that is not base64", "/import?strict=1", lambda t: _basic("***"), 401, "strict"),
    Row("Basic not UTF-8", "/import?strict=1", lambda t: _basic(b"\xff:\xfe"), 401, "strict"),
    Row("Basic with NUL", "/import?strict=1", lambda t: _basic(b"a\x00b:"), 401, "strict"),
    Row("Basic of 60 KB", "/import?strict=1", lambda t: _basic("A" * 60_000), 401, "strict"),
    Row(
        "import with NUL",
        "/import?strict=1",
        lambda t: _with_secret(t, [t.event({"note": NUL}), t.event(keep=True)]),
        400,
        "strict",
    ),
    Row(
        "import of a time of -1e308",
        "/import?strict=1",
        lambda t: _with_secret(t, [t.event({"time": -1e308}), t.event(keep=True)]),
        400,
        "strict",
    ),
    Row(
        "import NDJSON not UTF-8",
        "/import?strict=1",
        lambda t: {
            "content": b"\xff\n\xfe",
            "headers": {"Content-Type": "application/x-ndjson"},
            "auth": (t.secret, ""),
        },
        400,
        "strict",
    ),
    Row(
        "import nested 5,000 deep",
        "/import?strict=1",
        lambda t: {"content": DEEP, "headers": JSON, "auth": (t.secret, "")},
        400,
        "strict",
    ),
    Row(
        "non-strict import with NUL",
        "/import?verbose=1",
        lambda t: _with_secret(t, [t.event({"note": NUL}), t.event(keep=True)]),
        400,
        "sdk",
    ),
]


def _spoiled(partner: str, event: dict[str, Any], how: str) -> dict[str, Any]:
    """``event`` with a NUL in a property, a property nested 300 deep, or a time of -1e308
    seconds, where ``partner`` puts them."""
    props = event["dataFields"] if partner == "iterable" else event["properties"]
    if how == "nul":
        props["note"] = f"a{NUL}"
    elif how == "deep":
        props["note"] = orjson.loads(b"[" * 300 + b"]" * 300)  # past orjson's 254 to write
    elif partner == "iterable":
        props["createdAt"] = -1e308
    elif partner == "clevertap":
        props["time"] = -1e308
    else:
        event["time"] = -1e308
    return event


def _webhook_rows(partner: str) -> list[Row]:
    def hook(t: Target) -> str:
        return t.hooks[partner]

    def pair(how: str) -> Build:
        def build(t: Target) -> dict[str, Any]:
            bad = _spoiled(partner, t.partner_event(partner), how)
            both = [bad, t.partner_event(partner, keep=True)]
            return t.signed(partner, json.dumps(both).encode())  # orjson writes 254 levels

        return build

    rows = [
        Row("no credentials", "", lambda t: {"content": b"{}"}, 401, "api"),
        Row(
            "garbage Authorization",
            "",
            lambda t: {"content": b"{}", "headers": {"Authorization": "Digest !@#$%^&*()"}},
            401,
            "api",
        ),
        Row("Basic not base64", "", lambda t: _basic("***"), 401, "api"),
        Row("Basic not UTF-8", "", lambda t: _basic(b"\xff:\xfe"), 401, "api"),
        Row("Basic of 60 KB", "", lambda t: _basic("A" * 60_000), 401, "api"),
        Row(
            "Basic of a byte that is not ASCII",
            "",
            lambda t: {"content": b"{}", "headers": {"Authorization": b"Basic \xff"}},
            401,
            "api",
        ),
        Row(
            "Bearer in Latin-1",
            "",
            lambda t: {"content": b"{}", "headers": {"Authorization": b"Bearer \xe9\xff"}},
            401,
            "api",
        ),
        Row("body not UTF-8", "", lambda t: t.signed(partner, b"\xff\xfe"), 400, "api"),
        Row("body nested 5,000 deep", "", lambda t: t.signed(partner, DEEP), 400, "api"),
        Row("body a string", "", lambda t: t.signed(partner, b'"x"'), 400, "api"),
        Row("body null", "", lambda t: t.signed(partner, b"null"), 400, "api"),
        Row(
            "body bad gzip",
            "",
            lambda t: t.signed(partner, b"\x1f\x8bxx", **{"Content-Encoding": "gzip"}),
            400,
            "api",
        ),
        Row("NUL beside a valid event", "", pair("nul"), 400, "api"),
        Row("time of -1e308 beside a valid event", "", pair("time"), 400, "api"),
        Row("nested 300 deep beside a valid event", "", pair("deep"), 400, "api"),
    ]
    if partner == "xtremepush":

        def signed_at(digits: str) -> Build:
            return lambda t: {"content": b"{}", "headers": {SIGNATURE_HEADER: f"t={digits},v1=ab"}}

        rows += [
            Row("signature time of 30 digits", "", signed_at("9" * 30), 401, "api"),
            Row("signature time of 5,000 digits", "", signed_at("9" * 5000), 401, "api"),
        ]
        rows.append(
            Row(
                "signature time in other digits",
                "",
                lambda t: {"content": b"{}", "headers": {SIGNATURE_HEADER: "t=²,v1=ab".encode()}},
                401,
                "api",
            )
        )
    return [dataclasses.replace(row, name=f"{partner}: {row.name}") for row in rows]


WEBHOOK_IDS = [
    Row(f"webhook id {path[:20]}", f"/webhooks/{path}", lambda t: {"content": b"{}"}, 400, "api")
    for path in ("9" * 25, "9" * 5000, str(2**31), str(2**63 - 1), "0")
]


def _shape_problem(shape: str, status: int, body: Any) -> str | None:
    """What is wrong with an error body of ``shape``, or None."""
    if shape == "sdk" and status >= 400:
        ok = body.get("status") == 0 and isinstance(body.get("error"), str)
    elif shape == "sdk":
        ok = body.get("status") == 1
    elif shape == "strict":
        ok = body.get("code") == status and isinstance(body.get("error"), str)
    else:
        error = body.get("error") if isinstance(body, dict) else None
        ok = isinstance(error, dict) and {"code", "message"} <= error.keys()
    return None if ok else f"not the {shape} error shape: {body!r}"[:300]


def _missing(t: Target, engine: Engine) -> list[tuple[str, str]]:
    """The kept records that are not stored."""
    columns = {
        "event": events.c.insert_id,
        "partner": events.c.distinct_id,
        "profile": profiles.c.distinct_id,
        "group": group_profiles.c.group_id,
    }
    with read_transaction(engine) as connection:
        return [
            (table, key)
            for table, key in t.kept
            if not connection.execute(
                sa.select(sa.func.count()).where(columns[table] == key)
            ).scalar()
        ]


def _run(rows: list[Row], t: Target, server: LiveServer, path_of: Callable[[Row], str]) -> None:
    problems = []
    for row in rows:
        t.kept = []
        with server.client() as client:  # a fresh connection: no reply leaks into the next
            reply = client.request(row.method, path_of(row), **row.build(t))
        if reply.status_code != row.status:
            problems.append(f"{row.name}: {reply.status_code} {reply.text[:200]}")
            continue
        body = orjson.loads(reply.content)
        problem = _shape_problem(row.shape, reply.status_code, body)
        missing = _missing(t, server.engine)
        if problem or missing:
            problems.append(f"{row.name}: {problem or ''} lost {missing}")
    assert not problems, "\n".join(problems)


def _target(
    server: LiveServer, project: Project, integrations: dict[str, dict[str, Any]]
) -> Target:
    return Target(
        token=project.token,
        secret=ProjectService(server.engine, SystemClock()).rotate_api_secret(project.id),
        now=server.clock.now(),
        hooks={name: hook["webhook"]["path"] for name, hook in integrations.items()},
        secrets={name: hook["webhook"]["secret"] for name, hook in integrations.items()},
    )


def test_ingestion_endpoints_answer_malformed_input_with_a_4xx(
    live_server: LiveServer, project: Project
) -> None:
    _run(INGESTION, _target(live_server, project, {}), live_server, lambda row: row.path)


def test_every_partner_webhook_answers_malformed_input_with_a_4xx(partners: Partners) -> None:
    t = _target(partners.server, partners.project, partners.integrations)
    assert set(t.hooks) == set(FORMATS)  # a partner that sends events needs its rows here
    rows = [row for partner in sorted(t.hooks) for row in _webhook_rows(partner)]

    def path_of(row: Row) -> str:
        return row.path or t.hooks[row.name.split(":", 1)[0]]

    _run([*rows, *WEBHOOK_IDS], t, partners.server, path_of)
