"""The composer window end to end: a real outbox, a real drafts folder and a loopback
aiosmtpd (offscreen, pytest-qt)."""

from __future__ import annotations

import email
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QDateTime, QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QColor, QDragEnterEvent, QDropEvent, QGuiApplication, QImage
from PySide6.QtWidgets import (
    QApplication,
    QComboBox,
    QLineEdit,
    QListWidget,
    QMessageBox,
    QPlainTextEdit,
    QPushButton,
    QTextBrowser,
    QToolButton,
    QWidget,
)

from mailer_gui.accounts.model import Account, Identity
from mailer_gui.accounts.store import AccountStore
from mailer_gui.message.draft import Priority
from mailer_gui.message.drafts import DraftStore
from mailer_gui.message.render import render_html
from mailer_gui.outbox.store import OutboxStore, State
from mailer_gui.paths import AppPaths, ensure_private_dir, resolve_paths
from mailer_gui.smtp.settings import AuthMethod, Security
from mailer_gui.ui.bridge import OutboxBridge
from mailer_gui.ui.composer import ComposerWindow

pytestmark = pytest.mark.qt_log_ignore(
    r"This plugin does not support (propagateSizeHints|raise)\(\)"
)

SIGNATURE = "Ann\nExample Ltd"
CTRL = Qt.KeyboardModifier.ControlModifier
NO_KEYS = Qt.KeyboardModifier.NoModifier
LEFT = Qt.MouseButton.LeftButton


@dataclass
class Home:
    paths: AppPaths
    bridge: OutboxBridge
    outbox: OutboxStore  # the test's own connection, for reading
    drafts: DraftStore
    account: Account
    server: Any


def relay(name: str, server: Any, **fields: Any) -> Account:
    return Account(
        name=name,
        email="ann@example.org",
        display_name="Ann Example",
        host=server.host,
        port=server.port,
        security=Security.NONE,
        auth=AuthMethod.NONE,
        **fields,
    )


@pytest.fixture
def home(qtbot, tmp_path: Path, aiosmtpd_factory) -> Iterator[Home]:
    server = aiosmtpd_factory(tls="none")
    paths = resolve_paths(tmp_path / "home")
    ensure_private_dir(paths.config_dir)
    account = relay(
        "work",
        server,
        signature=SIGNATURE,
        identities=(
            Identity("sales@example.org", "Sales", signature="The sales team"),
            Identity("noreply@example.org"),
        ),
    )
    AccountStore(paths.accounts_file).add(account)
    bridge = OutboxBridge.for_paths(paths)
    bridge.start()
    outbox = OutboxStore(paths.database, paths.spool_dir)
    yield Home(paths, bridge, outbox, DraftStore.for_paths(paths), account, server)
    bridge.shutdown()
    outbox.close()


Open = Callable[..., ComposerWindow]


@pytest.fixture
def open_composer(qtbot, home: Home) -> Open:

    def make(
        *, accounts: Sequence[Account] | None = None, mailto: str | None = None, **options: Any
    ) -> ComposerWindow:
        options.setdefault("undo_seconds", 0)
        chosen = [home.account] if accounts is None else list(accounts)
        if mailto is not None:
            window = ComposerWindow.from_mailto(mailto, home.bridge, chosen, home.drafts, **options)
        else:
            window = ComposerWindow(home.bridge, chosen, home.drafts, **options)
        qtbot.addWidget(window, before_close_func=settle)
        return window

    def settle(window: ComposerWindow) -> None:
        # Before pytest-qt closes and deletes the window: no question, no write left.
        if not window.closed:
            window.discard()
        qtbot.waitUntil(lambda: not window.saving(), timeout=5_000)
        assert window.size_limits.wait(10)

    return make


def shown(qtbot, window: ComposerWindow) -> ComposerWindow:
    """On screen and active: window shortcuts work only in the active window."""
    with qtbot.waitActive(window, timeout=5_000):
        window.show()
        window.activateWindow()
    return window


def write(window: ComposerWindow, text: str) -> None:
    """Type above the signature, where a new message's cursor starts."""
    window.editor.insertPlainText(text)


