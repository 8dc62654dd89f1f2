"""The kill test: runner processes SIGKILLed mid-transfer lose nothing and never
send a message twice unless the outbox said `uncertain` first.

A counting server (aiosmtpd in this pytest process, which is never killed)
records every Message-ID it receives, with a count per Message-ID, so a
duplicate is visible. 200 messages of ~100 KB are queued with the store API.
Then, over and over, a runner PROCESS (a small script: OutboxStore + Runner with
a short lease, then ``deliver_now()``, which first recovers what an earlier
runner left in `sending` once its lease ran out) is started and SIGKILLed after
a random, seeded delay. The server holds its reply after the final "." for a
few milliseconds, so many kills land in the window where the message is on
the server and the runner has not recorded it: those must come back as
`uncertain`, never as a silent resend. Uncertain messages are answered "send
again" (``resolve_uncertain(sent=False)``) and noted. At the end one runner
runs to completion, and:

- every queued Message-ID arrived at least once and every message is `sent`;
- nothing stays `sending` (or anything but `sent`);
- a Message-ID that arrived more than once belongs to a message that was
  `uncertain`, and arrived at most once more than it was resent.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import select
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from email.parser import BytesHeaderParser
from email.policy import default as default_policy
from pathlib import Path

import pytest

from mailer_gui.accounts.store import AccountStore
from mailer_gui.message.addresses import parse_address
from mailer_gui.message.build import build_message
from mailer_gui.message.draft import Draft
from mailer_gui.outbox.store import OutboxStore, State
from mailer_gui.paths import AppPaths, resolve_paths
from tests.outbox.test_ledger import account_for
from tests.servers.aiosmtpd_server import HeldReply

MESSAGES = 200
BODY_BYTES = 100_000  # ~100 KB: a kill often lands while the body is on the wire
MIN_KILLS = 20
MAX_ROUNDS = 80
LEASE = 0.3  # seconds; a killed runner's messages are recovered once it ran out
KILL_DELAY = (0.05, 0.35)  # seconds after the runner said it is ready
SERVER_HOLD = 0.02  # seconds the server waits after the final "." before replying
SEED = int(os.environ.get("MAILER_CRASH_SEED", "5321"))
ACCOUNT = "crash"

# The runner process: argv = home, lease. It says "ready" once its imports are
# done, so the kill delay counts from when delivery starts, not from exec().
RUNNER_SCRIPT = """\
import sys
from mailer_gui.accounts.store import AccountStore
from mailer_gui.outbox.runner import Runner
from mailer_gui.outbox.store import OutboxStore
from mailer_gui.paths import resolve_paths

