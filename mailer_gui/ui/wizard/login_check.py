"""The wizard's login test: one real connection with the settings the person chose.

Qt-free and blocking: the login page runs it on a worker thread. The session
writes every line to a `Transcript` that already knows the password, so the
live view never shows it; the outcome is a `LoginReport` in plain words, with
the reply explained (smtp.replies.explain) and, for a certificate the system
does not trust, what the certificate is, so the person can decide to pin it.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass

from mailer_gui.smtp.auth import Credentials
from mailer_gui.smtp.certinfo import CertificateInfo
from mailer_gui.smtp.errors import Cancelled, SmtpError, TlsError
from mailer_gui.smtp.replies import Stage, explain, without_retry_note
from mailer_gui.smtp.session import Session
from mailer_gui.smtp.settings import AuthMethod, ServerSettings
from mailer_gui.smtp.transcript import Direction, Transcript

__all__ = ["LOGIN_TIMEOUTS", "LoginCheck", "LoginReport"]

# Seconds per step: long enough for a slow provider, short enough to give up on a
# server that accepts the connection and says nothing.
LOGIN_CONNECT_TIMEOUT = 15.0
LOGIN_STEP_TIMEOUT = 30.0
LOGIN_TIMEOUTS = (LOGIN_CONNECT_TIMEOUT, LOGIN_STEP_TIMEOUT)
ABORT_REPEAT = 0.1  # seconds between cuts of a connection that is still being made


@dataclass(frozen=True)
class LoginReport:
    """What the test showed: ``ok``, and otherwise what happened and what to do."""

    ok: bool
    summary: str  # one sentence: what happened
    server_words: str = ""  # the server's reply as it wrote it, when it replied
    advice: str = ""  # what to do next
    certificate: CertificateInfo | None = None  # a certificate that was not trusted
    cancelled: bool = False
    tls: str = ""  # "TLS 1.3, TLS_AES_256_GCM_SHA384" once encrypted
    auth_mechanisms: tuple[str, ...] = ()

    @property
    def text(self) -> str:
        """The report as one message: what happened, the server's words, what next."""
        parts = [self.summary]
        if self.server_words:
            stop = "" if self.server_words.endswith((".", "!", "?")) else "."
            parts.append(f"The server said: “{self.server_words}”{stop}")
        if self.advice:
            parts.append(self.advice)
        # A test: nothing will be retried, whatever a send would do next.
        return without_retry_note(" ".join(parts))


_TLS_NOTE = re.compile(r"TLS established: ([^;]+)")


def _tls_described(session: Session) -> str:
    """``TLSv1.3, TLS_AES_256_GCM_SHA384``, from the session's own note."""
    found = ""
    for record in session.transcript.records:
        match = _TLS_NOTE.match(record.text)
        if record.direction is Direction.NOTE and match:
            found = match.group(1).strip()
    return found or "TLS"


class LoginCheck:
    """Connect, secure the connection, log in, and say QUIT: nothing is sent."""

    def __init__(self, settings: ServerSettings, password: str, transcript: Transcript) -> None:
        self.settings = settings
        self._password = password
        self.transcript = transcript
        if password:
            transcript.add_secret(password)
        self._session: Session | None = None
        self._aborted = threading.Event()
        self._returned = threading.Event()
        self._lock = threading.Lock()

    def abort(self) -> None:
        """From any thread: cut the connection; run() then reports a cancelled test.

        A session still connecting has no socket to cut yet, so the cut is
        repeated until run() returns.
        """
        with self._lock:
            if self._aborted.is_set():
                return
            self._aborted.set()
        threading.Thread(
            target=self._keep_aborting, name="mailer-wizard-abort", daemon=True
        ).start()

    def _keep_aborting(self) -> None:
        while True:
            with self._lock:
                session = self._session
            if session is not None:
                session.abort()
            if self._returned.wait(ABORT_REPEAT):
                return

    def run(self) -> LoginReport:
        try:
            return self._run()
        finally:
            self._returned.set()

    def _run(self) -> LoginReport:
        settings = self.settings
        needs_login = settings.auth is not AuthMethod.NONE
        credentials = None
        if needs_login:
            username = settings.username or ""
            password = self._password
            credentials = lambda: Credentials(username, password)  # noqa: E731
        session = Session(settings, transcript=self.transcript, credentials=credentials)
        with self._lock:
            if self._aborted.is_set():
                return self._cancelled()
            self._session = session
        try:
            session.open()
        except Cancelled:
            return self._cancelled()
        except SmtpError as exc:
            if self._aborted.is_set():
                return self._cancelled()
            return self._failure(exc)
        try:
            mechanisms = tuple(session.extensions.get("AUTH", "").upper().split())
            tls = _tls_described(session) if session.tls_active else ""
            where = f"{settings.host} port {settings.port}"
            if needs_login and not session.authenticated:
                return LoginReport(
                    ok=False,
                    summary=f"{where} did not offer to log in (no AUTH), so the password "
                    "could not be checked there.",
                    advice="If this server takes mail without a login, choose “No login” "
                    "under Authentication; otherwise check the port and security: many "
                    "servers offer the login only on the submission port (587 or 465).",
                    tls=tls,
                )
            done = "logged in" if needs_login else "connected (no login asked)"
            secured = f" over {tls.split(',')[0]}" if tls else " without encryption"
            return LoginReport(
                ok=True,
                summary=f"{where}: {done}{secured}. These settings work.",
                tls=tls,
                auth_mechanisms=mechanisms,
            )
        finally:
            session.close()

    def _cancelled(self) -> LoginReport:
        return LoginReport(ok=False, summary="The login test was stopped.", cancelled=True)

    def _redact(self, text: str) -> str:
        """Scrub the password (plain or base64) from text, as transcripts do."""
        if not text or not self._password:
            return text
        scratch = Transcript()
        scratch.add_secret(self._password)
        scratch.note(text)
        return scratch.records[-1].text

    def _failure(self, exc: SmtpError) -> LoginReport:
        certificate = exc.certificate if isinstance(exc, TlsError) else None
        reply = exc.reply
        if reply is not None and not reply.is_positive:
            stage = Stage.AUTH if exc.stage is None else exc.stage
            explanation = explain(reply, stage, host=self.settings.host)
            return LoginReport(
                ok=False,
                summary=self._redact(explanation.summary),
                server_words=self._redact(explanation.server_words),
                advice=self._redact(explanation.advice),
                certificate=certificate,
            )
        return LoginReport(ok=False, summary=self._redact(exc.message), certificate=certificate)
