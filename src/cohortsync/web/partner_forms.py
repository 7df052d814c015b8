"""The Connect dialog of each partner, generated from its spec: exactly the fields its credentials
and settings models declare with a :class:`~cohortsync.partners.fields.Form` (labelled as the
partner's own pages label them), and the posted form read back into the ``credentials`` and
``settings`` the integrations service takes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from cohortsync.partners.fields import formed_fields
from cohortsync.partners.spec import PartnerSpec

CREDENTIAL = "credential"
SETTING = "setting"


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
    listed: bool = False  # typed comma-separated, read as a list

    @property
    def input_name(self) -> str:
        """The form field's name: ``credential.api_key``, ``setting.region``."""
        return f"{self.kind}.{self.name}"

    @property
    def secret(self) -> bool:
        """Credentials are password inputs, never filled in by the server."""
        return self.kind == CREDENTIAL


def _fields(model: type[BaseModel], kind: str) -> list[FormField]:
    """The model's fields that show in the dialog, in declaration order."""
    return [
        FormField(
            name,
            kind,
            form.label,
            form.hint,
            required=info.is_required() or bool(form.choices),  # a choice always has one
            options=tuple(form.choices),
            default=str(info.default) if form.choices else "",
            listed=form.listed,
        )
        for name, info, form in formed_fields(model)
    ]


def connect_fields(spec: PartnerSpec) -> list[FormField]:
    """The partner's fields, in the order people fill them in: the settings that name the
    connection or say where it goes, the credentials, then the other settings."""
    settings = _fields(spec.settings, SETTING)
    leading = {name for name, _, form in formed_fields(spec.settings) if form.leading}
    return [
        *(f for f in settings if f.name in leading),
        *_fields(spec.credentials, CREDENTIAL),
        *(f for f in settings if f.name not in leading),
    ]


def read_connect_form(
    spec: PartnerSpec, form: Mapping[str, Any], advanced: tuple[str, ...]
) -> tuple[dict[str, str], dict[str, Any]]:
    """``(credentials, settings)`` from a posted Connect form: empty fields are left out (the
    service says which are required), list settings split at commas; ``advanced`` names the
    extra settings the dialog offered (list name template, custom endpoint)."""
    credentials: dict[str, str] = {}
    settings: dict[str, Any] = {}
    names = [(f.kind, f.name, f.listed) for f in connect_fields(spec)]
    names += [(SETTING, name, False) for name in advanced]
    for kind, name, listed in names:
        raw = form.get(f"{kind}.{name}")
        value = raw.strip() if isinstance(raw, str) else ""
        if not value:
            continue
        if kind == CREDENTIAL:
            credentials[name] = value
        elif listed:
            settings[name] = [p.strip() for p in value.split(",") if p.strip()]
        else:
            settings[name] = value
    return credentials, settings
