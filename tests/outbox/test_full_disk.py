"""A disk that fills up in the middle of a flush, on a real (tmpfs) file system.

The outbox lives on a 3 MB tmpfs; thirty messages are queued, then a file
takes all but a little of the space, and `outbox flush` runs against a local
aiosmtpd. Where exactly the writes start failing depends on what is left; in
every case the run says what it did before it stopped and why, exits 73, and
once space is freed no message is lost and none is sent twice.
"""

from __future__ import annotations

import email
import io
import os
import shutil
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailer_gui import cli
from mailer_gui.outbox.runner import Event, Trouble
from mailer_gui.outbox.store import OutboxStore, State
from tests.outbox.test_runner import account_for, queue, runner_for
from tests.servers.availability import unavailable

MESSAGES = 30


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 3 MB tmpfs mounted for the test (needs root, as CI runs), unmounted after."""
    mount, umount = shutil.which("mount"), shutil.which("umount")
    if os.geteuid() != 0 or mount is None or umount is None:
        unavailable("a small file system to fill (root, mount and umount)")
    where = tmp_path / "disk"
    where.mkdir()
    done = subprocess.run(
        [mount, "-t", "tmpfs", "-o", "size=3m,mode=0700", "tmpfs", str(where)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    if done.returncode != 0:
        unavailable(f"a tmpfs mount ({done.stderr.strip()})")
    try:
        yield where
    finally:
        subprocess.run([umount, "-l", str(where)], capture_output=True, timeout=30, check=False)


def run(capsys, monkeypatch, home: Path, *args: str) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    code = cli.main(["--home", str(home), *args])
    out, err = capsys.readouterr()
    return code, out, err


def mailer(home: Path, *args: str) -> tuple[int, str, str]:
    """The command line in a process of its own, as a person (or cron) runs it."""
    done = subprocess.run(
        [sys.executable, "-m", "mailer_gui", "--home", str(home), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    return done.returncode, done.stdout, done.stderr


def fill(disk: Path, leave: int) -> Path:
    """A file that takes the disk's free space but ``leave`` bytes."""
    filler = disk / "filler"
    with filler.open("wb") as out:
        out.write(b"\0" * max(0, shutil.disk_usage(disk).free - leave))
    return filler


@pytest.mark.parametrize("left_kb", [50, 100])
def test_a_disk_that_fills_during_a_flush_loses_nothing_and_sends_nothing_twice(
    small_disk: Path, aiosmtpd_factory, capsys, monkeypatch, left_kb: int
) -> None:
    server = aiosmtpd_factory()
    home = small_disk / "home"
    code, _, err = run(
        capsys, monkeypatch, home, "accounts", "add", "plain", "--email", "ann@example.org",
        "--host", "127.0.0.1", "--port", str(server.port), "--security", "none", "--auth", "none",
    )  # fmt: skip
    assert code == 0, err
    body = "x" * 3000
    for number in range(MESSAGES):
        code, _, err = run(
            capsys, monkeypatch, home, "send", "--later", "--to", f"r{number}@example.org",
            "--subject", f"m{number}", "--body", body,
        )  # fmt: skip
        assert code == 0, err

    filler = fill(small_disk, left_kb * 1024)
    code, out, err = mailer(home, "outbox", "flush")
    assert code == cli.EX_CANTCREAT, out + err
    assert "This run, before it stopped: " in out
    assert "mailer-gui: sending stopped. The disk that holds the outbox" in err
    assert "is full" in err and "Traceback" not in err
    # It stopped in the middle: some went, and the rest waits or is accounted for.
    assert 0 < len(server.messages) <= MESSAGES
    assert "sent" in out.split("before it stopped: ")[1]

    # Again, the disk still full (what little room the first run left may do
    # for taking its messages back): no empty report, no traceback.
    code, out, err = mailer(home, "outbox", "flush")
    assert code in (cli.EX_CANTCREAT, cli.EX_TEMPFAIL), out + err
    assert "before it stopped: ." not in out and "Traceback" not in err

    filler.unlink()
    code, out, err = mailer(home, "outbox", "flush")
    assert code in (cli.EX_OK, cli.EX_TEMPFAIL), out + err  # 75: uncertain ones to decide

    store = OutboxStore(home / "data" / "outbox.sqlite3", home / "data" / "spool")
    try:
        rows = store.messages()
    finally:
        store.close()
    assert len(rows) == MESSAGES
    states = Counter(row.state for row in rows)
    assert set(states) <= {State.SENT, State.UNCERTAIN}, (states, out, err)
    received = Counter(
        email.message_from_bytes(message.content)["Message-ID"] for message in server.messages
    )
    assert max(received.values()) == 1  # nothing sent twice
    for row in rows:  # nothing lost: each went, or may have (uncertain, told as such)
        assert received[row.message_id] == 1 or row.state is State.UNCERTAIN
    if states[State.UNCERTAIN]:
        assert "uncertain" in err


def test_the_windows_runner_tells_a_full_disk_once_and_goes_on_when_there_is_room(
    small_disk: Path, aiosmtpd_factory, monkeypatch
) -> None:
    """The runner in the background (the window's): a worker that cannot write
    the outbox stops, the trouble is told once (the status bar), and no worker
    is started again and again meanwhile; once there is room, Send now
    (clear_backoff) sends the rest, each message once."""
    server = aiosmtpd_factory()
    outbox = OutboxStore(small_disk / "outbox.sqlite3", small_disk / "spool")
    messages = [queue(outbox, small_disk, subject=f"m{n}", text="x" * 3000) for n in range(30)]
    crashed: list[threading.ExceptHookArgs] = []
    monkeypatch.setattr(threading, "excepthook", crashed.append)
    events: list[Event] = []
    runner = runner_for(outbox, account_for(server), events)
    filler = fill(small_disk, 50 * 1024)
    runner.start()
    try:
        deadline = time.monotonic() + 20
        while not any(isinstance(e, Trouble) for e in events) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(1.0)  # room for a loop of workers failing one after another
        troubles = [e.text for e in events if isinstance(e, Trouble)]
        assert len(troubles) == 1, troubles
        assert troubles[0].startswith("The disk that holds the outbox")
        assert crashed == []  # no worker died with a traceback

        filler.unlink()
        runner.clear_backoff()
        runner.wake()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            states = {outbox.get(m).state for m in messages}
            if states <= {State.SENT, State.UNCERTAIN}:
                break
            time.sleep(0.1)
        assert states <= {State.SENT, State.UNCERTAIN}, states
    finally:
        runner.stop()
        outbox.close()
    received = Counter(
        email.message_from_bytes(message.content)["Message-ID"] for message in server.messages
    )
    assert max(received.values()) == 1
