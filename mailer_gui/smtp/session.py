"""One SMTP connection's life: greet, EHLO, TLS, AUTH, messages, QUIT.

The session drives `protocol.ClientConnection` over a `transport.Transport`,
writes every line to the `Transcript` as it goes, and reports per-recipient
results. Several messages may go over one connection. The message body is
streamed from a file in chunks, so memory stays bounded whatever the size;
`abort()` from another thread closes the socket and the send raises
`Cancelled`.
"""

from __future__ import annotations

import enum
import ipaddress
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import BinaryIO, NamedTuple

from mailer_gui.sizes import human_size
from mailer_gui.smtp import auth as sasl
from mailer_gui.smtp import protocol as p
from mailer_gui.smtp.certinfo import CertificateInfo
from mailer_gui.smtp.errors import (
    AuthenticationError,
    Cancelled,
    ConnectionLost,
    MessageRefused,
    RemoteProtocolError,
    ReplyError,
    SecurityPolicyError,
    SmtpError,
    TlsError,
)
from mailer_gui.smtp.replies import Reply, Stage, explain
from mailer_gui.smtp.settings import AuthMethod, Security, ServerSettings
from mailer_gui.smtp.transcript import Transcript
from mailer_gui.smtp.transport import Transport

CHUNK_SIZE = 64 * 1024
_NO_CERTIFICATE = "0" * 64  # no certificate hashes to this
_DATA = p.Data()
_END_OF_DATA = p.EndOfData()
Progress = Callable[[int, int], None]
CredentialsProvider = Callable[[], sasl.Credentials]


class RecipientStatus(enum.Enum):
    ACCEPTED = "accepted"
    DEFERRED = "deferred"  # 4xx or a connection problem: try again later
    REJECTED = "rejected"  # 5xx: will not be delivered

    # Members are singletons, equal only to themselves: hashed by identity, in
    # C. Enum's own __hash__ is Python code, and several are hashed per message.
    __hash__ = object.__hash__


# Envelope and the results are named tuples, like the protocol's records:
# immutable, and made for every message at thousands of messages a second,
# where frozen dataclasses cost several times as much to create.


class Envelope(NamedTuple):
    sender: str
    recipients: tuple[str, ...]
    smtputf8: bool = False  # an address or header needs SMTPUTF8
    eight_bit: bool = False  # the body has 8-bit bytes (BODY=8BITMIME)
    dsn_notify: tuple[str, ...] = ()
    dsn_ret: str | None = None
    dsn_envid: str | None = None


class RecipientResult(NamedTuple):
    address: str
    status: RecipientStatus
    reply: Reply | None = None
    detail: str = ""  # when there is no reply: what happened instead
    # In a transaction whose final "." went out with no reply: it may have
    # arrived (status DEFERRED; the outbox keeps it as unknown, never retried
    # by itself).
    unconfirmed: bool = False

    @property
    def text(self) -> str:
        return self.reply.text if self.reply else self.detail


class MessageResult(NamedTuple):
    """What happened to one message on one connection."""

    recipients: tuple[RecipientResult, ...]
    reply: Reply | None = None  # the final "." reply, if one came
    error: SmtpError | None = None  # what ended the attempt early, if anything
    # The final "." went out but no reply came: the server may have taken the
    # message. Never resend silently (DESIGN.md, "uncertain").
    uncertain: bool = False
    sizes: tuple[int, int] = (0, 0)  # bytes sent, bytes total
    size_limit: int | None = None  # the server's SIZE, when it stated one
    # MAIL or DATA when its refusal ended the transaction for every recipient
    # still in it (what the server thinks of the sender or the session, not of
    # one recipient); None otherwise.
    refused_at: Stage | None = None

    def with_status(self, status: RecipientStatus) -> tuple[RecipientResult, ...]:
        return tuple(r for r in self.recipients if r.status is status)

    @property
    def error_text(self) -> str | None:
        """What ended the attempt, in the words kept and shown for the message.

        For an uncertain result, the unconfirmed recipients' words: the
        error's own end in "Mailer will try again", which it will not.
        """
        if self.uncertain:
            for r in self.recipients:
                if r.status is not RecipientStatus.ACCEPTED and r.text:
                    return r.text
        return self.error.message if self.error else None

    @property
    def outcome(self) -> str:
        """``sent`` | ``deferred`` | ``rejected`` | ``partial`` | ``uncertain``."""
        if self.uncertain:
            return "uncertain"
        statuses = {r.status for r in self.recipients}
        if statuses == {RecipientStatus.ACCEPTED}:
            return "sent"
        if RecipientStatus.ACCEPTED in statuses:
            return "partial"
        if RecipientStatus.DEFERRED in statuses:
            return "deferred"
        return "rejected"


class _EndMayHaveLeft(Exception):
    """The write holding the final "." and more after it failed part-way."""

    def __init__(self, error: SmtpError) -> None:
        super().__init__(error.message)
        self.error = error


