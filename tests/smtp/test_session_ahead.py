"""The next message's MAIL, RCPT and DATA sent with this one's final "." (RFC 2920 §3.1).

Against aiosmtpd on loopback, with PIPELINING added to its EHLO reply (aiosmtpd
reads pipelined input correctly but does not advertise the extension). Where the
bytes themselves matter, a small recording proxy sits between the session and
the server and keeps every chunk it reads, in each direction, in one timeline.
"""

from __future__ import annotations

import contextlib
import io
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest

from mailer_gui.smtp.errors import ConnectionLost, MessageRefused, SmtpError
from mailer_gui.smtp.session import CHUNK_SIZE, Envelope, MessageResult, RecipientStatus, Session
from mailer_gui.smtp.settings import Security, ServerSettings
from mailer_gui.smtp.transcript import Transcript
from tests.servers.aiosmtpd_server import AiosmtpdServer

HOST = "127.0.0.1"
IO_TIMEOUT = 10.0  # any single read or write in the proxy
AHEAD_NOTE = "sent with the end of the previous message (pipelining)"

FIRST = Envelope("first@example.org", ("one@example.org",))
SECOND = Envelope("second@example.org", ("two@example.org", "three@example.org"))
THIRD = Envelope("third@example.org", ("four@example.org",))
BODY_1 = b"From: first@example.org\r\nSubject: 1\r\n\r\nThe first message.\r\n.dot line\r\n"
BODY_2 = b"From: second@example.org\r\nSubject: 2\r\n\r\nThe second message.\r\n"
BODY_3 = b"From: third@example.org\r\nSubject: 3\r\n\r\nThe third message.\r\n"


def pipelining(server: AiosmtpdServer) -> AiosmtpdServer:
    """Make ``server`` advertise PIPELINING (as bench_roundtrips.py does in handle_EHLO).

    aiosmtpd looks the hooks up on the handler for each new connection, so an
    attribute set now applies to every later session.
    """
    handler = server._handler
    advertised = handler.handle_EHLO

    async def handle_EHLO(smtp, session, envelope, hostname: str, responses: list[str]):
        responses = await advertised(smtp, session, envelope, hostname, responses)
        return [*responses[:-1], "250-PIPELINING", responses[-1]]

    handler.handle_EHLO = handle_EHLO  # type: ignore[method-assign]
    return server


def one_recipient_per_transaction(aiosmtpd_factory) -> AiosmtpdServer:
    """A pipelining server that answers 452 to every RCPT after a transaction's first."""
    count = {"rcpt": 0}

    def on_mail(address: str, options: list[str]) -> None:
        count["rcpt"] = 0

    def on_rcpt(address: str, options: list[str]) -> str | None:
        count["rcpt"] += 1
        return "452 4.5.3 Too many recipients" if count["rcpt"] > 1 else None

    return pipelining(aiosmtpd_factory(on_mail=on_mail, on_rcpt=on_rcpt))


def settings(port: int) -> ServerSettings:
    return ServerSettings(host=HOST, port=port, security=Security.NONE)


def send(
    session: Session,
    envelope: Envelope,
    body: bytes,
    following: tuple[Envelope, int] | None = None,
) -> MessageResult:
    return session.send_message(envelope, io.BytesIO(body), len(body), following=following)


def client_lines(transcript: Transcript) -> list[str]:
    return [r.render() for r in transcript.records]


def crlf(data: bytes) -> bytes:
    return data.replace(b"\r\n", b"\n")


# ------------------------------------------------------------------ the proxy

C2S = "client->server"
S2C = "server->client"


@dataclass
class Link:
    """One proxied connection."""

    server_closed: threading.Event = field(default_factory=threading.Event)


