"""Page 5: how the account appears (account name, display name, signature),
whether it becomes the default, and where its password will be kept.

Whether the system keyring can keep the password is asked off the GUI
thread when the page opens. Without one, the page says so and offers to go
on without storing the password (it is then asked for when sending); it is
never written to a file.
"""

from __future__ import annotations

import contextlib

from PySide6.QtCore import Slot
from PySide6.QtWidgets import (
    QCheckBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QVBoxLayout,
    QWidget,
    QWizardPage,
)

from mailer_gui.accounts import secrets
from mailer_gui.accounts.model import Account, AccountError, SecretSource
from mailer_gui.message.addresses import parse_address
from mailer_gui.smtp.settings import AuthMethod
from mailer_gui.ui.wizard.background import BackgroundTask
from mailer_gui.ui.wizard.state import WizardState
from mailer_gui.ui.wizard.widgets import Banner

__all__ = ["IdentityPage"]


class IdentityPage(QWizardPage):
    def __init__(self, state: WizardState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.keyring_task: BackgroundTask[tuple[bool, str]] | None = None
        self.keyring_ok: bool | None = None  # None: not known yet
        self._name_base = ""  # the proposed account name before making it unique
        self._filled_name = ""
        self._filled_display = ""
        self._default_touched = False
        self.setTitle("How the account appears")
        self.setSubTitle("Nothing is saved until you press Finish.")

        self.account_name_edit = QLineEdit(self)
        self.account_name_edit.setAccessibleName("Account name")
        self.account_name_edit.setToolTip("A short name for this account in Mailer")
        self.display_name_edit = QLineEdit(self)
        self.display_name_edit.setAccessibleName("Display name")
        self.display_name_edit.setPlaceholderText("Shown next to your address in From")
        self.signature_edit = QPlainTextEdit(self)
        self.signature_edit.setAccessibleName("Signature")
        self.signature_edit.setTabChangesFocus(True)
        self.signature_edit.setPlaceholderText("Added below new messages from this account")
        signature_label = QLabel("Si&gnature:", self)
        signature_label.setBuddy(self.signature_edit)
        self.default_check = QCheckBox("Make this the &default account", self)
        self.default_check.setAccessibleName("Make this the default account")
        self.default_check.clicked.connect(self._default_clicked)

        self.keyring_banner = Banner("Where the password is kept", self)
        self.no_keyring_check = QCheckBox(
            "Continue &without storing the password (Mailer asks for it when sending)", self
        )
        self.no_keyring_check.setAccessibleName("Continue without storing the password")
        self.no_keyring_check.hide()
        self.no_keyring_check.toggled.connect(self._clear_banner)
        self.banner = Banner("Problem saving the account", self)

        form = QFormLayout()
        form.addRow("&Account name:", self.account_name_edit)
        form.addRow("Displa&y name:", self.display_name_edit)
        form.addRow(signature_label, self.signature_edit)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.default_check)
        layout.addWidget(self.keyring_banner)
        layout.addWidget(self.no_keyring_check)
        layout.addWidget(self.banner)
        layout.addStretch(1)
        for edit in (self.account_name_edit, self.display_name_edit):
            edit.textEdited.connect(self._clear_banner)

    # -- filling -----------------------------------------------------------------------

    def initializePage(self) -> None:
        self.banner.clear()
        domain = self.state.address.rpartition("@")[2]
        with contextlib.suppress(ValueError):
            domain = parse_address(self.state.address).ascii_domain
        self._name_base = domain
        name = self.account_name_edit.text()
        if not name or name == self._filled_name:
            self._filled_name = self._free_name(domain)
            self.account_name_edit.setText(self._filled_name)
        display = self.display_name_edit.text()
        if not display or display == self._filled_display:
            self._filled_display = self.state.your_name
            self.display_name_edit.setText(self._filled_display)
        self.accounts_known()
        self._check_keyring()

    def accounts_known(self) -> None:
        """The existing accounts were read (or the page opened): update the proposals."""
        existing = self.state.existing
        if existing is None:
            return
        if not self._default_touched:
            self.default_check.setChecked(not existing.names)
        if self._name_base and self.account_name_edit.text() == self._filled_name:
            self._filled_name = self._free_name(self._name_base)
            self.account_name_edit.setText(self._filled_name)
        if existing.error:
            self.banner.show_message("error", existing.error)

    def _free_name(self, base: str) -> str:
        existing = self.state.existing
        if existing is None or not existing.taken(base):
            return base
        number = 2
        while existing.taken(f"{base}-{number}"):
            number += 1
        return f"{base}-{number}"

    @property
    def needs_password_storage(self) -> bool:
        choice = self.state.choice
        return bool(self.state.password) and (choice is None or choice.auth is not AuthMethod.NONE)

    def _check_keyring(self) -> None:
        if self.keyring_task is not None:
            self.keyring_task.abandon()
            self.keyring_task = None
        if not self.needs_password_storage:
            self.keyring_banner.clear()
            self.no_keyring_check.hide()
            return
        if self.keyring_ok is not None:
            return  # asked already; the answer stands for this wizard
        self.keyring_banner.show_message("info", "Checking where the password can be kept…")

        def work(task: BackgroundTask[tuple[bool, str]]) -> tuple[bool, str]:
            return secrets.keyring_usable()

        self.keyring_task = BackgroundTask(
            "keyring", work, self._keyring_known, self.state.tasks
        ).start()

    def _keyring_known(self, answer: tuple[bool, str] | None, error: BaseException | None) -> None:
        if answer is None:
            answer = (False, f"The system keyring could not be asked ({error}).")
        usable, explanation = answer
        self.keyring_ok = usable
        if usable:
            self.keyring_banner.show_message("ok", explanation)
            self.no_keyring_check.hide()
        else:
            self.keyring_unavailable(explanation)

    def keyring_unavailable(self, explanation: str) -> None:
        """Say the password cannot be kept, and offer to go on without storing it."""
        self.keyring_ok = False
        self.keyring_banner.show_message("warning", explanation)
        self.no_keyring_check.show()

    # -- leaving -----------------------------------------------------------------------

    @Slot()
    def _clear_banner(self) -> None:
        if self.state.existing is None or not self.state.existing.error:
            self.banner.clear()

    @Slot(bool)
    def _default_clicked(self, _checked: bool) -> None:
        self._default_touched = True

    @property
    def store_password(self) -> bool:
        """Whether Finish puts the password in the keyring."""
        return self.needs_password_storage and not (
            self.keyring_ok is False and self.no_keyring_check.isChecked()
        )

    def account(self) -> Account:
        """The account to save; AccountError (with its field) when a value is wrong."""
        choice = self.state.choice
        if choice is None:
            raise AccountError("No server was chosen.", field="host")
        tested = self.state.tested
        fingerprint = tested[1] if tested is not None and tested[0] == choice else None
        signature = self.signature_edit.toPlainText().strip("\n")
        source: SecretSource = "keyring" if self.store_password else "none"
        return Account(
            name=self.account_name_edit.text().strip(),
            email=self.state.address,
            display_name=self.display_name_edit.text().strip() or None,
            host=choice.host,
            port=choice.port,
            security=choice.security,
            auth=choice.auth,
            username=choice.username,
            allow_insecure_auth=choice.allow_insecure_auth,
            tls_fingerprint=fingerprint,
            signature=signature or None,
            secret_source=source,
        )

    def validatePage(self) -> bool:
        existing = self.state.existing
        if existing is None:
            self.banner.show_message("info", "Still reading the existing accounts; try again.")
            return False
        if existing.error:
            self.banner.show_message("error", existing.error)
            return False
        name = self.account_name_edit.text()
        if name.strip() != name:
            self.account_name_edit.setText(name.strip())
        try:
            account = self.account()
        except AccountError as exc:
            self._refuse(str(exc), exc.field)
            return False
        if existing.taken(account.name):
            self._refuse(
                f"There is already an account named {account.name!r}; choose another name.",
                "name",
            )
            return False
        if self.needs_password_storage:
            if self.keyring_ok is None:
                self.banner.show_message(
                    "info", "Still checking whether the system keyring can keep the password…"
                )
                return False
            if self.keyring_ok is False and not self.no_keyring_check.isChecked():
                self._refuse(
                    "The password cannot be kept in a keyring here (see above). Tick "
                    "“Continue without storing the password” to save the account anyway; "
                    "Mailer never writes the password to a file.",
                    "keyring",
                )
                return False
        self.banner.clear()
        return True

    def _refuse(self, message: str, field: str | None) -> None:
        self.banner.show_message("error", message)
        widget: QWidget | None = {
            "name": self.account_name_edit,
            "display_name": self.display_name_edit,
            "signature": self.signature_edit,
            "keyring": self.no_keyring_check,
        }.get(field or "")
        if widget is not None:
            widget.setFocus()
