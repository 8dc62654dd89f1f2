"""End-of-data marks in a file per runner, and how recovery and the runner use them.

`EndMarks` on a real folder; `OutboxStore.recover` reading other runners' files;
the runner's fallback to the database mark when its lease may be running out;
and what a failed write of results leaves. Sends go to aiosmtpd on
loopback, with a fake clock for the runner.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import sys
import time
from pathlib import Path

import pytest

from mailer_gui.message.addresses import parse_address
from mailer_gui.message.build import build_message
from mailer_gui.message.draft import Draft
from mailer_gui.outbox import marks as marks_module
from mailer_gui.outbox import runner as runner_module
from mailer_gui.outbox.marks import (
    EndMarks,
    RunnerLock,
    dead_runners,
    read_marks,
    read_marks_detail,
    remove_idle,
)
from mailer_gui.outbox.runner import Event, LeaseLost, Progress, Runner
from mailer_gui.outbox.store import OutboxError, OutboxStore, State
from tests.outbox.test_ledger import account_for, deferred
from tests.smtp.test_session_ahead import RecordingProxy

T0 = 1_800_000_000.0
ACCOUNT = "work"
LEASE = 60.0


def lines(path: Path) -> list[str]:
    return path.read_text("ascii").splitlines()


# --------------------------------------------------------------- EndMarks


def test_a_mark_is_a_line_every_reader_sees(tmp_path: Path) -> None:
    folder = tmp_path / "outbox.sqlite3.marks"
    marks = EndMarks(folder, "runner-a")
    assert read_marks(folder) == set()  # no folder yet: nothing marked
    marks.add(7, 31)
    assert marks.path == folder / "runner-a.log"
    assert marks.path.read_bytes() == b"7 31\n"
    assert read_marks(folder) == {(7, 31)}
    assert oct(folder.stat().st_mode & 0o777) == "0o700"
    assert oct(marks.path.stat().st_mode & 0o777) == "0o600"
    # Every runner's file is read.
    EndMarks(folder, "runner-b").add(8, 32)
    assert read_marks(folder) == {(7, 31), (8, 32)}


def test_settled_empties_the_file_only_when_nothing_is_outstanding(tmp_path: Path) -> None:
    marks = EndMarks(tmp_path, "r")
    marks.add(1, 10)
    marks.add(2, 20)
    marks.settled([1])
    # Still one outstanding, and the file is small: left as it is.
    assert lines(marks.path) == ["1 10", "2 20"]
    marks.settled([2])
    assert marks.path.exists() and marks.path.read_bytes() == b""
    assert read_marks(tmp_path) == set()
    marks.add(3, 30)  # appends from the start of the emptied file
    assert lines(marks.path) == ["3 30"]


def test_close_removes_the_file_only_when_nothing_is_outstanding(tmp_path: Path) -> None:
    done = EndMarks(tmp_path, "done")
    done.add(1, 10)
    done.settled([1])
    done.close()
    assert not done.path.exists()

    busy = EndMarks(tmp_path, "busy")
    busy.add(2, 20)
    busy.add(3, 30)
    busy.settled([2])
    busy.close()
    assert busy.path.exists()
    assert (3, 30) in read_marks(tmp_path)


def test_an_unfinished_last_line_is_ignored(tmp_path: Path) -> None:
    (tmp_path / "crashed.log").write_bytes(b"1 10\n2 20\n3 3")  # killed mid-write
    (tmp_path / "other.log").write_bytes(b"4 40\ngarbage\n5 x\n6 60\n")
    (tmp_path / "not-a-marks-file.txt").write_bytes(b"9 90\n")
    assert read_marks(tmp_path) == {(1, 10), (2, 20), (4, 40), (6, 60)}


def test_a_large_file_is_compacted_to_the_outstanding_marks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(marks_module, "COMPACT_AT", 60)
    marks = EndMarks(tmp_path, "r")
    for message in range(1, 11):  # "1 101\n" ... "10 110\n": 61 bytes
        marks.add(message, 100 + message)
    assert len(lines(marks.path)) == 10
    marks.settled([1, 2])  # past 60 bytes: rewritten with the 8 outstanding marks
    assert lines(marks.path) == [f"{m} {100 + m}" for m in range(3, 11)]
    marks.settled(range(3, 9))  # 49 bytes in the file, under the limit: left as it is
    assert len(lines(marks.path)) == 8
    marks.add(11, 111)
    marks.add(12, 112)  # 63 bytes: appended to the rewritten file
    assert lines(marks.path)[-2:] == ["11 111", "12 112"]
    marks.settled([11])
    assert lines(marks.path) == ["9 109", "10 110", "12 112"]
    assert read_marks(tmp_path) == {(9, 109), (10, 110), (12, 112)}
    assert [p.name for p in tmp_path.iterdir()] == ["r.log"]  # no temporary file left


@pytest.mark.parametrize("how", ["remove_idle", "unlink"])
def test_a_removed_file_is_written_again_with_every_outstanding_mark(
    tmp_path: Path, how: str
) -> None:
    marks = EndMarks(tmp_path, "r")
    marks.add(1, 10)
    marks.add(2, 20)
    marks.settled([1])
    if how == "remove_idle":
        remove_idle(tmp_path, keep=["someone-else", None])
    else:
        marks.path.unlink()
    assert read_marks(tmp_path) == set()
    marks.add(3, 30)
    assert read_marks(tmp_path) == {(2, 20), (3, 30)}
    marks.add(4, 40)  # and goes on appending to the new file
    assert read_marks(tmp_path) == {(2, 20), (3, 30), (4, 40)}


def test_remove_idle_keeps_the_named_runners(tmp_path: Path) -> None:
    for owner in ("a", "b", "c"):
        EndMarks(tmp_path, owner).add(1, 1)
    (tmp_path / "notes.txt").write_text("not a marks file")
    remove_idle(tmp_path, keep=["a", None, "c"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.log", "c.log", "notes.txt"]
    remove_idle(tmp_path / "missing", keep=[])  # no folder: nothing to do


posix_locks = pytest.mark.skipif(sys.platform == "win32", reason="flock: leases alone on Windows")


@posix_locks
def test_a_runner_lock_says_alive_until_it_is_let_go(tmp_path: Path) -> None:
    lock = RunnerLock(tmp_path / "marks", "one")
    assert dead_runners(tmp_path / "marks", ["one"]) == set()  # no file: not known dead
    lock.acquire()
    lock.acquire()  # once is enough
    assert lock.held and lock.path.exists()
    # Another open of the file (recovery, here in the same process) cannot take it.
    assert dead_runners(tmp_path / "marks", ["one", "never-seen"]) == set()
    assert lock.path.stat().st_mode & 0o777 == 0o600
    lock.release()
    assert not lock.held and not lock.path.exists()  # let go of, and removed
    # A process killed leaves its file behind, free: dead.
    killed = RunnerLock(tmp_path / "marks", "killed")
    killed.acquire()
    assert killed._fd is not None
    os.close(killed._fd)  # as the system closes it when the process is killed
    assert dead_runners(tmp_path / "marks", ["one", "killed", "never-seen"]) == {"killed"}


@posix_locks
def test_a_runner_that_could_not_give_its_messages_back_is_known_gone(tmp_path: Path) -> None:
    """Let go of while it still holds messages (the outbox could not be
    written): its file stays, free, as a killed runner's, so that the next
    recovery takes them back at once rather than after their leases."""
    lock = RunnerLock(tmp_path / "marks", "full")
    lock.acquire()
    lock.release(holding=True)
    assert not lock.held and lock.path.exists()
    assert dead_runners(tmp_path / "marks", ["full"]) == {"full"}


@posix_locks
def test_a_second_runner_of_the_same_name_goes_on_without_the_lock(tmp_path: Path) -> None:
    first, second = RunnerLock(tmp_path, "same"), RunnerLock(tmp_path, "same")
    first.acquire()
    second.acquire()  # held by the first: no error, no lock
    assert first.held and not second.held
    first.release()


@posix_locks
def test_remove_idle_removes_the_lock_files_of_runners_gone_only(tmp_path: Path) -> None:
    alive, gone, kept = (RunnerLock(tmp_path, owner) for owner in ("alive", "gone", "kept"))
    for lock in (alive, gone, kept):
        lock.acquire()
        assert lock._fd is not None
    for lock in (gone, kept):  # killed: the system lets go, the file stays
        os.close(lock._fd)  # type: ignore[arg-type]
        lock._fd = None
    remove_idle(tmp_path, keep=["kept"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["alive.alive", "kept.alive"]
    alive.release()


@posix_locks
def test_a_lock_file_from_another_machine_is_never_taken_for_a_runner_gone(
    tmp_path: Path,
) -> None:
    """A folder shared between machines (NFS, a virtual machine's shared
    folder) may not carry locks across: a free lock file written on another
    machine says nothing, and its runner's messages wait for their leases."""
    lock = RunnerLock(tmp_path, "local")
    lock.acquire()
    assert lock.path.read_bytes() == marks_module._this_machine()
    assert not (tmp_path / "local.alive-new").exists()  # renamed once locked
    (tmp_path / "remote.alive").write_bytes(b"another-host 1234\n")
    assert dead_runners(tmp_path, ["remote"]) == set()
    remove_idle(tmp_path, keep=[])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["local.alive", "remote.alive"]
    lock.release()


