"""The GUI thread never waits on the network, SQLite, the keyring or a large file.

Proved without a stopwatch: while a message with a 50 MB attachment is built,
queued and sent through the real bridge to a loopback server, a profiler
hook on the GUI thread records every call into the code that may block
(sockets, SSL, SQLite, fsync, sleeping, building or spooling messages, the
keyring). The list must stay empty. The longest heartbeat gap during the same
send is measured by tests/bench/bench_gui_stall.py.
"""

from __future__ import annotations

import os
import sqlite3
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Any

import pytest
from PySide6.QtCore import QTimer

from mailer_gui.message.addresses import parse_address
from mailer_gui.message.draft import Draft
from mailer_gui.outbox.store import _SCHEMA, State
from mailer_gui.paths import AppPaths, ensure_private_dir
from mailer_gui.ui.main_window import SLOW_OUTBOX, MainWindow
from tests.outbox.old_outbox import outbox_at_version
from tests.ui.homes import home_with_account

# C functions that wait: matched on the callable's qualified name.
BLOCKING_BUILTINS = {
    "send", "sendall", "recv", "recv_into", "connect", "connect_ex", "accept",
    "do_handshake", "getaddrinfo", "select", "poll", "fsync", "fdatasync", "sleep",
    "execute", "executemany", "executescript", "commit",
}  # fmt: skip
# Python code that waits or reads big files: matched on the source file.
BLOCKING_MODULES = (
    os.path.join("mailer_gui", "smtp", "transport.py"),
    os.path.join("mailer_gui", "smtp", "session.py"),
    os.path.join("mailer_gui", "outbox", "store.py"),
    os.path.join("mailer_gui", "outbox", "submit.py"),
    os.path.join("mailer_gui", "outbox", "routes.py"),
    os.path.join("mailer_gui", "message", "build.py"),
    os.path.join("mailer_gui", "accounts", "secrets.py"),
    os.path.join("keyring", ""),
)


class BlockingCalls:
    """A profiler for one thread that notes every call that could block it."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def __call__(self, frame: FrameType, event: str, arg: Any) -> None:
        if event == "c_call":
            name = getattr(arg, "__name__", "")
            owner = type(getattr(arg, "__self__", None)).__name__
            if name in BLOCKING_BUILTINS and owner in (
                "socket", "SSLSocket", "SSLObject", "Connection", "Cursor", "module",
            ):  # fmt: skip
                module = getattr(arg, "__module__", "") or owner
                self.seen.append(f"{module}.{name}")
        elif event == "call":
            filename = frame.f_code.co_filename
            if any(part in filename for part in BLOCKING_MODULES):
                self.seen.append(f"{filename}:{frame.f_code.co_name}")


@pytest.fixture
def big_file(tmp_path: Path) -> Path:
    path = tmp_path / "video.bin"
    with open(path, "wb") as out:
        chunk = os.urandom(1024 * 1024)
        for _ in range(50):
            out.write(chunk)
    return path


def test_sending_50_mb_never_blocks_the_gui_thread(
    qtbot, tmp_path: Path, smtp_sink_factory, big_file: Path
) -> None:
    sink = smtp_sink_factory()
    paths = home_with_account(tmp_path, sink.port, host="127.0.0.1")
    window = MainWindow(paths, tray=False)
    qtbot.addWidget(window)
    window.show()
    # The outbox is opened (and migrated) once, right after the first paint.
    qtbot.waitUntil(window.is_ready, timeout=10_000)
    draft = Draft(
        sender=parse_address("Ann <ann@example.org>"),
        to=(parse_address("bob@example.org"),),
        subject="The video",
        body="Here it is.",
        attachments=(big_file,),
    )
    states: list[str] = []
    window.bridge.stateChanged.connect(lambda m, s, d: states.append(s))
    queued: list[tuple[object, object]] = []

    hook = BlockingCalls()
    gui_thread = threading.current_thread()
    assert gui_thread is threading.main_thread()
    sys.setprofile(hook)  # this thread only: the workers are not watched
    try:
        window.bridge.send_draft(draft, "work", lambda m, e: queued.append((m, e)))
        qtbot.waitUntil(lambda: "sent" in states or "deferred" in states, timeout=60_000)
    finally:
        sys.setprofile(None)
    assert queued and queued[0][1] is None
    assert states[-1] == State.SENT.value
    assert hook.seen == []
    window.close()


def an_outbox_to_migrate(paths: AppPaths) -> None:
    """An outbox as the Mailer before the last schema change left it."""
    ensure_private_dir(paths.data_dir)
    outbox_at_version(paths.database, len(_SCHEMA) - 1).close()


def test_start_up_opens_and_migrates_the_outbox_off_the_gui_thread(qtbot, tmp_path: Path) -> None:
    paths = home_with_account(tmp_path, 9)
    an_outbox_to_migrate(paths)
    window = MainWindow(paths, tray=False)
    qtbot.addWidget(window)
    hook = BlockingCalls()
    sys.setprofile(hook)
    try:
        with qtbot.waitSignal(window.ready, timeout=10_000):
            window.show()
    finally:
        sys.setprofile(None)
    assert hook.seen == []
    with sqlite3.connect(paths.database) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == len(_SCHEMA)
    window.close()


def test_the_window_stays_live_while_another_mailer_holds_the_outbox(qtbot, tmp_path: Path) -> None:
    """The migration waits for another Mailer's write; the window keeps
    handling events meanwhile, and finishes start-up once the write ends."""
    paths = home_with_account(tmp_path, 9)
    an_outbox_to_migrate(paths)
    other = sqlite3.connect(paths.database, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another Mailer writing
    try:
        window = MainWindow(paths, tray=False)
        qtbot.addWidget(window)
        window.show()
        ticks: list[int] = []
        heartbeat = QTimer(window)
        heartbeat.timeout.connect(lambda: ticks.append(1))
        heartbeat.start(20)
        qtbot.waitUntil(lambda: len(ticks) >= 25, timeout=10_000)
        assert not window.is_ready()  # still waiting for the outbox
        assert window.isVisible()
        # After a second the status line says what it waits for.
        qtbot.waitUntil(lambda: window.status.text() == SLOW_OUTBOX, timeout=10_000)
        # What the person clicks meanwhile waits for the outbox too, instead
        # of opening it again on the GUI thread.
        hook = BlockingCalls()
        sys.setprofile(hook)
        try:
            window.pause_action.trigger()
            window.show_folder("sent")
        finally:
            sys.setprofile(None)
        assert hook.seen == []
        assert not window.is_ready()
    finally:
        other.execute("ROLLBACK")
        other.close()
    qtbot.waitUntil(window.is_ready, timeout=10_000)
    assert window.table.model() is window.model
    assert window.bridge.runner.paused  # the clicks took effect once it was open
    assert window.folder_key == "sent"
    assert window.status.text() == "Sending is paused: messages wait in the outbox."
    window.close()


def test_the_hook_sees_a_blocking_call(tmp_path: Path) -> None:
    """The proof above is only worth something if the hook notices SQLite and sockets."""
    import socket
    import sqlite3

    hook = BlockingCalls()
    sys.setprofile(hook)
    try:
        with sqlite3.connect(tmp_path / "x.sqlite3") as db:
            db.execute("CREATE TABLE t (x)")
        left, right = socket.socketpair()
        left.sendall(b"x")
        right.recv(1)
        left.close()
        right.close()
    finally:
        sys.setprofile(None)
    assert any(s.endswith(".execute") for s in hook.seen)
    assert any(s.endswith(".sendall") for s in hook.seen)
    assert any(s.endswith(".recv") for s in hook.seen)