def parse(raw: bytes) -> EmailMessage:
    message = email.message_from_bytes(raw, policy=policy.default)
    assert isinstance(message, EmailMessage)
    return message


def wait_sent(qtbot, home: Home, message: int) -> None:
    qtbot.waitUntil(lambda: home.outbox.get(message).state is State.SENT, timeout=15_000)


def png_picture(width: int = 40, height: int = 30) -> QImage:
    picture = QImage(width, height, QImage.Format.Format_RGB32)
    picture.fill(QColor("orange"))
    return picture


# ------------------------------------------------------------ sending


def test_compose_send_and_the_message_arrives_with_its_transcript(
    qtbot, home: Home, open_composer: Open, tmp_path: Path
) -> None:
    report = tmp_path / "report.csv"
    report.write_bytes(b"quarter,total\nQ1,120\n")
    window = shown(qtbot, open_composer())
    assert window.editor.toPlainText() == f"\n\n-- \n{SIGNATURE}"
    window.to_field.setText("Bob <bob@example.org>")
    window.cc_field.setText("carol@example.org")
    window.bcc_field.setText("audit@example.org")
    window.subject_field.setText("Quarterly numbers")
    write(window, "The **numbers** are in, see the file.")
    window.add_attachments([report])
    qtbot.waitUntil(window.attachments.sizes_known)
    assert window.attachments.total_label.text() == "1 file, 21 bytes"

    with qtbot.waitSignal(window.queued, timeout=10_000) as queued:
        qtbot.keyClick(window.editor, Qt.Key.Key_Return, CTRL)  # Ctrl+Return sends
    message, due_at = queued.args
    assert due_at == pytest.approx(home.outbox.get(message).due_at, abs=0.01)
    qtbot.waitUntil(lambda: window.closed and not window.isVisible())
    wait_sent(qtbot, home, message)

    [received] = home.server.wait_for_messages(1)
    assert sorted(received.rcpt_tos) == [
        "audit@example.org",
        "bob@example.org",
        "carol@example.org",
    ]
    sent = parse(received.content)
    assert sent["Subject"] == "Quarterly numbers"
    assert sent["From"] == "Ann Example <ann@example.org>"
    assert sent["To"] == "Bob <bob@example.org>" and "Bcc" not in sent
    assert sent.get_content_type() == "multipart/mixed"
    html = sent.get_body(("html",))
    plain = sent.get_body(("plain",))
    assert html is not None and plain is not None
    assert "<strong" in html.get_content() and "numbers</strong>" in html.get_content()
    assert "The **numbers** are in" in plain.get_content()
    assert "Example Ltd" in plain.get_content()
    [attachment] = list(sent.iter_attachments())
    assert attachment.get_filename() == "report.csv"
    assert attachment.get_content() in (b"quarter,total\nQ1,120\n", "quarter,total\nQ1,120\n")

    attempts = home.outbox.attempts(message)
    assert attempts and attempts[-1].outcome == "sent"
    assert "250" in attempts[-1].transcript and "DATA" in attempts[-1].transcript


def test_a_pasted_image_is_inlined_and_sent_as_multipart_related(
    qtbot, home: Home, open_composer: Open
) -> None:
    window = shown(qtbot, open_composer())
    window.to_field.setText("bob@example.org")
    window.subject_field.setText("Look")
    write(window, "The chart:\n\n")
    QGuiApplication.clipboard().setImage(png_picture())
    window.editor.setFocus()
    window.editor.paste()
    body = window.editor.toPlainText()
    assert body.startswith("The chart:\n\n![image-1](image-1.png)")
    [image] = window.inline_images()
    assert image.name == "image-1.png" and image.content_type == "image/png"
    assert image.data is not None and QImage.fromData(image.data).size() == png_picture().size()
    qtbot.waitUntil(lambda: "cid:preview-" in window.preview.rendered_html())

    with qtbot.waitSignal(window.queued, timeout=10_000) as queued:
        window.send_action.trigger()
    wait_sent(qtbot, home, queued.args[0])
    sent = parse(home.server.wait_for_messages(1)[0].content)
    related = next(part for part in sent.walk() if part.get_content_type() == "multipart/related")
    html_part, picture = related.iter_parts()
    content_id = picture["Content-ID"].strip("<>")
    assert f'src="cid:{content_id}"' in html_part.get_content()
    assert picture.get_content_type() == "image/png"
    assert QImage.fromData(picture.get_content()).size() == png_picture().size()