@posix_locks
def test_a_lock_that_cannot_be_had_leaves_no_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No locks on this file system: the runner goes on without, and leaves no
    free lock file that would make it look gone while it sends."""

    def no_locks(fd: int, operation: int) -> None:
        raise OSError(37, "No locks available")

    monkeypatch.setattr(marks_module.fcntl, "flock", no_locks)
    lock = RunnerLock(tmp_path, "nfs")
    lock.acquire()
    assert not lock.held
    assert list(tmp_path.iterdir()) == []


@posix_locks
def test_remove_idle_removes_a_lock_file_left_half_made(tmp_path: Path) -> None:
    (tmp_path / "crashed.alive-new").write_bytes(marks_module._this_machine())
    remove_idle(tmp_path, keep=[])
    assert list(tmp_path.iterdir()) == []


# -------------------------------------------------------------- the store


@pytest.fixture
def store(tmp_path: Path) -> OutboxStore:
    return OutboxStore(tmp_path / "data" / "outbox.sqlite3", tmp_path / "data" / "spool")


def enqueue(store: OutboxStore, folder: Path, number: int, *, now: float = T0) -> int:
    draft = Draft(
        sender=parse_address("Ann <ann@example.org>"),
        to=(parse_address(f"rcpt{number}@example.org"),),
        subject=f"message {number}",
        body=f"Message {number}.",
        body_format="plain",
    )
    built = build_message(draft, spool_dir=folder)
    return store.enqueue(built, account=ACCOUNT, subject=draft.subject, now=now)


def test_a_cleared_mark_no_longer_counts_until_the_next_one(tmp_path: Path) -> None:
    """One transaction of several was answered: its mark is cleared; the next
    transaction's "." marks the message again. The last line tells."""
    marks = EndMarks(tmp_path, "runner")
    marks.add(1, 10)
    marks.add(2, 20)
    marks.clear(1, 10)
    assert read_marks(tmp_path) == {(2, 20)}
    marks.add(1, 10)
    assert read_marks(tmp_path) == {(1, 10), (2, 20)}
    marks.clear(2, 20)
    marks.clear(1, 11)  # another attempt's clearing leaves this one's mark alone
    assert read_marks(tmp_path) == {(1, 10)}
    # A "." that goes to some of the recipients still to go names them.
    marks.add(3, 30, [1, 2])
    assert read_marks_detail(tmp_path) == {(1, 10): None, (3, 30): frozenset({1, 2})}
    marks._rewrite()  # as when the file grows: what is outstanding is kept whole
    assert read_marks_detail(tmp_path) == {(1, 10): None, (3, 30): frozenset({1, 2})}
    marks.close()


