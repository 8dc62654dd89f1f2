"""From a Draft to a row in the outbox: build, freeze into the spool, queue.

The composer (through the bridge) and `mailer-gui send` both queue messages
this way, so a message reads the same whichever front sent it.
"""

from __future__ import annotations

from pathlib import Path

from mailer_gui.message.build import BuiltMessage, build_message
from mailer_gui.message.draft import Draft
from mailer_gui.outbox.store import OutboxStore
from mailer_gui.paths import ensure_private_dir


def recipient_kinds(draft: Draft, built: BuiltMessage) -> dict[str, str]:
    """Each envelope recipient's field (to, cc, bcc); To wins over Cc over Bcc."""
    kinds: dict[str, str] = {}
    for kind, addresses in (("bcc", draft.bcc), ("cc", draft.cc), ("to", draft.to)):
        for address in addresses:
            kinds[address.envelope(smtputf8=built.smtputf8)] = kind
    return kinds


def queue_draft(
    store: OutboxStore,
    draft: Draft,
    *,
    account: str,
    due_at: float | None = None,
    build_dir: Path | None = None,
) -> int:
    """Build ``draft`` and queue it for ``account``; the outbox message number.

    ``due_at`` in the future leaves it scheduled (the undo window, send later).
    Raises DraftError when the draft cannot become a message (nothing is
    queued then, and no file is left behind).
    """
    directory = ensure_private_dir(build_dir or store.spool_dir)
    built = build_message(draft, spool_dir=directory)
    try:
        return store.enqueue(
            built,
            account=account,
            subject=draft.subject,
            due_at=due_at,
            kinds=recipient_kinds(draft, built),
        )
    finally:
        built.path.unlink(missing_ok=True)  # already renamed away when it was queued


__all__ = ["queue_draft", "recipient_kinds"]
