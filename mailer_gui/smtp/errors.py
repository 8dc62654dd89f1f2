"""The engine's one error tree. Each error carries its data and knows whether
it is transient (worth retrying later) or permanent, so callers never re-derive
that from reply codes. `message` is what a person reads: what happened, the
server's words, and what to do next.
"""

from __future__ import annotations

from mailer_gui.smtp.certinfo import CertificateInfo
from mailer_gui.smtp.replies import Reply, Stage


class SmtpError(Exception):
    """Base of every failure the engine reports."""

    transient: bool = True

    def __init__(self, message: str, *, reply: Reply | None = None, stage: Stage | None = None):
        super().__init__(message)
        self.message = message
        self.reply = reply
        self.stage = stage

    @property
    def permanent(self) -> bool:
        return not self.transient


class LocalProtocolError(SmtpError):
    """The client tried something the protocol state does not allow (a bug)."""

    transient = False


class RemoteProtocolError(SmtpError):
    """The server sent something that is not SMTP."""

    transient = True


class ConnectError(SmtpError):
    """No connection could be made (refused, unreachable, name not found, timeout)."""

    transient = True


class TimeoutError_(SmtpError):
    """The server stopped answering within the time allowed."""

    transient = True


class ConnectionLost(SmtpError):
    """The connection closed before the server answered (counts as 451)."""

    transient = True


class TlsError(SmtpError):
    """TLS could not be set up, or the certificate is not to be trusted.

    Permanent for this configuration: retrying will not change a certificate.
    ``certificate`` holds what is known about the peer certificate, so the
    person can decide to pin it.
    """

    transient = False

    def __init__(
        self,
        message: str,
        *,
        certificate: CertificateInfo | None = None,
        unverified: bool = False,
        reply: Reply | None = None,
        stage: Stage | None = None,
    ):
        super().__init__(message, reply=reply, stage=stage)
        self.certificate = certificate
        # True when the chain or name check failed (as opposed to a pin
        # mismatch or a handshake that never completed).
        self.unverified = unverified


class SecurityPolicyError(SmtpError):
    """The account's security settings forbid going on (no STARTTLS, cleartext AUTH)."""

    transient = False


class AuthenticationError(SmtpError):
    """The server refused the login. Transient only for 4xx (454 4.7.0)."""

    def __init__(self, message: str, *, reply: Reply | None = None, transient: bool = False):
        super().__init__(message, reply=reply, stage=Stage.AUTH)
        self.transient = transient


class ReplyError(SmtpError):
    """A command got a reply that ends the attempt (MAIL, DATA, greeting ...)."""

    def __init__(self, message: str, *, reply: Reply, stage: Stage):
        super().__init__(message, reply=reply, stage=stage)
        self.transient = reply.is_transient


class MessageRefused(SmtpError):
    """The message cannot be sent as it is (e.g. needs SMTPUTF8 the server lacks)."""

    transient = False


class Cancelled(SmtpError):
    """The person (or the program) cancelled the send."""

    transient = True
