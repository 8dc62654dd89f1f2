"""The sandbox server against Python's smtplib: TLS, AUTH, capture, SIZE, start and stop."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import queue
import smtplib
import socket
import stat
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from mailer_gui.sandbox.errors import SandboxError
from mailer_gui.sandbox.maildir import CapturedMessage
from mailer_gui.sandbox.server import STOP_TIMEOUT, SandboxServer
from tests.sandbox.conftest import MESSAGE, SENDER, smtp_client, trusting_context


def _ehlo_extensions(client: smtplib.SMTP) -> dict[str, str]:
    client.ehlo()
    return dict(client.esmtp_features)


# ------------------------------------------------------------------ TLS, AUTH


def test_starttls_presents_the_pinned_certificate(sandbox: SandboxServer) -> None:
    with smtp_client(sandbox, login=False) as client:
        sock = client.sock
        assert sock is not None
        der = sock.getpeercert(binary_form=True)  # type: ignore[attr-defined]
    assert hashlib.sha256(der).hexdigest() == sandbox.fingerprint
    assert len(sandbox.fingerprint) == 64 and sandbox.fingerprint == sandbox.fingerprint.lower()


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
def test_auth_after_starttls(sandbox: SandboxServer, mechanism: str) -> None:
    with smtp_client(sandbox, login=False) as client:
        features = _ehlo_extensions(client)
        assert features["auth"].split() == ["LOGIN", "PLAIN"]
        client.user, client.password = sandbox.username, sandbox.password
        method = client.auth_plain if mechanism == "PLAIN" else client.auth_login
        code, _ = client.auth(mechanism, method)
        assert code == 235


@pytest.mark.parametrize(
    ("user", "password"), [("sandbox", "wrong"), ("someone", None), ("", None)]
)
def test_wrong_login_refused(sandbox: SandboxServer, user: str, password: str | None) -> None:
    with smtp_client(sandbox, login=False) as client:
        with pytest.raises(smtplib.SMTPAuthenticationError) as refused:
            client.login(user, password or sandbox.password)
        assert refused.value.smtp_code == 535
        # Not logged in: MAIL is refused.
        code, _ = client.mail(SENDER)
        assert code == 530


def test_no_auth_before_starttls(sandbox: SandboxServer) -> None:
    with smtplib.SMTP(sandbox.host, sandbox.port, timeout=10) as client:
        features = _ehlo_extensions(client)
        assert "auth" not in features and "starttls" in features
        token = base64.b64encode(f"\0sandbox\0{sandbox.password}".encode()).decode()
        code, reply = client.docmd("AUTH", f"PLAIN {token}")
        assert code == 538 and reply.startswith(b"5.7.11")
        code, _ = client.mail(SENDER)
        assert code == 530  # and no mail without a login
    assert sandbox.messages() == []


def test_password_given_is_the_login(tmp_path: Path) -> None:
    server = SandboxServer(tmp_path / "Maildir", tmp_path / "state", password="chosen-one")
    assert server.password == "chosen-one"
    with server, smtp_client(server) as client:
        assert client.noop()[0] == 250


def test_generated_passwords_differ(tmp_path: Path) -> None:
    first = SandboxServer(tmp_path / "Maildir", tmp_path / "state")
    second = SandboxServer(tmp_path / "Maildir", tmp_path / "state")
    assert first.password != second.password and len(first.password) >= 20
    assert first.username == "sandbox" and first.host == "127.0.0.1"


@pytest.mark.parametrize("password", ["", "a\r\nb", "nul\0"])
def test_bad_password_refused(tmp_path: Path, password: str) -> None:
    with pytest.raises(ValueError):
        SandboxServer(tmp_path / "Maildir", tmp_path / "state", password=password)


# --------------------------------------------------------------------- capture


def test_message_captured_in_maildir(sandbox: SandboxServer) -> None:
    arrived: queue.Queue[CapturedMessage] = queue.Queue()
    sandbox.on_message = arrived.put
    with smtp_client(sandbox) as client:
        refused = client.sendmail(SENDER, ["bo@example.test", "hidden@example.test"], MESSAGE)
    assert refused == {}
    announced = arrived.get(timeout=5)

    [message] = sandbox.messages()
    assert message == announced
    assert message.envelope_from == SENDER
    assert message.envelope_to == ("bo@example.test", "hidden@example.test")  # Bcc shows
    assert message.subject == "Hello sandbox"
    assert message.size == len(MESSAGE)
    assert abs(time.time() - message.date.timestamp()) < 60

    path = message.path
    assert path.parent == sandbox.maildir / "new"
    assert {p.name for p in sandbox.maildir.iterdir()} >= {"cur", "new", "tmp"}
    assert list((sandbox.maildir / "tmp").iterdir()) == []
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(sandbox.maildir.stat().st_mode) == 0o700
    content = path.read_bytes()
    # The exact bytes sent (dot-unstuffed, CRLF), below the envelope the sandbox adds.
    assert content.endswith(MESSAGE)
    prefix = content[: -len(MESSAGE)].decode().splitlines()
    assert prefix[0] == f"Return-Path: <{SENDER}>"
    assert prefix[1:3] == [
        "X-Sandbox-Envelope-To: <bo@example.test>",
        "X-Sandbox-Envelope-To: <hidden@example.test>",
    ]
    assert prefix[3].startswith("X-Sandbox-Captured: ") and prefix[3].endswith(
        f"; size={len(MESSAGE)}"
    )


def test_smtputf8_message(sandbox: SandboxServer) -> None:
    body = "From: józsef@példa.test\r\nSubject: Grüße, 世界\r\n\r\nÜnïcode body.\r\n".encode()
    with smtp_client(sandbox) as client:
        assert "smtputf8" in _ehlo_extensions(client)
        client.sendmail("józsef@példa.test", ["Ünïcode@example.test"], body, ["SMTPUTF8"])
    [message] = sandbox.messages()
    assert message.envelope_from == "józsef@példa.test"
    assert message.envelope_to == ("Ünïcode@example.test",)
    assert message.subject == "Grüße, 世界"
    assert message.path.read_bytes().endswith(body)


def test_encoded_subject_is_decoded(sandbox: SandboxServer) -> None:
    body = b"Subject: =?utf-8?q?Caf=C3=A9?=\r\n  continued\r\n\r\nx\r\n"
    with smtp_client(sandbox) as client:
        client.sendmail(SENDER, ["bo@example.test"], body)
    assert [m.subject for m in sandbox.messages()] == ["Café continued"]


def test_several_messages_listed_oldest_first_then_deleted(sandbox: SandboxServer) -> None:
    with smtp_client(sandbox) as client:
        for number in range(3):
            client.sendmail(SENDER, ["bo@example.test"], b"Subject: n%d\r\n\r\nx\r\n" % number)
    messages = sandbox.messages()
    assert [m.subject for m in messages] == ["n0", "n1", "n2"]
    assert len({m.id for m in messages}) == 3

    # A mail reader moving a message to cur/ with flags does not change its id.
    first = messages[0]
    os.rename(first.path, sandbox.maildir / "cur" / f"{first.id}:2,S")
    assert [m.id for m in sandbox.messages()] == [m.id for m in messages]

    assert sandbox.delete(first.id) is True
    assert sandbox.delete(first.id) is False
    assert sandbox.delete("../../etc/passwd") is False
    assert [m.subject for m in sandbox.messages()] == ["n1", "n2"]
    assert sandbox.clear() == 2
    assert sandbox.messages() == []


def test_foreign_file_in_maildir_is_listed(sandbox: SandboxServer) -> None:
    dropped = sandbox.maildir / "new" / "1700000000.foreign.host"
    dropped.write_bytes(b"Subject: put here by hand\n\nhello\n")
    [message] = sandbox.messages()
    assert message.subject == "put here by hand"
    assert message.envelope_from == "" and message.envelope_to == ()
    assert message.size == dropped.stat().st_size


def test_a_failing_callback_does_not_lose_the_message(sandbox: SandboxServer) -> None:
    def broken(message: CapturedMessage) -> None:
        raise RuntimeError("boom")

    sandbox.on_message = broken
    with smtp_client(sandbox) as client:
        assert client.sendmail(SENDER, ["bo@example.test"], MESSAGE) == {}
    assert len(sandbox.messages()) == 1


# ------------------------------------------------------------------------ SIZE


def test_size_is_advertised(sandbox: SandboxServer) -> None:
    with smtp_client(sandbox) as client:
        assert _ehlo_extensions(client)["size"] == str(25 * 1024 * 1024)


def test_size_limit_refuses_with_552(tmp_path: Path) -> None:
    server = SandboxServer(tmp_path / "Maildir", tmp_path / "state", size_limit=1000)
    big = b"Subject: big\r\n\r\n" + b"x" * 70 + b"\r\n"
    big = big * 20
    with server, smtp_client(server) as client:
        assert _ehlo_extensions(client)["size"] == "1000"
        # Declared up front with SIZE=: refused at MAIL.
        code, reply = client.mail(SENDER, [f"SIZE={len(big)}"])
        assert code == 552 and reply.startswith(b"5.3.4")
        client.rset()
        # Not declared: the server counts during DATA and refuses at the end.
        assert client.mail(SENDER)[0] == 250
        assert client.rcpt("bo@example.test")[0] == 250
        code, reply = client.data(big)
        assert code == 552 and reply.startswith(b"5.3.4") and b"1000 bytes" in reply
        # Under the limit it still goes through on the same connection.
        assert client.sendmail(SENDER, ["bo@example.test"], MESSAGE) == {}
    assert [m.size for m in server.messages()] == [len(MESSAGE)]


def test_no_size_limit(tmp_path: Path) -> None:
    server = SandboxServer(tmp_path / "Maildir", tmp_path / "state", size_limit=None)
    with server, smtp_client(server) as client:
        assert "size" not in _ehlo_extensions(client)


# ----------------------------------------------------------------- start, stop


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except ConnectionRefusedError:
        return True
    return False


def test_chosen_port(tmp_path: Path) -> None:
    port = _free_port()
    server = SandboxServer(tmp_path / "Maildir", tmp_path / "state", port=port)
    assert server.port == port and not server.running
    with server:
        assert server.port == port and server.running
        with smtp_client(server) as client:
            assert client.noop()[0] == 250
    assert not server.running
    assert _refused(port)


def test_busy_port_is_an_error_a_person_can_read(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = SandboxServer(tmp_path / "Maildir", tmp_path / "state", port=port)
        with pytest.raises(SandboxError, match=f"port {port}.*another port"):
            server.start()
        assert not server.running
        server.stop()  # nothing to stop: no error


def test_listens_on_loopback_only(sandbox: SandboxServer) -> None:
    assert sandbox.host == "127.0.0.1"
    assert sandbox.port != 0


@pytest.mark.parametrize("port", [-1, 65536, True])
def test_bad_port_refused(tmp_path: Path, port: int) -> None:
    with pytest.raises(ValueError):
        SandboxServer(tmp_path / "Maildir", tmp_path / "state", port=port)


def test_start_twice_is_an_error(sandbox: SandboxServer) -> None:
    with pytest.raises(SandboxError, match="already running"):
        sandbox.start()


def test_stop_drops_open_connections_quickly(sandbox: SandboxServer) -> None:
    port = sandbox.port
    client = smtp_client(sandbox)
    slow = smtplib.SMTP(sandbox.host, sandbox.port, timeout=10)  # idle before STARTTLS
    sandbox.faults.slow_replies = 30  # a reply being delayed must not hold the stop up
    waiting = threading.Thread(target=lambda: _ignore_errors(client.noop), daemon=True)
    waiting.start()
    time.sleep(0.2)
    started = time.monotonic()
    sandbox.stop()
    assert time.monotonic() - started < STOP_TIMEOUT / 2
    waiting.join(5)
    assert not waiting.is_alive()
    assert _refused(port)
    for connection in (client, slow):
        with pytest.raises((smtplib.SMTPException, OSError)):
            connection.noop()
        connection.close()
    sandbox.stop()  # again: nothing happens


def _ignore_errors(call: Callable[[], object]) -> None:
    with contextlib.suppress(smtplib.SMTPException, OSError):
        call()


def test_restart_after_stop(tmp_path: Path) -> None:
    server = SandboxServer(tmp_path / "Maildir", tmp_path / "state")
    for _ in range(2):
        with server, smtp_client(server) as client:
            client.sendmail(SENDER, ["bo@example.test"], MESSAGE)
    assert len(server.messages()) == 2


def test_concurrent_clients(sandbox: SandboxServer) -> None:
    errors: list[BaseException] = []

    def one(number: int) -> None:
        try:
            with smtp_client(sandbox) as client:
                client.sendmail(SENDER, ["bo@example.test"], b"Subject: c%d\r\n\r\nx\r\n" % number)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=one, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert sorted(m.subject for m in sandbox.messages()) == [f"c{n}" for n in range(8)]


def test_trusting_context_checks_the_host_name(sandbox: SandboxServer) -> None:
    # The certificate names 127.0.0.1 and localhost: a verifying client needs no exceptions.
    context = trusting_context(sandbox)
    assert context.check_hostname
    with smtplib.SMTP("localhost", sandbox.port, timeout=10) as client:
        client.starttls(context=context)
        assert client.noop()[0] == 250


def test_certificate_gone_before_start(tmp_path: Path) -> None:
    server = SandboxServer(tmp_path / "Maildir", tmp_path / "state")
    (tmp_path / "state" / "key.pem").unlink()
    with pytest.raises(SandboxError, match="cannot be loaded"):
        server.start()
    assert not server.running
    again = SandboxServer(tmp_path / "Maildir", tmp_path / "state")
    assert again.certificate_created and again.fingerprint != server.fingerprint