def test_recover_makes_a_marked_message_uncertain_and_an_unmarked_one_queued(
    store: OutboxStore, tmp_path: Path
) -> None:
    marked, unmarked = enqueue(store, tmp_path, 0), enqueue(store, tmp_path, 1)
    rows = {row.id: row for row in store.claim("dead", now=T0, lease=10, limit=2)}
    assert rows[marked].attempt is not None
    assert rows[marked].attempt != rows[unmarked].attempt
    EndMarks(store.marks_dir, "dead").add(marked, rows[marked].attempt)
    assert store.recover(now=T0 + 5, keep_owner="me") == []  # leases still running
    assert dict(store.recover(now=T0 + 11, keep_owner="me")) == {
        marked: State.UNCERTAIN,
        unmarked: State.QUEUED,
    }
    assert store.get(marked).data_end_at is None  # the file alone decided
    assert "may have been delivered" in (store.get(marked).last_error or "")
    assert store.claim_next("me", now=T0 + 999, lease=10) is not None  # the unmarked one
    assert store.claim_next("me", now=T0 + 999, lease=10) is None  # never the uncertain one


def test_a_mark_of_an_earlier_attempt_does_not_make_a_later_one_uncertain(
    store: OutboxStore, tmp_path: Path
) -> None:
    message = enqueue(store, tmp_path, 0)
    first = store.claim_next("one", now=T0, lease=10)
    assert first is not None and first.attempt is not None
    # "one" sent the "." and got a 451; its mark is still in its file.
    EndMarks(store.marks_dir, "one").add(message, first.attempt)
    store.record_result(message, "one", deferred("rcpt0@example.org"), now=T0 + 1)
    second = store.claim_next("two", now=T0 + 100, lease=10)
    assert second is not None and second.attempt is not None
    assert second.attempt != first.attempt
    assert store.get(message).attempt == second.attempt
    assert (message, first.attempt) in read_marks(store.marks_dir)
    # "two" died before its own "."
    assert dict(store.recover(now=T0 + 111, keep_owner="me")) == {message: State.QUEUED}


