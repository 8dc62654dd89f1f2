"""The main window's flows against a real outbox, real composers and loopback servers."""

from __future__ import annotations

import dataclasses
import io
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

import pytest
from PySide6.QtCore import QCoreApplication, QEvent, QObject, Qt
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import QLabel

from mailer_gui.accounts.model import Account
from mailer_gui.accounts.store import AccountStore
from mailer_gui.message.addresses import parse_address
from mailer_gui.message.build import build_message
from mailer_gui.message.draft import Draft
from mailer_gui.outbox.store import OutboxStore, State
from mailer_gui.paths import AppPaths, ensure_private_dir, resolve_paths
from mailer_gui.preferences import Preferences, load_preferences, save_preferences
from mailer_gui.smtp.settings import AuthMethod, Security
from mailer_gui.ui.composer import ComposerWindow
from mailer_gui.ui.main_window import FIRST_PAINT_COLUMNS, UNCERTAIN_TOLD_MS, MainWindow
from mailer_gui.ui.outbox_model import COLUMNS, LAST_REPLY, NEXT_ATTEMPT, STATE, OutboxTableModel
from tests.servers.aiosmtpd_server import AiosmtpdServer, HeldReply
from tests.ui.homes import home_for, home_with_account
from tests.ui.many_rows import fill_outbox
from tests.ui.test_gui_thread import BlockingCalls


def open_window(qtbot, paths: AppPaths) -> MainWindow:
    """A window with its start-up finished (not shown: it finishes without a paint)."""
    window = MainWindow(paths, tray=False)
    qtbot.addWidget(window)
    qtbot.waitUntil(window.is_ready, timeout=10_000)
    return window


def only_composer(qtbot, window: MainWindow) -> ComposerWindow:
    qtbot.waitUntil(lambda: len(window.composers) == 1, timeout=10_000)
    return window.composers[0]


def write(composer: ComposerWindow, to: str, subject: str, body: str) -> None:
    composer.to_field.setText(to)
    composer.subject_field.setText(subject)
    composer.editor.setPlainText(body)


def window_writing(
    qtbot, tmp_path: Path, port: int, subject: str, body: str, to: str = "bob@example.org"
) -> tuple[MainWindow, ComposerWindow, AppPaths]:
    """A shown window with one composer, a message written in it."""
    paths = home_with_account(tmp_path, port)
    window = open_window(qtbot, paths)
    window.show()
    composer = window.open_composer()
    assert composer is not None
    write(composer, to, subject, body)
    return window, composer, paths


def greylisting(aiosmtpd_factory) -> tuple[AiosmtpdServer, list[str]]:
    """A server that answers the first RCPT with 451 and takes every later one,
    and the addresses it was asked for, in order."""
    tries: list[str] = []

    def greylist(address: str, options: list[str]) -> str | None:
        tries.append(address)
        return "451 4.7.1 Greylisted, try again later" if len(tries) == 1 else None

    return aiosmtpd_factory(on_rcpt=greylist), tries


def wait_for_notice(qtbot, window: MainWindow, title: str) -> str:
    """The text of the first notification called ``title``, once there is one."""
    qtbot.waitUntil(lambda: any(t == title for t, _ in window.notifications), timeout=15_000)
    return next(text for t, text in window.notifications if t == title)


def close_all(window: MainWindow) -> None:
    for composer in list(window.composers):
        composer.discard()
    window.close()


def test_first_start_shows_the_welcome(qtbot, tmp_path: Path) -> None:
    window = MainWindow(resolve_paths(tmp_path), tray=False)
    qtbot.addWidget(window)
    # No accounts file: the welcome is there for the first paint already.
    assert not window.is_ready()
    assert window.welcome is not None
    assert window.pages.currentWidget() is window.welcome
    qtbot.waitUntil(window.is_ready, timeout=10_000)
    assert window.welcome is not None
    assert window.pages.currentWidget() is window.welcome
    assert "No account yet" in window.status.text()
    window.open_composer()  # nothing to send from: the welcome says what to do
    assert window.composers == []
    window.close()


def queued_elsewhere(
    store: OutboxStore,
    paths: AppPaths,
    subject: str,
    *,
    account: str = "work",
    due_at: float | None = None,
) -> int:
    """A message queued through ``store``, as another Mailer (the command line)
    would queue it: from the account's address (the sandbox's for "sandbox")."""
    sandbox = account == "sandbox"
    draft = Draft(
        sender=parse_address("you@sandbox.test" if sandbox else "ann@example.org"),
        to=(parse_address("friend@sandbox.test" if sandbox else "bob@example.org"),),
        subject=subject,
        body="Hello.",
    )
    built = build_message(draft, spool_dir=paths.spool_dir)
    return store.enqueue(built, account=account, due_at=due_at, subject=subject)


def sandbox_trial(qtbot, tmp_path: Path) -> tuple[MainWindow, ComposerWindow, AppPaths]:
    """A window on a new home (no undo window) where the person chose "Try it
    with the built-in test server": the composer it opened."""
    paths = resolve_paths(tmp_path)
    ensure_private_dir(paths.config_dir)
    save_preferences(paths.preferences_file, Preferences(undo_seconds=0))
    window = open_window(qtbot, paths)
    assert window.welcome is not None
    window.welcome.trySandbox.emit()
    return window, only_composer(qtbot, window), paths


def test_try_the_sandbox_first_send_arrives(qtbot, tmp_path: Path, memory_keyring) -> None:
    window, composer, _ = sandbox_trial(qtbot, tmp_path)
    assert "friend@sandbox.test" in composer.to_field.text()
    composer.send()
    qtbot.waitUntil(lambda: window._folder_item("sent").text() == "Sent (1)", timeout=20_000)
    assert not window._folder_item("sandbox").isHidden()
    assert window.pages.currentWidget() is not window.welcome
    captured = window.sandbox.server.messages()
    assert len(captured) == 1
    # It logged in: the sandbox demands AUTH, and the password never reached the log.
    window.log.flush()
    assert "AUTH PLAIN" in window.log.text()
    assert window.sandbox.server.password not in window.log.text()
    close_all(window)


def test_the_sandbox_account_paused_for_a_password_sends_again_without_asking(
    qtbot, tmp_path: Path, memory_keyring
) -> None:
    """A command line with no keyring paused the sandbox's account ("needs
    password"): the window, which runs the sandbox and holds its password,
    resumes it instead of asking for a password the person was never shown."""
    from mailer_gui.outbox.policy import NEEDS_PASSWORD, Disposition, Verdict

    window, composer, paths = sandbox_trial(qtbot, tmp_path)
    composer.send()
    qtbot.waitUntil(lambda: window._folder_item("sent").text() == "Sent (1)", timeout=20_000)
    close_all(window)

    def paused_by_the_command_line(subject: str) -> None:
        store = OutboxStore(paths.database, paths.spool_dir)
        message = queued_elsewhere(store, paths, subject, account="sandbox")
        claimed = store.claim_next("cli", now=time.time(), lease=60)
        assert claimed is not None and claimed.id == message
        refused = Verdict(Disposition.PAUSE_ACCOUNT, "No password to be had.", NEEDS_PASSWORD)
        store.record_failure(message, "cli", refused, account="sandbox")
        assert store.paused_accounts()["sandbox"][0] == NEEDS_PASSWORD
        store.close()

    paused_by_the_command_line("While the window was closed")
    window = open_window(qtbot, paths)
    qtbot.waitUntil(lambda: window._folder_item("sent").text() == "Sent (2)", timeout=20_000)
    # And while it is open (once its own looks after that send are over): seen
    # within seconds, and sent.
    qtbot.wait(1000)
    paused_by_the_command_line("While the window was open")
    qtbot.waitUntil(lambda: window._folder_item("sent").text() == "Sent (3)", timeout=20_000)
    assert window.password_prompts == {}
    close_all(window)


def test_a_sandbox_message_deferred_while_it_was_stopped_goes_when_it_starts(
    qtbot, tmp_path: Path, memory_keyring
) -> None:
    """Sent from the command line while no window ran the sandbox: deferred
    ("not running"). The window starts the sandbox: the message goes then,
    not at its retry time."""
    from mailer_gui.outbox.policy import Disposition, Verdict

    window, composer, paths = sandbox_trial(qtbot, tmp_path)
    composer.send()
    qtbot.waitUntil(lambda: window._folder_item("sent").text() == "Sent (1)", timeout=20_000)
    close_all(window)  # the sandbox stops with it
    store = OutboxStore(paths.database, paths.spool_dir)
    message = queued_elsewhere(store, paths, "While it was stopped", account="sandbox")
    assert store.claim_next("cli", now=time.time(), lease=60) is not None
    stopped = Verdict(Disposition.DEFER, "Mailer's test server (the sandbox) is not running.")
    store.record_failure(message, "cli", stopped, account="sandbox")
    assert store.get(message).due_at > time.time() + 30  # its retry: a minute away
    store.close()

    window = open_window(qtbot, paths)
    qtbot.waitUntil(lambda: window._folder_item("sent").text() == "Sent (2)", timeout=15_000)
    close_all(window)


