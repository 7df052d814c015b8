"""The SQLite database holds password and token hashes and the audit log: a new file is
readable by the service's user only, its WAL and shared-memory files too."""

from __future__ import annotations

import stat
from pathlib import Path

from cohortsync.storage.database import create_engine, write_transaction
from cohortsync.storage.migrate import upgrade


def test_a_new_database_file_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "data" / "cohortsync.db"
    engine = create_engine(f"sqlite:///{path}")
    try:
        upgrade(engine)
        with write_transaction(engine) as connection:
            connection.exec_driver_sql("CREATE TABLE probe (x)")
        files = sorted(p.name for p in path.parent.iterdir())
        modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in path.parent.iterdir()}
    finally:
        engine.dispose()
    assert "cohortsync.db" in files
    assert set(modes.values()) == {0o600}, modes