def test_recover_removes_only_the_files_of_runners_holding_nothing(
    store: OutboxStore, tmp_path: Path
) -> None:
    dead_message = enqueue(store, tmp_path, 0)
    alive_message = enqueue(store, tmp_path, 1)
    dead_row = store.claim_next("dead", now=T0, lease=10)
    alive_row = store.claim_next("alive", now=T0 + 50, lease=100)
    assert dead_row is not None and alive_row is not None
    for owner, row in (("dead", dead_row), ("alive", alive_row), ("finished", dead_row)):
        EndMarks(store.marks_dir, owner).add(row.id, row.attempt or 0)
    EndMarks(store.marks_dir, "me").add(999, 999)  # the caller's own file
    assert dict(store.recover(now=T0 + 60, keep_owner="me")) == {dead_message: State.UNCERTAIN}
    # The dead runner's file stays for now: had this commit failed (a full
    # disk), its mark would be all that tells its message may have arrived.
    remaining = sorted(p.name for p in store.marks_dir.iterdir())
    assert remaining == ["alive.log", "dead.log", "me.log"]
    assert store.recover(now=T0 + 61, keep_owner="me") == []
    remaining = sorted(p.name for p in store.marks_dir.iterdir())
    assert remaining == ["alive.log", "me.log"]  # the next recovery tidies it
    assert store.get(alive_message).state is State.SENDING
    assert read_marks(store.marks_dir) == {(alive_message, alive_row.attempt), (999, 999)}


@posix_locks
def test_recover_takes_back_at_once_what_a_runner_gone_held(
    store: OutboxStore, tmp_path: Path
) -> None:
    """A runner whose lock is free (its process ended) holds nothing any more:
    its messages are recovered though their leases run for long yet. One
    whose lock is held is left alone until its lease runs out."""
    gone_message, alive_message = enqueue(store, tmp_path, 0), enqueue(store, tmp_path, 1)
    gone, alive = RunnerLock(store.marks_dir, "gone"), RunnerLock(store.marks_dir, "alive")
    gone.acquire()
    alive.acquire()
    gone_row = store.claim_next("gone", now=T0, lease=3600)
    alive_row = store.claim_next("alive", now=T0, lease=3600)
    assert gone_row is not None and alive_row is not None
    EndMarks(store.marks_dir, "gone").add(gone_message, gone_row.attempt or 0)
    assert store.recover(now=T0 + 1, keep_owner="me") == []  # both alive
    assert gone._fd is not None
    os.close(gone._fd)  # as the system does when a process is killed
    assert store.recover(now=T0 + 2, keep_owner="me") == [(gone_message, State.UNCERTAIN)]
    assert store.get(alive_message).state is State.SENDING
    assert store.recover(now=T0 + 3, keep_owner="me") == []  # tidies what the first kept
    assert sorted(p.name for p in store.marks_dir.iterdir()) == ["alive.alive"]
    alive.release()