class _Prepared(NamedTuple):
    """The start of the next message, read and encoded while the server worked."""

    body: BinaryIO
    start: int  # where in ``body`` the message starts
    length: int  # bytes of ``body`` that ``wire`` holds
    wire: bytes
    encoder: p.DataEncoder


class _Staged(NamedTuple):
    """A message's MAIL, RCPT and DATA, built before they are sent."""

    recipients: list[str]
    commands: tuple[p.Command, ...]  # MAIL, each RCPT, DATA
    wires: tuple[bytes, ...]  # their lines, as protocol.command_line makes them
    lines: list[str]  # for the transcript


@dataclass
class _SentAhead:
    """The next message's MAIL, RCPT and DATA, sent with this one's final "."."""

    envelope: Envelope
    recipients: list[str]
    mail: p.MailFrom
    rcpts: list[p.RcptTo]
    lines: list[str]  # for the next message's transcript, where they belong
    prepared: _Prepared | None = None  # see Session.prepare_next


def _status_of(reply: Reply) -> RecipientStatus:
    if reply.is_positive:
        return RecipientStatus.ACCEPTED
    return RecipientStatus.DEFERRED if reply.is_transient else RecipientStatus.REJECTED


def _address_literal(sock_ip: str) -> str:
    """EHLO name from our own address: ``[192.0.2.1]`` / ``[IPv6:2001:db8::1]``.

    An address literal needs no DNS and tells the server nothing about the
    computer's name.
    """
    try:
        ip = ipaddress.ip_address(sock_ip.split("%")[0])
    except ValueError:
        return "localhost"
    if ip.version == 6:
        if ip.ipv4_mapped:
            return f"[{ip.ipv4_mapped}]"
        return f"[IPv6:{ip}]"
    return f"[{ip}]"


