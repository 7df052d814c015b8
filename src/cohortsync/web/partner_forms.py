"""The Connect dialog of each partner: exactly the fields its :class:`PartnerSpec` declares,
labelled as the partner's own pages label them, and the posted form read back into the
``credentials`` and ``settings`` the integrations service takes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cohortsync.destinations.connection import PartnerSpec

CREDENTIAL = "credential"
SETTING = "setting"

# (label, hint) of every field any partner declares; the order here is the order on screen.
_FIELDS: dict[str, tuple[str, str]] = {
    "connector_name": ("Connector name", "How this connection is named in CleverTap."),
    "url": ("Webhook URL", "Where the members of each cohort are sent."),
    "api_key": ("API key", "A server-side key of your Iterable project."),
    "account_id": ("Project ID", "Settings → Project in CleverTap."),
    "passcode": ("Passcode", "Settings → Passcode in CleverTap."),
    "app_token": ("App token", "Settings → Integrations → External API in Xtremepush."),
    "username": ("Username", "Optional: HTTP Basic auth of your endpoint."),
    "password": ("Password", "Optional: HTTP Basic auth of your endpoint."),
    "region": ("Region", ""),
    "export_properties": (
        "Edit Columns",
        "Profile properties sent with each member besides $distinct_id, $email, $phone, "
        "$first_name and $last_name; comma-separated.",
    ),
    "segment_email": (
        "Segment owner's email",
        "Optional: the CleverTap user named as the creator of each cohort's segment.",
    ),
}
_REGION_LABEL = {"clevertap": "Data center"}
_LIST_SETTINGS = frozenset({"export_properties"})


@dataclass(frozen=True)
class FormField:
    """One input of a Connect dialog."""

    name: str
    kind: str  # CREDENTIAL (write-only, never shown back) or SETTING
    label: str
    hint: str
    required: bool
    options: tuple[str, ...] = ()  # a choice (regions) when not empty
    default: str = ""

    @property
    def input_name(self) -> str:
        """The form field's name: ``credential.api_key``, ``setting.region``."""
        return f"{self.kind}.{self.name}"

    @property
    def secret(self) -> bool:
        """Credentials are password inputs, never filled in by the server."""
        return self.kind == CREDENTIAL


def connect_fields(spec: PartnerSpec) -> list[FormField]:
    """The partner's fields, in the order people fill them in."""
    fields = [
        FormField(name, CREDENTIAL, *_FIELDS[name], required=True) for name in spec.credentials
    ]
    fields += [
        FormField(name, CREDENTIAL, *_FIELDS[name], required=False)
        for name in spec.optional_credentials
    ]
    fields += [
        FormField(name, SETTING, *_FIELDS[name], required=name in spec.required_settings)
        for name in spec.extra_settings
    ]
    if spec.regions:
        label = _REGION_LABEL.get(spec.type, "Region")
        options = tuple(spec.regions)
        fields.append(
            FormField("region", SETTING, label, "", True, options, spec.default_region or "")
        )
    order = list(_FIELDS)
    return sorted(fields, key=lambda f: order.index(f.name))


def read_connect_form(
    spec: PartnerSpec, form: Mapping[str, Any], advanced: tuple[str, ...]
) -> tuple[dict[str, str], dict[str, Any]]:
    """``(credentials, settings)`` from a posted Connect form: empty fields are left out (the
    service says which are required), list settings split at commas; ``advanced`` names the
    extra settings the dialog offered (list name template, custom endpoint)."""
    credentials: dict[str, str] = {}
    settings: dict[str, Any] = {}
    names = [(f.kind, f.name) for f in connect_fields(spec)]
    names += [(SETTING, name) for name in advanced]
    for kind, name in names:
        raw = form.get(f"{kind}.{name}")
        value = raw.strip() if isinstance(raw, str) else ""
        if not value:
            continue
        if kind == CREDENTIAL:
            credentials[name] = value
        elif name in _LIST_SETTINGS:
            settings[name] = [p.strip() for p in value.split(",") if p.strip()]
        else:
            settings[name] = value
    return credentials, settings
