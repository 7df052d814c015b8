"""Keeping secrets out of responses, pages, logs and errors.

Every secret value the process handles (partner credentials, webhook secrets) is registered
here when it is decrypted or generated; :func:`redact` replaces registered values in any text,
and :class:`RedactingFilter` does it to every log record as a last line of defence.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable

MASK = "***"
_MIN_LENGTH = 6  # shorter values are too likely to occur by chance to be masked everywhere
_lock = threading.Lock()
_known: set[str] = set()


def register(values: Iterable[str | None]) -> None:
    """Remember secret values so that :func:`redact` masks them wherever they appear."""
    with _lock:
        _known.update(v for v in values if v and len(v) >= _MIN_LENGTH)


def redact(text: str, extra: Iterable[str | None] = ()) -> str:
    """``text`` with every registered secret (and every value in ``extra``) masked."""
    with _lock:
        values = set(_known)
    values.update(v for v in extra if v and len(v) >= _MIN_LENGTH)
    for value in sorted(values, key=len, reverse=True):
        if value in text:
            text = text.replace(value, MASK)
    return text


class RedactingFilter(logging.Filter):
    """Masks registered secrets in a log record's message, arguments and exception text."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record in place; never drops it."""
        if not _known:
            return True
        message = record.getMessage()
        masked = redact(message)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info and record.exc_info[1] is not None:
            text = logging.Formatter().formatException(record.exc_info)
            masked_exc = redact(text)
            if masked_exc != text:
                record.exc_info, record.exc_text = None, masked_exc
        return True