class Session:
    """A connection to one submission server, used for one or more messages."""

    def __init__(
        self,
        settings: ServerSettings,
        *,
        transcript: Transcript | None = None,
        credentials: CredentialsProvider | None = None,
    ) -> None:
        self.settings = settings
        self.transcript = transcript or Transcript()
        self._credentials = credentials
        self._conn = p.ClientConnection()
        self._transport: Transport | None = None
        self._broken: SmtpError | None = None
        self._ahead: _SentAhead | None = None
        # The commands of the message after the next one, built by
        # prepare_next while the server worked: (envelope, size, staged).
        self._staged: tuple[Envelope, int, _Staged | None] | None = None
        self.messages_sent = 0
        self.ending: tuple[str, ...] = ()  # the recipients of the "." about to leave

    # ---------------------------------------------------------------- plumbing

    @property
    def extensions(self) -> dict[str, str]:
        return dict(self._conn.extensions)

    @property
    def size_limit(self) -> int | None:
        return self._conn.size_limit

    @property
    def usable(self) -> bool:
        """Open, and able to carry another message."""
        return self._transport is not None and self._broken is None

    @property
    def sent_ahead(self) -> Envelope | None:
        """The envelope whose MAIL, RCPT and DATA already went out with the last "."

        Only a `send_message` for that envelope may come next on this
        connection; anything else needs a new one.
        """
        return self._ahead.envelope if self._ahead is not None else None

    @property
    def tls_active(self) -> bool:
        return self._conn.tls_active

    @property
    def authenticated(self) -> bool:
        return self._conn.authenticated

    @property
    def auth_offered(self) -> tuple[str, ...]:
        """The AUTH mechanisms the server's last EHLO offered."""
        return self._conn.auth_mechanisms

    def _require_transport(self) -> Transport:
        if self._transport is None:
            raise ConnectionLost("The connection is not open.")
        return self._transport

    def _encode(self, commands: Sequence[p.Command]) -> tuple[bytes, list[str]]:
        """The bytes of a group of commands, and their lines for the transcript."""
        out = bytearray()
        lines: list[str] = []
        for command in commands:
            wire = self._conn.send(command)
            out += wire
            line = p.transcript_text(command, wire)
            if line is not None:
                lines.append(line)
        return bytes(out), lines

    def _send(self, *commands: p.Command, timeout: float | None = None) -> None:
        """Send one command, or a pipelined group, in one write."""
        data, lines = self._encode(commands)
        for line in lines:
            self.transcript.client(line)
        self._require_transport().write(data, timeout=timeout or self.settings.timeouts.command)

    def _next_reply(self, timeout: float | None = None) -> p.ServerReply:
        transport = self._require_transport()
        while True:
            event = self._conn.next_event()
            if isinstance(event, p.ServerReply):
                self._log_reply(event.reply)
                if event.reply.code == 421:
                    self._broken = ConnectionLost(
                        explain(event.reply, event.stage, host=self.settings.host).text,
                        reply=event.reply,
                        stage=event.stage,
                    )
                return event
            if isinstance(event, p.ConnectionClosed):
                # After a 421 the server said why it closed: that is the reason.
                if self._broken is None or self._broken.reply is None:
                    self._broken = ConnectionLost(
                        f"{self.settings.host} closed the connection without an answer. "
                        "Mailer will try again later."
                    )
                raise self._broken
            data = transport.read(timeout=timeout or self.settings.timeouts.command)
            self._conn.receive_data(data)

    def _log_reply(self, reply: Reply) -> None:
        enhanced = f"{reply.enhanced} " if reply.enhanced else ""
        last = len(reply.lines) - 1
        if not last:  # one line, as most replies are
            self.transcript.server(f"{reply.code} {enhanced}{reply.lines[0]}".rstrip())
            return
        for index, text in enumerate(reply.lines):
            separator = " " if index == last else "-"
            self.transcript.server(f"{reply.code}{separator}{enhanced}{text}".rstrip())

    def _fail(self, server_reply: p.ServerReply) -> ReplyError:
        reply, stage = server_reply.reply, server_reply.stage
        return ReplyError(
            explain(reply, stage, host=self.settings.host).text, reply=reply, stage=stage
        )

    # ------------------------------------------------------------------- open

    def open(self) -> None:
        """Connect, read the greeting, EHLO, TLS, and log in."""
        try:
            self._open()
        except TlsError as exc:
            if exc.unverified and exc.certificate is None:
                exc.certificate = self._probe_certificate()
                if exc.certificate is not None:
                    self.transcript.note(f"the certificate presented: {exc.certificate.describe()}")
            raise

    def _probe_certificate(self) -> CertificateInfo | None:
        """Fetch the certificate that failed verification, so the person can see it.

        A second connection pinned to an impossible fingerprint gets as far as
        the handshake, and its mismatch error carries the certificate; nothing
        else is sent over it.
        """
        probe = Session(replace(self.settings, tls_fingerprint=_NO_CERTIFICATE))
        try:
            probe.open()
        except TlsError as exc:
            return exc.certificate
        except SmtpError:
            return None
        probe.close()
        return None

    def _open(self) -> None:
        settings = self.settings
        timeouts = settings.timeouts
        self.transcript.note(
            f"connecting to {settings.host} port {settings.port} ({settings.security.value})"
        )
        self._transport = Transport.connect(
            settings.host,
            settings.port,
            timeout=timeouts.connect,
            implicit_tls=settings.security is Security.TLS,
            fingerprint=settings.normalized_fingerprint,
        )
        if self._transport.tls:
            self._conn.implicit_tls()
            self.transcript.note(self._transport.tls.describe())
        try:
            self._open_conversation()
        except BaseException:
            self._transport.close()
            raise

    def _open_conversation(self) -> None:
        settings = self.settings
        transport = self._require_transport()
        greeting = self._next_reply(settings.timeouts.greeting)
        if greeting.reply.code != 220:
            raise self._fail(greeting)
        self._hello()
        if settings.security is Security.STARTTLS:
            if not self._conn.supports("STARTTLS"):
                raise SecurityPolicyError(
                    f"{settings.host} does not offer STARTTLS, and this account requires it. "
                    "Mailer will not send your password or message unencrypted. Check the "
                    "port (587 normally offers STARTTLS; 465 uses TLS from the start).",
                    stage=Stage.EHLO,
                )
            self._send(p.StartTls())
            reply = self._next_reply()
            if reply.reply.code != 220:
                raise self._fail(reply)
            info = transport.start_tls(
                timeout=settings.timeouts.connect, fingerprint=settings.normalized_fingerprint
            )
            self._conn.tls_established()
            self.transcript.note(info.describe())
            self._hello()
        elif settings.opportunistic_tls and self._conn.supports("STARTTLS"):
            # Between mail servers (port 25) TLS is taken when offered; the
            # certificate is not checked, as the alternative is plaintext.
            self._send(p.StartTls())
            reply = self._next_reply()
            if reply.reply.code == 220:
                info = transport.start_tls(timeout=settings.timeouts.connect, verify=False)
                self._conn.tls_established()
                self.transcript.note(info.describe() + " (opportunistic; certificate not checked)")
                self._hello()
        self._authenticate()

    def _hello(self) -> None:
        name = self.settings.local_hostname or self._default_hostname()
        self._send(p.Ehlo(name))
        reply = self._next_reply()
        if reply.reply.code == 250:
            return
        if not self._conn.ehlo_refused:
            raise self._fail(reply)
        self._send(p.Helo(name))
        reply = self._next_reply()
        if reply.reply.code != 250:
            raise self._fail(reply)

    def _default_hostname(self) -> str:
        transport = self._require_transport()
        try:
            local = transport.local_address()
        except OSError:
            return "localhost"
        return _address_literal(local)

    def _authenticate(self) -> None:
        settings = self.settings
        if settings.auth is AuthMethod.NONE or self._credentials is None:
            return
        offered = self._conn.auth_mechanisms
        if not offered and settings.auth is AuthMethod.AUTO:
            self.transcript.note("the server offers no AUTH; sending without logging in")
            return
        name = sasl.choose_mechanism(
            offered,
            settings.auth,
            tls_active=self._conn.tls_active,
            allow_insecure=settings.allow_insecure_auth,
        )
        credentials = self._credentials()
        self.transcript.add_secret(credentials.secret)
        mechanism = sasl.mechanism_for(name, credentials)
        self._send(p.Auth(mechanism.name, mechanism.initial()))
        for _ in range(8):  # no mechanism here needs more than two challenges
            event = self._next_reply()
            reply = event.reply
            if reply.code == 235:
                self.transcript.note(f"logged in as {credentials.username} with {name}")
                return
            if reply.code != 334:
                raise AuthenticationError(
                    explain(reply, Stage.AUTH, host=settings.host).text,
                    reply=reply,
                    transient=reply.is_transient,
                )
            challenge = reply.lines[0].strip().encode("ascii", errors="replace")
            self._send(p.AuthResponse(mechanism.respond(challenge)))
        raise RemoteProtocolError("the server kept asking AUTH questions", stage=Stage.AUTH)

    # ------------------------------------------------------------------- send

    def prepare_next(
        self,
        body: BinaryIO,
        plan: tuple[int, ...] | None = None,
        following: tuple[Envelope, int] | None = None,
    ) -> None:
        """Read and encode the start of the message sent next (`sent_ahead`) now.

        Called just after a final "." left with the next message's commands,
        while the server works on the message and nothing else would happen
        here: when the next message's 354 comes, its first bytes are ready to
        go. ``body`` must be the file given to that `send_message`, at the
        message's start, and it is left there: whoever sends it without what
        was prepared (another connection, after this one failed) sends it
        whole. A read that fails raises OSError and leaves nothing prepared.
        ``plan`` is as for `send_message`. ``following`` is the ``following``
        that message's `send_message` will give, when known: its commands are
        built now too, to go with that message's final ".".
        """
        ahead = self._ahead
        if ahead is None or self._broken is not None:
            return
        start = body.tell()
        chunk = body.read(CHUNK_SIZE)
        body.seek(start)
        encoder = p.DataEncoder()
        wire = _encode_first(encoder, chunk, plan)
        ahead.prepared = _Prepared(body, start, len(chunk), wire, encoder)
        if following is not None:
            envelope, size = following
            self._staged = (envelope, size, self._stage(envelope, size))

    def check_message(self, envelope: Envelope, size: int) -> None:
        """Refuse before any byte is sent what this server cannot take."""
        if envelope.smtputf8 and not self._conn.supports("SMTPUTF8"):
            raise MessageRefused(
                f"This message has an address with non-ASCII characters before the @, and "
                f"{self.settings.host} does not support such addresses (no SMTPUTF8). "
                "Nothing was sent. Use an ASCII address for that recipient or sender."
            )
        limit = self._conn.size_limit
        if limit is not None and size > limit:
            raise MessageRefused(
                f"The message is {human_size(size)} and {self.settings.host} accepts at "
                f"most {human_size(limit)} (SIZE {limit}). Nothing was sent. Remove or "
                "shrink attachments, or share large files by link."
            )

    def send_message(
        self,
        envelope: Envelope,
        body: BinaryIO,
        size: int,
        *,
        progress: Progress | None = None,
        before_end: Callable[[], None] | None = None,
        following: tuple[Envelope, int] | None = None,
        plan: tuple[int, ...] | None = None,
        after_end: Callable[[tuple[RecipientResult, ...]], None] | None = None,
    ) -> MessageResult:
        """Send one message; recipients refused with 452 go in a further transaction.

        ``before_end`` is called just before the final "." leaves: from then on
        the server may take the message even if no reply arrives, so the outbox
        records that moment to tell "uncertain" from "not sent" after a crash.
        ``after_end`` gets the answers of a transaction whose "." was answered
        when another transaction of the message follows (after a 452), so
        that a crash during that one leaves these answers standing.

        ``following`` (envelope, size) names the message the caller sends next
        on this connection. With PIPELINING its MAIL, RCPT and DATA go in the
        same write as this message's final "." (RFC 2920 §3.1), which saves a
        round trip per message; the next `send_message` must then be for that
        envelope (see `sent_ahead`).

        ``plan`` is `protocol.plan_data` of everything ``body`` holds from where
        it is, when known: a body smaller than one read then goes out with only
        its planned dots doubled, without a pass over its lines.
        """
        if self._broken is not None:
            raise self._broken
        if not envelope.recipients:
            raise MessageRefused("The message has no recipients.")
        self.check_message(envelope, size)
        results: dict[str, RecipientResult] = {}
        remaining = list(dict.fromkeys(envelope.recipients))
        final: MessageResult | None = None
        start = body.tell()
        while remaining:
            body.seek(start)
            final = self._transaction(
                envelope, remaining, body, size, progress, before_end, following, plan
            )
            for result in final.recipients:
                results[result.address] = result
            too_many = [
                r.address
                for r in final.recipients
                if r.reply is not None
                and r.reply.code == 452
                and r.status is not RecipientStatus.ACCEPTED
            ]
            accepted_now = any(r.status is RecipientStatus.ACCEPTED for r in final.recipients)
            # Only go round again when this round made progress (RFC 5321 §4.5.3.1.10).
            if not too_many or not accepted_now or final.error or final.uncertain:
                break
            self.transcript.note(
                f"the server took {len(remaining) - len(too_many)} recipients; "
                f"sending to the other {len(too_many)} in a new transaction"
            )
            if after_end is not None:
                after_end(final.recipients)
            remaining = too_many
        assert final is not None
        ordered = tuple([results[a] for a in dict.fromkeys(envelope.recipients)])
        self.messages_sent += 1
        return MessageResult(
            ordered,
            final.reply,
            final.error,
            final.uncertain,
            final.sizes,
            self._conn.size_limit,
            final.refused_at,
        )

    def _transaction(
        self,
        envelope: Envelope,
        recipients: list[str],
        body: BinaryIO,
        size: int,
        progress: Progress | None,
        before_end: Callable[[], None] | None,
        following: tuple[Envelope, int] | None = None,
        plan: tuple[int, ...] | None = None,
        after_nested: bool = False,
    ) -> MessageResult:
        conn = self._conn
        ahead, self._ahead = self._ahead, None
        if ahead is not None and (
            # The runner gives back the very envelope it sent ahead: by identity first.
            (ahead.envelope is not envelope and ahead.envelope != envelope)
            or ahead.recipients != recipients
        ):
            self._broken = ConnectionLost(
                "This connection was already carrying another message; Mailer sends this "
                "one on a new connection."
            )
            raise self._broken
        # An earlier transaction that did not end (its recipients refused,
        # then its DATA): the server still holds its MAIL until an RSET. So
        # does a server that answered MAIL with 503 (after_nested, below).
        reset_first = after_nested
        if ahead is not None:
            mail, rcpts = ahead.mail, ahead.rcpts
            self.transcript.note("sent with the end of the previous message (pipelining)")
            for line in ahead.lines:
                self.transcript.client(line)
        else:
            reset_first = (
                after_nested or conn.state in (p.State.MAIL, p.State.RCPT) or conn.transaction_open
            )
            mail, rcpts = self._commands(envelope, recipients, size)
        outcome: dict[str, RecipientResult] = {}
        unconfirmed = list(recipients)

        def settle(
            reply: Reply | None, detail: str, status: RecipientStatus | None = None,
            *, doubt: bool = False,
        ) -> None:  # fmt: skip
            for address in unconfirmed:
                if address not in outcome or outcome[address].status is RecipientStatus.ACCEPTED:
                    outcome[address] = RecipientResult(
                        address,
                        status or (_status_of(reply) if reply else RecipientStatus.DEFERRED),
                        reply,
                        detail,
                        doubt,
                    )

        def result(**kwargs: object) -> MessageResult:
            ordered = tuple([outcome[a] for a in recipients])
            return MessageResult(ordered, **kwargs)  # type: ignore[arg-type]

        def nested(reply: Reply) -> MessageResult:
            """503 to MAIL ("nested MAIL command"): the server still holds a
            transaction that its reply to the last "." should have ended
            (aiosmtpd does, after its DATA handler failed). Not this message's
            fault: it goes again after an RSET, or is deferred (to go on a new
            connection) when the server refuses it that way too. (A server
            that took the pipelined RCPT and DATA anyway is met below.)"""
            if not after_nested:
                self.transcript.note(
                    "the server still held an earlier transaction: resetting it and "
                    "sending this message again"
                )
                return self._transaction(
                    envelope, recipients, body, size, progress, before_end, following, plan,
                    after_nested=True,
                )  # fmt: skip
            self._broken = ConnectionLost(
                f"{self.settings.host} refused to start a new message on this connection "
                f"({reply}), even after a reset. Mailer sends it again on a new connection.",
                reply=reply,
                stage=Stage.MAIL,
            )
            self.transcript.note(self._broken.message)
            settle(reply, "", RecipientStatus.DEFERRED)
            return result(error=self._broken, refused_at=Stage.MAIL)

        sent_bytes = 0
        try:
            if reset_first:
                self._send(p.Rset())
                reset = self._next_reply()
                if not reset.reply.is_positive:  # a 421 set _broken already
                    self._broken = self._broken or ConnectionLost(
                        f"{self.settings.host} would not end the earlier transaction "
                        f"({reset.reply}). Mailer sends this message on a new connection.",
                        reply=reset.reply,
                    )
                    raise self._broken
            if ahead is not None or conn.pipelining:
                if ahead is None:
                    self._send(mail, *rcpts, _DATA)
                mail_reply = self._next_reply()
                if mail_reply.reply.code == 421:  # closing: no more replies will come
                    return self._closing(outcome, recipients, mail_reply.reply)
                if not mail_reply.reply.is_positive:
                    # A 503 is the server's confusion, not this message's fault (nested).
                    held = mail_reply.reply.code == 503
                    settle(mail_reply.reply, "", RecipientStatus.DEFERRED if held else None)
                for rcpt in rcpts:
                    event = self._next_reply()
                    if mail_reply.reply.is_positive:
                        outcome[rcpt.address] = RecipientResult(
                            rcpt.address, _status_of(event.reply), event.reply
                        )
                    if event.reply.code == 421:
                        return self._closing(outcome, recipients, event.reply)
                data_reply = self._next_reply()
                if mail_reply.reply.code == 503 and data_reply.reply.code != 354:
                    return nested(mail_reply.reply)
            else:
                self._send(mail)
                mail_reply = self._next_reply()
                if mail_reply.reply.code == 503:
                    return nested(mail_reply.reply)
                if mail_reply.reply.code == 421:  # closing, as with PIPELINING above
                    return self._closing(outcome, recipients, mail_reply.reply)
                if not mail_reply.reply.is_positive:
                    settle(mail_reply.reply, "")
                    return result(refused_at=Stage.MAIL)
                for rcpt in rcpts:
                    self._send(rcpt)
                    event = self._next_reply()
                    outcome[rcpt.address] = RecipientResult(
                        rcpt.address, _status_of(event.reply), event.reply
                    )
                    if event.reply.code == 421:
                        return self._closing(outcome, recipients, event.reply)
                if not any(r.status is RecipientStatus.ACCEPTED for r in outcome.values()):
                    return result()
                self._send(_DATA)
                data_reply = self._next_reply()

            accepted_status = RecipientStatus.ACCEPTED
            accepted = [a for a in recipients if outcome[a].status is accepted_status]
            unconfirmed = accepted
            if data_reply.reply.code == 421:  # closing: what it took is not confirmed
                return self._closing(outcome, recipients, data_reply.reply)
            if data_reply.reply.code != 354:
                if accepted:
                    settle(data_reply.reply, "")
                if not mail_reply.reply.is_positive:
                    return result(refused_at=Stage.MAIL)
                return result(refused_at=Stage.DATA if accepted else None)
            if not accepted and not mail_reply.reply.is_positive:
                # A 354 though MAIL was refused: the server holds a transaction
                # this connection did not start, and took the pipelined RCPT
                # into it (aiosmtpd after a 503, see nested). A "." would end
                # it, maybe as a message to someone: the line goes instead.
                self._require_transport().close()
                self._broken = ConnectionLost(
                    f"{self.settings.host} refused this message's MAIL ({mail_reply.reply}) "
                    "but then asked for its text: it holds a transaction this connection did "
                    "not start. Mailer sent nothing of the message and closed the connection.",
                    reply=mail_reply.reply,
                    stage=Stage.MAIL,
                )
                self.transcript.note(self._broken.message)
                if mail_reply.reply.code != 503:
                    return result(refused_at=Stage.MAIL)  # the server's answer to MAIL stands
                # Deferred (settled above): it goes again, on a new connection.
                return result(error=self._broken, refused_at=Stage.MAIL)
            if not accepted:
                # PIPELINING sent DATA before knowing every RCPT failed; end it empty.
                self._send(_END_OF_DATA)
                self._next_reply(self.settings.timeouts.data_end)
                return result()

            if following is not None and any(
                r.reply is not None and r.reply.code == 452 and r.status is not accepted_status
                for r in outcome.values()
            ):
                following = None  # this message needs another transaction first
            # Those who take the message if its "." is taken: the outbox's
            # end-of-data mark names them when they are not all it waits for.
            self.ending = tuple(accepted)
            try:
                sent_bytes = self._stream_body(
                    body,
                    size,
                    progress,
                    before_end,
                    following,
                    ahead.prepared if ahead else None,
                    plan,
                )
            except _EndMayHaveLeft as cut:
                # The write that carried the final "." and the next message's
                # commands failed: the "." itself may have reached the server.
                sent_bytes = size
                self._broken = cut.error
                settle(None, _unconfirmed_text(cut.error), RecipientStatus.DEFERRED, doubt=True)
                self.transcript.note(
                    "the connection broke while the end of the message was going out: "
                    "the server may or may not have taken it"
                )
                return result(error=cut.error, uncertain=True, sizes=(sent_bytes, size))
            try:
                final = self._next_reply(self.settings.timeouts.data_end)
            except SmtpError as exc:
                # Cancelled included: once the final "." is out, the server may
                # have taken the message, so this is not a plain retry case.
                self._broken = exc
                settle(None, _unconfirmed_text(exc), RecipientStatus.DEFERRED, doubt=True)
                self.transcript.note(
                    "no reply after the end of the message: the server may or may not have taken it"
                )
                return result(error=exc, uncertain=True, sizes=(sent_bytes, size))
            if final.reply.code == 421:
                # Not taken, and the server is closing: as a 421 to any other
                # command, the connection's end is the error (a server limiting
                # the sender says it here: Gmail's rate limit does).
                settle(final.reply, "")
                self._require_transport().close()
                return result(reply=final.reply, error=self._broken, sizes=(sent_bytes, size))
            if not final.reply.is_positive:
                settle(final.reply, "")
            else:
                # What each accepted recipient's message became is the final
                # reply ("250 2.0.0 Ok: queued as 4B1C2"), which names it in the
                # server's logs: kept with each of them, not the RCPT's "250 Ok".
                for address in accepted:
                    outcome[address] = RecipientResult(address, accepted_status, final.reply)
            return result(reply=final.reply, sizes=(sent_bytes, size))
        except Cancelled:
            self._broken = Cancelled("The send was cancelled.")
            raise
        except SmtpError as exc:
            # Whatever broke mid-transaction leaves replies unaccounted for:
            # this connection cannot carry another message.
            self._broken = exc
            settle(
                None,
                exc.message,
                RecipientStatus.DEFERRED if exc.transient else RecipientStatus.REJECTED,
            )
            return result(error=exc, sizes=(sent_bytes, size))

    def _commands(
        self, envelope: Envelope, recipients: list[str], size: int
    ) -> tuple[p.MailFrom, list[p.RcptTo]]:
        offered = self._conn.extensions  # names in capitals, as parsed from EHLO
        dsn = "DSN" in offered
        mail = p.MailFrom(
            envelope.sender,
            size=size if "SIZE" in offered else None,
            body_8bitmime=envelope.eight_bit and "8BITMIME" in offered,
            smtputf8=envelope.smtputf8,
            dsn_ret=envelope.dsn_ret if dsn else None,
            dsn_envid=envelope.dsn_envid if dsn else None,
        )
        notify = envelope.dsn_notify if dsn else ()
        return mail, [p.RcptTo(address, notify) for address in recipients]

    def _send_ahead(self, envelope: Envelope, size: int) -> bytes:
        """The next message's MAIL, RCPT and DATA, to go with this one's final "."

        Nothing when the server does not pipeline or the next message cannot
        go on this connection (its own `send_message` then says why). Built
        now, or earlier by `prepare_next` for this very envelope.
        """
        staged_for, self._staged = self._staged, None
        if staged_for is not None and staged_for[0] is envelope and staged_for[1] == size:
            staged = staged_for[2]
        else:
            staged = self._stage(envelope, size)
        if staged is None:
            return b""
        send = self._conn.send
        data = b"".join([send(c, w) for c, w in zip(staged.commands, staged.wires, strict=True)])
        mail, *rcpts, _ = staged.commands
        self._ahead = _SentAhead(
            envelope,
            staged.recipients,
            mail,  # type: ignore[arg-type]
            rcpts,  # type: ignore[arg-type]
            staged.lines,
        )
        return data

    def _stage(self, envelope: Envelope, size: int) -> _Staged | None:
        """``envelope``'s commands as `_send_ahead` sends them; None when they
        cannot go ahead (see there). Nothing is sent or changed."""
        if not self._conn.pipelining or not envelope.recipients:
            return None
        recipients = list(dict.fromkeys(envelope.recipients))
        try:
            self.check_message(envelope, size)
            # Checked before any command is taken: none may fail half-way.
            p.check_envelope(envelope.sender, recipients, smtputf8=envelope.smtputf8)
        except SmtpError:
            return None
        mail, rcpts = self._commands(envelope, recipients, size)
        commands: tuple[p.Command, ...] = (mail, *rcpts, _DATA)
        wires = tuple([p.command_line(command) for command in commands])
        lines = [
            line
            for command, wire in zip(commands, wires, strict=True)
            if (line := p.transcript_text(command, wire)) is not None
        ]
        return _Staged(recipients, commands, wires, lines)

    def _closing(
        self, outcome: dict[str, RecipientResult], recipients: list[str], reply: Reply
    ) -> MessageResult:
        """421 mid-transaction: what was not confirmed is deferred."""
        for address in recipients:
            current = outcome.get(address)
            if current is None or current.status is RecipientStatus.ACCEPTED:
                outcome[address] = RecipientResult(address, RecipientStatus.DEFERRED, reply)
        error = self._broken or ConnectionLost("the server closed the connection", reply=reply)
        self._require_transport().close()
        return MessageResult(tuple(outcome[a] for a in recipients), error=error)

    def _stream_body(
        self,
        body: BinaryIO,
        size: int,
        progress: Progress | None,
        before_end: Callable[[], None] | None,
        after: tuple[Envelope, int] | None = None,
        prepared: _Prepared | None = None,
        plan: tuple[int, ...] | None = None,
    ) -> int:
        transport = self._require_transport()
        timeout = self.settings.timeouts.data_block
        self.transcript.note(f"sending the message ({size} bytes)")
        sent = 0
        if progress:
            progress(0, size)
        if prepared is not None and prepared.body is body and body.tell() == prepared.start:
            body.seek(prepared.start + prepared.length)
            length = prepared.length
            data = self._conn.send(p.EncodedChunk(prepared.wire, prepared.encoder))
        else:
            chunk = body.read(CHUNK_SIZE)
            length = len(chunk)
            encoder = p.DataEncoder()
            data = self._conn.send(p.EncodedChunk(_encode_first(encoder, chunk, plan), encoder))
        while True:
            # Read one ahead so the final "." leaves in the same write as the
            # last bytes (one TLS record, one segment fewer). A short read
            # that completes the size given was the end of the file already.
            following = (
                body.read(CHUNK_SIZE) if length == CHUNK_SIZE or sent + length < size else b""
            )
            ahead = b""
            if not following:
                end = self._conn.send(_END_OF_DATA)
                if before_end:
                    try:
                        before_end()
                    except BaseException:
                        # The "." stays unsent: this connection cannot go on.
                        self._broken = ConnectionLost(
                            "The message was not finished; Mailer will send it again."
                        )
                        raise
                if after is not None:
                    ahead = self._send_ahead(*after)
                data = b"".join((data, end, ahead))  # one copy of the last bytes, not two
            try:
                transport.write(data, timeout=timeout)
            except SmtpError as exc:  # Cancelled included
                if ahead:  # some of these bytes left, maybe the whole "."
                    raise _EndMayHaveLeft(exc) from exc
                raise
            sent += length
            if progress and length:
                progress(sent, size)
            if not following:
                return sent
            length = len(following)
            data = self._conn.send(p.BodyChunk(following))

    # ------------------------------------------------------------------ close

    def close(self) -> None:
        """Say QUIT (briefly; a server that does not answer is simply dropped)."""
        transport = self._transport
        if transport is None:
            return
        try:
            if self._broken is None and self._conn.can_quit:
                self._send(p.Quit(), timeout=5.0)
                self._next_reply(5.0)
        except SmtpError:
            pass
        finally:
            transport.close()
            self._transport = None

    def abort(self) -> None:
        """Cancel from another thread: closes the socket under a running send."""
        transport = self._transport
        if transport is not None:
            transport.abort()

    def __enter__(self) -> Session:
        self.open()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


