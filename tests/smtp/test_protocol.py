"""The sans-IO client, driven with bytes alone: no sockets, no mocks."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailer_gui.smtp import protocol as p
from mailer_gui.smtp.errors import LocalProtocolError, RemoteProtocolError
from mailer_gui.smtp.replies import Stage

EHLO_PIPELINING = (
    b"250-mail.example.org Hello\r\n250-PIPELINING\r\n250-SIZE 1000000\r\n"
    b"250-8BITMIME\r\n250-SMTPUTF8\r\n250-DSN\r\n250-STARTTLS\r\n"
    b"250 AUTH PLAIN LOGIN CRAM-MD5\r\n"
)
EHLO_PLAIN = b"250-mail.example.org\r\n250 AUTH PLAIN\r\n"


def events(conn: p.ClientConnection, data: bytes) -> list[p.Event]:
    conn.receive_data(data)
    out: list[p.Event] = []
    while True:
        event = conn.next_event()
        if event is p.NEED_DATA:
            return out
        assert not isinstance(event, p._NeedData)
        out.append(event)
        if isinstance(event, p.ConnectionClosed):
            return out


def ready(ehlo: bytes = EHLO_PIPELINING) -> p.ClientConnection:
    conn = p.ClientConnection()
    events(conn, b"220 mail.example.org ESMTP\r\n")
    conn.send(p.Ehlo("client.example"))
    events(conn, ehlo)
    assert conn.state is p.State.READY
    return conn


# ------------------------------------------------------------ command bytes


@pytest.mark.parametrize(
    ("command", "wire", "log"),
    [
        (p.Ehlo("[127.0.0.1]"), b"EHLO [127.0.0.1]\r\n", "EHLO [127.0.0.1]"),
        (
            p.MailFrom("a@example.org", size=1234, body_8bitmime=True),
            b"MAIL FROM:<a@example.org> SIZE=1234 BODY=8BITMIME\r\n",
            "MAIL FROM:<a@example.org> SIZE=1234 BODY=8BITMIME",
        ),
        (
            p.MailFrom("", dsn_ret="HDRS", dsn_envid="id+1 x"),
            b"MAIL FROM:<> RET=HDRS ENVID=id+2B1+20x\r\n",
            "MAIL FROM:<> RET=HDRS ENVID=id+2B1+20x",
        ),
        (p.Auth("PLAIN", b"AGEAYg=="), b"AUTH PLAIN AGEAYg==\r\n", "AUTH PLAIN *****"),
        (p.Auth("PLAIN", b""), b"AUTH PLAIN =\r\n", "AUTH PLAIN *****"),
        (p.Auth("LOGIN"), b"AUTH LOGIN\r\n", "AUTH LOGIN"),
        (p.AuthResponse(b"c2VjcmV0"), b"c2VjcmV0\r\n", "*****"),
        (p.Quit(), b"QUIT\r\n", "QUIT"),
    ],
)
def test_command_wire_form_and_redacted_log(command: p.Command, wire: bytes, log: str) -> None:
    assert p.command_line(command) == wire
    assert p.transcript_text(command) == log


def test_rcpt_with_notify() -> None:
    conn = ready()
    conn.send(p.MailFrom("a@example.org"))
    out = conn.send(p.RcptTo("b@example.org", ("SUCCESS", "FAILURE")))
    assert out == b"RCPT TO:<b@example.org> NOTIFY=SUCCESS,FAILURE\r\n"


# ---------------------------------------------------------------- greeting


@pytest.mark.parametrize(
    ("greeting", "state"),
    [
        (b"220 ok\r\n", p.State.GREETED),
        (b"220-first\r\n220 second\r\n", p.State.GREETED),
        (b"554 5.7.1 go away\r\n", p.State.REFUSED),
        (b"421 busy\r\n", p.State.REFUSED),
    ],
)
def test_greeting(greeting: bytes, state: p.State) -> None:
    conn = p.ClientConnection()
    (event,) = events(conn, greeting)
    assert isinstance(event, p.ServerReply)
    assert event.stage is Stage.GREETING
    assert conn.state is state


def test_refused_greeting_allows_only_quit() -> None:
    conn = p.ClientConnection()
    events(conn, b"554 no\r\n")
    with pytest.raises(LocalProtocolError):
        conn.send(p.Ehlo("x"))
    assert conn.send(p.Quit()) == b"QUIT\r\n"


# -------------------------------------------------------------------- EHLO


def test_ehlo_extensions_parsed() -> None:
    conn = ready()
    assert conn.pipelining
    assert conn.size_limit == 1000000
    assert conn.auth_mechanisms == ("PLAIN", "LOGIN", "CRAM-MD5")
    assert conn.supports("smtputf8")


def test_old_auth_equals_form_is_merged() -> None:
    conn = ready(b"250-x\r\n250-AUTH=LOGIN\r\n250 AUTH PLAIN LOGIN\r\n")
    assert set(conn.auth_mechanisms) == {"PLAIN", "LOGIN"}


@pytest.mark.parametrize("code", [500, 502])
def test_ehlo_refused_falls_back_to_helo(code: int) -> None:
    conn = p.ClientConnection()
    events(conn, b"220 old server\r\n")
    conn.send(p.Ehlo("client"))
    events(conn, f"{code} unrecognised\r\n".encode())
    assert conn.ehlo_refused
    assert conn.state is p.State.GREETED
    assert conn.send(p.Helo("client")) == b"HELO client\r\n"
    events(conn, b"250 hi\r\n")
    assert conn.state is p.State.READY
    assert conn.extensions == {}


def test_ehlo_other_failure_is_not_a_helo_case() -> None:
    conn = p.ClientConnection()
    events(conn, b"220 x\r\n")
    conn.send(p.Ehlo("client"))
    events(conn, b"421 4.3.2 shutting down\r\n")
    assert not conn.ehlo_refused
    assert conn.state is p.State.CLOSED


# ---------------------------------------------------------------- STARTTLS


def test_starttls_forgets_capabilities() -> None:
    conn = ready()
    assert conn.send(p.StartTls()) == b"STARTTLS\r\n"
    events(conn, b"220 2.0.0 go ahead\r\n")
    assert conn.state is p.State.TLS_HANDSHAKE
    conn.tls_established()
    assert conn.extensions == {}
    assert conn.tls_active
    assert conn.state is p.State.GREETED
    with pytest.raises(LocalProtocolError):
        conn.send(p.MailFrom("a@example.org"))


def test_starttls_injection_refused() -> None:
    conn = ready()
    conn.send(p.StartTls())
    with pytest.raises(RemoteProtocolError):
        events(conn, b"220 go ahead\r\n250 injected\r\n")


def test_data_after_starttls_220_refused() -> None:
    conn = ready()
    conn.send(p.StartTls())
    events(conn, b"220 go ahead\r\n")
    with pytest.raises(RemoteProtocolError):
        conn.receive_data(b"250 injected\r\n")


def test_starttls_not_offered() -> None:
    conn = ready(EHLO_PLAIN)
    with pytest.raises(LocalProtocolError):
        conn.send(p.StartTls())


# -------------------------------------------------------------------- AUTH


def test_auth_challenge_round() -> None:
    conn = ready()
    conn.send(p.Auth("LOGIN"))
    (event,) = events(conn, b"334 VXNlcm5hbWU6\r\n")
    assert isinstance(event, p.ServerReply) and event.reply.code == 334
    assert conn.state is p.State.AUTH_CHALLENGE
    conn.send(p.AuthResponse(b"dXNlcg=="))
    events(conn, b"334 UGFzc3dvcmQ6\r\n")
    conn.send(p.AuthResponse(b"cGFzcw=="))
    events(conn, b"235 2.7.0 ok\r\n")
    assert conn.authenticated and conn.state is p.State.READY


def test_auth_failure_returns_to_ready() -> None:
    conn = ready()
    conn.send(p.Auth("PLAIN", b"AGEAYg=="))
    (event,) = events(conn, b"535 5.7.8 bad\r\n")
    assert isinstance(event, p.ServerReply)
    assert event.reply.enhanced == "5.7.8"
    assert not conn.authenticated and conn.state is p.State.READY


def test_auth_mechanism_not_offered() -> None:
    conn = ready(EHLO_PLAIN)
    with pytest.raises(LocalProtocolError):
        conn.send(p.Auth("CRAM-MD5"))


# ------------------------------------------------------------- transactions


def test_pipelined_group_matches_replies_in_order() -> None:
    conn = ready()
    out = b"".join(
        conn.send(c)
        for c in (
            p.MailFrom("a@example.org"),
            p.RcptTo("one@example.org"),
            p.RcptTo("two@example.org"),
            p.Data(),
        )
    )
    assert out.count(b"\r\n") == 4
    got = events(
        conn,
        b"250 2.1.0 ok\r\n250 2.1.5 ok\r\n550 5.1.1 no such user\r\n354 go\r\n",
    )
    assert [e.stage for e in got if isinstance(e, p.ServerReply)] == [
        Stage.MAIL,
        Stage.RCPT,
        Stage.RCPT,
        Stage.DATA,
    ]
    rejected = got[2]
    assert isinstance(rejected, p.ServerReply)
    assert rejected.command == p.RcptTo("two@example.org")
    assert conn.state is p.State.BODY


def test_without_pipelining_a_command_waits_for_its_reply() -> None:
    conn = ready(EHLO_PLAIN)
    conn.send(p.MailFrom("a@example.org"))
    with pytest.raises(LocalProtocolError, match="PIPELINING"):
        conn.send(p.RcptTo("b@example.org"))


def test_group_must_end_with_data() -> None:
    conn = ready()
    conn.send(p.MailFrom("a@example.org"))
    conn.send(p.RcptTo("b@example.org"))
    conn.send(p.Data())
    with pytest.raises(LocalProtocolError):
        conn.send(p.Rset())


def test_mail_refused_without_pipelining_returns_to_ready() -> None:
    conn = ready(EHLO_PLAIN)
    conn.send(p.MailFrom("a@example.org"))
    events(conn, b"550 5.7.1 not allowed\r\n")
    assert conn.state is p.State.READY


def test_data_refused_ends_transaction() -> None:
    conn = ready()
    for c in (p.MailFrom("a@example.org"), p.RcptTo("b@example.org"), p.Data()):
        conn.send(c)
    events(conn, b"250 ok\r\n550 no\r\n554 5.5.1 no valid recipients\r\n")
    assert conn.state is p.State.READY


def test_unsolicited_421_closes() -> None:
    conn = ready()
    (event,) = events(conn, b"421 4.4.2 timeout\r\n")
    assert isinstance(event, p.ServerReply) and event.stage is Stage.CONNECTION
    assert conn.state is p.State.CLOSED


def test_unsolicited_reply_is_a_protocol_error() -> None:
    conn = ready()
    with pytest.raises(RemoteProtocolError):
        events(conn, b"250 surprise\r\n")


def test_eof_reports_unanswered_commands() -> None:
    conn = ready()
    conn.send(p.MailFrom("a@example.org"))
    conn.send(p.RcptTo("b@example.org"))
    (event,) = events(conn, b"")
    assert isinstance(event, p.ConnectionClosed)
    assert event.unanswered == (p.MailFrom("a@example.org"), p.RcptTo("b@example.org"))
    assert conn.state is p.State.CLOSED
    with pytest.raises(LocalProtocolError):
        conn.send(p.Quit())


@pytest.mark.parametrize(
    ("command", "ehlo"),
    [
        (p.MailFrom("a@example.org", smtputf8=True), EHLO_PLAIN),
        (p.MailFrom("a@example.org", body_8bitmime=True), EHLO_PLAIN),
        (p.MailFrom("a@example.org", size=10), EHLO_PLAIN),
        (p.MailFrom("a@example.org", dsn_ret="FULL"), EHLO_PLAIN),
        (p.MailFrom("üser@example.org"), EHLO_PIPELINING),
        (p.MailFrom("a@example.org>\r\nRCPT TO:<x@y>"), EHLO_PIPELINING),
    ],
)
def test_mail_parameters_checked_against_extensions(command: p.Command, ehlo: bytes) -> None:
    conn = ready(ehlo)
    with pytest.raises(LocalProtocolError):
        conn.send(command)


def test_utf8_address_with_smtputf8() -> None:
    conn = ready()
    out = conn.send(p.MailFrom("üser@exämple.org", smtputf8=True))
    assert out == "MAIL FROM:<üser@exämple.org> SMTPUTF8\r\n".encode()
    assert conn.send(p.RcptTo("ü@example.org")) == "RCPT TO:<ü@example.org>\r\n".encode()


# -------------------------------------------------------------- message body


def body_after_354(chunks: list[bytes]) -> bytes:
    conn = ready()
    for c in (p.MailFrom("a@example.org"), p.RcptTo("b@example.org"), p.Data()):
        conn.send(c)
    events(conn, b"250 ok\r\n250 ok\r\n354 go\r\n")
    out = b"".join(conn.send(p.BodyChunk(c)) for c in chunks)
    return out + conn.send(p.EndOfData())


@pytest.mark.parametrize(
    ("chunks", "wire"),
    [
        ([b"hello\r\n"], b"hello\r\n.\r\n"),
        ([b"hello"], b"hello\r\n.\r\n"),
        ([b"a\nb\n"], b"a\r\nb\r\n.\r\n"),
        ([b"a\rb"], b"a\r\nb\r\n.\r\n"),
        ([b".start\r\n.\r\n"], b"..start\r\n..\r\n.\r\n"),
        ([b"x\r", b"\n.y"], b"x\r\n..y\r\n.\r\n"),
        ([b"x\r\n", b".", b"y"], b"x\r\n..y\r\n.\r\n"),
        ([b"x\r"], b"x\r\n.\r\n"),
        ([b""], b".\r\n"),
    ],
)
def test_body_normalised_and_dot_stuffed(chunks: list[bytes], wire: bytes) -> None:
    assert body_after_354(chunks) == wire


def _reference_encoding(data: bytes) -> bytes:
    text = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    lines = text.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    stuffed = [b"." + line if line.startswith(b".") else line for line in lines]
    return b"".join(line + b"\r\n" for line in stuffed) + b".\r\n"


@given(st.binary(max_size=300), st.lists(st.integers(0, 300), max_size=6))
def test_body_encoding_independent_of_chunking(data: bytes, cuts: list[int]) -> None:
    points = sorted({min(c, len(data)) for c in cuts})
    chunks = [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]
    assert body_after_354(chunks) == _reference_encoding(data)


def after_354() -> p.ClientConnection:
    conn = ready()
    for c in (p.MailFrom("a@example.org"), p.RcptTo("b@example.org"), p.Data()):
        conn.send(c)
    events(conn, b"250 ok\r\n250 ok\r\n354 go\r\n")
    return conn


@given(st.binary(max_size=300), st.integers(0, 300), st.lists(st.integers(0, 300), max_size=4))
def test_a_start_encoded_ahead_goes_on_through_its_encoder(
    data: bytes, first: int, cuts: list[int]
) -> None:
    """The start of a message encoded before its 354 (a fresh encoder, as the
    session does while the server works on the message before) and the rest
    sent as usual: the same wire bytes as the whole message sent after the 354."""
    first = min(first, len(data))
    encoder = p.DataEncoder()
    start = p.EncodedChunk(encoder.encode(data[:first]), encoder)
    rest = data[first:]
    points = sorted({min(c, len(rest)) for c in cuts})
    chunks = [rest[a:b] for a, b in zip([0, *points], [*points, len(rest)], strict=True)]

    conn = after_354()
    out = conn.send(start) + b"".join(conn.send(p.BodyChunk(c)) for c in chunks)
    assert out + conn.send(p.EndOfData()) == _reference_encoding(data)


def test_an_encoded_start_is_sent_as_given_and_split_line_ends_are_seen() -> None:
    encoder = p.DataEncoder()
    wire = encoder.encode(b".first\r\nsecond\r")  # the CR waits for what follows
    assert wire == b"..first\r\nsecond"
    conn = after_354()
    assert conn.send(p.EncodedChunk(wire, encoder)) == wire
    assert conn.send(p.BodyChunk(b"\n.third")) == b"\r\n..third"
    assert conn.send(p.EndOfData()) == b"\r\n.\r\n"
    events(conn, b"250 queued\r\n")
    assert conn.state is p.State.READY


def test_an_encoded_part_only_opens_a_message() -> None:
    conn = after_354()
    conn.send(p.BodyChunk(b"already begun\r\n"))
    encoder = p.DataEncoder()
    with pytest.raises(LocalProtocolError, match="only open the message"):
        conn.send(p.EncodedChunk(encoder.encode(b"more\r\n"), encoder))
    with pytest.raises(LocalProtocolError):  # nor before the 354
        encoder = p.DataEncoder()
        ready().send(p.EncodedChunk(encoder.encode(b"x\r\n"), encoder))


def test_the_next_message_may_open_with_an_encoded_part_again() -> None:
    conn = after_354()
    encoder = p.DataEncoder()
    conn.send(p.EncodedChunk(encoder.encode(b"one\r\n"), encoder))
    conn.send(p.EndOfData())
    events(conn, b"250 queued\r\n")
    for c in (p.MailFrom("a@example.org"), p.RcptTo("b@example.org"), p.Data()):
        conn.send(c)
    events(conn, b"250 ok\r\n250 ok\r\n354 go\r\n")
    encoder = p.DataEncoder()
    assert conn.send(p.EncodedChunk(encoder.encode(b".two\r\n"), encoder)) == b"..two\r\n"
    assert conn.send(p.EndOfData()) == b".\r\n"


def test_an_encoded_part_is_not_in_the_session_log() -> None:
    encoder = p.DataEncoder()
    assert p.transcript_text(p.EncodedChunk(encoder.encode(b"secret text"), encoder)) is None


def test_a_refused_data_leaves_the_servers_transaction_open_until_rset() -> None:
    """Pipelined: MAIL taken, the only RCPT refused, DATA refused. The server
    still holds the MAIL, so the next one needs an RSET first."""
    conn = ready()
    for c in (p.MailFrom("a@example.org"), p.RcptTo("b@example.org"), p.Data()):
        conn.send(c)
    assert not conn.transaction_open
    events(conn, b"250 2.1.0 ok\r\n450 4.2.0 busy\r\n554 5.5.1 no valid recipients\r\n")
    assert conn.state is p.State.READY and conn.transaction_open
    conn.send(p.Rset())
    events(conn, b"250 2.0.0 ok\r\n")
    assert not conn.transaction_open


@pytest.mark.parametrize(
    ("replies", "open_after"),
    [
        (b"550 5.1.0 sender refused\r\n550 no\r\n503 no\r\n", False),  # MAIL refused
        (b"250 ok\r\n250 ok\r\n354 go\r\n", True),  # the body is next
    ],
)
def test_a_transaction_is_open_only_once_its_mail_was_taken(
    replies: bytes, open_after: bool
) -> None:
    conn = ready()
    for c in (p.MailFrom("a@example.org"), p.RcptTo("b@example.org"), p.Data()):
        conn.send(c)
    events(conn, replies)
    assert conn.transaction_open is open_after
    if open_after:  # and the reply to its "." ends it, whatever it says
        conn.send(p.BodyChunk(b"x\r\n"))
        conn.send(p.EndOfData())
        events(conn, b"554 5.7.1 rejected\r\n")
        assert not conn.transaction_open


def test_quit_closes() -> None:
    conn = ready()
    conn.send(p.Quit())
    events(conn, b"221 bye\r\n")
    assert conn.state is p.State.CLOSED


# ------------------------------------------ the next message with the final "."


def in_body(ehlo: bytes = EHLO_PIPELINING) -> p.ClientConnection:
    """A connection in the BODY state of a message to b@example.org, one command at a time."""
    conn = ready(ehlo)
    for command, reply in (
        (p.MailFrom("a@example.org"), b"250 2.1.0 ok\r\n"),
        (p.RcptTo("b@example.org"), b"250 2.1.5 ok\r\n"),
        (p.Data(), b"354 go ahead\r\n"),
    ):
        conn.send(command)
        events(conn, reply)
    assert conn.send(p.BodyChunk(b"first message\r\n")) == b"first message\r\n"
    return conn


def test_next_mail_rcpt_data_may_follow_the_final_dot_with_pipelining() -> None:
    conn = in_body()
    out = b"".join(
        conn.send(c)
        for c in (p.EndOfData(), p.MailFrom("c@example.org"), p.RcptTo("d@example.org"), p.Data())
    )
    assert out == b".\r\nMAIL FROM:<c@example.org>\r\nRCPT TO:<d@example.org>\r\nDATA\r\n"
    assert conn.state is p.State.DATA_SENT
    assert conn.awaiting_replies == 4
    with pytest.raises(LocalProtocolError):  # DATA ends the group: its reply comes first
        conn.send(p.Rset())


def test_next_mail_must_wait_for_the_dot_reply_without_pipelining() -> None:
    conn = in_body(EHLO_PLAIN)
    conn.send(p.EndOfData())
    with pytest.raises(LocalProtocolError, match="PIPELINING"):
        conn.send(p.MailFrom("c@example.org"))
    assert conn.state is p.State.DATA_END_SENT
    (event,) = events(conn, b"250 2.0.0 queued\r\n")
    assert isinstance(event, p.ServerReply) and event.stage is Stage.DATA_END
    assert conn.state is p.State.READY
    assert conn.send(p.MailFrom("c@example.org")) == b"MAIL FROM:<c@example.org>\r\n"


@pytest.mark.parametrize("command", [p.RcptTo("d@example.org"), p.Data(), p.Rset(), p.Quit()])
def test_only_mail_may_follow_the_final_dot(command: p.Command) -> None:
    conn = in_body()
    conn.send(p.EndOfData())
    with pytest.raises(LocalProtocolError):
        conn.send(command)


@pytest.mark.parametrize(
    ("sent_ahead", "dot_reply", "state"),
    [
        ((p.MailFrom("c@example.org"),), b"250 2.0.0 queued\r\n", p.State.MAIL),
        ((p.MailFrom("c@example.org"), p.RcptTo("d@example.org")), b"250 ok\r\n", p.State.RCPT),
        (
            (p.MailFrom("c@example.org"), p.RcptTo("d@example.org"), p.Data()),
            b"250 2.0.0 queued\r\n",
            p.State.DATA_SENT,
        ),
        # A refused message does not undo the next transaction's commands either.
        (
            (p.MailFrom("c@example.org"), p.RcptTo("d@example.org"), p.Data()),
            b"554 5.7.1 rejected as spam\r\n",
            p.State.DATA_SENT,
        ),
    ],
)
def test_the_dot_reply_keeps_the_state_of_what_was_sent_after_it(
    sent_ahead: tuple[p.Command, ...], dot_reply: bytes, state: p.State
) -> None:
    conn = in_body()
    conn.send(p.EndOfData())
    for command in sent_ahead:
        conn.send(command)
    assert conn.state is state
    (event,) = events(conn, dot_reply)
    assert isinstance(event, p.ServerReply)
    assert event.stage is Stage.DATA_END and event.command == p.EndOfData()
    assert conn.state is state  # not READY: the next MAIL is already out
    assert conn.awaiting_replies == len(sent_ahead)


def test_replies_after_the_dot_are_matched_in_order() -> None:
    conn = in_body()
    for command in (
        p.EndOfData(),
        p.MailFrom("c@example.org"),
        p.RcptTo("d@example.org"),
        p.RcptTo("e@example.org"),
        p.Data(),
    ):
        conn.send(command)
    got = events(
        conn,
        b"250 2.0.0 queued as 1\r\n250 2.1.0 ok\r\n250 2.1.5 ok\r\n"
        b"550 5.1.1 no such user\r\n354 go ahead\r\n",
    )
    assert [(e.stage, e.command, e.reply.code) for e in got if isinstance(e, p.ServerReply)] == [
        (Stage.DATA_END, p.EndOfData(), 250),
        (Stage.MAIL, p.MailFrom("c@example.org"), 250),
        (Stage.RCPT, p.RcptTo("d@example.org"), 250),
        (Stage.RCPT, p.RcptTo("e@example.org"), 550),
        (Stage.DATA, p.Data(), 354),
    ]
    assert conn.state is p.State.BODY
    # The second message's own body and "." then end in READY as usual.
    assert conn.send(p.BodyChunk(b".second\r\n")) == b"..second\r\n"
    assert conn.send(p.EndOfData()) == b".\r\n"
    events(conn, b"250 2.0.0 queued as 2\r\n")
    assert conn.state is p.State.READY
    assert conn.awaiting_replies == 0


def test_a_refused_mail_after_the_dot_ends_that_transaction_only() -> None:
    conn = in_body()
    for command in (p.EndOfData(), p.MailFrom("c@example.org")):
        conn.send(command)
    events(conn, b"250 2.0.0 queued\r\n")
    assert conn.state is p.State.MAIL
    events(conn, b"451 4.3.0 try later\r\n")
    assert conn.state is p.State.READY
    assert conn.send(p.MailFrom("c@example.org")) == b"MAIL FROM:<c@example.org>\r\n"


def test_check_envelope_refuses_what_mail_or_rcpt_would() -> None:
    p.check_envelope("", ["b@example.org"], smtputf8=False)  # the null sender is allowed
    p.check_envelope("ü@example.org", ["é@example.org"], smtputf8=True)
    for sender, recipients in (
        ("a@example.org", [""]),
        ("a@example.org>\r\nRSET", ["b@example.org"]),
        ("a@example.org", ["b@example.org", "c@example.org>\r\nDATA"]),
        ("ü@example.org", ["b@example.org"]),
        ("a@example.org", ["é@example.org"]),
    ):
        with pytest.raises(LocalProtocolError):
            p.check_envelope(sender, recipients, smtputf8=False)


# A message as the outbox queues one: CRLF lines, some of them starting with ".".
_crlf_messages = st.builds(
    lambda lines, end: b"\r\n".join(lines) + (b"\r\n" if end else b""),
    st.lists(st.sampled_from([b"", b".", b"..", b".x", b"text", b"a.b", b" .", b"end."])),
    st.booleans(),
)


@given(_crlf_messages | st.binary(max_size=300))
def test_a_planned_message_goes_out_as_the_encoder_sends_it(data: bytes) -> None:
    """A plan doubles the dots that start lines and nothing else; a message
    that needs more (another line end) has no plan."""
    plan = p.plan_data(data)
    starts = [0] + [at + 2 for at in range(len(data)) if data.startswith(b"\r\n", at)]
    dots = tuple(at for at in starts if data[at : at + 1] == b".")
    other_line_ends = b"\r" in data.replace(b"\r\n", b"") or b"\n" in data.replace(b"\r\n", b"")
    if other_line_ends or len(dots) > p.MAX_PLANNED_DOTS:
        assert plan is None
        return
    assert plan == dots
    encoder = p.DataEncoder()
    conn = after_354()
    out = conn.send(p.EncodedChunk(encoder.encode_planned(data, plan), encoder))
    assert out + conn.send(p.EndOfData()) == _reference_encoding(data)


def test_a_plan_names_the_lines_that_start_with_a_dot() -> None:
    assert p.plan_data(b".a\r\nb\r\n.\r\n") == (0, 7)
    assert p.plan_data(b"no dots\r\n") == ()
    assert p.plan_data(b"") == ()
    for needs_more in (b"a\nb\r\n", b"a\rb\r\n", b"ends in CR\r", b"\n.x"):
        assert p.plan_data(needs_more) is None
    many = b"".join(b".%d\r\n" % n for n in range(p.MAX_PLANNED_DOTS))
    assert len(p.plan_data(many) or ()) == p.MAX_PLANNED_DOTS
    assert p.plan_data(many + b".one more\r\n") is None
