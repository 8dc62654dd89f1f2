"""The Settings dialog's Sending, Composer and Privacy pages: real files, a real outbox."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QFont, QFontDatabase
from PySide6.QtWidgets import (
    QAbstractButton,
    QAbstractItemView,
    QAbstractSpinBox,
    QComboBox,
    QLineEdit,
    QPlainTextEdit,
    QWidget,
)

from mailer_gui.message.addresses import parse_address
from mailer_gui.message.build import build_message
from mailer_gui.message.draft import Draft
from mailer_gui.outbox.store import OutboxStore, State
from mailer_gui.paths import AppPaths, resolve_paths
from mailer_gui.preferences import Preferences, load_preferences, save_preferences
from mailer_gui.smtp.replies import Reply
from mailer_gui.smtp.session import MessageResult, RecipientResult, RecipientStatus
from mailer_gui.ui.settings import SettingsDialog

# The offscreen plugin says this about every shown window with a layout.
pytestmark = pytest.mark.qt_log_ignore(r"This plugin does not support propagateSizeHints\(\)")

DAY = 86400.0


@pytest.fixture
def paths(tmp_path: Path) -> AppPaths:
    return resolve_paths(tmp_path / "home")


def open_dialog(qtbot, paths: AppPaths, preferences: Preferences | None = None) -> SettingsDialog:
    dialog = SettingsDialog(paths, preferences or Preferences())
    qtbot.addWidget(dialog)
    with qtbot.waitSignal(dialog.accounts_page.loaded, timeout=5_000):
        dialog.show()
    return dialog


def click(qtbot, button) -> None:
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)


def a_font_family(exclude: str) -> str:
    families = [f for f in QFontDatabase.families() if f != exclude]
    if not families:
        pytest.skip("only one font is installed")
    return families[0]


def test_shows_the_preferences_it_was_given(qtbot, paths: AppPaths) -> None:
    prefs = Preferences(
        undo_seconds=0, retry_delays=(90, 7200), retry_every=86400, give_up_after=3 * 86400,
        max_connections=2, per_connection=25, default_format="plain", composer_font_size=14,
        transcript_days=0, notifications=False,
    )  # fmt: skip
    dialog = open_dialog(qtbot, paths, prefs)
    sending, composer, privacy = dialog.sending_page, dialog.composer_page, dialog.privacy_page
    assert sending.undo.text() == "Off: send at once"
    assert sending.delay_texts() == ["1 min 30 s", "2 h"]
    assert (sending.every.text(), sending.give_up.text()) == ("1 d", "3 d")
    assert (sending.connections.value(), sending.per_connection.value()) == (2, 25)
    assert not sending.notifications.isChecked()
    assert composer.format.currentData() == "plain"
    assert composer.system_font.isChecked() and not composer.font_box.isEnabled()
    assert composer.font_size.value() == 14
    assert privacy.days.text() == "Forever"
    # Unchanged, the pages give back exactly what they were given.
    assert dialog.edited_preferences() == prefs


def test_apply_saves_and_emits_the_new_preferences(qtbot, paths: AppPaths) -> None:
    dialog = open_dialog(qtbot, paths)
    family = a_font_family(dialog.composer_page.font_box.currentFont().family())
    sending, composer, privacy = dialog.sending_page, dialog.composer_page, dialog.privacy_page

    sending.undo.setValue(5)
    sending.delays.item(1).setText("2 min")
    click(qtbot, sending.add_delay)  # appended after 1 h: twice the last delay
    click(qtbot, sending.add_delay)  # and another: 4 h, removed again below
    sending.delays.setCurrentRow(sending.delays.count() - 1)
    click(qtbot, sending.remove_delay)
    sending.every.setText("3 h")
    sending.give_up.setText("1 d 12 h")
    sending.connections.setValue(2)
    sending.per_connection.setValue(20)
    sending.notifications.setChecked(False)
    composer.format.setCurrentIndex(composer.format.findData("plain"))
    composer.system_font.setChecked(False)
    composer.font_box.setCurrentFont(QFont(family))
    composer.font_size.setValue(13)
    privacy.days.setValue(7)

    with qtbot.waitSignal(dialog.preferencesChanged, timeout=5_000) as changed:
        click(qtbot, dialog.apply_button)
    expected = Preferences(
        undo_seconds=5,
        retry_delays=(60, 120, 900, 1800, 3600, 7200),
        retry_every=3 * 3600,
        give_up_after=36 * 3600,
        max_connections=2,
        per_connection=20,
        default_format="plain",
        composer_font_family=composer.font_box.currentFont().family(),
        composer_font_size=13,
        transcript_days=7,
        notifications=False,
    )
    assert changed.args == [expected]
    assert expected.composer_font_family == family
    assert load_preferences(paths.preferences_file) == expected
    assert dialog.preferences == expected
    assert dialog.isVisible()  # Apply keeps the dialog open

    # Applying again without changes saves nothing and emits nothing.
    with qtbot.assertNotEmitted(dialog.preferencesChanged, wait=200):
        click(qtbot, dialog.apply_button)

    # A new dialog from the saved file shows the same values.
    again = open_dialog(qtbot, paths, load_preferences(paths.preferences_file))
    assert again.edited_preferences() == expected
    assert again.composer_page.font_box.currentFont().family() == family


def test_ok_saves_and_closes_cancel_saves_nothing(qtbot, paths: AppPaths) -> None:
    dialog = open_dialog(qtbot, paths)
    dialog.sending_page.undo.setValue(30)
    with qtbot.assertNotEmitted(dialog.preferencesChanged, wait=100):
        click(qtbot, dialog.cancel_button)
    assert not dialog.isVisible() and not paths.preferences_file.exists()

    dialog = open_dialog(qtbot, paths)
    dialog.sending_page.undo.setValue(30)
    with qtbot.waitSignal(dialog.preferencesChanged, timeout=5_000) as changed:
        click(qtbot, dialog.ok_button)
    assert changed.args[0].undo_seconds == 30
    qtbot.waitUntil(lambda: not dialog.isVisible(), timeout=5_000)
    assert load_preferences(paths.preferences_file).undo_seconds == 30


def test_a_bad_duration_is_shown_beside_its_field_and_nothing_is_saved(
    qtbot, paths: AppPaths
) -> None:
    dialog = open_dialog(qtbot, paths)
    sending = dialog.sending_page
    sending.delays.item(2).setText("soon")
    sending.give_up.setText("10 s")
    dialog.sending_page.undo.setValue(3)
    dialog.show_page("Privacy")
    with qtbot.assertNotEmitted(dialog.preferencesChanged, wait=200):
        click(qtbot, dialog.ok_button)
    assert dialog.isVisible() and dialog.current_page() == "Sending"
    assert sending.error_text("retry_delays").startswith("Delay 3: 'soon' is not a duration")
    assert "1 min to 30 d" in sending.error_text("give_up_after")
    assert sending.error_text("retry_every") == ""
    assert "fix the marked settings" in dialog.banner.text()
    assert not paths.preferences_file.exists()

    # Fixed, the errors go and the save happens.
    sending.delays.item(2).setText("15 min")
    sending.give_up.setText("2 d")
    with qtbot.waitSignal(dialog.preferencesChanged, timeout=5_000):
        click(qtbot, dialog.apply_button)
    assert sending.error_text("retry_delays") == sending.error_text("give_up_after") == ""
    assert load_preferences(paths.preferences_file).undo_seconds == 3


def test_a_failed_save_says_so_and_emits_nothing(qtbot, paths: AppPaths) -> None:
    paths.preferences_file.mkdir(parents=True)  # a folder where the file should go
    dialog = open_dialog(qtbot, paths)
    dialog.sending_page.undo.setValue(1)
    with (
        qtbot.assertNotEmitted(dialog.preferencesChanged, wait=100),
        qtbot.waitSignal(dialog.applied, timeout=5_000) as applied,
    ):
        click(qtbot, dialog.ok_button)
    assert applied.args == [False]
    assert dialog.isVisible() and dialog.banner.is_error
    assert str(paths.preferences_file) in dialog.banner.text()
    assert dialog.preferences == Preferences()


def test_retry_delay_list_can_be_edited_from_the_keyboard(qtbot, paths: AppPaths) -> None:
    dialog = open_dialog(qtbot, paths)
    dialog.show_page("Sending")
    delays = dialog.sending_page.delays
    delays.setFocus()
    delays.setCurrentRow(0)
    qtbot.keyClick(delays, Qt.Key.Key_F2)
    editor = delays.findChild(QLineEdit)
    assert editor is not None and editor.isVisible()
    editor.selectAll()
    qtbot.keyClicks(editor, "45 s")
    qtbot.keyClick(editor, Qt.Key.Key_Return)  # the view commits the edit from its event loop
    qtbot.waitUntil(lambda: dialog.sending_page.delay_texts()[0] == "45 s", timeout=2_000)
    assert dialog.isVisible()  # Return finished the edit; it did not press OK
    assert dialog.edited_preferences().retry_delays[0] == 45


def test_old_transcripts_are_cleared_on_request(qtbot, paths: AppPaths, tmp_path: Path) -> None:
    store = OutboxStore(paths.database, paths.spool_dir)
    now = time.time()

    def sent_message(at: float, transcript: str) -> int:
        draft = Draft(
            sender=parse_address("ann@example.org"),
            to=(parse_address("bob@example.org"),),
            subject="hello",
            body="text",
        )
        message = store.enqueue(build_message(draft, spool_dir=tmp_path), account="w", now=at)
        store.claim_next("r", now=at, lease=60, message=message)
        reply = Reply(250, None, ("ok",))
        result = MessageResult(
            (RecipientResult("bob@example.org", RecipientStatus.ACCEPTED, reply),)
        )
        assert store.record_result(message, "r", result, transcript, now=at) is State.SENT
        return message

    old = sent_message(now - 40 * DAY, "S: 250 old")
    recent = sent_message(now - 2 * DAY, "S: 250 recent")

    dialog = open_dialog(qtbot, paths)
    privacy = dialog.privacy_page
    dialog.show_page("Privacy")
    privacy.days.setValue(0)
    click(qtbot, privacy.prune_button)
    assert "kept forever" in privacy.prune_result.text()

    privacy.days.setValue(30)
    click(qtbot, privacy.prune_button)
    qtbot.waitUntil(lambda: privacy.prune_result.text().startswith("Cleared"), timeout=10_000)
    assert privacy.prune_result.text() == (
        "Cleared the transcripts of 1 attempt that ended more than 30 days ago."
    )
    assert [a.transcript for a in store.attempts(old)] == [""]
    assert [a.transcript for a in store.attempts(recent)] == ["S: 250 recent"]

    click(qtbot, privacy.prune_button)
    qtbot.waitUntil(lambda: privacy.prune_result.text().startswith("No transcript"), timeout=10_000)
    store.close()


def test_prune_without_an_outbox_creates_none(qtbot, paths: AppPaths) -> None:
    dialog = open_dialog(qtbot, paths)
    click(qtbot, dialog.privacy_page.prune_button)
    assert "no outbox yet" in dialog.privacy_page.prune_result.text()
    assert not paths.database.exists()


def test_pages_are_reachable_from_the_keyboard(qtbot, paths: AppPaths) -> None:
    dialog = open_dialog(qtbot, paths)
    assert dialog.current_page() == "Accounts"
    qtbot.keyClick(dialog, Qt.Key.Key_PageDown, Qt.KeyboardModifier.ControlModifier)
    assert dialog.current_page() == "Sending"
    qtbot.keyClick(dialog, Qt.Key.Key_PageDown, Qt.KeyboardModifier.ControlModifier)
    qtbot.keyClick(dialog, Qt.Key.Key_PageDown, Qt.KeyboardModifier.ControlModifier)
    assert dialog.current_page() == "Privacy"
    qtbot.keyClick(dialog, Qt.Key.Key_PageUp, Qt.KeyboardModifier.ControlModifier)
    assert dialog.current_page() == "Composer"


def test_every_control_has_an_accessible_name(qtbot, paths: AppPaths) -> None:
    save_preferences(paths.preferences_file, Preferences())
    dialog = open_dialog(qtbot, paths)
    controls = (
        QAbstractButton, QComboBox, QAbstractSpinBox, QLineEdit, QPlainTextEdit,
        QAbstractItemView,
    )  # fmt: skip
    inner = (QComboBox, QAbstractSpinBox, QAbstractItemView)

    def part_of_another(widget: QWidget) -> bool:
        parent = widget.parentWidget()
        while parent is not None:
            if isinstance(parent, inner):
                return True
            parent = parent.parentWidget()
        return False

    unnamed = [
        f"{type(w).__name__} {w.objectName() or getattr(w, 'text', lambda: '')()}"
        for w in dialog.findChildren(QWidget)
        if isinstance(w, controls) and not part_of_another(w) and not w.accessibleName()
    ]
    assert unnamed == []
