"""Which partners exist, what each needs to connect, and how to build its connector.

A :class:`PartnerSpec` is declared by each connector module; the registry only collects them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cohortsync.destinations import clevertap, iterable, webhook, xtremepush
from cohortsync.destinations.connection import DEFAULT_LIST_TEMPLATE, PartnerSpec
from cohortsync.destinations.setting_checks import http_url
from cohortsync.domain.errors import BatchError

PARTNERS: dict[str, PartnerSpec] = {
    spec.type: spec for spec in (iterable.SPEC, clevertap.SPEC, xtremepush.SPEC, webhook.SPEC)
}


def partner(kind: str) -> PartnerSpec:
    """The spec of a partner type, or a clear error listing the known ones."""
    spec = PARTNERS.get(kind)
    if spec is None:
        known = ", ".join(sorted(PARTNERS))
        raise BatchError(f"unknown integration type {kind!r}; use one of: {known}")
    return spec


def _refuse_unknown(where: str, given: Mapping[str, Any], allowed: set[str], what: str) -> None:
    unknown = sorted(set(given) - allowed)
    if unknown:
        raise BatchError(
            f"{where}.{unknown[0]} is not {what} (expected: {', '.join(sorted(allowed))})"
        )


def check_credentials(spec: PartnerSpec, credentials: Mapping[str, Any]) -> dict[str, str]:
    """The partner's credential fields, each a non-empty string; unknown fields refused."""
    allowed = set(spec.credentials) | set(spec.optional_credentials)
    _refuse_unknown("credentials", credentials, allowed, f"a {spec.title} credential")
    checked: dict[str, str] = {}
    for name in allowed:
        value = credentials.get(name)
        if value is None or value == "":
            if name in spec.credentials:
                raise BatchError(f"credentials.{name} is required for {spec.title}")
            continue
        if not isinstance(value, str):
            raise BatchError(f"credentials.{name} must be a string")
        checked[name] = value.strip()
    return checked


def check_settings(
    spec: PartnerSpec, settings: Mapping[str, Any], allow_custom_endpoints: bool
) -> dict[str, Any]:
    """Validated settings: region, list name template, base URL override, partner extras."""
    known = {"region", "base_url", "list_name_template", *spec.extra_settings}
    _refuse_unknown("settings", settings, known, f"a {spec.title} setting")
    checked: dict[str, Any] = {}
    if spec.regions:
        region = settings.get("region", spec.default_region)
        if region not in spec.regions:
            raise BatchError(
                f"settings.region must be one of {', '.join(spec.regions)} for {spec.title}"
            )
        checked["region"] = region
    template = settings.get("list_name_template", spec.list_template)
    if not isinstance(template, str) or not template.strip():
        raise BatchError("settings.list_name_template must be a non-empty string")
    try:
        template.format(cohort_name="n", cohort_id=1)
    except (KeyError, IndexError, ValueError):
        raise BatchError(
            "settings.list_name_template may use only {cohort_name} and {cohort_id}"
        ) from None
    checked["list_name_template"] = template
    base_url = settings.get("base_url")
    if base_url is not None:
        if not allow_custom_endpoints:
            raise BatchError(
                "settings.base_url is refused: the operator has not allowed custom endpoints "
                "(COHORTSYNC_ALLOW_CUSTOM_ENDPOINTS=1)"
            )
        checked["base_url"] = http_url(base_url, "settings.base_url")
    for name in spec.required_settings:
        if name not in settings:
            raise BatchError(f"settings.{name} is required for {spec.title}")
    for name, check in spec.extra_settings.items():
        if name in settings:
            checked[name] = check(settings[name], f"settings.{name}")
    return checked


def base_url(spec: PartnerSpec, settings: Mapping[str, Any]) -> str:
    """Where the connector sends requests: the override, else the region's host."""
    if "base_url" in settings:
        return str(settings["base_url"])
    if spec.regions:
        return spec.regions[str(settings["region"])]
    return str(settings.get("url", ""))


def list_name(settings: Mapping[str, Any], cohort_name: str, cohort_id: int) -> str:
    """The destination list's name for a cohort, from the integration's template."""
    template = str(settings.get("list_name_template", DEFAULT_LIST_TEMPLATE))
    return template.format(cohort_name=cohort_name, cohort_id=cohort_id)
