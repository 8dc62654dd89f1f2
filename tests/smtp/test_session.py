"""The session against real servers on loopback: aiosmtpd with trustme
certificates (TLS modes, AUTH, SMTPUTF8, faults) and Postfix's smtp-sink
(PIPELINING and its fault switches)."""

from __future__ import annotations

import base64
import io
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from mailer_gui.smtp.auth import Credentials
from mailer_gui.smtp.errors import (
    AuthenticationError,
    Cancelled,
    ConnectError,
    ConnectionLost,
    MessageRefused,
    SecurityPolicyError,
    TimeoutError_,
    TlsError,
)
from mailer_gui.smtp.session import Envelope, MessageResult, RecipientStatus, Session
from mailer_gui.smtp.settings import AuthMethod, Security, ServerSettings, Timeouts
from mailer_gui.smtp.transcript import Transcript

PASSWORD = "s3cret-Pässword!"
USER = "alice"
MESSAGE = b"From: a@example.org\r\nTo: b@example.org\r\nSubject: hi\r\n\r\nHello.\r\n.dot line\r\n"


def settings_for(server: object, security: Security, **kwargs: object) -> ServerSettings:
    return ServerSettings(
        host="localhost",
        port=server.port,  # type: ignore[attr-defined]
        security=security,
        **kwargs,  # type: ignore[arg-type]
    )


def creds(password: str = PASSWORD) -> Callable[[], Credentials]:
    return lambda: Credentials(USER, password)


def send(session: Session, recipients: tuple[str, ...], body: bytes = MESSAGE) -> MessageResult:
    return session.send_message(Envelope("a@example.org", recipients), io.BytesIO(body), len(body))


def assert_no_secret(transcript: Transcript, password: str = PASSWORD) -> None:
    text = transcript.render()
    raw = password.encode()
    forms = [
        password,
        base64.b64encode(raw).decode(),
        base64.b64encode(b"\0" + USER.encode() + b"\0" + raw).decode(),
    ]
    for form in forms:
        assert form not in text


@pytest.mark.parametrize("mechanism", [AuthMethod.PLAIN, AuthMethod.LOGIN, AuthMethod.CRAM_MD5])
@pytest.mark.parametrize("security", [Security.TLS, Security.STARTTLS])
def test_tls_auth_and_delivery(
    aiosmtpd_factory, trust_test_ca, mechanism: AuthMethod, security: Security
) -> None:
    tls = "implicit" if security is Security.TLS else "starttls"
    server = aiosmtpd_factory(tls=tls, users={USER: PASSWORD}, auth_required=True)
    transcript = Transcript()
    with Session(
        settings_for(server, security, auth=mechanism), transcript=transcript, credentials=creds()
    ) as session:
        assert session.tls_active and session.authenticated
        result = send(session, ("b@example.org",))
    assert result.outcome == "sent"
    (received,) = server.wait_for_messages(1)
    assert received.auth_login == USER
    assert received.tls
    assert received.content.replace(b"\r\n", b"\n") == MESSAGE.replace(b"\r\n", b"\n")
    text = transcript.render()
    assert "TLS established: TLSv1." in text
    assert "SHA-256" in text
    assert f"AUTH {mechanism.value.upper()}" in text
    assert_no_secret(transcript)


def test_auto_picks_strongest_offered(aiosmtpd_factory, trust_test_ca) -> None:
    server = aiosmtpd_factory(tls="implicit", users={USER: PASSWORD})
    transcript = Transcript()
    with Session(settings_for(server, Security.TLS), transcript=transcript, credentials=creds()):
        pass
    assert "C: AUTH CRAM-MD5" in transcript.render()


def test_starttls_rereads_capabilities(aiosmtpd_factory, trust_test_ca) -> None:
    server = aiosmtpd_factory(tls="starttls", users={USER: PASSWORD}, require_starttls=True)
    transcript = Transcript()
    with Session(
        settings_for(server, Security.STARTTLS), transcript=transcript, credentials=creds()
    ):
        pass
    lines = [r.render() for r in transcript.records]
    ehlos = [i for i, line in enumerate(lines) if line.startswith("C: EHLO")]
    starttls = lines.index("C: STARTTLS")
    assert len(ehlos) == 2 and ehlos[0] < starttls < ehlos[1]
    # AUTH was only offered (and used) after TLS.
    assert not any("AUTH" in line for line in lines[ehlos[0] : starttls])