paths = resolve_paths(sys.argv[1])
store = OutboxStore(paths.database, paths.spool_dir)
runner = Runner(
    store,
    AccountStore(paths.accounts_file).get,
    credentials=lambda account: None,
    lease=float(sys.argv[2]),
)
print("ready", flush=True)
runner.deliver_now()
print("done", flush=True)
"""


SENDER = parse_address("Ann <ann@example.org>")


def outbox_for(home: Path, port: int) -> tuple[AppPaths, OutboxStore]:
    """A home whose one account sends to 127.0.0.1:``port``, and its outbox."""
    paths = resolve_paths(home)
    AccountStore(paths.accounts_file).add(account_for(port, ACCOUNT))
    return paths, OutboxStore(paths.database, paths.spool_dir)


def body_text(number: int) -> str:
    line = f"message {number:04d} " + "the quick brown fox jumps over the lazy dog " * 2
    return "\n".join(f"{i:05d} {line}" for i in range(BODY_BYTES // (len(line) + 7)))


def start_runner(home: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", RUNNER_SCRIPT, str(home), str(LEASE)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_ready(process: subprocess.Popen[str], timeout: float = 20.0) -> None:
    """Return once the runner printed "ready"; fail if it did not."""
    assert process.stdout is not None
    readable, _, _ = select.select([process.stdout], [], [], timeout)
    if not readable:
        kill(process)
        raise AssertionError(f"runner pid {process.pid} not ready after {timeout} s")
    line = process.stdout.readline().strip()
    if line != "ready":
        _, err = process.communicate(timeout=10)
        raise AssertionError(f"runner pid {process.pid} exited {process.returncode}: {err}")


def kill(process: subprocess.Popen[str]) -> bool:
    """SIGKILL the runner by its PID; True if it was still running.

    A runner that ended by itself must have ended well (exit 0, "done").
    """
    alive = process.poll() is None
    if alive:
        os.kill(process.pid, signal.SIGKILL)
    out, err = process.communicate(timeout=10)
    if not alive:
        assert process.returncode == 0 and "done" in out, (
            f"runner pid {process.pid} exited {process.returncode} by itself: {err}"
        )
    return alive


def run_to_completion(home: Path, timeout: float = 60.0) -> None:
    process = start_runner(home)
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill(process)
        raise AssertionError(f"the final runner did not finish within {timeout} s") from None
    assert process.returncode == 0, f"final runner exit {process.returncode}: {err}"
    assert "done" in out


def test_sigkilled_runners_lose_nothing_and_duplicate_only_uncertain(
    aiosmtpd_factory, tmp_path: Path
) -> None:
    arrivals: Counter[str] = Counter()
    lock = threading.Lock()
    parse = BytesHeaderParser(policy=default_policy)

    def count_and_hold(message) -> str | None:  # the counting server
        message_id = str(parse.parsebytes(message.content)["Message-ID"]).strip()
        with lock:
            arrivals[message_id] += 1
        time.sleep(SERVER_HOLD)  # the message is here; the runner does not know yet
        return None

    server = aiosmtpd_factory(on_data=count_and_hold)
    home = tmp_path / "home"
    paths, store = outbox_for(home, server.port)
    ids: dict[int, str] = {}  # outbox id -> Message-ID
    for number in range(MESSAGES):
        draft = Draft(
            sender=SENDER,
            to=(parse_address(f"rcpt{number}@example.org"),),
            subject=f"crash {number}",
            body=body_text(number),
            body_format="plain",
        )
        built = build_message(draft, spool_dir=paths.spool_dir)
        ids[store.enqueue(built, account=ACCOUNT, subject=draft.subject)] = built.message_id
    assert len(set(ids.values())) == MESSAGES

    rng = random.Random(SEED)
    uncertain: Counter[int] = Counter()  # outbox id -> times it was uncertain (and resent)
    kills = busy_kills = 0
    deadline = time.monotonic() + 50
    for _round in range(MAX_ROUNDS):
        for row in store.messages([State.UNCERTAIN]):
            uncertain[row.id] += 1
            assert store.resolve_uncertain(row.id, sent=False) is State.QUEUED
        if kills >= MIN_KILLS and store.counts() == {State.SENT: MESSAGES}:
            break
        assert time.monotonic() < deadline, (
            f"seed {SEED}: still {store.counts()} after {kills} kills"
        )
        process = start_runner(home)
        wait_ready(process)
        time.sleep(rng.uniform(*KILL_DELAY))
        if kill(process):
            busy_kills += 1
        kills += 1
        # Let the lease of whatever it was sending run out, so that the next
        # runner's deliver_now() recovers it (queued, or uncertain after the ".").
        time.sleep(LEASE + 0.05)

    # Whatever is left: resolve and send until done.
    for _round in range(5):
        for row in store.messages([State.UNCERTAIN]):
            uncertain[row.id] += 1
            store.resolve_uncertain(row.id, sent=False)
        if store.counts() == {State.SENT: MESSAGES}:
            break
        run_to_completion(home)

    rows = {row.id: row for row in store.messages()}
    # An attempt a kill cut short never got an end: before the "." it was
    # recovered as queued, after it as uncertain.
    cut = sum(1 for i in rows for a in store.attempts(i) if a.ended_at is None)
    summary = (
        f"seed {SEED}: {kills} kills ({busy_kills} mid-delivery), {cut} attempts cut short, "
        f"{sum(uncertain.values())} uncertain, counts {store.counts()}"
    )
    assert kills >= MIN_KILLS, summary
    assert busy_kills >= MIN_KILLS * 3 // 4, summary
    assert not [i for i, r in rows.items() if r.state is State.SENDING], summary
    not_sent = {i: r.state.value for i, r in rows.items() if r.state is not State.SENT}
    assert not not_sent, f"{summary}; not sent: {not_sent}"
    assert all(r.recipients[0].status == "accepted" for r in rows.values()), summary
    with lock:
        received = dict(arrivals)
    lost = [ids[i] for i in ids if received.get(ids[i], 0) == 0]
    assert not lost, f"{summary}; never arrived: {lost}"
    assert set(received) <= set(ids.values()), summary
    by_message_id = {message_id: i for i, message_id in ids.items()}
    duplicates = {m: n for m, n in received.items() if n > 1}
    silent = {m: n for m, n in duplicates.items() if by_message_id[m] not in uncertain}
    assert not silent, f"{summary}; sent twice without being uncertain: {silent}"
    too_many = {m: n for m, n in duplicates.items() if n > 1 + uncertain[by_message_id[m]]}
    assert not too_many, f"{summary}; more arrivals than resends allow: {too_many}"
    print(f"\n{summary}, {len(duplicates)} delivered twice (all of them uncertain first)")


@pytest.mark.skipif(sys.platform == "win32", reason="no flock there: leases alone decide")
@contextlib.contextmanager
def runner_held_at_the_server(home: Path, held: HeldReply) -> Iterator[None]:
    """A runner process (leases of ten minutes) sending until the server holds
    a final reply; SIGKILLed on the way out, and the server let go."""
    process = subprocess.Popen(
        [sys.executable, "-c", RUNNER_SCRIPT, str(home), "600"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        wait_ready(process)
        assert held.reached.wait(20), "the runner never reached the server"
        yield
    finally:
        kill(process)
        held.release()


def queue_kills(paths: AppPaths, store: OutboxStore, count: int) -> None:
    """``count`` messages, "kill 0" to rcpt0@example.org and on, queued in order."""
    for number in range(count):
        draft = Draft(
            sender=SENDER, to=(parse_address(f"rcpt{number}@example.org"),),
            subject=f"kill {number}", body="Hello.", body_format="plain",
        )  # fmt: skip
        built = build_message(draft, spool_dir=paths.spool_dir)
        store.enqueue(built, account=ACCOUNT, subject=draft.subject)


def test_a_killed_runners_messages_go_again_at_once_not_after_its_lease(
    aiosmtpd_factory, tmp_path: Path
) -> None:
    """A runner with a lease of ten minutes is SIGKILLed while the server holds
    its first message's final reply. While it lives its messages are left
    alone; once it is gone, the next runner takes them back at once: the one
    whose "." had left is uncertain, the others it had claimed are sent."""
    held = HeldReply(first_only=True)  # the runner waits for this reply when it is killed
    server = aiosmtpd_factory(on_data=held)
    home = tmp_path / "home"
    paths, store = outbox_for(home, server.port)
    queue_kills(paths, store, 3)
    with runner_held_at_the_server(home, held):
        assert store.counts() == {State.SENDING: 3}  # all three claimed, leased for 600 s
        assert store.recover(keep_owner="me") == []  # alive: nothing is taken from it
    started = time.monotonic()
    recovered = dict(store.recover(keep_owner="me"))
    assert time.monotonic() - started < 5
    rows = {row.subject: row for row in store.messages()}
    assert recovered == {
        rows["kill 0"].id: State.UNCERTAIN,  # its "." had left: the person decides
        rows["kill 1"].id: State.QUEUED,
        rows["kill 2"].id: State.QUEUED,
    }
    run_to_completion(home)
    assert {s: r.state for s, r in ((s, store.get(r.id)) for s, r in rows.items())} == {
        "kill 0": State.UNCERTAIN,
        "kill 1": State.SENT,
        "kill 2": State.SENT,
    }
    assert sorted(m.rcpt_tos[0] for m in server.wait_for_messages(3)) == [
        "rcpt0@example.org", "rcpt1@example.org", "rcpt2@example.org",
    ]  # fmt: skip
    # The dead runner's files went with its messages.
    assert not [p for p in paths.database.parent.glob("*.marks/*") if "runner-" in p.name]


def test_the_command_line_acts_at_once_on_what_a_killed_runner_held(
    aiosmtpd_factory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`outbox cancel` and `outbox list` right after a Mailer was killed mid-send
    see its messages as what they are now: not "being sent by another Mailer"
    for the rest of a ten-minute lease."""
    from mailer_gui import cli

    held = HeldReply()
    server = aiosmtpd_factory(on_data=held)
    home = tmp_path / "home"
    paths, store = outbox_for(home, server.port)
    queue_kills(paths, store, 2)
    with runner_held_at_the_server(home, held):
        assert cli.main(["--home", str(home), "outbox", "cancel", "2"]) == cli.EX_TEMPFAIL
        assert "being sent right now by another Mailer" in capsys.readouterr().err  # alive
    assert cli.main(["--home", str(home), "outbox", "cancel", "2"]) == 0
    assert "Message 2 is cancelled" in capsys.readouterr().out
    assert cli.main(["--home", str(home), "outbox", "list", "--json"]) == 0
    states = {row["id"]: row["state"] for row in json.loads(capsys.readouterr().out)}
    assert states == {1: "uncertain", 2: "cancelled"}
