"""Page 3: the proposed server settings, where they came from, and what to watch for.

Every field can be changed. With several candidates the person picks one;
its provider notes ("Gmail needs an app password") and warnings ("outside
your domain") are shown, and warnings must be confirmed before going on.
"""

from __future__ import annotations

import dataclasses

from PySide6.QtCore import Slot
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QVBoxLayout,
    QWidget,
    QWizardPage,
)

from mailer_gui.accounts.discover import Candidate
from mailer_gui.accounts.model import Account, AccountError
from mailer_gui.smtp.settings import AuthMethod, Security
from mailer_gui.ui.wizard.state import ServerChoice, WizardState
from mailer_gui.ui.wizard.widgets import Banner, source_phrase

__all__ = ["AUTH_LABELS", "SECURITY_LABELS", "SettingsPage"]

SECURITY_LABELS: dict[Security, str] = {
    Security.TLS: "TLS from the start (usually port 465)",
    Security.STARTTLS: "STARTTLS (usually port 587)",
    Security.NONE: "None — no encryption (local test servers only)",
}
_IN_CLEAR = (
    "without encryption the password travels in clear, readable by anyone on the way; "
    "tick the box only for a server on a network you trust"
)

AUTH_LABELS: dict[AuthMethod, str] = {
    AuthMethod.AUTO: "Password (the best method the server offers)",
    AuthMethod.PLAIN: "Password, PLAIN",
    AuthMethod.LOGIN: "Password, LOGIN",
    AuthMethod.CRAM_MD5: "Password, CRAM-MD5",
    AuthMethod.XOAUTH2: "OAuth2 token (not a password)",
    AuthMethod.NONE: "No login",
}


