"""Page 4: a real login with the chosen settings, its live transcript, and the
certificate question when the system does not trust the server.

The test runs on a worker thread (login_check.LoginCheck); the page goes on
only after a successful login. A certificate is trusted only when the person
ticks the box, which pins its SHA-256 fingerprint for this server and tests
again with it.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Slot
from PySide6.QtGui import QFontDatabase, QKeySequence
from PySide6.QtWidgets import (
    QCheckBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
    QWizardPage,
)

from mailer_gui.smtp.certinfo import CertificateInfo
from mailer_gui.smtp.transcript import Transcript, TranscriptRecord
from mailer_gui.ui.wizard.background import BackgroundTask
from mailer_gui.ui.wizard.login_check import LoginCheck, LoginReport
from mailer_gui.ui.wizard.state import Pin, ServerChoice, WizardState
from mailer_gui.ui.wizard.widgets import Banner, LogView

__all__ = ["LoginPage"]


class LoginPage(QWizardPage):
    def __init__(self, state: WizardState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.task: BackgroundTask[LoginReport] | None = None
        self.report: LoginReport | None = None
        self.certificate: CertificateInfo | None = None
        self._testing: tuple[ServerChoice, str | None] | None = None
        self.setTitle("Checking the login")
        self.setSubTitle("Mailer connects and logs in; no message is sent.")

        self.result = Banner("Login test result", self)

        self.certificate_box = QGroupBox("The server's certificate is not trusted", self)
        self.certificate_box.setAccessibleName("Server certificate")
        self._cert_fields: dict[str, QLabel] = {}
        form = QFormLayout()
        for key, title in (
            ("subject", "Subject:"),
            ("issuer", "Issuer:"),
            ("valid", "Valid:"),
            ("names", "Names:"),
            ("sha256", "SHA-256:"),
        ):
            label = QLabel(self.certificate_box)
            label.setWordWrap(True)
            label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            label.setAccessibleName(f"Certificate {title.rstrip(':')}")
            form.addRow(title, label)
            self._cert_fields[key] = label
        fingerprint = self._cert_fields["sha256"]
        fingerprint.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        fingerprint.setWordWrap(False)  # two lines of 16 bytes, broken by hand
        self.trust_check = QCheckBox("&Trust this certificate", self.certificate_box)
        self.trust_check.setAccessibleName("Trust this certificate")
        self.trust_check.clicked.connect(self._trust_clicked)
        trust_note = QLabel(
            "Only if you checked this SHA-256 fingerprint with the server's owner: Mailer "
            "will then accept exactly this certificate from this server, and no other.",
            self.certificate_box,
        )
        trust_note.setWordWrap(True)
        box_layout = QVBoxLayout(self.certificate_box)
        box_layout.addLayout(form)
        box_layout.addWidget(self.trust_check)
        box_layout.addWidget(trust_note)
        self.certificate_box.hide()

        self.retry_button = QPushButton("Test &again", self)
        self.retry_button.setAccessibleName("Test the login again")
        self.retry_button.setShortcut(QKeySequence.StandardKey.Refresh)
        self.retry_button.clicked.connect(self.start_test)
        self.log = LogView("Login transcript", self)
        log_title = QLabel("Trans&cript (passwords hidden):", self)
        log_title.setBuddy(self.log)

        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(self.retry_button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.result)
        layout.addWidget(self.certificate_box)
        layout.addLayout(buttons)
        layout.addWidget(log_title)
        layout.addWidget(self.log, 1)

    # -- life of the page ----------------------------------------------------------------

    def initializePage(self) -> None:
        self.certificate = None
        self.certificate_box.hide()
        self.log.reset()
        self.start_test()

    def cleanupPage(self) -> None:
        """Back: stop the test; the settings may change before the next one."""
        self.abandon()
        self.state.tested = None

    def isComplete(self) -> bool:
        return (
            self.task is not None
            and self.task.finished
            and self.report is not None
            and self.report.ok
            and self.state.tested == self._testing
        )

    def validatePage(self) -> bool:
        return self.isComplete()

    @property
    def testing(self) -> bool:
        return self.task is not None and not self.task.finished

    def abandon(self) -> None:
        if self.task is not None:
            self.task.abandon()
            self.task = None
        self.retry_button.setEnabled(True)

    # -- the test ----------------------------------------------------------------------

    @Slot()
    def start_test(self) -> None:
        choice = self.state.choice
        if choice is None:
            return
        self.abandon()
        self.report = None
        self.state.tested = None
        pin = self.state.pin_for(choice)
        self._testing = (choice, pin)
        settings = choice.settings(self.state.address, pin)
        pinned = " with the certificate you trusted" if pin else ""
        self.result.show_message(
            "info", f"Connecting to {choice.describe()}{pinned} and logging in…"
        )
        self.retry_button.setEnabled(False)
        self.log.add_line(f"* testing {choice.describe()}{pinned}")

        def work(task: BackgroundTask[LoginReport]) -> LoginReport:
            transcript = Transcript(listener=lambda record: task.post(self._record, record))
            check = LoginCheck(settings, self.state.password, transcript)
            task.on_stop(check.abort)
            return check.run()

        self.task = BackgroundTask("login", work, self._finished, self.state.tasks).start()
        self.completeChanged.emit()

    def _record(self, record: TranscriptRecord) -> None:
        self.log.add_record(record)

    def _finished(self, report: LoginReport | None, error: BaseException | None) -> None:
        self.retry_button.setEnabled(True)
        if report is None:
            report = LoginReport(
                ok=False,
                summary=f"The login test could not run ({type(error).__name__}: {error}).",
                advice="Check the settings and try again.",
            )
        self.report = report
        if report.ok:
            self.state.tested = self._testing
            self.result.show_message("ok", report.text)
        elif report.certificate is not None:
            self.result.show_message(
                "error",
                f"{report.text} The certificate the server presented is shown below; "
                "tick “Trust this certificate” only if its fingerprint is the one the "
                "server's owner gave you.",
            )
        else:
            self.result.show_message("error", report.text)
        pin = self.state.pin
        if report.certificate is not None:
            self._show_certificate(report.certificate)
        elif pin is not None and pin.certificate is not None and self._pinned():
            self._show_certificate(pin.certificate)  # what was trusted stays in view
        else:
            self.certificate_box.hide()
        self.completeChanged.emit()

    # -- the certificate ---------------------------------------------------------------

    def _show_certificate(self, certificate: CertificateInfo) -> None:
        self.certificate = certificate
        fields = self._cert_fields
        fields["subject"].setText(certificate.subject)
        fields["issuer"].setText(certificate.issuer)
        fields["valid"].setText(f"from {certificate.not_before} until {certificate.not_after}")
        fields["names"].setText(", ".join(certificate.subject_alt_names) or "none")
        colons = certificate.sha256_colons
        half = len(colons) // 2 + 1  # 16 bytes a line, the break at a colon
        fields["sha256"].setText(f"{colons[: half - 1]}\n{colons[half:]}")
        fields["sha256"].setAccessibleDescription(colons)
        trusted = self._pinned() == certificate.sha256
        self.trust_check.setChecked(trusted)
        self.certificate_box.setTitle(
            "You trust this certificate (it is pinned to the account)"
            if trusted
            else "The server's certificate is not trusted"
        )
        self.certificate_box.show()

    def _pinned(self) -> str | None:
        """The fingerprint the current test trusts, if any."""
        return self._testing[1] if self._testing is not None else None

    @Slot(bool)
    def _trust_clicked(self, checked: bool) -> None:
        choice = self.state.choice
        if choice is None:
            return
        if checked and self.certificate is not None:
            self.state.pin = Pin(
                choice.host, choice.port, self.certificate.sha256, self.certificate
            )
            self.log.add_line(f"* trusting the certificate {self.certificate.sha256_colons}")
        else:
            self.state.pin = None
            self.log.add_line("* no certificate trusted beyond the system's")
        self.start_test()