def test_wrong_password_is_permanent_and_redacted(aiosmtpd_factory, trust_test_ca) -> None:
    server = aiosmtpd_factory(tls="implicit", users={USER: PASSWORD})
    transcript = Transcript()
    session = Session(
        settings_for(server, Security.TLS, auth=AuthMethod.PLAIN),
        transcript=transcript,
        credentials=creds("wrong-password-123"),
    )
    with pytest.raises(AuthenticationError) as info:
        session.open()
    assert info.value.permanent
    assert info.value.reply is not None and info.value.reply.code == 535
    assert "password" in info.value.message.lower()
    assert_no_secret(transcript, "wrong-password-123")


@pytest.mark.parametrize(
    ("fixture", "words"),
    [
        ("expired_cert", "expired"),
        ("wrong_host_cert", "different server name"),
        ("self_signed_cert", "self-signed"),
    ],
)
def test_certificate_failures_refused(
    aiosmtpd_factory, trust_test_ca, request, fixture: str, words: str
) -> None:
    cert = request.getfixturevalue(fixture)
    server = aiosmtpd_factory(tls="implicit", cert=cert, users={USER: PASSWORD})
    session = Session(settings_for(server, Security.TLS), credentials=creds())
    with pytest.raises(TlsError) as info:
        session.open()
    assert words in info.value.message
    assert info.value.permanent
    # The certificate is fetched so the person can see what they would trust.
    assert info.value.certificate is not None
    assert info.value.certificate.sha256 == cert.sha256
    assert server.messages == []


def test_unknown_ca_refused_on_starttls(aiosmtpd_factory) -> None:
    # No trust_test_ca: the system store does not know the test CA.
    server = aiosmtpd_factory(tls="starttls", users={USER: PASSWORD})
    transcript = Transcript()
    session = Session(
        settings_for(server, Security.STARTTLS), transcript=transcript, credentials=creds()
    )
    with pytest.raises(TlsError) as info:
        session.open()
    assert "authority this computer does not trust" in info.value.message
    assert "AUTH" not in transcript.render()


def test_pinned_self_signed_certificate(aiosmtpd_factory, self_signed_cert) -> None:
    server = aiosmtpd_factory(tls="implicit", cert=self_signed_cert, users={USER: PASSWORD})
    pin = self_signed_cert.sha256
    colons = ":".join(pin[i : i + 2] for i in range(0, len(pin), 2)).upper()
    with Session(
        settings_for(server, Security.TLS, tls_fingerprint=colons), credentials=creds()
    ) as session:
        assert send(session, ("b@example.org",)).outcome == "sent"
    wrong = "00" * 32
    session = Session(settings_for(server, Security.TLS, tls_fingerprint=wrong))
    with pytest.raises(TlsError) as info:
        session.open()
    assert "does not match the fingerprint" in info.value.message
    assert info.value.certificate is not None
    assert info.value.certificate.sha256 == pin


def test_missing_starttls_is_not_a_silent_downgrade(aiosmtpd_factory) -> None:
    server = aiosmtpd_factory(tls="none", users={USER: PASSWORD}, auth_require_tls=False)
    transcript = Transcript()
    session = Session(
        settings_for(server, Security.STARTTLS), transcript=transcript, credentials=creds()
    )
    with pytest.raises(SecurityPolicyError, match="does not offer STARTTLS"):
        session.open()
    assert "AUTH" not in "".join(r.text for r in transcript.records if r.direction.value == "C")


