"""Property: the compiled decoders' fast path and the per-record path agree on every event body.

Bodies are clean records with, most often, one fault near one rule (empty and long names,
placeholder ids, a boolean ``time``, times at the limits, NUL, nesting depth, key and item
counts, 1 MB, identity events, fields beside ``event`` and ``properties``): whatever the fast
path takes, the per-record path takes too, with the same rows and identity links; whatever it
refuses goes through that path whole, so every refusal is that path's own. Run with
``COHORTSYNC_FUZZ_SCALE=10`` for ten times the examples.
"""

from __future__ import annotations

import copy
import gzip
import json
import os
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from cohortsync.domain.errors import CohortsyncError
from cohortsync.domain.events import (
    MAX_EVENT_BYTES,
    MAX_NESTING_DEPTH,
    MIN_EVENT_TIME_MS,
    RESERVED_IDS,
)
from cohortsync.domain.identity import IdentityMode
from cohortsync.ingest.body import decode_body
from cohortsync.ingest.decoders import events_from_json, events_from_records
from cohortsync.ingest.events import PreparedBatch, prepare_decoded, prepare_each, prepare_events
from cohortsync.ingest.parse_pool import ImportBody, prepare_body
from tests.conftest import NOW_MS

SCALE = float(os.environ.get("COHORTSYNC_FUZZ_SCALE", "1"))
TRACK_OLDEST_MS = NOW_MS - 5 * 86_400_000
HOUR_AHEAD_MS = NOW_MS + 3_600_000
PROJECT = 7
Record = dict[str, Any]


def _nested(depth: int, width: int) -> Any:
    """A value whose lists nest ``depth`` levels, the innermost ``width`` items long."""
    value: Any = list(range(width))
    for _ in range(depth - 1):
        value = [value]
    return value


def _not_reserved(text: str) -> str:
    return text if text.strip().lower() not in RESERVED_IDS else f"{text}x"


# What the per-record path takes, boundaries included.
good_texts = st.one_of(
    st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=12),
    st.sampled_from(["x" * 255, "é" * 255, "😀" * 255, "a b", "\n"]),
).map(_not_reserved)
good_times = st.one_of(
    st.integers(TRACK_OLDEST_MS, HOUR_AHEAD_MS),
    st.integers(TRACK_OLDEST_MS // 1000 + 1, HOUR_AHEAD_MS // 1000),
    st.floats(TRACK_OLDEST_MS / 1000 + 1, HOUR_AHEAD_MS / 1000),
    st.sampled_from([TRACK_OLDEST_MS, HOUR_AHEAD_MS]),
)
good_insert_ids = st.from_regex(r"[A-Za-z0-9-]{1,36}", fullmatch=True).map(
    lambda text: text if text.lower() not in RESERVED_IDS else "id-1"
)
good_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    good_texts,
)
good_values = st.recursive(
    good_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(good_texts, inner, max_size=3)
    ),
    max_leaves=4,
)
GOOD_KEYS = ["plan", "amount", "é", "", "$os", "path"]
NAMES = st.one_of(
    good_texts.filter(bool),
    st.sampled_from(["App Open", "$identify", "$create_alias", "$merge", "$mp_web_page"]),
)