def test_a_message_the_window_cannot_take_back_is_explained(qtbot, tmp_path: Path) -> None:
    """Left "sending" by a Mailer that died, with the marks folder unreadable:
    the status bar says why it stays so, instead of "Sending…" and no word."""
    paths = home_with_account(tmp_path, 9)
    store = OutboxStore(paths.database, paths.spool_dir)
    queued_elsewhere(store, paths, "Interrupted", due_at=time.time() - 700)
    assert store.claim_next("gone", now=time.time() - 600, lease=1) is not None
    store.close()
    marks = paths.database.with_name(paths.database.name + ".marks")
    if marks.exists():
        for path in marks.iterdir():
            path.unlink()
        marks.rmdir()
    marks.write_text("not a folder")
    window = open_window(qtbot, paths)
    qtbot.waitUntil(lambda: str(marks) in window.status.text(), timeout=10_000)
    window.close()


def test_paused_sending_stays_paused_after_a_restart(
    qtbot, tmp_path: Path, aiosmtpd_factory
) -> None:
    """Paused when Mailer quit: the next start sends nothing until resumed."""
    server = aiosmtpd_factory()
    paths = home_with_account(tmp_path, server.port)
    window = open_window(qtbot, paths)
    window.pause_action.trigger()
    window.close()

    window = open_window(qtbot, paths)
    assert window.pause_action.isChecked() and window.bridge.runner.paused
    assert window.status.text().startswith("Sending is paused")
    composer = window.open_composer()
    assert composer is not None
    write(composer, "bob@example.org", "Held", "Hello.")
    composer.send()
    qtbot.waitUntil(lambda: window._folder_item("outbox").text() == "Outbox (1)", timeout=5_000)
    qtbot.wait(1000)
    assert server.messages == []  # nothing goes while paused
    window.pause_action.trigger()  # resumed
    qtbot.waitUntil(lambda: len(server.messages) == 1, timeout=10_000)
    close_all(window)

    window = open_window(qtbot, paths)
    assert not window.pause_action.isChecked() and not window.bridge.runner.paused
    window.close()


def outbox_on_closed_port(qtbot, tmp_path: Path) -> tuple[MainWindow, AppPaths]:
    """A window showing its Outbox, its account's server a closed port
    (nothing it queues for tomorrow is tried before the test ends)."""
    paths = home_for(
        tmp_path,
        Account(name="work", email="ann@example.org", host="127.0.0.1", port=9,
                security=Security.NONE, auth=AuthMethod.NONE),
    )  # fmt: skip
    window = open_window(qtbot, paths)
    window.show_folder("outbox")
    return window, paths


def test_a_message_queued_by_the_command_line_shows_in_the_open_window(
    qtbot, tmp_path: Path
) -> None:
    """Another Mailer (here the command line's store) queues and cancels: the
    window's Outbox shows it within seconds, without a click."""
    window, paths = outbox_on_closed_port(qtbot, tmp_path)
    other = OutboxStore(paths.database, paths.spool_dir)
    later = time.time() + 86400  # sent tomorrow: it stays in the Outbox
    message = queued_elsewhere(other, paths, "From a terminal", due_at=later)
    qtbot.waitUntil(lambda: window.model.row_of(message) is not None, timeout=10_000)
    qtbot.waitUntil(lambda: window._folder_item("outbox").text() == "Outbox (1)", timeout=5_000)
    other.cancel(message)
    qtbot.waitUntil(lambda: window.model.row_of(message) is None, timeout=10_000)
    other.close()
    window.close()


def test_a_message_sent_while_its_server_asked_for_a_pause_waits_with_the_others(
    qtbot, tmp_path: Path, aiosmtpd_factory
) -> None:
    """After a 421 ("too many connections") the account's messages wait for the
    first one's retry. A message written and sent meanwhile joins them, shown
    with that time, instead of asking the server again at once."""
    mails: list[str] = []

    def busy(address: str, options: list[str]) -> str:
        mails.append(address)
        return "421 4.7.0 Too many connections from your address, try again later"

    server = aiosmtpd_factory(on_mail=busy)
    window, composer, paths = window_writing(qtbot, tmp_path, server.port, "Later", "Hi.")
    store = window.bridge.store
    first = queued_elsewhere(store, paths, "First")
    window.bridge.wake()
    qtbot.waitUntil(lambda: store.get(first).state is State.DEFERRED, timeout=15_000)
    until = store.get(first).due_at
    composer.send()
    qtbot.waitUntil(
        lambda: any(r.subject == "Later" and r.due_at == until for r in store.messages()),
        timeout=15_000,
    )
    (later,) = [r for r in store.messages() if r.subject == "Later"]
    assert later.state is State.QUEUED and later.attempts == 0
    assert len(mails) == 1
    close_all(window)


def test_deferrals_that_come_together_are_told_in_one_notification(
    qtbot, tmp_path: Path, aiosmtpd_factory
) -> None:
    """Three messages deferred in the same moment (a mailbox server that is
    busy for all of them): one notification says so, not three."""
    server = aiosmtpd_factory(on_rcpt=lambda address, options: "451 4.2.1 Mailbox busy")
    paths = home_with_account(tmp_path, server.port)
    store = OutboxStore(paths.database, paths.spool_dir)
    for subject in ("One", "Two", "Three"):
        queued_elsewhere(store, paths, subject)
    store.close()
    window = open_window(qtbot, paths)
    text = wait_for_notice(qtbot, window, "Sending deferred: 3 messages")
    assert text.startswith("“One” and 2 other messages will be tried again at ")
    assert "Mailbox busy" in text
    qtbot.wait(2_000)  # nothing more comes for them
    titles = [title for title, _ in window.notifications]
    assert titles == ["Sending deferred: 3 messages"], titles
    window.close()


def test_a_cancelled_message_stays_shown_and_a_second_cancel_falls_on_no_other(
    qtbot, tmp_path: Path
) -> None:
    """Cancel takes a waiting message out of the Outbox: the pane goes on
    showing it, cancelled, and no other row is chosen in its place, so a
    second press of Cancel cannot cancel the next message."""
    window, paths = outbox_on_closed_port(qtbot, tmp_path)
    other = OutboxStore(paths.database, paths.spool_dir)
    later = time.time() + 86400  # sent tomorrow: they stay in the Outbox
    first = queued_elsewhere(other, paths, "First", due_at=later)
    second = queued_elsewhere(other, paths, "Second", due_at=later)
    other.close()
    qtbot.waitUntil(lambda: window.model.row_of(second) is not None, timeout=10_000)
    assert window.select_message(first)
    qtbot.waitUntil(lambda: window.detail.state_text().startswith("Scheduled"), timeout=5_000)
    window.detail.cancel_action.trigger()
    qtbot.waitUntil(lambda: window.model.row_of(first) is None, timeout=10_000)
    qtbot.waitUntil(lambda: window.detail.state_text() == "Cancelled", timeout=5_000)
    assert window.detail.message_id == first
    assert not window.table.selectionModel().currentIndex().isValid()
    assert not window.detail.cancel_action.isEnabled()
    window.detail.cancel_action.trigger()  # a second press: nothing to cancel
    qtbot.wait(300)
    assert window.bridge.store.get(second).state is State.SCHEDULED
    window.close()


def test_compose_send_goes_to_sent_with_its_transcript(
    qtbot, tmp_path: Path, aiosmtpd_factory
) -> None:
    server = aiosmtpd_factory()
    window = open_window(qtbot, home_with_account(tmp_path, server.port))
    window.new_action.trigger()
    composer = only_composer(qtbot, window)
    write(composer, "bob@example.org", "From the composer", "**Hello** Bob.")
    composer.send_action.trigger()
    qtbot.waitUntil(lambda: window._folder_item("sent").text() == "Sent (1)", timeout=15_000)
    assert b"<strong>Hello</strong>" in server.messages[0].content
    window.show_folder("sent")
    qtbot.waitUntil(lambda: window.model.rowCount() == 1, timeout=5_000)
    # The server's last word on it: the reply to its final ".", not the RCPT's.
    assert window.model.index(0, LAST_REPLY).data() == "250 2.0.0 OK: queued"
    assert window.select_message(window.model.index(0, 0).data(256))
    qtbot.waitUntil(lambda: "Sent" in window.detail.attempts_text(), timeout=5_000)
    assert window.detail.state_text().startswith("Sent at ")
    message = window.detail.message_id
    assert message is not None
    (attempt,) = window.bridge.store.attempts(message)
    assert "DATA" in attempt.transcript and "250" in attempt.transcript
    close_all(window)


def test_undo_within_the_window_stops_the_send(qtbot, tmp_path: Path, aiosmtpd_factory) -> None:
    server = aiosmtpd_factory()
    window = open_window(qtbot, home_with_account(tmp_path, server.port, undo_seconds=30))
    composer = window.open_composer()
    assert composer is not None
    write(composer, "bob@example.org", "Second thoughts", "I take it back.")
    composer.send()
    qtbot.waitUntil(lambda: window.countdown.pending() != [], timeout=10_000)
    assert window.countdown.label.text().startswith("Sending “Second thoughts” in ")
    assert "Sent" not in window.countdown.label.text()
    message = window.countdown.pending()[0]
    qtbot.waitUntil(lambda: composer not in window.composers, timeout=10_000)

    window.countdown.button.click()
    back = only_composer(qtbot, window)
    assert back.subject_field.text() == "Second thoughts"
    assert "bob@example.org" in back.to_field.text()
    assert "I take it back." in back.editor.toPlainText()
    assert back.body_format() == "markdown"  # as written, not read back as plain text
    assert window.countdown.pending() == []
    # Back in Drafts, and gone from the outbox: it never left, so it is not
    # among the failed (or cancelled) ones.
    from mailer_gui.message.drafts import DraftStore
    from mailer_gui.outbox.store import NotFound

    drafts = DraftStore.for_paths(window.paths)
    qtbot.waitUntil(lambda: len(drafts.list().drafts) == 1, timeout=5_000)
    qtbot.waitUntil(lambda: window.bridge.store.counts() == {}, timeout=5_000)
    with pytest.raises(NotFound):
        window.bridge.store.get(message)
    assert list(window.bridge.store.spool_dir.iterdir()) == []
    qtbot.waitUntil(lambda: window._folder_item("failed").text() == "Failed", timeout=5_000)
    assert server.messages == []
    back.close()
    assert back.close_question is None
    qtbot.waitUntil(lambda: back not in window.composers, timeout=5_000)
    (kept,) = drafts.list().drafts
    assert kept.subject == "Second thoughts" and "I take it back." in kept.body
    close_all(window)


