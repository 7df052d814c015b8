"""Checks of a partner's own settings: each takes the value and where it sits, returns the
value to store, or raises a BatchError naming the field."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cohortsync.domain.errors import BatchError

SettingCheck = Callable[[Any, str], Any]


def http_url(value: Any, where: str) -> str:
    """An http:// or https:// URL, without a trailing slash."""
    if not isinstance(value, str) or not value.startswith(("http://", "https://")):
        raise BatchError(f"{where} must be an http:// or https:// URL")
    return value.rstrip("/")


def property_names(value: Any, where: str) -> list[str]:
    """A list of profile property names, each once."""
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise BatchError(f"{where} must be a list of property names")
    return list(dict.fromkeys(value))


def plain_text(value: Any, where: str) -> str:
    """Any string."""
    if not isinstance(value, str):
        raise BatchError(f"{where} must be a string")
    return value
