"""The outbox bridge against a real store and a loopback aiosmtpd (offscreen)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import QCoreApplication, QThread, QTimer

from mailer_gui.accounts.model import Account
from mailer_gui.accounts.store import AccountStore
from mailer_gui.message.addresses import parse_address
from mailer_gui.message.build import build_message
from mailer_gui.message.draft import Draft
from mailer_gui.outbox.store import OutboxStore, State
from mailer_gui.smtp.settings import AuthMethod, Security
from mailer_gui.smtp.transcript import TranscriptRecord
from mailer_gui.ui.bridge import OutboxBridge

# These accounts log in with no password: nothing is read from it.
KEYRING_SERVICE = "mailer-gui:tests"


@pytest.fixture
def store(tmp_path: Path) -> OutboxStore:
    return OutboxStore(tmp_path / "data" / "outbox.sqlite3", tmp_path / "data" / "spool")


@pytest.fixture
def server(aiosmtpd_factory):
    return aiosmtpd_factory(tls="none")


@pytest.fixture
def bridge(qtbot, store: OutboxStore, server, tmp_path: Path) -> Iterator[OutboxBridge]:
    config = tmp_path / "config"
    config.mkdir()
    accounts = AccountStore(config / "accounts.json")
    accounts.add(
        Account(
            name="work",
            email="ann@example.org",
            host="localhost",
            port=server.port,
            security=Security.NONE,
            auth=AuthMethod.NONE,
        )
    )
    bridge = OutboxBridge(store, accounts.get, keyring_service=KEYRING_SERVICE)
    yield bridge
    bridge.shutdown()


def enqueue(store: OutboxStore, tmp_path: Path, subject: str = "Quarterly report") -> int:
    draft = Draft(
        sender=parse_address("Ann <ann@example.org>"),
        to=(parse_address("bob@example.org"),),
        subject=subject,
        body="Hello there.",
    )
    built = build_message(draft, spool_dir=tmp_path)
    return store.enqueue(built, account="work", subject=subject)


def on_gui_thread() -> bool:
    app = QCoreApplication.instance()
    assert app is not None
    return QThread.currentThread() == app.thread()


def test_sends_a_queued_message_and_reports_on_the_gui_thread(
    qtbot, bridge: OutboxBridge, store: OutboxStore, server, tmp_path: Path
) -> None:
    states: list[tuple[int, str, str]] = []
    lines: list[tuple[int, str, TranscriptRecord, bool]] = []
    progress: list[tuple[int, int, int]] = []
    counts: list[dict[str, int]] = []
    bridge.stateChanged.connect(lambda m, s, d: states.append((m, s, d)))
    bridge.transcriptLine.connect(lambda m, a, r: lines.append((m, a, r, on_gui_thread())))
    bridge.progress.connect(lambda m, sent, total: progress.append((m, sent, total)))
    bridge.countsChanged.connect(counts.append)

    message = enqueue(store, tmp_path)
    with qtbot.waitSignal(
        bridge.stateChanged, timeout=10_000, check_params_cb=lambda m, s, d: s == "sent"
    ):
        bridge.start()
        bridge.wake()
    assert [(m, s) for m, s, _ in states] == [(message, "sending"), (message, "sent")]
    assert store.get(message).state is State.SENT
    assert len(server.messages) == 1

    assert lines and all(on_gui for *_, on_gui in lines)
    assert all(m == message and a == "work" for m, a, _, _ in lines)
    assert any(r.text.startswith("250") for _, _, r, _ in lines)
    assert progress and progress[-1][1] == progress[-1][2]

    # The counts follow the state changes, coalesced into few queries.
    qtbot.waitUntil(lambda: bool(counts) and counts[-1]["sent"] == 1, timeout=5_000)
    assert counts[-1]["queued"] == 0 and set(counts[-1]) == {s.value for s in State}
    assert len(counts) <= 3


def test_cancel_a_waiting_message(
    qtbot, bridge: OutboxBridge, store: OutboxStore, tmp_path
) -> None:
    message = store.enqueue(
        build_message(
            Draft(
                sender=parse_address("ann@example.org"),
                to=(parse_address("bob@example.org"),),
                subject="Later",
                body="Not yet.",
            ),
            spool_dir=tmp_path,
        ),
        account="work",
        due_at=time.time() + 3600,
    )
    done: list[tuple[object, object]] = []
    with qtbot.waitSignal(bridge.stateChanged, timeout=5_000) as changed:
        bridge.cancel(message, lambda state, error: done.append((state, error)))
    assert changed.args == [message, "cancelled", ""]
    qtbot.waitUntil(lambda: bool(done))
    assert done == [(State.CANCELLED, None)]

    # A message that is not there: reported through actionFailed, never raised here.
    with qtbot.waitSignal(bridge.actionFailed, timeout=5_000) as failed:
        bridge.cancel(message + 100)
    assert failed.args == [message + 100, f"There is no message {message + 100} in the outbox."]


def test_run_in_background_keeps_the_gui_thread_free(
    qtbot, bridge: OutboxBridge, store: OutboxStore, tmp_path: Path
) -> None:
    ids = {enqueue(store, tmp_path, f"Message {i}") for i in range(3)}
    release = threading.Event()
    ticks: list[int] = []
    timer = QTimer()
    timer.setInterval(10)
    timer.timeout.connect(lambda: ticks.append(1))
    timer.start()
    results: list[tuple[object, object, bool]] = []

    def slow_load():
        assert not on_gui_thread()
        release.wait(5)
        return store.messages([State.QUEUED])

    started = time.monotonic()
    bridge.run_in_background(
        slow_load, lambda rows, err: results.append((rows, err, on_gui_thread()))
    )
    assert time.monotonic() - started < 0.5  # returned at once
    qtbot.waitUntil(lambda: len(ticks) >= 5, timeout=2_000)  # the event loop kept running
    assert results == []
    release.set()
    qtbot.waitUntil(lambda: bool(results), timeout=5_000)
    timer.stop()
    rows, error, on_gui = results[0]
    assert error is None and on_gui
    assert {row.id for row in rows} == ids


def test_run_in_background_delivers_the_exception(qtbot, bridge: OutboxBridge) -> None:
    results: list[tuple[object, object]] = []
    bridge.load_message(12345, lambda row, err: results.append((row, err)))
    qtbot.waitUntil(lambda: bool(results), timeout=5_000)
    row, error = results[0]
    assert row is None and "12345" in str(error)


def test_send_draft_queues_and_delivers(
    qtbot, bridge: OutboxBridge, store: OutboxStore, server
) -> None:
    draft = Draft(
        sender=parse_address("Ann <ann@example.org>"),
        to=(parse_address("bob@example.org"),),
        cc=(parse_address("carol@example.org"),),
        subject="From the composer",
        body="**Hello.**",
    )
    bridge.start()
    done: list[tuple[object, object]] = []
    with qtbot.waitSignal(
        bridge.stateChanged, timeout=10_000, check_params_cb=lambda m, s, d: s == "sent"
    ):
        bridge.send_draft(draft, "work", lambda m, e: done.append((m, e)))
    message, error = done[0]
    assert error is None and isinstance(message, int)
    row = store.get(message)
    assert row.state is State.SENT and row.subject == "From the composer"
    assert {(r.address, r.kind) for r in row.recipients} == {
        ("bob@example.org", "to"),
        ("carol@example.org", "cc"),
    }
    assert b"<strong>Hello.</strong>" in server.messages[0].content


def test_send_draft_reports_a_bad_draft_and_queues_nothing(
    qtbot, bridge: OutboxBridge, store: OutboxStore, tmp_path: Path
) -> None:
    draft = Draft(
        sender=parse_address("ann@example.org"),
        to=(parse_address("bob@example.org"),),
        subject="Missing file",
        attachments=(tmp_path / "not-there.pdf",),
    )
    done: list[tuple[object, object]] = []
    bridge.send_draft(draft, "work", lambda m, e: done.append((m, e)))
    qtbot.waitUntil(lambda: bool(done), timeout=5_000)
    assert done[0][0] is None and "not-there.pdf" in str(done[0][1])
    assert store.messages() == []
    assert list((tmp_path / "data" / "spool").iterdir()) == []


def test_pause_retry_and_resolve(
    qtbot, bridge: OutboxBridge, store: OutboxStore, server, tmp_path
) -> None:
    bridge.pause_sending(True)
    bridge.start()
    message = enqueue(store, tmp_path, "Held")
    bridge.wake()
    qtbot.wait(300)
    assert store.get(message).state is State.QUEUED  # paused: not sent
    with qtbot.waitSignal(
        bridge.stateChanged, timeout=10_000, check_params_cb=lambda m, s, d: s == "sent"
    ):
        bridge.pause_sending(False)

    # A message whose reply was lost: the person says "send again".
    later = store.enqueue(
        build_message(
            Draft(
                sender=parse_address("ann@example.org"),
                to=(parse_address("bob@example.org"),),
                subject="Lost reply",
                body="Again?",
            ),
            spool_dir=tmp_path,
        ),
        account="work",
        due_at=time.time() + 3600,  # not picked up before it is made uncertain
    )
    with store._write() as db:  # the state a crash after the final "." leaves
        db.execute("UPDATE messages SET state = 'uncertain' WHERE id = ?", (later,))
    with qtbot.waitSignal(
        bridge.stateChanged,
        timeout=10_000,
        check_params_cb=lambda m, s, d: (m, s) == (later, "sent"),
    ):
        bridge.resolve_uncertain(later, sent=False)
    assert len(server.messages) == 2

    # Retrying a sent message is refused with the store's words.
    with qtbot.waitSignal(bridge.actionFailed, timeout=5_000) as failed:
        bridge.retry_now(later)
    assert "only a waiting or failed one" in failed.args[1]
