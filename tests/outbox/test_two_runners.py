"""Two runners on one outbox (the GUI and a CLI flush) never send a message twice.

Each runner gets its own OutboxStore object on the same database and spool, as
two processes would; one variant runs two real processes. 100 messages are
flushed at once to aiosmtpd, which counts every Message-ID it receives: each
must arrive exactly once and every message must end `sent`. A claim is a lease
taken in one transaction, so threads racing on claim_next never get the same
message.
"""

from __future__ import annotations

import os
import select
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from email.parser import BytesHeaderParser
from email.policy import default as default_policy
from pathlib import Path

import pytest

from mailer_gui.accounts.store import AccountStore
from mailer_gui.message.addresses import parse_address
from mailer_gui.message.build import build_message
from mailer_gui.message.draft import Draft
from mailer_gui.outbox.runner import Event, Runner, StateChanged
from mailer_gui.outbox.store import OutboxStore, State
from mailer_gui.paths import AppPaths, resolve_paths
from tests.outbox.test_ledger import account_for

MESSAGES = 100
ACCOUNT = "shared"
SERVER_HOLD = 0.002  # seconds per message, so the two runners overlap

RUNNER_SCRIPT = """\
import sys
from mailer_gui.accounts.store import AccountStore
from mailer_gui.outbox.runner import Runner, StateChanged
from mailer_gui.outbox.store import OutboxStore, State
from mailer_gui.paths import resolve_paths

sent = []
def note(event):
    if isinstance(event, StateChanged) and event.state is State.SENT:
        sent.append(event.message)

paths = resolve_paths(sys.argv[1])
store = OutboxStore(paths.database, paths.spool_dir)
runner = Runner(
    store, AccountStore(paths.accounts_file).get, credentials=lambda account: None, on_event=note
)
print("ready", flush=True)
sys.stdin.readline()  # "go": both processes start delivering together
runner.deliver_now()
print("sent", *sent, flush=True)
"""


class CountingServer:
    """aiosmtpd that counts each Message-ID it receives (a duplicate shows as 2)."""

    def __init__(self, aiosmtpd_factory) -> None:
        self.arrivals: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._parse = BytesHeaderParser(policy=default_policy)
        self.server = aiosmtpd_factory(on_data=self._count)

    def _count(self, message) -> str | None:
        message_id = str(self._parse.parsebytes(message.content)["Message-ID"]).strip()
        with self._lock:
            self.arrivals[message_id] += 1
        time.sleep(SERVER_HOLD)
        return None

    def received(self) -> dict[str, int]:
        with self._lock:
            return dict(self.arrivals)


def setup_outbox(home: Path, port: int, count: int = MESSAGES) -> tuple[AppPaths, dict[int, str]]:
    """An accounts file with one relay account and ``count`` queued messages."""
    paths = resolve_paths(home)
    AccountStore(paths.accounts_file).add(account_for(port, ACCOUNT))
    store = OutboxStore(paths.database, paths.spool_dir)
    sender = parse_address("Ann <ann@example.org>")
    ids: dict[int, str] = {}
    for number in range(count):
        draft = Draft(
            sender=sender,
            to=(parse_address(f"rcpt{number}@example.org"),),
            subject=f"two runners {number}",
            body=f"Message {number}.\n" + "Some text to send along.\n" * 40,
            body_format="plain",
        )
        built = build_message(draft, spool_dir=paths.spool_dir)
        ids[store.enqueue(built, account=ACCOUNT, subject=draft.subject)] = built.message_id
    store.close()
    return paths, ids


def check_each_once(paths: AppPaths, ids: dict[int, str], counting: CountingServer) -> None:
    received = counting.received()
    store = OutboxStore(paths.database, paths.spool_dir)
    try:
        states = Counter(row.state for row in store.messages())
    finally:
        store.close()
    assert states == {State.SENT: len(ids)}, states
    assert sorted(received) == sorted(ids.values()), "arrived: not the queued Message-IDs"
    twice = {m: n for m, n in received.items() if n != 1}
    assert not twice, f"received more than once: {twice}"


