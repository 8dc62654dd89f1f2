"""The account editor, generated from accounts.model.ACCOUNT_FIELDS.

One row per setting: a widget that fits its type (a list for choices and
enums, a number box for whole numbers, a tick box for yes/no, a text field
otherwise), the setting's description as tooltip, and an error line beneath
that the model's own checks fill. A setting added to the table appears here
without touching this file. The account's other identities, a list rather
than a setting, have an editor of their own below (identities.py).
"""

from __future__ import annotations

import dataclasses
import enum
import functools
from collections.abc import Callable, Mapping
from typing import Any, Final

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from mailer_gui.accounts.model import ACCOUNT_FIELDS, Account, AccountError, FieldSpec
from mailer_gui.ui.settings.identities import IdentitiesEditor
from mailer_gui.ui.settings.widgets import MessageLabel

# Labels with a distinct mnemonic each (Alt+letter moves to the field).
LABELS: Final[Mapping[str, str]] = {
    "name": "Account &name",
    "email": "&Email address",
    "display_name": "&Display name",
    "kind": "Delivery &kind",
    "host": "Out&going server",
    "port": "&Port",
    "security": "Securit&y",
    "auth": "&Login method",
    "username": "&User name",
    "allow_insecure_auth": "Allow password over plain te&xt",
    "tls_fingerprint": "Trusted &certificate (SHA-256)",
    "reply_to": "&Reply-To",
    "signature": "S&ignature",
    "connection_limit": "Messages per c&onnection",
    "secret_source": "Password &from",
    "password_command": "Password co&mmand",
}


def _in_form_words(error: AccountError, values: Mapping[str, object]) -> str:
    """An account error as this form would say it: the command line's wording
    names its options (--host, --kind direct), which mean nothing here."""
    if error.field == "host" and values.get("kind") == "relay" and not values.get("host"):
        return (
            "Enter the outgoing server to send through, or choose “Directly to the "
            "recipients' mail servers” as the delivery kind."
        )
    return str(error)


CHOICE_TEXT: Final[Mapping[str, Mapping[str, str]]] = {
    "kind": {
        "relay": "Through the outgoing server (relay)",
        "direct": "Directly to the recipients' mail servers (MX)",
    },
    "security": {
        "tls": "TLS from the start (usually port 465)",
        "starttls": "STARTTLS, required (usually port 587)",
        "none": "None (local test servers only)",
    },
    "auth": {
        "auto": "Automatic (the strongest both sides offer)",
        "plain": "PLAIN",
        "login": "LOGIN",
        "cram-md5": "CRAM-MD5",
        "xoauth2": "OAuth2 access token (XOAUTH2)",
        "none": "No login",
    },
    "secret_source": {
        "keyring": "The system keyring",
        "command": "A command that prints it",
        "none": "Nowhere (no login, or asked when sending)",
    },
}

# What an unset whole number means, shown in its number box.
UNSET_TEXT: Final[Mapping[str, str]] = {"port": "Usual for the security (465, 587 or 25)"}
DIRECT_PORT_TEXT: Final = "25, the mail servers' own port"

# Settings of a relay account only: a direct one sends to each recipient's
# mail servers, with opportunistic STARTTLS and no login, so they are hidden.
RELAY_ONLY: Final = frozenset(
    {
        "host",
        "security",
        "auth",
        "username",
        "allow_insecure_auth",
        "tls_fingerprint",
        "secret_source",
        "password_command",
    }
)

MULTILINE: Final = frozenset({"signature"})
INT_MAX: Final = 999_999  # the model's checks, not the box, say what is allowed


def plain_label(name: str) -> str:
    """The field's label without its mnemonic marker ("Account name")."""
    return LABELS.get(name, name.replace("_", " ").capitalize()).replace("&", "")


class _Editor:
    """One setting's widget, reading and writing the setting's Python value."""

    widget: QWidget

    def __init__(self, spec: FieldSpec) -> None:
        self.spec = spec

    def value(self) -> Any:
        raise NotImplementedError

    def set_value(self, value: Any) -> None:
        raise NotImplementedError

    def on_change(self, slot: Callable[[], None]) -> None:
        raise NotImplementedError


