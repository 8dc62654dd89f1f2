"""The Accounts page: list, add (through the setup wizard), edit, password, remove, test.

Every change is written through AccountStore (atomic, locked) and every
password goes to the keyring, both on worker threads; the test connects and
logs in on a worker thread too, showing the redacted transcript as it comes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

from PySide6.QtCore import QItemSelectionModel, Qt, QTimer, Signal, Slot
from PySide6.QtGui import QAction, QFontDatabase, QKeySequence
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPlainTextEdit,
    QPushButton,
    QScrollArea,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from mailer_gui.accounts.model import Account
from mailer_gui.outbox.policy import NEEDS_PASSWORD
from mailer_gui.paths import AppPaths
from mailer_gui.smtp.session import Session
from mailer_gui.smtp.transcript import Transcript, TranscriptRecord
from mailer_gui.ui.settings.account_form import AccountForm
from mailer_gui.ui.settings.account_io import (
    change_password,
    explain_failure,
    load_accounts,
    paused_accounts,
    probe_account,
    remove_account,
    replace_account,
    resume_outbox,
)
from mailer_gui.ui.settings.background import Background
from mailer_gui.ui.settings.widgets import MessageLabel


def _action(
    widget: QWidget,
    shortcut: QKeySequence | QKeySequence.StandardKey | str,
    slot: Callable[[], None],
    text: str,
) -> QAction:
    """A keyboard shortcut that works anywhere on `widget` (the page), not the whole app."""
    action = QAction(text, widget)
    action.setShortcut(QKeySequence(shortcut))
    action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
    action.triggered.connect(slot)
    widget.addAction(action)
    return action


class PasswordDialog(QDialog):
    """Asks for a new password twice; the text never leaves this dialog but to the keyring."""

    def __init__(self, account_name: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"Change the password of {account_name}")
        self.password_field = QLineEdit(self)
        self.password_field.setEchoMode(QLineEdit.EchoMode.Password)
        self.password_field.setAccessibleName("New password")
        self.repeat_field = QLineEdit(self)
        self.repeat_field.setEchoMode(QLineEdit.EchoMode.Password)
        self.repeat_field.setAccessibleName("Repeat the new password")
        self.show_box = QCheckBox("&Show the password", self)
        self.show_box.setAccessibleName("Show the password")
        self.show_box.toggled.connect(self._reveal)
        self.error = MessageLabel("Password problem", self)
        note = QLabel(
            "The password is kept in the system keyring, never in Mailer's files. Providers "
            "that use two-step sign-in want an app password here.",
            self,
        )
        note.setWordWrap(True)
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel, self
        )
        self.buttons.accepted.connect(self._check)
        self.buttons.rejected.connect(self.reject)
        form = QFormLayout()
        password_label = QLabel("&New password:", self)
        password_label.setBuddy(self.password_field)
        repeat_label = QLabel("&Repeat it:", self)
        repeat_label.setBuddy(self.repeat_field)
        form.addRow(password_label, self.password_field)
        form.addRow(repeat_label, self.repeat_field)
        form.addRow("", self.show_box)
        layout = QVBoxLayout(self)
        layout.addWidget(note)
        layout.addLayout(form)
        layout.addWidget(self.error)
        layout.addWidget(self.buttons)

    def password(self) -> str:
        return self.password_field.text()

    def forget(self) -> None:
        self.password_field.clear()
        self.repeat_field.clear()

    def _reveal(self, shown: bool) -> None:
        mode = QLineEdit.EchoMode.Normal if shown else QLineEdit.EchoMode.Password
        self.password_field.setEchoMode(mode)
        self.repeat_field.setEchoMode(mode)

    def _check(self) -> None:
        if not self.password_field.text():
            self.error.show_error("Enter the new password.")
            self.password_field.setFocus()
        elif self.password_field.text() != self.repeat_field.text():
            self.error.show_error("The two passwords differ; type the same password twice.")
            self.repeat_field.setFocus()
        else:
            self.accept()


class AccountsPage(QWidget):
    """Lists the accounts of `paths.accounts_file` and edits the selected one."""

    #: an account was saved, its password changed, or it was removed
    accountsChanged = Signal()
    #: the account test finished: True when it connected (and logged in if it should)
    testFinished = Signal(bool)
    #: the list was (re)loaded from the file
    loaded = Signal()

    # A transcript line from the test's worker thread, hopped onto the GUI thread.
    _testLine = Signal(object)

    def __init__(
        self,
        paths: AppPaths,
        background: Background,
        parent: QWidget | None = None,
        *,
        add_account: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(parent)
        self.paths = paths
        self._background = background
        self._add_account = add_account
        self._test_session: Session | None = None
        self._testing = False
        self._working = False  # a save, removal or password change is under way
        self._selected_name: str | None = None
        self.password_dialog: PasswordDialog | None = None

        self.banner = MessageLabel("Accounts: message", self)
        # Why the chosen account's messages wait in the outbox, when they do.
        self.pause_note = MessageLabel("Account paused", self)
        self._paused: dict[str, tuple[str, str]] = {}

        self.list = QListWidget(self)
        self.list.setAccessibleName("Accounts")
        self.list.setAccessibleDescription("The sending accounts; choose one to edit it.")
        self.list.currentItemChanged.connect(self._account_chosen)
        self.add_button = QPushButton("Add account…", self)
        self.add_button.setAccessibleName("Add account")
        self.add_button.setToolTip("Set up a new account with the setup assistant (Ctrl+N).")
        self.add_button.clicked.connect(self._add)
        self.add_button.setVisible(add_account is not None)
        self.remove_button = QPushButton("Remo&ve…", self)
        self.remove_button.setAccessibleName("Remove account")
        self.remove_button.setToolTip("Remove the chosen account and its saved password.")
        self.remove_button.clicked.connect(self._ask_remove)

        self.form = AccountForm(self)
        self.form.edited.connect(self._update_buttons)
        scroll = QScrollArea(self)
        scroll.setWidget(self.form)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)

        self.save_button = QPushButton("&Save account", self)
        self.save_button.setAccessibleName("Save account")
        self.save_button.setToolTip("Save the changes to this account (Ctrl+S).")
        self.save_button.clicked.connect(self.save)
        self.revert_button = QPushButton("Undo c&hanges", self)
        self.revert_button.setAccessibleName("Undo changes")
        self.revert_button.setToolTip("Show the account as it is saved.")
        self.revert_button.clicked.connect(self.revert)
        self.password_button = QPushButton("Change pass&word…", self)
        self.password_button.setAccessibleName("Change password")
        self.password_button.clicked.connect(self._ask_password)
        self.test_button = QPushButton("&Test connection", self)
        self.test_button.setAccessibleName("Test connection")
        self.test_button.setToolTip(
            "Connect and log in with the settings shown, without sending anything (Ctrl+T)."
        )
        self.test_button.clicked.connect(self._test_clicked)

        # Asked inline, so a test can answer it and no message box piles up.
        self.confirm_strip = QFrame(self)
        self.confirm_strip.setFrameShape(QFrame.Shape.StyledPanel)
        self.confirm_label = QLabel(self.confirm_strip)
        self.confirm_label.setWordWrap(True)
        self.confirm_remove_button = QPushButton("Remove", self.confirm_strip)
        self.confirm_remove_button.setAccessibleName("Confirm removing the account")
        self.confirm_remove_button.clicked.connect(self._remove_confirmed)
        self.keep_button = QPushButton("Keep it", self.confirm_strip)
        self.keep_button.setAccessibleName("Keep the account")
        self.keep_button.clicked.connect(self._remove_declined)
        strip = QHBoxLayout(self.confirm_strip)
        strip.addWidget(self.confirm_label, 1)
        strip.addWidget(self.confirm_remove_button)
        strip.addWidget(self.keep_button)
        self.confirm_strip.hide()

        self.test_result = MessageLabel("Test result", self)
        self.transcript = QPlainTextEdit(self)
        self.transcript.setReadOnly(True)
        self.transcript.setAccessibleName("Test transcript")
        self.transcript.setAccessibleDescription(
            "What the server said during the test; passwords are hidden."
        )
        self.transcript.setPlaceholderText("The server's words appear here during a test.")
        self.transcript.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.transcript.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self._testLine.connect(self._append_line, Qt.ConnectionType.QueuedConnection)

        left = QVBoxLayout()
        left.addWidget(self.list, 1)
        left_buttons = QHBoxLayout()
        left_buttons.addWidget(self.add_button)
        left_buttons.addWidget(self.remove_button)
        left.addLayout(left_buttons)
        actions = QHBoxLayout()
        actions.addWidget(self.save_button)
        actions.addWidget(self.revert_button)
        actions.addStretch(1)
        actions.addWidget(self.password_button)
        actions.addWidget(self.test_button)
        editor = QWidget(self)
        right = QVBoxLayout(editor)
        right.setContentsMargins(0, 0, 0, 0)
        right.addWidget(scroll, 1)
        right.addLayout(actions)
        right.addWidget(self.confirm_strip)
        test_area = QWidget(self)
        below = QVBoxLayout(test_area)
        below.setContentsMargins(0, 0, 0, 0)
        below.addWidget(self.test_result)
        below.addWidget(self.transcript, 1)
        vertical = QSplitter(Qt.Orientation.Vertical, self)
        vertical.addWidget(editor)
        vertical.addWidget(test_area)
        vertical.setStretchFactor(0, 3)
        vertical.setStretchFactor(1, 1)
        vertical.setChildrenCollapsible(False)
        body = QHBoxLayout()
        body.addLayout(left, 1)
        body.addWidget(vertical, 3)
        layout = QVBoxLayout(self)
        layout.addWidget(self.banner)
        layout.addWidget(self.pause_note)
        layout.addLayout(body, 1)

        _action(self, "Ctrl+N", self.add_button.click, "Add account")
        _action(self, QKeySequence.StandardKey.Save, self.save_button.click, "Save account")
        _action(self, "Ctrl+T", self.test_button.click, "Test connection")
        remove = QAction("Remove account", self.list)
        remove.setShortcut(QKeySequence(QKeySequence.StandardKey.Delete))
        remove.setShortcutContext(Qt.ShortcutContext.WidgetShortcut)
        remove.triggered.connect(self.remove_button.click)
        self.list.addAction(remove)
        self._update_buttons()

    # ------------------------------------------------------------- loading

    def reload(self) -> None:
        """Read the accounts file again (off the GUI thread) and show what it holds."""

        def loaded(
            result: tuple[list[Account], str | None] | None, error: BaseException | None
        ) -> None:
            if error is not None or result is None:
                self._fill([], None)
                self.banner.show_error(explain_failure(error) if error else "No accounts.")
            else:
                self._fill(*result)
            self.loaded.emit()

        self._background.run(lambda: load_accounts(self.paths), loaded)
        self._load_paused()

    def _load_paused(self) -> None:
        """Read which accounts the outbox holds back (off the GUI thread)."""

        def loaded(paused: dict[str, tuple[str, str]] | None, error: BaseException | None) -> None:
            self._paused = paused or {}
            self._show_pause()

        self._background.run(lambda: paused_accounts(self.paths), loaded)

    def _show_pause(self) -> None:
        pause = self._paused.get(self._selected_name or "")
        if pause is None:
            self.pause_note.clear_message()
            return
        state, reason = pause
        original = self.form.original
        if state != NEEDS_PASSWORD:
            fix = (
                "Saving a fix to the account here sends them again, as does Retry now "
                "on one of them."
            )
        elif original is not None and original.secret_source == "keyring":
            fix = "Change password… sends them again."
        else:  # the password comes from a command, or is asked for: nothing to change here
            fix = "Once its password can be had, Test connection sends them again."
        self.pause_note.show_error(
            f"Sending from {self._selected_name} is paused ({state}); its messages wait in "
            f"the outbox. {reason} {fix}"
        )

    def _fill(self, accounts: list[Account], default: str | None) -> None:
        keep = self._selected_name
        self.list.blockSignals(True)
        self.list.clear()
        for account in accounts:
            mark = " (default)" if account.name == default else ""
            item = QListWidgetItem(f"{account.name}{mark}\n{account.email}")
            item.setData(Qt.ItemDataRole.UserRole, account)
            item.setData(
                Qt.ItemDataRole.AccessibleTextRole, f"{account.name}{mark}, {account.email}"
            )
            self.list.addItem(item)
        self.list.blockSignals(False)
        if not accounts:
            self._selected_name = None
            self.form.set_account(None)
            if not self.banner.is_error:
                how = (
                    "Add one with Add account."
                    if self._add_account is not None
                    else "Set one up from a terminal: mailer-gui accounts setup you@example.org"
                )
                self.banner.show_info(f"No account is set up yet. {how}")
        else:
            if self.banner.text().startswith("No account is set up yet"):
                self.banner.clear_message()
            names = [account.name for account in accounts]
            row = names.index(keep) if keep in names else 0
            self.list.setCurrentRow(row)
            self._show_account(accounts[row])
        self._update_buttons()

    def account_names(self) -> list[str]:
        return [
            self.list.item(i).data(Qt.ItemDataRole.UserRole).name for i in range(self.list.count())
        ]

    def select(self, name: str) -> bool:
        """Choose the account called `name` in the list; False when it is not there."""
        for row in range(self.list.count()):
            if self.list.item(row).data(Qt.ItemDataRole.UserRole).name == name:
                self.list.setCurrentRow(row)
                return self._selected_name == name
        return False

    def _account_chosen(
        self, current: QListWidgetItem | None, previous: QListWidgetItem | None
    ) -> None:
        if current is None:
            return
        account: Account = current.data(Qt.ItemDataRole.UserRole)
        if account.name == self._selected_name:
            return
        if self.form.is_dirty() and previous is not None:
            # Keep the edits: go back to the account being edited and say why.
            # Once more after the click that chose it is over: a click selects
            # the item it chose after this (its highlight stayed there).
            self._back_to(previous)
            QTimer.singleShot(0, lambda: self._back_to(previous))
            self.banner.show_error(
                f"Save or undo the changes to {self._selected_name!r} before choosing "
                "another account."
            )
            return
        self._show_account(account)

    def _back_to(self, item: QListWidgetItem) -> None:
        """Make ``item`` (the account being edited) the chosen one again, quietly."""
        if self.list.row(item) < 0:
            return  # the list was filled again meanwhile
        self.list.blockSignals(True)
        self.list.setCurrentItem(item, QItemSelectionModel.SelectionFlag.ClearAndSelect)
        self.list.blockSignals(False)

    def _show_account(self, account: Account) -> None:
        self._selected_name = account.name
        self._show_pause()
        self.form.set_account(account)
        self.confirm_strip.hide()
        self.test_result.clear_message()
        if self.banner.is_error and self.banner.text().startswith("Save or undo"):
            self.banner.clear_message()
        self._update_buttons()

    # ------------------------------------------------------------- editing

    def has_unsaved_changes(self) -> bool:
        return self.form.is_dirty()

    def unsaved_account(self) -> tuple[bool, Account | None]:
        """(valid, the edited account or None when nothing changed).

        Not valid: the problems are shown beside their fields.
        """
        if not self.form.is_dirty():
            return True, None
        account = self.form.validated_account()
        return account is not None, account

    def save(self) -> None:
        """Save the edited account (Save account / Ctrl+S)."""
        valid, account = self.unsaved_account()
        if not valid:
            self.banner.show_error("The account was not saved: fix the marked settings.")
            return
        if account is None or self.form.original is None:
            return
        name = self.form.original.name
        self._set_working(True)

        def saved(_result: object, error: BaseException | None) -> None:
            self._set_working(False)
            if error is not None:
                self.show_save_error(error)
            else:
                self.account_saved(account)

        self._background.run(lambda: replace_account(self.paths, name, account), saved)

    def account_saved(self, account: Account) -> None:
        """The edited account is on disk: show it as saved and tell the dialog."""
        item = self.list.currentItem()
        if item is not None:
            item.setData(Qt.ItemDataRole.UserRole, account)
        self.form.set_account(account)
        self.banner.show_info(f"Saved the account {account.name!r}.")
        self._update_buttons()
        self._load_paused()  # saving tried it again
        self.accountsChanged.emit()

    def show_save_error(self, error: BaseException) -> None:
        self.banner.show_error(f"The account was not saved. {explain_failure(error)}")

    def revert(self) -> None:
        self.form.set_account(self.form.original)
        self.banner.clear_message()
        if not self._testing:
            self.test_result.clear_message()  # it was about settings no longer shown
        self._update_buttons()

    # ------------------------------------------------------------- add, remove

    def _add(self) -> None:
        if self._add_account is None:
            return
        self._add_account()
        self.reload()  # the wizard may be modal; a non-modal one calls reload() again

    def _ask_remove(self) -> None:
        account = self.form.original
        if account is None:
            return
        password = " and its saved password" if account.secret_source == "keyring" else ""
        self.confirm_label.setText(
            f"Remove the account {account.name!r}{password}? Messages waiting in the outbox "
            "for it will not be sent until an account of that name exists again."
        )
        self.confirm_label.setAccessibleName(self.confirm_label.text())
        self.confirm_strip.show()
        self.keep_button.setFocus()

    def _remove_declined(self) -> None:
        self.confirm_strip.hide()
        self.remove_button.setFocus()

    def _remove_confirmed(self) -> None:
        self.confirm_strip.hide()
        account = self.form.original
        if account is None:
            return
        name = account.name
        self._set_working(True)

        def removed(sentence: str | None, error: BaseException | None) -> None:
            self._set_working(False)
            if error is not None:
                self.banner.show_error(explain_failure(error))
                return
            self._selected_name = None
            self.form.set_account(None)
            self.banner.show_info(sentence or "")
            self.accountsChanged.emit()
            self.reload()

        self._background.run(lambda: remove_account(self.paths, name), removed)

    # ------------------------------------------------------------- password

    def _ask_password(self) -> None:
        account = self.form.original
        if account is None:
            return
        dialog = PasswordDialog(account.name, self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.accepted.connect(lambda: self._password_entered(dialog, account.name))
        dialog.finished.connect(lambda _result: self._password_dialog_closed(dialog))
        self.password_dialog = dialog
        dialog.open()

    def _password_dialog_closed(self, dialog: PasswordDialog) -> None:
        dialog.forget()
        if self.password_dialog is dialog:
            self.password_dialog = None

    def _password_entered(self, dialog: PasswordDialog, name: str) -> None:
        password = dialog.password()
        dialog.forget()
        self._set_working(True)
        self.banner.show_info(f"Saving the password for {name!r}…")

        def stored(sentence: str | None, error: BaseException | None) -> None:
            self._set_working(False)
            if error is not None:
                self.banner.show_error(explain_failure(error))
            else:
                self.banner.show_info(sentence or "")
                self._load_paused()  # a new password tries it again
                self.accountsChanged.emit()

        self._background.run(lambda: change_password(self.paths, name, password), stored)

    # ------------------------------------------------------------- test

    def _test_clicked(self) -> None:
        if self._testing:
            self.stop_test()
        else:
            self.start_test()

    def start_test(self) -> None:
        """Connect and log in with the form's settings, on a worker thread."""
        if self._testing or self.form.original is None:
            return
        account = self.form.validated_account()
        if account is None:
            self.test_result.show_error(
                "The test uses the settings shown: fix the marked ones first."
            )
            return
        self.transcript.clear()
        self.test_result.show_info(f"Testing {account.name}…")
        self._testing = True
        self._update_buttons()
        transcript = Transcript(self._line_from_worker)

        def started(session: Session) -> None:
            self._test_session = session

        def finished(sentence: str | None, error: BaseException | None) -> None:
            self._test_session = None
            self._testing = False
            self._update_buttons()
            if error is not None:
                self.test_result.show_error(explain_failure(error))
            else:
                self.test_result.show_info(sentence or "")
                if account == self.form.original and account.name in self._paused:
                    self._resume_tested(account.name, sentence or "")
            self.testFinished.emit(error is None)

        self._background.run(
            lambda: probe_account(self.paths, account, transcript, started), finished
        )

    def _resume_tested(self, name: str, sentence: str) -> None:
        """The saved account logged in now: its paused messages are sent again,
        as `mailer-gui accounts test` does."""
        state, _reason = self._paused[name]

        def resumed(_result: object, error: BaseException | None) -> None:
            if error is not None:
                return  # the outbox says why where it is read
            self.test_result.show_info(
                f"{sentence} It was paused ({state}); its messages are sent again."
            )
            self._load_paused()
            self.accountsChanged.emit()  # the window's outbox looks again

        self._background.run(lambda: resume_outbox(self.paths, name), resumed)

    def stop_test(self) -> None:
        session = self._test_session
        if session is not None:
            session.abort()

    def _line_from_worker(self, record: TranscriptRecord) -> None:
        """Called on the test's worker thread: only hop."""
        with contextlib.suppress(RuntimeError):  # the page was deleted meanwhile
            self._testLine.emit(record)

    @Slot(object)
    def _append_line(self, record: TranscriptRecord) -> None:
        self.transcript.appendPlainText(record.render())

    # ------------------------------------------------------------- state

    def _set_working(self, working: bool) -> None:
        self._working = working
        self._update_buttons()

    def _update_buttons(self) -> None:
        account = self.form.original
        chosen = account is not None
        dirty = self.form.is_dirty()
        idle = not self._working
        self.list.setEnabled(idle)
        self.add_button.setEnabled(idle)
        self.remove_button.setEnabled(chosen and idle)
        self.save_button.setEnabled(chosen and dirty and idle)
        self.revert_button.setEnabled(chosen and dirty and idle)
        values = self.form.values()
        direct = values.get("kind") == "direct"
        uses_keyring = values.get("secret_source") == "keyring" and not direct
        self.password_button.setEnabled(chosen and idle and uses_keyring)
        self.password_button.setToolTip(
            "Keep a new password for this account in the system keyring."
            if uses_keyring
            else "Direct delivery logs in nowhere: it needs no password."
            if direct
            else "This account does not keep its password in the keyring; choose "
            "“The system keyring” under Password from, and save, to keep one there."
        )
        self.test_button.setEnabled(chosen and (idle or self._testing))
        self.test_button.setText("S&top test" if self._testing else "&Test connection")
        self.test_button.setAccessibleName("Stop test" if self._testing else "Test connection")

    def reset(self) -> None:
        """After the dialog was closed and shown again: nothing is running any more."""
        self._testing = False
        self._working = False
        self._test_session = None
        self.test_result.clear_message()
        self.transcript.clear()
        self.banner.clear_message()
        self._update_buttons()

    def shutdown(self) -> None:
        """The dialog is closing: stop a running test (its socket closes at once)."""
        self.stop_test()
        if self.password_dialog is not None:
            self.password_dialog.forget()
