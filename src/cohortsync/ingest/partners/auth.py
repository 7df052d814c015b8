"""How a webhook call proves it comes from the partner (R-EVT-2): the per-integration secret as
a token (a bare or Bearer/OAuth2 ``Authorization``, Basic auth, or a custom header) or as the key
of an HMAC signature with a timestamp, which must fall within the replay window.

Every comparison is constant-time, and no message repeats what was sent.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence

from cohortsync.domain.errors import AuthenticationError
from cohortsync.ingest.partners.base import WebhookRequest

REPLAY_WINDOW_S = 300  # a signed call older (or newer) than five minutes is refused
TOKEN_HEADER = "x-cohortsync-token"  # for partners that send custom headers
_SCHEMES = ("bearer ", "oauth2 ", "token ")


def _matches(given: str, secrets: Sequence[str]) -> bool:
    given_bytes = given.encode()
    found = False
    for secret in secrets:  # no early exit: the time does not depend on which one matched
        found |= hmac.compare_digest(given_bytes, secret.encode())
    return found


def _basic_password(credentials: str) -> str | None:
    try:
        decoded = base64.b64decode(credentials, validate=True).decode()
    except ValueError:  # not base64 (binascii.Error), not ASCII, or not UTF-8 once decoded
        return None
    _user, colon, password = decoded.partition(":")
    return password if colon else None


def presented_tokens(request: WebhookRequest) -> list[str]:
    """Every token the request presents: the custom header, the Authorization value bare or
    after Bearer/OAuth2/Token, and for Basic both the value itself (Iterable sends the typed
    token after ``Basic``) and the password it decodes to."""
    tokens: list[str] = []
    custom = request.headers.get(TOKEN_HEADER)
    if custom:
        tokens.append(custom.strip())
    authorization = request.headers.get("authorization", "").strip()
    if not authorization:
        return tokens
    lowered = authorization.lower()
    for scheme in _SCHEMES:
        if lowered.startswith(scheme):
            return [*tokens, authorization[len(scheme) :].strip()]
    if lowered.startswith("basic "):
        value = authorization[6:].strip()
        password = _basic_password(value)
        return [*tokens, value, *([password] if password else [])]
    return [*tokens, authorization]


def check_token(request: WebhookRequest, secrets: Sequence[str]) -> None:
    """Pass when any presented token equals one of ``secrets``."""
    tokens = presented_tokens(request)
    if not tokens:
        raise AuthenticationError(
            "the webhook call has no credentials: send the integration's webhook secret as "
            "'Authorization: Bearer <secret>', Basic auth (the secret as password) or the "
            f"{TOKEN_HEADER} header"
        )
    if not any(_matches(token, secrets) for token in tokens):
        raise AuthenticationError("the webhook secret does not match this integration's")


def hmac_sha256_hex(secret: str, message: bytes) -> str:
    """The hex HMAC-SHA256 of ``message`` keyed with ``secret``."""
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def check_signed(
    signed_at: int, signatures: Sequence[str], message: bytes, secrets: Sequence[str], now_s: int
) -> None:
    """Pass when one of ``signatures`` is the HMAC of ``message`` under one of ``secrets`` and
    ``signed_at`` is within the replay window of ``now_s``."""
    if abs(now_s - signed_at) > REPLAY_WINDOW_S:
        raise AuthenticationError(
            f"the signature timestamp is {abs(now_s - signed_at)} s from now, outside the "
            f"{REPLAY_WINDOW_S // 60}-minute replay window"
        )
    expected = [hmac_sha256_hex(secret, message) for secret in secrets]
    if not any(_matches(signature.lower(), expected) for signature in signatures):
        raise AuthenticationError("the webhook signature does not match this integration's secret")
