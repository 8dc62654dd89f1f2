"""The test peers themselves: each fixture really does what the other tests rely on."""

from __future__ import annotations

import base64
import hmac
import os
import smtplib
import socket
import ssl
import time
import uuid
from email import policy
from email.message import EmailMessage
from pathlib import Path

import pytest

from tests.servers.aiosmtpd_server import AiosmtpdFactory, ReceivedMessage
from tests.servers.postfix_dovecot import SubmissionServer
from tests.servers.smtp_sink import SmtpSinkFactory
from tests.servers.tls import WRONG_HOST, ServerCert

USER = "carol@example.test"
PASSWORD = "s3cret-Password!"  # smtplib encodes credentials as ASCII
MECHANISMS = ("PLAIN", "LOGIN", "CRAM-MD5")


def message(subject: str, sender: str = USER, to: str = "bob@example.test") -> bytes:
    mail = EmailMessage()
    mail["From"] = sender
    mail["To"] = to
    mail["Subject"] = subject
    mail["Message-ID"] = f"<{uuid.uuid4().hex}@example.test>"
    mail.set_content(f"Body of {subject}\n")
    return mail.as_bytes(policy=policy.SMTP)  # CRLF line ends, as on the wire


def login(client: smtplib.SMTP, mechanism: str, user: str, password: str) -> tuple[int, bytes]:
    client.user, client.password = user, password
    authobject = getattr(client, "auth_" + mechanism.lower().replace("-", "_"))
    return client.auth(mechanism, authobject, initial_response_ok=mechanism != "LOGIN")


