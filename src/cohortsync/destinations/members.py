"""Export columns (R-INT-6): which profile properties travel with a member, and under what name."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

DEFAULT_COLUMNS = ("$email", "$phone", "$first_name", "$last_name")


def text(profile: Mapping[str, Any], name: str) -> str | None:
    """A profile property as non-empty text, or None."""
    value = profile.get(name)
    if type(value) is str:  # the common case, first
        return value.strip() or None
    if value is None or isinstance(value, dict | list):
        return None
    rendered = str(value).strip() if not isinstance(value, bool) else str(value).lower()
    return rendered or None


def export_columns(
    profile: Mapping[str, Any], distinct_id: str, extra: Sequence[str] = ()
) -> dict[str, Any]:
    """``$distinct_id``, the default columns present on the profile, and ``extra`` ones."""
    columns: dict[str, Any] = {"$distinct_id": distinct_id}
    for name in (*DEFAULT_COLUMNS, *extra):
        if name in profile and profile[name] is not None:
            columns[name] = profile[name]
    return columns