def test_renew_leases_returns_only_what_the_owner_still_holds(
    store: OutboxStore, tmp_path: Path
) -> None:
    kept, taken, finished = (enqueue(store, tmp_path, n) for n in range(3))
    waiting = enqueue(store, tmp_path, 3, now=T0 + 1000)  # not due: never claimed
    assert len(store.claim("a", now=T0, lease=10, limit=3)) == 3
    store.record_result(finished, "a", deferred("rcpt2@example.org"), now=T0 + 1)
    # "a" stalls; "b" recovers and takes one of its messages.
    store.recover(now=T0 + 11, keep_owner="b")
    assert store.claim_next("b", now=T0 + 11, lease=10, message=taken) is not None
    assert store.claim_next("a", now=T0 + 11, lease=10, message=kept) is not None
    renewed = store.renew_leases("a", [kept, taken, finished, waiting, 12345], T0 + 500)
    assert renewed == {kept}
    with contextlib.closing(sqlite3.connect(store.database)) as db:
        leases = dict(db.execute("SELECT id, lease_until FROM messages WHERE state = 'sending'"))
    assert leases == {kept: T0 + 500, taken: T0 + 11 + 10}  # "b"'s lease untouched
    assert store.renew_leases("a", [], T0 + 600) == set()


# -------------------------------------------------------------- the runner


class Clock:
    """The runner's clock; the test (or a server hook) moves it."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def runner_for(store: OutboxStore, port: int, clock: Clock, events=None, **kwargs) -> Runner:
    account = account_for(port)
    return Runner(
        store,
        lambda name: account,
        credentials=lambda a: None,
        on_event=(events.append if events is not None else None),
        lease=LEASE,
        clock=clock,
        owner="me",
        **kwargs,
    )


def data_end_at(database: Path, message: int) -> float | None:
    """Read over a connection of its own (from a server thread)."""
    with contextlib.closing(sqlite3.connect(database)) as db:
        row = db.execute("SELECT data_end_at FROM messages WHERE id = ?", (message,)).fetchone()
        return None if row[0] is None else float(row[0])


@pytest.mark.parametrize(
    ("advance", "in_database"),
    [
        (LEASE * 2 / 3 - 5, False),  # 25 s of the lease left: the file line is enough
        (LEASE * 2 / 3 + 5, True),  # 15 s left, under a third of it: the database decides
    ],
)
def test_the_database_mark_is_used_when_the_lease_may_run_out(
    aiosmtpd_factory, store: OutboxStore, tmp_path: Path, advance: float, in_database: bool
) -> None:
    clock = Clock()
    message = enqueue(store, tmp_path, 0, now=clock.now)
    claimed_at = clock.now
    seen: dict[str, object] = {}

    def on_rcpt(address: str, options: list[str]) -> None:
        clock.now = claimed_at + advance  # the send took this long, up to the "."

    def on_data(received) -> None:  # the "." has arrived; no reply yet
        seen["data_end_at"] = data_end_at(store.database, message)
        seen["marks"] = read_marks(store.marks_dir)

    server = aiosmtpd_factory(on_rcpt=on_rcpt, on_data=on_data)
    runner = runner_for(store, server.port, clock)
    runner.deliver_now()
    row = store.get(message)
    assert row.state is State.SENT
    assert len(server.wait_for_messages(1)) == 1
    # The line is written either way (it costs one write); the database is
    # written only when the lease might have run out.
    assert (message, row.attempt) in seen["marks"]  # type: ignore[operator]
    if in_database:
        assert seen["data_end_at"] == pytest.approx(claimed_at + advance)
    else:
        assert seen["data_end_at"] is None
    # Settled once its result was written; nothing outstanding: the file is gone.
    assert read_marks(store.marks_dir) == set()


def test_a_message_another_runner_took_over_gets_no_final_dot(
    aiosmtpd_factory, store: OutboxStore, tmp_path: Path
) -> None:
    clock = Clock()
    message = enqueue(store, tmp_path, 0, now=clock.now)
    other = OutboxStore(store.database, store.spool_dir)

    def take_over(address: str, options: list[str]) -> None:
        # "me" stalls past its lease (a suspend); another runner recovers the
        # message and claims it, all before "me" gets this RCPT reply.
        clock.now += LEASE + 1
        assert dict(other.recover(now=clock.now, keep_owner="other")) == {message: State.QUEUED}
        assert other.claim_next("other", now=clock.now, lease=LEASE) is not None
        other.close()

    server = aiosmtpd_factory(on_rcpt=take_over)
    proxy = RecordingProxy(server.port)
    try:
        events: list[Event] = []
        runner = runner_for(store, proxy.port, clock, events)
        runner.deliver_now()
        proxy.wait_until_server_closed()
    finally:
        proxy.stop()
    assert isinstance(runner.errors[message], LeaseLost)
    # The body and its "." never left: the server has nothing, and the
    # message is the other runner's to send, without a data-end mark.
    assert server.messages == []
    sent = proxy.client_bytes()
    assert sent.endswith(b"DATA\r\n")
    assert b"Message 0." not in sent
    row = store.get(message)
    assert row.state is State.SENDING and row.data_end_at is None
    assert store.mark_data_end(message, "other") is True
    totals = [e for e in events if isinstance(e, Progress) and e.message == message]
    assert all(e.sent < e.total for e in totals)


def fail_result_writes(
    monkeypatch: pytest.MonkeyPatch, *, times: int | None = None
) -> list[list[int]]:
    """Make the writes that carry results fail (``times`` of them, else all);
    the ids each failed write carried come back, as they fail."""
    record_and_claim = OutboxStore.record_and_claim
    failed: list[list[int]] = []

    def failing(self, owner, results, **kwargs):
        results = list(results)
        if results and (times is None or len(failed) < times):
            failed.append([message for message, _, _ in results])
            raise OutboxError("The outbox database cannot be written (disk I/O error).")
        return record_and_claim(self, owner, results, **kwargs)

    monkeypatch.setattr(OutboxStore, "record_and_claim", failing)
    return failed


def test_a_failed_write_of_results_is_tried_again_and_loses_nothing(
    aiosmtpd_factory, store: OutboxStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first write of results fails once (the database busy or briefly unwritable).

    It fails in the middle of a send (just after a final "." left), so the
    runner keeps those results and writes them with the next batch: the send
    under way reads its reply, every message ends `sent`, each arrived once,
    and no mark is left behind.
    """
    clock = Clock()
    messages = [enqueue(store, tmp_path, n, now=clock.now) for n in range(3)]
    failed = fail_result_writes(monkeypatch, times=1)
    server = aiosmtpd_factory()
    runner = runner_for(store, server.port, clock)
    runner.deliver_now()
    assert failed and failed[0]  # a write carrying results did fail
    received = server.wait_for_messages(len(messages))
    assert sorted(m.rcpt_tos[0] for m in received) == [f"rcpt{n}@example.org" for n in range(3)]
    assert {store.get(m).state for m in messages} == {State.SENT}
    assert read_marks(store.marks_dir) == set()


