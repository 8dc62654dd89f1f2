"""Transcript retention on a real outbox: old finished attempts lose their transcript only."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from mailer_gui.message.addresses import parse_address
from mailer_gui.message.build import build_message
from mailer_gui.message.draft import Draft
from mailer_gui.outbox import retention
from mailer_gui.outbox.policy import Disposition, Verdict
from mailer_gui.outbox.retention import prune_transcripts
from mailer_gui.outbox.store import OutboxStore, State
from mailer_gui.smtp.replies import Reply
from mailer_gui.smtp.session import MessageResult, RecipientResult, RecipientStatus

DAY = 86400.0
T0 = 1_800_000_000.0
NOW = T0 + 40 * DAY


@pytest.fixture
def store(tmp_path: Path) -> Iterator[OutboxStore]:
    store = OutboxStore(tmp_path / "data" / "outbox.sqlite3", tmp_path / "data" / "spool")
    yield store
    store.close()


def enqueue(store: OutboxStore, tmp_path: Path, subject: str, at: float) -> int:
    draft = Draft(
        sender=parse_address("ann@example.org"),
        to=(parse_address("bob@example.org"),),
        subject=subject,
        body="text",
    )
    built = build_message(draft, spool_dir=tmp_path)
    return store.enqueue(built, account="work", subject=subject, now=at)


def attempt(store: OutboxStore, message: int, code: int, at: float, transcript: str) -> State:
    claimed = store.claim_next("r", now=at, lease=60, message=message)
    assert claimed is not None
    status = RecipientStatus.ACCEPTED if code < 300 else RecipientStatus.DEFERRED
    result = MessageResult(
        (RecipientResult("bob@example.org", status, Reply(code, None, ("words",))),)
    )
    return store.record_result(message, "r", result, transcript, now=at)


def test_old_finished_transcripts_are_emptied_and_the_rest_kept(
    store: OutboxStore, tmp_path: Path
) -> None:
    old_sent = enqueue(store, tmp_path, "old sent", T0)
    assert attempt(store, old_sent, 250, T0, "S: 250 old") is State.SENT

    # Deferred once long ago, then sent recently: only the old attempt is cleared.
    retried = enqueue(store, tmp_path, "retried", T0)
    assert attempt(store, retried, 451, T0, "S: 451 later") is State.DEFERRED
    store.retry_now(retried, now=NOW - DAY)
    assert attempt(store, retried, 250, NOW - DAY, "S: 250 recent") is State.SENT

    # Still deferred (not finished): its old transcript stays.
    waiting = enqueue(store, tmp_path, "waiting", NOW - 39 * DAY)
    assert attempt(store, waiting, 451, NOW - 39 * DAY, "S: 451 greylisted") is State.DEFERRED

    # Cancelled after an old failed attempt: cleared.
    cancelled = enqueue(store, tmp_path, "cancelled", T0)
    assert attempt(store, cancelled, 451, T0, "S: 451 busy") is State.DEFERRED
    assert store.cancel(cancelled, now=T0 + 60) is State.CANCELLED

    # Failed through record_failure long ago: cleared.
    failed = enqueue(store, tmp_path, "failed", T0)
    store.claim_next("r", now=T0, lease=60, message=failed)
    verdict = Verdict(Disposition.FAIL, "refused")
    assert store.record_failure(failed, "r", verdict, "S: 554 no", account="work", now=T0) is (
        State.FAILED
    )

    assert prune_transcripts(store, 30, now=NOW) == 4

    def transcripts(message: int) -> list[str]:
        return [a.transcript for a in store.attempts(message)]

    assert transcripts(old_sent) == [""]
    assert transcripts(retried) == ["", "S: 250 recent"]
    assert transcripts(waiting) == ["S: 451 greylisted"]
    assert transcripts(cancelled) == [""]
    assert transcripts(failed) == [""]
    # The attempts and their outcomes stay.
    assert [a.outcome for a in store.attempts(retried)] == ["deferred", "sent"]
    assert store.attempts(failed)[0].error == "refused"
    assert store.get(old_sent).recipients[0].code == 250

    # Nothing left to clear: a second run counts none.
    assert prune_transcripts(store, 30, now=NOW) == 0


def test_zero_days_keeps_everything(store: OutboxStore, tmp_path: Path) -> None:
    message = enqueue(store, tmp_path, "kept", T0)
    attempt(store, message, 250, T0, "S: 250 kept")
    assert prune_transcripts(store, 0, now=NOW) == 0
    assert store.attempts(message)[0].transcript == "S: 250 kept"


def test_attempts_just_inside_the_window_stay(store: OutboxStore, tmp_path: Path) -> None:
    message = enqueue(store, tmp_path, "recent", NOW - 30 * DAY + 1)
    attempt(store, message, 250, NOW - 30 * DAY + 1, "S: 250 recent")
    assert prune_transcripts(store, 30, now=NOW) == 0
    assert prune_transcripts(store, 29, now=NOW) == 1


def test_many_are_cleared_in_batches(
    store: OutboxStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(retention, "BATCH", 3)
    messages = [enqueue(store, tmp_path, f"m{i}", T0) for i in range(7)]
    for message in messages:
        attempt(store, message, 250, T0, "S: 250 ok")
    assert prune_transcripts(store, 1, now=NOW) == 7
    assert all(store.attempts(m)[0].transcript == "" for m in messages)


@pytest.mark.parametrize(("days", "error"), [(-1, ValueError), (1.5, TypeError), (True, TypeError)])
def test_refuses_nonsense(store: OutboxStore, days: object, error: type[Exception]) -> None:
    with pytest.raises(error):
        prune_transcripts(store, days, now=NOW)  # type: ignore[arg-type]