def test_cleartext_auth_needs_explicit_permission(aiosmtpd_factory) -> None:
    server = aiosmtpd_factory(tls="none", users={USER: PASSWORD}, auth_require_tls=False)
    with pytest.raises(SecurityPolicyError, match="not encrypted"):
        Session(settings_for(server, Security.NONE), credentials=creds()).open()
    transcript = Transcript()
    with Session(
        settings_for(server, Security.NONE, allow_insecure_auth=True, auth=AuthMethod.LOGIN),
        transcript=transcript,
        credentials=creds(),
    ) as session:
        assert session.authenticated
    assert_no_secret(transcript)


def test_per_recipient_results(aiosmtpd_factory) -> None:
    server = aiosmtpd_factory(
        rcpt_replies={
            "gone@example.org": "550 5.1.1 No such user",
            "later@example.org": "451 4.7.1 Greylisted, try again",
        }
    )
    with Session(settings_for(server, Security.NONE)) as session:
        result = send(session, ("ok@example.org", "gone@example.org", "later@example.org"))
    statuses = {r.address: r.status for r in result.recipients}
    assert statuses == {
        "ok@example.org": RecipientStatus.ACCEPTED,
        "gone@example.org": RecipientStatus.REJECTED,
        "later@example.org": RecipientStatus.DEFERRED,
    }
    gone = result.recipients[1]
    assert gone.reply is not None and gone.reply.enhanced == "5.1.1"
    # The accepted one keeps the reply to the final ".", which names the message
    # in the server's logs, not the RCPT's "250 2.1.5 OK".
    ok = result.recipients[0]
    assert ok.reply is not None and str(ok.reply) == "250 2.0.0 OK: queued"
    assert ok.reply is result.reply
    assert result.outcome == "partial"
    (received,) = server.wait_for_messages(1)
    assert received.rcpt_tos == ["ok@example.org"]


def test_all_recipients_rejected_sends_no_data(aiosmtpd_factory) -> None:
    server = aiosmtpd_factory(rcpt_replies={"x@example.org": "550 5.1.1 No such user"})
    transcript = Transcript()
    with Session(settings_for(server, Security.NONE), transcript=transcript) as session:
        result = send(session, ("x@example.org",))
        # The connection is still usable for the next message.
        assert send(session, ("y@example.org",)).outcome == "sent"
    assert result.outcome == "rejected"
    assert "C: DATA" in transcript.render()
    assert transcript.render().count("C: DATA") == 1


def test_message_refused_after_data(aiosmtpd_factory) -> None:
    server = aiosmtpd_factory(on_data=lambda m: "554 5.7.1 Message rejected as spam")
    with Session(settings_for(server, Security.NONE)) as session:
        result = send(session, ("a@example.org", "b@example.org"))
    assert result.outcome == "rejected"
    assert result.reply is not None and result.reply.code == 554
    assert all(r.reply == result.reply for r in result.recipients)


def test_several_messages_over_one_connection(aiosmtpd_factory) -> None:
    server = aiosmtpd_factory()
    transcript = Transcript()
    with Session(settings_for(server, Security.NONE), transcript=transcript) as session:
        for n in range(5):
            body = MESSAGE + f"number {n}\r\n".encode()
            assert send(session, (f"r{n}@example.org",), body).outcome == "sent"
    messages = server.wait_for_messages(5)
    assert [m.rcpt_tos for m in messages] == [[f"r{n}@example.org"] for n in range(5)]
    assert transcript.render().count("connecting to") == 1


def test_smtputf8(aiosmtpd_factory) -> None:
    server = aiosmtpd_factory(enable_smtputf8=True)
    body = "From: jörg@bücher.example\r\n\r\nhi\r\n".encode()
    envelope = Envelope("jörg@bücher.example", ("zoë@example.org",), smtputf8=True)
    with Session(settings_for(server, Security.NONE)) as session:
        result = session.send_message(envelope, io.BytesIO(body), len(body))
    assert result.outcome == "sent"
    (received,) = server.wait_for_messages(1)
    assert received.smtp_utf8
    assert received.rcpt_tos == ["zoë@example.org"]