def make_runner(paths: AppPaths, owner: str, on_event: Callable[[Event], None]) -> Runner:
    store = OutboxStore(paths.database, paths.spool_dir)
    return Runner(
        store,
        AccountStore(paths.accounts_file).get,
        credentials=lambda account: None,
        on_event=on_event,
        owner=owner,
    )


def sent_by(events: list[Event]) -> set[int]:
    return {e.message for e in events if isinstance(e, StateChanged) and e.state is State.SENT}


def test_two_runners_deliver_now_at_once(aiosmtpd_factory, tmp_path: Path) -> None:
    counting = CountingServer(aiosmtpd_factory)
    paths, ids = setup_outbox(tmp_path / "home", counting.server.port)
    events: dict[str, list[Event]] = {"gui": [], "cli": []}
    runners = [make_runner(paths, owner, events[owner].append) for owner in events]
    barrier = threading.Barrier(len(runners))
    errors: list[BaseException] = []

    def flush(runner: Runner) -> None:
        try:
            barrier.wait(timeout=10)
            runner.deliver_now()
        except BaseException as exc:
            errors.append(exc)
        finally:
            runner.store.close()

    threads = [threading.Thread(target=flush, args=(r,), daemon=True) for r in runners]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not any(t.is_alive() for t in threads), "a runner did not finish within 60 s"
    assert not errors, errors
    check_each_once(paths, ids, counting)
    gui, cli = sent_by(events["gui"]), sent_by(events["cli"])
    assert not gui & cli, f"both runners reported these sent: {sorted(gui & cli)}"
    assert gui | cli == set(ids)
    assert gui and cli, f"the runners did not overlap (gui {len(gui)}, cli {len(cli)})"


def test_two_background_runners(aiosmtpd_factory, tmp_path: Path) -> None:
    counting = CountingServer(aiosmtpd_factory)
    paths, ids = setup_outbox(tmp_path / "home", counting.server.port)
    events: dict[str, list[Event]] = {"gui": [], "cli": []}
    runners = [make_runner(paths, owner, events[owner].append) for owner in events]
    watcher = OutboxStore(paths.database, paths.spool_dir)
    try:
        for runner in runners:
            runner.start()
            runner.wake()
        deadline = time.monotonic() + 60
        while watcher.counts() != {State.SENT: MESSAGES}:
            assert time.monotonic() < deadline, f"after 60 s: {watcher.counts()}"
            time.sleep(0.05)
    finally:
        for runner in runners:
            runner.stop(timeout=10)
        watcher.close()
    check_each_once(paths, ids, counting)
    gui, cli = sent_by(events["gui"]), sent_by(events["cli"])
    assert not gui & cli
    assert gui | cli == set(ids)


