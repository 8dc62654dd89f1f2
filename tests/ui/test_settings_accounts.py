"""The Settings dialog's Accounts page: real files, a real keyring, a loopback aiosmtpd."""

from __future__ import annotations

import base64
import json
import stat
import time
from collections.abc import Callable
from pathlib import Path

import keyring
import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QCheckBox, QComboBox, QLineEdit, QPlainTextEdit, QSpinBox

from mailer_gui.accounts import secrets
from mailer_gui.accounts.model import ACCOUNT_FIELDS, Account
from mailer_gui.accounts.store import AccountStore
from mailer_gui.paths import AppPaths, resolve_paths
from mailer_gui.preferences import Preferences
from mailer_gui.smtp.settings import AuthMethod, Security
from mailer_gui.ui.settings import SettingsDialog
from mailer_gui.ui.settings.accounts_page import AccountsPage

# The offscreen plugin says this about every shown window with a layout.
pytestmark = pytest.mark.qt_log_ignore(r"This plugin does not support propagateSizeHints\(\)")

LOGIN = "ann@example.org"
PASSWORD = "c0rrect-h0rse-battery"


@pytest.fixture
def paths(tmp_path: Path) -> AppPaths:
    return resolve_paths(tmp_path / "home")


def add_account(paths: AppPaths, **changes: object) -> Account:
    settings: dict[str, object] = {
        "name": "work",
        "email": LOGIN,
        "host": "localhost",
        "port": 2525,
        "security": Security.STARTTLS,
        **changes,
    }
    account = Account(**settings)  # type: ignore[arg-type]
    AccountStore(paths.accounts_file).add(account)
    return account


def open_dialog(qtbot, paths: AppPaths, *, add: Callable[[], None] | None = None) -> SettingsDialog:
    dialog = SettingsDialog(paths, Preferences(), add_account=add)
    qtbot.addWidget(dialog)
    with qtbot.waitSignal(dialog.accounts_page.loaded, timeout=5_000):
        dialog.show()
    return dialog


def page_of(dialog: SettingsDialog) -> AccountsPage:
    return dialog.accounts_page


def click(qtbot, button) -> None:
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)


def set_text(page: AccountsPage, field: str, text: str) -> None:
    widget = page.form.editors[field].widget
    assert isinstance(widget, QLineEdit)
    widget.setText(text)


def choose(page: AccountsPage, field: str, value: str) -> None:
    combo = page.form.editors[field].widget
    assert isinstance(combo, QComboBox)
    index = combo.findData(value)
    assert index >= 0, value
    combo.setCurrentIndex(index)


def file_document(paths: AppPaths) -> dict:
    return json.loads(paths.accounts_file.read_text(encoding="utf-8"))


# ------------------------------------------------------------------ the form


def test_form_is_generated_from_the_field_table(qtbot, paths: AppPaths) -> None:
    add_account(paths, signature="Ann\n-- \nExample", allow_insecure_auth=False)
    dialog = open_dialog(qtbot, paths)
    page = page_of(dialog)
    assert set(page.form.editors) == {spec.name for spec in ACCOUNT_FIELDS}
    expected = {
        "security": QComboBox,
        "auth": QComboBox,
        "kind": QComboBox,
        "secret_source": QComboBox,
        "port": QSpinBox,
        "connection_limit": QSpinBox,
        "allow_insecure_auth": QCheckBox,
        "host": QLineEdit,
        "email": QLineEdit,
        "signature": QPlainTextEdit,
    }
    for name, widget_type in expected.items():
        assert isinstance(page.form.editors[name].widget, widget_type), name
    for spec in ACCOUNT_FIELDS:
        widget = page.form.editors[spec.name].widget
        assert widget.accessibleName(), spec.name
        assert spec.description in (widget.toolTip(), widget.accessibleDescription())
    # The saved values are shown.
    assert page.form.values()["port"] == 2525
    assert page.form.values()["security"] is Security.STARTTLS
    assert page.form.values()["signature"] == "Ann\n-- \nExample"
    assert not page.form.is_dirty()
    assert not page.save_button.isEnabled()