def test_smtputf8_missing_refused_before_sending(aiosmtpd_factory) -> None:
    server = aiosmtpd_factory(enable_smtputf8=False)
    transcript = Transcript()
    envelope = Envelope("jörg@example.org", ("b@example.org",), smtputf8=True)
    with (
        Session(settings_for(server, Security.NONE), transcript=transcript) as session,
        pytest.raises(MessageRefused, match="SMTPUTF8"),
    ):
        session.send_message(envelope, io.BytesIO(b"x"), 1)
    assert "MAIL FROM" not in transcript.render()


def test_size_limit_refused_before_sending(aiosmtpd_factory) -> None:
    server = aiosmtpd_factory(data_size_limit=1000)
    with Session(settings_for(server, Security.NONE)) as session:
        assert session.size_limit == 1000
        with pytest.raises(MessageRefused, match="accepts at most"):
            send(session, ("b@example.org",), b"x" * 5000)


def test_large_body_streams_with_progress(aiosmtpd_factory, tmp_path: Path) -> None:
    server = aiosmtpd_factory(data_size_limit=None)
    line = b"0123456789" * 7 + b"\r\n"
    body = b"Subject: big\r\n\r\n" + line * 60_000  # about 4.3 MB
    path = tmp_path / "big.eml"
    path.write_bytes(body)
    seen: list[tuple[int, int]] = []
    with Session(settings_for(server, Security.NONE)) as session, path.open("rb") as f:
        result = session.send_message(
            Envelope("a@example.org", ("b@example.org",)),
            f,
            len(body),
            progress=lambda sent, total: seen.append((sent, total)),
        )
    assert result.outcome == "sent"
    assert seen[-1] == (len(body), len(body))
    assert len(seen) > 10
    assert [s for s, _ in seen] == sorted(s for s, _ in seen)
    (received,) = server.wait_for_messages(1, timeout=30)
    assert received.content == body


def test_cancel_from_another_thread(aiosmtpd_factory) -> None:
    def slow_rcpt(address: str, options: list[str]) -> None:
        time.sleep(3)
        return None

    server = aiosmtpd_factory(on_rcpt=slow_rcpt)
    session = Session(settings_for(server, Security.NONE))
    session.open()
    timer = threading.Timer(0.3, session.abort)
    timer.start()
    started = time.monotonic()
    with pytest.raises(Cancelled):
        send(session, ("b@example.org",))
    assert time.monotonic() - started < 2.5
    timer.join()
    session.close()


def test_command_timeout_defers(aiosmtpd_factory) -> None:
    def slow_rcpt(address: str, options: list[str]) -> None:
        time.sleep(2)
        return None

    server = aiosmtpd_factory(on_rcpt=slow_rcpt)
    session = Session(
        settings_for(server, Security.NONE, timeouts=Timeouts(command=0.5)),
    )
    session.open()
    result = send(session, ("b@example.org",))
    session.close()
    assert result.outcome == "deferred"
    assert result.error is not None and "stopped answering" in result.error.message


def test_connection_refused_is_transient() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    session = Session(ServerSettings("127.0.0.1", port, Security.NONE))
    with pytest.raises(ConnectError) as info:
        session.open()
    assert info.value.transient
    assert "refused the connection" in info.value.message


# ------------------------------------------------------------- smtp-sink


def test_pipelining_sends_one_group(smtp_sink_factory) -> None:
    sink = smtp_sink_factory()
    transcript = Transcript()
    recipients = tuple(f"r{n}@example.org" for n in range(20))
    with Session(settings_for(sink, Security.NONE), transcript=transcript) as session:
        assert "PIPELINING" in session.extensions
        result = send(session, recipients)
    assert result.outcome == "sent"
    assert len(result.recipients) == 20
    records = transcript.records
    # The client lines MAIL..DATA come before the first server reply to them.
    lines = [r.render() for r in records]
    mail = next(i for i, line in enumerate(lines) if line.startswith("C: MAIL FROM"))
    data = lines.index("C: DATA")
    assert data - mail == 21
    assert all(line.startswith("C: ") for line in lines[mail : data + 1])


