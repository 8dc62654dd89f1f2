"""Results written in batches: when they are written, and what a crash leaves.

A worker keeps the clean results of the messages it sent and writes them
together (``OutboxStore.record_and_claim``), while the server takes the next
message. These tests pin down the store's batch write, when kept results are
written (after RECORD_DELAY, before a large transfer), and the crash contract
for results still kept: a runner process SIGKILLed then leaves every message
whose final "." went out `uncertain` and every other one `queued`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from mailer_gui.accounts.model import Account
from mailer_gui.accounts.store import AccountStore
from mailer_gui.message.addresses import parse_address
from mailer_gui.message.build import build_message
from mailer_gui.message.draft import Draft
from mailer_gui.outbox import runner as runner_module
from mailer_gui.outbox import store as store_module
from mailer_gui.outbox.runner import Runner
from mailer_gui.outbox.store import OutboxStore, State
from mailer_gui.paths import resolve_paths
from mailer_gui.smtp.replies import Reply
from mailer_gui.smtp.session import MessageResult, RecipientResult, RecipientStatus
from mailer_gui.smtp.settings import AuthMethod, Security
from tests.outbox.old_outbox import outbox_at_version

T0 = 1_800_000_000.0
ACCOUNT = "work"


def queue(store: OutboxStore, folder: Path, number: int, *, body: str = "Hello.") -> int:
    draft = Draft(
        sender=parse_address("Ann <ann@example.org>"),
        to=(parse_address(f"rcpt{number}@example.org"),),
        subject=f"message {number}",
        body=body,
        body_format="plain",
    )
    built = build_message(draft, spool_dir=folder)
    return store.enqueue(built, account=ACCOUNT, subject=draft.subject)


def accepted(address: str) -> MessageResult:
    reply = Reply(250, "2.0.0", ("OK",))
    return MessageResult((RecipientResult(address, RecipientStatus.ACCEPTED, reply),), reply)


def deferred(address: str) -> MessageResult:
    reply = Reply(451, "4.3.0", ("try later",))
    return MessageResult((RecipientResult(address, RecipientStatus.DEFERRED, reply),), reply)


def account_for(port: int, name: str = ACCOUNT) -> Account:
    """A relay account with no TLS and no login, for a server on 127.0.0.1:``port``."""
    return Account(
        name=name,
        email="ann@example.org",
        host="127.0.0.1",
        port=port,
        security=Security.NONE,
        auth=AuthMethod.NONE,
        secret_source="none",
    )


def state_in(database: Path, message: int) -> str:
    """A message's state read over a connection of its own (from a server thread)."""
    with contextlib.closing(sqlite3.connect(database)) as db:
        return str(db.execute("SELECT state FROM messages WHERE id = ?", (message,)).fetchone()[0])


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


# --------------------------------------------------------------- the store


@pytest.fixture
def store(tmp_path: Path) -> OutboxStore:
    return OutboxStore(tmp_path / "data" / "outbox.sqlite3", tmp_path / "data" / "spool")


def test_record_and_claim_writes_results_and_claims_together(
    store: OutboxStore, tmp_path: Path
) -> None:
    first, second, third, fourth = (queue(store, tmp_path, n) for n in range(4))
    claimed = store.claim("a", now=T0, lease=60, account=ACCOUNT, limit=2)
    assert [row.id for row in claimed] == [first, second]
    states, rows = store.record_and_claim(
        "a",
        [
            (claimed[0], accepted("rcpt0@example.org"), "S: 250 OK"),
            (claimed[1], deferred("rcpt1@example.org"), "S: 451 try later"),
        ],
        now=T0 + 1,
        lease=60,
        account=ACCOUNT,
        limit=5,
    )
    assert states == [State.SENT, State.DEFERRED]
    assert [row.id for row in rows] == [third, fourth]
    assert {store.get(m).state for m in (third, fourth)} == {State.SENDING}
    sent = store.get(first)
    assert sent.recipients[0].status == "accepted" and sent.recipients[0].code == 250
    assert [(a.outcome, a.transcript) for a in store.attempts(first)] == [("sent", "S: 250 OK")]
    later = store.get(second)
    assert later.due_at == pytest.approx(T0 + 1 + 60) and "try later" in (later.last_error or "")
    # Each claimed message has an attempt of its own, still open.
    assert [a.ended_at for a in store.attempts(third) + store.attempts(fourth)] == [None, None]