def test_a_5xx_is_explained_in_the_detail_pane(qtbot, tmp_path: Path, aiosmtpd_factory) -> None:
    server = aiosmtpd_factory(
        rcpt_replies={"nobody@example.org": "550 5.1.1 <nobody@example.org>: user unknown"}
    )
    window = open_window(qtbot, home_with_account(tmp_path, server.port))
    composer = window.open_composer()
    assert composer is not None
    write(composer, "nobody@example.org", "To nobody", "Hello?")
    composer.send()
    qtbot.waitUntil(lambda: window._folder_item("failed").text() == "Failed (1)", timeout=15_000)
    assert window.notifications and window.notifications[-1][0] == "Sending failed"
    window.show_folder("failed")
    qtbot.waitUntil(lambda: window.model.rowCount() == 1, timeout=5_000)
    window.table.selectRow(0)
    qtbot.waitUntil(lambda: "550" in window.detail.recipients_text(), timeout=5_000)
    assert "does not exist" in window.detail.recipients_text().lower() or (
        "unknown" in window.detail.recipients_text().lower()
    )
    close_all(window)


def test_edit_as_new_sends_from_the_account_the_message_came_from(
    qtbot, tmp_path: Path, aiosmtpd_factory
) -> None:
    """Edit as new on a message sent from a second account opened it from the
    first one (the new message would have gone from the wrong address)."""
    server = aiosmtpd_factory(rcpt_replies={"gone@example.org": "550 5.1.1 No such user"})
    paths = home_with_account(tmp_path, server.port)
    AccountStore(paths.accounts_file).add(
        Account(name="other", email="otto@example.org", host="localhost", port=server.port,
                security=Security.NONE, auth=AuthMethod.NONE)
    )  # fmt: skip
    window = open_window(qtbot, paths)
    composer = window.open_composer()
    assert composer is not None
    senders = [account.name for account, _ in composer._senders]
    composer.from_box.setCurrentIndex(senders.index("other"))
    write(composer, "gone@example.org", "From Otto", "Hello.")
    composer.send()
    qtbot.waitUntil(lambda: window._folder_item("failed").text() == "Failed (1)", timeout=15_000)
    window.show_folder("failed")
    qtbot.waitUntil(lambda: window.model.rowCount() == 1, timeout=5_000)
    assert window.select_message(window.model.index(0, 0).data(256))
    qtbot.waitUntil(lambda: window.detail.edit_action.isEnabled(), timeout=5_000)
    window.detail.edit_action.trigger()
    again = only_composer(qtbot, window)
    sender = again.current_sender()
    assert sender is not None and sender[0].name == "other"
    assert sender[1].email == "otto@example.org"
    close_all(window)


def test_a_new_retry_schedule_moves_the_next_try_of_a_waiting_message(
    qtbot, tmp_path: Path, aiosmtpd_factory
) -> None:
    """Settings apply at once: a message deferred under the old schedule waits
    by the new one, and its next try happens then."""
    import dataclasses

    server, tries = greylisting(aiosmtpd_factory)
    window, composer, _ = window_writing(qtbot, tmp_path, server.port, "Soon", "Again.")
    composer.send()
    wait_for_notice(qtbot, window, "Sending deferred")
    store = window.bridge.store
    (waiting,) = store.messages([State.DEFERRED])
    assert waiting.due_at - time.time() > 50  # a minute, by the default schedule
    assert window.status.text().startswith("Sending deferred")
    window.apply_preferences(dataclasses.replace(window.preferences, retry_delays=(3600,)))
    qtbot.waitUntil(lambda: store.get(waiting.id).due_at - time.time() > 3000, timeout=5_000)
    qtbot.waitUntil(lambda: window.status.text() == "", timeout=5_000)  # its time was the old
    window.apply_preferences(dataclasses.replace(window.preferences, retry_delays=(1,)))
    wait_for_notice(qtbot, window, "Sent after all")  # a second later, not a minute
    assert len(server.messages) == 1 and len(tries) == 2
    close_all(window)


def test_a_message_the_command_line_deferred_is_announced_when_sent_after_all(
    qtbot, tmp_path: Path, aiosmtpd_factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mailer_gui import cli

    server, _ = greylisting(aiosmtpd_factory)
    paths = home_with_account(tmp_path, server.port)
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))  # no terminal to ask at
    home = str(paths.config_dir.parent)
    args = ["--home", home, "send", "--to", "bob@example.org", "--subject", "Late", "--body", "Hi"]
    assert cli.main(args) == cli.EX_TEMPFAIL
    window = open_window(qtbot, paths)
    window.show_folder("outbox")
    qtbot.waitUntil(lambda: window.model.rowCount() == 1, timeout=5_000)
    window.send_now_action.trigger()
    text = wait_for_notice(qtbot, window, "Sent after all")
    assert text == "“Late” was delivered."
    close_all(window)


def test_a_new_message_does_not_wait_for_the_accounts_retry_time(
    qtbot, tmp_path: Path, aiosmtpd_factory
) -> None:
    """The server could not be reached, so the account waits for its next try;
    the person fixes it and presses Send on a new message: that one goes now,
    not after a minute with "Sending soon" shown."""
    server = aiosmtpd_factory()
    window, composer, paths = window_writing(qtbot, tmp_path, 9, "First", "Hi.")  # closed port
    composer.send()
    wait_for_notice(qtbot, window, "Sending deferred")
    accounts = AccountStore(paths.accounts_file)
    accounts.replace("work", dataclasses.replace(accounts.get("work"), port=server.port))
    second = window.open_composer()
    assert second is not None
    write(second, "bob@example.org", "Second", "Hello again.")
    second.send()
    qtbot.waitUntil(lambda: len(server.messages) == 1, timeout=10_000)
    assert server.messages[0].content.count(b"Subject: Second") == 1
    (waiting,) = window.bridge.store.messages([State.DEFERRED])
    assert waiting.subject == "First"  # it keeps its own retry time
    close_all(window)


def test_a_message_refused_by_one_of_its_recipients_is_announced(
    qtbot, tmp_path: Path, aiosmtpd_factory
) -> None:
    """Sent to one, refused for good by the other: said at once, with who and why."""
    server = aiosmtpd_factory(rcpt_replies={"gone@example.org": "550 5.1.1 No such user"})
    window, composer, _ = window_writing(
        qtbot, tmp_path, server.port, "Half", "Hello.", to="bob@example.org, gone@example.org"
    )
    composer.send()
    text = wait_for_notice(qtbot, window, "Sent, not to everyone")
    assert text.startswith("“Half” went to some of its recipients only.")
    assert "Refused for good: gone@example.org: No such user" in text
    assert len(server.wait_for_messages(1)) == 1
    close_all(window)


def test_deferred_then_sent_is_announced(qtbot, tmp_path: Path, aiosmtpd_factory) -> None:
    server, _ = greylisting(aiosmtpd_factory)
    window, composer, _ = window_writing(qtbot, tmp_path, server.port, "Greylisted", "Again.")
    composer.send()
    wait_for_notice(qtbot, window, "Sending deferred")
    window.send_now_action.trigger()  # the person does not want to wait a minute
    wait_for_notice(qtbot, window, "Sent after all")
    assert len(server.messages) == 1
    close_all(window)


def test_a_deferral_tells_refused_recipients_from_those_tried_again(
    qtbot, tmp_path: Path, aiosmtpd_factory
) -> None:
    """One recipient refused for good, one deferred: "will be tried again" must
    not seem to cover the one refused."""
    server = aiosmtpd_factory(
        rcpt_replies={
            "bad@example.org": "550 5.1.1 User unknown",
            "later@example.org": "451 4.2.1 Mailbox busy",
        }
    )
    window, composer, _ = window_writing(
        qtbot, tmp_path, server.port, "Mixed", "Hi.",
        to="good@example.org, bad@example.org, later@example.org",
    )  # fmt: skip
    composer.send()
    text = wait_for_notice(qtbot, window, "Sending deferred")
    (waiting,) = window.bridge.store.messages([State.DEFERRED])
    at = datetime.fromtimestamp(waiting.due_at)
    when = at.strftime("%H:%M" if at.date() == datetime.now().date() else "%Y-%m-%d %H:%M")
    assert text == (
        f"“Mixed” will be tried again at {when}. Refused for good: bad@example.org: User "
        "unknown. To be tried again: later@example.org: Mailbox busy."
    )
    # A second deferral: in the status bar with its time, not in the tray again.
    window.send_now_action.trigger()
    store = window.bridge.store
    qtbot.waitUntil(
        lambda: (
            len(store.attempts(waiting.id)) == 2 and store.get(waiting.id).state is State.DEFERRED
        ),
        timeout=15_000,
    )
    again = "Sending deferred: “Mixed” will be tried again at "
    qtbot.waitUntil(lambda: window.status.text().startswith(again), timeout=5_000)
    assert f"at {when}." not in window.status.text()  # the new time
    assert [title for title, _ in window.notifications].count("Sending deferred") == 1
    close_all(window)


