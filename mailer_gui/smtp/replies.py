"""SMTP replies: parsing the server's lines, and what a reply means.

`ReplyParser` turns bytes from the server into `Reply` values (RFC 5321 §4.2,
multi-line replies, RFC 3463 enhanced status codes). `explain()` turns a reply
into plain words with advice for the person sending. The protocol state
machine (protocol.py) uses the parser; the session, the CLI and the GUI use
the explanations.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

# RFC 5321 §4.5.3.1.5 allows 512 octets per reply line; real servers exceed it
# (long 5xx policy texts), so be generous but bounded so a hostile peer cannot
# make us buffer without end.
MAX_REPLY_LINE = 8192
MAX_REPLY_LINES = 256

_ENHANCED = re.compile(r"^([245])\.(\d{1,3})\.(\d{1,3})(?:\s+|$)")


class Stage(enum.Enum):
    """Where in the conversation a reply came, which changes what it means."""

    GREETING = "greeting"
    EHLO = "ehlo"
    HELO = "helo"
    STARTTLS = "starttls"
    AUTH = "auth"
    MAIL = "mail"
    RCPT = "rcpt"
    DATA = "data"
    DATA_END = "data-end"
    BDAT = "bdat"
    RSET = "rset"
    NOOP = "noop"
    QUIT = "quit"
    CONNECTION = "connection"


class ReplyParseError(ValueError):
    """The server sent bytes that are not an SMTP reply."""


@dataclass(frozen=True)
class Reply:
    """One complete server reply, e.g. ``Reply(250, "2.1.0", ("Ok",))``.

    ``lines`` holds the text of each line without code, separator or the
    enhanced status code (which is kept apart in ``enhanced``).
    """

    code: int
    enhanced: str | None
    lines: tuple[str, ...]

    @property
    def text(self) -> str:
        """The server's words on one line, as a person would read them."""
        return " ".join(line for line in self.lines if line)

    @property
    def is_positive(self) -> bool:
        return 200 <= self.code < 300

    @property
    def is_intermediate(self) -> bool:
        return 300 <= self.code < 400

    @property
    def is_transient(self) -> bool:
        return 400 <= self.code < 500

    @property
    def is_permanent(self) -> bool:
        return self.code >= 500

    def __str__(self) -> str:
        enhanced = f" {self.enhanced}" if self.enhanced else ""
        return f"{self.code}{enhanced} {self.text}".rstrip()


def parse_reply_lines(raw_lines: list[bytes]) -> Reply:
    """Build a Reply from its raw lines (CRLF already removed).

    ``[b"250-mail.example.org", b"250 PIPELINING"]`` ->
    ``Reply(250, None, ("mail.example.org", "PIPELINING"))``.
    """
    code: int | None = None
    texts: list[str] = []
    enhanced: str | None = None
    for index, raw in enumerate(raw_lines):
        line = raw.decode("utf-8", errors="replace")
        if len(line) < 3 or not line[:3].isdigit():
            raise ReplyParseError(f"not an SMTP reply line: {line[:80]!r}")
        line_code = int(line[:3])
        if not 200 <= line_code <= 599:
            raise ReplyParseError(f"reply code out of range: {line[:80]!r}")
        if code is None:
            code = line_code
        elif line_code != code:
            raise ReplyParseError(f"reply code changed inside a multi-line reply: {line[:80]!r}")
        text = line[4:] if len(line) > 3 else ""
        # RFC 3463 §2: every line of a reply starts with the same enhanced
        # code when the server uses them; keep it once, strip it everywhere.
        match = _ENHANCED.match(text)
        if match and match.group(1) == str(line_code)[0]:
            if enhanced is None and index == 0:
                enhanced = ".".join(match.group(1, 2, 3))
            if enhanced is not None:
                text = text[match.end() :]
        texts.append(text)
    if code is None:
        raise ReplyParseError("empty reply")
    return Reply(code, enhanced, tuple(texts))


class ReplyParser:
    """Incremental reply reader: ``feed(bytes)`` returns the replies completed.

    Accepts bare LF as well as CRLF (some servers and proxies send it).
    """

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._pending: list[bytes] = []

    def feed(self, data: bytes) -> list[Reply]:
        self._buffer += data
        replies: list[Reply] = []
        while True:
            newline = self._buffer.find(b"\n")
            if newline < 0:
                if len(self._buffer) > MAX_REPLY_LINE:
                    raise ReplyParseError("reply line too long")
                break
            raw = bytes(self._buffer[:newline])
            del self._buffer[: newline + 1]
            if raw.endswith(b"\r"):
                raw = raw[:-1]
            if len(raw) > MAX_REPLY_LINE:
                raise ReplyParseError("reply line too long")
            self._pending.append(raw)
            if len(self._pending) > MAX_REPLY_LINES:
                raise ReplyParseError("multi-line reply too long")
            if len(raw) >= 4 and raw[3:4] == b"-":
                continue
            if len(raw) > 3 and raw[3:4] not in (b" ", b"-"):
                raise ReplyParseError(f"bad separator in reply line: {raw[:80]!r}")
            lines, self._pending = self._pending, []
            replies.append(parse_reply_lines(lines))
        return replies

    @property
    def has_partial(self) -> bool:
        """True while a reply has started but not ended."""
        return bool(self._buffer) or bool(self._pending)
