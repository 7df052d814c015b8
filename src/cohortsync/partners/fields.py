"""How a partner declares what connecting it takes: a pydantic model of its credentials (each a
``SecretStr``) and one of its settings, each field annotated with its :class:`Form` (label, hint,
choices, list-valued), from which the Connect dialog and the API checks are both generated.

A setting's own check is a ``BeforeValidator`` that raises :func:`refused` with the end of the
sentence an admin reads (``settings.url`` + `` must be an http:// or https:// URL``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any

import httpx
from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationInfo, field_validator
from pydantic.fields import FieldInfo
from pydantic_core import PydanticCustomError

from cohortsync.outbound.urls import credentials_in
from cohortsync.partners.list_names import TemplateError, check_template

DEFAULT_LIST_TEMPLATE = "mixpanel_{cohort_name}_{cohort_id}"
REFUSED = "refused"  # the error type of a check that says why in its own words
CUSTOM_ENDPOINTS = "allow_custom_endpoints"  # the validation context's switch for base_url


@dataclass(frozen=True)
class Form:
    """How a field shows in the Connect dialog: its label and hint; ``choices`` (value -> the
    base URL it stands for) make it a choice, as regions are; ``listed`` values are typed
    comma-separated; a ``leading`` setting comes before the credentials (it names the
    connection or says where it goes)."""

    label: str
    hint: str = ""
    choices: Mapping[str, str] = field(default_factory=dict)
    listed: bool = False
    leading: bool = False


def refused(tail: str) -> PydanticCustomError:
    """The error a check raises: ``tail`` follows the field's place in the sentence."""
    return PydanticCustomError(REFUSED, "{tail}", {"tail": tail})


def form_of(info: FieldInfo) -> Form | None:
    """The field's :class:`Form`, where it has one (fields without are not in the dialog)."""
    return next((m for m in info.metadata if isinstance(m, Form)), None)


def formed_fields(model: type[BaseModel]) -> Iterator[tuple[str, FieldInfo, Form]]:
    """The model's fields that show in the Connect dialog, in declaration order."""
    for name, info in model.model_fields.items():
        form = form_of(info)
        if form is not None:
            yield name, info, form


MAX_URL = 2048


def http_url(value: Any) -> str:
    """An http:// or https:// URL with a host, without a trailing slash, carrying no
    credentials (settings are shown to every member; credentials are sealed)."""
    if not isinstance(value, str) or not value.startswith(("http://", "https://")):
        raise refused("must be an http:// or https:// URL")
    if len(value) > MAX_URL:
        raise refused(f"must be at most {MAX_URL} characters")
    try:
        host = httpx.URL(value).host
    except (httpx.InvalidURL, ValueError):
        host = ""
    if not host:
        raise refused("must be an http:// or https:// URL with a valid host")
    carried = credentials_in(value)
    if carried is not None:
        raise refused(
            f"carries {carried}: URLs are shown to every member of the project; enter "
            "secrets in the integration's credential fields instead"
        )
    return value.rstrip("/")


def property_names(value: Any) -> list[str]:
    """A list of profile property names, each once."""
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise refused("must be a list of property names")
    return list(dict.fromkeys(value))


def plain_text(value: Any) -> str:
    """Any string."""
    if not isinstance(value, str):
        raise refused("must be a string")
    return value


def email_address(value: Any) -> str:
    """An email address (something@somewhere)."""
    if not isinstance(value, str) or not re.fullmatch(r"[^@\s]+@[^@\s]+", value.strip()):
        raise refused("must be an email address")
    return value.strip()


# The profile properties sent with each member besides the standard columns (Mixpanel's
# "Edit Columns"), for partners that take extra columns.
ExportProperties = Annotated[
    list[str] | None,
    Form(
        "Edit Columns",
        "Profile properties sent with each member besides $distinct_id, $email, $phone, "
        "$first_name and $last_name; comma-separated.",
        listed=True,
    ),
    BeforeValidator(property_names),
]


class PartnerCredentials(BaseModel):
    """A partner's credentials: ``SecretStr`` fields, required unless they have a default."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


class PartnerSettings(BaseModel):
    """What every partner's settings have: a region where the partner has hosts (a subclass
    declares ``region`` with its :class:`Form` choices and default), the list name template
    and an operator-allowed base URL; a subclass adds the partner's own."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    region: Any = None
    list_name_template: str = DEFAULT_LIST_TEMPLATE
    base_url: str | None = None

    @classmethod
    def regions(cls) -> Mapping[str, str]:
        """Region -> base URL ({} where the URL is a setting)."""
        form = form_of(cls.model_fields["region"])
        return form.choices if form is not None else {}

    @field_validator("region", mode="before")
    @classmethod
    def _one_of_the_regions(cls, value: Any) -> Any:
        regions = cls.regions()
        if regions and value not in regions:
            raise PydanticCustomError("choice", "{tail}", {"tail": ", ".join(regions)})
        return value

    @field_validator("list_name_template", mode="before")
    @classmethod
    def _template(cls, value: Any) -> str:
        if not isinstance(value, str):
            raise refused("must be a non-empty string")
        try:
            return check_template(value)
        except TemplateError as wrong:
            raise refused(str(wrong)) from None

    @field_validator("base_url", mode="before")
    @classmethod
    def _custom_endpoint(cls, value: Any, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        if not (info.context or {}).get(CUSTOM_ENDPOINTS):
            raise refused(
                "is refused: the operator has not allowed custom endpoints "
                "(COHORTSYNC_ALLOW_CUSTOM_ENDPOINTS=1)"
            )
        return http_url(value)
