"""What a message in the outbox holds, and what the servers said about it, for people.

`read_message` opens a frozen spool file (.eml, written by build.py) for display:
its headers, the HTML or text body, the images the HTML refers to by Content-ID,
and the attachments with their sizes. `read_transcript` pairs the commands and
replies of a stored attempt transcript (smtp/transcript.py renders it as
``C:``/``S:``/``*`` lines) so that each reply can be explained at the step it
answered (smtp/replies.py `explain`). The detail pane (ui/detail_pane.py) shows
both; nothing here imports Qt.
"""

from __future__ import annotations

import dataclasses
import re
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from email import policy as email_policy
from email.message import EmailMessage, Message
from email.parser import BytesParser
from pathlib import Path

from mailer_gui.message.eml import decoded_text
from mailer_gui.sizes import human_size
from mailer_gui.smtp.protocol import REDACTED
from mailer_gui.smtp.replies import (
    Explanation,
    Reply,
    ReplyParseError,
    Stage,
    explain,
    parse_reply_lines,
)

# A body bigger than this is cut for display: the widget that shows it lays it
# out on the GUI thread, and nobody reads megabytes of text in a detail pane.
MAX_BODY_CHARS = 500_000
# An inline image bigger than this is not decoded for display.
MAX_INLINE_IMAGE = 20 * 1024 * 1024

# Control characters and bidi controls: a file name or header must not be able
# to dress "evil\u202etxt.exe" up as "evilexe.txt" or break a line.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069]")
_SPACE_RUN = re.compile(r"\s+")


class MessageFileError(Exception):
    """The spool file cannot be shown; the text says which file and why."""

    def __init__(self, message: str, path: Path) -> None:
        super().__init__(message)
        self.path = path


@dataclass(frozen=True)
class Attachment:
    """A part the message carries as a file: its name, type and decoded size in bytes."""

    name: str
    content_type: str
    size: int


@dataclass(frozen=True)
class InlinePart:
    """A part the HTML shows by its Content-ID (``<img src="cid:...">``)."""

    content_type: str
    data: bytes = field(repr=False)


@dataclass(frozen=True)
class MessageView:
    """A message as a reader sees it. ``html`` is None for a plain-text message.

    ``inline_parts`` maps a Content-ID (without the angle brackets) to its
    part; ``cut`` is True when the body was longer than the display limit.
    """

    subject: str
    sender: str
    to: str
    cc: str
    date: str
    html: str | None
    text: str
    attachments: tuple[Attachment, ...]
    inline_parts: Mapping[str, InlinePart]
    cut: bool = False


def clean_text(text: str) -> str:
    """Text from a message or a server, made safe to show on one line."""
    return _SPACE_RUN.sub(" ", _CONTROL.sub(" ", text)).strip()


# -- the message ----------------------------------------------------------------------


def read_message(path: Path, *, max_body: int = MAX_BODY_CHARS) -> MessageView:
    """Parse the message file at ``path`` for display. Raises MessageFileError.

    Reads the whole file (on a worker thread: spool files can be large).
    Attachment contents are measured, not decoded.
    """
    try:
        reader = path.open("rb")
    except FileNotFoundError as exc:
        raise MessageFileError(
            f"The message file {path} is missing, so the message itself cannot be shown. "
            "The details below come from the outbox.",
            path,
        ) from exc
    except OSError as exc:
        raise MessageFileError(
            f"The message file {path} cannot be read ({exc.strerror or exc}).", path
        ) from exc
    with reader:
        try:
            message = BytesParser(EmailMessage, policy=email_policy.default).parse(reader)
        except OSError as exc:
            raise MessageFileError(
                f"The message file {path} cannot be read ({exc.strerror or exc}).", path
            ) from exc
    if not message.keys():
        raise MessageFileError(f"The file {path} is not an email message: it has no headers.", path)
    try:
        return _view(message, max_body)
    except Exception as exc:  # the stdlib parsers are not hardened against hostile input
        raise MessageFileError(
            f"The message file {path} could not be read as an email message ({exc!r}).", path
        ) from exc