def test_editing_port_and_security_saves_to_the_accounts_file(qtbot, paths: AppPaths) -> None:
    add_account(paths)
    # A key from a newer Mailer must survive the save.
    document = file_document(paths)
    document["accounts"][0]["x_newer_setting"] = 7
    paths.accounts_file.write_text(json.dumps(document), encoding="utf-8")

    dialog = open_dialog(qtbot, paths)
    page = page_of(dialog)
    port = page.form.editors["port"].widget
    assert isinstance(port, QSpinBox)
    port.setValue(465)
    choose(page, "security", "tls")
    assert page.form.is_dirty() and page.save_button.isEnabled()
    with qtbot.waitSignal(dialog.accountsChanged, timeout=5_000):
        click(qtbot, page.save_button)

    saved = file_document(paths)["accounts"][0]
    assert saved["port"] == 465 and saved["security"] == "tls"
    assert saved["x_newer_setting"] == 7
    assert AccountStore(paths.accounts_file).get("work").security is Security.TLS
    assert stat.S_IMODE(paths.accounts_file.stat().st_mode) == 0o600
    assert "Saved the account 'work'" in page.banner.text()
    assert not page.form.is_dirty()


def paused_with_a_message(paths: AppPaths, reason: str, state: str):
    """The account "work" paused (``state``, ``reason``) by a message it holds
    back; the outbox, to be closed by the caller."""
    from mailer_gui.message.addresses import parse_address
    from mailer_gui.message.build import build_message
    from mailer_gui.message.draft import Draft
    from mailer_gui.outbox.policy import Disposition, Verdict
    from mailer_gui.outbox.store import OutboxStore

    store = OutboxStore(paths.database, paths.spool_dir)
    draft = Draft(
        sender=parse_address(LOGIN), to=(parse_address("bob@example.org"),), subject="Held",
        body="Hello.",
    )  # fmt: skip
    message = store.enqueue(build_message(draft, spool_dir=paths.spool_dir), account="work")
    store.claim_next("runner", now=time.time(), lease=60)
    verdict = Verdict(Disposition.PAUSE_ACCOUNT, reason, state)
    store.record_failure(message, "runner", verdict, account="work")
    return store


def test_a_paused_account_says_so_and_saving_a_fix_sends_again(qtbot, paths: AppPaths) -> None:
    """The outbox holds the account's messages back (the server wanted a login):
    the page says why, and saving the fixed account lets them go."""
    add_account(paths, auth=AuthMethod.NONE)
    add_account(paths, name="home", auth=AuthMethod.NONE)
    reason = "The server localhost requires sign-in before sending (530 5.7.0)."
    store = paused_with_a_message(paths, reason, "needs attention")
    assert set(store.paused_accounts()) == {"work"}
    dialog = open_dialog(qtbot, paths)
    page = page_of(dialog)
    assert page.select("work")
    qtbot.waitUntil(lambda: "is paused (needs attention)" in page.pause_note.text(), timeout=5_000)
    assert reason in page.pause_note.text() and "Saving a fix" in page.pause_note.text()
    assert page.select("home")
    assert page.pause_note.isHidden()  # only the paused account's note
    assert page.select("work")
    assert not page.pause_note.isHidden()

    choose(page, "auth", "plain")
    with qtbot.waitSignal(dialog.accountsChanged, timeout=5_000):
        click(qtbot, page.save_button)
    assert store.paused_accounts() == {}
    qtbot.waitUntil(page.pause_note.isHidden, timeout=5_000)
    store.close()