def peer_der(host: str, port: int) -> bytes:
    """The certificate a TLS server presents, without judging it."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with (
        socket.create_connection((host, port), timeout=10) as raw,
        context.wrap_socket(raw) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return der


# --- TLS material -------------------------------------------------------------------


def test_trust_test_ca_makes_default_contexts_verify_the_server_cert(
    aiosmtpd_factory: AiosmtpdFactory, trust_test_ca: Path, server_cert: ServerCert
) -> None:
    assert os.environ["SSL_CERT_FILE"] == str(trust_test_ca)
    assert trust_test_ca.read_bytes().startswith(b"-----BEGIN CERTIFICATE-----")
    server = aiosmtpd_factory(tls="implicit")
    for host in ("localhost", "127.0.0.1"):
        context = ssl.create_default_context()
        with smtplib.SMTP_SSL(host, server.port, context=context, timeout=10) as client:
            assert client.noop()[0] == 250
            assert isinstance(client.sock, ssl.SSLSocket)
            der = client.sock.getpeercert(binary_form=True)
        assert der == server_cert.leaf_der


def test_without_trust_test_ca_the_server_cert_is_refused(
    aiosmtpd_factory: AiosmtpdFactory, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "none.pem"))
    monkeypatch.setenv("SSL_CERT_DIR", str(tmp_path))
    server = aiosmtpd_factory(tls="implicit")
    with pytest.raises(ssl.SSLCertVerificationError, match="unable to get local issuer"):
        smtplib.SMTP_SSL(server.host, server.port, context=ssl.create_default_context())


@pytest.mark.parametrize(
    ("cert_fixture", "error"),
    [
        ("expired_cert", "certificate has expired"),
        ("wrong_host_cert", "mismatch, certificate is not valid for 'localhost'"),
        ("self_signed_cert", "self-signed certificate"),
    ],
)
def test_bad_certificates_fail_verification_as_intended(
    aiosmtpd_factory: AiosmtpdFactory,
    trust_test_ca: Path,
    request: pytest.FixtureRequest,
    cert_fixture: str,
    error: str,
) -> None:
    cert: ServerCert = request.getfixturevalue(cert_fixture)
    server = aiosmtpd_factory(tls="starttls", cert=cert)
    with (
        smtplib.SMTP("localhost", server.port, timeout=10) as client,
        pytest.raises(ssl.SSLCertVerificationError, match=error),
    ):
        client.starttls(context=ssl.create_default_context())
    # The server presented exactly this certificate: what a pinning test stores.
    other = aiosmtpd_factory(tls="implicit", cert=cert)
    assert peer_der(other.host, other.port) == cert.leaf_der
    assert len(cert.sha256) == 64


def test_wrong_host_cert_is_valid_for_its_own_name(
    wrong_host_cert: ServerCert, aiosmtpd_factory: AiosmtpdFactory, trust_test_ca: Path
) -> None:
    assert wrong_host_cert.identities == (WRONG_HOST,)
    server = aiosmtpd_factory(tls="implicit", cert=wrong_host_cert)
    context = ssl.create_default_context()
    with (
        socket.create_connection((server.host, server.port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=WRONG_HOST) as tls,
    ):
        assert tls.version() is not None


def test_expired_cert_is_from_the_trusted_ca_and_in_the_past(
    expired_cert: ServerCert, server_cert: ServerCert
) -> None:
    assert expired_cert.not_after.timestamp() < time.time()
    assert server_cert.not_after.timestamp() > time.time()


# --- aiosmtpd -----------------------------------------------------------------------


@pytest.mark.parametrize("tls", ["none", "starttls", "implicit"])
def test_aiosmtpd_each_tls_mode_delivers(
    aiosmtpd_factory: AiosmtpdFactory, trust_test_ca: Path, tls: str
) -> None:
    server = aiosmtpd_factory(tls=tls)  # type: ignore[arg-type]
    body = message(f"mode {tls}")
    context = ssl.create_default_context()
    if tls == "implicit":
        client: smtplib.SMTP = smtplib.SMTP_SSL(
            server.host, server.port, context=context, timeout=10
        )
    else:
        client = smtplib.SMTP(server.host, server.port, timeout=10)
    with client:
        client.ehlo()
        assert client.has_extn("starttls") == (tls == "starttls")
        if tls == "starttls":
            client.starttls(context=context)
        client.sendmail(USER, ["bob@example.test", "dan@example.org"], body)
    (received,) = server.wait_for_messages(1)
    assert received.mail_from == USER
    assert received.rcpt_tos == ["bob@example.test", "dan@example.org"]
    assert received.content.replace(b"\r\n", b"\n") == body.replace(b"\r\n", b"\n")
    assert received.tls == (tls != "none")
    assert received.auth_login is None


@pytest.mark.parametrize("mechanism", MECHANISMS)
@pytest.mark.parametrize("tls", ["starttls", "implicit"])
def test_aiosmtpd_auth_mechanisms(
    aiosmtpd_factory: AiosmtpdFactory, trust_test_ca: Path, mechanism: str, tls: str
) -> None:
    server = aiosmtpd_factory(tls=tls, users={USER: PASSWORD}, auth_required=True)  # type: ignore[arg-type]
    context = ssl.create_default_context()
    client: smtplib.SMTP
    if tls == "implicit":
        client = smtplib.SMTP_SSL(server.host, server.port, context=context, timeout=10)
    else:
        client = smtplib.SMTP(server.host, server.port, timeout=10)
    with client:
        client.ehlo()
        if tls == "starttls":
            assert not client.has_extn("auth")  # AUTH only after TLS
            client.starttls(context=context)
            client.ehlo()
        assert set(client.esmtp_features["auth"].split()) == {*MECHANISMS, "XOAUTH2"}
        with pytest.raises(smtplib.SMTPAuthenticationError) as refused:
            login(client, mechanism, USER, "wrong password")
        assert refused.value.smtp_code == 535
        assert login(client, mechanism, USER, PASSWORD)[0] == 235
        client.sendmail(USER, ["bob@example.test"], message(mechanism))
    (received,) = server.wait_for_messages(1)
    assert received.auth_login == USER


def test_aiosmtpd_cram_md5_is_real_hmac(
    aiosmtpd_factory: AiosmtpdFactory, trust_test_ca: Path
) -> None:
    server = aiosmtpd_factory(tls="implicit", users={USER: PASSWORD})
    with smtplib.SMTP_SSL(
        server.host, server.port, context=ssl.create_default_context(), timeout=10
    ) as client:
        client.ehlo()
        code, challenge_b64 = client.docmd("AUTH", "CRAM-MD5")
        assert code == 334
        challenge = base64.b64decode(challenge_b64)
        assert challenge.startswith(b"<") and challenge.endswith(b">")
        digest = hmac.new(PASSWORD.encode(), challenge, "md5").hexdigest()
        answer = base64.b64encode(f"{USER} {digest}".encode()).decode()
        assert client.docmd(answer)[0] == 235


def test_aiosmtpd_non_ascii_password(aiosmtpd_factory: AiosmtpdFactory) -> None:
    password = "pässwörd-ß"
    server = aiosmtpd_factory(users={USER: password}, auth_require_tls=False)
    with smtplib.SMTP(server.host, server.port, timeout=10) as client:
        client.ehlo()
        wrong = base64.b64encode(f"\0{USER}\0passwort".encode()).decode()
        assert client.docmd("AUTH", f"PLAIN {wrong}")[0] == 535
        right = base64.b64encode(f"\0{USER}\0{password}".encode()).decode()
        assert client.docmd("AUTH", f"PLAIN {right}")[0] == 235


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")
def test_aiosmtpd_auth_needed_and_offered_only_with_users(
    aiosmtpd_factory: AiosmtpdFactory,
) -> None:
    plain = aiosmtpd_factory()
    with smtplib.SMTP(plain.host, plain.port, timeout=10) as client:
        client.ehlo()
        assert not client.has_extn("auth")
        assert client.docmd("AUTH", "PLAIN")[0] == 502
    guarded = aiosmtpd_factory(users={USER: PASSWORD}, auth_required=True, auth_require_tls=False)
    with smtplib.SMTP(guarded.host, guarded.port, timeout=10) as client:
        client.ehlo()
        assert client.has_extn("auth")
        with pytest.raises(smtplib.SMTPSenderRefused) as refused:
            client.sendmail(USER, ["bob@example.test"], message("no auth"))
        assert refused.value.smtp_code == 530
        assert login(client, "PLAIN", USER, PASSWORD)[0] == 235
        client.sendmail(USER, ["bob@example.test"], message("auth"))
    assert [m.auth_login for m in guarded.wait_for_messages(1)] == [USER]


def test_aiosmtpd_auth_mechanisms_can_be_narrowed(
    aiosmtpd_factory: AiosmtpdFactory, trust_test_ca: Path
) -> None:
    server = aiosmtpd_factory(tls="implicit", users={USER: PASSWORD}, auth_mechanisms=["LOGIN"])
    with smtplib.SMTP_SSL(
        server.host, server.port, context=ssl.create_default_context(), timeout=10
    ) as client:
        client.ehlo()
        assert client.esmtp_features["auth"].split() == ["LOGIN"]
        assert client.docmd("AUTH", "PLAIN")[0] == 504


def test_aiosmtpd_require_starttls(aiosmtpd_factory: AiosmtpdFactory, trust_test_ca: Path) -> None:
    server = aiosmtpd_factory(tls="starttls", require_starttls=True)
    with smtplib.SMTP(server.host, server.port, timeout=10) as client:
        client.ehlo()
        code, text = client.docmd("MAIL", f"FROM:<{USER}>")
        assert code == 530 and b"STARTTLS" in text
        client.starttls(context=ssl.create_default_context())
        client.sendmail(USER, ["bob@example.test"], message("after starttls"))
    assert server.wait_for_messages(1)[0].tls


def test_aiosmtpd_fault_hooks(aiosmtpd_factory: AiosmtpdFactory) -> None:
    seen: list[ReceivedMessage] = []

    def on_rcpt(address: str, options: list[str]) -> str | None:
        return "451 4.7.1 Try later" if address.startswith("later") else None

    def on_data(received: ReceivedMessage) -> str | None:
        seen.append(received)
        return "554 5.6.0 Rejected by hook" if b"REJECT-ME" in received.content else None

    server = aiosmtpd_factory(
        rcpt_replies={"gone@example.org": "550 5.1.1 No such user"},
        on_rcpt=on_rcpt,
        on_data=on_data,
    )
    with smtplib.SMTP(server.host, server.port, timeout=10) as client:
        refused = client.sendmail(
            USER,
            ["bob@example.test", "gone@example.org", "later@example.org"],
            message("partial"),
        )
        assert refused == {
            "gone@example.org": (550, b"5.1.1 No such user"),
            "later@example.org": (451, b"4.7.1 Try later"),
        }
        with pytest.raises(smtplib.SMTPDataError) as rejected:
            client.sendmail(USER, ["bob@example.test"], message("REJECT-ME"))
        assert rejected.value.smtp_code == 554
    (accepted,) = server.wait_for_messages(1)
    assert accepted.rcpt_tos == ["bob@example.test"]
    assert len(seen) == 2 and server.messages == [accepted]


def test_aiosmtpd_smtputf8_and_size(aiosmtpd_factory: AiosmtpdFactory) -> None:
    server = aiosmtpd_factory(data_size_limit=2000)
    utf8 = message("Grüße", to="jörg@exämple.org")
    with smtplib.SMTP(server.host, server.port, timeout=10) as client:
        client.ehlo()
        assert client.has_extn("smtputf8")
        assert client.esmtp_features["size"] == "2000"
        client.sendmail(USER, ["jörg@exämple.org"], utf8, mail_options=["SMTPUTF8"])
        with pytest.raises(smtplib.SMTPSenderRefused) as too_big:
            client.sendmail(USER, ["bob@example.test"], b"x" * 5000)
        assert too_big.value.smtp_code == 552
    (received,) = server.wait_for_messages(1)
    assert received.smtp_utf8 and received.rcpt_tos == ["jörg@exämple.org"]
    assert "SMTPUTF8" in received.mail_options and received.rcpt_options == [[]]
    ascii_only = aiosmtpd_factory(enable_smtputf8=False)
    with smtplib.SMTP(ascii_only.host, ascii_only.port, timeout=10) as client:
        client.ehlo()
        assert not client.has_extn("smtputf8")


def test_aiosmtpd_stop_frees_the_port(aiosmtpd_factory: AiosmtpdFactory) -> None:
    server = aiosmtpd_factory()
    server.stop()
    with pytest.raises(OSError):
        socket.create_connection((server.host, server.port), timeout=2).close()


# --- smtp-sink ----------------------------------------------------------------------


@pytest.mark.needs_server("smtp-sink")
def test_smtp_sink_accepts_and_dumps(smtp_sink_factory: SmtpSinkFactory) -> None:
    sink = smtp_sink_factory(dump=True)
    body = message("to the sink")
    with smtplib.SMTP(sink.host, sink.port, timeout=10) as client:
        client.ehlo()
        for extension in ("pipelining", "dsn", "enhancedstatuscodes", "8bitmime"):
            assert client.has_extn(extension), extension
        client.sendmail(USER, ["bob@example.test"], body, rcpt_options=["NOTIFY=SUCCESS"])
    deadline = time.monotonic() + 10
    while b"to the sink" not in sink.read_dump() and time.monotonic() < deadline:
        time.sleep(0.05)
    dump = sink.read_dump()
    assert b"X-Mail-Args: <carol@example.test>" in dump
    assert b"X-Rcpt-Args: <bob@example.test> NOTIFY=SUCCESS" in dump
    assert b"Subject: to the sink" in dump


@pytest.mark.needs_server("smtp-sink")
@pytest.mark.parametrize(
    ("flags", "code"),
    [
        (("-r", "RCPT"), 450),
        (("-f", "RCPT"), 500),
        (("-f", "RCPT", "-B", "550 5.1.1 No such user"), 550),
    ],
)
def test_smtp_sink_rcpt_faults(
    smtp_sink_factory: SmtpSinkFactory, flags: tuple[str, ...], code: int
) -> None:
    sink = smtp_sink_factory(*flags)
    with (
        smtplib.SMTP(sink.host, sink.port, timeout=10) as client,
        pytest.raises(smtplib.SMTPRecipientsRefused) as refused,
    ):
        client.sendmail(USER, ["bob@example.test"], message("refused"))
    assert refused.value.recipients["bob@example.test"][0] == code


@pytest.mark.needs_server("smtp-sink")
def test_smtp_sink_disconnect_and_delay(smtp_sink_factory: SmtpSinkFactory) -> None:
    dropping = smtp_sink_factory("-q", "DATA")
    with (
        smtplib.SMTP(dropping.host, dropping.port, timeout=10) as client,
        pytest.raises(smtplib.SMTPServerDisconnected),
    ):
        client.sendmail(USER, ["bob@example.test"], message("dropped"))
    slow = smtp_sink_factory("-W", "RCPT:1")
    with smtplib.SMTP(slow.host, slow.port, timeout=10) as client:
        started = time.monotonic()
        client.sendmail(USER, ["bob@example.test"], message("slow"))
        assert time.monotonic() - started >= 0.9


@pytest.mark.needs_server("smtp-sink")
def test_smtp_sink_readiness_does_not_use_a_session(smtp_sink_factory: SmtpSinkFactory) -> None:
    sink = smtp_sink_factory("-c")  # prints "sess=N quit=N mesg=N" as sessions end
    with smtplib.SMTP(sink.host, sink.port, timeout=10) as client:
        client.sendmail(USER, ["bob@example.test"], message("counted"))
    deadline = time.monotonic() + 10
    while "sess=1 quit=1 mesg=1" not in sink.log_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "sess=1 quit=1 mesg=1" in sink.log_text()
    assert "sess=2" not in sink.log_text()


@pytest.mark.needs_server("smtp-sink")
def test_smtp_sink_exits_after_m_messages(smtp_sink_factory: SmtpSinkFactory) -> None:
    sink = smtp_sink_factory("-M", "1")  # dies on the first message's final dot
    with (
        smtplib.SMTP(sink.host, sink.port, timeout=10) as client,
        pytest.raises(smtplib.SMTPServerDisconnected),
    ):
        client.sendmail(USER, ["bob@example.test"], message("last one"))
    deadline = time.monotonic() + 10
    while sink.running and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not sink.running


@pytest.mark.needs_server("smtp-sink")
def test_smtp_sink_stop_kills_the_process(smtp_sink_factory: SmtpSinkFactory) -> None:
    sink = smtp_sink_factory()
    assert sink.running
    sink.stop()
    assert not sink.running
    with pytest.raises(ProcessLookupError):
        os.kill(sink.pid, 0)


# --- Postfix + Dovecot --------------------------------------------------------------


@pytest.mark.needs_server("postfix")
def test_submission_server_starts_fast(submission_server: SubmissionServer) -> None:
    assert submission_server.startup_seconds < 10
    assert submission_server.host == "127.0.0.1"
    assert submission_server.starttls_port != submission_server.tls_port


@pytest.mark.needs_server("postfix")
@pytest.mark.parametrize("mechanism", MECHANISMS)
@pytest.mark.parametrize("port", ["starttls", "implicit"])
def test_submission_server_delivers_after_auth(
    submission_server: SubmissionServer, trust_test_ca: Path, mechanism: str, port: str
) -> None:
    server = submission_server
    token = f"{mechanism}-{port}-{uuid.uuid4().hex}"
    context = ssl.create_default_context()
    client: smtplib.SMTP
    if port == "implicit":
        client = smtplib.SMTP_SSL(server.host, server.tls_port, context=context, timeout=15)
        client.ehlo()
    else:
        client = smtplib.SMTP(server.host, server.starttls_port, timeout=15)
        client.ehlo()
        assert client.has_extn("starttls") and not client.has_extn("auth")
        client.starttls(context=context)
        client.ehlo()
    with client:
        assert set(client.esmtp_features["auth"].split()) == set(MECHANISMS)
        assert login(client, mechanism, server.username, server.password)[0] == 235
        refused = client.sendmail(
            server.username, ["alice@example.test", "someone@example.org"], message(token)
        )
        assert refused == {}
    delivered = server.wait_for_message(token)
    assert b"Delivered-To: alice@example.test" in delivered or (
        b"Delivered-To: someone@example.org" in delivered
    )
    assert b"with ESMTPSA" in delivered  # authenticated, over TLS


@pytest.mark.needs_server("postfix")
def test_submission_server_refusals(
    submission_server: SubmissionServer, trust_test_ca: Path
) -> None:
    server = submission_server
    context = ssl.create_default_context()
    with smtplib.SMTP(server.host, server.starttls_port, timeout=15) as client:
        client.ehlo()
        code, text = client.docmd("MAIL", f"FROM:<{server.username}>")
        assert code == 530 and b"STARTTLS" in text
        client.starttls(context=context)
        client.ehlo()
        with pytest.raises(smtplib.SMTPAuthenticationError) as wrong:
            login(client, "PLAIN", server.username, server.password + "x")
        assert wrong.value.smtp_code == 535
        # Not authenticated: nothing may be sent.
        assert client.docmd("MAIL", f"FROM:<{server.username}>")[0] == 250
        code, text = client.docmd("RCPT", "TO:<alice@example.test>")
        assert code == 554 and b"5.7.1" in text
        client.rset()
        assert login(client, "LOGIN", server.username, server.password)[0] == 235
        refused = client.sendmail(
            server.username,
            ["alice@example.test", server.unknown_recipient, "someone@elsewhere.invalid"],
            message("refusals"),
        )
        assert refused[server.unknown_recipient][0] == 550
        assert b"5.1.1" in refused[server.unknown_recipient][1]
        assert refused["someone@elsewhere.invalid"][0] == 554
        assert set(refused) == {server.unknown_recipient, "someone@elsewhere.invalid"}


@pytest.mark.needs_server("postfix")
def test_submission_server_maildir_helpers(
    submission_server: SubmissionServer, trust_test_ca: Path
) -> None:
    server = submission_server
    server.clear_messages()
    token = uuid.uuid4().hex
    with smtplib.SMTP_SSL(
        server.host, server.tls_port, context=ssl.create_default_context(), timeout=15
    ) as client:
        client.login(server.username, server.password)
        for n in range(3):
            client.sendmail(server.username, ["bob@example.test"], message(f"{token} {n}"))
    delivered = server.wait_for_messages(3, timeout=15, containing=token)
    assert len(delivered) == 3
    assert [m for m in server.messages() if token.encode() in m] == delivered
    assert all(b"Delivered-To: bob@example.test" in m for m in delivered)
    assert [f"{token} {n}".encode() in m for n, m in enumerate(delivered)] == [True] * 3
    assert "postfix/virtual" in server.log_text()
    assert (server.maildir / "new").is_dir()