def test_invalid_addresses_stop_the_send_and_say_why(
    qtbot, home: Home, open_composer: Open
) -> None:
    window = open_composer()
    window.to_field.setText("bob@example.org, carol@")
    window.bcc_field.setText("not an address")
    with qtbot.assertNotEmitted(window.queued, wait=200):
        window.send()
    notice = window.notice.text()
    assert "To: 'carol@' has no domain after the @" in notice
    assert "Bcc: 'not an address'" in notice
    assert [p.text for p in window.to_field.problems()] == ["carol@"]
    assert not window.closed

    window.to_field.setText("bob@example.org, carol@example.org")
    assert "Bcc: 'not an address'" in window.notice.text()  # not fixed yet: it stays
    window.bcc_field.setText("")
    assert window.notice.text() == ""  # every address fixed: the notice goes

    window.to_field.setText("")
    window.send()
    assert "no recipient" in window.notice.text()
    window.cc_field.setText("carol@example.org")
    assert window.notice.text() == ""
    assert home.outbox.messages(None) == []


def send_with_an_attachment_gone(qtbot, window: ComposerWindow, folder: Path) -> None:
    """Write to bob with notes.txt attached, remove the file, press Send."""
    doomed = folder / "notes.txt"
    doomed.write_text("soon gone")
    window.to_field.setText("bob@example.org")
    write(window, "Notes enclosed.")
    window.add_attachments([doomed])
    qtbot.waitUntil(window.attachments.sizes_known)
    doomed.unlink()
    window.send()


def test_an_attachment_gone_before_send_is_reported_and_the_draft_stays(
    qtbot, home: Home, open_composer: Open, tmp_path: Path
) -> None:
    window = open_composer()
    send_with_an_attachment_gone(qtbot, window, tmp_path)
    qtbot.waitUntil(lambda: "cannot be read" in window.notice.text(), timeout=10_000)
    assert "notes.txt" in window.notice.text() and "Nothing was sent" in window.notice.text()
    assert not window.closed and window.send_action.isEnabled()
    assert window.editor.toPlainText().startswith("Notes enclosed.")
    assert home.outbox.messages(None) == []
    window.attachments.list.selectAll()
    window.attachments.remove_selected()  # the person takes it off
    assert window.notice.text() == ""


def test_a_send_that_fails_while_the_session_ends_is_kept_as_a_draft(
    qtbot, home: Home, open_composer: Open, tmp_path: Path
) -> None:
    """Logging out while the message goes into the outbox, and it cannot (its
    attachment is gone): nobody is there to read why, so it is kept as a draft
    and the window closes, instead of waiting open and holding the logout."""
    window = open_composer()
    window.subject_field.setText("Going out at logout")
    send_with_an_attachment_gone(qtbot, window, tmp_path)
    assert window._sending
    window.keep_and_close()  # the main window's end_session, while it is on its way
    qtbot.waitUntil(lambda: window.closed, timeout=10_000)
    qtbot.waitUntil(lambda: not window.saving(), timeout=5_000)
    assert window.close_question is None
    (kept,) = home.drafts.list().drafts
    assert kept.subject == "Going out at logout" and "Notes enclosed." in kept.body
    assert home.outbox.messages(None) == []


def test_send_later_asks_for_a_future_moment(qtbot, home: Home, open_composer: Open) -> None:
    window = shown(qtbot, open_composer())
    window.to_field.setText("bob@example.org")
    write(window, "Tomorrow.")
    window.send_later_action.trigger()
    dialog = window.send_later_dialog
    assert dialog is not None and dialog.isVisible()
    dialog.when.setMinimumDateTime(QDateTime.currentDateTime().addDays(-1))
    dialog.when.setDateTime(QDateTime.currentDateTime().addSecs(-600))
    dialog.accept()
    assert dialog.isVisible() and "in the future" in dialog.error.text()

    target = QDateTime.currentDateTime().addSecs(2 * 3600)
    dialog.when.setDateTime(target)
    with qtbot.waitSignal(window.queued, timeout=10_000) as queued:
        dialog.buttons.button(dialog.buttons.StandardButton.Ok).click()
    message, due_at = queued.args
    assert due_at == pytest.approx(target.toMSecsSinceEpoch() / 1000, abs=60)
    row = home.outbox.get(message)
    assert row.state is State.SCHEDULED and row.due_at == pytest.approx(due_at, abs=0.01)


