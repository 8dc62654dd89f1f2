"""The sandbox under test: a started server in a temporary folder, and ways to talk to it."""

from __future__ import annotations

import io
import smtplib
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailer_gui.sandbox.server import SandboxServer
from mailer_gui.smtp.auth import Credentials
from mailer_gui.smtp.session import Envelope, MessageResult, Session
from mailer_gui.smtp.settings import AuthMethod, Security, ServerSettings, Timeouts
from mailer_gui.smtp.transcript import Transcript

SENDER = "ana@example.test"
MESSAGE = (
    b"From: Ana <ana@example.test>\r\n"
    b"To: Bo <bo@example.test>\r\n"
    b"Subject: Hello sandbox\r\n"
    b"\r\n"
    b"First line.\r\n"
    b".A line that starts with a dot.\r\n"
)
# Short waits: everything is on loopback, and a hung test should fail fast.
TIMEOUTS = Timeouts(connect=5.0, greeting=10.0, command=10.0, data_block=10.0, data_end=120.0)


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[SandboxServer]:
    server = SandboxServer(tmp_path / "Maildir", tmp_path / "state")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def trusting_context(server: SandboxServer) -> ssl.SSLContext:
    """A client context that trusts the sandbox's certificate and nothing else."""
    return ssl.create_default_context(cadata=server.certificate_pem)


def smtp_client(server: SandboxServer, *, login: bool = True) -> smtplib.SMTP:
    """smtplib connected, after STARTTLS (verified against the pinned certificate) and AUTH."""
    client = smtplib.SMTP(server.host, server.port, timeout=10)
    try:
        client.starttls(context=trusting_context(server))
        if login:
            client.login(server.username, server.password)
    except BaseException:
        client.close()
        raise
    return client


def engine_settings(server: SandboxServer) -> ServerSettings:
    """What the sandbox account gives Mailer's engine."""
    return ServerSettings(
        server.host,
        server.port,
        Security.STARTTLS,
        auth=AuthMethod.PLAIN,
        username=server.username,
        tls_fingerprint=server.fingerprint,
        timeouts=TIMEOUTS,
    )


def engine_session(server: SandboxServer, transcript: Transcript | None = None) -> Session:
    return Session(
        engine_settings(server),
        transcript=transcript,
        credentials=lambda: Credentials(server.username, server.password),
    )


def engine_send(
    session: Session, recipients: tuple[str, ...], body: bytes = MESSAGE
) -> MessageResult:
    return session.send_message(Envelope(SENDER, recipients), io.BytesIO(body), len(body))