_TOO_BIG = ("5.3.4", "5.2.3")  # RFC 3463: message too big for the system / for the mailbox
# A 552 with no enhanced code is "too big" only when it says so: RFC 1870's
# refusal of MAIL names the size, while old servers also say 552 for a full mailbox.
_SIZE_WORDS = re.compile(r"\b(size|too (big|large|long))\b", re.IGNORECASE)


def _encode_first(encoder: p.DataEncoder, chunk: bytes, plan: tuple[int, ...] | None) -> bytes:
    """The first read of a message, encoded by a fresh ``encoder``: by its plan
    when it is the whole message (a short read) and has one."""
    if plan is not None and len(chunk) < CHUNK_SIZE:
        return encoder.encode_planned(chunk, plan)
    return encoder.encode(chunk)


def refused_as_too_big(result: MessageResult) -> Reply | None:
    """The server's reply when it refused the whole message as too big, else None.

    Only when every recipient was refused for that: a message that went to
    some, is to be tried again for some, or was refused for another reason
    to some (no such user) keeps each recipient's own words.
    """
    for r in result.recipients:
        reply = r.reply
        if r.status is not RecipientStatus.REJECTED or reply is None:
            return None
        if reply.enhanced not in _TOO_BIG and not (
            reply.code == 552 and reply.enhanced is None and _SIZE_WORDS.search(reply.text)
        ):
            return None
    return result.recipients[0].reply if result.recipients else None