def test_unset_port_is_saved_as_unset(qtbot, paths: AppPaths) -> None:
    add_account(paths)
    dialog = open_dialog(qtbot, paths)
    page = page_of(dialog)
    port = page.form.editors["port"].widget
    assert isinstance(port, QSpinBox)
    port.setValue(port.minimum())
    assert port.text().startswith("Usual for the security")
    with qtbot.waitSignal(dialog.accountsChanged, timeout=5_000):
        click(qtbot, page.save_button)
    assert file_document(paths)["accounts"][0]["port"] is None


def test_invalid_values_show_their_errors_and_save_nothing(qtbot, paths: AppPaths) -> None:
    add_account(paths)
    before = paths.accounts_file.read_bytes()
    dialog = open_dialog(qtbot, paths)
    page = page_of(dialog)

    set_text(page, "email", "not-an-address")
    # Checked as it is typed, beside the field.
    assert "is not an email address" in page.form.error_text("email")
    port = page.form.editors["port"].widget
    assert isinstance(port, QSpinBox)
    port.setValue(70000)
    assert "not between 1 and 65535" in page.form.error_text("port")

    with qtbot.assertNotEmitted(dialog.accountsChanged, wait=200):
        click(qtbot, page.save_button)
    assert "fix the marked settings" in page.banner.text()
    assert page.form.error_text("email") and page.form.error_text("port")
    assert paths.accounts_file.read_bytes() == before

    # OK refuses too, shows the Accounts page, and the dialog stays open.
    dialog.show_page("Sending")
    with qtbot.waitSignal(dialog.applied, timeout=2_000) as applied:
        click(qtbot, dialog.ok_button)
    assert applied.args == [False]
    assert dialog.isVisible() and dialog.current_page() == "Accounts"
    assert paths.accounts_file.read_bytes() == before


def test_a_rule_across_fields_shows_at_the_field_it_names(qtbot, paths: AppPaths) -> None:
    add_account(paths)
    before = paths.accounts_file.read_bytes()
    dialog = open_dialog(qtbot, paths)
    page = page_of(dialog)
    set_text(page, "host", "")  # a relay needs a server
    assert page.form.error_text("host") == ""  # unset is a valid value on its own
    click(qtbot, page.save_button)
    # In the form's words, not the command line's (--host, --kind direct).
    assert page.form.error_text("host").startswith("Enter the outgoing server to send through")
    assert "--" not in page.form.error_text("host")
    assert paths.accounts_file.read_bytes() == before


def test_a_direct_account_shows_only_what_it_uses(qtbot, paths: AppPaths) -> None:
    """Direct delivery has no server of its own, no login and no password: those
    rows go while the kind is direct, and a server typed earlier is not kept."""
    add_account(paths)
    dialog = open_dialog(qtbot, paths)
    page = page_of(dialog)
    assert page.form.row_shown("host") and page.form.row_shown("auth")
    choose(page, "kind", "direct")
    for name in ("host", "security", "auth", "username", "secret_source", "password_command"):
        assert not page.form.row_shown(name), name
    assert page.form.row_shown("port") and page.form.row_shown("email")
    port = page.form.editors["port"].widget
    assert isinstance(port, QSpinBox) and port.specialValueText().startswith("25")
    with qtbot.waitSignal(dialog.accountsChanged, timeout=5_000):
        click(qtbot, page.save_button)
    saved = AccountStore(paths.accounts_file).get("work")
    assert saved.kind == "direct" and saved.host is None
    assert not page.password_button.isEnabled()
    choose(page, "kind", "relay")
    assert page.form.row_shown("host")


def test_ok_saves_the_edited_account_and_closes(qtbot, paths: AppPaths) -> None:
    add_account(paths)
    dialog = open_dialog(qtbot, paths)
    page = page_of(dialog)
    set_text(page, "display_name", "Ann Example")
    with qtbot.waitSignal(dialog.accountsChanged, timeout=5_000):
        click(qtbot, dialog.ok_button)
    qtbot.waitUntil(lambda: not dialog.isVisible(), timeout=5_000)
    assert AccountStore(paths.accounts_file).get("work").display_name == "Ann Example"