@pytest.mark.parametrize(
    ("flags", "status", "code"),
    [
        (("-r", "RCPT"), RecipientStatus.DEFERRED, 450),
        (("-f", "RCPT"), RecipientStatus.REJECTED, 500),
        (("-f", "."), RecipientStatus.REJECTED, 500),
        (("-r", "MAIL"), RecipientStatus.DEFERRED, 450),
    ],
)
def test_sink_fault_switches(smtp_sink_factory, flags, status, code) -> None:
    sink = smtp_sink_factory(*flags)
    with Session(settings_for(sink, Security.NONE)) as session:
        result = send(session, ("a@example.org", "b@example.org"))
    assert {r.status for r in result.recipients} == {status}
    assert {r.reply.code for r in result.recipients if r.reply} == {code}


def test_sink_disconnect_after_data_end_is_uncertain(smtp_sink_factory) -> None:
    sink = smtp_sink_factory("-q", ".")
    with Session(settings_for(sink, Security.NONE)) as session:
        result = send(session, ("a@example.org",))
    assert result.outcome == "uncertain"
    assert result.uncertain and result.error is not None


def test_sink_disconnect_after_rcpt_defers(smtp_sink_factory) -> None:
    sink = smtp_sink_factory("-p", "-q", "RCPT")
    with Session(settings_for(sink, Security.NONE)) as session:
        result = send(session, ("a@example.org",))
    assert result.outcome == "deferred"
    assert not result.uncertain


def test_sink_421_defers_everything_unconfirmed(smtp_sink_factory) -> None:
    sink = smtp_sink_factory("-Q", "RCPT")
    with Session(settings_for(sink, Security.NONE)) as session:
        result = send(session, ("a@example.org", "b@example.org"))
        with pytest.raises(ConnectionLost):
            send(session, ("c@example.org",))
    assert {r.status for r in result.recipients} == {RecipientStatus.DEFERRED}


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelining", "one by one"])
@pytest.mark.parametrize("command", ["MAIL", "RCPT", "DATA", "."])
def test_a_421_is_the_reason_given_not_a_silent_close(
    smtp_sink_factory, command: str, pipelining: bool
) -> None:
    """421 and a closed connection after MAIL, RCPT or DATA, pipelined or not:
    what the person is told is the server's 421, not "closed without an
    answer", and the result carries it as an error (the connection is gone)."""
    sink = smtp_sink_factory("-Q", command, *(() if pipelining else ("-p",)))
    with Session(settings_for(sink, Security.NONE)) as session:
        result = send(session, ("a@example.org", "b@example.org"))
    assert {r.status for r in result.recipients} == {RecipientStatus.DEFERRED}
    assert {r.reply.code for r in result.recipients if r.reply} == {421}
    assert isinstance(result.error, ConnectionLost)
    assert result.error.reply is not None and result.error.reply.code == 421
    assert "without an answer" not in str(result.error)


def test_sink_slow_data_reply_waits(smtp_sink_factory) -> None:
    sink = smtp_sink_factory("-w", "1")
    started = time.monotonic()
    with Session(settings_for(sink, Security.NONE)) as session:
        result = send(session, ("a@example.org",))
    assert result.outcome == "sent"
    assert time.monotonic() - started >= 1.0


def test_helo_fallback_with_sink_without_esmtp(smtp_sink_factory) -> None:
    sink = smtp_sink_factory("-e")
    transcript = Transcript()
    with Session(settings_for(sink, Security.NONE), transcript=transcript) as session:
        assert session.extensions == {}
        assert send(session, ("a@example.org",)).outcome == "sent"
    assert "C: HELO" in transcript.render()


def test_dsn_parameters_when_advertised(smtp_sink_factory) -> None:
    sink = smtp_sink_factory()
    transcript = Transcript()
    envelope = Envelope(
        "a@example.org",
        ("b@example.org",),
        dsn_notify=("SUCCESS", "FAILURE"),
        dsn_ret="HDRS",
        dsn_envid="<id 1@example.org>",
    )
    with Session(settings_for(sink, Security.NONE), transcript=transcript) as session:
        assert "DSN" in session.extensions
        result = session.send_message(envelope, io.BytesIO(MESSAGE), len(MESSAGE))
    assert result.outcome == "sent"
    text = transcript.render()
    assert "C: MAIL FROM:<a@example.org> RET=HDRS ENVID=<id+201@example.org>" in text
    assert "C: RCPT TO:<b@example.org> NOTIFY=SUCCESS,FAILURE" in text


