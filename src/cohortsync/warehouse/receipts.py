"""When each partner event without a time of its own was first received (``webhook_receipts``),
so a replay of it gets the same time and deduplicates (R-EVT-2)."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from cohortsync.storage.tables import webhook_receipts
from cohortsync.warehouse.sql import insert_ignoring_duplicates


def first_received(
    connection: Connection,
    integration_id: int,
    insert_ids: Sequence[str],
    now_ms: int,
    window_ms: int,
) -> dict[str, int]:
    """The first receipt time of each ``insert_id``: a receipt older than the replay window is
    forgotten (the event counts as new), an unknown one is recorded at ``now_ms``."""
    connection.execute(
        webhook_receipts.delete().where(
            webhook_receipts.c.integration_id == integration_id,
            webhook_receipts.c.insert_id.in_(insert_ids),
            webhook_receipts.c.received_ms <= now_ms - window_ms,
        )
    )
    insert_ignoring_duplicates(
        connection,
        webhook_receipts,
        [
            {"integration_id": integration_id, "insert_id": i, "received_ms": now_ms}
            for i in insert_ids
        ],
    )
    rows = connection.execute(
        sa.select(webhook_receipts.c.insert_id, webhook_receipts.c.received_ms).where(
            webhook_receipts.c.integration_id == integration_id,
            webhook_receipts.c.insert_id.in_(insert_ids),
        )
    )
    return {row.insert_id: int(row.received_ms) for row in rows}


def forget_before(connection: Connection, cutoff_ms: int) -> None:
    """Forget every receipt older than ``cutoff_ms``."""
    connection.execute(webhook_receipts.delete().where(webhook_receipts.c.received_ms < cutoff_ms))