@pytest.mark.parametrize("give_back", ["works", "fails too"])
def test_results_that_cannot_be_written_become_uncertain_never_queued(
    aiosmtpd_factory, store: OutboxStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    give_back: str,
) -> None:  # fmt: skip
    """Every write of results fails (the database unwritable for a while).

    The error comes out of `deliver_now`. The runner, ending, gives back what
    it still holds: each message the server took becomes `uncertain`, never
    `queued`. When that write fails as well, each stays `sending` with its
    end-of-data mark kept in the runner's file; once the leases run out,
    recovery (by another runner, or by the same one, which no longer holds
    them) makes them `uncertain`. Either way the person decides, and nothing
    is sent twice silently.
    """
    clock = Clock()
    messages = [enqueue(store, tmp_path, n, now=clock.now) for n in range(2)]
    record_and_claim, given_back = OutboxStore.record_and_claim, OutboxStore.give_back
    fail_result_writes(monkeypatch)
    if give_back == "fails too":

        def failing(self: OutboxStore, owner: str, **kwargs: object) -> None:
            raise OutboxError("The outbox database cannot be written (disk I/O error).")

        monkeypatch.setattr(OutboxStore, "give_back", failing)
    server = aiosmtpd_factory()
    runner = runner_for(store, server.port, clock)
    with pytest.raises(OutboxError, match="disk I/O error"):
        runner.deliver_now()
    received = server.wait_for_messages(len(messages))
    assert sorted(m.rcpt_tos[0] for m in received) == ["rcpt0@example.org", "rcpt1@example.org"]
    if give_back == "works":
        assert {store.get(m).state for m in messages} == {State.UNCERTAIN}
    else:
        assert {store.get(m).state for m in messages} == {State.SENDING}
        marked = read_marks(store.marks_dir)
        assert {(m, store.get(m).attempt) for m in messages} <= marked

        # The same runner, once the leases ran out: it no longer holds them.
        monkeypatch.setattr(OutboxStore, "record_and_claim", record_and_claim)
        monkeypatch.setattr(OutboxStore, "give_back", given_back)
        clock.now += LEASE + 1
        runner.deliver_now()
        assert {store.get(m).state for m in messages} == {State.UNCERTAIN}
    assert store.claim_next("other", now=clock.now + 1, lease=LEASE) is None
    assert len(server.wait_for_messages(len(messages))) == len(messages)  # none sent again


