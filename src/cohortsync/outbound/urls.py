"""URLs free of credentials: a user-given URL carrying a user name, a password or a secret-named
query parameter (``api_key``, ``token``, ``sig`` …) is refused, since settings are shown to every
member of a project while credentials are sealed; a URL stored before that rule is shown with
those parts masked."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

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


def credentials_in(url: str) -> str | None:
    """What in ``url`` is a credential ("a user name or password (user:pass@…)", "a secret in
    its query string (token=…)"), or None."""
    parts = urlsplit(url)
    if "@" in parts.netloc:
        return "a user name or password (user:pass@…)"
    for name, _ in parse_qsl(parts.query, keep_blank_values=True):
        if secret_parameter(name):
            return f"a secret in its query string ({name}=…)"
    return None


def masked(url: str) -> str:
    """``url`` with any user name, password and secret-named query value masked."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return MASK
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{MASK}@{netloc.rsplit('@', 1)[1]}"
    query = parts.query
    pairs = parse_qsl(query, keep_blank_values=True)
    if any(secret_parameter(name) for name, _ in pairs):
        shown = [(name, MASK if secret_parameter(name) else value) for name, value in pairs]
        query = urlencode(shown, safe="*")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
