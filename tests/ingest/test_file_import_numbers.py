"""A CSV cell of any number of digits is imported: up to 18 digits as an integer, longer as a
float, and past a float's range as the text it is (an integer over 64 bits cannot be stored as
JSON, and over 4,300 digits Python refuses to read it)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.engine import Engine

from cohortsync.domain.accounts import Project
from cohortsync.services.file_import import ImportKind, import_file
from cohortsync.services.ingestion import IngestionService
from cohortsync.storage.database import read_transaction
from cohortsync.warehouse.profiles import get_profile


def test_long_numbers_in_a_csv_are_stored(
    service: IngestionService, project: Project, engine: Engine, tmp_path: Path
) -> None:
    path = tmp_path / "people.csv"
    cells = ["9" * 18, "9" * 30, "9" * 5000 + "e9999"]
    path.write_text("$distinct_id,plain,long,huge\nada," + ",".join(cells) + "\n")
    report = import_file(service, project, path, ImportKind.PROFILES)
    assert (report.stored, report.rejected) == (1, [])
    with read_transaction(engine) as connection:
        found = get_profile(connection, project.id, "ada")
    assert found is not None
    stored = found.properties
    assert (stored["plain"], stored["huge"]) == (10**18 - 1, cells[2])
    assert float(stored["long"]) == 1e30  # PostgreSQL's jsonb gives it back as an integer
