"""The SMTP client protocol as a sans-IO state machine (in the manner of h11).

Written by hand because no maintained Python library does what Mailer needs:
smtplib and aiosmtplib send one command and wait for its reply (no RFC 2920
pipelining, so a 20-recipient message costs 20 extra round trips), and neither
gives a transcript with AUTH secrets removed at the source. Nothing here
touches a socket, a clock, TLS or logging: `transport.py` moves bytes and
`session.py` decides what to send.

Theory of operation
-------------------
The caller hands commands to `ClientConnection.send()`, which checks them
against the state table and returns the bytes to write. Bytes read from the
server go into `receive_data()`; `next_event()` then yields one `ServerReply`
per reply, matched in order to the command it answers (that FIFO is what
makes pipelining safe), or `NEED_DATA`, or `ConnectionClosed`.

`state` follows the commands sent, not the replies received: after a
pipelined MAIL, RCPT, RCPT, DATA the state is DATA_SENT even though no reply
has come yet; the replies then move it on (354 -> BODY, anything else ->
READY). Without PIPELINING advertised, a command may only be sent when every
earlier reply has arrived.

STARTTLS is a protocol switch: after its 220 the state is TLS_HANDSHAKE, no
byte may be pending (anything the server sent before the handshake could be
an injection and is refused), the caller wraps the socket and calls
`tls_established()`, and the capabilities are forgotten until EHLO again.
"""

from __future__ import annotations

import enum
import itertools
import re
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final, NamedTuple

from mailer_gui.smtp.errors import LocalProtocolError, RemoteProtocolError
from mailer_gui.smtp.replies import Reply, ReplyParseError, ReplyParser, Stage

REDACTED: Final = "*****"


class State(enum.Enum):
    AWAIT_GREETING = "await-greeting"
    GREETED = "greeted"  # greeting read; EHLO/HELO next
    REFUSED = "refused"  # the greeting was not 220: only QUIT makes sense
    EHLO_SENT = "ehlo-sent"
    HELO_SENT = "helo-sent"
    READY = "ready"  # between transactions
    STARTTLS_SENT = "starttls-sent"
    TLS_HANDSHAKE = "tls-handshake"
    AUTH_SENT = "auth-sent"
    AUTH_CHALLENGE = "auth-challenge"  # a 334 came: an AuthResponse is due
    MAIL = "mail"
    RCPT = "rcpt"
    DATA_SENT = "data-sent"
    BODY = "body"  # 354 came: the message bytes flow
    DATA_END_SENT = "data-end-sent"
    QUIT_SENT = "quit-sent"
    CLOSED = "closed"

    # Members are compared by identity; Enum's own __hash__ is Python code,
    # and the send table is looked up by (state, command) for every command.
    __hash__ = object.__hash__


# ----------------------------------------------------------------- commands


@dataclass(frozen=True)
class Ehlo:
    hostname: str


@dataclass(frozen=True)
class Helo:
    hostname: str


@dataclass(frozen=True)
class StartTls:
    pass


@dataclass(frozen=True)
class Auth:
    """``AUTH PLAIN <initial response>``; the response never reaches a transcript."""

    mechanism: str
    initial_response: bytes | None = None


@dataclass(frozen=True)
class AuthResponse:
    """One base64 line answering a 334 challenge (secret, always redacted)."""

    data: bytes


@dataclass(frozen=True)
class AuthAbort:
    """``*``: give up an AUTH exchange (RFC 4954 §4)."""


@dataclass(frozen=True)
class MailFrom:
    address: str
    size: int | None = None
    body_8bitmime: bool = False
    smtputf8: bool = False
    dsn_ret: str | None = None  # "FULL" | "HDRS"
    dsn_envid: str | None = None


@dataclass(frozen=True)
class RcptTo:
    address: str
    notify: tuple[str, ...] = ()  # ("SUCCESS", "FAILURE", "DELAY") or ("NEVER",)


