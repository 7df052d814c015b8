"""Partner budgets held in PostgreSQL, shared by every process (SPEC R-SYN-6): each account's
next turn of each kind (``partner_budgets``) and its concurrent request slots
(``partner_slots``).

Every method is one statement, run in the caller's short transaction. The only clock is the
database's ``clock_timestamp()`` (the time as the statement runs; ``now()`` would be the start
of the transaction), and what comes back is a duration, so the clocks of the workers' hosts
never matter.
"""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import Connection

from cohortsync.storage.tables import Timestamp, partner_budgets, partner_slots


def _now() -> sa.ColumnElement[object]:
    return sa.func.clock_timestamp(type_=Timestamp)


def _seconds(value: float) -> sa.BindParameter[timedelta]:
    return sa.bindparam(None, timedelta(seconds=value), type_=sa.Interval())


class PartnerBudgetStore:
    """Turns and slots of partner accounts (keyed by their hash), on PostgreSQL."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection
        # A turn, a stamp or a slot lost in a crash costs nothing (the next one is taken from
        # the database's clock, a slot's time runs out): commit without waiting for the disk,
        # so a partner call is not held up by a flush between its stamp and its send.
        connection.exec_driver_sql("SET LOCAL synchronous_commit TO OFF")

    def take_turn(self, key: str, kind: str, interval: float) -> float:
        """Take the account's next turn of ``kind``: ``interval`` seconds after the turn before
        it, or now if that is past (a token bucket of capacity 1, GCRA: an idle account saves
        up no burst). Returns the seconds until the turn begins (0: at once)."""
        step = _seconds(interval)
        statement = (
            insert(partner_budgets)
            .values(account_key=key, kind=kind, next_at=_now() + step)
            .on_conflict_do_update(
                index_elements=[partner_budgets.c.account_key, partner_budgets.c.kind],
                set_={"next_at": sa.func.greatest(partner_budgets.c.next_at, _now()) + step},
            )
            .returning(sa.extract("epoch", partner_budgets.c.next_at - step - _now()))
        )
        wait = self._connection.execute(statement).scalar_one()
        return max(float(wait), 0.0)

    def stamp_send(self, key: str, kind: str, interval: float) -> float:
        """Stamp a send of the account now, if its last stamped send is ``interval`` seconds
        past; else the seconds still to wait (and nothing is stamped). Kept apart from the
        turns: a sender that wakes late from its turn must not go out together with the next
        one's."""
        step = _seconds(interval)
        stamped = self._connection.execute(
            insert(partner_budgets)
            .values(account_key=key, kind=kind, next_at=_now() + step)
            .on_conflict_do_update(
                index_elements=[partner_budgets.c.account_key, partner_budgets.c.kind],
                set_={"next_at": _now() + step},
                where=partner_budgets.c.next_at <= _now(),
            )
            .returning(partner_budgets.c.kind)
        ).first()
        if stamped is not None:
            return 0.0
        wait = self._connection.execute(
            sa.select(sa.extract("epoch", partner_budgets.c.next_at - _now())).where(
                partner_budgets.c.account_key == key, partner_budgets.c.kind == kind
            )
        ).scalar_one()
        return max(float(wait), 0.001)

    def push_send(self, key: str, kind: str, interval: float) -> None:
        """Stamp a send now without waiting (it is going anyway): the next waits from here."""
        self._connection.execute(
            partner_budgets.update()
            .where(partner_budgets.c.account_key == key, partner_budgets.c.kind == kind)
            .values(
                next_at=sa.func.greatest(partner_budgets.c.next_at, _now() + _seconds(interval))
            )
        )

    def add_slots(self, key: str, count: int) -> None:
        """Make whichever of the account's slots ``0 … count - 1`` do not exist yet, free."""
        self._connection.execute(
            insert(partner_slots)
            .values([{"account_key": key, "slot": slot} for slot in range(count)])
            .on_conflict_do_nothing()
        )

    def claim_slot(self, key: str, count: int, holder: str, ttl: float) -> int | None:
        """Take a free slot among the account's first ``count`` for ``holder``, until ``ttl``
        seconds from now; a slot is free when nobody holds it or its holder's time is up.
        Slots others are taking at this moment are skipped, not waited for. None: every one
        is held (or none exists yet: :meth:`add_slots`)."""
        now = _now()
        free = (
            sa.select(partner_slots.c.slot)
            .where(
                partner_slots.c.account_key == key,
                partner_slots.c.slot < count,
                sa.or_(partner_slots.c.holder.is_(None), partner_slots.c.until < now),
            )
            .order_by(partner_slots.c.slot)
            .limit(1)
            .with_for_update(skip_locked=True)
            .scalar_subquery()
        )
        return self._connection.execute(
            partner_slots.update()
            .where(partner_slots.c.account_key == key, partner_slots.c.slot == free)
            .values(holder=holder, until=now + _seconds(ttl))
            .returning(partner_slots.c.slot)
        ).scalar_one_or_none()

    def hold_slot(self, key: str, slot: int, holder: str, ttl: float) -> bool:
        """Start the slot's time again, ``ttl`` seconds from now; False when ``holder`` no
        longer holds it (its time ran out and another took it)."""
        kept = self._connection.execute(
            partner_slots.update()
            .where(
                partner_slots.c.account_key == key,
                partner_slots.c.slot == slot,
                partner_slots.c.holder == holder,
                partner_slots.c.until >= _now(),
            )
            .values(until=_now() + _seconds(ttl))
        ).rowcount
        return bool(kept)

    def release_slot(self, key: str, slot: int, holder: str) -> None:
        """Give the slot back, if ``holder`` still holds it (after its time was up, another may
        have taken it: that one keeps it)."""
        self._connection.execute(
            partner_slots.update()
            .where(
                partner_slots.c.account_key == key,
                partner_slots.c.slot == slot,
                partner_slots.c.holder == holder,
            )
            .values(holder=None, until=None)
        )
