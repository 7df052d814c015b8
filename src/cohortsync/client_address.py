"""The address a request came from, as sign-in throttling counts it."""

from __future__ import annotations

import ipaddress

from starlette.requests import Request


def client_address(request: Request, trust_proxy: bool) -> str | None:
    """The peer's IP address; behind a trusted proxy (``COHORTSYNC_TRUST_PROXY``) the last hop
    of ``X-Forwarded-For``, the one that proxy added (earlier hops are whatever the client
    sent). A header that is not an IP address is ignored."""
    if trust_proxy:
        hops = [hop.strip() for hop in request.headers.get("x-forwarded-for", "").split(",")]
        if hops[-1]:
            try:
                return str(ipaddress.ip_address(hops[-1]))
            except ValueError:
                pass
    return request.client.host if request.client else None