@dataclass(frozen=True)
class Data:
    pass


@dataclass(frozen=True)
class BodyChunk:
    """Part of the message; CRLF-normalised and dot-stuffed on the way out."""

    data: bytes = field(repr=False)


@dataclass(frozen=True)
class EncodedChunk:
    """The first part of a message, already CRLF-normalised and dot-stuffed by
    ``encoder`` (a fresh `DataEncoder`), for instance while the server was still
    busy with the message before. The rest of the message goes through
    ``encoder`` too, so a line end split between the parts is still seen.
    """

    wire: bytes = field(repr=False)
    encoder: DataEncoder = field(repr=False)


@dataclass(frozen=True)
class EndOfData:
    pass


@dataclass(frozen=True)
class Rset:
    pass


@dataclass(frozen=True)
class Noop:
    pass


@dataclass(frozen=True)
class Quit:
    pass


Command = (
    Ehlo
    | Helo
    | StartTls
    | Auth
    | AuthResponse
    | AuthAbort
    | MailFrom
    | RcptTo
    | Data
    | BodyChunk
    | EncodedChunk
    | EndOfData
    | Rset
    | Noop
    | Quit
)

# ------------------------------------------------------------------- events


class ServerReply(NamedTuple):
    """A reply and the command it answers (None for the greeting or an unsolicited 421)."""

    stage: Stage
    reply: Reply
    command: Command | None = None


@dataclass(frozen=True)
class ConnectionClosed:
    """The server closed the connection; ``unanswered`` commands got no reply."""

    unanswered: tuple[Command, ...] = ()


class _NeedData:
    def __repr__(self) -> str:
        return "NEED_DATA"


NEED_DATA: Final = _NeedData()
Event = ServerReply | ConnectionClosed

# ------------------------------------------------------------- state table

# (state, command type) -> state after sending. Anything absent is refused.
_SEND_TRANSITIONS: Final[dict[tuple[State, type], State]] = {
    (State.GREETED, Ehlo): State.EHLO_SENT,
    (State.GREETED, Helo): State.HELO_SENT,
    (State.READY, Ehlo): State.EHLO_SENT,
    (State.READY, StartTls): State.STARTTLS_SENT,
    (State.READY, Auth): State.AUTH_SENT,
    (State.AUTH_CHALLENGE, AuthResponse): State.AUTH_SENT,
    (State.AUTH_CHALLENGE, AuthAbort): State.AUTH_SENT,
    (State.READY, MailFrom): State.MAIL,
    (State.MAIL, RcptTo): State.RCPT,
    (State.RCPT, RcptTo): State.RCPT,
    (State.RCPT, Data): State.DATA_SENT,
    (State.BODY, BodyChunk): State.BODY,
    (State.BODY, EncodedChunk): State.BODY,
    (State.BODY, EndOfData): State.DATA_END_SENT,
    # The next message's MAIL may follow the final "." in the same group
    # (RFC 2920 §3.1: message content may open a group).
    (State.DATA_END_SENT, MailFrom): State.MAIL,
    (State.READY, Rset): State.READY,
    (State.MAIL, Rset): State.READY,
    (State.RCPT, Rset): State.READY,
    (State.READY, Noop): State.READY,
}
# QUIT is allowed from every state where the server is listening for commands.
_QUIT_FROM: Final = frozenset(
    {State.GREETED, State.REFUSED, State.READY, State.MAIL, State.RCPT, State.AUTH_CHALLENGE}
)

# Commands that may be sent while earlier replies are still due (RFC 2920 §3.1:
# the ones that are not required to end a group, plus DATA and QUIT which end it).
# Sets of command classes, looked up by ``type(command)``: a few thousand
# commands go out a second when the outbox flushes, and a set lookup costs
# less than a chain of isinstance() calls.
_PIPELINABLE: Final[frozenset[type]] = frozenset({MailFrom, RcptTo, Rset, Data, Quit, Noop})
_GROUP_MEMBERS: Final[frozenset[type]] = frozenset({MailFrom, RcptTo, Rset, EndOfData})
_BODY_PARTS: Final[frozenset[type]] = frozenset({BodyChunk, EncodedChunk, EndOfData})