# ------------------------------------------------------------ attachments


def test_dropping_files_attaches_them(qtbot, open_composer: Open, tmp_path: Path) -> None:
    first, second = tmp_path / "a.pdf", tmp_path / "b.png"
    first.write_bytes(b"%" * 1000)
    second.write_bytes(b"\x89" * 500)
    window = shown(qtbot, open_composer())
    files = QMimeData()
    files.setUrls([QUrl.fromLocalFile(str(first)), QUrl.fromLocalFile(str(second))])
    enter = QDragEnterEvent(QPoint(5, 5), Qt.DropAction.CopyAction, files, LEFT, NO_KEYS)
    QApplication.sendEvent(window, enter)
    assert enter.isAccepted()
    drop = QDropEvent(QPointF(5, 5), Qt.DropAction.CopyAction, files, LEFT, NO_KEYS)
    QApplication.sendEvent(window, drop)
    assert drop.isAccepted()
    assert window.attachments.paths() == (first, second)
    qtbot.waitUntil(lambda: window.attachments.total_label.text() == "2 files, 1.5 KB")
    texts = [window.attachments.list.item(i).text() for i in range(2)]
    assert texts == ["a.pdf — 1000 bytes", "b.png — 500 bytes"]

    # Text is not a file: not taken as an attachment.
    words = QMimeData()
    words.setText("hello")
    refused = QDragEnterEvent(QPoint(5, 5), Qt.DropAction.CopyAction, words, LEFT, NO_KEYS)
    QApplication.sendEvent(window, refused)
    assert not refused.isAccepted()

    window.attachments.list.item(0).setSelected(True)
    window.attachments.remove_button.click()
    assert window.attachments.paths() == (second,)
    assert window.attachments.total_label.text() == "1 file, 500 bytes"


def test_the_reminder_catches_a_forgotten_attachment(
    qtbot, home: Home, open_composer: Open, tmp_path: Path
) -> None:
    window = shown(qtbot, open_composer())
    window.to_field.setText("bob@example.org")
    window.subject_field.setText("Invoice")
    write(window, "Anbei die Rechnung.")
    with qtbot.assertNotEmitted(window.queued, wait=200):
        window.send()
    assert "“Anbei”" in window.reminder.text() and "nothing is attached" in window.reminder.text()
    assert window.notice.text() == ""

    window.reminder.button("Attach a file…").click()
    assert window.file_dialog is not None and window.file_dialog.isVisible()
    window.file_dialog.reject()
    invoice = tmp_path / "invoice.pdf"
    invoice.write_bytes(b"%PDF")
    window.add_attachments([invoice])
    assert window.reminder.text() == ""  # settled by attaching

    second = shown(qtbot, open_composer())
    second.to_field.setText("bob@example.org")
    write(second, "The photos are attached.")
    second.send()
    assert second.reminder.text()
    with qtbot.waitSignal(second.queued, timeout=10_000) as queued:
        second.reminder.button("Send anyway").click()
    wait_sent(qtbot, home, queued.args[0])


