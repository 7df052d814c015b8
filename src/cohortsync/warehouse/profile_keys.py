"""Finding users by a partner's key, in reverse of how the connectors address them (R-EVT-1).

The lookups by profile property use the expression indexes of migration 0006, so the SQL here
must spell each property exactly as the index does.
"""

from __future__ import annotations

from collections.abc import Iterable

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from cohortsync.storage.tables import CASE_FOLDED_KEYS, PROFILE_KEY_INDEXES, profiles
from cohortsync.warehouse.identities import linked

_CHUNK = 500


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def _key_expression(dialect: str, prop: str) -> str:
    if dialect == "postgresql":
        value = f"(properties ->> '{prop}')"
    else:
        value = f"json_extract(properties, '$.\"{prop}\"')"
    return f"lower({value})" if prop in CASE_FOLDED_KEYS else value


def _folded(prop: str, value: str) -> str:
    """``value`` as the index holds it. SQLite's lower() folds ASCII letters only, so only those
    are folded here (on PostgreSQL an address with a capital non-ASCII letter is not found)."""
    return value.translate(_ASCII_LOWER) if prop in CASE_FOLDED_KEYS else value


def profiles_by_property(
    connection: Connection, project_id: int, prop: str, values: Iterable[str]
) -> dict[str, str]:
    """Each value to the canonical id of the profile whose ``prop`` equals it (an email in any
    case); where several profiles share a value, the smallest distinct_id wins, so the answer
    is stable."""
    if prop not in PROFILE_KEY_INDEXES.values():
        raise ValueError(f"{prop} has no index to be looked up by")
    given = set(values)
    wanted = sorted({_folded(prop, value) for value in given})
    key = _key_expression(connection.dialect.name, prop)
    query = sa.text(
        f"SELECT {key} AS value, MIN(distinct_id) AS owner FROM profiles "  # noqa: S608
        f"WHERE project_id = :project_id AND {key} IN :values GROUP BY {key}"
    ).bindparams(sa.bindparam("values", expanding=True))
    found: dict[str, str] = {}
    for start in range(0, len(wanted), _CHUNK):
        part = wanted[start : start + _CHUNK]
        rows = connection.execute(query, {"project_id": project_id, "values": part})
        found.update({row.value: row.owner for row in rows})
    return {value: found[key] for value in given if (key := _folded(prop, value)) in found}


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