_STAGE_OF: Final[dict[type, Stage]] = {
    Ehlo: Stage.EHLO,
    Helo: Stage.HELO,
    StartTls: Stage.STARTTLS,
    Auth: Stage.AUTH,
    AuthResponse: Stage.AUTH,
    AuthAbort: Stage.AUTH,
    MailFrom: Stage.MAIL,
    RcptTo: Stage.RCPT,
    Data: Stage.DATA,
    EndOfData: Stage.DATA_END,
    Rset: Stage.RSET,
    Noop: Stage.NOOP,
    Quit: Stage.QUIT,
}

# ------------------------------------------------------------ wire helpers


def parse_ehlo_extensions(reply: Reply) -> dict[str, str]:
    """Capabilities from an EHLO reply: keyword (upper case) -> parameters.

    ``250-mail.example.org / 250-SIZE 35882577 / 250 AUTH PLAIN LOGIN`` ->
    ``{"SIZE": "35882577", "AUTH": "PLAIN LOGIN"}``. The old ``AUTH=LOGIN``
    form some servers still send is merged into AUTH.
    """
    extensions: dict[str, str] = {}
    for line in reply.lines[1:]:
        keyword, _, params = line.strip().partition(" ")
        if not keyword:
            continue
        if keyword.upper().startswith("AUTH="):
            params = keyword[5:] + (" " + params if params else "")
            keyword = "AUTH"
        keyword = keyword.upper()
        if keyword == "AUTH" and keyword in extensions:
            merged = extensions[keyword].split() + params.split()
            params = " ".join(dict.fromkeys(m.upper() for m in merged))
        extensions[keyword] = params.strip()
    return extensions


def xtext(value: str) -> str:
    """RFC 3461 xtext: ``+`` and ``=`` and anything outside ``!``..``~`` as ``+HH``.

    ``"a+b c"`` -> ``"a+2Bb+20c"``.
    """
    out = []
    for byte in value.encode("utf-8"):
        if byte < 33 or byte > 126 or byte in (ord("+"), ord("=")):
            out.append(f"+{byte:02X}")
        else:
            out.append(chr(byte))
    return "".join(out)


_FORBIDDEN_IN_PATH: Final = re.compile(r"[\x00-\x1f<>\x7f]")


def _check_path(address: str, *, allow_empty: bool, smtputf8: bool) -> None:
    if not address and not allow_empty:
        raise LocalProtocolError("an empty recipient address cannot be sent")
    if _FORBIDDEN_IN_PATH.search(address):
        raise LocalProtocolError(f"the address {address!r} holds characters SMTP cannot carry")
    if not smtputf8 and not address.isascii():
        raise LocalProtocolError(f"the address {address!r} needs SMTPUTF8")


def check_envelope(sender: str, recipients: list[str], *, smtputf8: bool) -> None:
    """Raise LocalProtocolError if MAIL FROM or a RCPT TO could not carry these addresses."""
    _check_path(sender, allow_empty=True, smtputf8=smtputf8)
    for address in recipients:
        _check_path(address, allow_empty=False, smtputf8=smtputf8)