class _ChoiceEditor(_Editor):
    def __init__(self, spec: FieldSpec) -> None:
        super().__init__(spec)
        self.combo = QComboBox()
        texts = CHOICE_TEXT.get(spec.name, {})
        for allowed in spec.allowed or ():
            self.combo.addItem(texts.get(allowed, allowed), allowed)
        self.widget = self.combo

    def value(self) -> Any:
        raw = self.combo.currentData()
        if issubclass(self.spec.type, enum.Enum):
            return self.spec.type(raw)
        return raw

    def set_value(self, value: Any) -> None:
        raw = value.value if isinstance(value, enum.Enum) else value
        self.combo.setCurrentIndex(max(self.combo.findData(raw), 0))

    def on_change(self, slot: Callable[[], None]) -> None:
        self.combo.currentIndexChanged.connect(lambda _index: slot())


class _IntEditor(_Editor):
    def __init__(self, spec: FieldSpec) -> None:
        super().__init__(spec)
        self.spin = QSpinBox()
        self.spin.setRange(0, INT_MAX)
        if spec.nullable:
            # The lowest value stands for "not set".
            self.spin.setSpecialValueText(UNSET_TEXT.get(spec.name, "Not set"))
        self.widget = self.spin

    def value(self) -> Any:
        number = self.spin.value()
        return None if self.spec.nullable and number == self.spin.minimum() else number

    def set_value(self, value: Any) -> None:
        self.spin.setValue(self.spin.minimum() if value is None else int(value))

    def on_change(self, slot: Callable[[], None]) -> None:
        self.spin.valueChanged.connect(lambda _value: slot())


class _BoolEditor(_Editor):
    def __init__(self, spec: FieldSpec) -> None:
        super().__init__(spec)
        self.check = QCheckBox()
        self.widget = self.check

    def value(self) -> Any:
        return self.check.isChecked()

    def set_value(self, value: Any) -> None:
        self.check.setChecked(bool(value))

    def on_change(self, slot: Callable[[], None]) -> None:
        self.check.toggled.connect(lambda _checked: slot())


class _TextEditor(_Editor):
    def __init__(self, spec: FieldSpec) -> None:
        super().__init__(spec)
        self.line = QLineEdit()
        if spec.nullable:
            self.line.setPlaceholderText("Not set")
        self.widget = self.line

    def value(self) -> Any:
        # Spaces around a name or an address are never meant; drop them.
        text = self.line.text().strip()
        return None if self.spec.nullable and not text else text

    def set_value(self, value: Any) -> None:
        self.line.setText("" if value is None else str(value))

    def on_change(self, slot: Callable[[], None]) -> None:
        self.line.textChanged.connect(lambda _text: slot())


class _MultilineEditor(_Editor):
    def __init__(self, spec: FieldSpec) -> None:
        super().__init__(spec)
        self.text = QPlainTextEdit()
        self.text.setTabChangesFocus(True)  # Tab moves on, as in every other field
        self.text.setFixedHeight(self.text.fontMetrics().lineSpacing() * 4 + 12)
        self.widget = self.text

    def value(self) -> Any:
        text = self.text.toPlainText()
        return None if self.spec.nullable and not text.strip() else text

    def set_value(self, value: Any) -> None:
        self.text.setPlainText("" if value is None else str(value))

    def on_change(self, slot: Callable[[], None]) -> None:
        self.text.textChanged.connect(slot)


def editor_for(spec: FieldSpec) -> _Editor:
    if spec.allowed is not None:
        return _ChoiceEditor(spec)
    if spec.type is bool:
        return _BoolEditor(spec)
    if spec.type is int:
        return _IntEditor(spec)
    if spec.name in MULTILINE:
        return _MultilineEditor(spec)
    return _TextEditor(spec)


