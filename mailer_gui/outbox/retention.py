"""How long the outbox keeps what servers said: old attempt transcripts are emptied.

A transcript is the whole conversation of one attempt, useful while a
message's fate is being worked out and much less so weeks after it was sent.
Only messages in a finished state (sent, failed, cancelled) lose theirs; the
attempt rows, their outcomes and errors, and every recipient's reply stay, so
the timeline still says what happened.
"""

from __future__ import annotations

import time
from typing import Final

from mailer_gui.outbox.store import FINISHED, OutboxStore

DAY: Final = 86400.0
# Rows emptied per transaction: a runner waiting for the write lock waits for
# one batch, not for the whole clean-up.
BATCH: Final = 500


def prune_transcripts(store: OutboxStore, older_than_days: int, *, now: float | None = None) -> int:
    """Empty the transcripts of attempts that ended more than `older_than_days` ago.

    Only attempts of sent, failed or cancelled messages are touched; an
    attempt still running (no end time) never is. 0 days means "keep them
    forever" and changes nothing. Returns how many transcripts were emptied.
    """
    if isinstance(older_than_days, bool) or not isinstance(older_than_days, int):
        raise TypeError(f"older_than_days must be a whole number, not {older_than_days!r}")
    if older_than_days < 0:
        raise ValueError(f"older_than_days must not be negative, not {older_than_days}")
    if older_than_days == 0:
        return 0
    cutoff = (time.time() if now is None else now) - older_than_days * DAY
    finished = [state.value for state in FINISHED]
    marks = ",".join("?" * len(finished))
    select = (
        "SELECT attempts.id FROM attempts JOIN messages ON messages.id = attempts.message "
        f"WHERE messages.state IN ({marks}) AND attempts.ended_at IS NOT NULL "
        "AND attempts.ended_at < ? AND attempts.transcript != '' LIMIT ?"
    )
    cleared = 0
    while True:
        with store._write() as db:
            ids = [row[0] for row in db.execute(select, (*finished, cutoff, BATCH))]
            if ids:
                db.execute(
                    f"UPDATE attempts SET transcript = '' WHERE id IN ({','.join('?' * len(ids))})",
                    ids,
                )
        cleared += len(ids)
        if len(ids) < BATCH:
            return cleared
