"""The account setup wizard: address and password, discovery, settings, login
test, identity — and only on Finish, the account and its password are saved.

Pages share a `WizardState` in memory; each validates in validatePage. All
network and keyring work runs on worker threads (background.BackgroundTask);
closing the wizard abandons them, so it never waits on a server. Accepting
saves off the GUI thread too: the password goes to the keyring first, then
the account to the accounts file; if the account cannot be written, the
password is taken back out, so a failed Finish leaves nothing behind.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import QDialog, QWidget, QWizard

from mailer_gui.accounts import secrets
from mailer_gui.accounts.model import Account, AccountError
from mailer_gui.accounts.store import AccountExists, AccountStore, AccountStoreError
from mailer_gui.paths import AppPaths
from mailer_gui.ui.wizard.background import BackgroundTask
from mailer_gui.ui.wizard.discovery_page import DiscoveryPage
from mailer_gui.ui.wizard.identity_page import IdentityPage
from mailer_gui.ui.wizard.login_page import LoginPage
from mailer_gui.ui.wizard.settings_page import SettingsPage
from mailer_gui.ui.wizard.start_page import StartPage
from mailer_gui.ui.wizard.state import ExistingAccounts, PageId, WizardState

__all__ = ["PageId", "SetupWizard", "save_account"]


def read_existing(paths: AppPaths) -> ExistingAccounts:
    """The names already taken; a file that cannot be read is reported, not raised."""
    try:
        accounts = AccountStore(paths.accounts_file).load()
    except AccountStoreError as exc:
        return ExistingAccounts(error=f"{exc} Nothing can be added until that is resolved.")
    return ExistingAccounts(names=frozenset(a.name.casefold() for a in accounts))


def save_account(
    paths: AppPaths, account: Account, password: str | None, *, make_default: bool
) -> Account:
    """Password to the keyring (when given), then the account to the accounts file.

    Blocking; SecretError or AccountStoreError when it cannot, and then nothing
    of this account is left behind.
    """
    store = AccountStore(paths.accounts_file)
    if any(a.name.casefold() == account.name.casefold() for a in store.load()):
        # Checked before the keyring is touched: that entry would be the other account's.
        raise AccountExists(
            f"There is already an account named {account.name!r}; choose another name.",
            path=store.path,
            name=account.name,
        )
    service = paths.keyring_service
    if password:
        secrets.store_password(account.name, password, service=service)
    try:
        store.add(account, make_default=make_default)
    except BaseException:
        if password:
            with contextlib.suppress(secrets.SecretError):
                secrets.delete_password(account.name, service=service)
        raise
    return account


class SetupWizard(QWizard):
    """Sets up a sending account; emits ``accountCreated(name)`` once it is saved.

    ``discovery_options`` are passed to accounts.discover.discover (for tests:
    ``autoconfig_urls``, ``guess_ports``, ``timeout``, ``resolver`` …); DNS
    otherwise follows MAILER_GUI_NAMESERVER or the system.
    """

    accountCreated = Signal(str)

    def __init__(
        self,
        paths: AppPaths,
        parent: QWidget | None = None,
        *,
        discovery_options: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Add an email account")
        self.setOption(QWizard.WizardOption.NoBackButtonOnStartPage, True)
        self.state = WizardState(paths, dict(discovery_options or {}))
        self.saved_account: Account | None = None
        self._save_task: BackgroundTask[Account] | None = None

        self.start_page = StartPage(self.state, self)
        self.discovery_page = DiscoveryPage(self.state, self)
        self.settings_page = SettingsPage(self.state, self)
        self.login_page = LoginPage(self.state, self)
        self.identity_page = IdentityPage(self.state, self)
        self.setPage(PageId.START, self.start_page)
        self.setPage(PageId.DISCOVERY, self.discovery_page)
        self.setPage(PageId.SETTINGS, self.settings_page)
        self.setPage(PageId.LOGIN, self.login_page)
        self.setPage(PageId.IDENTITY, self.identity_page)
        self.setStartId(PageId.START)
        for button, name in (
            (QWizard.WizardButton.BackButton, "Back"),
            (QWizard.WizardButton.NextButton, "Next"),
            (QWizard.WizardButton.FinishButton, "Finish: save the account"),
            (QWizard.WizardButton.CancelButton, "Cancel: save nothing"),
        ):
            self.button(button).setAccessibleName(name)
        self.resize(700, 660)

        # A plain object's method: still callable once the widgets are gone.
        self.destroyed.connect(self.state.tasks.abandon_all)
        BackgroundTask(
            "accounts", lambda task: read_existing(paths), self._existing_read, self.state.tasks
        ).start()

    # -- reading what is there ---------------------------------------------------------

    def _existing_read(
        self, existing: ExistingAccounts | None, error: BaseException | None
    ) -> None:
        if existing is None:
            existing = ExistingAccounts(error=f"The accounts file could not be read ({error}).")
        self.state.existing = existing
        if self.currentId() == PageId.IDENTITY:
            self.identity_page.accounts_known()

    # -- finishing ---------------------------------------------------------------------

    @property
    def saving(self) -> bool:
        return self._save_task is not None and not self._save_task.finished

    def accept(self) -> None:
        """Finish: save off the GUI thread; the wizard closes once it is saved."""
        if self.saved_account is not None:
            super().accept()
            return
        if self.saving or not self.validateCurrentPage():
            return
        page = self.identity_page
        try:
            account = page.account()
        except AccountError as exc:
            page.banner.show_message("error", str(exc))
            return
        password = self.state.password if page.store_password else None
        make_default = page.default_check.isChecked()
        paths = self.state.paths
        page.banner.show_message("info", f"Saving the account {account.name}…")
        self._set_buttons_enabled(False)
        self._save_task = BackgroundTask(
            "save",
            lambda task: save_account(paths, account, password, make_default=make_default),
            self._saved,
            self.state.tasks,
        ).start()

    def _saved(self, account: Account | None, error: BaseException | None) -> None:
        self._set_buttons_enabled(True)
        page = self.identity_page
        if error is None and account is not None:
            self.saved_account = account
            page.banner.clear()
            self.accountCreated.emit(account.name)
            super().accept()
            return
        self._save_task = None
        if isinstance(error, secrets.SecretError):
            page.keyring_unavailable(str(error))
            page.banner.show_message(
                "error",
                "The password could not be kept in the keyring, so nothing was saved. "
                "You can save the account without storing the password (tick the box "
                "above), and Mailer will ask for it when sending.",
            )
        elif isinstance(error, AccountStoreError):
            page.banner.show_message("error", f"{error} Nothing was saved.")
        else:
            page.banner.show_message(
                "error", f"The account could not be saved ({error}). Nothing was saved."
            )

    def _set_buttons_enabled(self, enabled: bool) -> None:
        for button in (
            QWizard.WizardButton.BackButton,
            QWizard.WizardButton.FinishButton,
            QWizard.WizardButton.CancelButton,
        ):
            self.button(button).setEnabled(enabled)

    # -- closing -----------------------------------------------------------------------

    def done(self, result: int) -> None:
        if self.saving:
            return  # a save under way completes (or is undone) before the wizard closes
        self.state.tasks.abandon_all()
        if result == QDialog.DialogCode.Accepted and self.saved_account is not None:
            # Validated before saving; what was saved is not validated again.
            QDialog.done(self, result)
            return
        super().done(result)

    def closeEvent(self, event: QCloseEvent) -> None:
        if self.saving:
            event.ignore()
            return
        super().closeEvent(event)

    def running_threads(self) -> list[Any]:
        """The worker threads of this wizard still alive (each ends on its own timeouts)."""
        return self.state.tasks.threads()
