"""Asks for an account's password when sending needs it and none works.

Shown (not modal) when the outbox pauses an account as "needs password": the
server refused the stored password (535), or none is stored (no keyring on
this machine, or the person chose not to keep it). The typed password is used
from memory for the rest of the session; for an account whose password lives
in the keyring it can replace the stored one. It is never written to a file.
"""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QVBoxLayout,
    QWidget,
)

from mailer_gui.accounts.model import Account


class PasswordPrompt(QDialog):
    #: account name, password, whether to keep it in the keyring
    provided = Signal(str, str, bool)

    def __init__(self, account: Account, reason: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.account = account
        self.setWindowTitle(f"Password for {account.name}")
        self.setAccessibleName("Password needed")
        where = f"{account.host}:{account.port}" if account.port else account.host or ""
        intro = QLabel(
            f"Mailer needs the password of the account <b>{_escape(account.name)}</b> "
            f"({_escape(account.login)}{' at ' + _escape(where) if where else ''}) to send. "
            "Messages for it wait in the outbox until then.",
            self,
        )
        intro.setWordWrap(True)
        self.reason = QLabel(reason, self)
        self.reason.setWordWrap(True)
        self.reason.setAccessibleName("What the server said")
        self.reason.setVisible(bool(reason))

        self.password = QLineEdit(self)
        self.password.setEchoMode(QLineEdit.EchoMode.Password)
        self.password.setAccessibleName("Password")
        self.show_password = QCheckBox("S&how", self)
        self.show_password.toggled.connect(
            lambda shown: self.password.setEchoMode(
                QLineEdit.EchoMode.Normal if shown else QLineEdit.EchoMode.Password
            )
        )
        self.keep = QCheckBox("&Replace the password kept in the system keyring", self)
        self.keep.setChecked(account.secret_source == "keyring")
        self.keep.setVisible(account.secret_source == "keyring")
        form = QFormLayout()
        label = QLabel("&Password:", self)
        label.setBuddy(self.password)
        form.addRow(label, self.password)
        form.addRow("", self.show_password)

        self.buttons = QDialogButtonBox(self)
        self.send_button = self.buttons.addButton(
            "&Send with this password", QDialogButtonBox.ButtonRole.AcceptRole
        )
        self.later_button = self.buttons.addButton(
            "&Not now", QDialogButtonBox.ButtonRole.RejectRole
        )
        self.send_button.setEnabled(False)
        self.password.textChanged.connect(lambda text: self.send_button.setEnabled(bool(text)))
        self.buttons.accepted.connect(self._accept)
        self.buttons.rejected.connect(self.reject)

        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addWidget(self.reason)
        layout.addLayout(form)
        layout.addWidget(self.keep)
        layout.addWidget(self.buttons)

    def _accept(self) -> None:
        password = self.password.text()
        if not password:
            return
        keep = not self.keep.isHidden() and self.keep.isChecked()
        self.password.clear()  # not kept in the widget once handed over
        self.provided.emit(self.account.name, password, keep)
        self.accept()


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