class DataEncoder:
    """Turns message bytes into a DATA body: CRLF line ends, leading dots doubled.

    Works chunk by chunk, so a large file streams through in bounded memory;
    a CR at the end of one chunk is held until the next shows whether an LF
    follows.
    """

    def __init__(self) -> None:
        self._at_line_start = True
        self._carry = b""

    def encode(self, chunk: bytes) -> bytes:
        data = self._carry + chunk
        self._carry = b""
        if data.endswith(b"\r"):
            self._carry = b"\r"
            data = data[:-1]
        if not data:
            return b""
        # bytes.splitlines() breaks at LF, CR and CRLF alike: one pass to
        # split and one to join beats three replace() passes.
        lines = data.splitlines()
        if data[-1:] == b"\n":
            lines.append(b"")
        data = b"\r\n".join(lines)
        if self._at_line_start and data[:1] == b".":
            data = b"." + data
        if b"\n." in data:
            data = data.replace(b"\r\n.", b"\r\n..")
        self._at_line_start = data.endswith(b"\r\n")
        return data

    def encode_planned(self, data: bytes, dots: tuple[int, ...]) -> bytes:
        """`encode` for a whole message whose `plan_data` gave ``dots``.

        Only the dots are doubled: the plan says nothing else would change.
        For a fresh encoder and the very bytes the plan was made for (the
        outbox checks the message file's CRC-32 before it trusts its plan),
        the result and the state left for `end` are those of `encode`.
        """
        if dots:
            cuts = [0, *dots, len(data)]
            data = b".".join([data[start:stop] for start, stop in itertools.pairwise(cuts)])
        if data:
            self._at_line_start = data.endswith(b"\r\n")
        return data

    def end(self) -> bytes:
        tail = b""
        if self._carry:
            tail = b"\r\n"
            self._carry = b""
            self._at_line_start = True
        if not self._at_line_start:
            tail += b"\r\n"
        self._at_line_start = True
        return tail + b".\r\n"


# A message with more lines starting with "." than this is encoded as it goes.
MAX_PLANNED_DOTS: Final = 64


def plan_data(data: bytes) -> tuple[int, ...] | None:
    """Where ``data``, a whole message, starts a line with "." (to be doubled),
    when that is all its DATA encoding would change; None when it needs more
    (a line end other than CRLF) or has too many such lines.

    The outbox plans each message once, when it is queued, so that sending it
    (again at every retry) costs no pass over its lines. The plan is checked
    here against `DataEncoder` itself: one that gives other bytes is no plan.
    """
    dots: list[int] = [0] if data[:1] == b"." else []
    at = data.find(b"\r\n.")
    while at >= 0:
        if len(dots) == MAX_PLANNED_DOTS:
            return None
        dots.append(at + 2)
        at = data.find(b"\r\n.", at + 3)
    plan = tuple(dots)
    encoder, planned = DataEncoder(), DataEncoder()
    if planned.encode_planned(data, plan) + planned.end() != encoder.encode(data) + encoder.end():
        return None
    return plan


def transcript_text(command: Command, wire: bytes | None = None) -> str | None:
    """The command as the session log shows it, secrets replaced by ``*****``.

    ``wire`` is what `ClientConnection.send` returned for it, when at hand
    (saves building the line twice). Returns None for message bytes, which
    the log summarises instead.
    """
    match command:
        case Auth(mechanism=mechanism, initial_response=initial):
            return f"AUTH {mechanism}" + (f" {REDACTED}" if initial is not None else "")
        case AuthResponse():
            return REDACTED
        case BodyChunk() | EncodedChunk() | EndOfData():
            return None
        case _:
            line = wire if wire is not None else command_line(command)
            return line.decode("utf-8", errors="replace").rstrip("\r\n")


