"""The destinations' view of the partner registry: a partner's spec by type, its credentials
and settings checked, where its connector sends, and a cohort's list name.

Each partner declares its :class:`PartnerSpec` in its own folder; ``cohortsync.partners.registry``
collects them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, SecretStr, ValidationError
from pydantic_core import ErrorDetails

from cohortsync.domain.errors import BatchError
from cohortsync.partners import list_names
from cohortsync.partners.fields import CUSTOM_ENDPOINTS, DEFAULT_LIST_TEMPLATE, REFUSED
from cohortsync.partners.registry import PARTNERS
from cohortsync.partners.spec import PartnerSpec

Model = TypeVar("Model", bound=BaseModel)

__all__ = ["PARTNERS", "base_url", "check_credentials", "check_settings", "list_name", "partner"]


def partner(kind: str) -> PartnerSpec:
    """The spec of a partner type, or a clear error listing the known ones."""
    spec = PARTNERS.get(kind)
    if spec is None:
        known = ", ".join(sorted(PARTNERS))
        raise BatchError(f"unknown integration type {kind!r}; use one of: {known}")
    return spec


def _refuse_unknown(
    model: type[BaseModel], given: Mapping[str, Any], spec: PartnerSpec, where: str
) -> None:
    """A field the model does not declare is refused, naming the ones it does."""
    unknown = sorted(set(given) - set(model.model_fields))
    if unknown:
        noun = "credential" if where == "credentials" else "setting"
        expected = ", ".join(sorted(model.model_fields))
        raise BatchError(
            f"{where}.{unknown[0]} is not a {spec.title} {noun} (expected: {expected})"
        )


def _validated(
    model: type[Model],
    given: Mapping[str, Any],
    spec: PartnerSpec,
    where: str,
    context: Mapping[str, Any] | None = None,
) -> Model:
    """``given`` as the partner's model, or a BatchError with the sentence an admin reads."""
    _refuse_unknown(model, given, spec, where)
    try:
        return model.model_validate(dict(given), context=context)
    except ValidationError as invalid:
        raise BatchError(_sentence(invalid.errors()[0], spec, where)) from None


def _sentence(error: ErrorDetails, spec: PartnerSpec, where: str) -> str:
    """The one place pydantic's errors become the sentences of the API and the Connect dialog."""
    place = f"{where}.{error['loc'][0]}"
    tail = (error.get("ctx") or {}).get("tail", "")
    if error["type"] == "missing":
        return f"{place} is required for {spec.title}"
    if error["type"] == "choice":
        return f"{place} must be one of {tail} for {spec.title}"
    if error["type"] == REFUSED:
        return f"{place} {tail}"
    return f"{place} must be a string"


def check_credentials(spec: PartnerSpec, credentials: Mapping[str, Any]) -> dict[str, str]:
    """The partner's credential fields, each a non-empty string; unknown fields refused."""
    _refuse_unknown(spec.credentials, credentials, spec, "credentials")
    # an empty value is a missing one
    given = {name: value for name, value in credentials.items() if value not in (None, "")}
    checked: BaseModel = _validated(spec.credentials, given, spec, "credentials")
    return {
        name: secret.get_secret_value().strip()
        for name in checked.model_fields_set
        if isinstance(secret := getattr(checked, name), SecretStr)
    }


def check_settings(
    spec: PartnerSpec, settings: Mapping[str, Any], allow_custom_endpoints: bool
) -> dict[str, Any]:
    """Validated settings: region, list name template, base URL override, partner extras."""
    context = {CUSTOM_ENDPOINTS: allow_custom_endpoints}
    checked: BaseModel = _validated(spec.settings, settings, spec, "settings", context)
    given = checked.model_fields_set
    kept = {"list_name_template", "region"} if spec.regions else {"list_name_template"}
    return {
        name: value
        for name, value in checked.model_dump().items()
        if name in kept or (name != "region" and name in given and value is not None)
    }


def base_url(spec: PartnerSpec, settings: Mapping[str, Any]) -> str:
    """Where the connector sends requests: the override, else the region's host."""
    if "base_url" in settings:
        return str(settings["base_url"])
    if spec.regions:
        return spec.regions[str(settings["region"])]
    return str(settings.get("url", ""))


def list_name(settings: Mapping[str, Any], cohort_name: str, cohort_id: int) -> str:
    """The destination list's name for a cohort, from the integration's template (never
    ``str.format``: see :mod:`cohortsync.partners.list_names`)."""
    template = str(settings.get("list_name_template", DEFAULT_LIST_TEMPLATE))
    return list_names.render(template, cohort_name, cohort_id)