def test_passing_news_leaves_the_status_bar(
    qtbot, tmp_path: Path, aiosmtpd_factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ "Sending resumed." does not stay for the rest of the session; a line that
    took its place stays, and so does "paused" while it is true."""
    import mailer_gui.ui.main_window as main_window

    monkeypatch.setattr(main_window, "PASSING_STATUS_MS", 200)
    server = aiosmtpd_factory()
    window = open_window(qtbot, home_with_account(tmp_path, server.port))
    window.pause_action.trigger()
    qtbot.wait(400)
    assert window.status.text().startswith("Sending is paused")
    window.pause_action.trigger()
    assert window.status.text() == "Sending resumed."
    qtbot.waitUntil(lambda: window.status.text() == "", timeout=5_000)
    window.show_status("Sending resumed.", passing=True)
    window.show_status("Something that stays.")
    qtbot.wait(400)
    assert window.status.text() == "Something that stays."
    close_all(window)


def test_a_long_status_line_does_not_move_the_window(
    qtbot, tmp_path: Path, aiosmtpd_factory
) -> None:
    """A long explanation in the status bar is cut short (whole in its tooltip),
    not wrapped onto a second line that pushed everything above it up."""
    server = aiosmtpd_factory()
    window = open_window(qtbot, home_with_account(tmp_path, server.port))
    window.resize(800, 600)
    window.show()
    qtbot.waitExposed(window)
    window.show_status("Short.")
    qtbot.wait(50)
    height, table_top = (
        window.statusBar().height(),
        window.table.mapTo(window, window.table.rect().topLeft()).y(),
    )
    long = "Sending deferred: " + "the server said something rather long. " * 12 + "\nAnd more."
    window.show_status(long)
    qtbot.wait(50)
    assert window.statusBar().height() == height
    assert window.table.mapTo(window, window.table.rect().topLeft()).y() == table_top
    assert window.width() == 800  # nor wider
    assert window.status.text() == long and window.status.toolTip() == long
    shown = QLabel.text(window.status)
    assert shown.endswith("…") and "\n" not in shown and len(shown) < len(long)
    close_all(window)


def test_pause_holds_messages_until_resumed(qtbot, tmp_path: Path, aiosmtpd_factory) -> None:
    server = aiosmtpd_factory()
    window = open_window(qtbot, home_with_account(tmp_path, server.port))
    window.pause_action.trigger()
    assert window.bridge.runner.paused
    composer = window.open_composer()
    assert composer is not None
    write(composer, "bob@example.org", "Held back", "Later.")
    composer.send()
    qtbot.waitUntil(lambda: window._folder_item("outbox").text() == "Outbox (1)", timeout=10_000)
    qtbot.wait(300)
    assert server.messages == []
    # The outbox says why it waits (not "Sending soon"), in the table and the pane.
    window.show_folder("outbox")
    qtbot.waitUntil(lambda: window.model.rowCount() == 1, timeout=5_000)
    qtbot.waitUntil(
        lambda: window.model.index(0, STATE).data() == "Waiting: sending is paused",
        timeout=5_000,
    )
    assert window.select_message(window.model.index(0, 0).data(256))
    qtbot.waitUntil(lambda: "sending is paused" in window.detail.state_text(), timeout=5_000)
    # Send now on it says why nothing happens yet.
    window.detail.retry_action.trigger()
    qtbot.waitUntil(lambda: "Sending is paused" in window.detail.banner_text(), timeout=5_000)
    assert server.messages == []
    window.pause_action.trigger()
    qtbot.waitUntil(lambda: window._folder_item("sent").text() == "Sent (1)", timeout=15_000)
    qtbot.waitUntil(lambda: window.detail.banner_text() == "", timeout=5_000)  # over
    close_all(window)


def test_a_mailto_request_fills_a_composer(qtbot, tmp_path: Path, aiosmtpd_factory) -> None:
    server = aiosmtpd_factory()
    window = open_window(qtbot, home_with_account(tmp_path, server.port))
    window.open_request("mailto:bob@example.org?cc=carol@example.org&subject=Lunch%20Friday")
    composer = only_composer(qtbot, window)
    assert composer.to_field.text() == "bob@example.org"
    assert composer.cc_field.text() == "carol@example.org"
    assert composer.subject_field.text() == "Lunch Friday"
    close_all(window)


def saved_draft(qtbot, window: MainWindow, subject: str, body: str) -> ComposerWindow:
    """A new composer's message to bob@example.org, saved as a draft (Ctrl+S)."""
    composer = window.open_composer()
    assert composer is not None
    write(composer, "bob@example.org", subject, body)
    saved: list[bool] = []
    composer.save_draft(saved.append)
    qtbot.waitUntil(lambda: saved == [True], timeout=5_000)
    return composer


def test_drafts_folder_lists_and_reopens_autosaved_drafts(
    qtbot, tmp_path: Path, aiosmtpd_factory
) -> None:
    server = aiosmtpd_factory()
    paths = home_with_account(tmp_path, server.port)
    window = open_window(qtbot, paths)
    composer = saved_draft(qtbot, window, "Unfinished", "Half a thought")
    composer.close()  # saved: closes without asking
    qtbot.waitUntil(lambda: window.composers == [], timeout=5_000)
    window.show_folder("drafts")
    qtbot.waitUntil(lambda: window.drafts_list.count() == 1, timeout=5_000)
    assert window._folder_item("drafts").text() == "Drafts (1)"
    window.drafts_list.itemActivated.emit(window.drafts_list.item(0))
    reopened = only_composer(qtbot, window)
    assert reopened.subject_field.text() == "Unfinished"
    assert reopened.editor.toPlainText().startswith("Half a thought")
    close_all(window)


def test_a_sent_draft_leaves_the_drafts_count(qtbot, tmp_path: Path, aiosmtpd_factory) -> None:
    # The composer closes when it sends; its draft is deleted after that, and
    # the folder count must follow even though the window is gone by then.
    server = aiosmtpd_factory()
    window = open_window(qtbot, home_with_account(tmp_path, server.port))
    composer = saved_draft(qtbot, window, "Finished after all", "Done.")
    qtbot.waitUntil(lambda: window._folder_item("drafts").text() == "Drafts (1)", timeout=5_000)
    composer.send()
    qtbot.waitUntil(lambda: window._folder_item("sent").text() == "Sent (1)", timeout=15_000)
    qtbot.waitUntil(lambda: window._folder_item("drafts").text() == "Drafts", timeout=5_000)
    assert window.drafts.list().drafts == ()
    close_all(window)


def test_settings_apply_without_a_restart(qtbot, tmp_path: Path, aiosmtpd_factory) -> None:
    server = aiosmtpd_factory()
    paths = home_with_account(tmp_path, server.port)
    window = open_window(qtbot, paths)
    window.open_settings()
    assert window.settings_dialog is not None
    changed = dataclasses.replace(
        window.preferences, max_connections=2, undo_seconds=25, retry_delays=(120, 600)
    )
    window.settings_dialog.preferencesChanged.emit(changed)
    assert window.bridge.runner.max_connections == 2
    assert window.bridge.store.policy == changed.retry_policy()
    composer = window.open_composer()
    assert composer is not None
    assert composer._undo_seconds == 25
    close_all(window)
    assert load_preferences(paths.preferences_file).undo_seconds == 0  # the dialog saves


def test_window_layout_is_remembered(qtbot, tmp_path: Path) -> None:
    paths = home_with_account(tmp_path, 9)
    window = open_window(qtbot, paths)
    window.resize(640, 470)  # within the offscreen screen, which restoreGeometry respects
    window.log.hide()
    window.show()
    window.message_split.setSizes([120, 200])
    sizes = window.message_split.sizes()
    window.close()
    again = MainWindow(paths, tray=False)
    qtbot.addWidget(again)
    with qtbot.waitSignal(again.ready, timeout=10_000):
        again.show()
    assert (again.width(), again.height()) == (640, 470)
    assert not again.log.isVisibleTo(again)
    # The detail pane, made after the first paint, takes the size saved for it.
    assert again.detail.isVisibleTo(again.message_split.widget(1))
    assert again.message_split.sizes() == sizes
    again.close()


class PaintsAndReady(QObject):
    """Notes, in order, the window's paint events and its `ready` signal."""

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.seen: list[str] = []
        window.installEventFilter(self)
        window.ready.connect(lambda: self.seen.append("ready"))

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.Paint:
            self.seen.append("paint")
        return False


def test_the_window_paints_before_it_loads_the_outbox(qtbot, queued_home) -> None:
    paths, _server = queued_home
    window = MainWindow(paths, tray=False)
    qtbot.addWidget(window)
    order = PaintsAndReady(window)
    # What the first paint shows: the folders and the table's header, no outbox yet.
    assert not window.is_ready()
    table_model = window.table.model()
    assert not isinstance(table_model, OutboxTableModel)
    assert [
        table_model.headerData(c, Qt.Orientation.Horizontal) for c in range(len(COLUMNS))
    ] == list(COLUMNS)
    with qtbot.waitSignal(window.ready, timeout=10_000):
        window.show()
    assert order.seen[0] == "paint"
    assert order.seen.count("ready") == 1
    # Then the whole window: the folder's messages, the detail pane, counts, sending.
    assert window.table.model() is window.model
    assert window.detail.isVisibleTo(window.message_split.widget(1))
    qtbot.waitUntil(lambda: window._folder_item("sent").text() == "Sent (1)", timeout=10_000)
    window.finish_startup()  # a second call changes nothing
    assert window.table.model() is window.model
    window.close()


def test_the_detail_pane_gets_the_room_after_the_paint(qtbot, tmp_path: Path) -> None:
    """No saved layout: the table shows a few rows and the late detail pane the rest."""
    window = MainWindow(home_with_account(tmp_path, 9), tray=False)
    qtbot.addWidget(window)
    with qtbot.waitSignal(window.ready, timeout=10_000):
        window.show()
    table, detail = window.message_split.sizes()
    assert 120 <= table <= 240
    assert detail > table
    window.close()


def test_the_first_paint_shows_the_outbox_models_columns() -> None:
    assert FIRST_PAINT_COLUMNS == COLUMNS


def test_a_request_before_start_up_finished_waits_for_it(
    qtbot, tmp_path: Path, aiosmtpd_factory
) -> None:
    server = aiosmtpd_factory()
    window = MainWindow(home_with_account(tmp_path, server.port), tray=False)
    qtbot.addWidget(window)
    window.open_request("mailto:bob@example.org?subject=Early")
    assert window.composers == []
    composer = only_composer(qtbot, window)
    assert window.is_ready()
    assert composer.subject_field.text() == "Early"
    close_all(window)


def test_an_early_action_finishes_start_up_first(qtbot, tmp_path: Path) -> None:
    window = MainWindow(home_with_account(tmp_path, 9), tray=False)
    qtbot.addWidget(window)
    window.pause_action.trigger()  # before any event ran: the shortcut pressed at once
    assert window.is_ready()
    assert window.bridge.runner.paused
    window.close()


def test_closed_before_start_up_finished_it_never_does(qtbot, tmp_path: Path) -> None:
    paths = home_with_account(tmp_path, 9)
    window = MainWindow(paths, tray=False)
    qtbot.addWidget(window)
    window.close()
    for _ in range(3):  # the start-up timer (0 ms) would have fired by now
        QCoreApplication.processEvents()
    assert not window.is_ready()
    assert not paths.database.exists()  # the outbox was never opened


FIRST_PAINT_IMPORTS = """
import sys
from PySide6.QtWidgets import QApplication
from mailer_gui.paths import resolve_paths
from mailer_gui.ui.main_window import MainWindow

app = QApplication(["mailer-gui"])
window = MainWindow(resolve_paths(sys.argv[1]), tray=False)
heavy = sorted(
    name for name in sys.modules
    if name.split(".")[0] in ("keyring", "dns", "markdown", "pygments", "aiosmtpd", "asyncio")
    or name.startswith(("mailer_gui.outbox", "mailer_gui.smtp", "mailer_gui.message",
                        "mailer_gui.accounts", "mailer_gui.sandbox", "mailer_gui.ui.composer",
                        "mailer_gui.ui.wizard", "mailer_gui.ui.settings",
                        "mailer_gui.ui.sandbox_view", "mailer_gui.ui.detail_pane",
                        "mailer_gui.ui.bridge", "mailer_gui.ui.outbox_model"))
)
print(" ".join(heavy) or "none")
"""


def modules_loaded_by(script: str, paths: AppPaths) -> str:
    """What ``script`` prints, run in a fresh offscreen process with ``paths``' home."""
    done = subprocess.run(
        [sys.executable, "-c", script, str(paths.config_dir.parent)],
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(os.environ, QT_QPA_PLATFORM="offscreen"),
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_the_first_paint_needs_no_heavy_module(tmp_path: Path) -> None:
    """Built for its first paint, the window has loaded no outbox, SMTP, Markdown or keyring."""
    paths = home_with_account(tmp_path, 9)
    assert modules_loaded_by(FIRST_PAINT_IMPORTS, paths) == "none"
    assert paths.accounts_file.exists()  # the window above had an account to show


READY_IMPORTS = """
import sys
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication
from mailer_gui.paths import resolve_paths
from mailer_gui.ui.main_window import MainWindow

app = QApplication(["mailer-gui"])
window = MainWindow(resolve_paths(sys.argv[1]), tray=False)
window.ready.connect(app.quit)
QTimer.singleShot(30_000, app.quit)
window.show()
app.exec()
assert window.is_ready()
later = sorted(
    name for name in sys.modules
    if name.split(".")[0] in ("keyring", "markdown", "pygments")
    or name.startswith(("mailer_gui.ui.composer", "mailer_gui.ui.wizard",
                        "mailer_gui.ui.settings"))
)
print(" ".join(later) or "none")
window.close()
"""


def test_start_up_loads_no_dialog_and_no_keyring(tmp_path: Path) -> None:
    """Once ready, the window has still not loaded what only the composer,
    the wizard, Settings or a password needs."""
    assert modules_loaded_by(READY_IMPORTS, home_with_account(tmp_path, 9)) == "none"


def test_ten_thousand_messages_open_off_the_gui_thread(qtbot, tmp_path: Path) -> None:
    paths = home_with_account(tmp_path, 9)
    ensure_private_dir(paths.data_dir)
    fill_outbox(paths.database, paths.spool_dir, 10_000)
    # The database is opened (and migrated) once, on a worker as start-up
    # finishes; from then on the GUI thread never waits on it either.
    window = open_window(qtbot, paths)
    hook = BlockingCalls()
    assert threading.current_thread() is threading.main_thread()
    sys.setprofile(hook)
    try:
        window.show()
        qtbot.waitUntil(lambda: window.model.rowCount() == 10_000, timeout=30_000)
        window.table.sortByColumn(0, window.table.horizontalHeader().sortIndicatorOrder())
        window.table.scrollToBottom()
    finally:
        sys.setprofile(None)
    assert hook.seen == []
    subjects = {window.model.index(r, 0).data() for r in (0, 9_999)}
    assert subjects == {"Message 00000", "Message 09999"}
    window.close()


def queue_message(
    store: OutboxStore, folder: Path, subject: str, *, due_at: float | None = None
) -> int:
    """A message from the home's account to bob@example.org, in the outbox."""
    draft = Draft(
        sender=parse_address("ann@example.org"),
        to=(parse_address("bob@example.org"),),
        subject=subject,
        body="Hello.",
    )
    built = build_message(draft, spool_dir=folder)
    return store.enqueue(built, account="work", subject=subject, due_at=due_at)


def test_a_failure_is_told_by_subject_while_another_page_is_shown(
    qtbot, tmp_path: Path, aiosmtpd_factory
) -> None:
    """With the Drafts (or the sandbox) page up, a failure said "message 12"."""
    server = aiosmtpd_factory(rcpt_replies={"bob@example.org": "550 5.1.1 No such user"})
    paths = home_with_account(tmp_path, server.port)
    window = open_window(qtbot, paths)
    window.show_folder("drafts")
    queue_message(window.bridge.store, tmp_path, "Quarterly numbers")  # as the CLI would
    window.bridge.wake()
    text = wait_for_notice(qtbot, window, "Sending failed")
    assert text.startswith("“Quarterly numbers” could not be sent.")
    close_all(window)


@pytest.fixture
def queued_home(tmp_path: Path, aiosmtpd_factory) -> tuple[AppPaths, object]:
    server = aiosmtpd_factory()
    paths = home_with_account(tmp_path, server.port)
    store = OutboxStore(paths.database, paths.spool_dir)
    queue_message(store, tmp_path, "From the window")
    store.close()
    return paths, server


def test_a_queued_message_goes_to_sent_live(qtbot, queued_home) -> None:
    paths, _server = queued_home
    window = open_window(qtbot, paths)
    qtbot.waitUntil(lambda: window._folder_item("sent").text() == "Sent (1)", timeout=10_000)
    assert window._folder_item("outbox").text() == "Outbox"
    window.show_folder("sent")
    qtbot.waitUntil(lambda: window.model.rowCount() == 1, timeout=5_000)
    assert window.model.index(0, 0).data() == "From the window"
    window.log.flush()
    assert "S: 250" in window.log.text()
    window.close()


@pytest.mark.skipif(sys.platform == "win32", reason="flock: leases alone on Windows")
def test_a_send_cut_short_by_a_kill_is_announced_uncertain_when_the_window_opens(
    qtbot, tmp_path: Path, aiosmtpd_factory
) -> None:
    """The window before was killed after a message's final "." left: its lease
    runs for two minutes yet, but its process is gone, so the window opened now
    takes the message back at once, as uncertain, and says what that means."""
    from mailer_gui.outbox.marks import EndMarks, RunnerLock

    server = aiosmtpd_factory()
    paths = home_with_account(tmp_path, server.port)
    store = OutboxStore(paths.database, paths.spool_dir)
    message = queue_message(store, tmp_path, "Cut short")
    killed = RunnerLock(store.marks_dir, "killed-window")
    killed.acquire()
    row = store.claim_next("killed-window", now=time.time(), lease=120)
    assert row is not None and row.attempt is not None
    EndMarks(store.marks_dir, "killed-window").add(message, row.attempt)
    assert killed._fd is not None
    os.close(killed._fd)  # the process is gone: the system let go of its lock
    store.close()

    window = open_window(qtbot, paths)
    qtbot.waitUntil(
        lambda: any(t == "Delivery uncertain" for t, _ in window.notifications), timeout=10_000
    )
    (text,) = [text for title, text in window.notifications if title == "Delivery uncertain"]
    assert text == (
        "“Cut short” went out whole, but no confirmation came: it may have arrived. "
        "Check it in the Outbox."
    )
    assert window.bridge.store.get(message).state is State.UNCERTAIN
    assert server.messages == []  # never sent again by itself
    window.bridge.refresh_counts()
    qtbot.wait(UNCERTAIN_TOLD_MS + 300)
    told = [title for title, _ in window.notifications if "ncertain" in title]
    assert told == ["Delivery uncertain"]  # not told again as found in the counts
    window.close()


def test_uncertain_messages_found_at_start_are_told(qtbot, tmp_path: Path) -> None:
    """Quit now with the "." gone out leaves a message uncertain; the window opened
    later tells of it (the quit question promised that Mailer asks), once."""
    paths = home_with_account(tmp_path, 2525)
    store = OutboxStore(paths.database, paths.spool_dir)
    message = queue_message(store, tmp_path, "Left in doubt")
    with store._write() as db:  # what Quit now leaves after the final "."
        db.execute("UPDATE messages SET state = 'uncertain' WHERE id = ?", (message,))
    store.close()

    window = open_window(qtbot, paths)
    qtbot.waitUntil(lambda: "may have been delivered" in window.status.text(), timeout=10_000)
    assert window.status.text() == (
        "1 message may have been delivered: all of it went out, but no confirmation came. "
        "Choose Send again or Mark as sent in the Outbox (shown as Uncertain)."
    )
    window.bridge.refresh_counts()
    qtbot.wait(UNCERTAIN_TOLD_MS + 300)
    told = [title for title, _ in window.notifications if title.startswith("Uncertain")]
    assert told == ["Uncertain: did it arrive?"]  # once, not at each count
    window.close()


def test_a_change_during_a_reload_is_not_undone_by_its_answer(
    qtbot, tmp_path: Path, monkeypatch
) -> None:
    """A reload's answer was read before a state change that arrived while it
    was on its way: the table must end up showing the change, not the answer."""
    from mailer_gui.ui import outbox_model

    paths = home_with_account(tmp_path, port=9)  # nothing is sent: the message waits
    store = OutboxStore(paths.database, paths.spool_dir)
    message = queue_message(store, tmp_path, "Later", due_at=time.time() + 3600)
    window = open_window(qtbot, paths)
    window.show_folder("outbox")
    qtbot.waitUntil(lambda: window.model.row_of(message) is not None, timeout=5_000)
    qtbot.waitUntil(lambda: not window._reloading, timeout=5_000)

    answered, release = threading.Event(), threading.Event()
    prepare = outbox_model.prepare_rows

    def slow_prepare(rows, states, **options):
        prepared = prepare(rows, states, **options)
        if not answered.is_set():
            answered.set()  # read while the message was still scheduled
            assert release.wait(10)
        return prepared

    monkeypatch.setattr(outbox_model, "prepare_rows", slow_prepare)
    window._reload()
    assert answered.wait(10)
    # Meanwhile the message is cancelled, and the window hears of it.
    assert store.cancel(message) is State.CANCELLED
    window.bridge.stateChanged.emit(message, State.CANCELLED.value, "")
    assert window.model.row_of(message) is None
    release.set()
    qtbot.waitUntil(lambda: not window._reloading and not window._reload_again, timeout=5_000)
    qtbot.waitUntil(lambda: window.model.row_of(message) is None, timeout=5_000)
    store.close()
    window.close()


def test_an_account_at_another_sandbox_does_not_start_the_built_in_one(
    qtbot, tmp_path: Path
) -> None:
    # Set up by hand against `mailer-gui sandbox` running elsewhere: 127.0.0.1, user sandbox.
    account = Account(
        name="tests",
        email="tess@sandbox.test",
        host="127.0.0.1",
        port=2600,
        security=Security.STARTTLS,
        auth=AuthMethod.PLAIN,
        username="sandbox",
        secret_source="none",
    )
    paths = home_for(tmp_path, account, undo_seconds=None)
    window = open_window(qtbot, paths)
    window.finish_startup()
    qtbot.wait(1500)  # long enough for a sandbox to start (it would, on a free port)
    assert not window.sandbox.running
    assert [a.name for a in AccountStore(paths.accounts_file).load()] == ["tests"]
    window.close()


def test_quitting_asks_about_an_unsaved_message_and_keeps_it(
    qtbot, tmp_path: Path, aiosmtpd_factory
) -> None:
    server = aiosmtpd_factory()
    window, composer, paths = window_writing(
        qtbot, tmp_path, server.port, "Half written", "Do not lose this."
    )
    window.close()  # File → Quit
    qtbot.waitUntil(lambda: composer.close_question is not None, timeout=5_000)
    assert window.isVisible() and not window._closed  # still running: the person decides
    assert composer.close_question is not None
    composer.close_question.button(composer.close_question.StandardButton.Save).click()
    qtbot.waitUntil(lambda: window._closed, timeout=10_000)  # then it quits
    from mailer_gui.message.drafts import DraftStore

    (kept,) = DraftStore.for_paths(paths).list().drafts
    assert kept.subject == "Half written" and "Do not lose this." in kept.body


def test_accounts_added_or_removed_outside_the_window_show_up_in_it(
    qtbot, tmp_path: Path, aiosmtpd_factory
) -> None:
    """`mailer-gui accounts add` while the window is open: a new message can
    send from the new account without a restart; a removed one is gone."""
    server = aiosmtpd_factory()
    paths = home_with_account(tmp_path, server.port)
    window = open_window(qtbot, paths)
    before = [a.name for a in window.accounts]
    outside = AccountStore(paths.accounts_file)  # as the command line writes it
    outside.add(
        Account(name="late", email="late@example.org", host="127.0.0.1", port=server.port,
                security=Security.NONE, auth=AuthMethod.NONE)
    )  # fmt: skip
    qtbot.waitUntil(lambda: "late" in [a.name for a in window.accounts], timeout=5_000)
    composer = window.open_composer()
    assert composer is not None
    labels = [composer.from_box.itemText(i) for i in range(composer.from_box.count())]
    assert any("late@example.org" in label for label in labels)
    composer.close()
    outside.remove("late")
    qtbot.waitUntil(lambda: [a.name for a in window.accounts] == before, timeout=5_000)
    close_all(window)


def test_the_drafts_are_counted_from_the_start(qtbot, tmp_path: Path, aiosmtpd_factory) -> None:
    from mailer_gui.message.drafts import DraftStore, StoredDraft

    server = aiosmtpd_factory()
    paths = home_with_account(tmp_path, server.port)
    for subject in ("one", "two"):
        DraftStore.for_paths(paths).save(StoredDraft(subject=subject))
    window = open_window(qtbot, paths)
    qtbot.waitUntil(lambda: window._folder_item("drafts").text() == "Drafts (2)", timeout=5_000)
    assert window.folder_key != "drafts"  # without opening the folder
    close_all(window)


def test_quit_from_a_composer_quits_mailer(qtbot, tmp_path: Path, aiosmtpd_factory) -> None:
    """Ctrl+Q in a composer did nothing (only the main window had Quit)."""
    server = aiosmtpd_factory()
    window, composer, _ = window_writing(qtbot, tmp_path, server.port, "Typed", "Then quit.")
    assert composer.quit_action.shortcut().matches(QKeySequence(QKeySequence.StandardKey.Quit))
    composer.quit_action.trigger()
    qtbot.waitUntil(lambda: composer.close_question is not None, timeout=5_000)
    composer.close_question.button(composer.close_question.StandardButton.Discard).click()
    qtbot.waitUntil(lambda: window._closed, timeout=10_000)


def test_a_draft_can_be_deleted_from_the_drafts_folder(
    qtbot, tmp_path: Path, aiosmtpd_factory
) -> None:
    """There was no way to remove a saved draft in the window."""
    from mailer_gui.message.drafts import DraftStore, StoredDraft

    server = aiosmtpd_factory()
    paths = home_with_account(tmp_path, server.port)
    drafts = DraftStore.for_paths(paths)
    for subject in ("keep me", "throw me away"):
        drafts.save(StoredDraft(subject=subject))
    window = open_window(qtbot, paths)
    window.show_folder("drafts")
    qtbot.waitUntil(lambda: window.drafts_list.count() == 2, timeout=5_000)
    assert window.delete_draft_action in window.drafts_list.actions()  # the right-click menu
    (doomed,) = window.drafts_list.findItems("throw me away", Qt.MatchFlag.MatchStartsWith)

    window.drafts_list.setCurrentItem(doomed)
    window.delete_draft_action.trigger()
    question = window.draft_question
    assert question is not None and "throw me away" in question.text()
    question.button(question.StandardButton.Cancel).click()
    qtbot.wait(200)
    assert len(drafts.list().drafts) == 2  # Cancel: nothing deleted

    window.delete_draft_action.trigger()
    question = window.draft_question
    assert question is not None
    question.button(question.StandardButton.Yes).click()
    qtbot.waitUntil(lambda: window._folder_item("drafts").text() == "Drafts (1)", timeout=5_000)
    assert [d.subject for d in drafts.list().drafts] == ["keep me"]
    close_all(window)


def test_cancel_in_the_question_cancels_quitting(qtbot, tmp_path: Path, aiosmtpd_factory) -> None:
    """Quit, then Cancel in "Save draft?": Mailer stays, and closing that
    message later (Save or Discard) closes the message only, not Mailer."""
    server = aiosmtpd_factory()
    window, composer, _ = window_writing(qtbot, tmp_path, server.port, "Not done", "Still writing.")
    window.close()  # File → Quit
    qtbot.waitUntil(lambda: composer.close_question is not None, timeout=5_000)
    assert composer.close_question is not None
    composer.close_question.button(composer.close_question.StandardButton.Cancel).click()
    qtbot.waitUntil(lambda: "Quitting was cancelled" in window.status.text(), timeout=5_000)
    assert composer.isVisible() and not composer.closed
    composer.close_question = None
    composer.close()  # later: Ctrl+W, then Discard
    qtbot.waitUntil(lambda: composer.close_question is not None, timeout=5_000)
    composer.close_question.button(composer.close_question.StandardButton.Discard).click()
    qtbot.waitUntil(lambda: window.composers == [], timeout=10_000)
    qtbot.wait(300)  # a quit still pending would close the window by now
    assert window.isVisible() and not window._closed
    window.close()


@pytest.mark.parametrize("answer", ["Quit when sent", "Quit now", "Cancel"])
def test_quitting_while_a_message_is_being_sent_asks_first(
    qtbot, tmp_path: Path, aiosmtpd_factory, answer: str
) -> None:
    """Quit with a send under way: not cut off without a word. "Quit when sent"
    waits for it, "Quit now" gives it back to the outbox, Cancel stays."""
    held = HeldReply()
    server = aiosmtpd_factory(on_data=held)
    window, composer, paths = window_writing(qtbot, tmp_path, server.port, "On its way", "Hello.")
    composer.send()
    try:
        qtbot.waitUntil(held.reached.is_set, timeout=15_000)
        (message,) = window.bridge.runner.in_flight()
        window.close()  # File → Quit
        question = window.quit_question
        assert question is not None and question.isVisible() and not window._closed
        (button,) = [b for b in question.buttons() if b.text().replace("&", "") == answer]
        button.click()
        if answer == "Quit when sent":
            qtbot.wait(300)
            assert not window._closed  # still sending: it waits
            held.release()
            qtbot.waitUntil(lambda: window._closed, timeout=15_000)
            state = OutboxStore(paths.database, paths.spool_dir).get(message).state
            assert state is State.SENT
        elif answer == "Quit now":
            qtbot.waitUntil(lambda: window._closed, timeout=15_000)
            row = OutboxStore(paths.database, paths.spool_dir).get(message)
            assert row.state is State.UNCERTAIN  # its "." had left: the person decides
            # The person quit; they did not cancel: the words say what happened.
            assert "cancelled" not in (row.last_error or "")
            assert "Mailer closed the connection before the server confirmed it" in (
                row.last_error or ""
            )
        else:
            qtbot.wait(300)
            assert not window._closed and window.isVisible()
            assert "Quitting was cancelled" in window.status.text()
            held.release()
            qtbot.waitUntil(
                lambda: window._folder_item("sent").text() == "Sent (1)", timeout=15_000
            )
            window.close()  # nothing on its way now: no question
            assert window._closed
    finally:
        held.release()


def test_the_session_ending_keeps_open_messages_without_asking(
    qtbot, tmp_path: Path, aiosmtpd_factory
) -> None:
    """SIGTERM (logging out) cannot wait for an answer: each open message is
    kept as a draft as it stands, one that was not changed is closed as it
    was, and Mailer quits."""
    server = aiosmtpd_factory()
    paths = home_with_account(tmp_path, server.port)
    window = open_window(qtbot, paths)
    window.show()
    changed, untouched = window.open_composer(), window.open_composer()
    assert changed is not None and untouched is not None
    write(changed, "bob@example.org", "Typed just now", "Keep every word.")
    window.end_session()
    qtbot.waitUntil(lambda: window._closed, timeout=10_000)
    assert changed.close_question is None and untouched.close_question is None
    assert window.composers == []
    from mailer_gui.message.drafts import DraftStore

    (kept,) = DraftStore.for_paths(paths).list().drafts
    assert kept.subject == "Typed just now" and "Keep every word." in kept.body


SIGTERM_WINDOW = """
import sys
from mailer_gui.ui.main_window import run_gui

print("exit", run_gui(["--home", sys.argv[1]]), flush=True)
"""


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_sigterm_quits_the_window_in_order_and_gives_back_what_it_was_sending(
    tmp_path: Path, aiosmtpd_factory
) -> None:
    """The desktop session ends (SIGTERM) while a message is on its way: the
    window quits as File > Quit does, exit status 0, and the message is back
    in the queue at once, not left "sending" for another Mailer to recover."""
    reached, release = threading.Event(), threading.Event()

    def hold(address: str, options: list[str]) -> str | None:
        reached.set()
        release.wait(20)
        return None

    server = aiosmtpd_factory(on_rcpt=hold)
    paths = home_with_account(tmp_path, server.port)
    store = OutboxStore(paths.database, paths.spool_dir)
    message = queue_message(store, tmp_path, "On its way")
    home = str(paths.config_dir.parent)
    process = subprocess.Popen(
        [sys.executable, "-c", SIGTERM_WINDOW, home],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ, QT_QPA_PLATFORM="offscreen"),
    )
    try:
        assert reached.wait(30), "the window never started sending"
        assert store.get(message).state is State.SENDING
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=30)  # the server still holds its RCPT
    finally:
        release.set()
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, err
    assert "exit 0" in out
    assert store.get(message).state is State.QUEUED  # given back: it goes at the next start
    assert not list(store.marks_dir.glob("*.alive"))  # its lock let go of and removed