def test_dsn_parameters_left_out_when_not_advertised(smtp_sink_factory) -> None:
    sink = smtp_sink_factory("-N")
    transcript = Transcript()
    envelope = Envelope("a@example.org", ("b@example.org",), dsn_notify=("FAILURE",))
    with Session(settings_for(sink, Security.NONE), transcript=transcript) as session:
        assert "DSN" not in session.extensions
        result = session.send_message(envelope, io.BytesIO(MESSAGE), len(MESSAGE))
    assert result.outcome == "sent"
    assert "NOTIFY" not in transcript.render()


def test_452_too_many_recipients_go_in_new_transactions(aiosmtpd_factory) -> None:
    per_transaction = {"count": 0}

    def on_mail(address: str, options: list[str]) -> None:
        per_transaction["count"] = 0

    def on_rcpt(address: str, options: list[str]) -> str | None:
        per_transaction["count"] += 1
        return "452 4.5.3 Too many recipients" if per_transaction["count"] > 2 else None

    server = aiosmtpd_factory(on_mail=on_mail, on_rcpt=on_rcpt)
    recipients = tuple(f"r{n}@example.org" for n in range(5))
    answered: list[list[tuple[str, int | None]]] = []
    with Session(settings_for(server, Security.NONE)) as session:
        result = session.send_message(
            Envelope("a@example.org", recipients), io.BytesIO(MESSAGE), len(MESSAGE),
            after_end=lambda answers: answered.append(
                [(r.address, r.reply.code if r.reply else None) for r in answers]
            ),
        )  # fmt: skip
    assert result.outcome == "sent"
    # The answers of each transaction that another follows, as soon as its "." was answered.
    assert answered == [
        [("r0@example.org", 250), ("r1@example.org", 250)]
        + [(f"r{n}@example.org", 452) for n in (2, 3, 4)],
        [("r2@example.org", 250), ("r3@example.org", 250), ("r4@example.org", 452)],
    ]
    assert [r.address for r in result.recipients] == list(recipients)
    messages = server.wait_for_messages(3)
    assert [m.rcpt_tos for m in messages] == [
        ["r0@example.org", "r1@example.org"],
        ["r2@example.org", "r3@example.org"],
        ["r4@example.org"],
    ]
    assert all(m.content == messages[0].content for m in messages)


def test_452_without_progress_defers(aiosmtpd_factory) -> None:
    server = aiosmtpd_factory(on_rcpt=lambda a, o: "452 4.3.1 Insufficient system storage")
    with Session(settings_for(server, Security.NONE)) as session:
        result = send(session, ("a@example.org", "b@example.org"))
    assert result.outcome == "deferred"
    assert server.messages == []


def test_cancel_after_final_dot_is_uncertain_not_retryable(smtp_sink_factory) -> None:
    sink = smtp_sink_factory("-W", ".:3")
    session = Session(settings_for(sink, Security.NONE))
    session.open()
    timer = threading.Timer(0.5, session.abort)
    timer.start()
    result = send(session, ("a@example.org",))
    timer.join()
    session.close()
    assert result.outcome == "uncertain"
    assert isinstance(result.error, Cancelled)


def test_connection_unusable_after_a_timeout(smtp_sink_factory) -> None:
    sink = smtp_sink_factory("-p", "-W", "RCPT:2")
    session = Session(settings_for(sink, Security.NONE, timeouts=Timeouts(command=0.5)))
    session.open()
    first = send(session, ("a@example.org",))
    assert first.outcome == "deferred"
    with pytest.raises(TimeoutError_):
        send(session, ("b@example.org",))
    session.close()


