"""Fill an outbox with many messages quickly (for the 10,000-row view test and bench).

Building and fsyncing 10,000 real messages would take minutes; the rows here
are written with SQL into a store made by OutboxStore (so the schema is the
real one) and share one real spooled message, which is all a list view reads.
"""

from __future__ import annotations

import random
import sqlite3
import time
from pathlib import Path

from mailer_gui.message.addresses import parse_address
from mailer_gui.message.draft import Draft
from mailer_gui.outbox.store import OutboxStore, State
from mailer_gui.outbox.submit import queue_draft

_STATES = (State.QUEUED, State.DEFERRED, State.UNCERTAIN, State.SCHEDULED)


def fill_outbox(database: Path, spool: Path, count: int, *, seed: int = 7) -> int:
    """Add ``count`` waiting messages (none due for an hour); the first one's id."""
    store = OutboxStore(database, spool)
    draft = Draft(
        sender=parse_address("Ann <ann@example.org>"),
        to=(parse_address("bob@example.org"),),
        subject="Message 00000",
        body="Hello.",
    )
    first = queue_draft(store, draft, account="work", due_at=time.time() + 3600)
    store.close()
    chooser = random.Random(seed)
    later = time.time() + 3600
    with sqlite3.connect(database) as db:
        template = db.execute(
            "SELECT size, spool_file, envelope_from, message_id FROM messages WHERE id = ?",
            (first,),
        ).fetchone()
        rows = []
        for n in range(1, count):
            state = chooser.choice(_STATES)
            rows.append((
                "work", state.value, time.time(), later + n, chooser.randint(0, 5),
                f"451 4.7.1 try again later ({n})" if state is State.DEFERRED else None,
                f"<{n}.{template[3][1:]}", f"Message {n:05d}", template[0], template[1],
                template[2], time.time(),
            ))  # fmt: skip
        db.executemany(
            "INSERT INTO messages (account, state, created_at, due_at, attempts, last_error, "
            "message_id, subject, size, spool_file, envelope_from, updated_at) "
            "VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            rows,
        )
        db.execute(
            "INSERT INTO recipients (message, position, address, kind) "
            "SELECT id, 0, 'bob' || id || '@example.org', 'to' FROM messages WHERE id != ?",
            (first,),
        )
    return first