SIGNALS_ONLY = """
from PySide6.QtWidgets import QApplication
from mailer_gui.ui.main_window import _end_session_on_signals

app = QApplication(["mailer-gui"])
restore = _end_session_on_signals(app, lambda: print("end", flush=True))  # never ends
print("ready", flush=True)
app.exec()
"""


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_a_second_signal_ends_a_mailer_that_does_not_quit_and_ignored_ones_stay_ignored(
    tmp_path: Path,
) -> None:
    def ignore_hangup() -> None:  # as nohup starts it
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        # Whatever the tests were started from: a background job of a shell
        # has SIGINT ignored too, which Mailer would rightly leave ignored.
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)

    process = subprocess.Popen(
        [sys.executable, "-c", SIGNALS_ONLY],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ, QT_QPA_PLATFORM="offscreen"),
        preexec_fn=ignore_hangup,
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "ready"
        process.send_signal(signal.SIGHUP)  # ignored when it started: still ignored
        process.send_signal(signal.SIGTERM)
        assert process.stdout.readline().strip() == "end"  # once, for the first signal
        assert process.poll() is None  # the end asked for has not come
        process.send_signal(signal.SIGINT)  # asked again: it ends now
        process.wait(timeout=10)
        assert process.returncode == -signal.SIGINT
        assert process.stdout.read() == ""  # the SIGHUP called nothing
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate()