def command_line(command: Command) -> bytes:
    """Wire form of one command line, e.g. ``MAIL FROM:<a@example.org> SIZE=1024\\r\\n``."""
    match command:
        case Ehlo(hostname=name):
            text = f"EHLO {name}"
        case Helo(hostname=name):
            text = f"HELO {name}"
        case StartTls():
            text = "STARTTLS"
        case Auth(mechanism=mechanism, initial_response=initial):
            text = f"AUTH {mechanism}"
            if initial is not None:
                text += " " + (initial.decode("ascii") or "=")
        case AuthResponse(data=data):
            text = data.decode("ascii")
        case AuthAbort():
            text = "*"
        case MailFrom():
            text = f"MAIL FROM:<{command.address}>"
            if command.size is not None:
                text += f" SIZE={command.size}"
            if command.body_8bitmime:
                text += " BODY=8BITMIME"
            if command.smtputf8:
                text += " SMTPUTF8"
            if command.dsn_ret:
                text += f" RET={command.dsn_ret}"
            if command.dsn_envid:
                text += f" ENVID={xtext(command.dsn_envid)}"
        case RcptTo(address=address, notify=notify):
            text = f"RCPT TO:<{address}>"
            if notify:
                text += " NOTIFY=" + ",".join(notify)
        case Data():
            text = "DATA"
        case Rset():
            text = "RSET"
        case Noop():
            text = "NOOP"
        case Quit():
            text = "QUIT"
        case _:
            raise LocalProtocolError(f"{type(command).__name__} is not a command line")
    return (text + "\r\n").encode("utf-8")


# --------------------------------------------------------------- connection