def test_a_warning_when_attachments_exceed_the_servers_size(
    qtbot, home: Home, open_composer: Open, aiosmtpd_factory, tmp_path: Path
) -> None:
    small = aiosmtpd_factory(tls="none", data_size_limit=5_000)
    unlimited = aiosmtpd_factory(tls="none", data_size_limit=None)
    accounts = [relay("small", small), relay("unlimited", unlimited), home.account]
    window = open_composer(accounts=accounts)
    big = tmp_path / "big.bin"
    big.write_bytes(b"x" * 10_000)
    window.add_attachments([big])
    qtbot.waitUntil(lambda: window.attachments.warning.isVisibleTo(window), timeout=10_000)
    warning = window.attachments.warning.text()
    # In the units Mailer shows sizes in everywhere (1 KB = 1024 bytes).
    assert "4.9 KB" in warning and small.host in warning and "13.4 KB" in warning

    window.from_box.setCurrentIndex(1)  # the server states no limit: no warning
    qtbot.waitUntil(lambda: window.size_limits.cached(accounts[1])[0], timeout=10_000)
    assert not window.attachments.warning.isVisibleTo(window)
    window.from_box.setCurrentIndex(0)  # remembered: no second connection needed
    assert window.attachments.warning.isVisibleTo(window)
    assert window.size_limits.cached(accounts[0]) == (True, 5_000)


# ------------------------------------------------------------ fields


def test_from_swaps_the_signature_without_duplicating_it(open_composer: Open) -> None:
    window = open_composer()
    assert window.from_box.count() == 3
    assert window.from_box.itemText(1) == "Sales <sales@example.org>"
    write(window, "Hello")
    window.from_box.setCurrentIndex(1)
    assert window.editor.toPlainText() == "Hello\n\n-- \nThe sales team"
    window.from_box.setCurrentIndex(2)  # no signature
    assert window.editor.toPlainText() == "Hello"
    window.from_box.setCurrentIndex(0)
    window.from_box.setCurrentIndex(1)
    assert window.editor.toPlainText() == "Hello\n\n-- \nThe sales team"
    assert window.state().identity == "sales@example.org"


def test_a_mailto_link_fills_the_composer(open_composer: Open) -> None:
    window = open_composer(
        mailto="mailto:bob@example.org,%22Doe,%20J%22%20%3Cj@example.org%3E"
        "?cc=carol@example.org&subject=Caf%C3%A9%20plans&body=Line%201%0D%0ALine%202"
        "&in-reply-to=%3Cabc@example.org%3E&from=evil@example.org"
    )
    assert window.to_field.text() == 'bob@example.org, "Doe, J" <j@example.org>'
    assert window.cc_field.text() == "carol@example.org"
    assert window.subject_field.text() == "Café plans"
    assert window.windowTitle() == "Café plans"
    assert window.editor.toPlainText() == f"Line 1\nLine 2\n\n-- \n{SIGNATURE}"
    assert window.body_format() == "plain"
    assert not window.preview.isVisibleTo(window)
    assert not window.format_actions["bold"].isEnabled()
    state = window.state()
    assert state.in_reply_to == "<abc@example.org>" and state.identity == "ann@example.org"
    assert not window.is_modified()  # nothing typed yet: closing does not ask

    broken = open_composer(mailto="https://example.org/contact")
    assert "is not a mailto: link" in broken.notice.text()


def test_preview_follows_the_text_and_the_format(qtbot, open_composer: Open) -> None:
    window = shown(qtbot, open_composer())
    write(window, "Some **bold** words")
    qtbot.waitUntil(lambda: "<strong" in window.preview.rendered_html())
    assert window.preview.rendered_html() == render_html(window.editor.toPlainText())
    assert "bold" in window.preview.toPlainText()

    window.format_box.setCurrentIndex(1)  # plain text
    assert not window.preview.isVisible()
    assert not window.format_actions["link"].isEnabled()
    window.format_box.setCurrentIndex(0)
    assert window.preview.isVisible()
    window.preview_action.trigger()
    assert not window.preview.isVisible()


def test_toolbar_and_shortcuts_edit_the_markdown(qtbot, open_composer: Open) -> None:
    window = shown(qtbot, open_composer())
    editor = window.editor
    editor.setPlainText("make this bold")
    cursor = editor.textCursor()
    cursor.setPosition(5)
    cursor.setPosition(9, cursor.MoveMode.KeepAnchor)
    editor.setTextCursor(cursor)
    editor.setFocus()
    window.format_actions["bold"].trigger()
    assert editor.toPlainText() == "make **this** bold"
    qtbot.keyClick(editor, Qt.Key.Key_B, CTRL)  # the shortcut toggles it back
    assert editor.toPlainText() == "make this bold"
    qtbot.keyClick(editor, Qt.Key.Key_K, CTRL)  # Ctrl+K: a link, not "delete to line end"
    assert editor.toPlainText() == "make [this](https://) bold"
    tooltips = {name: action.toolTip() for name, action in window.format_actions.items()}
    assert "Ctrl+B" in tooltips["bold"] and "Ctrl+K" in tooltips["link"]


