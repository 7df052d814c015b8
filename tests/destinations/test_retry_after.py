"""``Retry-After`` as HTTP defines it (RFC 9110 §10.2.3): delta-seconds, or an HTTP date read
against the injected clock's now, never a negative wait."""

from __future__ import annotations

from datetime import UTC, datetime

from cohortsync.destinations.http import parse_retry_after

NOW = datetime(2026, 11, 20, 12, 0, 0, tzinfo=UTC)


def test_delta_seconds_and_an_http_date_are_read_against_the_given_now() -> None:
    assert parse_retry_after("7", NOW) == 7.0
    assert parse_retry_after("Fri, 20 Nov 2026 12:00:30 GMT", NOW) == 30.0
    assert parse_retry_after("Fri, 20 Nov 2026 11:59:00 GMT", NOW) == 0.0  # already past


def test_a_missing_or_unreadable_header_gives_no_wait() -> None:
    assert parse_retry_after(None, NOW) is None
    assert parse_retry_after("  ", NOW) is None
    assert parse_retry_after("soon", NOW) is None