def test_xoauth2_token(aiosmtpd_factory, trust_test_ca) -> None:
    token = "ya29.test-token-" + "x" * 40
    server = aiosmtpd_factory(tls="implicit", users={USER: token}, auth_required=True)
    transcript = Transcript()
    settings = settings_for(server, Security.TLS, auth=AuthMethod.XOAUTH2)
    with Session(settings, transcript=transcript, credentials=creds(token)) as session:
        assert send(session, ("b@example.org",)).outcome == "sent"
    assert server.wait_for_messages(1)[0].auth_login == USER
    assert "C: AUTH XOAUTH2 *****" in transcript.render()
    assert_no_secret(transcript, token)


def test_xoauth2_refused_token_reads_the_final_reply(aiosmtpd_factory, trust_test_ca) -> None:
    server = aiosmtpd_factory(tls="implicit", users={USER: "the-valid-token"})
    transcript = Transcript()
    settings = settings_for(server, Security.TLS, auth=AuthMethod.XOAUTH2)
    session = Session(settings, transcript=transcript, credentials=creds("an-expired-token"))
    with pytest.raises(AuthenticationError) as info:
        session.open()
    assert info.value.reply is not None and info.value.reply.code == 535
    lines = [r.render() for r in transcript.records]
    assert any(line.startswith("S: 334 ") for line in lines)
    assert lines.count("C: *****") == 1  # the empty line that asks for the final reply
    assert_no_secret(transcript, "an-expired-token")


# ------------------------------------------------ a message refused as too big

_ACCEPTED = (RecipientStatus.ACCEPTED, 250, "2.1.5", "Ok")


def _result(*recipients: tuple[RecipientStatus, int, str | None, str], limit=None):
    from mailer_gui.smtp.replies import Reply
    from mailer_gui.smtp.session import RecipientResult

    return MessageResult(
        tuple(
            RecipientResult(f"r{n}@example.org", status, Reply(code, enhanced, (text,)))
            for n, (status, code, enhanced, text) in enumerate(recipients)
        ),
        size_limit=limit,
    )


_REJECTED = RecipientStatus.REJECTED


@pytest.mark.parametrize(
    ("recipients", "too_big"),
    [
        ([(_REJECTED, 552, "5.3.4", "Message size exceeds fixed limit")] * 2, True),
        ([(_REJECTED, 552, "5.2.3", "Message exceeds this mailbox's limit")], True),
        # RFC 1870's refusal of MAIL FROM ... SIZE=, with no enhanced code
        ([(_REJECTED, 552, None, "message size exceeds fixed maximum message size")], True),
        ([(_REJECTED, 552, None, "Message too large")], True),
        # a full mailbox, with or without an enhanced code
        ([(_REJECTED, 552, None, "Mailbox full: quota exceeded")], False),
        ([(_REJECTED, 552, "5.2.2", "The recipient's inbox is out of storage space")], False),
        ([(_REJECTED, 550, "5.1.1", "No such user")], False),
        # refused as too big for one, for another reason for the other
        (
            [
                (_REJECTED, 550, "5.1.1", "No such user"),
                (_REJECTED, 552, "5.3.4", "Message size exceeds fixed limit"),
            ],
            False,
        ),
        # the message went to someone, or is to be tried again for someone
        ([_ACCEPTED, (_REJECTED, 552, "5.2.3", "Message exceeds this mailbox's limit")], False),
        (
            [
                (RecipientStatus.DEFERRED, 451, "4.7.1", "Greylisted"),
                (_REJECTED, 552, "5.3.4", "Message size exceeds fixed limit"),
            ],
            False,
        ),
    ],
)
def test_which_refusals_say_the_message_is_too_big(recipients, too_big: bool) -> None:
    from mailer_gui.smtp.session import refused_as_too_big, too_big_reason

    result = _result(*recipients, limit=10_485_760)
    assert (refused_as_too_big(result) is not None) is too_big
    reason = too_big_reason(result, 25_000_000)
    if too_big:
        assert reason is not None
        assert "it is 23.8 MB, and the server's stated limit is 10.0 MB (SIZE 10485760)" in reason
        assert f"It said: 552 {recipients[-1][2] or ''}".replace("  ", " ").strip() in reason
    else:
        assert reason is None