def test_choosing_another_account_keeps_unsaved_edits(qtbot, paths: AppPaths) -> None:
    add_account(paths)
    add_account(paths, name="home", email="ann@home.example")
    dialog = open_dialog(qtbot, paths)
    page = page_of(dialog)
    assert page.account_names() == ["work", "home"]
    set_text(page, "display_name", "Ann")
    page.list.setCurrentRow(1)
    assert page.form.original is not None and page.form.original.name == "work"
    assert page.form.values()["display_name"] == "Ann"
    assert "Save or undo the changes to 'work'" in page.banner.text()
    click(qtbot, page.revert_button)
    assert page.select("home")
    assert page.form.values()["email"] == "ann@home.example"


def test_a_click_on_another_account_with_unsaved_edits_stays_on_the_edited_one(
    qtbot, paths: AppPaths
) -> None:
    """Clicked (not chosen by the program): the list showed the clicked account
    chosen while the form still held the edited one."""
    from PySide6.QtTest import QTest

    add_account(paths)
    add_account(paths, name="home", email="ann@home.example")
    dialog = open_dialog(qtbot, paths)
    dialog.show()
    qtbot.waitExposed(dialog)
    page = page_of(dialog)
    set_text(page, "display_name", "Ann")
    other = page.list.item(1)
    QTest.mouseClick(
        page.list.viewport(), Qt.MouseButton.LeftButton,
        pos=page.list.visualItemRect(other).center(),
    )  # fmt: skip
    qtbot.wait(50)
    assert "Save or undo the changes to 'work'" in page.banner.text()
    assert page.list.currentRow() == 0
    assert [item.text() for item in page.list.selectedItems()] == [page.list.item(0).text()]


def test_no_account_says_how_to_add_one(qtbot, paths: AppPaths) -> None:
    added: list[bool] = []

    def add() -> None:
        added.append(True)
        add_account(paths, name="new")

    dialog = open_dialog(qtbot, paths, add=add)
    page = page_of(dialog)
    assert "No account is set up yet. Add one with Add account." in page.banner.text()
    assert page.add_button.isVisible()
    with qtbot.waitSignal(page.loaded, timeout=5_000):
        click(qtbot, page.add_button)
    assert added == [True] and page.account_names() == ["new"]
    assert not page.banner.text()


def test_add_is_hidden_without_a_wizard(qtbot, paths: AppPaths) -> None:
    dialog = open_dialog(qtbot, paths)
    assert not page_of(dialog).add_button.isVisible()
    assert "mailer-gui accounts setup" in page_of(dialog).banner.text()


def test_damaged_accounts_file_is_reported_on_the_page(qtbot, paths: AppPaths) -> None:
    paths.config_dir.mkdir(parents=True)
    paths.accounts_file.write_text("{ not json", encoding="utf-8")
    dialog = open_dialog(qtbot, paths)
    page = page_of(dialog)
    assert page.banner.is_error and "is damaged" in page.banner.text()
    assert page.account_names() == []
    assert paths.accounts_file.read_text(encoding="utf-8") == "{ not json"


# ------------------------------------------------------------------ password


def test_change_password_goes_to_the_keyring_never_the_file(
    qtbot, paths: AppPaths, secret_service
) -> None:
    add_account(paths, name="settings-pw")
    dialog = open_dialog(qtbot, paths)
    page = page_of(dialog)
    try:
        click(qtbot, page.password_button)
        password_dialog = page.password_dialog
        assert password_dialog is not None and password_dialog.isVisible()
        # Typed twice; a difference is caught in the dialog itself.
        qtbot.keyClicks(password_dialog.password_field, PASSWORD)
        qtbot.keyClicks(password_dialog.repeat_field, PASSWORD + "x")
        password_dialog.buttons.accepted.emit()
        assert "differ" in password_dialog.error.text() and password_dialog.isVisible()
        password_dialog.repeat_field.setText(PASSWORD)
        with qtbot.waitSignal(dialog.accountsChanged, timeout=10_000):
            password_dialog.buttons.accepted.emit()
        assert keyring.get_password(paths.keyring_service, "settings-pw") == PASSWORD
        assert "new password for 'settings-pw' is saved" in page.banner.text()
        for file in paths.config_dir.iterdir():
            assert PASSWORD.encode() not in file.read_bytes()
    finally:
        secrets.delete_password("settings-pw", service=paths.keyring_service)