def test_edit_of_a_message_not_sent_yet_takes_it_out_or_edits_a_copy(
    qtbot, tmp_path: Path, aiosmtpd_factory
) -> None:
    """Edit as new on a message scheduled for later asks first: editing a copy
    would leave the original to go as well (both were sent). Taking it out
    brings it back to a composer, and the outbox no longer holds it."""
    from mailer_gui.outbox.store import NotFound, State

    server = aiosmtpd_factory()
    window = open_window(qtbot, home_with_account(tmp_path, server.port))
    store = window.bridge.store
    for subject in ("Copy me", "Take me back"):
        composer = window.open_composer()
        assert composer is not None
        write(composer, "bob@example.org", subject, "For tomorrow.")
        composer.send_at(time.time() + 86400)
        qtbot.waitUntil(lambda: window.composers == [], timeout=10_000)
    copied, taken = sorted(row.id for row in store.messages())

    def answer(message: int, button_text: str) -> None:
        window.detail.show_message(message)
        qtbot.waitUntil(lambda: window.detail.row is not None, timeout=5_000)
        window.detail.edit_as_new()
        box = window.detail.edit_question
        assert box is not None
        qtbot.waitUntil(box.isVisible)
        assert box.text() == "This message has not been sent yet."
        (button,) = [b for b in box.buttons() if b.text() == button_text]
        button.click()

    answer(copied, "Edit a &copy")
    copy = only_composer(qtbot, window)
    assert copy.subject_field.text() == "Copy me"
    assert store.get(copied).state is State.SCHEDULED  # still to go, as the person chose
    copy.close()
    qtbot.waitUntil(lambda: window.composers == [], timeout=5_000)

    answer(taken, "Take it out and &edit")
    back = only_composer(qtbot, window)
    assert back.subject_field.text() == "Take me back"
    assert window.status.text().startswith("Taken out of the outbox: the message is back")
    qtbot.waitUntil(lambda: _gone(store, taken, NotFound), timeout=5_000)
    # The pane no longer shows it, with actions that would fall on nothing.
    qtbot.waitUntil(lambda: window.detail.message_id is None, timeout=5_000)
    assert store.get(copied).state is State.SCHEDULED
    assert server.messages == []
    close_all(window)