# ------------------------------------------------------- review findings


def test_lines_with_windows_line_ends_are_read(tmp_path: Path) -> None:
    (tmp_path / "r.log").write_bytes(b"12 34\r\n13 35\r\n")
    assert read_marks(tmp_path) == {(12, 34), (13, 35)}


def test_a_line_cut_short_does_not_spoil_the_next(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full disk lets only part of a line through: add() says so (the runner
    then marks in the database), and the next line starts on a line of its own."""
    marks = EndMarks(tmp_path, "r")
    real_write = marks_module.os.write
    monkeypatch.setattr(marks_module.os, "write", lambda fd, data: real_write(fd, data[:3]))
    with pytest.raises(OSError, match="only 3 of"):
        marks.add(12, 345)
    monkeypatch.setattr(marks_module.os, "write", real_write)
    marks.add(13, 346)
    assert read_marks(tmp_path) == {(13, 346)}


def test_recovery_decides_nothing_while_a_marks_file_cannot_be_read(
    store: OutboxStore, tmp_path: Path
) -> None:
    message = enqueue(store, tmp_path, 0)
    store.claim("dead", now=T0, lease=10, limit=1)
    store.marks_dir.mkdir(parents=True, exist_ok=True)
    (store.marks_dir / "dead.log").mkdir()  # there, but no file can be read from it
    with pytest.raises(OutboxError, match="cannot be read"):
        store.recover(now=T0 + 11)
    assert store.get(message).state is State.SENDING  # neither queued nor uncertain yet


def test_the_database_marks_when_the_file_cannot_be_written(
    aiosmtpd_factory, store: OutboxStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock()
    message = enqueue(store, tmp_path, 0, now=clock.now)
    seen: dict[str, float | None] = {}

    def full_disk(self, message: int, attempt: int, recipients=None) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(EndMarks, "add", full_disk)
    server = aiosmtpd_factory(
        on_data=lambda r: seen.update(at=data_end_at(store.database, message))
    )
    runner_for(store, server.port, clock).deliver_now()
    assert store.get(message).state is State.SENT
    assert seen["at"] is not None  # the mark went to the database before the "."


def test_a_clock_set_back_sends_the_mark_to_the_database(
    aiosmtpd_factory, store: OutboxStore, tmp_path: Path
) -> None:
    """The wall clock went back after the lease was committed (NTP): the lease
    cannot be trusted from the clocks, so the database statement decides."""
    clock = Clock()
    message = enqueue(store, tmp_path, 0, now=clock.now)
    claimed_at = clock.now
    seen: dict[str, float | None] = {}

    def on_rcpt(address: str, options: list[str]) -> None:
        clock.now = claimed_at - 50

    def on_data(received) -> None:
        seen["at"] = data_end_at(store.database, message)

    server = aiosmtpd_factory(on_rcpt=on_rcpt, on_data=on_data)
    runner_for(store, server.port, clock).deliver_now()
    assert seen["at"] == pytest.approx(claimed_at - 50)


def test_a_message_taken_for_sending_is_given_back_when_a_write_fails(
    aiosmtpd_factory, store: OutboxStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The write before the next message fails for good: that message goes back
    to the queue (released), it is not left `sending` with nobody sending it."""
    clock = Clock()
    messages = [enqueue(store, tmp_path, n, now=clock.now) for n in range(3)]
    fail_result_writes(monkeypatch)
    monkeypatch.setattr(runner_module, "RECORD_AGE", 0.0)  # write before each next message
    server = aiosmtpd_factory()
    runner = runner_for(store, server.port, clock)
    with pytest.raises(OutboxError):
        runner.deliver_now()
    states = {m: store.get(m).state for m in messages}
    received = len(server.wait_for_messages(1))
    # Those the server took are uncertain (given back as the runner ended);
    # the others are queued again, none is held by a runner that gave up.
    assert sum(s is State.UNCERTAIN for s in states.values()) == received
    assert all(s in (State.UNCERTAIN, State.QUEUED) for s in states.values())
    assert runner._holding() == set()