class ClientConnection:
    """One SMTP client conversation, without I/O."""

    def __init__(self) -> None:
        self.state = State.AWAIT_GREETING
        self.extensions: dict[str, str] = {}
        # size_limit, worked out once per EHLO reply (asked several times a message).
        self._size_limit: tuple[dict[str, str], int | None] = (self.extensions, None)
        self.tls_active = False
        self.authenticated = False
        self.ehlo_refused = False  # EHLO got 500/502: HELO is the way on
        self._parser = ReplyParser()
        self._replies: deque[Reply] = deque()
        self._pending: deque[Command] = deque()
        self._encoder = DataEncoder()
        self._body_started = False  # a part of the current message was sent
        # The server took a MAIL and no ".", RSET or EHLO has ended that
        # transaction since: after a refused DATA it is still open there.
        self._mail_taken = False
        self._closed_by_peer = False
        self._closed_reported = False
        self._smtputf8_transaction = False
        # Pending commands that must end a pipelined group (RFC 2920 §3.1);
        # while one is unanswered nothing more may be sent.
        self._pending_group_enders = 0

    # ---- what the server offers

    def supports(self, extension: str) -> bool:
        return extension.upper() in self.extensions

    @property
    def pipelining(self) -> bool:
        return "PIPELINING" in self.extensions  # asked for every command of a group

    @property
    def auth_mechanisms(self) -> tuple[str, ...]:
        return tuple(m.upper() for m in self.extensions.get("AUTH", "").split())

    @property
    def size_limit(self) -> int | None:
        """The server's SIZE, or None when it states no limit (SIZE 0 or absent)."""
        extensions = self.extensions
        seen, limit = self._size_limit
        if seen is not extensions:  # a new EHLO reply (the dict is replaced, never changed)
            value = extensions.get("SIZE", "").strip()
            limit = int(value) if value.isdigit() and int(value) > 0 else None
            self._size_limit = (extensions, limit)
        return limit

    @property
    def transaction_open(self) -> bool:
        """A transaction the server still holds open (its MAIL was taken and
        nothing ended it): the next MAIL needs an RSET first, or the server
        answers 503 ("nested MAIL command"). So it is after a refused DATA,
        which pipelining sends before it knows every RCPT was refused."""
        return self._mail_taken

    @property
    def can_quit(self) -> bool:
        return self.state in _QUIT_FROM and not self._pending

    @property
    def awaiting_replies(self) -> int:
        return len(self._pending)

    # ---- sending

    def send(self, command: Command, wire: bytes | None = None) -> bytes:
        """Check ``command`` against the state and return its bytes.

        ``wire`` is `command_line` of ``command``, for a command built ahead
        of time: it is checked and sent as any other, its line not made again.
        """
        if self.state is State.CLOSED:
            raise LocalProtocolError("the connection is closed")
        kind = type(command)
        if kind is Quit:
            if self.state not in _QUIT_FROM:
                raise LocalProtocolError(f"QUIT cannot be sent in state {self.state.value}")
            new_state = State.QUIT_SENT
        else:
            maybe = _SEND_TRANSITIONS.get((self.state, kind))
            if maybe is None:
                raise LocalProtocolError(
                    f"{kind.__name__} cannot be sent in state {self.state.value}"
                )
            new_state = maybe
        if self._pending and kind not in _BODY_PARTS:
            grouped = self.pipelining and kind in _PIPELINABLE and self._pending_group_enders == 0
            if not grouped:
                raise LocalProtocolError(
                    f"{kind.__name__} must wait for the reply to "
                    f"{type(self._pending[0]).__name__} (no PIPELINING)"
                )
        check = _CHECKS.get(kind)
        if check is not None:
            check(self, command)

        if kind is BodyChunk:
            data = self._encoder.encode(command.data)  # type: ignore[union-attr]
            self._body_started = True
        elif kind is EncodedChunk:
            if self._body_started:
                raise LocalProtocolError("an encoded part can only open the message")
            self._encoder = command.encoder  # type: ignore[union-attr]
            self._body_started = True
            data = command.wire  # type: ignore[union-attr]
        elif kind is EndOfData:
            data = self._encoder.end()
            self._expect(command)
        else:
            data = command_line(command) if wire is None else wire
            self._expect(command)
        self.state = new_state
        return data

    def _expect(self, command: Command) -> None:
        self._pending.append(command)
        if type(command) not in _GROUP_MEMBERS:
            self._pending_group_enders += 1

    # What each kind of command needs checked before it goes (_CHECKS).

    def _check_starttls(self, command: StartTls) -> None:
        if self.tls_active:
            raise LocalProtocolError("TLS is already active")
        if not self.supports("STARTTLS"):
            raise LocalProtocolError("the server did not offer STARTTLS")

    def _check_mail(self, command: MailFrom) -> None:
        _check_path(command.address, allow_empty=True, smtputf8=command.smtputf8)
        if command.smtputf8 and not self.supports("SMTPUTF8"):
            raise LocalProtocolError("the server did not offer SMTPUTF8")
        if command.body_8bitmime and not self.supports("8BITMIME"):
            raise LocalProtocolError("the server did not offer 8BITMIME")
        if (command.dsn_ret or command.dsn_envid) and not self.supports("DSN"):
            raise LocalProtocolError("the server did not offer DSN")
        if command.size is not None and not self.supports("SIZE"):
            raise LocalProtocolError("the server did not offer SIZE")
        self._smtputf8_transaction = command.smtputf8

    def _check_rcpt(self, command: RcptTo) -> None:
        _check_path(command.address, allow_empty=False, smtputf8=self._smtputf8_transaction)
        if command.notify and not self.supports("DSN"):
            raise LocalProtocolError("the server did not offer DSN")

    def _check_auth(self, command: Auth) -> None:
        if command.mechanism.upper() not in self.auth_mechanisms:
            raise LocalProtocolError(f"the server did not offer AUTH {command.mechanism}")

    def _check_hello(self, command: Ehlo | Helo) -> None:
        if not command.hostname or any(c in command.hostname for c in " \r\n"):
            raise LocalProtocolError(f"bad EHLO/HELO name {command.hostname!r}")

    def _check_data(self, command: Data) -> None:
        self._encoder = DataEncoder()

    # ---- receiving

    def receive_data(self, data: bytes) -> None:
        """Feed bytes read from the server; ``b""`` means the server closed."""
        if not data:
            self._closed_by_peer = True
            return
        if self.state is State.TLS_HANDSHAKE:
            raise RemoteProtocolError(
                "the server sent data after agreeing to STARTTLS (possible injection)",
                stage=Stage.STARTTLS,
            )
        try:
            self._replies.extend(self._parser.feed(data))
        except ReplyParseError as exc:
            raise RemoteProtocolError(f"the server's reply is not SMTP: {exc}") from exc

    def next_event(self) -> Event | _NeedData:
        if self._replies:
            return self._process(self._replies.popleft())
        if self._closed_by_peer:
            if self._closed_reported:
                return ConnectionClosed()
            self._closed_reported = True
            unanswered = tuple(self._pending)
            self._pending.clear()
            self._pending_group_enders = 0
            self.state = State.CLOSED
            return ConnectionClosed(unanswered)
        return NEED_DATA

    def tls_established(self) -> None:
        """The caller finished the TLS handshake: start over with EHLO."""
        if self.state is not State.TLS_HANDSHAKE:
            raise LocalProtocolError(f"no STARTTLS handshake is due in state {self.state.value}")
        self.tls_active = True
        self.extensions = {}
        self.state = State.GREETED

    def implicit_tls(self) -> None:
        """The connection was TLS from the first byte (port 465)."""
        self.tls_active = True

    def _process(self, reply: Reply) -> ServerReply:
        if self.state is State.AWAIT_GREETING:
            self.state = State.GREETED if reply.code == 220 else State.REFUSED
            return ServerReply(Stage.GREETING, reply)
        if not self._pending:
            if reply.code == 421:
                self.state = State.CLOSED
                return ServerReply(Stage.CONNECTION, reply)
            raise RemoteProtocolError(f"the server sent a reply nobody asked for: {reply}")
        command = self._pending.popleft()
        if type(command) not in _GROUP_MEMBERS:
            self._pending_group_enders -= 1
        stage = _STAGE_OF[type(command)]
        if reply.code == 421:
            # The server is closing: nothing more will be answered.
            self.state = State.CLOSED
            return ServerReply(stage, reply, command)
        self._apply(command, reply)
        return ServerReply(stage, reply, command)

    def _apply(self, command: Command, reply: Reply) -> None:
        """Move the state on for a reply (only where the reply decides).

        The cases of a transaction come first: a match tries them in order.
        """
        code = reply.code
        match command:
            case MailFrom():
                self._mail_taken = code == 250
                if code != 250 and self.state is State.MAIL:
                    self.state = State.READY  # nothing else of this transaction was sent
            case Data():
                self.state = State.BODY if code == 354 else State.READY
                self._body_started = False
            case EndOfData():
                self._mail_taken = False  # the transaction is over, whatever the reply
                if self.state is State.DATA_END_SENT:  # not when the next MAIL went with it
                    self.state = State.READY
            case Rset():
                if 200 <= code < 300:  # a refused RSET ends nothing
                    self._mail_taken = False
            case Ehlo():
                self._mail_taken = False  # EHLO resets any transaction (RFC 5321 §4.1.4)
                if code == 250:
                    self.extensions = parse_ehlo_extensions(reply)
                    self.state = State.READY
                else:
                    self.ehlo_refused = code in (500, 502)
                    self.state = State.GREETED
            case Helo():
                self._mail_taken = False
                self.state = State.READY if code == 250 else State.GREETED
                self.extensions = {}
            case StartTls():
                if code == 220:
                    if self._replies or self._parser.has_partial:
                        raise RemoteProtocolError(
                            "the server sent data after agreeing to STARTTLS (possible injection)",
                            stage=Stage.STARTTLS,
                        )
                    self.state = State.TLS_HANDSHAKE
                else:
                    self.state = State.READY
            case Auth() | AuthResponse() | AuthAbort():
                if code == 334:
                    self.state = State.AUTH_CHALLENGE
                else:
                    self.authenticated = code == 235
                    self.state = State.READY
            case Quit():
                self.state = State.CLOSED
            case _:
                pass


_CHECKS: Final[dict[type, Callable[[ClientConnection, Any], None]]] = {
    StartTls: ClientConnection._check_starttls,
    MailFrom: ClientConnection._check_mail,
    RcptTo: ClientConnection._check_rcpt,
    Auth: ClientConnection._check_auth,
    Ehlo: ClientConnection._check_hello,
    Helo: ClientConnection._check_hello,
    Data: ClientConnection._check_data,
}