def test_password_button_needs_the_keyring_as_source(qtbot, paths: AppPaths) -> None:
    add_account(paths, secret_source="command", password_command="echo x")
    dialog = open_dialog(qtbot, paths)
    page = page_of(dialog)
    assert not page.password_button.isEnabled()
    assert "keyring" in page.password_button.toolTip()


# ------------------------------------------------------------------ remove


def test_remove_asks_first_and_removes_the_keyring_entry(
    qtbot, paths: AppPaths, memory_keyring
) -> None:
    add_account(paths)
    add_account(paths, name="home", email="ann@home.example")
    secrets.store_password("work", PASSWORD, service=paths.keyring_service)
    dialog = open_dialog(qtbot, paths)
    page = page_of(dialog)

    click(qtbot, page.remove_button)
    assert page.confirm_strip.isVisible() and "'work'" in page.confirm_label.text()
    click(qtbot, page.keep_button)
    assert not page.confirm_strip.isVisible()
    assert [a.name for a in AccountStore(paths.accounts_file).load()] == ["work", "home"]

    click(qtbot, page.remove_button)
    with qtbot.waitSignal(dialog.accountsChanged, timeout=5_000):
        click(qtbot, page.confirm_remove_button)
    qtbot.waitUntil(lambda: page.account_names() == ["home"], timeout=5_000)
    assert [a.name for a in AccountStore(paths.accounts_file).load()] == ["home"]
    assert (paths.keyring_service, "work") not in memory_keyring.passwords
    assert "saved password were removed" in page.banner.text()


# ------------------------------------------------------------------ test


@pytest.fixture
def auth_server(aiosmtpd_factory, trust_test_ca):
    return aiosmtpd_factory(tls="starttls", users={LOGIN: PASSWORD})


def test_a_login_test_that_works_sends_a_paused_accounts_messages_again(
    qtbot, paths: AppPaths, auth_server, tmp_path: Path
) -> None:
    """An account paused for its password that takes it from a command: the
    page does not point at Change password… (greyed out for it), and a login
    test that works lets its messages go, as `mailer-gui accounts test` does."""
    from mailer_gui.outbox.policy import NEEDS_PASSWORD

    secret = tmp_path / "secret"
    secret.write_text(PASSWORD + "\n")
    add_account(
        paths, port=auth_server.port, auth=AuthMethod.PLAIN, secret_source="command",
        password_command=f"cat {secret}",
    )  # fmt: skip
    reason = "The server rejected the user name or password (535 5.7.8)."
    store = paused_with_a_message(paths, reason, NEEDS_PASSWORD)
    dialog = open_dialog(qtbot, paths)
    page = page_of(dialog)
    assert page.select("work")
    qtbot.waitUntil(lambda: "is paused (needs password)" in page.pause_note.text(), timeout=5_000)
    assert "Change password" not in page.pause_note.text()
    assert "Test connection sends them again" in page.pause_note.text()

    with qtbot.waitSignal(page.testFinished, timeout=20_000) as finished:
        click(qtbot, page.test_button)
    assert finished.args == [True]
    qtbot.waitUntil(lambda: store.paused_accounts() == {}, timeout=5_000)
    qtbot.waitUntil(lambda: "its messages are sent again" in page.test_result.text(), timeout=5_000)
    qtbot.waitUntil(page.pause_note.isHidden, timeout=5_000)
    store.close()


