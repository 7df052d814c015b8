"""URLs free of credentials: a user-given URL carrying a user name, a password, a secret-named
parameter (``api_key``, ``token``, ``jwt`` …, in the query or ``;name=`` style) or a fragment is
refused, since settings are shown to the project while credentials are sealed; a URL stored
before that rule is shown to admins with those parts masked. Members see only the scheme and
host (:func:`outline`): a webhook's path often is its token (hooks.slack.com/services/T/B/…)."""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit, urlunsplit

MASK = "***"
_SECRET_WORDS = (
    "token",
    "secret",
    "passw",
    "apikey",
    "api_key",
    "signature",
    "credential",
    "auth",
    "session",
    "jwt",
    "bearer",
)
_SECRET_NAMES = frozenset({"key", "sig", "pwd", "pass", "code", "hmac"})
_SECRET_ENDINGS = ("_key", "_sig", "_pwd", "_pass", "_hmac")


def secret_parameter(name: str) -> bool:
    """Whether a query parameter's name says it holds a secret."""
    lowered = name.strip().lower().replace("-", "_")
    return (
        lowered in _SECRET_NAMES
        or lowered.endswith(_SECRET_ENDINGS)
        or any(word in lowered for word in _SECRET_WORDS)
    )


# ``name=value`` in a query (``&`` or ``;`` between them), and in a path segment after ``;``
_QUERY_PARAMETER = re.compile(r"(^|[;&])([^=;&]*)=([^;&]*)")
_PATH_PARAMETER = re.compile(r"(;)([^=;&/]*)=([^;&/]*)")


def _names(pattern: re.Pattern[str], text: str) -> list[str]:
    """The names of the parameters ``pattern`` finds in ``text``."""
    return [unquote(match.group(2)) for match in pattern.finditer(text)]


def credentials_in(url: str) -> str | None:
    """What in ``url`` is a credential ("a user name or password (user:pass@…)", "a secret in
    its query string (token=…)", "a fragment (#…)"), or None."""
    parts = urlsplit(url)
    if "@" in parts.netloc:
        return "a user name or password (user:pass@…)"
    if "#" in url:
        return "a fragment (#…), which may carry a token"
    for name in _names(_QUERY_PARAMETER, parts.query):
        if secret_parameter(name):
            return f"a secret in its query string ({name}=…)"
    for name in _names(_PATH_PARAMETER, parts.path):
        if secret_parameter(name):
            return f"a secret in its path (;{name}=…)"
    return None


def _masked_parameters(pattern: re.Pattern[str], text: str) -> str:
    """``text`` with the value of each secret-named parameter ``pattern`` finds masked."""

    def mask(match: re.Match[str]) -> str:
        before, name, _ = match.groups()
        return f"{before}{name}={MASK}" if secret_parameter(unquote(name)) else match.group(0)

    return pattern.sub(mask, text)


def masked(url: str) -> str:
    """``url`` with any user name, password, secret-named parameter value and fragment masked
    (what an admin sees of a URL stored before they were refused)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return MASK
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{MASK}@{netloc.rsplit('@', 1)[1]}"
    path = _masked_parameters(_PATH_PARAMETER, parts.path)
    query = _masked_parameters(_QUERY_PARAMETER, parts.query)
    fragment = MASK if parts.fragment else ""
    return urlunsplit((parts.scheme, netloc, path, query, fragment))


def outline(url: str) -> str:
    """``scheme://host/…``: what a member sees of a URL (its path or query may be a token)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return MASK
    host = parts.netloc.rsplit("@", 1)[-1]
    rest = parts.path not in ("", "/") or parts.query or parts.fragment or "#" in url
    return f"{parts.scheme}://{host}/…" if rest else f"{parts.scheme}://{host}"
