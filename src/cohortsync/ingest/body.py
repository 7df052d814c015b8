"""Decoding the request bodies Mixpanel's SDKs and pipelines send (R-ING-1).

JSON (an object or an array), NDJSON, and the legacy form body ``data=<json or base64 json>``,
each optionally ``Content-Encoding: gzip``; capped at 10 MB uncompressed and 2,000 records.
"""

from __future__ import annotations

import base64
import binascii
import zlib
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import orjson

from cohortsync.domain.errors import BatchError, PayloadTooLarge
from cohortsync.domain.events import MAX_RECORDS_PER_REQUEST, MAX_REQUEST_BYTES


@dataclass(slots=True)
class DecodedBody:
    """The records of a request and any form fields that came with them."""

    records: list[Any]
    form: dict[str, str] = field(default_factory=dict)
    size: int = 0  # bytes of the body once decompressed


def gunzip(raw: bytes, limit: int = MAX_REQUEST_BYTES) -> bytes:
    """Decompress a gzip body, refusing more than ``limit`` bytes of output."""
    decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = decompressor.decompress(raw, limit + 1)
    except zlib.error as exc:
        raise BatchError(
            f"body is not valid gzip ({exc}); send it uncompressed or fix it"
        ) from None
    if len(out) > limit:
        raise PayloadTooLarge(f"body is larger than {limit // (1024 * 1024)} MB uncompressed")
    if not decompressor.eof:
        raise BatchError("gzip body is truncated")
    return out


def _parse_json(text: bytes | str, where: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise BatchError(f"{where} is not valid JSON: {exc}") from None


def _parse_data_field(value: str) -> Any:
    """``data`` holds JSON, or base64 of JSON (older SDKs)."""
    stripped = value.lstrip()
    if stripped[:1] in ("{", "["):
        return _parse_json(stripped, "'data'")
    try:
        decoded = base64.b64decode(stripped + "=" * (-len(stripped) % 4), validate=False)
    except (binascii.Error, ValueError):
        raise BatchError("'data' is neither JSON nor base64-encoded JSON") from None
    return _parse_json(decoded, "'data' (base64-decoded)")


def _parse_ndjson(body: bytes) -> list[Any]:
    records = []
    for number, line in enumerate(body.splitlines(), start=1):
        if line.strip():
            records.append(_parse_json(line, f"line {number}"))
    return records


def unpack(raw: bytes, content_encoding: str) -> bytes:
    """The body decompressed (``Content-Encoding: gzip``): at most 10 MB, and not blank."""
    if "gzip" in content_encoding.lower():
        raw = gunzip(raw)
    elif len(raw) > MAX_REQUEST_BYTES:
        raise PayloadTooLarge("body is larger than 10 MB uncompressed")
    if not raw.strip():
        raise BatchError("body is empty; send a JSON array of records")
    return raw


def _media(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def _is_form(media: str, unpacked: bytes) -> bool:
    return media == "application/x-www-form-urlencoded" or (
        media not in ("application/json", "application/x-ndjson", "text/plain")
        and unpacked.lstrip()[:5] == b"data="
    )


def reads_as_json(content_type: str, unpacked: bytes) -> bool:
    """Whether :func:`decode_body` reads this body (as :func:`unpack` returns it) as one JSON
    document: neither a form nor NDJSON."""
    media = _media(content_type)
    return media != "application/x-ndjson" and not _is_form(media, unpacked)


def decode_body(raw: bytes, content_type: str, content_encoding: str) -> DecodedBody:
    """Turn a raw request body into its list of records (and form fields, if any)."""
    raw = unpack(raw, content_encoding)
    media = _media(content_type)
    form: dict[str, str] = {}
    if _is_form(media, raw):
        fields = parse_qs(raw.decode("utf-8", "replace"), keep_blank_values=True)
        form = {k: v[-1] for k, v in fields.items()}
        if "data" not in form:
            raise BatchError("form body has no 'data' field")
        parsed = _parse_data_field(form["data"])
    elif media == "application/x-ndjson":
        parsed = _parse_ndjson(raw)
    else:
        try:
            parsed = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            if b"\n" in raw.strip():
                parsed = _parse_ndjson(raw)
            else:
                raise BatchError(f"body is not valid JSON: {exc}") from None
    records = parsed if isinstance(parsed, list) else [parsed]
    if len(records) > MAX_RECORDS_PER_REQUEST:
        raise BatchError(
            f"{len(records)} records in one request; send at most {MAX_RECORDS_PER_REQUEST}"
        )
    return DecodedBody(records, form, len(raw))