def test_connection_test_shows_the_live_transcript_redacted_and_the_result(
    qtbot, paths: AppPaths, auth_server, memory_keyring
) -> None:
    add_account(paths, port=auth_server.port, auth=AuthMethod.PLAIN)
    secrets.store_password("work", PASSWORD, service=paths.keyring_service)
    dialog = open_dialog(qtbot, paths)
    page = page_of(dialog)

    with qtbot.waitSignal(page.testFinished, timeout=20_000) as finished:
        click(qtbot, page.test_button)
        # The click returned at once: the connection runs on a worker thread.
        assert page.test_result.text() == "Testing work…"
        assert page.test_button.text() == "S&top test"
    assert finished.args == [True]
    result = page.test_result.text()
    assert result.startswith(f"OK: work reached localhost port {auth_server.port} (TLS, logged in")
    assert not page.test_result.is_error

    transcript = page.transcript.toPlainText()
    assert "* connecting to localhost" in transcript
    assert "C: STARTTLS" in transcript and "C: AUTH PLAIN" in transcript
    assert "235" in transcript
    blob = base64.b64encode(f"\0{LOGIN}\0{PASSWORD}".encode()).decode()
    assert PASSWORD not in transcript and blob not in transcript
    assert page.test_button.text() == "&Test connection"


def test_wrong_password_shows_the_explained_535(
    qtbot, paths: AppPaths, auth_server, memory_keyring
) -> None:
    add_account(paths, port=auth_server.port)
    secrets.store_password("work", "wrong-password", service=paths.keyring_service)
    dialog = open_dialog(qtbot, paths)
    page = page_of(dialog)
    with qtbot.waitSignal(page.testFinished, timeout=20_000) as finished:
        click(qtbot, page.test_button)
    assert finished.args == [False]
    result = page.test_result.text()
    assert page.test_result.is_error
    assert "rejected the user name or password (535" in result
    assert "app password" in result
    assert page.test_result.toolTip() == result  # whole, where the pane cuts it
    assert "Mailer will" not in result  # a test promises no retry
    transcript = page.transcript.toPlainText()
    assert "S: 535" in transcript and "wrong-password" not in transcript
    # Settings edited, then undone: the result was about them, and goes.
    set_text(page, "display_name", "Someone else")
    click(qtbot, page.revert_button)
    assert page.test_result.text() == "" and page.test_result.isHidden()


def test_test_uses_the_settings_shown_and_needs_them_valid(
    qtbot, paths: AppPaths, auth_server, memory_keyring
) -> None:
    add_account(paths, port=1)  # saved with a wrong port; the form fixes it before saving
    secrets.store_password("work", PASSWORD, service=paths.keyring_service)
    dialog = open_dialog(qtbot, paths)
    page = page_of(dialog)
    set_text(page, "email", "broken")
    click(qtbot, page.test_button)
    assert "fix the marked ones first" in page.test_result.text()
    set_text(page, "email", LOGIN)
    port = page.form.editors["port"].widget
    assert isinstance(port, QSpinBox)
    port.setValue(auth_server.port)
    with qtbot.waitSignal(page.testFinished, timeout=20_000) as finished:
        click(qtbot, page.test_button)
    assert finished.args == [True]
    assert AccountStore(paths.accounts_file).get("work").port == 1  # tested, not saved


def test_missing_password_says_where_to_store_it(
    qtbot, paths: AppPaths, auth_server, memory_keyring
) -> None:
    add_account(paths, port=auth_server.port)
    dialog = open_dialog(qtbot, paths)
    page = page_of(dialog)
    with qtbot.waitSignal(page.testFinished, timeout=20_000) as finished:
        click(qtbot, page.test_button)
    assert finished.args == [False]
    assert "No password is stored in the keyring for the account 'work'" in (
        page.test_result.text()
    )