# Values near or past each rule: placeholders in any case and padding, NUL (the character and
# the six characters ``\u0000``), lengths at the limits, numbers past 64 bits, wrong types.
placeholders = st.sampled_from(sorted(RESERVED_IDS)).flatmap(
    lambda word: st.sampled_from([word, word.upper(), f" {word} ", word.title()])
)
texts = st.one_of(
    st.text(max_size=8),
    st.sampled_from(["u1", "é", "😀", "a\x00b", "\\u0000", "x" * 255, "x" * 256, " ", "\t"]),
    st.sampled_from(["é" * 255, "é" * 256, "😀" * 255, "😀" * 256]),
    placeholders,
)
ids: st.SearchStrategy[Any] = st.one_of(
    texts,
    st.integers(-5, 5),
    st.sampled_from([2**63 - 1, 2**63, 2**64, 1.5, -0.0, True, False, None, [], {}, ["a"]]),
)
times = st.one_of(
    st.sampled_from([None, True, False, "", "soon", "1700000000", "1.7e9", [], {}]),
    st.sampled_from([MIN_EVENT_TIME_MS - 1, MIN_EVENT_TIME_MS, 31_536_000, 31_535_999]),
    st.sampled_from([TRACK_OLDEST_MS - 1, TRACK_OLDEST_MS, HOUR_AHEAD_MS, HOUR_AHEAD_MS + 1]),
    st.sampled_from([TRACK_OLDEST_MS // 1000 - 1, HOUR_AHEAD_MS / 1000, HOUR_AHEAD_MS // 1000 + 1]),
    st.sampled_from([99_999_999_999, 100_000_000_000, 2**63 - 1, 2**63, 2**64, -(2**63)]),
    st.sampled_from([1e308, -1e308, 1e-300, -0.0]),
    st.integers(NOW_MS - 6 * 86_400_000, NOW_MS + 2 * 3_600_000),
)
insert_ids = st.one_of(
    st.from_regex(r"[A-Za-z0-9-]{1,37}", fullmatch=True),
    st.sampled_from(["a_b", "", "null", "NULL", "0", "-1", "x" * 36, "x" * 37, 5, True, None]),
    placeholders,
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    texts,
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=8,
)
nestings = st.one_of(
    st.builds(_nested, st.integers(MAX_NESTING_DEPTH - 1, MAX_NESTING_DEPTH + 1), st.just(1)),
    st.builds(_nested, st.integers(1, 3), st.sampled_from([254, 255])),
    st.sampled_from([254, 255]).map(lambda n: {f"k{i}": i for i in range(n)}),
    st.sampled_from([254, 255]).map(lambda n: [{f"k{i}": i for i in range(n)}]),
    st.just({"a": {"b": {"c": {"d": 1}}}}),
    st.just({"a": {"b": {"c": 1}}}),
    st.just([{"a": [1]}]),
    st.just([{"a": [[1]]}]),
)
IDENTITY_KEYS = ["$device_id", "$user_id", "$identified_id", "$anon_id", "alias"]


@st.composite
def good_records(draw: st.DrawFn) -> Record:
    """A record the per-record path takes (an identity event may still lack its ids)."""
    props: Record = {"distinct_id": draw(good_texts)} if draw(st.integers(0, 5)) else {}
    if draw(st.booleans()):
        props["time"] = draw(good_times)
    if draw(st.booleans()):
        props["$insert_id"] = draw(good_insert_ids)
    if draw(st.booleans()):
        props["token"] = draw(good_texts)
    for key in IDENTITY_KEYS:
        if draw(st.integers(0, 2)) == 0:
            props[key] = draw(good_texts)
    if draw(st.integers(0, 4)) == 0:
        props["$distinct_ids"] = draw(st.lists(good_texts, min_size=2, max_size=2))
    for key in draw(st.lists(st.sampled_from(GOOD_KEYS), max_size=4)):
        props[key] = draw(good_values)
    many = draw(st.sampled_from([0] * 8 + [253, 254]))
    props.update({f"p{i}": i for i in range(many - len(props))})
    return {"event": draw(NAMES), "properties": props}


def _set(key: str, strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Callable[[Record], None]]:
    """A fault: the property ``key`` set to a value of ``strategy``, or taken away."""

    def fault(value: Any) -> Callable[[Record], None]:
        def apply(record: Record) -> None:
            if value is ...:
                record["properties"].pop(key, None)
            else:
                record["properties"][key] = value

        return apply

    return st.one_of(strategy, st.just(...)).map(fault)


def _record_fault(change: str, value: Any) -> Callable[[Record], None]:
    def apply(record: Record) -> None:
        if change == "name":
            record["event"] = value
        elif change == "no name":
            del record["event"]
        elif change == "field":
            record[value] = "x"
        elif change == "properties":
            if value is ...:
                del record["properties"]
            else:
                record["properties"] = value
        elif change == "keys":  # ``value`` keys in all
            props = record["properties"]
            props.update({f"q{i}": i for i in range(value - len(props))})
        elif change == "size":  # the properties document near 1 MB (the columns are not in it)
            kept = {k: v for k, v in record["properties"].items() if k not in ("time", "token")}
            kept.pop("distinct_id", None)
            kept.pop("$insert_id", None)
            room = MAX_EVENT_BYTES - len(orjson.dumps({**kept, "blob": ""}))
            record["properties"]["blob"] = "x" * (room + value)

    return apply


FAULTS: dict[str, st.SearchStrategy[Callable[[Record], None]]] = {
    "event": st.one_of(
        st.tuples(st.just("name"), st.one_of(texts, st.sampled_from([None, 5, True, ["a"]]))),
        st.tuples(st.just("no name"), st.none()),
    ).map(lambda fault: _record_fault(*fault)),
    "shape": st.one_of(
        st.tuples(st.just("field"), st.sampled_from(["$insert_id", "time", "extra"])),
        st.tuples(st.just("properties"), st.sampled_from([None, [1], "p", {}, ...])),
        st.tuples(st.just("keys"), st.integers(250, 256)),
    ).map(lambda fault: _record_fault(*fault)),
    "distinct_id": _set("distinct_id", ids),
    "time": _set("time", times),
    "$insert_id": _set("$insert_id", insert_ids),
    "token": _set("token", st.one_of(texts, st.just(_nested(MAX_NESTING_DEPTH + 2, 1)))),
    "identity": st.one_of(
        *(_set(key, ids) for key in IDENTITY_KEYS), _set("$distinct_ids", st.lists(ids))
    ),
    "nesting": st.sampled_from(GOOD_KEYS).flatmap(lambda key: _set(key, nestings)),
    "values": st.sampled_from([*GOOD_KEYS, "a\x00", "\\u0000"]).flatmap(
        lambda key: _set(key, values)
    ),
    "size": st.integers(-2, 2).map(lambda over: _record_fault("size", over)),
}


@st.composite
def bodies(draw: st.DrawFn, rule: str) -> Any:
    """Good records, then most often one fault near ``rule`` in one of them; one record, or a
    list of them."""
    sent = draw(st.lists(good_records(), min_size=1, max_size=3))
    if draw(st.integers(0, 4)):
        draw(FAULTS[rule])(draw(st.sampled_from(sent)))
    return sent[0] if len(sent) == 1 and draw(st.booleans()) else sent


def _document(body: Any, ascii_only: bool) -> bytes:
    """The JSON a client sends (json, not orjson: integers past 64 bits are sent as they are)."""
    return json.dumps(body, ensure_ascii=ascii_only, allow_nan=False).encode()


def _today(document: bytes, mode: IdentityMode, oldest_ms: int) -> PreparedBatch | str:
    """What the per-record path makes of a JSON body: its batch, or the body's refusal."""
    try:
        sent = decode_body(document, "application/json", "").records
    except CohortsyncError as error:
        return f"{type(error).__name__}: {error.message}"
    return prepare_each(list(enumerate(sent)), PROJECT, mode, now_ms=NOW_MS, oldest_ms=oldest_ms)


def _prepared_body(document: bytes, mode: IdentityMode, oldest_ms: int) -> PreparedBatch | str:
    """What the helper process makes of the body sent gzipped."""
    body = ImportBody(
        gzip.compress(document, 1), "application/json", "gzip", PROJECT, mode, NOW_MS, oldest_ms
    )
    try:
        return prepare_body(body)
    except CohortsyncError as error:
        return f"{type(error).__name__}: {error.message}"


def _fast(document: bytes, mode: IdentityMode, oldest_ms: int) -> PreparedBatch | None:
    decoded = events_from_json(document)
    if decoded is None:
        return None
    return prepare_decoded(
        decoded, range(len(decoded)), PROJECT, mode, now_ms=NOW_MS, oldest_ms=oldest_ms
    )


def _agree(document: bytes, mode: IdentityMode, oldest_ms: int) -> bool:
    """Assert that the fast path takes only what the per-record path takes, with the same
    batch, and that every way in answers as that path does; whether the fast path took it."""
    today = _today(document, mode, oldest_ms)
    fast = _fast(document, mode, oldest_ms)
    if fast is not None:
        assert isinstance(today, PreparedBatch)
        assert today.failed == []
        assert fast == today
    assert _prepared_body(document, mode, oldest_ms) == today
    if isinstance(today, PreparedBatch):  # records already decoded: /track, file imports
        sent = orjson.loads(document)
        pairs = list(enumerate(sent if isinstance(sent, list) else [sent]))
        kept = copy.deepcopy(pairs)
        assert prepare_events(pairs, PROJECT, mode, now_ms=NOW_MS, oldest_ms=oldest_ms) == today
        assert pairs == kept  # the caller's records are left as they were
    return fast is not None


@pytest.mark.parametrize("rule", sorted(FAULTS))
@settings(
    max_examples=int(20 * SCALE),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data())
def test_the_fast_path_takes_only_what_the_per_record_path_takes(
    rule: str, data: st.DataObject
) -> None:
    body = data.draw(bodies(rule), label="body")
    mode = data.draw(st.sampled_from(list(IdentityMode)), label="mode")
    oldest_ms = data.draw(st.sampled_from([MIN_EVENT_TIME_MS, TRACK_OLDEST_MS]), label="oldest")
    try:
        document = _document(body, ascii_only=data.draw(st.booleans(), label="ascii"))
    except UnicodeEncodeError:
        return  # a lone surrogate, which UTF-8 cannot carry
    event("fast path" if _agree(document, mode, oldest_ms) else "per-record path")


# Every value near a rule, each put in turn into a clean record of every kind the rules treat
# apart (a plain event; identity events for original ID merge), in both identity modes.
PLAIN = {
    "event": "Open",
    "properties": {
        "distinct_id": "u1",
        "time": NOW_MS // 1000 - 60,
        "$insert_id": "abc-1",
        "token": "t",
        "$device_id": "d1",
        "$user_id": "u1",
        "plan": "pro",
        "tags": [["a"], {"b": [1]}],
    },
}
IDENTITY_BASES = [
    {"event": "$identify", "properties": {"$identified_id": "u2", "$anon_id": "a2"}},
    {"event": "$create_alias", "properties": {"distinct_id": "u3", "alias": "a3"}},
    {"event": "$merge", "properties": {"$distinct_ids": ["u4", "a4"]}},
]
BASES = {IdentityMode.SIMPLIFIED: [PLAIN], IdentityMode.ORIGINAL: [PLAIN, *IDENTITY_BASES]}
ID_EDGES: list[Any] = [
    *sorted(RESERVED_IDS),
    " NULL ",
    "Undefined",
    "x" * 255,
    "x" * 256,
    "é" * 256,
    "😀" * 255,
    "u\x00",
    "\\u0000",
    " u ",
    0,
    7,
    -1,
    1.5,
    2**63,
    2**64,
    True,
    False,
    None,
    [],
    {},
    ["u"],
    ...,
]


def _values(*values: Any) -> tuple[Any, ...]:
    return values


EDGES: dict[str, list[tuple[str, Any]]] = {
    "ids": [
        (key, value)
        for key in ["distinct_id", "$device_id", "$user_id", *IDENTITY_KEYS[2:]]
        for value in ID_EDGES
    ]
    + [("$distinct_ids", v) for v in [[], ["u"], ["u", "u"], ["u", "null"], ["u", 5], "u", ...]],
    "time": [
        ("time", value)
        for value in _values(
            *(MIN_EVENT_TIME_MS + d for d in (-1, 0)),
            *(MIN_EVENT_TIME_MS // 1000 + d for d in (-1, 0)),
            *(TRACK_OLDEST_MS + d for d in (-1, 0)),
            *(TRACK_OLDEST_MS // 1000 + d for d in (-1, 0, 1)),
            *(HOUR_AHEAD_MS + d for d in (0, 1)),
            *(HOUR_AHEAD_MS // 1000 + d for d in (0, 1)),
            HOUR_AHEAD_MS / 1000 + 0.0004,
            HOUR_AHEAD_MS / 1000 + 0.0006,
            99_999_999_999,
            100_000_000_000,
            1e308,
            -1e308,
            2**63,
            2**64,
            True,
            False,
            "1700000000",
            "soon",
            "",
            None,
            [],
            ...,
        )
    ],
    "$insert_id": [
        ("$insert_id", value)
        for value in _values(
            *sorted(RESERVED_IDS),
            "NULL",
            "x" * 36,
            "x" * 37,
            "a_b",
            "a b",
            "é",
            "A-1",
            5,
            True,
            None,
            [],
            ...,
        )
    ],
    "values": [
        (key, value)
        for key in ["plan", "a\x00", "\\u0000", "é"]
        for value in _values(
            _nested(MAX_NESTING_DEPTH, 1),
            _nested(MAX_NESTING_DEPTH + 1, 1),
            {"a": {"b": {"c": 1}}},
            {"a": {"b": {"c": {}}}},
            [{"a": [1]}],
            [{"a": [[1]]}],
            *(_nested(depth, n) for depth in (1, 2, 3) for n in (254, 255)),
            *([{f"k{i}": i for i in range(n)}] for n in (254, 255)),
            *({f"k{i}": i for i in range(n)} for n in (254, 255)),
            2**63 - 1,
            2**63,
            -(2**63),
            -(2**63) - 1,
            2**64,
            -0.0,
            1e-320,
            "a\x00",
            "\\u0000",
            ["\x00"],
            {"\x00": 1},
            None,
            ...,
        )
    ],
}


def _faulty(base: Record, key: str, value: Any) -> Record:
    record = copy.deepcopy(base)
    if value is ...:
        record["properties"].pop(key, None)
    else:
        record["properties"][key] = value
    return record


@pytest.mark.parametrize("group", sorted(EDGES))
def test_every_value_near_a_rule_agrees(group: str) -> None:
    for key, value in EDGES[group]:
        for mode, bases in BASES.items():
            for base in bases:
                for oldest_ms in (MIN_EVENT_TIME_MS, TRACK_OLDEST_MS):
                    sent = [_faulty(base, key, value), PLAIN]
                    _agree(_document(sent, ascii_only=False), mode, oldest_ms)


@pytest.mark.parametrize("mode", list(IdentityMode))
def test_every_change_to_a_record_agrees(mode: IdentityMode) -> None:
    for base in BASES[mode]:
        for count in range(250, 257):
            record = copy.deepcopy(base)
            _record_fault("keys", count)(record)
            _agree(_document([PLAIN, record], ascii_only=False), mode, MIN_EVENT_TIME_MS)
        for over in range(-2, 3):
            record = copy.deepcopy(base)
            _record_fault("size", over)(record)
            _agree(_document([PLAIN, record], ascii_only=True), mode, MIN_EVENT_TIME_MS)
        for change, value in [
            *(("name", name) for name in ["", "x" * 255, "x" * 256, "é" * 256, "a\x00", 5, None]),
            ("no name", None),
            *(("field", field) for field in ["$insert_id", "time", "extra"]),
            *(("properties", props) for props in _values(None, [1], "p", {}, ...)),
        ]:
            record = copy.deepcopy(base)
            _record_fault(change, value)(record)
            _agree(_document([PLAIN, record], ascii_only=False), mode, MIN_EVENT_TIME_MS)


CLEAN = {"event": "Open", "properties": {"distinct_id": "u1", "time": 1_700_000_000}}


@pytest.mark.parametrize(
    "odd",
    [
        b'"\\ud800"',  # a lone surrogate
        b'"\xff"',  # not UTF-8
        b"1e400",  # past a double
        b"1" + b"0" * 400,  # past a double too, for orjson; an integer for msgspec
        b"18446744073709551616",  # past 64 bits: a float for orjson
        b"NaN",
        b"[" * 1100 + b"]" * 1100,  # past orjson's depth
        b'"a\x01"',  # a raw control character
    ],
)
@pytest.mark.parametrize("where", ["beside", "property", "time", "distinct_id"])
def test_json_only_one_parser_takes_is_left_to_the_per_record_path(odd: bytes, where: str) -> None:
    props = b'{"distinct_id":"u1","time":1700000000,"p":1}'
    if where == "beside":  # a field the decoder does not know, so would only skip
        record = b'{"event":"Open","properties":' + props + b',"x":' + odd + b"}"
    else:
        key = {
            "property": b'"p":1',
            "time": b'"time":1700000000',
            "distinct_id": b'"distinct_id":"u1"',
        }
        record = (
            b'{"event":"Open","properties":'
            + props.replace(key[where], key[where].split(b":")[0] + b":" + odd)
            + b"}"
        )
    document = b"[" + orjson.dumps(CLEAN) + b"," + record + b"]"
    for mode in IdentityMode:
        assert not _agree(document, mode, MIN_EVENT_TIME_MS)


def test_clean_batches_take_the_fast_path() -> None:
    sent = [
        {
            "event": "Page View",
            "properties": {
                "distinct_id": f"user-{i % 7}",
                "time": 1_700_000_000 + i,
                "$insert_id": f"id-{i}",
                "$device_id": f"dev-{i % 5}",
                "$user_id": f"user-{i % 7}",
                "amount": 12.5,
                "tags": ["a", {"b": [1, 2]}],
            },
        }
        for i in range(2000)
    ]
    assert _agree(orjson.dumps(sent), IdentityMode.SIMPLIFIED, MIN_EVENT_TIME_MS)
    assert events_from_records(sent) is not None
    one = _fast(orjson.dumps(sent[0]), IdentityMode.SIMPLIFIED, MIN_EVENT_TIME_MS)
    assert one is not None
    assert len(one.rows) == 1


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"event": ""}, "an empty name"),
        ({"event": "x" * 256}, "a name past 255 characters"),
        ({"properties": {"distinct_id": "null"}}, "a placeholder distinct_id"),
        ({"properties": {"distinct_id": "u", "time": True}}, "a boolean time"),
        ({"properties": {"distinct_id": "u", "p": _nested(MAX_NESTING_DEPTH + 1, 1)}}, "depth"),
        ({"properties": {"distinct_id": "u", "p": list(range(255))}}, "255 items"),
        ({"properties": {"distinct_id": "u", **{f"k{i}": i for i in range(254)}}}, "255 keys"),
        ({"properties": {"distinct_id": "u", "p": {f"k{i}": i for i in range(255)}}}, "inside"),
        ({"properties": {"distinct_id": "u", "$device_id": "d", "$user_id": "none"}}, "no user"),
        ({"properties": {"distinct_id": "u\x00"}}, "a NUL"),
        ({"properties": {"distinct_id": "u", "blob": "x" * MAX_EVENT_BYTES}}, "past 1 MB"),
        ({"properties": {"distinct_id": "u", "$insert_id": "a_b"}}, "a bad $insert_id"),
        ({"properties": {"distinct_id": 5}}, "a numeric distinct_id (taken, the slow way)"),
        ({"properties": {"distinct_id": "u", "n": 2**64}}, "an integer past 64 bits"),
        ({"extra": 1, "properties": {"distinct_id": "u"}}, "a field beside the two"),
    ],
)
def test_the_fast_path_leaves_each_rule_to_the_per_record_path(
    change: dict[str, Any], why: str
) -> None:
    document = _document([CLEAN, {"event": "Open", **change}], ascii_only=False)
    assert not _agree(document, IdentityMode.SIMPLIFIED, MIN_EVENT_TIME_MS), why