def _gone(store, message: int, not_found: type[Exception]) -> bool:
    try:
        store.get(message)
    except not_found:
        return True
    return False


@pytest.mark.parametrize("choice", ["Send &now and quit", "&Quit"])
def test_quitting_during_the_undo_time_asks_what_becomes_of_the_message(
    qtbot, tmp_path: Path, aiosmtpd_factory, choice: str
) -> None:
    """Quit while a sent message waits out its undo time: it used to quit at
    once, leaving the message unsent until Mailer ran again. Now it asks:
    send it now and quit when through, or quit and keep it for next time."""
    from mailer_gui.outbox.store import State

    server = aiosmtpd_factory()
    window = open_window(qtbot, home_with_account(tmp_path, server.port, undo_seconds=30))
    composer = window.open_composer()
    assert composer is not None
    write(composer, "bob@example.org", "Just before quitting", "Bye.")
    composer.send()
    qtbot.waitUntil(lambda: window.countdown.pending() != [], timeout=10_000)
    (message,) = window.countdown.pending()
    qtbot.waitUntil(lambda: window.composers == [], timeout=10_000)

    assert not window.close()  # not yet: it asks
    box = window.quit_question
    assert box is not None
    qtbot.waitUntil(box.isVisible)
    assert box.text() == "A message you sent waits out its undo time."
    (button,) = [b for b in box.buttons() if b.text() == choice]
    button.click()
    qtbot.waitUntil(lambda: window._closed, timeout=15_000)
    store = OutboxStore(window.paths.database, window.paths.spool_dir)
    try:
        if choice == "&Quit":
            assert store.get(message).state is State.SCHEDULED  # sent the next time
            assert server.messages == []
        else:
            assert store.get(message).state is State.SENT
            assert len(server.messages) == 1
    finally:
        store.close()


