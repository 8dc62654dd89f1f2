"""The account's other identities: more addresses to send as, each with its own
name, reply-to address and signature (the composer's From picker lists them
after the account's own address).

A list with Add, Edit and Remove; Add and Edit open a small dialog whose OK
checks the identity with the model's own rules (accounts.model.Identity) and
says what is wrong beside the field instead of closing.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QLineEdit,
    QListWidget,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from mailer_gui.accounts.model import AccountError, Identity
from mailer_gui.ui.settings.widgets import MessageLabel

__all__ = ["IdentitiesEditor", "IdentityDialog"]


class IdentityDialog(QDialog):
    """Edits one identity; `identity` is set when OK was pressed with valid values."""

    def __init__(self, identity: Identity | None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Edit identity" if identity else "Add identity")
        self.setMinimumWidth(460)
        self.identity: Identity | None = None
        self.email = QLineEdit(identity.email if identity else "")
        self.email.setAccessibleName("Identity email address")
        self.email.setPlaceholderText("you@example.org")
        self.display_name = QLineEdit((identity.display_name or "") if identity else "")
        self.display_name.setAccessibleName("Identity display name")
        self.display_name.setPlaceholderText("Not set")
        self.reply_to = QLineEdit((identity.reply_to or "") if identity else "")
        self.reply_to.setAccessibleName("Identity reply-to address")
        self.reply_to.setPlaceholderText("Not set: replies go to the address above")
        self.signature = QPlainTextEdit((identity.signature or "") if identity else "")
        self.signature.setAccessibleName("Identity signature")
        self.signature.setTabChangesFocus(True)
        self.signature.setFixedHeight(self.signature.fontMetrics().lineSpacing() * 4 + 12)
        self.error = MessageLabel("Identity problem")

        form = QFormLayout()
        form.addRow("&Email address", self.email)
        form.addRow("&Display name", self.display_name)
        form.addRow("&Reply-to", self.reply_to)
        form.addRow("&Signature", self.signature)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.setAccessibleName("Identity buttons")
        for button in buttons.buttons():
            button.setAccessibleName(button.text().replace("&", ""))
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.error)
        layout.addWidget(buttons)

    def accept(self) -> None:
        """Close only with a valid identity; otherwise say why and stay."""
        try:
            self.identity = Identity(
                self.email.text().strip(),
                self.display_name.text().strip() or None,
                self.reply_to.text().strip() or None,
                self.signature.toPlainText() if self.signature.toPlainText().strip() else None,
            )
        except AccountError as error:
            self.identity = None
            self.error.show_error(str(error))
            self.adjustSize()  # room for the message, nothing drawn over
            self.email.setFocus()
            return
        super().accept()


class IdentitiesEditor(QWidget):
    """The list of an account's other identities, in the order the From picker shows them."""

    changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._identities: list[Identity] = []
        self.dialog: IdentityDialog | None = None  # the one open, if any
        self.list = QListWidget()
        self.list.setAccessibleName("Other identities")
        self.list.setToolTip(
            "More addresses this account may send as; the composer's From list "
            "shows them after the account's own address."
        )
        self.list.setFixedHeight(self.list.fontMetrics().lineSpacing() * 4 + 12)
        self.add_button = QPushButton("Add…")
        self.add_button.setAccessibleName("Add identity")
        self.edit_button = QPushButton("Edit…")
        self.edit_button.setAccessibleName("Edit identity")
        self.remove_button = QPushButton("Remove")
        self.remove_button.setAccessibleName("Remove identity")
        buttons = QHBoxLayout()
        for button in (self.add_button, self.edit_button, self.remove_button):
            buttons.addWidget(button)
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.list)
        layout.addLayout(buttons)
        self.add_button.clicked.connect(lambda: self.open_dialog(None))
        self.edit_button.clicked.connect(self._edit_current)
        self.remove_button.clicked.connect(self.remove_current)
        self.list.currentRowChanged.connect(lambda _row: self._update_buttons())
        self.list.itemDoubleClicked.connect(lambda _item: self._edit_current())
        self._update_buttons()

    # -- value ---------------------------------------------------------------

    def value(self) -> tuple[Identity, ...]:
        return tuple(self._identities)

    def set_value(self, identities: tuple[Identity, ...]) -> None:
        self._identities = list(identities)
        self._refill()

    def on_change(self, slot: Callable[[], None]) -> None:
        self.changed.connect(slot)

    # -- editing -------------------------------------------------------------

    def open_dialog(self, row: int | None) -> IdentityDialog:
        """Open the dialog for a new identity (None) or the one at ``row``."""
        existing = self._identities[row] if row is not None else None
        dialog = IdentityDialog(existing, self)
        dialog.setModal(True)
        dialog.accepted.connect(lambda: self._take(dialog, row))
        dialog.finished.connect(lambda _result: self._closed(dialog))
        self.dialog = dialog
        dialog.open()
        return dialog

    def remove_current(self) -> None:
        row = self.list.currentRow()
        if 0 <= row < len(self._identities):
            del self._identities[row]
            self._refill(min(row, len(self._identities) - 1))
            self.changed.emit()

    def _edit_current(self) -> None:
        row = self.list.currentRow()
        if 0 <= row < len(self._identities):
            self.open_dialog(row)

    def _take(self, dialog: IdentityDialog, row: int | None) -> None:
        if dialog.identity is None:
            return
        if row is None:
            self._identities.append(dialog.identity)
            row = len(self._identities) - 1
        else:
            self._identities[row] = dialog.identity
        self._refill(row)
        self.changed.emit()

    def _closed(self, dialog: IdentityDialog) -> None:
        if self.dialog is dialog:
            self.dialog = None
        dialog.deleteLater()

    def _refill(self, current: int = -1) -> None:
        self.list.clear()
        for identity in self._identities:
            self.list.addItem(str(identity))
        if current >= 0:
            self.list.setCurrentRow(current)
        self._update_buttons()

    def _update_buttons(self) -> None:
        selected = 0 <= self.list.currentRow() < len(self._identities)
        self.edit_button.setEnabled(selected)
        self.remove_button.setEnabled(selected)