def _header(message: Message, name: str) -> str:
    """A header decoded (RFC 2047) for display; as written when it does not decode."""
    try:
        value = message.get(name)
    except Exception:  # a header the email package cannot parse: show it as written
        value = next((v for k, v in message.raw_items() if k.lower() == name.lower()), None)
    return clean_text(str(value)) if value is not None else ""


def _decoded_size(part: Message) -> int:
    """The size of a part once decoded, without decoding a base64 one."""
    encoding = str(part.get("Content-Transfer-Encoding", "")).strip().lower()
    payload = part.get_payload()
    if encoding == "base64" and isinstance(payload, str):
        blanks = sum(payload.count(c) for c in " \t\r\n")
        stripped = payload.rstrip(" \t\r\n")
        padding = len(stripped) - len(stripped.rstrip("="))
        return max(0, (len(payload) - blanks) * 3 // 4 - padding)
    decoded = part.get_payload(decode=True)
    return len(decoded) if isinstance(decoded, bytes) else 0


def _attachment_name(part: Message, index: int) -> str:
    try:
        name = part.get_filename()
    except Exception:  # a broken RFC 2231 parameter
        name = None
    if name:
        leaf = re.split(r"[/\\]", name)[-1]
        cleaned = clean_text(leaf)
        if cleaned:
            return cleaned
    if part.get_content_type() == "message/rfc822":
        return "attached message.eml"
    return f"attachment {index}"


def _content_id(part: Message) -> str:
    return clean_text(str(part.get("Content-ID", ""))).strip("<>")


def _walk(
    part: Message,
    parent_type: str,
    bodies: tuple[Message | None, ...],
    attachments: list[Attachment],
    inline: dict[str, InlinePart],
) -> None:
    """Sort the leaves: the bodies shown, images of a multipart/related, files."""
    if any(part is body for body in bodies):
        return
    content_type = part.get_content_type()
    if content_type == "message/rfc822":
        inner = part.get_payload()
        first = inner[0] if isinstance(inner, list) and inner else None
        size = len(first.as_bytes()) if isinstance(first, Message) else 0
        attachments.append(
            Attachment(_attachment_name(part, len(attachments) + 1), content_type, size)
        )
        return
    if part.is_multipart():
        for child in part.get_payload():
            if isinstance(child, Message):
                _walk(child, content_type, bodies, attachments, inline)
        return
    content_id = _content_id(part)
    if parent_type == "multipart/related" and content_id and part.get_content_maintype() == "image":
        data = part.get_payload(decode=True)
        if isinstance(data, bytes) and len(data) <= MAX_INLINE_IMAGE:
            inline[content_id] = InlinePart(content_type, data)
        return
    if (
        content_type in ("text/plain", "text/html")
        and part.get_content_disposition() != "attachment"
        and not part.get_filename()
        and parent_type in ("multipart/alternative", "multipart/related")
    ):
        return  # another rendering of the body (the HTML twin of the text)
    attachments.append(
        Attachment(_attachment_name(part, len(attachments) + 1), content_type, _decoded_size(part))
    )


def _cut(text: str, limit: int) -> tuple[str, bool]:
    if len(text) <= limit:
        return text, False
    return text[:limit], True


def _view(message: EmailMessage, max_body: int) -> MessageView:
    html_part = message.get_body(preferencelist=("html",))
    text_part = message.get_body(preferencelist=("plain",))
    attachments: list[Attachment] = []
    inline: dict[str, InlinePart] = {}
    _walk(message, "", (html_part, text_part), attachments, inline)
    cut = False
    html: str | None = None
    if html_part is not None:
        markup = decoded_text(html_part)
        if len(markup) <= max_body:
            html = markup
        else:
            cut = True  # half a document renders badly: show the text instead
    text = decoded_text(text_part) if text_part is not None else ""
    text, text_cut = _cut(text, max_body)
    return MessageView(
        subject=_header(message, "Subject"),
        sender=_header(message, "From"),
        to=_header(message, "To"),
        cc=_header(message, "Cc"),
        date=_header(message, "Date"),
        html=html,
        text=text,
        attachments=tuple(attachments),
        inline_parts=inline,
        cut=cut or text_cut,
    )


# -- the transcript of an attempt -----------------------------------------------------

_COMMAND_STAGES: Mapping[str, Stage] = {
    "EHLO": Stage.EHLO,
    "HELO": Stage.HELO,
    "STARTTLS": Stage.STARTTLS,
    "AUTH": Stage.AUTH,
    "MAIL": Stage.MAIL,
    "RCPT": Stage.RCPT,
    "DATA": Stage.DATA,
    "BDAT": Stage.BDAT,
    "RSET": Stage.RSET,
    "NOOP": Stage.NOOP,
    "QUIT": Stage.QUIT,
}
# Session notes that matter for pairing (mailer_gui/smtp/session.py writes them).
_CONNECTING = re.compile(r"connecting to (\S+) port \d+")
_SENDING_BODY = "sending the message"
END_OF_DATA = "."  # the command a reply to the message itself answers

# Replies at these steps change nothing already sent: not worth explaining.
_HOUSEKEEPING = (Stage.QUIT, Stage.RSET, Stage.NOOP)


@dataclass(frozen=True)
class Exchange:
    """One server reply and the client line it answered.

    ``command`` is that line as logged (``RCPT TO:<bob@example.org>``),
    ``"."`` for the end of the message, ``""`` for a greeting or a reply
    nobody asked for.
    """

    stage: Stage
    command: str
    reply: Reply
    host: str | None = None  # the server of the connection it came on

    @property
    def is_problem(self) -> bool:
        """A refusal or a temporary failure at a step that matters."""
        return self.reply.code >= 400 and self.stage not in _HOUSEKEEPING


@dataclass(frozen=True)
class Conversation:
    """What one attempt's transcript says: the server's host and each exchange, in order.

    ``host`` is the server of the last connection; ``hosts`` every server
    connected to, in order (direct delivery goes to one or more per domain).
    """

    host: str | None
    exchanges: tuple[Exchange, ...]
    notes: tuple[str, ...] = ()
    hosts: tuple[str, ...] = ()

    @property
    def problems(self) -> tuple[Exchange, ...]:
        return tuple(e for e in self.exchanges if e.is_problem)

    def explain(self, exchange: Exchange, *, alone: bool = False) -> Explanation:
        """Plain words for one exchange; ``alone`` as in `recipient_explanation`."""
        explanation = explain(exchange.reply, exchange.stage, host=exchange.host or self.host)
        return _for_one_recipient(explanation) if alone else explanation

    def rcpt_reply(self, address: str) -> Exchange | None:
        """The last reply to ``RCPT TO:<address>`` in this attempt."""
        wanted = f"<{address.lower()}>"
        found = None
        for exchange in self.exchanges:
            if exchange.stage is Stage.RCPT and wanted in exchange.command.lower():
                found = exchange
        return found


def _client_stage(text: str, previous: Stage | None) -> Stage:
    word = text.split(" ", 1)[0].split(":", 1)[0].upper()
    if word in _COMMAND_STAGES:
        return _COMMAND_STAGES[word]
    if text in (REDACTED, "*") or previous is Stage.AUTH:
        return Stage.AUTH  # a SASL response (always logged redacted) or abort
    return Stage.CONNECTION


def read_transcript(text: str) -> Conversation:
    """Pair each server reply in a rendered transcript with the command it answers.

    Pipelined commands are answered in order (RFC 2920), so a queue of the
    commands sent and not yet answered gives each reply its step::

        C: MAIL FROM:<ann@example.org>        -> (MAIL, 250)
        C: RCPT TO:<nobody@example.org>       -> (RCPT, 550 5.1.1)
        S: 250 2.1.0 OK
        S: 550 5.1.1 No such user here

    The body is not logged; the note "sending the message" stands for it, and
    the reply after it answers the final ".". Lines that are not SMTP replies
    are skipped.
    """
    host: str | None = None
    hosts: list[str] = []
    exchanges: list[Exchange] = []
    notes: list[str] = []
    waiting: deque[tuple[Stage, str]] = deque()
    nothing_sent = True  # a reply before any command or note is a greeting
    reply_lines: list[bytes] = []
    last_stage: Stage | None = None

    for line in text.splitlines():
        kind, _, rest = line.partition(" ")
        if kind == "S:":
            raw = rest.encode("utf-8", "surrogateescape")
            reply_lines.append(raw)
            if raw[3:4] == b"-":
                continue  # a multi-line reply goes on
            lines, reply_lines = reply_lines, []
            try:
                reply = parse_reply_lines(lines)
            except ReplyParseError:
                continue
            if waiting:
                stage, command = waiting.popleft()
            elif nothing_sent:
                stage, command = Stage.GREETING, ""
            else:
                stage, command = Stage.CONNECTION, ""
            exchanges.append(Exchange(stage, command, reply, host))
            continue
        reply_lines = []
        if kind == "C:":
            stage = _client_stage(rest, last_stage)
            last_stage = stage
            waiting.append((stage, rest))
            nothing_sent = False
        elif kind == "*":
            notes.append(rest)
            connecting = _CONNECTING.match(rest)
            if connecting:
                host = connecting.group(1)
                hosts.append(host)
                # A new connection: its first reply is the greeting, whatever came before.
                waiting.clear()
                waiting.append((Stage.GREETING, ""))
            elif rest.startswith(_SENDING_BODY):
                waiting.append((Stage.DATA_END, END_OF_DATA))
    return Conversation(host, tuple(exchanges), tuple(notes), tuple(dict.fromkeys(hosts)))


def recipient_explanation(
    address: str,
    code: int | None,
    enhanced: str | None,
    text: str | None,
    conversation: Conversation | None,
    *,
    alone: bool = False,
) -> Explanation | None:
    """Plain words for a recipient's stored reply; None for a positive one or none at all.

    The step matters (a 452 at RCPT is "too many recipients", after the
    message it is "short of storage"): the RCPT reply for this address when it
    carried this code, else the message's own refusal in the same attempt.
    ``alone``: no other recipient took the message (it had one, or every one
    was refused), so nothing is said of "the other recipients".
    """
    if code is None or code < 400:
        return None
    reply = Reply(code, enhanced, (text or "",))
    stage = Stage.RCPT
    host = None
    if conversation is not None:
        # The server that gave this reply: with several (direct delivery to
        # several domains), the one the exchange came from, not the last.
        host = conversation.host if len(conversation.hosts) <= 1 else None
        rcpt = conversation.rcpt_reply(address)
        if rcpt is not None and rcpt.reply.code == code:
            host = rcpt.host or host
        else:
            for exchange in reversed(conversation.problems):
                if exchange.reply.code == code and exchange.stage is not Stage.RCPT:
                    stage = exchange.stage
                    host = exchange.host or host
                    break
    explanation = explain(reply, stage, host=host)
    return _for_one_recipient(explanation) if alone else explanation


_OTHERS = "The other recipients are not affected."


def _for_one_recipient(explanation: Explanation) -> Explanation:
    """``explanation`` without a word of other recipients (the message had one)."""
    if _OTHERS not in explanation.advice:
        return explanation
    advice = explanation.advice.replace(_OTHERS, "").replace("  ", " ").strip()
    return dataclasses.replace(explanation, advice=advice)


__all__ = [
    "END_OF_DATA",
    "MAX_BODY_CHARS",
    "Attachment",
    "Conversation",
    "Exchange",
    "InlinePart",
    "MessageFileError",
    "MessageView",
    "clean_text",
    "human_size",
    "read_message",
    "read_transcript",
    "recipient_explanation",
]