class AccountForm(QWidget):
    """Edits one account; `validated_account()` gives the new Account or shows why not."""

    #: any field changed by the person
    edited = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._original: Account | None = None
        self._loading = False
        self.editors: dict[str, _Editor] = {}
        self.errors: dict[str, MessageLabel] = {}
        self._rows: dict[str, QWidget] = {}  # each setting's field and error line
        form = QFormLayout(self)
        self._form = form
        form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapLongRows)
        for spec in ACCOUNT_FIELDS:
            editor = editor_for(spec)
            label_text = plain_label(spec.name)
            editor.widget.setObjectName(f"account-{spec.name}")
            editor.widget.setAccessibleName(label_text)
            editor.widget.setAccessibleDescription(spec.description)
            editor.widget.setToolTip(spec.description)
            editor.widget.setWhatsThis(spec.description)
            label = QLabel(LABELS.get(spec.name, label_text))
            label.setBuddy(editor.widget)
            label.setToolTip(spec.description)
            error = MessageLabel(f"{label_text}: problem")
            cell = QWidget()
            column = QVBoxLayout(cell)
            column.setContentsMargins(0, 0, 0, 0)
            column.setSpacing(2)
            column.addWidget(editor.widget)
            column.addWidget(error)
            form.addRow(label, cell)
            editor.on_change(functools.partial(self._changed, spec.name))
            self.editors[spec.name] = editor
            self.errors[spec.name] = error
            self._rows[spec.name] = cell
        # The other identities: a list of their own, not a row of the table.
        self.identities = IdentitiesEditor()
        self.identities.setObjectName("account-identities")
        identities_label = QLabel("Other &identities")
        identities_label.setBuddy(self.identities.list)
        self.errors["identities"] = MessageLabel("Other identities: problem")
        cell = QWidget()
        column = QVBoxLayout(cell)
        column.setContentsMargins(0, 0, 0, 0)
        column.setSpacing(2)
        column.addWidget(self.identities)
        column.addWidget(self.errors["identities"])
        form.addRow(identities_label, cell)
        self.identities.on_change(self._identities_changed)
        name_editor = self.editors["name"].widget
        assert isinstance(name_editor, QLineEdit)
        name_editor.setReadOnly(True)
        name_editor.setToolTip(
            "The name is the key of the account's password in the keyring and of its "
            "messages in the outbox, so it cannot change. To rename an account, add a new "
            "one and remove this one."
        )
        self.setEnabled(False)

    # ------------------------------------------------------------- values

    @property
    def original(self) -> Account | None:
        return self._original

    def set_account(self, account: Account | None) -> None:
        """Show `account` (None: an empty, disabled form)."""
        self._original = account
        self._loading = True
        try:
            for spec in ACCOUNT_FIELDS:
                value = getattr(account, spec.name) if account is not None else None
                if account is None and not spec.nullable and not spec.required:
                    value = spec.default
                self.editors[spec.name].set_value(value)
            self.identities.set_value(account.identities if account is not None else ())
        finally:
            self._loading = False
        self.clear_errors()
        self._show_for_kind()
        self.setEnabled(account is not None)

    def row_shown(self, name: str) -> bool:
        """Whether the setting's row is part of the form (not hidden for the kind)."""
        return self._form.isRowVisible(self._rows[name])

    def _show_for_kind(self) -> None:
        """Only the settings that mean something for the account's kind."""
        direct = self.editors["kind"].value() == "direct"
        for name in RELAY_ONLY:
            self._form.setRowVisible(self._rows[name], not direct)
        port = self.editors["port"].widget
        if isinstance(port, QSpinBox):
            port.setSpecialValueText(DIRECT_PORT_TEXT if direct else UNSET_TEXT["port"])

    def values(self) -> dict[str, Any]:
        values = {name: editor.value() for name, editor in self.editors.items()}
        values["identities"] = self.identities.value()
        if values.get("kind") == "direct":
            values["host"] = None  # hidden, and of no use: nothing to keep from it
        return values

    def is_dirty(self) -> bool:
        if self._original is None:
            return False
        return any(value != getattr(self._original, name) for name, value in self.values().items())

    def validated_account(self) -> Account | None:
        """The edited account, or None after showing each problem beside its field."""
        if self._original is None:
            return None
        self.clear_errors()
        values = self.values()
        problems: dict[str, str] = {}
        for spec in ACCOUNT_FIELDS:
            try:
                spec.validate(values[spec.name])
            except AccountError as error:
                problems[spec.name] = str(error)
        if not problems:
            try:
                return dataclasses.replace(self._original, **values)
            except AccountError as error:
                problems[error.field or "name"] = _in_form_words(error, values)
        for name, text in problems.items():
            self.show_error(name, text)
        first = next(iter(problems))
        focus = self.identities.list if first == "identities" else self.editors[first].widget
        focus.setFocus()
        return None

    # ------------------------------------------------------------- errors

    def show_error(self, name: str, text: str) -> None:
        self.errors.get(name, self.errors["name"]).show_error(text)

    def clear_errors(self) -> None:
        for label in self.errors.values():
            label.clear_message()

    def error_text(self, name: str) -> str:
        return self.errors[name].text()

    def _identities_changed(self) -> None:
        if self._loading:
            return
        self.errors["identities"].clear_message()
        self.edited.emit()

    def _changed(self, name: str) -> None:
        if self._loading:
            return
        if name == "kind":
            self._show_for_kind()
        # Check the field as it is typed; what depends on other fields waits for Save.
        try:
            self.editors[name].spec.validate(self.editors[name].value())
        except AccountError as error:
            self.errors[name].show_error(str(error))
        else:
            self.errors[name].clear_message()
        self.edited.emit()
