"""Ids of stored rows as requests may name them: positive and within the databases' INTEGER
(PostgreSQL's is 32-bit), so an id past it is a clear 4xx, not a driver's overflow."""

from __future__ import annotations

from typing import Annotated

from annotated_types import Ge, Le

MAX_ROW_ID = 2**31 - 1
RowId = Annotated[int, Ge(1), Le(MAX_ROW_ID)]
