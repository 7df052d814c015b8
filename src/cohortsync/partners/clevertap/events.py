"""CleverTap's outbound events, in the two shapes CleverTap documents (docs.clevertap.com).

- **Event records**, the shape of CleverTap's Mixpanel export: ``{"event", "properties":
  {"distinct_id", "time", …}}``, one or a list, where ``distinct_id`` is the CleverTap Identity
  (``$CleverTap_user_id`` on the Mixpanel side). This is how ``Notification Sent`` and CleverTap's
  other system events arrive.
- **Webhook campaigns** ("Create Message: Webhook"): ``{"targetId", "key_values", "profiles"}``,
  ``profiles`` a list (broadcast) or one object, keys in either case (``Identity``/``identity``).
  They carry no event name and no time: each profile is one ``Webhook Delivered`` event (an
  outreach event; the campaign's key-value pairs are kept as properties and never rename it),
  timed when first received (the same call again within an hour is CleverTap's retry, later a
  new delivery). ``is_test`` calls, sent when the template is saved, store nothing.
- Authentication: CleverTap can send Basic auth or custom headers; it does not sign calls.
- The user: the Identity resolves through the ``$CleverTap_user_id`` alias (R-ING-7) or as a
  distinct_id; CleverTap's ``objectId`` is tried last.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cohortsync.domain.errors import RecordError
from cohortsync.ingest.partners.auth import check_token
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

SOURCE = "clevertap"
WEBHOOK_EVENT = "Webhook Delivered"


def _lower_keys(profile: dict[str, Any]) -> dict[str, Any]:
    """CleverTap's samples spell profile keys both ``Identity`` and ``identity``."""
    return {key[:1].lower() + key[1:]: value for key, value in profile.items()}


class CleverTapFormat:
    """CleverTap's event records and webhook campaign calls."""

    source = SOURCE
    generates_key = False

    def authenticate(self, request: WebhookRequest, secrets: Sequence[str], now_s: int) -> None:
        """Basic auth (the secret as password) or the secret in a custom header."""
        check_token(request, secrets)

    def events(self, body: Any) -> list[PartnerEvent | RecordError]:
        """Event records as they are; a webhook campaign call as one event per profile."""
        if isinstance(body, dict) and "profiles" in body:
            return self._campaign(body)
        shapes = "CleverTap sends {event, properties} or {targetId, profiles}"
        return parse_each(items_of(body, shapes), self._record)

    def _record(self, item: Any) -> PartnerEvent:
        if not isinstance(item, dict):
            raise RecordError("body", "each event must be a JSON object")
        name = text_field(item, "event")
        if name is None:
            raise RecordError("event", "'event' is required (for example 'Notification Sent')")
        props = object_field(item, "properties")
        identity = text_field(props, "distinct_id", "properties.") or text_field(
            props, "$CleverTap_user_id", "properties."
        )
        if identity is None:
            raise RecordError(
                "properties.distinct_id",
                "'properties.distinct_id' (the CleverTap Identity) is required",
            )
        if props.get("time") is None:
            raise RecordError("properties.time", "'properties.time' is required")
        stored = {k: v for k, v in props.items() if k not in ("distinct_id", "time", "token")}
        return PartnerEvent(
            name=name,
            time_ms=epoch_ms(props["time"], "properties.time", "must be unix seconds"),
            keys=(ById(identity),),
            fallback_id=identity,
            # the record's own $insert_id where it carries one (Mixpanel's shape has it)
            insert_id=text_field(props, "$insert_id", "properties.")
            or payload_insert_id(SOURCE, item),
            properties={**stored, "$source": SOURCE},
        )

    def _campaign(self, body: dict[str, Any]) -> list[PartnerEvent | RecordError]:
        if body.get("is_test"):
            return []
        profiles = body["profiles"]
        listed = profiles if isinstance(profiles, list) else [profiles]
        key_values = object_field(body, "key_values")
        numbered = list(enumerate(listed))
        return parse_each(numbered, lambda pair: self._delivery(body, key_values, *pair))

    def _delivery(
        self, body: dict[str, Any], key_values: dict[str, Any], index: int, raw: Any
    ) -> PartnerEvent:
        """One profile of a webhook campaign call: always ``Webhook Delivered`` (an outreach
        event): the campaign's key-value pairs are the marketer's personalisation, kept as
        properties, and never rename it (a pair named ``event`` must not turn a delivery into
        an event that counts toward MTU)."""
        where = f"profiles[{index}]."
        if not isinstance(raw, dict):
            raise RecordError(f"profiles[{index}]", "each profile must be a JSON object")
        profile = _lower_keys(raw)
        identity = text_field(profile, "identity", where)
        object_id = text_field(profile, "objectId", where)
        if identity is None and object_id is None:
            raise RecordError(
                f"{where}identity", f"'{where}identity' or '{where}objectId' is required"
            )
        keys = [ById(i) for i in (identity, object_id) if i is not None]
        properties: dict[str, Any] = {
            "campaign_id": body.get("targetId"),
            **key_values,
            **object_field(profile, "event_properties", where),
            "$source": SOURCE,  # last: a campaign's own pairs never change whose event it is
        }
        if object_id is not None:
            properties["objectId"] = object_id
        return PartnerEvent(
            name=WEBHOOK_EVENT,
            time_ms=None,
            keys=tuple(keys),
            fallback_id=keys[0].value,
            insert_id=payload_insert_id(SOURCE, [body.get("targetId"), key_values, raw]),
            properties=properties,
        )
