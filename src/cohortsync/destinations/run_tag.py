"""Which sync run a partner request belongs to, sent as the ``X-Cohortsync-Run`` header: the
run's session id, which partner support, the emulators' logs and our run history share.

The runner sets it around a run (:func:`tagged`); every :class:`PartnerClient` request made on
that thread carries it. Requests outside a run (connecting an integration) carry none.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import httpx

RUN_HEADER = "X-Cohortsync-Run"

_current: ContextVar[str | None] = ContextVar("cohortsync_run", default=None)


@contextmanager
def tagged(session_id: str) -> Iterator[None]:
    """Partner requests made in this block name the run ``session_id``."""
    token = _current.set(session_id)
    try:
        yield
    finally:
        _current.reset(token)


def tag_request(request: httpx.Request) -> None:
    """An httpx request hook: name the current run, if any."""
    session_id = _current.get()
    if session_id is not None:
        request.headers[RUN_HEADER] = session_id
