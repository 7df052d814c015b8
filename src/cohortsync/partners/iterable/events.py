"""Iterable system webhooks, as Iterable documents them (support.iterable.com, "System Webhooks").

- One JSON object a call: ``{"email", "eventName", "userId"?, "dataFields": {…}}``; a list of
  them is accepted too. ``dataFields.createdAt`` is the time, ``"2016-12-02 20:21:04 +00:00"``.
- Authentication: Iterable sends ``Authorization: <authType> <authToken>`` (Basic or OAuth2, and
  the docs show Basic as the bare token) and any custom headers; it does not sign its calls.
- The user is found in reverse of how the Iterable connector addresses members: ``userId`` as
  ``$iterable_user_id``, then ``userId`` as a distinct_id (simplified ID merge sends those), then
  ``email`` as ``$email``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from cohortsync.domain.errors import RecordError
from cohortsync.ingest.partners.auth import check_token
from cohortsync.ingest.partners.base import (
    ById,
    ByProperty,
    MatchKey,
    PartnerEvent,
    WebhookRequest,
    datetime_ms,
    epoch_ms,
    items_of,
    object_field,
    parse_each,
    payload_insert_id,
    text_field,
)
from cohortsync.partners.iterable.destination import USER_ID_PROPERTY

SOURCE = "iterable"
TIME_FORMAT = "%Y-%m-%d %H:%M:%S %z"

# The event names Iterable documents for system webhooks (others are stored as sent).
EVENT_NAMES = frozenset(
    {
        "emailSend", "emailOpen", "emailClick", "emailBounce", "emailComplaint",
        "emailSendSkip", "emailSubscribe", "emailUnSubscribe", "hostedUnsubscribeClick",
        "inAppSend", "inAppOpen", "inAppClick", "inAppSendSkip", "inAppDelete", "inAppRecall",
        "pushSend", "pushOpen", "pushBounce", "pushSendSkip", "pushUninstall",
        "smsSend", "smsBounce", "smsClick", "smsReceived", "smsSendSkip",
        "webPushSend", "webPushSendSkip", "webPushClick", "journeyExit",
        "embeddedClick", "embeddedImpression", "embeddedReceived", "embeddedSession",
        "whatsAppSend", "whatsAppSendSkip", "whatsAppBounce", "whatsAppClick",
        "whatsAppReceived", "whatsAppSeen",
    }
)  # fmt: skip


def parse_created_at(value: Any) -> int:
    """``dataFields.createdAt`` in Iterable's format (or ISO 8601, or epoch seconds/ms) to ms."""
    field = "dataFields.createdAt"
    if isinstance(value, int | float) and not isinstance(value, bool):
        return epoch_ms(value, field, "must be seconds or milliseconds since the epoch")
    if not isinstance(value, str):
        raise RecordError(field, f"'{field}' is required: the time of the event")
    for parse in (lambda v: datetime.strptime(v, TIME_FORMAT), datetime.fromisoformat):
        try:
            moment = parse(value.strip())
        except ValueError:
            continue
        if moment.tzinfo is not None:
            return datetime_ms(moment)
    example = "2016-12-02 20:21:04 +00:00"
    raise RecordError(field, f"'{field}' must look like '{example}', not {value!r}")


class IterableFormat:
    """Iterable's system webhook calls."""

    source = SOURCE
    generates_key = False

    def authenticate(self, request: WebhookRequest, secrets: Sequence[str], now_s: int) -> None:
        """A token in Authorization (bare, Basic, OAuth2, Bearer) or a custom header."""
        check_token(request, secrets)

    def events(self, body: Any) -> list[PartnerEvent | RecordError]:
        """One event per webhook object."""
        return parse_each(
            items_of(body, "Iterable sends {email, eventName, dataFields}"), self._event
        )

    def _event(self, item: Any) -> PartnerEvent:
        if not isinstance(item, dict):
            raise RecordError("body", "each webhook must be a JSON object")
        name = text_field(item, "eventName")
        if name is None:
            raise RecordError("eventName", "'eventName' is required (for example 'emailOpen')")
        data = object_field(item, "dataFields")
        email = text_field(item, "email") or text_field(data, "email", "dataFields.")
        user_id = text_field(item, "userId") or text_field(data, "userId", "dataFields.")
        if email is None and user_id is None:
            raise RecordError("email", "'email' or 'userId' is required to know whose event it is")
        keys: list[MatchKey] = []
        if user_id is not None:
            keys += [ByProperty(USER_ID_PROPERTY, user_id), ById(user_id)]
        if email is not None:
            keys.append(ByProperty("$email", email))
        properties = {**data, "$source": SOURCE}
        if email is not None:
            properties["email"] = email
        if user_id is not None:
            properties["userId"] = user_id
        return PartnerEvent(
            name=name,
            # some events (journeyExit) may come without createdAt: then the time of receipt
            time_ms=None if data.get("createdAt") is None else parse_created_at(data["createdAt"]),
            keys=tuple(keys),
            fallback_id=user_id or str(email),
            insert_id=payload_insert_id(SOURCE, item),
            properties=properties,
        )
