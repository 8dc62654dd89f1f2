"""An outbox database as an earlier Mailer left it, for the migration tests."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

from mailer_gui.outbox.store import _SCHEMA


def outbox_at_version(database: Path, version: int) -> sqlite3.Connection:
    """Create ``database`` with the first ``version`` schema steps only, in WAL
    mode as every Mailer leaves it; an open connection (autocommit) to add rows
    with, closed by the caller."""
    db = sqlite3.connect(database, isolation_level=None)
    with contextlib.ExitStack() as on_error:
        on_error.callback(db.close)
        db.execute("PRAGMA journal_mode=WAL")
        for script in _SCHEMA[:version]:
            for statement in script.split(";"):
                if statement.strip():
                    db.execute(statement)
        db.execute(f"PRAGMA user_version = {version}")
        on_error.pop_all()
    return db