def test_window_title_follows_the_subject(open_composer: Open) -> None:
    window = open_composer()
    assert window.windowTitle() == "New message"
    window.subject_field.setText("Budget 2025")
    assert window.windowTitle() == "Budget 2025"


def test_every_control_has_an_accessible_name(qtbot, open_composer: Open) -> None:
    window = shown(qtbot, open_composer())
    window.notice.show_message("x", [("Do it", lambda: None)])
    kinds = (QLineEdit, QPlainTextEdit, QComboBox, QListWidget, QPushButton, QTextBrowser)
    unnamed = [
        widget
        for widget in window.findChildren(QWidget)
        if isinstance(widget, (*kinds, QToolButton))
        and not widget.objectName().startswith("qt_")
        and not widget.accessibleName()
    ]
    assert unnamed == []
    for action in window.actions():
        assert action.text(), action


def test_no_account_says_what_to_do(open_composer: Open) -> None:
    window = open_composer(accounts=[])
    assert "no account to send from" in window.notice.text()
    window.to_field.setText("bob@example.org")
    window.send()
    assert "no account to send from" in window.notice.text()


# ------------------------------------------------------------ drafts


def fill_everything(qtbot, window: ComposerWindow, tmp_path: Path) -> None:
    attachment = tmp_path / "plan.odt"
    attachment.write_bytes(b"plan")
    window.from_box.setCurrentIndex(1)
    window.to_field.setText("bob@example.org, carol@")  # the bad one is kept too
    window.cc_field.setText('"Doe, J" <j@example.org>')
    window.bcc_field.setText("audit@example.org")
    window.subject_field.setText("Plans – draft")
    window.priority_box.setCurrentIndex(1)
    write(window, "# Plans\n\nFirst **draft**.\n\n")
    window.paste_image(png_picture())
    window.add_attachments([attachment])


def test_drafts_autosave_and_come_back_after_a_crash(
    qtbot, home: Home, open_composer: Open, tmp_path: Path
) -> None:
    window = open_composer(autosave_seconds=0.05)
    saved: list[str] = []
    window.draftSaved.connect(saved.append)
    fill_everything(qtbot, window, tmp_path)
    written = window.state()

    def stored_matches() -> bool:
        listing = home.drafts.list()
        return len(listing.drafts) == 1 and listing.drafts[0].same_content(written)

    qtbot.waitUntil(lambda: stored_matches() and window.draft_id in saved, timeout=5_000)
    assert set(saved) == {window.draft_id}
    [stored] = home.drafts.list().drafts
    assert stored.priority is Priority.HIGH and stored.identity == "sales@example.org"

    # The app died; the main window reopens the draft from the folder.
    reopened = open_composer(stored=home.drafts.load(stored.id))
    assert reopened.state().same_content(written)
    assert reopened.from_box.currentIndex() == 1
    assert reopened.to_field.text() == "bob@example.org, carol@"
    assert reopened.cc_field.text() == '"Doe, J" <j@example.org>'
    assert reopened.subject_field.text() == "Plans – draft"
    assert reopened.priority_box.currentData() is Priority.HIGH
    assert reopened.editor.toPlainText() == window.editor.toPlainText()
    assert reopened.editor.toPlainText().count("-- \n") == 1  # no second signature
    assert reopened.attachments.paths() == window.attachments.paths()
    assert not reopened.is_modified()
    qtbot.waitUntil(lambda: "cid:preview-" in reopened.preview.rendered_html())

    # Sent: the draft leaves the folder.
    deleted: list[str] = []
    reopened.draftDeleted.connect(deleted.append)
    reopened.to_field.setText("bob@example.org")
    with qtbot.waitSignal(reopened.queued, timeout=10_000):
        reopened.send()
    qtbot.waitUntil(lambda: deleted == [stored.id], timeout=5_000)
    assert home.drafts.list().drafts == ()
    assert [p.name for p in home.drafts.directory.iterdir()] == []  # the image file too


