"""Finding users by a partner's key, in reverse of how the connectors address them (R-EVT-1).

The lookups by profile property use the expression indexes of migration 0006, so the SQL here
must spell each property exactly as the index does.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from cohortsync.storage.tables import CASE_FOLDED_KEYS, PROFILE_KEY_INDEXES, profiles
from cohortsync.warehouse.identities import linked

_CHUNK = 500


ASCII_CAPITALS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_ASCII_LOWER = str.maketrans(ASCII_CAPITALS, ASCII_CAPITALS.lower())


def _key_expressions(dialect: str, prop: str) -> tuple[str, str]:
    """The property as stored, and as its index holds it (emails with their ASCII capitals
    lowered: SQLite's lower() does only that, and on PostgreSQL translate() does the same)."""
    if dialect == "postgresql":
        value = f"(properties ->> '{prop}')"
    else:
        value = f"json_extract(properties, '$.\"{prop}\"')"
    if prop not in CASE_FOLDED_KEYS:
        return value, value
    if dialect == "postgresql":
        return value, f"translate({value}, '{ASCII_CAPITALS}', '{ASCII_CAPITALS.lower()}')"
    return value, f"lower({value})"


def _folded(prop: str, value: str) -> str:
    """``value`` as the index holds it."""
    return value.translate(_ASCII_LOWER) if prop in CASE_FOLDED_KEYS else value


def profiles_by_property(
    connection: Connection, project_id: int, prop: str, values: Iterable[str]
) -> dict[str, str]:
    """Each value to the canonical id of the profile whose ``prop`` equals it: exactly, else
    (emails) in another case. Where several profiles match alike, the smallest distinct_id
    wins, so the answer is stable."""
    if prop not in PROFILE_KEY_INDEXES.values():
        raise ValueError(f"{prop} has no index to be looked up by")
    given = set(values)
    wanted = sorted({_folded(prop, value) for value in given})
    stored, key = _key_expressions(connection.dialect.name, prop)
    query = sa.text(
        f"SELECT {key} AS folded, {stored} AS exact, MIN(distinct_id) AS owner "  # noqa: S608
        f"FROM profiles WHERE project_id = :project_id AND {key} IN :values "
        f"GROUP BY {key}, {stored}"
    ).bindparams(sa.bindparam("values", expanding=True))
    spellings: dict[str, dict[str, str]] = defaultdict(dict)  # folded → as stored → owner
    for start in range(0, len(wanted), _CHUNK):
        part = wanted[start : start + _CHUNK]
        for row in connection.execute(query, {"project_id": project_id, "values": part}):
            spellings[row.folded][row.exact] = row.owner
    found: dict[str, str] = {}
    for value in given:
        candidates = spellings.get(_folded(prop, value))
        if candidates:
            found[value] = candidates.get(value) or min(candidates.values())
    return found


def users_with_key(
    connection: Connection, project_id: int, prop: str, values: Iterable[str]
) -> set[str]:
    """The canonical ids of every profile whose ``prop`` is a string among ``values`` (emails
    in any case), read through the key's index: a static cohort of any size by email, never
    one expression per address. SQLite takes IN lists of 500; PostgreSQL joins one array of
    them all, and its planner chooses between probing the index and one hashed scan."""
    if prop not in PROFILE_KEY_INDEXES.values():
        raise ValueError(f"{prop} has no index to be looked up by")
    wanted = sorted({_folded(prop, value) for value in values})
    dialect = connection.dialect.name
    _, key = _key_expressions(dialect, prop)
    if dialect == "postgresql":
        chunk = max(len(wanted), 1)
        query = sa.text(
            "SELECT distinct_id FROM unnest(CAST(:values AS text[])) AS wanted(value) "  # noqa: S608
            f"JOIN profiles ON project_id = :project_id AND {key} = wanted.value "
            f"WHERE jsonb_typeof(properties -> '{prop}') = 'string'"
        )
    else:
        chunk = _CHUNK
        query = sa.text(
            f"SELECT distinct_id FROM profiles WHERE project_id = :project_id "  # noqa: S608
            f"AND {key} IN :values AND json_type(properties, '$.\"{prop}\"') = 'text'"
        ).bindparams(sa.bindparam("values", expanding=True))
    found: set[str] = set()
    for start in range(0, len(wanted), chunk):
        part = wanted[start : start + chunk]
        found.update(
            connection.execute(query, {"project_id": project_id, "values": part}).scalars()
        )
    return found


def known_ids(connection: Connection, project_id: int, ids: Iterable[str]) -> set[str]:
    """The ids among ``ids`` that belong to a user we know: linked to an identity cluster or
    the id of a stored profile."""
    wanted = list(dict.fromkeys(ids))
    known = set(linked(connection, project_id, wanted))
    rest = [i for i in wanted if i not in known]
    for start in range(0, len(rest), _CHUNK):
        part = rest[start : start + _CHUNK]
        rows = connection.execute(
            sa.select(profiles.c.distinct_id).where(
                profiles.c.project_id == project_id, profiles.c.distinct_id.in_(part)
            )
        )
        known.update(rows.scalars())
    return known
