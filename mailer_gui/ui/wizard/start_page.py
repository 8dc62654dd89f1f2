"""Page 1: the person's name, email address and password, or the way to enter
the server settings by hand."""

from __future__ import annotations

from PySide6.QtCore import Slot
from PySide6.QtWidgets import (
    QCheckBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QVBoxLayout,
    QWidget,
    QWizardPage,
)

from mailer_gui.accounts.discover import split_address
from mailer_gui.accounts.model import AccountError, Identity
from mailer_gui.message.addresses import AddressError, parse_address
from mailer_gui.ui.wizard.state import PageId, WizardState
from mailer_gui.ui.wizard.widgets import Banner

__all__ = ["StartPage"]


class StartPage(QWizardPage):
    def __init__(self, state: WizardState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.setTitle("Add your email account")
        self.setSubTitle(
            "Mailer finds the settings of your provider's outgoing server from your address, "
            "then checks that it can log in."
        )

        self.name_edit = QLineEdit(self)
        self.name_edit.setAccessibleName("Your name")
        self.name_edit.setPlaceholderText("Ann Example (shown to the people you write to)")
        self.address_edit = QLineEdit(self)
        self.address_edit.setAccessibleName("Email address")
        self.address_edit.setPlaceholderText("ann@example.org")
        self.password_edit = QLineEdit(self)
        self.password_edit.setAccessibleName("Password")
        self.password_edit.setEchoMode(QLineEdit.EchoMode.Password)
        self.show_password = QCheckBox("S&how", self)
        self.show_password.setAccessibleName("Show password")
        self.show_password.setToolTip("Show the password as you type it (Alt+H)")
        self.show_password.toggled.connect(self._show_password)
        password_row = QHBoxLayout()
        password_row.addWidget(self.password_edit, 1)
        password_row.addWidget(self.show_password)

        self.manual_check = QCheckBox(
            "I know my settings — &enter them by hand (no automatic search)", self
        )
        self.manual_check.setAccessibleName("Enter the server settings by hand")

        form = QFormLayout()
        form.addRow("Your na&me:", self.name_edit)
        form.addRow("Email &address:", self.address_edit)
        password_label = QLabel("&Password:", self)
        password_label.setBuddy(self.password_edit)
        form.addRow(password_label, password_row)

        self.banner = Banner("Problem with what was entered", self)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.manual_check)
        layout.addWidget(self.banner)
        layout.addStretch(1)

        for edit in (self.name_edit, self.address_edit, self.password_edit):
            edit.textEdited.connect(self.banner.clear)
        self.address_edit.textChanged.connect(self.completeChanged)

    @Slot(bool)
    def _show_password(self, shown: bool) -> None:
        mode = QLineEdit.EchoMode.Normal if shown else QLineEdit.EchoMode.Password
        self.password_edit.setEchoMode(mode)

    def isComplete(self) -> bool:
        return bool(self.address_edit.text().strip())

    def nextId(self) -> int:
        return int(PageId.SETTINGS if self.manual_check.isChecked() else PageId.DISCOVERY)

    def validatePage(self) -> bool:
        text = self.address_edit.text().strip()
        try:
            address = parse_address(text)
            if address.display_name:
                raise AddressError(
                    f"{text!r}: enter the address alone (ann@example.org); your name goes "
                    "in the field above"
                )
            split_address(address.addr_spec)
        except (AddressError, ValueError) as exc:
            self._refuse(self.address_edit, f"The email address is not valid: {exc}.")
            return False
        name = self.name_edit.text().strip()
        try:
            Identity(address.addr_spec, name or None)
        except AccountError as exc:
            self._refuse(self.name_edit, str(exc))
            return False
        manual = self.manual_check.isChecked()
        if not self.password_edit.text() and not manual:
            self._refuse(
                self.password_edit,
                "Enter your password: Mailer needs it to check that the settings work. "
                "For a server that takes mail without a login, choose to enter the "
                "settings by hand.",
            )
            return False
        self.banner.clear()
        self.state.your_name = name
        self.state.address = address.addr_spec
        self.state.password = self.password_edit.text()
        self.state.manual = manual
        return True

    def _refuse(self, edit: QLineEdit, message: str) -> None:
        self.banner.show_message("error", message)
        edit.setFocus()