class SettingsPage(QWizardPage):
    def __init__(self, state: WizardState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self._filling = False
        self._candidates: tuple[Candidate, ...] = ()
        self.setTitle("Outgoing server")

        self.candidate_combo = QComboBox(self)
        self.candidate_combo.setAccessibleName("Servers found")
        self.candidate_label = QLabel("&Servers found:", self)
        self.candidate_label.setBuddy(self.candidate_combo)
        self.source_label = QLabel(self)
        self.source_label.setWordWrap(True)
        self.source_label.setAccessibleName("Where these settings come from")

        self.host_edit = QLineEdit(self)
        self.host_edit.setAccessibleName("Server name")
        self.host_edit.setPlaceholderText("smtp.example.org")
        self.port_edit = QLineEdit(self)
        self.port_edit.setAccessibleName("Port")
        self.port_edit.setMaxLength(5)
        self.security_combo = QComboBox(self)
        self.security_combo.setAccessibleName("Security")
        for security, label in SECURITY_LABELS.items():
            self.security_combo.addItem(label, security)
        self.auth_combo = QComboBox(self)
        self.auth_combo.setAccessibleName("Authentication")
        for method, label in AUTH_LABELS.items():
            self.auth_combo.addItem(label, method)
        self.username_edit = QLineEdit(self)
        self.username_edit.setAccessibleName("User name")

        self.notes = Banner("About this server", self)
        self.confirm_check = QCheckBox(
            "I have read the &warning above and want to use this server", self
        )
        self.confirm_check.setAccessibleName("Confirm the warning about this server")
        self.banner = Banner("Problem with the settings", self)

        form = QFormLayout()
        form.addRow(self.candidate_label, self.candidate_combo)
        form.addRow("Ser&ver:", self.host_edit)
        form.addRow("P&ort:", self.port_edit)
        form.addRow("Securit&y:", self.security_combo)
        form.addRow("A&uthentication:", self.auth_combo)
        form.addRow("User na&me:", self.username_edit)
        layout = QVBoxLayout(self)
        layout.addWidget(self.source_label)
        layout.addLayout(form)
        layout.addWidget(self.notes)
        layout.addWidget(self.confirm_check)
        layout.addWidget(self.banner)
        layout.addStretch(1)

        self.candidate_combo.currentIndexChanged.connect(self._candidate_chosen)
        self.security_combo.currentIndexChanged.connect(self._security_changed)
        self._last_security = Security.STARTTLS
        self._address = ""  # the address the user name was filled from
        self._from_candidate = False  # the fields were filled from a candidate
        self._warnings: tuple[str, ...] = ()  # what the confirmation box confirms
        for edit in (self.host_edit, self.port_edit, self.username_edit):
            edit.textEdited.connect(self._edited)
        self.auth_combo.currentIndexChanged.connect(self._edited)
        self.auth_combo.currentIndexChanged.connect(self._auth_changed)
        self.security_combo.currentIndexChanged.connect(self._edited)

    def _auth_changed(self) -> None:
        # With no login there is no user name: greyed out, not offered as if used.
        self.username_edit.setEnabled(self.auth_combo.currentData() is not AuthMethod.NONE)

    # -- filling -----------------------------------------------------------------------

    def initializePage(self) -> None:
        self.banner.clear()
        result = self.state.discovery
        self._candidates = () if self.state.manual or result is None else result.candidates
        self._filling = True
        self.candidate_combo.clear()
        for candidate in self._candidates:
            self.candidate_combo.addItem(
                f"{candidate.describe()} — {source_phrase(candidate.source)}"
            )
        self._filling = False
        has_choice = len(self._candidates) > 1
        self.candidate_combo.setVisible(has_choice)
        self.candidate_label.setVisible(has_choice)
        if self._candidates:
            self.setSubTitle("Check the settings found; every one of them can be changed.")
            self.candidate_combo.setCurrentIndex(0)
            self._fill(self._candidates[0])
        else:
            self.setSubTitle("Enter the settings your provider gives for sending (SMTP).")
            self._fill_manual()

    def _fill(self, candidate: Candidate) -> None:
        self._filling = True
        self.host_edit.setText(candidate.host)
        self.port_edit.setText(str(candidate.port))
        self._select(self.security_combo, candidate.security)
        self._last_security = candidate.security
        self._select(self.auth_combo, candidate.auth)
        self.username_edit.setText(candidate.username or self.state.address)
        self._address = self.state.address
        self._from_candidate = True
        self._filling = False
        self._show_origin()

    def _fill_manual(self) -> None:
        """Usual defaults; what the person already typed here is kept."""
        self._filling = True
        if self._from_candidate:
            self.host_edit.clear()  # a server found earlier is not a server typed
            self._from_candidate = False
        if not self.host_edit.text().strip():
            self.port_edit.setText(str(Security.STARTTLS.default_port))
            self._select(self.security_combo, Security.STARTTLS)
            self._last_security = Security.STARTTLS
            self._select(self.auth_combo, AuthMethod.AUTO)
        if not self.username_edit.text().strip() or self.username_edit.text() == self._address:
            self.username_edit.setText(self.state.address)
        self._address = self.state.address
        self._filling = False
        self._show_origin()

    @staticmethod
    def _select(combo: QComboBox, value: object) -> None:
        index = combo.findData(value)
        if index >= 0:
            combo.setCurrentIndex(index)

    # -- reacting ----------------------------------------------------------------------

    @Slot(int)
    def _candidate_chosen(self, index: int) -> None:
        if not self._filling and 0 <= index < len(self._candidates):
            self.banner.clear()
            self._fill(self._candidates[index])

    @Slot(int)
    def _security_changed(self, _index: int) -> None:
        security = self.security_combo.currentData()
        if self._filling or not isinstance(security, Security):
            return
        # The usual port follows the security, unless the person typed another.
        if self.port_edit.text().strip() == str(self._last_security.default_port):
            self.port_edit.setText(str(security.default_port))
        self._last_security = security

    @Slot()
    def _edited(self) -> None:
        if not self._filling:
            self.banner.clear()
            self._show_origin()

    def current_candidate(self) -> Candidate | None:
        index = self.candidate_combo.currentIndex()
        return self._candidates[index] if 0 <= index < len(self._candidates) else None

    def _matches(self, candidate: Candidate) -> bool:
        return (
            self.host_edit.text().strip().lower() == candidate.host
            and self.port_edit.text().strip() == str(candidate.port)
            and self.security_combo.currentData() == candidate.security
            and self.auth_combo.currentData() == candidate.auth
            and self.username_edit.text().strip() == (candidate.username or self.state.address)
        )

    def _show_origin(self) -> None:
        candidate = self.current_candidate()
        if candidate is None:
            self.source_label.setText("Entered by hand.")
        elif self._matches(candidate):
            self.source_label.setText(f"These settings come {source_phrase(candidate.source)}.")
        else:
            self.source_label.setText(
                f"Changed by you (first found {source_phrase(candidate.source)})."
            )
        self._show_notes(candidate)

    def _show_notes(self, candidate: Candidate | None) -> None:
        notes: list[str] = []
        warnings: list[str] = []
        if candidate is not None:
            notes += candidate.notes
            # A warning is about the server proposed; a server typed instead has its own.
            if self.host_edit.text().strip().lower() == candidate.host:
                warnings += candidate.warnings
        auth = self.auth_combo.currentData()
        if auth is AuthMethod.XOAUTH2:
            notes.append(
                "This server accepts only OAuth2 sign-in, which needs a token from the "
                "provider instead of your password."
            )
        if self.security_combo.currentData() is Security.NONE and auth is not AuthMethod.NONE:
            warnings.append(
                _IN_CLEAR  # confirmed, the account sends it anyway (allow_insecure_auth)
            )
        lines = [f"• {note}" for note in dict.fromkeys(notes)]
        lines += [f"• Warning: {warning}" for warning in dict.fromkeys(warnings)]
        if lines:
            self.notes.show_message("warning" if warnings else "info", "\n".join(lines))
        else:
            self.notes.clear()
        shown = tuple(dict.fromkeys(warnings))
        if shown != self._warnings:  # a confirmation holds for the warnings it saw
            self.confirm_check.setChecked(False)
            self._warnings = shown
        self.confirm_check.setVisible(bool(shown))

    # -- leaving -----------------------------------------------------------------------

    def choice(self) -> ServerChoice:
        """The settings as they stand; AccountError (with its field) when one is wrong."""
        host = self.host_edit.text().strip().rstrip(".")
        port_text = self.port_edit.text().strip()
        if not host:
            raise AccountError(
                "Enter the outgoing server's name (like smtp.example.org).", field="host"
            )
        if not (port_text.isascii() and port_text.isdigit()):
            raise AccountError(
                f"The port must be a number between 1 and 65535, not “{port_text}” "
                "(submission uses 587 with STARTTLS, or 465 with TLS).",
                field="port",
            )
        port = int(port_text)
        security = self.security_combo.currentData()
        auth = self.auth_combo.currentData()
        assert isinstance(security, Security) and isinstance(auth, AuthMethod)
        username = self.username_edit.text().strip()
        login = None if auth is AuthMethod.NONE or username == self.state.address else username
        # The model's own checks give the same messages as everywhere else.
        Account(
            name="new account",
            email=self.state.address,
            host=host,
            port=port,
            security=security,
            auth=auth,
            username=login if login else None,
        )
        if auth is not AuthMethod.NONE and not username:
            raise AccountError(
                "Enter the user name to log in with (usually your email address).",
                field="username",
            )
        candidate = self.current_candidate()
        return ServerChoice(host.lower(), port, security, auth, login or None, candidate)

    def validatePage(self) -> bool:
        try:
            choice = self.choice()
        except AccountError as exc:
            self._refuse(str(exc), exc.field)
            return False
        if choice.auth is AuthMethod.XOAUTH2:
            self._refuse(
                "This server takes an OAuth2 token, not a password, and the wizard can only "
                "set up password logins. Choose another server above, or add the account "
                "with a token command: mailer-gui accounts add NAME --token-command "
                "'…' (see the README).",
                "auth",
            )
            return False
        if choice.auth is not AuthMethod.NONE and not self.state.password:
            self._refuse(
                "This login method needs a password, and none was entered. Go Back and "
                "enter it, or choose “No login” if the server takes mail without one.",
                "auth",
            )
            return False
        if self._warnings and not self.confirm_check.isChecked():
            self._refuse(
                "Read the warning about this server, and tick the box to confirm you want "
                "to use it — or choose or enter another server.",
                "confirm",
            )
            return False
        self.banner.clear()
        if _IN_CLEAR in self._warnings:  # and confirmed, or this would have refused
            choice = dataclasses.replace(choice, allow_insecure_auth=True)
        self.state.choice = choice
        return True

    def _refuse(self, message: str, field: str | None) -> None:
        self.banner.show_message("error", message)
        widget: QWidget | None = {
            "host": self.host_edit,
            "port": self.port_edit,
            "username": self.username_edit,
            "auth": self.auth_combo,
            "confirm": self.confirm_check,
        }.get(field or "")
        if widget is not None:
            widget.setFocus()