def _start(home: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", RUNNER_SCRIPT, str(home)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=10)


def test_two_runner_processes(aiosmtpd_factory, tmp_path: Path) -> None:
    counting = CountingServer(aiosmtpd_factory)
    home = tmp_path / "home"
    paths, ids = setup_outbox(home, counting.server.port)
    processes = [_start(home), _start(home)]
    try:
        for process in processes:
            assert process.stdout is not None
            readable, _, _ = select.select([process.stdout], [], [], 20)
            assert readable, f"runner pid {process.pid} not ready after 20 s"
            assert process.stdout.readline().strip() == "ready"
        for process in processes:
            assert process.stdin is not None
            process.stdin.write("go\n")
            process.stdin.flush()
        sent: list[set[int]] = []
        for process in processes:
            out, err = process.communicate(timeout=60)
            assert process.returncode == 0, err
            words = out.split()
            assert "sent" in words, out
            sent.append({int(w) for w in words[words.index("sent") + 1 :]})
    finally:
        for process in processes:
            _stop(process)
    check_each_once(paths, ids, counting)
    first, second = sent
    assert not first & second, f"both processes reported these sent: {sorted(first & second)}"
    assert first | second == set(ids)
    assert first and second, f"the processes did not overlap ({len(first)}, {len(second)})"
    with sqlite3.connect(paths.database) as db:
        attempts = db.execute("SELECT count(*) FROM attempts").fetchone()[0]
    assert attempts == MESSAGES  # no message was even tried twice


@pytest.mark.parametrize(
    ("threads", "pause"),
    [(2, 0.001), (2, 0.0), (8, 0.0)],
    ids=["2-paced", "2-tight", "8-tight"],
)
def test_claims_are_exclusive(tmp_path: Path, threads: int, pause: float) -> None:
    """Threads (each with its own store, like processes) race on claim_next.

    "tight" claims back to back (SQLite's busy handler may then let one thread
    take everything, which is fair enough); "paced" waits a little after each
    claim, as a runner does while it sends, so both threads win some races.
    """
    paths, ids = setup_outbox(tmp_path / "home", port=2525)
    barrier = threading.Barrier(threads)
    claimed: dict[str, list[int]] = {f"claimer-{n}": [] for n in range(threads)}
    errors: list[BaseException] = []

    def claim_all(owner: str) -> None:
        store = OutboxStore(paths.database, paths.spool_dir)  # one per thread, like a process
        try:
            barrier.wait(timeout=10)
            for _ in range(MESSAGES + 1):
                row = store.claim_next(owner, now=time.time(), lease=60.0, account=ACCOUNT)
                if row is None:
                    return
                assert row.state is State.SENDING
                claimed[owner].append(row.id)
                if pause:
                    time.sleep(pause)
        except BaseException as exc:
            errors.append(exc)
        finally:
            store.close()

    workers = [threading.Thread(target=claim_all, args=(o,), daemon=True) for o in claimed]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert not any(w.is_alive() for w in workers)
    assert not errors, errors
    every = [message for got in claimed.values() for message in got]
    twice = sorted(m for m, n in Counter(every).items() if n > 1)
    assert not twice, f"claimed by more than one thread: {twice}"
    assert sorted(every) == sorted(ids)
    with sqlite3.connect(paths.database) as db:
        owners = dict(db.execute("SELECT id, lease_owner FROM messages").fetchall())
        attempts = db.execute("SELECT count(*) FROM attempts").fetchone()[0]
    for owner, got in claimed.items():
        assert all(owners[m] == owner for m in got), owner
    assert attempts == MESSAGES
    if pause:
        assert all(claimed.values()), {o: len(g) for o, g in claimed.items()}


# ---------------------------------------------------------------------------
# A lease that runs out while its runner is still sending (a long send, a
# suspended laptop, a clock step) must never lead to a second, silent send.


def one_message(tmp_path: Path, port: int) -> tuple[AppPaths, int]:
    paths, ids = setup_outbox(tmp_path / "home", port, count=1)
    return paths, next(iter(ids))


def test_lease_running_out_mid_send_is_not_a_second_send(aiosmtpd_factory, tmp_path) -> None:
    arrivals: Counter[str] = Counter()
    slow = threading.Event()

    def slow_first_rcpt(address: str, options: list[str]) -> str | None:
        if not slow.is_set():
            slow.set()
            time.sleep(2.0)  # the first runner's lease (1 s) runs out here, before the "."
        return None

    def count(message) -> str | None:
        parsed = BytesHeaderParser(policy=default_policy).parsebytes(message.content)
        arrivals[str(parsed["Message-ID"]).strip()] += 1
        return None

    server = aiosmtpd_factory(on_rcpt=slow_first_rcpt, on_data=count)
    paths, message = one_message(tmp_path, server.port)

    def flush(owner: str, after: float) -> None:
        time.sleep(after)
        store = OutboxStore(paths.database, paths.spool_dir)
        try:
            Runner(
                store,
                AccountStore(paths.accounts_file).get,
                credentials=lambda account: None,
                owner=owner,
                lease=1.0,
            ).deliver_now()
        finally:
            store.close()

    threads = [
        threading.Thread(target=flush, args=("cli", 0.0), daemon=True),
        threading.Thread(target=flush, args=("gui", 1.3), daemon=True),  # after the lease
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    store = OutboxStore(paths.database, paths.spool_dir)
    state = store.get(message).state
    store.close()
    total = sum(arrivals.values())
    assert total >= 1
    assert total == 1 or state is State.UNCERTAIN, f"sent {total} times, state {state.value}"


def test_clock_jump_mid_send_is_not_a_second_send(aiosmtpd_factory, tmp_path) -> None:
    """One background runner; the machine sleeps (the clock jumps past the lease)
    while a message is between MAIL and the final "."."""
    arrivals: Counter[str] = Counter()
    offset = [0.0]
    slow = threading.Event()

    def suspend_during_first_rcpt(address: str, options: list[str]) -> str | None:
        if not slow.is_set():
            slow.set()
            offset[0] += 10.0  # suspended for 10 s, more than the 3 s lease
            time.sleep(1.5)  # the scheduler (every lease / 3 = 1 s) looks meanwhile
        return None

    def count(message) -> str | None:
        parsed = BytesHeaderParser(policy=default_policy).parsebytes(message.content)
        arrivals[str(parsed["Message-ID"]).strip()] += 1
        return None

    server = aiosmtpd_factory(on_rcpt=suspend_during_first_rcpt, on_data=count)
    paths, message = one_message(tmp_path, server.port)
    store = OutboxStore(paths.database, paths.spool_dir)
    runner = Runner(
        store,
        AccountStore(paths.accounts_file).get,
        credentials=lambda account: None,
        lease=3.0,
        clock=lambda: time.time() + offset[0],
    )
    try:
        runner.start()
        runner.wake()
        deadline = time.monotonic() + 15
        while store.get(message).state is not State.SENT and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)  # a second send, if one comes, finishes within this
    finally:
        runner.stop(timeout=10)
    state = store.get(message).state
    store.close()
    total = sum(arrivals.values())
    assert total >= 1
    assert total == 1 or state is State.UNCERTAIN, f"sent {total} times, state {state.value}"


def test_a_message_another_process_queues_goes_without_a_wake(
    aiosmtpd_factory, tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The GUI's runner idles; the command line queues a message (`send --later`)
    through a store of its own and cannot wake it. The runner's next look finds
    it: it is sent, though the lease (a look every lease / 3) is long."""
    from mailer_gui.outbox import runner as runner_module

    monkeypatch.setattr(runner_module, "LOOK_AGAIN", 0.2)
    server = aiosmtpd_factory()
    paths, _ = setup_outbox(tmp_path / "home", server.port, count=0)
    store = OutboxStore(paths.database, paths.spool_dir)
    runner = Runner(
        store, AccountStore(paths.accounts_file).get, credentials=lambda account: None,
        lease=600.0,
    )  # fmt: skip
    try:
        runner.start()
        time.sleep(0.3)  # the scheduler found nothing and went to sleep
        # "Another process": a store of its own on the same files.
        other = OutboxStore(paths.database, paths.spool_dir)
        draft = Draft(
            sender=parse_address("Ann <ann@example.org>"),
            to=(parse_address("rcpt0@example.org"),),
            subject="queued from the command line",
            body="Hello.",
            body_format="plain",
        )
        built = build_message(draft, spool_dir=paths.spool_dir)
        message = other.enqueue(built, account=ACCOUNT, subject=draft.subject)
        other.close()
        received = server.wait_for_messages(1, timeout=10)
        assert [m.rcpt_tos for m in received] == [["rcpt0@example.org"]]
        deadline = time.monotonic() + 10
        while store.get(message).state is not State.SENT and time.monotonic() < deadline:
            time.sleep(0.05)
        assert store.get(message).state is State.SENT
    finally:
        runner.stop()
        store.close()