class RecordingProxy:
    """127.0.0.1:port -> upstream; every chunk read is kept, with its direction, in order.

    One lock, so one timeline for both directions. The proxy forwards at once
    (no delay). ``stop()`` ends every thread (each read is bounded by IO_TIMEOUT
    in any case).
    """

    def __init__(self, upstream_port: int) -> None:
        self.upstream = (HOST, upstream_port)
        self.chunks: list[tuple[str, bytes]] = []
        self.links: list[Link] = []
        self._lock = threading.Lock()
        self._listener = socket.create_server((HOST, 0))
        self._listener.settimeout(0.1)
        self.port: int = self._listener.getsockname()[1]
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._sockets: list[socket.socket] = []
        self._start(self._accept, "proxy-accept")

    def _start(self, target, name: str, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                server = socket.create_connection(self.upstream, timeout=IO_TIMEOUT)
            except OSError:
                client.close()
                continue
            link = Link()
            with self._lock:
                self.links.append(link)
            for sock in (client, server):
                sock.settimeout(IO_TIMEOUT)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                self._sockets.append(sock)
            self._start(self._pump, "proxy-c2s", client, server, C2S, link)
            self._start(self._pump, "proxy-s2c", server, client, S2C, link)

    def _pump(self, source: socket.socket, sink: socket.socket, direction: str, link: Link) -> None:
        try:
            while True:
                try:
                    data = source.recv(65536)
                except OSError:
                    data = b""
                if not data:
                    with contextlib.suppress(OSError):
                        sink.shutdown(socket.SHUT_WR)
                    return
                with self._lock:
                    self.chunks.append((direction, data))
                sink.sendall(data)
        except OSError:
            with contextlib.suppress(OSError):
                source.shutdown(socket.SHUT_RDWR)
        finally:
            if direction == S2C:
                link.server_closed.set()

    def client_chunks(self) -> list[bytes]:
        with self._lock:
            return [data for direction, data in self.chunks if direction == C2S]

    def client_bytes(self) -> bytes:
        return b"".join(self.client_chunks())

    def wait_until_server_closed(self, timeout: float = 10.0) -> None:
        """The server ended the (single) proxied connection: it has handled all it got."""
        with self._lock:
            (link,) = self.links
        assert link.server_closed.wait(timeout), "the server kept the connection open"

    def stop(self) -> None:
        self._stop.set()
        self._listener.close()
        for sock in self._sockets:  # wakes a pump blocked in recv()
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        for thread in self._threads:
            thread.join(timeout=5)


@pytest.fixture
def proxy_to() -> Iterator[Callable[[int], RecordingProxy]]:
    started: list[RecordingProxy] = []

    def make(port: int) -> RecordingProxy:
        proxy = RecordingProxy(port)
        started.append(proxy)
        return proxy

    try:
        yield make
    finally:
        for proxy in started:
            proxy.stop()


# ------------------------------------------------------------------- the tests


def test_two_messages_each_with_its_own_envelope_and_transcript(aiosmtpd_factory) -> None:
    server = pipelining(aiosmtpd_factory())
    first_log, second_log = Transcript(), Transcript()
    with Session(settings(server.port), transcript=first_log) as session:
        assert "PIPELINING" in session.extensions
        assert session.sent_ahead is None
        first = send(session, FIRST, BODY_1, following=(SECOND, len(BODY_2)))
        assert session.sent_ahead == SECOND
        assert session.usable
        session.transcript = second_log  # as the runner does for each message
        second = send(session, SECOND, BODY_2)
        assert session.sent_ahead is None
    assert first.outcome == "sent" and second.outcome == "sent"
    assert [r.address for r in second.recipients] == list(SECOND.recipients)

    received = server.wait_for_messages(2)
    assert [(m.mail_from, m.rcpt_tos) for m in received] == [
        ("first@example.org", ["one@example.org"]),
        ("second@example.org", ["two@example.org", "three@example.org"]),
    ]
    assert crlf(received[0].content) == crlf(BODY_1)
    assert crlf(received[1].content) == crlf(BODY_2)

    # The second message's commands are in its own log, after the note, and
    # before the replies to them; none of them is in the first message's log.
    first_lines, lines = client_lines(first_log), client_lines(second_log)
    assert "C: MAIL FROM:<first@example.org> SIZE=" + str(len(BODY_1)) in first_lines
    assert not any("second@example.org" in line or "two@" in line for line in first_lines)
    assert sum(line.startswith("C: DATA") for line in first_lines) == 1
    note = lines.index(f"* {AHEAD_NOTE}")
    assert lines[note + 1 : note + 5] == [
        f"C: MAIL FROM:<second@example.org> SIZE={len(BODY_2)}",
        "C: RCPT TO:<two@example.org>",
        "C: RCPT TO:<three@example.org>",
        "C: DATA",
    ]
    assert lines[note + 5].startswith("S: 250")  # the MAIL reply, read for this message
    assert AHEAD_NOTE not in first_log.render()


def test_the_final_dot_and_the_next_mail_leave_in_one_write(aiosmtpd_factory, proxy_to) -> None:
    server = pipelining(aiosmtpd_factory())
    proxy = proxy_to(server.port)
    with Session(settings(proxy.port)) as session:
        assert send(session, FIRST, BODY_1, following=(SECOND, len(BODY_2))).outcome == "sent"
        assert send(session, SECOND, BODY_2).outcome == "sent"
        # Without `following` the next MAIL waits for the "." reply: the contrast.
        assert send(session, THIRD, BODY_3).outcome == "sent"
    assert len(server.wait_for_messages(3)) == 3

    chunks = proxy.client_chunks()
    (ahead,) = [c for c in chunks if b"MAIL FROM:<second@example.org>" in c]
    # One write: the end of the first message, its ".", then the second's group.
    first_end = BODY_1[BODY_1.index(b"The first") :].replace(b"\r\n.dot", b"\r\n..dot") + b".\r\n"
    group = (
        f"MAIL FROM:<second@example.org> SIZE={len(BODY_2)}\r\n"
        "RCPT TO:<two@example.org>\r\nRCPT TO:<three@example.org>\r\nDATA\r\n"
    ).encode()
    assert ahead.endswith(first_end + group)
    (third,) = [c for c in chunks if b"MAIL FROM:<third@example.org>" in c]
    assert third.startswith(b"MAIL FROM:<third@example.org>")  # the "." went before, alone
    assert not any(b"MAIL FROM:<third" in c and b".\r\n" in c for c in chunks)


def test_a_different_envelope_after_sending_ahead_needs_a_new_connection(
    aiosmtpd_factory, proxy_to
) -> None:
    server = pipelining(aiosmtpd_factory())
    proxy = proxy_to(server.port)
    session = Session(settings(proxy.port))
    session.open()
    try:
        send(session, FIRST, BODY_1, following=(SECOND, len(BODY_2)))
        assert session.sent_ahead == SECOND
        with pytest.raises(SmtpError) as info:
            send(session, THIRD, BODY_3)
        assert isinstance(info.value, ConnectionLost)
        assert not session.usable
        with pytest.raises(ConnectionLost):  # and it stays unusable
            send(session, SECOND, BODY_2)
    finally:
        session.close()
    proxy.wait_until_server_closed()
    # The server got the first message only: nothing for THIRD, and the DATA
    # phase it had opened for SECOND ended with the connection, not with a ".".
    assert [m.mail_from for m in server.messages] == ["first@example.org"]
    sent = proxy.client_bytes()
    assert sent.endswith(b"RCPT TO:<three@example.org>\r\nDATA\r\n")
    assert b"third@example.org" not in sent and b"The third" not in sent


def test_close_after_sending_ahead_drops_the_connection_without_quit(
    aiosmtpd_factory, proxy_to
) -> None:
    server = pipelining(aiosmtpd_factory())
    proxy = proxy_to(server.port)
    transcript = Transcript()
    session = Session(settings(proxy.port), transcript=transcript)
    session.open()
    assert send(session, FIRST, BODY_1, following=(SECOND, len(BODY_2))).outcome == "sent"
    session.close()
    proxy.wait_until_server_closed()
    # QUIT in the DATA phase would be a line of a message; a "." would end an
    # empty one. Neither went: the last bytes are the second message's DATA.
    assert [m.mail_from for m in server.messages] == ["first@example.org"]
    sent = proxy.client_bytes()
    assert sent.endswith(b"RCPT TO:<three@example.org>\r\nDATA\r\n")
    assert b"QUIT" not in sent
    assert "C: QUIT" not in transcript.render()


def test_no_sending_ahead_without_pipelining(aiosmtpd_factory) -> None:
    server = aiosmtpd_factory()  # aiosmtpd does not advertise PIPELINING by itself
    second_log = Transcript()
    with Session(settings(server.port)) as session:
        assert "PIPELINING" not in session.extensions
        first = send(session, FIRST, BODY_1, following=(SECOND, len(BODY_2)))
        assert session.sent_ahead is None
        session.transcript = second_log
        second = send(session, SECOND, BODY_2)
    assert (first.outcome, second.outcome) == ("sent", "sent")
    received = server.wait_for_messages(2)
    assert [m.mail_from for m in received] == ["first@example.org", "second@example.org"]
    assert AHEAD_NOTE not in second_log.render()
    assert "C: MAIL FROM:<second@example.org>" in second_log.render()


def test_no_sending_ahead_after_a_452_and_the_rest_goes_in_a_second_transaction(
    aiosmtpd_factory, proxy_to
) -> None:
    server = one_recipient_per_transaction(aiosmtpd_factory)
    proxy = proxy_to(server.port)
    two = Envelope("first@example.org", ("one@example.org", "more@example.org"))
    first_log = Transcript()
    with Session(settings(proxy.port), transcript=first_log) as session:
        first = send(session, two, BODY_1, following=(THIRD, len(BODY_3)))
        # The 452 transaction's "." went alone; the one that finished the
        # message carried THIRD's commands.
        assert session.sent_ahead == THIRD
        session.transcript = Transcript()
        third = send(session, THIRD, BODY_3)
    assert first.outcome == "sent" and third.outcome == "sent"
    assert [r.status for r in first.recipients] == [RecipientStatus.ACCEPTED] * 2

    received = server.wait_for_messages(3)
    assert [(m.mail_from, m.rcpt_tos) for m in received] == [
        ("first@example.org", ["one@example.org"]),
        ("first@example.org", ["more@example.org"]),
        ("third@example.org", ["four@example.org"]),
    ]
    assert crlf(received[0].content) == crlf(received[1].content) == crlf(BODY_1)

    # What went after the first "." was the same message again, not THIRD.
    sent = proxy.client_bytes()
    first_dot = sent.index(b"..dot line\r\n.\r\n") + len(b"..dot line\r\n.\r\n")
    assert sent[first_dot:].startswith(b"MAIL FROM:<first@example.org>")
    assert sent.index(b"MAIL FROM:<third@example.org>") > sent.index(b"RCPT TO:<more@")
    assert [line for line in client_lines(first_log) if line.startswith("C: MAIL")] == [
        f"C: MAIL FROM:<first@example.org> SIZE={len(BODY_1)}"
    ] * 2


def test_no_sending_ahead_of_a_message_too_big_for_the_server(aiosmtpd_factory) -> None:
    server = pipelining(aiosmtpd_factory(data_size_limit=1000))
    transcript = Transcript()
    big = b"x" * 5000
    with Session(settings(server.port), transcript=transcript) as session:
        assert session.size_limit == 1000
        first = send(session, FIRST, BODY_1, following=(SECOND, len(big)))
        assert session.sent_ahead is None
        with pytest.raises(MessageRefused, match=r"accepts at most .*\(SIZE 1000\)"):
            send(session, SECOND, big)
        assert session.usable  # refused before any byte: the connection goes on
        assert send(session, THIRD, BODY_3).outcome == "sent"
    assert first.outcome == "sent"
    received = server.wait_for_messages(2)
    assert [m.mail_from for m in received] == ["first@example.org", "third@example.org"]
    assert "second@example.org" not in transcript.render()


def test_a_write_that_breaks_after_the_final_dot_is_uncertain(aiosmtpd_factory) -> None:
    """The write holding the "." and the next message's commands fails after the
    "." went out (the connection reset on the trailing bytes). The server has
    the message, so the result must be uncertain, never a plain retry."""
    server = pipelining(aiosmtpd_factory())
    with Session(settings(server.port)) as session:
        transport = session._require_transport()
        real_write = transport.write

        def write(data: bytes, *, timeout: float) -> None:
            end = data.find(b"\r\n.\r\nMAIL FROM:")
            if end < 0:
                real_write(data, timeout=timeout)
                return
            real_write(data[: end + 5], timeout=timeout)  # up to and with the "."
            raise ConnectionLost("The connection to 127.0.0.1 was lost (reset).")

        transport.write = write  # type: ignore[method-assign]
        result = send(session, FIRST, BODY_1, following=(SECOND, len(BODY_2)))
        assert result.uncertain
        assert result.error is not None
        assert {r.status for r in result.recipients} == {RecipientStatus.DEFERRED}
        assert not session.usable
    received = server.wait_for_messages(1)
    assert crlf(received[0].content) == crlf(BODY_1)  # it did arrive


# ------------------------------------- the next message's start read ahead


class ReadLog(io.BytesIO):
    """A message file that notes where each read started."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.reads: list[int] = []

    def read(self, size: int | None = -1) -> bytes:
        self.reads.append(self.tell())
        return super().read(size)


# Longer than one read, with a CR and its LF on either side of the first read's
# end and a dot to double on each side of it, a bare LF and a last line
# without its line end.
_HEAD = b"From: second@example.org\r\nSubject: 2\r\n\r\n.dot at the start\r\n"
_LINE = b"y" * 70 + b"\r\n"
_FILL = _LINE * ((CHUNK_SIZE - len(_HEAD)) // len(_LINE) - 1)
_FILL += b"z" * (CHUNK_SIZE - 1 - len(_HEAD) - len(_FILL))  # up to just before the CR
LONG = _HEAD + _FILL + b"\r\n.after the cut\r\nbare\nend"
LONG_WIRE = (
    _HEAD.replace(b"\r\n.dot", b"\r\n..dot")
    + _FILL
    + b"\r\n..after the cut\r\nbare\r\nend\r\n.\r\n"
)
assert LONG[CHUNK_SIZE - 1 : CHUNK_SIZE + 1] == b"\r\n"


def send_preparing(
    session: Session, envelope: Envelope, body: bytes, following: Envelope, following_body
) -> tuple[MessageResult, list[int]]:
    """Send ``body`` with ``following``'s commands ahead, and prepare ``following_body``
    when its final "." is out, as the runner does; also where that left it."""
    positions: list[int] = []

    def progress(sent: int, total: int) -> None:
        if sent == total:
            session.prepare_next(following_body)
            positions.append(following_body.tell())

    result = session.send_message(
        envelope,
        io.BytesIO(body),
        len(body),
        progress=progress,
        following=(following, len(following_body.getvalue())),
    )
    return result, positions


def test_the_next_message_is_read_and_encoded_while_the_server_works(
    aiosmtpd_factory, proxy_to
) -> None:
    server = pipelining(aiosmtpd_factory())
    proxy = proxy_to(server.port)
    second_body = ReadLog(LONG)
    with Session(settings(proxy.port)) as session:
        first, positions = send_preparing(session, FIRST, BODY_1, SECOND, second_body)
        # Its first read happened then, before the 354 to its DATA was read,
        # and the file is back at the message's start.
        assert second_body.reads == [0]
        assert positions == [0]
        second = session.send_message(SECOND, second_body, len(LONG))
    assert (first.outcome, second.outcome) == ("sent", "sent")
    assert second_body.reads[0] == 0 and second_body.reads.count(0) == 1  # not read twice
    received = server.wait_for_messages(2)
    assert crlf(received[1].content) == crlf(LONG.replace(b"bare\n", b"bare\r\n") + b"\r\n")
    proxy_bytes = proxy.client_bytes()
    group_end = proxy_bytes.index(b"RCPT TO:<three@example.org>\r\nDATA\r\n") + len(
        b"RCPT TO:<three@example.org>\r\nDATA\r\n"
    )
    assert proxy_bytes[group_end:].startswith(LONG_WIRE)


def test_a_prepared_start_is_read_again_for_a_second_transaction(
    aiosmtpd_factory, proxy_to
) -> None:
    """A 452 sends the rest of the recipients the same message again, from its start."""
    server = one_recipient_per_transaction(aiosmtpd_factory)
    second_body = ReadLog(LONG)
    with Session(settings(server.port)) as session:
        first, _ = send_preparing(session, FIRST, BODY_1, SECOND, second_body)
        second = session.send_message(SECOND, second_body, len(LONG))
    assert first.outcome == second.outcome == "sent"
    assert [r.status for r in second.recipients] == [RecipientStatus.ACCEPTED] * 2
    received = server.wait_for_messages(3)
    assert [m.rcpt_tos for m in received[1:]] == [["two@example.org"], ["three@example.org"]]
    expected = crlf(LONG.replace(b"bare\n", b"bare\r\n") + b"\r\n")
    assert crlf(received[1].content) == crlf(received[2].content) == expected
    assert second_body.reads.count(0) == 2  # read ahead once, then again from the start


def test_nothing_is_read_ahead_when_no_commands_went_ahead(aiosmtpd_factory) -> None:
    server = aiosmtpd_factory()  # no PIPELINING: the next MAIL waits for the "."
    second_body = ReadLog(BODY_2)
    with Session(settings(server.port)) as session:
        first, positions = send_preparing(session, FIRST, BODY_1, SECOND, second_body)
        assert session.sent_ahead is None
        assert positions == [0] and second_body.reads == []
        second = session.send_message(SECOND, second_body, len(BODY_2))
    assert (first.outcome, second.outcome) == ("sent", "sent")
    assert crlf(server.wait_for_messages(2)[1].content) == crlf(BODY_2)


# ------------------------------------ an earlier transaction still open


@pytest.mark.parametrize(
    "rset_reply", ["421 4.7.0 Error: too many errors", "500 5.5.2 Error: bad syntax"]
)
def test_a_refused_rset_defers_the_next_message_instead_of_failing_it(
    aiosmtpd_factory, rset_reply: str
) -> None:
    """The first message's only RCPT and its DATA were refused, so the server
    still holds its MAIL and the next message starts with RSET. When that RSET
    is refused, the next message is tried again later on a new connection:
    its MAIL would only get "503 nested MAIL command", a permanent refusal."""
    server = pipelining(aiosmtpd_factory(rcpt_replies={"bad@example.org": "450 4.2.0 Busy"}))

    async def handle_RSET(smtp, session, envelope) -> str:
        return rset_reply

    server._handler.handle_RSET = handle_RSET  # type: ignore[attr-defined]
    bad = Envelope("first@example.org", ("bad@example.org",))
    with Session(settings(server.port)) as session:
        first = send(session, bad, BODY_1)
        assert first.outcome == "deferred"
        second = send(session, SECOND, BODY_2)
        assert not session.usable
    assert second.outcome == "deferred"
    assert second.error is not None and second.error.transient
    assert second.error.reply is not None and str(second.error.reply) == rset_reply
    assert server.messages == []


@pytest.mark.parametrize("staged_for", ["third", "another"])
def test_the_commands_after_a_prepared_message_are_built_with_it(
    aiosmtpd_factory, monkeypatch, staged_for: str
) -> None:
    """While the server works on the first message, the second is prepared
    together with the commands for the third that go with its final ".":
    built then, not again, when the third is what the second names as
    ``following``; built anew when it names another envelope."""
    server = pipelining(aiosmtpd_factory())
    another = Envelope("other@example.org", ("five@example.org",))
    built: list[Envelope] = []
    stage = Session._stage

    def counting_stage(session: Session, envelope: Envelope, size: int):
        built.append(envelope)
        return stage(session, envelope, size)

    monkeypatch.setattr(Session, "_stage", counting_stage)
    third_log = Transcript()
    with Session(settings(server.port)) as session:
        second_body = io.BytesIO(BODY_2)

        def progress(sent: int, total: int) -> None:
            if sent == total:
                staged = THIRD if staged_for == "third" else another
                session.prepare_next(second_body, None, (staged, len(BODY_3)))

        first = session.send_message(
            FIRST, io.BytesIO(BODY_1), len(BODY_1), progress=progress,
            following=(SECOND, len(BODY_2)),
        )  # fmt: skip
        second = session.send_message(
            SECOND, second_body, len(BODY_2), following=(THIRD, len(BODY_3))
        )
        session.transcript = third_log
        third = send(session, THIRD, BODY_3)
    assert [r.outcome for r in (first, second, third)] == ["sent"] * 3
    # FIRST's commands went with nothing before them: built when sent.
    expected = [SECOND, THIRD] if staged_for == "third" else [SECOND, another, THIRD]
    assert built == expected
    received = server.wait_for_messages(3)
    assert [(m.mail_from, m.rcpt_tos) for m in received] == [
        ("first@example.org", ["one@example.org"]),
        ("second@example.org", ["two@example.org", "three@example.org"]),
        ("third@example.org", ["four@example.org"]),
    ]
    assert [crlf(m.content) for m in received] == [crlf(BODY_1), crlf(BODY_2), crlf(BODY_3)]
    lines = client_lines(third_log)
    note = lines.index(f"* {AHEAD_NOTE}")
    assert lines[note + 1 : note + 4] == [
        f"C: MAIL FROM:<third@example.org> SIZE={len(BODY_3)}",
        "C: RCPT TO:<four@example.org>",
        "C: DATA",
    ]


def fail_first_data(server: AiosmtpdServer) -> AiosmtpdServer:
    """The server's DATA handler fails for the first message, as aiosmtpd's
    Maildir handler does when its folder is missing: aiosmtpd answers the "."
    with 500 and then still holds that transaction, answering the next MAIL
    with 503 "nested MAIL command"."""
    calls = {"data": 0}

    def on_data(message) -> str | None:
        calls["data"] += 1
        if calls["data"] == 1:
            raise FileNotFoundError("the mailbox folder is missing")
        return None

    server._handler.on_data = on_data
    return server


def test_a_server_still_holding_the_last_transaction_is_reset(aiosmtpd_factory) -> None:
    """503 to MAIL is the server's confusion, not the next message's fault:
    Mailer resets the transaction and sends that message at once."""
    server = fail_first_data(aiosmtpd_factory())
    second_log = Transcript()
    with Session(settings(server.port)) as session:
        first = send(session, FIRST, BODY_1)
        session.transcript = second_log
        second = send(session, SECOND, BODY_2)
        assert session.usable
    assert first.outcome == "rejected"
    assert first.recipients[0].reply is not None and first.recipients[0].reply.code == 500
    assert second.outcome == "sent", second.error_text
    lines = client_lines(second_log)
    assert "S: 503 Error: nested MAIL command" in lines
    assert lines.index("C: RSET") > lines.index("S: 503 Error: nested MAIL command")
    assert any("held an earlier transaction" in line for line in lines)
    received = server.wait_for_messages(1)
    assert [(m.mail_from, m.rcpt_tos) for m in received] == [
        ("second@example.org", ["two@example.org", "three@example.org"])
    ]


def test_a_held_transaction_that_takes_pipelined_recipients_gets_no_message(
    aiosmtpd_factory,
) -> None:
    """With PIPELINING, the server that refused MAIL as nested took the RCPTs
    and DATA sent with it into the transaction it held, and answered 354:
    whatever followed would go with another message's envelope. Mailer sends
    nothing, drops the connection, and the message goes on a new one."""
    server = pipelining(fail_first_data(aiosmtpd_factory()))
    with Session(settings(server.port)) as session:
        first = send(session, FIRST, BODY_1, following=(SECOND, len(BODY_2)))
        second = send(session, SECOND, BODY_2)
        assert not session.usable
    assert (first.outcome, second.outcome) == ("rejected", "deferred")
    assert second.error is not None and "sent nothing of the message" in second.error.message
    assert server.messages == []  # nothing reached anyone with the wrong envelope
    with Session(settings(server.port)) as session:
        assert send(session, SECOND, BODY_2).outcome == "sent"
    received = server.wait_for_messages(1)
    assert [(m.mail_from, m.rcpt_tos) for m in received] == [
        ("second@example.org", ["two@example.org", "three@example.org"])
    ]
    assert crlf(received[0].content) == crlf(BODY_2)


def test_a_server_that_refuses_every_mail_as_nested_defers_the_message(aiosmtpd_factory) -> None:
    server = aiosmtpd_factory(on_mail=lambda address, options: "503 5.5.1 Error: nested MAIL")
    with Session(settings(server.port)) as session:
        result = send(session, FIRST, BODY_1)
        assert not session.usable  # the next attempt goes on a new connection
    assert result.outcome == "deferred"
    assert result.error is not None and "even after a reset" in result.error.message
    assert [r.status for r in result.recipients] == [RecipientStatus.DEFERRED]


def scripted_server(replies: dict[bytes, bytes], heard: list[bytes]) -> socket.socket:
    """A one-connection SMTP server on loopback that answers each line starting
    with a key of ``replies`` with its value (keys tried in order) and records
    everything it reads in ``heard``; for what no real server here does."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(5)

    def serve() -> None:
        with contextlib.closing(listener):
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                return
        with conn:
            conn.settimeout(5)
            conn.sendall(b"220 scripted\r\n")
            buffer = b""
            with contextlib.suppress(OSError):
                while chunk := conn.recv(65536):
                    heard.append(chunk)
                    buffer += chunk
                    while b"\r\n" in buffer:
                        line, buffer = buffer.split(b"\r\n", 1)
                        for start, reply in replies.items():
                            if line.startswith(start):
                                conn.sendall(reply)
                                break

    threading.Thread(target=serve, daemon=True).start()
    return listener


def test_a_354_after_a_refused_mail_gets_no_dot() -> None:
    """A server that refused MAIL but asked for the text of the pipelined DATA
    holds a transaction this connection did not start: Mailer sends no ".",
    which could end it as a message to someone, and drops the connection."""
    heard: list[bytes] = []
    listener = scripted_server(
        {
            b"EHLO": b"250-scripted\r\n250 PIPELINING\r\n",
            b"MAIL": b"550 5.7.1 Sender refused\r\n",
            b"RCPT": b"250 2.1.5 Ok\r\n",
            b"DATA": b"354 Go ahead\r\n",
            b".": b"250 2.0.0 Queued\r\n",
        },
        heard,
    )
    port = listener.getsockname()[1]
    with Session(settings(port)) as session:
        result = send(session, FIRST, BODY_1)
        assert not session.usable
    assert result.outcome == "rejected"  # the sender refused, as the server said
    assert result.recipients[0].reply is not None and result.recipients[0].reply.code == 550
    sent = b"".join(heard)
    assert b"DATA\r\n" in sent
    assert b"\r\n.\r\n" not in sent and not sent.startswith(b".\r\n")
    assert b"The first message." not in sent
