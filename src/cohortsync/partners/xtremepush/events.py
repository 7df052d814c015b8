"""Xtremepush's webhooks integration (docs.xtremepush.com, "Webhooks integration" and "Verify
webhook signatures").

- One JSON object a call: ``{"event": "message_delivery", "time": <unix seconds>,
  "properties": {…}}``; a list is accepted too. Events are stored under the names Mixpanel uses,
  ``xp.message.delivery``: ``xp.`` and the event with ``_`` as ``.``. Xtremepush's own event
  constants, ``EVENT_MESSAGE_DELIVERY``, are stored the same way, as Mixpanel's Xtremepush page
  pairs them (``xp.message.delivery (EVENT_MESSAGE_DELIVERY)``), so its MTU exemptions apply.
- Authentication: Basic auth, a Bearer token, or a signed payload,
  ``X-Xtremepush-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>`` (two ``v1`` values for a
  day after Xtremepush rotates its key). The signed string is taken to be ``"<t>.<raw body>"``.
- The user is ``properties.user_id`` (the Xtremepush connector sends the distinct_id there);
  ``customer_id`` and ``profile_id`` are kept as fallbacks for users we do not know.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from cohortsync.domain.errors import AuthenticationError, RecordError
from cohortsync.ingest.partners.auth import check_signed, check_token
from cohortsync.ingest.partners.base import (
    ById,
    PartnerEvent,
    WebhookRequest,
    epoch_ms,
    items_of,
    object_field,
    parse_each,
    payload_insert_id,
    text_field,
)

SOURCE = "xtremepush"
SIGNATURE_HEADER = "x-xtremepush-signature"
_MAX_TIME_DIGITS = 12  # unix seconds until the year 33658: anything longer is no time
_USER_FIELDS = ("user_id", "customer_id", "profile_id")
_EVENT_CONSTANT = re.compile(r"EVENT_([A-Z0-9]+(?:_[A-Z0-9]+)*)")  # EVENT_MESSAGE_SEND_BATCH


def event_name(sent: str) -> str:
    """``message_delivery`` and ``EVENT_MESSAGE_DELIVERY`` → ``xp.message.delivery``; names
    already in that form stay."""
    if sent.startswith("xp."):
        return sent
    constant = _EVENT_CONSTANT.fullmatch(sent)
    name = constant.group(1).lower() if constant else sent
    return "xp." + name.replace("_", ".")


def signed_message(signed_at: int, body: bytes) -> bytes:
    """What the signature covers."""
    return str(signed_at).encode() + b"." + body


def parse_signature(header: str) -> tuple[int, list[str]]:
    """``t=…,v1=…[,v1=…]`` to the time and the v1 signatures (other schemes are ignored)."""
    signed_at: int | None = None
    signatures: list[str] = []
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        if name == "t" and value.isascii() and value.isdigit():
            if len(value) > _MAX_TIME_DIGITS:
                raise AuthenticationError(f"{SIGNATURE_HEADER} has a time that is no unix time")
            signed_at = int(value)
        elif name == "v1" and value:
            signatures.append(value)
    if signed_at is None or not signatures:
        raise AuthenticationError(f"{SIGNATURE_HEADER} must be 't=<unix seconds>,v1=<signature>'")
    return signed_at, signatures


class XtremepushFormat:
    """Xtremepush's message event webhooks."""

    source = SOURCE
    generates_key = True

    def authenticate(self, request: WebhookRequest, secrets: Sequence[str], now_s: int) -> None:
        """The signed payload when the signature header is there, else a Basic or Bearer token."""
        header = request.headers.get(SIGNATURE_HEADER)
        if header is None:
            check_token(request, secrets)
            return
        signed_at, signatures = parse_signature(header)
        check_signed(signed_at, signatures, signed_message(signed_at, request.body), secrets, now_s)

    def events(self, body: Any) -> list[PartnerEvent | RecordError]:
        """One event per object."""
        return parse_each(items_of(body, "Xtremepush sends {event, time, properties}"), self._event)

    def _event(self, item: Any) -> PartnerEvent:
        if not isinstance(item, dict):
            raise RecordError("body", "each event must be a JSON object")
        sent = text_field(item, "event")
        if sent is None:
            raise RecordError("event", "'event' is required (for example 'message_delivery')")
        if item.get("time") is None:
            raise RecordError("time", "'time' is required (unix seconds)")
        time_ms = epoch_ms(item["time"], "time", "must be unix seconds")
        props = object_field(item, "properties")
        ids = [text_field(props, name, "properties.") for name in _USER_FIELDS]
        present = [i for i in ids if i is not None]
        if not present:
            raise RecordError("properties.user_id", "'properties.user_id' is required")
        user_id = ids[0]
        return PartnerEvent(
            name=event_name(sent),
            time_ms=time_ms,
            keys=(ById(user_id),) if user_id is not None else (),
            fallback_id=present[0],
            insert_id=payload_insert_id(SOURCE, item),
            properties={**props, "$source": SOURCE},
        )
