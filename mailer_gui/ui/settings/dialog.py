"""The Settings dialog: Accounts, Sending, Composer and Privacy, applied without a restart.

Apply (or OK) checks every page, shows each problem beside its field and
saves nothing until all are right; then it writes the preferences file and
the edited account on a worker thread and emits `preferencesChanged` with the
new Preferences, which the main window applies to the composers, the outbox
policy and the runner. Accounts are edited, tested and removed on their page.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtGui import QAction, QCloseEvent, QKeySequence, QShowEvent
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QListWidget,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from mailer_gui.accounts.model import Account
from mailer_gui.outbox.retention import prune_transcripts
from mailer_gui.outbox.store import OutboxStore
from mailer_gui.paths import AppPaths
from mailer_gui.preferences import (
    Preferences,
    PreferencesError,
    PreferencesSaveError,
    save_preferences,
    validate_preference,
)
from mailer_gui.ui.settings.account_io import explain_failure, replace_account
from mailer_gui.ui.settings.accounts_page import AccountsPage
from mailer_gui.ui.settings.background import Background
from mailer_gui.ui.settings.preference_pages import (
    ComposerPage,
    PreferencesPage,
    PrivacyPage,
    SendingPage,
)
from mailer_gui.ui.settings.widgets import MessageLabel

PAGE_NAMES = ("Accounts", "Sending", "Composer", "Privacy")


class SettingsDialog(QDialog):
    """Mailer's settings. Non-blocking: open it with show() or open()."""

    #: the new Preferences, saved, after Apply or OK changed any
    preferencesChanged = Signal(object)
    #: an account was saved, removed, or its password changed
    accountsChanged = Signal()
    #: Apply or OK finished saving (True) or stopped at a problem (False)
    applied = Signal(bool)

    def __init__(
        self,
        paths: AppPaths,
        preferences: Preferences,
        parent: QWidget | None = None,
        *,
        add_account: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Settings")
        self.setObjectName("settings-dialog")
        self.resize(860, 620)
        self.paths = paths
        self._preferences = preferences
        self._saving = False
        self._closed = False
        self.background = Background(self)

        self.banner = MessageLabel("Settings: message", self)

        self.pages = QListWidget(self)
        self.pages.setAccessibleName("Settings pages")
        self.pages.addItems(PAGE_NAMES)
        self.pages.setMaximumWidth(self.pages.sizeHintForColumn(0) + 48)
        self.stack = QStackedWidget(self)
        self.accounts_page = AccountsPage(paths, self.background, self, add_account=add_account)
        self.sending_page = SendingPage(self)
        self.composer_page = ComposerPage(self)
        self.privacy_page = PrivacyPage(self)
        for page, name in zip(self._all_pages(), PAGE_NAMES, strict=True):
            page.setAccessibleName(f"{name} settings")
            self.stack.addWidget(page)
        self.pages.currentRowChanged.connect(self.stack.setCurrentIndex)
        self.pages.setCurrentRow(0)

        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok
            | QDialogButtonBox.StandardButton.Apply
            | QDialogButtonBox.StandardButton.Cancel,
            self,
        )
        self.ok_button = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        self.apply_button = self.buttons.button(QDialogButtonBox.StandardButton.Apply)
        self.cancel_button = self.buttons.button(QDialogButtonBox.StandardButton.Cancel)
        self.ok_button.setAccessibleName("OK: save and close")
        self.apply_button.setAccessibleName("Apply: save and keep open")
        self.cancel_button.setAccessibleName("Cancel: close without saving")
        self.buttons.accepted.connect(lambda: self.apply(close_after=True))
        self.buttons.rejected.connect(self.reject)
        self.apply_button.clicked.connect(lambda: self.apply())

        body = QHBoxLayout()
        body.addWidget(self.pages)
        body.addWidget(self.stack, 1)
        layout = QVBoxLayout(self)
        layout.addWidget(self.banner)
        layout.addLayout(body, 1)
        layout.addWidget(self.buttons)

        for keys, step in (
            (QKeySequence.StandardKey.NextChild, 1),
            ("Ctrl+PgDown", 1),
            (QKeySequence.StandardKey.PreviousChild, -1),
            ("Ctrl+PgUp", -1),
        ):
            action = QAction(self)
            action.setShortcut(QKeySequence(keys))
            action.triggered.connect(lambda _checked=False, step=step: self._step_page(step))
            self.addAction(action)

        self.accounts_page.accountsChanged.connect(self.accountsChanged)
        self.privacy_page.pruneRequested.connect(self._prune)
        self._show_preferences(preferences)
        self.accounts_page.reload()

    # ------------------------------------------------------------- pages

    def _all_pages(self) -> tuple[QWidget, ...]:
        return (self.accounts_page, self.sending_page, self.composer_page, self.privacy_page)

    def _preference_pages(self) -> tuple[PreferencesPage, ...]:
        return (self.sending_page, self.composer_page, self.privacy_page)

    def show_page(self, name: str) -> None:
        """Show the page called `name` (one of PAGE_NAMES)."""
        self.pages.setCurrentRow(PAGE_NAMES.index(name))

    def current_page(self) -> str:
        return PAGE_NAMES[self.stack.currentIndex()]

    def _step_page(self, step: int) -> None:
        self.pages.setCurrentRow((self.pages.currentRow() + step) % self.pages.count())

    def _show_preferences(self, preferences: Preferences) -> None:
        for page in self._preference_pages():
            page.set_preferences(preferences)

    @property
    def preferences(self) -> Preferences:
        """The preferences as last saved (or as given, before any Apply)."""
        return self._preferences

    # ------------------------------------------------------------- apply

    def edited_preferences(self) -> Preferences | None:
        """The preferences the pages show, or None after showing each problem by its field."""
        values: dict[str, Any] = {}
        errors: dict[str, str] = {}
        for page in self._preference_pages():
            page.read(values, errors)
        for name, value in values.items():
            if name in errors:
                continue
            try:
                validate_preference(name, value)
            except PreferencesError as error:
                errors[name] = error.reason[:1].upper() + error.reason[1:]
        first_page: PreferencesPage | None = None
        for page in self._preference_pages():
            if page.show_errors(errors) and first_page is None:
                first_page = page
        if first_page is not None:
            self.stack.setCurrentWidget(first_page)
            self.pages.setCurrentRow(self.stack.currentIndex())
            return None
        return Preferences(**values)

    def apply(self, *, close_after: bool = False) -> None:
        """Check every page, then save what changed off the GUI thread (Apply, OK)."""
        if self._saving:
            return
        preferences = self.edited_preferences()
        if preferences is None:
            self.banner.show_error("Nothing was saved: fix the marked settings.")
            self.applied.emit(False)
            return
        valid, account = self.accounts_page.unsaved_account()
        if not valid:
            self.show_page("Accounts")
            self.banner.show_error("Nothing was saved: fix the marked account settings.")
            self.applied.emit(False)
            return
        original = self.accounts_page.form.original
        original_name = original.name if original is not None else None
        changed = preferences != self._preferences
        if not changed and account is None:
            self.banner.clear_message()
            self.applied.emit(True)
            if close_after:
                self.accept()
            return

        path = self.paths.preferences_file

        def save() -> dict[str, BaseException]:
            problems: dict[str, BaseException] = {}
            if changed:
                try:
                    save_preferences(path, preferences)
                except PreferencesSaveError as error:
                    problems["preferences"] = error
            if account is not None and original_name is not None:
                try:
                    replace_account(self.paths, original_name, account)
                except Exception as error:  # shown on the Accounts page
                    problems["account"] = error
            return problems

        def saved(problems: dict[str, BaseException] | None, error: BaseException | None) -> None:
            self._set_saving(False)
            problems = dict(problems or {})
            if error is not None:
                problems["preferences"] = error
            self._saved(preferences if changed else None, account, problems, close_after)

        self._set_saving(True)
        self.banner.show_info("Saving…")
        self.background.run(save, saved)

    def _saved(
        self,
        preferences: Preferences | None,
        account: Account | None,
        problems: dict[str, BaseException],
        close_after: bool,
    ) -> None:
        if preferences is not None and "preferences" not in problems:
            self._preferences = preferences
            self.preferencesChanged.emit(preferences)
        if account is not None:
            if "account" in problems:
                self.accounts_page.show_save_error(problems["account"])
            else:
                self.accounts_page.account_saved(account)
        if "preferences" in problems:
            self.banner.show_error(str(problems["preferences"]))
        elif "account" in problems:
            self.show_page("Accounts")
            self.banner.show_error("The account was not saved; see the Accounts page.")
        else:
            self.banner.show_info("Settings saved.")
        self.applied.emit(not problems)
        if close_after and not problems:
            self.accept()

    def _set_saving(self, saving: bool) -> None:
        self._saving = saving
        self.ok_button.setEnabled(not saving)
        self.apply_button.setEnabled(not saving)

    # ------------------------------------------------------------- privacy

    def _prune(self, days: int) -> None:
        page = self.privacy_page
        if days == 0:
            page.prune_result.show_info(
                "Transcripts are kept forever, so none were deleted. Choose a number of days first."
            )
            return
        database, spool = self.paths.database, self.paths.spool_dir
        if not database.exists():
            page.prune_result.show_info("There is no outbox yet, so there is nothing to delete.")
            return

        def prune() -> int:
            store = OutboxStore(database, spool)
            try:
                return prune_transcripts(store, days)
            finally:
                store.close()

        def pruned(count: int | None, error: BaseException | None) -> None:
            page.set_pruning(False)
            if error is not None:
                page.prune_result.show_error(
                    f"The old transcripts could not be deleted. {explain_failure(error)}"
                )
                return
            attempts = "1 attempt" if count == 1 else f"{count} attempts"
            day_text = "1 day" if days == 1 else f"{days} days"
            page.prune_result.show_info(
                f"Cleared the transcripts of {attempts} that ended more than {day_text} ago."
                if count
                else f"No transcript was older than {day_text}; nothing was deleted."
            )

        page.set_pruning(True)
        self.background.run(prune, pruned)

    # ------------------------------------------------------------- closing

    def showEvent(self, event: QShowEvent) -> None:
        if self._closed:
            # Shown again after it was closed: start from what is saved.
            self._closed = False
            self._set_saving(False)
            self.background.reopen()
            self.accounts_page.reset()
            self.privacy_page.set_pruning(False)
            self.privacy_page.prune_result.clear_message()
            self.banner.clear_message()
            self._show_preferences(self._preferences)
            self.accounts_page.reload()
        super().showEvent(event)

    def reject(self) -> None:
        if self._saving:
            return  # a save takes a moment; closing now would hide how it went
        super().reject()

    def done(self, result: int) -> None:
        self.shutdown()
        super().done(result)

    def closeEvent(self, event: QCloseEvent) -> None:
        if self._saving:
            event.ignore()  # as reject(): the save under way is applied, then it closes
            return
        self.shutdown()
        super().closeEvent(event)

    def shutdown(self) -> None:
        """Stop a running account test and wait (bounded) for saves under way."""
        if self._closed:
            return
        self._closed = True
        self.accounts_page.shutdown()
        self.background.shutdown()