def too_big_reason(result: MessageResult, size: int) -> str | None:
    """Why a message the server refused as too big failed: its size and the
    server's limit beside the server's words; None when that was not the reason."""
    reply = refused_as_too_big(result)
    if reply is None:
        return None
    limit = result.size_limit
    stated = (
        f"the server's stated limit is {human_size(limit)} (SIZE {limit})"
        if limit
        else "the server announced no limit before (SIZE)"
    )
    # Bytes as well when small: "1.0 KB" beside a reply's "limit of 1000 bytes"
    # would read as the same size.
    shown = human_size(size) + (f" ({size:,} bytes)" if size < 100_000 else "")
    return (
        f"The server refused the message as too big: it is {shown}, and {stated}. "
        f"It said: {reply}. Remove or shrink attachments, or share large files by link."
    )


def _unconfirmed_text(error: SmtpError) -> str:
    """What an uncertain result says for its recipients, in place of ``error``'s words.

    Those words end in what happens next ("Mailer will try again later"),
    which is not so here: nothing is retried until the person decides.
    """
    if isinstance(error, Cancelled):
        # Closed by Mailer itself: a Cancel, or Quit now (the person did not
        # press Cancel then, so "the send was cancelled" would be untrue).
        return (
            "The whole message was sent, but Mailer closed the connection before the server "
            "confirmed it: it may have arrived."
        )
    what = error.message.split(". ", 1)[0].rstrip(".")
    return f"The whole message was sent but no confirmation came ({what}): it may have arrived."