def test_save_draft_with_ctrl_s(qtbot, home: Home, open_composer: Open) -> None:
    window = shown(qtbot, open_composer())
    window.subject_field.setText("Keep me")
    assert window.is_modified()
    with qtbot.waitSignal(window.draftSaved, timeout=5_000) as saved:
        qtbot.keyClick(window.editor, Qt.Key.Key_S, CTRL)
    assert saved.args == [window.draft_id]
    assert home.drafts.load(window.draft_id).subject == "Keep me"
    assert not window.is_modified()


def test_closing_unchanged_asks_nothing_and_leaves_nothing(
    qtbot, home: Home, open_composer: Open
) -> None:
    window = shown(qtbot, open_composer())
    assert window.close()
    assert window.close_question is None
    assert home.drafts.list().drafts == ()


def question(qtbot, window: ComposerWindow) -> QMessageBox:
    assert not window.close()  # refused for now: it asks first
    box = window.close_question
    assert box is not None
    qtbot.waitUntil(box.isVisible)
    assert window.isVisible()
    return box


def test_closing_with_changes_asks_cancel_then_save(qtbot, home: Home, open_composer: Open) -> None:
    window = shown(qtbot, open_composer())
    window.to_field.setText("bob@example.org")
    write(window, "Half a thought")
    box = question(qtbot, window)
    assert box.text().startswith("Save the changes")
    box.button(QMessageBox.StandardButton.Cancel).click()
    assert window.isVisible() and not window.closed

    box = question(qtbot, window)
    with qtbot.waitSignal(window.draftSaved, timeout=5_000):
        box.button(QMessageBox.StandardButton.Save).click()
    qtbot.waitUntil(lambda: window.closed and not window.isVisible())
    [stored] = home.drafts.list().drafts
    assert stored.body.startswith("Half a thought") and stored.to == "bob@example.org"


def test_discard_removes_an_autosaved_new_draft(qtbot, home: Home, open_composer: Open) -> None:
    window = shown(qtbot, open_composer(autosave_seconds=0.05))
    write(window, "Never mind")
    with qtbot.waitSignal(window.draftSaved, timeout=5_000):
        pass  # autosaved
    assert len(home.drafts.list().drafts) == 1
    box = question(qtbot, window)
    with qtbot.waitSignal(window.draftDeleted, timeout=5_000):
        box.button(QMessageBox.StandardButton.Discard).click()
    assert window.closed and home.drafts.list().drafts == ()


def test_discard_puts_a_reopened_draft_back_as_it_was(
    qtbot, home: Home, open_composer: Open
) -> None:
    first = open_composer()
    first.subject_field.setText("Original")
    with qtbot.waitSignal(first.draftSaved, timeout=5_000):
        first.save_draft()
    original = home.drafts.load(first.draft_id)
    first.close()

    window = shown(qtbot, open_composer(stored=original, autosave_seconds=0.05))
    window.subject_field.setText("Changed")
    qtbot.waitUntil(lambda: home.drafts.load(original.id).subject == "Changed", timeout=5_000)
    box = question(qtbot, window)
    box.button(QMessageBox.StandardButton.Discard).click()
    qtbot.waitUntil(lambda: not window.saving(), timeout=5_000)
    restored = home.drafts.load(original.id)
    assert restored == original  # the same file again, save time included


def test_a_draft_that_cannot_be_written_says_so_and_keeps_the_text(
    qtbot, home: Home, open_composer: Open
) -> None:
    ensure_private_dir(home.paths.data_dir)
    home.drafts.directory.write_text("a file where the drafts folder should be")
    window = open_composer()
    window.subject_field.setText("Precious")
    done: list[bool] = []
    window.save_draft(on_done=done.append)
    qtbot.waitUntil(lambda: done == [False], timeout=5_000)
    assert re.search(r"could not be saved .* save again \(Ctrl\+S\)", window.notice.text())
    assert window.subject_field.text() == "Precious" and window.is_modified()
