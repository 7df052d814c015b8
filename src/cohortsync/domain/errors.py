"""Errors the domain raises; each says what the caller should do.

CohortsyncError
├── RecordError          one record of a batch is invalid (the rest of the batch is kept)
├── BatchError           the whole request body is unusable
│   └── PayloadTooLarge  over a documented size limit
├── AuthenticationError  credentials missing or wrong
├── PermissionDenied     authenticated, but not allowed
├── NotFound             the named thing does not exist
├── Conflict             the request clashes with stored state
└── DatabaseUnavailable  the database cannot answer now (503, Retry-After); later it may
    ├── DatabaseBusy     another writer held the lock past the busy timeout (SQLite)
    └── DatabaseFull     the database's disk (or size limit) is full
"""

from __future__ import annotations


class CohortsyncError(Exception):
    """Base of every error cohortsync raises on purpose."""

    code = "error"
    retry_after_seconds: int | None = None  # when set, the reply says when to try again

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class RecordError(CohortsyncError):
    """One record of a batch failed validation; ``field`` names the offending field."""

    code = "invalid_record"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class BatchError(CohortsyncError):
    """The request body as a whole cannot be used (malformed, wrong shape, too many records)."""

    code = "bad_request"


class PayloadTooLarge(BatchError):
    """The body is over a documented size limit."""

    code = "payload_too_large"


class AuthenticationError(CohortsyncError):
    """Credentials are missing or do not match."""

    code = "unauthorized"


class PermissionDenied(CohortsyncError):
    """The caller is known but may not do this."""

    code = "forbidden"


class NotFound(CohortsyncError):
    """The named object does not exist (or is not visible to the caller)."""

    code = "not_found"


class Conflict(CohortsyncError):
    """The request contradicts stored state (duplicate name, limit reached...)."""

    code = "conflict"


class TooManyRequests(CohortsyncError):
    """Refused for now, to be tried again after ``retry_after_seconds``: a rate or a lock on
    the caller (sign-in failures, a project's ingestion rate). Answered with 429."""

    code = "too_many_requests"

    def __init__(self, message: str, retry_after_seconds: int) -> None:
        super().__init__(message)
        self.retry_after_seconds: int | None = max(1, retry_after_seconds)


OUTAGE_RETRY_SECONDS = 5  # how soon a client may try again after a database outage


class DatabaseUnavailable(CohortsyncError):
    """The database could not do this now: the connection was lost (a restart, a network
    cut). Nothing is wrong with the request; the same request later may succeed."""

    code = "database_unavailable"
    retry_after_seconds: int | None = OUTAGE_RETRY_SECONDS


class DatabaseBusy(DatabaseUnavailable):
    """Another writer held the database's write lock for longer than the busy timeout."""

    code = "database_busy"


class DatabaseFull(DatabaseUnavailable):
    """The database's disk, or its configured size limit, is full: nothing more is stored
    until an operator frees space."""

    code = "disk_full"
    retry_after_seconds: int | None = 60


# The HTTP status each kind of error answers with, most specific first (the API's error body and
# the web pages' error page both read it).
STATUS_BY_ERROR: tuple[tuple[type[CohortsyncError], int], ...] = (
    (PayloadTooLarge, 413),
    (BatchError, 400),
    (RecordError, 400),
    (AuthenticationError, 401),
    (PermissionDenied, 403),
    (NotFound, 404),
    (Conflict, 409),
    (TooManyRequests, 429),
    (DatabaseUnavailable, 503),
)


def status_for(error: CohortsyncError) -> int:
    """The HTTP status an error maps to."""
    for kind, status in STATUS_BY_ERROR:
        if isinstance(error, kind):
            return status
    return 500