def test_a_batch_leaves_alone_a_message_another_runner_holds(
    store: OutboxStore, tmp_path: Path
) -> None:
    mine = queue(store, tmp_path, 0)
    theirs = queue(store, tmp_path, 1)
    (mine_row,) = store.claim("a", now=T0, lease=60, message=mine)
    (theirs_row,) = store.claim("b", now=T0, lease=60, message=theirs)
    states, rows = store.record_and_claim(
        "a",
        [
            (mine_row, accepted("rcpt0@example.org"), ""),
            (theirs_row, accepted("rcpt1@example.org"), ""),
        ],
        now=T0 + 1,
    )
    assert (states, rows) == ([State.SENT, None], [])
    untouched = store.get(theirs)
    assert untouched.state is State.SENDING and untouched.recipients[0].status == "pending"
    assert store.mark_data_end(theirs, "b") is True  # still "b"'s to finish


def test_the_unused_account_index_is_dropped_and_messages_kept(tmp_path: Path) -> None:
    database = tmp_path / "outbox.sqlite3"
    with contextlib.closing(outbox_at_version(database, 2)) as db:
        db.execute(
            "INSERT INTO messages (id, account, state, created_at, due_at, message_id, size, "
            "spool_file, envelope_from, updated_at) VALUES "
            "(7, 'work', 'queued', 1, 1, '<m@example.org>', 10, 'm.eml', 'ann@example.org', 1)"
        )
        db.execute("INSERT INTO recipients (message, position, address) VALUES (7, 0, 'b@x.org')")
    store = OutboxStore(database, tmp_path / "spool")
    indexes = {r[0] for r in store._read("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert "messages_account" not in indexes and "messages_waiting" in indexes
    assert store._read("PRAGMA user_version")[0][0] == len(store_module._SCHEMA)
    row = store.get(7)
    assert (row.state, row.pending) == (State.QUEUED, ("b@x.org",))
    assert [r.id for r in store.claim("a", now=2, lease=60, account="work")] == [7]


# -------------------------------------------------------------- the runner


def test_a_sent_message_is_recorded_while_later_ones_go_out(
    aiosmtpd_factory, tmp_path: Path
) -> None:
    """A result does not wait for the end of the run: after RECORD_DELAY it is written
    before the next message starts, so the outbox shows it sent meanwhile."""
    database = tmp_path / "outbox.sqlite3"
    store = OutboxStore(database, tmp_path / "spool")
    # More than a claim's worth, so that no claim comes due (and writes) meanwhile.
    ids = [queue(store, tmp_path, n) for n in range(runner_module.CLAIM_BATCH + 2)]
    seen: dict[int, str] = {}

    def slow_then_look(message) -> str | None:
        number = len(seen)
        if number < 2:  # the server takes longer than RECORD_DELAY to answer
            time.sleep(runner_module.RECORD_DELAY + 0.1)
        seen[number] = state_in(database, ids[0]) if number == 2 else ""
        return None

    server = aiosmtpd_factory(on_data=slow_then_look)
    Runner(store, lambda name: account_for(server.port), credentials=lambda a: None).deliver_now()
    assert seen[2] == "sent"  # when the third message arrived, the first was written
    assert {store.get(m).state for m in ids} == {State.SENT}


def test_each_kept_transcript_is_that_messages_own_session_log(
    smtp_sink_factory, tmp_path: Path
) -> None:
    """Results are kept, their transcripts rendered while later messages go out
    and written in batches: what is stored for each message is exactly the
    lines its session logged, in order, and none of another message's."""
    from mailer_gui.outbox.runner import TranscriptLine

    store = OutboxStore(tmp_path / "outbox.sqlite3", tmp_path / "spool")
    ids = [queue(store, tmp_path, n) for n in range(runner_module.RECORD_BATCH + 5)]
    logged: dict[int, list[str]] = {}

    def on_event(event) -> None:
        if isinstance(event, TranscriptLine):
            logged.setdefault(event.message, []).append(event.record.render())

    sink = smtp_sink_factory()  # PIPELINING: commands go ahead, starts are read ahead
    Runner(
        store, lambda name: account_for(sink.port), credentials=lambda a: None, on_event=on_event
    ).deliver_now()
    assert {store.get(m).state for m in ids} == {State.SENT}
    for number, message in enumerate(ids):
        (attempt,) = store.attempts(message)
        stored = attempt.transcript.splitlines()
        assert stored == logged[message][: len(stored)]
        # After its result was kept, only the connection's goodbye is logged.
        assert all(
            line.startswith(("C: QUIT", "S: 221")) for line in logged[message][len(stored) :]
        )
        assert f"C: RCPT TO:<rcpt{number}@example.org>" in logged[message]
        assert sum(line.startswith("C: RCPT TO:") for line in logged[message]) == 1


def test_results_are_written_before_a_large_transfer(aiosmtpd_factory, tmp_path: Path) -> None:
    database = tmp_path / "outbox.sqlite3"
    store = OutboxStore(database, tmp_path / "spool")
    small = queue(store, tmp_path, 0)
    line = "the quick brown fox jumps over the lazy dog " * 2
    large = queue(store, tmp_path, 1, body="\n".join([line] * 4000))
    assert store.get(large).size > runner_module.LARGE_MESSAGE
    seen: list[str] = []

    def look(message) -> str | None:
        seen.append(state_in(database, small))
        return None

    server = aiosmtpd_factory(on_data=look)
    Runner(store, lambda name: account_for(server.port), credentials=lambda a: None).deliver_now()
    assert seen == ["sending", "sent"]  # written before the large one went out
    assert {store.get(small).state, store.get(large).state} == {State.SENT}


# The runner process: argv = home, lease. Results are only written when the
# run ends (no batch size, delay or claim ahead can come due), so that a kill
# in the middle finds every result of the run still kept in memory.
KEEPING_RUNNER = """\
import sys
from mailer_gui.accounts.store import AccountStore
from mailer_gui.outbox import runner as runner_module
from mailer_gui.outbox.store import OutboxStore
from mailer_gui.paths import resolve_paths

runner_module.RECORD_BATCH = 10**6
runner_module.RECORD_DELAY = 10.0**6
runner_module.RECORD_AGE = 10.0**6
runner_module.CLAIM_AHEAD = 0
paths = resolve_paths(sys.argv[1])
store = OutboxStore(paths.database, paths.spool_dir)
runner = runner_module.Runner(
    store, AccountStore(paths.accounts_file).get, credentials=lambda a: None,
    lease=float(sys.argv[2]),
)
runner.deliver_now()
"""


def test_kept_results_are_uncertain_after_a_kill_and_nothing_else_is(
    aiosmtpd_factory, tmp_path: Path
) -> None:
    lease = 0.5
    third_arrived = threading.Event()
    release = threading.Event()
    arrived: list[bytes] = []

    def hold_the_third(message) -> str | None:
        arrived.append(message.content)
        if len(arrived) == 3:
            third_arrived.set()
            release.wait(20)  # the runner waits for this reply when it is killed
        return None

    server = aiosmtpd_factory(on_data=hold_the_third)
    home = tmp_path / "home"
    paths = resolve_paths(home)
    AccountStore(paths.accounts_file).add(account_for(server.port))
    store = OutboxStore(paths.database, paths.spool_dir)
    ids = [queue(store, tmp_path, n) for n in range(5)]
    process = subprocess.Popen(
        [sys.executable, "-c", KEEPING_RUNNER, str(home), str(lease)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert third_arrived.wait(30), "the third message never reached the server"
        # The first two were answered, their results kept in memory; the third's
        # "." went out and its reply is held back. Now the runner dies.
        os.kill(process.pid, signal.SIGKILL)
        process.communicate(timeout=10)
    finally:
        release.set()
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
            process.communicate(timeout=10)
    assert process.returncode == -signal.SIGKILL
    assert {store.get(m).state for m in ids} == {State.SENDING}  # nothing was written
    recovered: dict[int, State] = {}

    def recover() -> bool:
        recovered.update(store.recover())
        return len(recovered) == len(ids)

    wait_for(recover, 10 * lease + 5, "the dead runner's leases to run out")
    # Whatever may have arrived needs the person's answer; the rest goes again.
    assert recovered == {
        ids[0]: State.UNCERTAIN,
        ids[1]: State.UNCERTAIN,
        ids[2]: State.UNCERTAIN,
        ids[3]: State.QUEUED,
        ids[4]: State.QUEUED,
    }
    assert len(arrived) == 3