def test_undo_twice_brings_one_composer_back_and_send_later_has_no_countdown(
    qtbot, tmp_path: Path, aiosmtpd_factory
) -> None:
    server = aiosmtpd_factory()
    window = open_window(qtbot, home_with_account(tmp_path, server.port, undo_seconds=30))
    composer = window.open_composer()
    assert composer is not None
    write(composer, "bob@example.org", "Later", "Tomorrow.")
    composer.send_at(time.time() + 86400)
    qtbot.waitUntil(lambda: window.composers == [], timeout=10_000)
    assert window.countdown.pending() == []  # not an undo window: it waits in the Outbox
    assert "will be sent at" in window.status.text()

    composer = window.open_composer()
    assert composer is not None
    write(composer, "bob@example.org", "Oops", "Take it back.")
    composer.send()
    qtbot.waitUntil(lambda: window.countdown.pending() != [], timeout=10_000)
    qtbot.waitUntil(lambda: window.composers == [], timeout=10_000)
    window.countdown.button.click()
    window.undo_action.trigger()  # Ctrl+Z right after: the same message, once
    back = only_composer(qtbot, window)
    qtbot.wait(300)
    assert window.composers == [back]
    assert back.subject_field.text() == "Oops"
    close_all(window)
    assert server.messages == []


def test_a_send_later_message_sent_now_takes_its_status_line_along(
    qtbot, tmp_path: Path, aiosmtpd_factory
) -> None:
    server = aiosmtpd_factory()
    window = open_window(qtbot, home_with_account(tmp_path, server.port))
    composer = window.open_composer()
    assert composer is not None
    write(composer, "bob@example.org", "Tomorrow", "Or now.")
    composer.send_at(time.time() + 86400)
    qtbot.waitUntil(lambda: "will be sent at" in window.status.text(), timeout=10_000)
    window.show_folder("outbox")
    qtbot.waitUntil(lambda: window.model.rowCount() == 1, timeout=5_000)
    window.table.selectRow(0)
    qtbot.waitUntil(window.detail.retry_action.isEnabled, timeout=5_000)
    assert window.detail.retry_action.text() == "Send &now"  # it was never tried
    window.detail.retry_action.trigger()
    qtbot.waitUntil(lambda: window._folder_item("sent").text() == "Sent (1)", timeout=15_000)
    assert "will be sent at" not in window.status.text()
    assert len(server.messages) == 1
    close_all(window)


def test_a_message_held_by_its_paused_account_says_so(
    qtbot, tmp_path: Path, aiosmtpd_factory
) -> None:
    """The server wants a login this account was not given (530): the message
    waits in the Outbox, and neither the table nor the pane says it goes now."""
    server = aiosmtpd_factory(users={"ann": "secret"}, auth_required=True)
    window = open_window(qtbot, home_with_account(tmp_path, server.port))
    window.show()
    sent: list[int | None] = []
    window.bridge.send_draft(
        Draft(
            sender=parse_address("Ann <ann@example.org>"),
            to=(parse_address("bob@example.org"),),
            subject="Held",
            body="Hello.",
        ),
        "work",
        lambda message, error: sent.append(message),
    )
    qtbot.waitUntil(lambda: bool(sent), timeout=10_000)
    qtbot.waitUntil(
        lambda: (
            window.model.rowCount() == 1
            and window.model.index(0, STATE).data() == "Waiting: account needs attention"
        ),
        timeout=15_000,
    )
    assert window.model.index(0, NEXT_ATTEMPT).data() == "Once fixed"
    assert window.select_message(sent[0])
    qtbot.waitUntil(lambda: "needs attention" in window.detail.state_text(), timeout=10_000)
    assert "goes once that is fixed" in window.detail.state_text()
    store = window.bridge.store
    assert [a.outcome for a in store.attempts(sent[0])] == ["pause-account"]
    # "Retry now" is the person saying it may work now: one more try.
    qtbot.waitUntil(window.detail.retry_action.isEnabled, timeout=5_000)
    window.detail.retry_action.trigger()
    qtbot.waitUntil(lambda: len(store.attempts(sent[0])) == 2, timeout=15_000)
    qtbot.waitUntil(lambda: store.paused_accounts() != {}, timeout=10_000)  # and again
    assert server.messages == []
    window.close()


def test_an_outbox_that_cannot_be_opened_is_named_and_kept(qtbot, tmp_path: Path) -> None:
    paths = home_with_account(tmp_path, 9)
    ensure_private_dir(paths.data_dir)
    damaged = b"this is not an SQLite database, it is a scribble " * 200
    paths.database.write_bytes(damaged)
    window = MainWindow(paths, tray=False)
    qtbot.addWidget(window)
    window.finish_startup()
    assert not window.is_ready()
    assert str(paths.database) in window.status.text()
    assert not window.new_action.isEnabled() and window.quit_action.isEnabled()
    window.close()  # no traceback on the way out
    assert paths.database.read_bytes() == damaged  # nothing "fixed" by deleting


def test_start_up_removes_attachment_folders_no_draft_uses(
    qtbot, tmp_path: Path, aiosmtpd_factory
) -> None:
    """Edit as new / Undo send folders of an earlier run: gone unless a draft uses them."""
    from mailer_gui.message.drafts import DraftStore, StoredDraft

    paths = home_with_account(tmp_path, aiosmtpd_factory().port)
    old = time.time() - 3600
    folders = {}
    for name in ("edit-as-new/message-1-a", "edit-as-new/message-2-b", "restored/5"):
        folder = paths.data_dir / name
        folder.mkdir(parents=True)
        (folder / "report.pdf").write_bytes(b"%PDF-1.4\n")
        os.utime(folder, (old, old))
        folders[name] = folder
    kept = folders["edit-as-new/message-2-b"] / "report.pdf"
    DraftStore.for_paths(paths).save(StoredDraft(subject="edited", attachments=(kept,)))

    open_window(qtbot, paths)
    qtbot.waitUntil(lambda: not folders["edit-as-new/message-1-a"].exists(), timeout=10_000)
    qtbot.waitUntil(lambda: not folders["restored/5"].exists(), timeout=10_000)
    assert kept.exists()


@pytest.mark.parametrize(
    ("argv", "home", "words", "qt_args"),
    [
        ([], None, [], []),
        (["--home", "/tmp/h"], "/tmp/h", [], []),
        (
            ["--home=/tmp/h", "compose", "mailto:a@b.org"],
            "/tmp/h",
            ["compose", "mailto:a@b.org"],
            [],
        ),
        (["-style", "fusion", "mailto:a@b.org"], None, ["fusion", "mailto:a@b.org"], ["-style"]),
        (["--reverse", "--home", "x"], "x", [], ["--reverse"]),
    ],
)
def test_the_window_reads_its_arguments(
    argv: list[str], home: str | None, words: list[str], qt_args: list[str]
) -> None:
    from mailer_gui.ui.main_window import _parse_gui_args

    assert _parse_gui_args(argv) == (home, words, qt_args)


@pytest.mark.parametrize("argv", [["--home"], ["--home="], ["--home", ""]])
def test_home_without_a_folder_is_an_error(argv: list[str]) -> None:
    from mailer_gui.ui.main_window import _parse_gui_args, run_gui

    with pytest.raises(ValueError, match="--home needs a folder"):
        _parse_gui_args(argv)
    assert run_gui(argv) == 2


def test_an_identity_added_in_settings_is_offered_by_the_next_composer(
    qtbot, tmp_path: Path, aiosmtpd_factory
) -> None:
    paths = home_with_account(tmp_path, aiosmtpd_factory().port)
    window = open_window(qtbot, paths)
    window.open_settings()
    dialog = window.settings_dialog
    assert dialog is not None
    page = dialog.accounts_page
    qtbot.waitUntil(lambda: page.form.original is not None, timeout=10_000)
    editor = page.form.identities.open_dialog(None)
    editor.email.setText("sales@example.org")
    editor.display_name.setText("Ann at Sales")
    editor.accept()
    with qtbot.waitSignal(dialog.accountsChanged, timeout=5_000):
        page.save_button.click()

    window.open_composer()
    composer = only_composer(qtbot, window)
    offered = [composer.from_box.itemText(i) for i in range(composer.from_box.count())]
    assert any("Ann at Sales <sales@example.org>" in text for text in offered), offered
