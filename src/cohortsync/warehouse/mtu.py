"""The MTU queries (R-MTU-1, R-MTU-2): one month of events, resolved to canonical users, with
each event either qualifying or exempt by the exemption list.

An event is exempt when its name is listed for its ``$source`` (or listed for every source, as
the identity-management events are). Names are tested before the ``$source`` is read, so the
JSON of most events is never parsed.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from cohortsync.domain.outreach import ANY_SOURCE, Exemption
from cohortsync.storage.tables import events, identities, mtu_exemptions
from cohortsync.warehouse.sql import insert_ignoring_duplicates


@dataclass
class MonthActivity:
    """What one month of events adds up to."""

    events: int = 0
    mtu: int = 0
    # source → event name → exempt events ("*" for events exempt whatever their source)
    exempt: dict[str, dict[str, int]] = field(default_factory=dict)
    # users with events in the month but none qualifying, in all and by the source that
    # reached them (a user reached by two partners counts under both)
    not_counted: int = 0
    not_counted_by_source: dict[str, int] = field(default_factory=dict)


def load_exemptions(connection: Connection) -> list[Exemption]:
    """The exemption list as stored, by source then name."""
    rows = connection.execute(
        sa.select(mtu_exemptions.c.source, mtu_exemptions.c.event).order_by(
            mtu_exemptions.c.source, mtu_exemptions.c.event
        )
    )
    return [Exemption(row.source, row.event) for row in rows]


def add_exemptions(connection: Connection, exemptions: Sequence[Exemption]) -> None:
    """Put exemptions on the list (one already there is left as it is)."""
    insert_ignoring_duplicates(connection, mtu_exemptions, [e._asdict() for e in exemptions])


def delete_exemption(connection: Connection, exemption: Exemption) -> bool:
    """Take an exemption off the list; False if it was not on it."""
    gone = connection.execute(
        sa.delete(mtu_exemptions).where(
            mtu_exemptions.c.source == exemption.source,
            mtu_exemptions.c.event == exemption.event,
        )
    ).rowcount
    return bool(gone)


def _source() -> ColumnElement[str]:
    source: ColumnElement[str] = events.c.properties["$source"].as_string()
    return source


def _exempt_condition(
    exemptions: Sequence[Exemption],
) -> tuple[ColumnElement[bool], dict[str, ColumnElement[bool]]]:
    """A condition true for exempt events, and per partner source the condition of its own
    outreach events (identity events, exempt whatever their source, belong to no partner)."""
    by_source: dict[str, list[str]] = defaultdict(list)
    for exemption in exemptions:
        by_source[exemption.source].append(exemption.event)
    everywhere = by_source.pop(ANY_SOURCE, [])
    everywhere_clause = events.c.event.in_(everywhere) if everywhere else sa.false()
    partner = {
        source: sa.and_(events.c.event.in_(names), _source() == source, sa.not_(everywhere_clause))
        for source, names in sorted(by_source.items())
    }
    clauses: list[ColumnElement[bool]] = []
    if everywhere:
        clauses.append(everywhere_clause)
    if partner:
        any_partner_name = sorted({n for names in by_source.values() for n in names})
        # The name test first: $source is only read for events whose name is listed.
        clauses.append(sa.and_(events.c.event.in_(any_partner_name), sa.or_(*partner.values())))
    return (sa.or_(*clauses) if clauses else sa.false()), partner


# Above this many names, the events of unlisted names are found by exclusion instead.
_MAX_NAMES = 5000


def event_names(connection: Connection, project_id: int) -> list[str]:
    """The project's distinct event names, by a loose index scan: one probe of the name index
    a name, however many events there are."""
    rows = connection.execute(
        sa.text(
            "WITH RECURSIVE names(event) AS ("
            " SELECT MIN(event) FROM events WHERE project_id = :project_id"
            " UNION ALL"
            " SELECT (SELECT MIN(e.event) FROM events e"
            "  WHERE e.project_id = :project_id AND e.event > names.event)"
            " FROM names WHERE names.event IS NOT NULL"
            ") SELECT event FROM names WHERE event IS NOT NULL"
        ),
        {"project_id": project_id},
    )
    return [row.event for row in rows]


def month_activity(
    connection: Connection,
    project_id: int,
    start_ms: int,
    end_ms: int,
    exemptions: Sequence[Exemption],
) -> MonthActivity:
    """MTU, event totals, exempt events and users not counted for [start_ms, end_ms).

    Events of a name nobody lists qualify whatever they carry, so for those only the distinct
    ids as sent are read, from the (name, time, distinct_id) index without touching the rows;
    only events of listed names are read in full. Identities are then resolved once an id,
    not once an event.
    """
    activity = MonthActivity()
    in_month = sa.and_(
        events.c.project_id == project_id, events.c.time >= start_ms, events.c.time < end_ms
    )
    activity.events = int(
        connection.execute(
            sa.select(sa.func.count()).select_from(events).where(in_month)
        ).scalar_one()
    )
    exempt, by_partner = _exempt_condition(exemptions)
    sources = list(by_partner)
    activity.not_counted_by_source = dict.fromkeys(sources, 0)
    if activity.events == 0:
        return activity
    _count_exempt(connection, in_month, exemptions, activity)

    listed = sorted({e.event for e in exemptions})
    unlisted = [name for name in event_names(connection, project_id) if name not in listed]
    no_reach = [sa.literal(0).label(f"reached_{i}") for i in range(len(sources))]
    branches = []
    if unlisted:
        of_unlisted = (
            events.c.event.in_(unlisted)
            if len(unlisted) <= _MAX_NAMES
            else events.c.event.not_in(listed)
        )
        branches.append(
            sa.select(events.c.distinct_id, sa.literal(1).label("qualifies"), *no_reach)
            .where(in_month, of_unlisted)
            .distinct()
        )
    if listed:
        branches.append(
            sa.select(
                events.c.distinct_id,
                sa.case((exempt, 0), else_=1).label("qualifies"),
                *(
                    sa.case((outreach, 1), else_=0).label(f"reached_{i}")
                    for i, outreach in enumerate(by_partner.values())
                ),
            ).where(in_month, events.c.event.in_(listed))
        )
    per_id = sa.union_all(*branches).subquery()
    user = sa.func.coalesce(identities.c.canonical_id, per_id.c.distinct_id)
    per_user = (
        sa.select(
            user.label("user"),
            sa.func.max(per_id.c.qualifies).label("qualifies"),
            *(
                sa.func.max(per_id.c[f"reached_{i}"]).label(f"reached_{i}")
                for i in range(len(sources))
            ),
        )
        .select_from(
            per_id.outerjoin(
                identities,
                sa.and_(
                    identities.c.project_id == project_id,
                    identities.c.distinct_id == per_id.c.distinct_id,
                ),
            )
        )
        .group_by(user)
        .subquery()
    )
    not_qualifying = per_user.c.qualifies == 0
    totals = connection.execute(
        sa.select(
            sa.func.coalesce(sa.func.sum(per_user.c.qualifies), 0),
            sa.func.coalesce(sa.func.sum(sa.case((not_qualifying, 1), else_=0)), 0),
            *(
                sa.func.coalesce(
                    sa.func.sum(
                        sa.case(
                            (sa.and_(not_qualifying, per_user.c[f"reached_{i}"] == 1), 1), else_=0
                        )
                    ),
                    0,
                )
                for i in range(len(sources))
            ),
        )
    ).one()
    activity.mtu = int(totals[0])
    activity.not_counted = int(totals[1])
    activity.not_counted_by_source = {
        source: int(totals[2 + i]) for i, source in enumerate(sources)
    }
    return activity


def _count_exempt(
    connection: Connection,
    in_month: ColumnElement[bool],
    exemptions: Sequence[Exemption],
    activity: MonthActivity,
) -> None:
    """Exempt events by source and name (read through the name index: listed names only)."""
    names = sorted({e.event for e in exemptions})
    if not names:
        return
    listed = {(e.source, e.event) for e in exemptions}
    source = _source().label("source")
    rows = connection.execute(
        sa.select(events.c.event, source, sa.func.count().label("n"))
        .where(in_month, events.c.event.in_(names))
        .group_by(events.c.event, source)
    )
    for row in rows:
        if (ANY_SOURCE, row.event) in listed:
            key = ANY_SOURCE
        elif (row.source, row.event) in listed:
            key = row.source
        else:
            continue  # a listed name, but not from the partner that lists it: it qualifies
        by_name = activity.exempt.setdefault(key, {})
        by_name[row.event] = by_name.get(row.event, 0) + int(row.n)