def test_keyboard_shortcuts_save_and_test(
    qtbot, paths: AppPaths, auth_server, memory_keyring
) -> None:
    add_account(paths, port=auth_server.port)
    secrets.store_password("work", PASSWORD, service=paths.keyring_service)
    dialog = open_dialog(qtbot, paths)
    page = page_of(dialog)
    field = page.form.editors["display_name"].widget
    dialog.activateWindow()
    field.setFocus()
    qtbot.waitUntil(field.hasFocus, timeout=2_000)
    qtbot.keyClicks(field, "Ann")
    with qtbot.waitSignal(dialog.accountsChanged, timeout=5_000):
        qtbot.keyClick(field, Qt.Key.Key_S, Qt.KeyboardModifier.ControlModifier)
    assert AccountStore(paths.accounts_file).get("work").display_name == "Ann"
    with qtbot.waitSignal(page.testFinished, timeout=20_000) as finished:
        qtbot.keyClick(field, Qt.Key.Key_T, Qt.KeyboardModifier.ControlModifier)
    assert finished.args == [True]


def test_direct_delivery_has_no_single_server_to_test(qtbot, paths: AppPaths) -> None:
    add_account(paths, kind="direct", host=None, port=None)
    dialog = open_dialog(qtbot, paths)
    page = page_of(dialog)
    with qtbot.waitSignal(page.testFinished, timeout=5_000) as finished:
        click(qtbot, page.test_button)
    assert finished.args == [True]
    assert "no single server to test" in page.test_result.text()
    assert page.transcript.toPlainText() == ""


# ------------------------------------------------------------ identities


def test_identities_are_added_edited_removed_and_saved(qtbot, paths: AppPaths) -> None:
    from mailer_gui.accounts.model import Identity

    add_account(paths, identities=(Identity("old@example.org", "Old"),))
    dialog = open_dialog(qtbot, paths)
    page = page_of(dialog)
    identities = page.form.identities
    assert identities.list.count() == 1
    assert identities.list.item(0).text() == "Old <old@example.org>"

    # Add: a wrong address is refused beside the field, and the dialog stays open.
    editor = identities.open_dialog(None)
    editor.email.setText("not an address")
    editor.accept()
    assert editor.isVisible() and "not an email address" in editor.error.text()
    editor.email.setText("sales@example.org")
    editor.display_name.setText("Ann at Sales")
    editor.reply_to.setText("team@example.org")
    editor.signature.setPlainText("Ann\nSales")
    editor.accept()
    assert not editor.isVisible()
    assert [identities.list.item(i).text() for i in range(identities.list.count())] == [
        "Old <old@example.org>",
        "Ann at Sales <sales@example.org>",
    ]
    # Edit the first, then remove it.
    identities.list.setCurrentRow(0)
    editor = identities.open_dialog(0)
    assert editor.email.text() == "old@example.org"
    editor.display_name.setText("Older")
    editor.accept()
    assert identities.list.item(0).text() == "Older <old@example.org>"
    identities.list.setCurrentRow(0)
    click(qtbot, identities.remove_button)
    assert page.form.is_dirty() and page.save_button.isEnabled()

    with qtbot.waitSignal(dialog.accountsChanged, timeout=5_000):
        click(qtbot, page.save_button)
    saved = file_document(paths)["accounts"][0]["identities"]
    assert saved == [
        {
            "email": "sales@example.org",
            "display_name": "Ann at Sales",
            "reply_to": "team@example.org",
            "signature": "Ann\nSales",
        }
    ]
    (identity,) = AccountStore(paths.accounts_file).get("work").identities
    assert identity.signature == "Ann\nSales"
    assert not page.form.is_dirty()


def test_cancelling_the_identity_dialog_changes_nothing(qtbot, paths: AppPaths) -> None:
    add_account(paths)
    dialog = open_dialog(qtbot, paths)
    page = page_of(dialog)
    editor = page.form.identities.open_dialog(None)
    editor.email.setText("sales@example.org")
    editor.reject()
    assert page.form.identities.list.count() == 0
    assert not page.form.is_dirty()
