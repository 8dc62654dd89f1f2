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
from typing import Literal, NamedTuple

# RFC 5321 §4.5.3.1.5 allows 512 octets per reply line; real servers exceed it
# (long 5xx policy texts), so be generous but bounded so a hostile peer cannot
# make us buffer without end.
MAX_REPLY_LINE = 8192
MAX_REPLY_LINES = 256

# ASCII only: str patterns would otherwise take any Unicode digit or space.
_ENHANCED = re.compile(r"^([245])\.(\d{1,3})\.(\d{1,3})(?:\s+|$)", re.ASCII)
_FIRST_DIGITS = "0123456789"  # a reply code's first digit, as its enhanced code writes it


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


class Reply(NamedTuple):
    """One complete server reply, e.g. ``Reply(250, "2.1.0", ("Ok",))``.

    ``lines`` holds the text of each line without code, separator or the
    enhanced status code (which is kept apart in ``enhanced``). A named
    tuple, like the protocol's other per-reply records: immutable, and
    several times cheaper to create than a frozen dataclass, which counts
    at thousands of replies a second.
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


def _line_code(raw: bytes) -> int:
    """The reply code of one raw line, checked byte by byte.

    ``b"250-PIPELINING"`` -> ``250``. Works on bytes so that no Unicode digit
    (``"²"``, ``"٢"``) can pass for an ASCII one.
    """
    # bytes.isdigit() is ASCII-only, unlike str.isdigit().
    if len(raw) < 3 or not raw[:3].isdigit():
        raise ReplyParseError(f"not an SMTP reply line: {raw[:80]!r}")
    code = int(raw[:3])
    if not 200 <= code <= 599:
        raise ReplyParseError(f"reply code out of range: {raw[:80]!r}")
    if len(raw) > 3 and raw[3:4] not in (b" ", b"-"):
        raise ReplyParseError(f"bad separator in reply line: {raw[:80]!r}")
    return code


def parse_reply_lines(raw_lines: list[bytes]) -> Reply:
    """Build a Reply from its raw lines (CRLF already removed).

    ``[b"250-mail.example.org", b"250 PIPELINING"]`` ->
    ``Reply(250, None, ("mail.example.org", "PIPELINING"))``;
    ``[b"550 5.1.1 No such user"]`` -> ``Reply(550, "5.1.1", ("No such user",))``.
    """
    if not raw_lines:
        raise ReplyParseError("empty reply")
    code = _line_code(raw_lines[0])
    for raw in raw_lines[1:]:
        if _line_code(raw) != code:
            raise ReplyParseError(f"reply code changed inside a multi-line reply: {raw[:80]!r}")
    return _build_reply(code, raw_lines)


def _build_reply(code: int, raw_lines: list[bytes]) -> Reply:
    """A Reply from lines already checked to carry ``code``."""
    first_digit = _FIRST_DIGITS[code // 100]
    if len(raw_lines) == 1:  # most replies: the same as below, with less to do
        text = raw_lines[0][4:].decode("utf-8", errors="replace")
        if text[1:2] == ".":
            match = _ENHANCED.match(text)
            if match and match.group(1) == first_digit:
                return Reply(code, text[: match.end(3)], (text[match.end() :],))
        return Reply(code, None, (text,))
    texts: list[str] = []
    enhanced: str | None = None
    for index, raw in enumerate(raw_lines):
        text = raw[4:].decode("utf-8", errors="replace")
        if text[1:2] != ".":  # cheap test before the regular expression
            texts.append(text)
            continue
        # RFC 3463 §2: every line of a reply starts with the same enhanced
        # code when the server uses them; keep it once, strip it everywhere.
        # Only the first line decides, so an EHLO keyword that happens to look
        # like a code is not taken for one.
        match = _ENHANCED.match(text)
        if match and match.group(1) == first_digit:
            if enhanced is None and index == 0:
                enhanced = text[: match.end(3)]  # "5.1.1", without what follows
            if enhanced is not None:
                text = text[match.end() :]
        texts.append(text)
    return Reply(code, enhanced, tuple(texts))


class ReplyParser:
    """Incremental reply reader: ``feed(bytes)`` returns the replies completed.

    Accepts bare LF as well as CRLF (some servers and proxies send it). The
    result never depends on how the bytes were split into chunks, and each line
    is checked as it arrives so that garbage fails at once, not after
    ``MAX_REPLY_LINES`` continuation lines.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._pending: list[bytes] = []
        self._pending_code: int | None = None

    def feed(self, data: bytes) -> list[Reply]:
        if self._buffer:
            data = bytes(self._buffer) + data
            self._buffer.clear()
        lines = data.split(b"\n")
        tail = lines.pop()  # what follows the last LF: an unfinished line
        # +1 leaves room for the CR of a line of exactly the maximum length,
        # which must not fail when it arrives in pieces.
        if len(tail) > MAX_REPLY_LINE + 1:
            raise ReplyParseError("reply line too long")
        replies: list[Reply] = []
        for raw in lines:
            if raw.endswith(b"\r"):
                raw = raw[:-1]
            if len(raw) > MAX_REPLY_LINE:
                raise ReplyParseError("reply line too long")
            code = _line_code(raw)
            if self._pending_code is not None and code != self._pending_code:
                raise ReplyParseError(f"reply code changed inside a multi-line reply: {raw[:80]!r}")
            self._pending.append(raw)
            if len(self._pending) > MAX_REPLY_LINES:
                raise ReplyParseError("multi-line reply too long")
            if raw[3:4] == b"-":
                self._pending_code = code
                continue
            pending, self._pending, self._pending_code = self._pending, [], None
            replies.append(_build_reply(code, pending))
        self._buffer += tail
        return replies

    @property
    def has_partial(self) -> bool:
        """True while a reply has started but not ended."""
        return bool(self._buffer) or bool(self._pending)


# ---------------------------------------------------------------------------
# What a reply means to the person sending.
#
# explain() walks one table of rules, most specific first; the first rule whose
# conditions all hold gives the summary and the advice. Providers are
# recognised by what their replies say (" gsmtp", "#AUTH005", "5.7.139"),
# and only then by the host name, so a relay in front of Gmail still gets
# Gmail's advice. The sentence about retrying is added from classify(), so the
# advice can never promise a retry that the outbox will not make.

_GMAIL_APP_PASSWORD = "https://support.google.com/accounts/answer/185833"
_MICROSOFT_SMTP_AUTH = (
    "https://learn.microsoft.com/exchange/clients-and-mobile-in-exchange-online/"
    "authenticated-client-smtp-submission"
)
_YAHOO_APP_PASSWORD = "https://help.yahoo.com/kb/SLN15241.html"

# A person reads the server's words; a hostile server must not fill the
# screen or send terminal escapes through them.
_MAX_SERVER_WORDS = 600
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069]")
_ENHANCED_CODE = re.compile(r"[245]\.\d{1,3}\.\d{1,3}", re.ASCII)
_SERVER_SLOT = re.compile(r"\{([Tt])he server\}")
_SPACE_RUN = re.compile(r"\s+")
_ENHANCED_IN_TEXT = re.compile(r"(?<![\d.])([245])\.(\d{1,3})\.(\d{1,3})(?!\.?\d)", re.ASCII)


@dataclass(frozen=True)
class Explanation:
    """A reply in plain words, for a person.

    ``summary`` says what happened (ending with the code, e.g. "(535 5.7.8)."),
    ``server_words`` is the reply as the server wrote it, ``advice`` says what
    to do next.
    """

    summary: str
    advice: str
    server_words: str

    @property
    def text(self) -> str:
        """The three parts as one message: what happened, the server's words, what next."""
        words = self.server_words
        stop = "" if words.endswith((".", "!", "?")) else "."
        return f"{self.summary} The server said: “{words}”{stop} {self.advice}".rstrip()

    def __str__(self) -> str:
        return self.text


Outcome = Literal["ok", "continue", "transient", "permanent"]


def classify(reply: Reply, stage: Stage) -> Outcome:
    """What a reply means for the conversation: "ok", "continue", "transient", "permanent".

    ``Reply(235, "2.7.0", ...)`` at AUTH -> ``"ok"``; ``334`` at AUTH and ``354``
    at DATA -> ``"continue"``; ``454 4.7.0`` -> ``"transient"``;
    ``550 5.4.5 Daily user sending limit exceeded`` -> ``"permanent"`` (for
    today: the advice says when to try again, the outbox must not).
    A 3xx where no intermediate reply belongs is a server fault, treated like
    any other protocol error: transient.
    """
    if reply.is_positive:
        return "ok"
    if reply.is_intermediate:
        return "continue" if stage in (Stage.AUTH, Stage.DATA) else "transient"
    if reply.is_transient:
        return "transient"
    return "permanent"


#: Words of a 530 that asks for STARTTLS first (RFC 3207), not a login (lower case).
TLS_FIRST_WORDS = ("starttls", "tls first", "encryption")


@dataclass(frozen=True)
class _Rule:
    """One row of the explanation table. Every condition given must hold.

    ``codes``: any of these reply codes; ``classes``: any of these first
    digits; ``enhanced``: any of these enhanced codes, found in the reply's
    enhanced code or in its text; ``words``: any of these (lower case) in the
    text; ``providers``: the provider recognised; ``stages``: where the reply
    came. ``summary`` names the server as ``{The server}`` or ``{the server}``.
    """

    summary: str
    advice: str
    codes: tuple[int, ...] = ()
    classes: tuple[int, ...] = ()
    enhanced: tuple[str, ...] = ()
    words: tuple[str, ...] = ()
    providers: tuple[str, ...] = ()
    stages: tuple[Stage, ...] = ()
    unless_enhanced: tuple[str, ...] = ()


_GMAIL_TEXT = (
    "gsmtp",
    "google.com",
    "username and password not accepted",
    "application-specific password required",
)
_PROVIDER_TEXT: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("gmail", _GMAIL_TEXT),
    ("microsoft", ("5.7.139", "smtpclientauthentication", "outlook.com", "office365", "microsoft")),
    ("yahoo", ("#auth005", "yahoo")),
)
_PROVIDER_HOSTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("gmail", ("gmail.com", "googlemail.com", "google.com")),
    ("microsoft", ("outlook.com", "office365.com", "hotmail.com", "live.com", "office.com")),
    ("yahoo", ("yahoo.com", "ymail.com", "aol.com")),
    ("icloud", ("me.com", "icloud.com", "mac.com")),
    ("fastmail", ("fastmail.com", "messagingengine.com")),
)

_AUTH_STAGES = (Stage.AUTH,)
_ENVELOPE_STAGES = (Stage.MAIL, Stage.RCPT, Stage.DATA, Stage.DATA_END, Stage.BDAT)
_MESSAGE_STAGES = (Stage.DATA, Stage.DATA_END, Stage.BDAT)
_ENCRYPTION = "set the connection security to STARTTLS (port 587) or TLS (port 465)"

_RULES: tuple[_Rule, ...] = (
    # --- Sending limits and closing: whatever the stage. -------------------
    _Rule(
        summary="{The server} says this account has reached its daily sending limit",
        advice=(
            "Gmail limits how many messages and recipients an account may send in 24 hours. "
            "Send it again tomorrow, once the limit has reset, or to fewer recipients."
        ),
        classes=(5,),
        enhanced=("5.4.5",),
        providers=("gmail",),
    ),
    _Rule(
        summary="{The server} says this account has reached its sending limit",
        advice=(
            "Providers limit how much one account may send per day. Send it again tomorrow, "
            "once the limit has reset, or to fewer recipients."
        ),
        classes=(5,),
        words=("sending limit", "sending quota", "daily limit", "daily user sending"),
    ),
    _Rule(
        summary="{The server} is closing the connection (service not available)",
        advice=(
            "This is usually temporary: the server is busy, restarting, or slowing down "
            "senders. Whatever was not finished on this connection was not sent."
        ),
        codes=(421,),
    ),
    # --- Encryption and sign-in, recognised by text. ----------------------
    _Rule(
        summary="{The server} requires an encrypted connection (STARTTLS) first",
        advice=f"In the account settings, {_ENCRYPTION}.",
        codes=(530,),
        words=TLS_FIRST_WORDS,
    ),
    _Rule(
        summary="{The server} allows this sign-in method only over an encrypted connection",
        advice=f"Turn on encryption: {_ENCRYPTION}.",
        codes=(538,),
    ),
    _Rule(
        summary="{The server} wants you to sign in through a web browser first",
        advice=(
            "Sign in to Gmail once in a web browser on this computer and confirm it is you; "
            "then use an app password here, as Gmail needs one when 2-step verification "
            f"is on: {_GMAIL_APP_PASSWORD}"
        ),
        codes=(534,),
        enhanced=("5.7.14",),
        providers=("gmail",),
    ),
    _Rule(
        summary="{The server} needs an app password for this account",
        advice=(
            "With 2-step verification on, Gmail does not accept the normal password from mail "
            "programs. Create an app password and enter it instead of the password: "
            f"{_GMAIL_APP_PASSWORD}"
        ),
        codes=(534,),
        providers=("gmail",),
    ),
    _Rule(
        summary="{The server} rejected the user name or password",
        advice=(
            "Check the password; Gmail needs an app password when 2-step verification is on: "
            f"{_GMAIL_APP_PASSWORD}. The user name is the full Gmail address."
        ),
        codes=(535,),
        providers=("gmail",),
    ),
    _Rule(
        summary="{The server} has SMTP sign-in (SMTP AUTH) turned off for this account",
        advice=(
            "A Microsoft 365 administrator must enable Authenticated SMTP (SMTP AUTH) for "
            "this mailbox or organisation, or sign in with OAuth2 (Microsoft account sign-in) "
            f"instead of a password: {_MICROSOFT_SMTP_AUTH}"
        ),
        classes=(5,),
        words=("smtpclientauthentication is disabled", "smtp auth is disabled"),
    ),
    _Rule(
        summary="{The server} no longer accepts a password here (basic authentication is disabled)",
        advice=(
            "Choose OAuth2 as the authentication method and sign in with the Microsoft "
            "account; Outlook.com accepts only OAuth2 since September 2024. For Microsoft 365, "
            "an administrator can instead enable SMTP AUTH for the mailbox (security defaults "
            f"block it too): {_MICROSOFT_SMTP_AUTH}"
        ),
        classes=(5,),
        enhanced=("5.7.139",),
    ),
    _Rule(
        summary="{The server} refused the sign-in",
        advice=(
            "Check the user name (the full email address) and the password. If both are "
            "right, the mailbox needs OAuth2 or has SMTP AUTH turned off: choose OAuth2 "
            "(Outlook.com accepts only OAuth2 since September 2024), or ask the Microsoft 365 "
            f"administrator to enable SMTP AUTH for the mailbox: {_MICROSOFT_SMTP_AUTH}"
        ),
        codes=(535,),
        providers=("microsoft",),
    ),
    _Rule(
        summary="{The server} has blocked sign-in after too many failed attempts",
        advice=(
            "Wait before trying again: every attempt with a wrong password keeps the block in "
            "place. Yahoo accepts only an app password from mail programs: create one in the "
            f"Yahoo account security settings and enter it instead of the password: "
            f"{_YAHOO_APP_PASSWORD}"
        ),
        classes=(5,),
        words=("#auth005", "too many bad auth", "too many failed"),
    ),
    _Rule(
        summary="{The server} rejected the user name or password",
        advice=(
            "Yahoo accepts only an app password from mail programs: create one in the Yahoo "
            f"account security settings and enter it instead of the password: "
            f"{_YAHOO_APP_PASSWORD}"
        ),
        codes=(535,),
        providers=("yahoo",),
    ),
    _Rule(
        summary="{The server} rejected the user name or password",
        advice=(
            "iCloud Mail needs an app-specific password (made at account.apple.com) and the "
            "full email address as the user name."
        ),
        codes=(535,),
        providers=("icloud",),
    ),
    _Rule(
        summary="{The server} rejected the user name or password",
        advice=(
            "Fastmail needs an app password (Settings → Privacy & Security → App passwords) "
            "and the full email address as the user name."
        ),
        codes=(535,),
        providers=("fastmail",),
    ),
    _Rule(
        summary="{The server} could not check the password just now (a temporary failure)",
        advice=(
            "This does not mean the password is wrong: do not re-enter it. The problem is on "
            "the server's side."
        ),
        codes=(454,),
        stages=_AUTH_STAGES,
    ),
    _Rule(
        summary="{The server} needs a one-time password transition before it accepts this method",
        advice=(
            "Sign in once with the plain password over an encrypted connection (authentication "
            "method “normal password”), or change the password in the provider's webmail; "
            "after that this method works."
        ),
        codes=(432,),
    ),
    _Rule(
        summary="{The server} considers this sign-in method too weak",
        advice=(
            f"Choose a stronger authentication method (OAuth2 or encrypted password), or "
            f"{_ENCRYPTION}. Some providers need an app password here."
        ),
        codes=(534,),
    ),
    _Rule(
        summary="{The server} does not support this sign-in method",
        advice=(
            "Choose another authentication method in the account settings: the server lists "
            "the ones it supports in its EHLO reply (the AUTH line)."
        ),
        codes=(504,),
        stages=_AUTH_STAGES,
    ),
    _Rule(
        summary="{The server} rejected the user name or password",
        advice=(
            "Check both. Many providers need an app password for mail programs, and the user "
            "name is often the full email address."
        ),
        codes=(535,),
    ),
    _Rule(
        summary="{The server} requires sign-in before sending",
        advice=(
            "Turn on authentication in the account settings and enter the user name and password."
        ),
        codes=(530,),
    ),
    # --- Connecting. -------------------------------------------------------
    _Rule(
        summary="{The server} refused the connection",
        advice=(
            "The server does not accept mail from this network: home and mobile addresses are "
            "often on blocklists (such as the Spamhaus PBL), and port 25 is meant for servers. "
            "Send through your provider's submission server (port 587 or 465) with sign-in; if "
            "this is that server, ask the provider."
        ),
        codes=(554,),
        stages=(Stage.GREETING,),
    ),
    _Rule(
        summary="{The server} could not start encryption just now",
        advice="The server's encryption is temporarily unavailable; nothing was sent unencrypted.",
        classes=(4,),
        stages=(Stage.STARTTLS,),
    ),
    _Rule(
        summary="{The server} does not offer encryption (STARTTLS)",
        advice=(
            "Check the server name and port: try TLS on port 465, or ask the provider. Nothing "
            "was sent unencrypted."
        ),
        classes=(5,),
        stages=(Stage.STARTTLS,),
    ),
    # --- Addresses. --------------------------------------------------------
    _Rule(
        summary="{The server} will not pass the message on to other domains (relaying denied)",
        advice=(
            "Turn on authentication in the account settings so the server knows you, and send "
            "from a From address that belongs to this account."
        ),
        classes=(5,),
        words=("relay",),
    ),
    _Rule(
        summary="{The server} does not let this account send with this From address",
        advice=(
            "Use the account's own address as the From address, or add this address as an "
            "alias (send-as address) at the provider."
        ),
        classes=(5,),
        words=(
            "not owned",
            "send as",
            "sendasdenied",
            "not allowed to send",
        ),
        stages=_ENVELOPE_STAGES,
    ),
    _Rule(
        summary="The domain of the From address does not accept mail (null MX), so {the server} "
        "refuses mail from it",
        advice=(
            "Use a From address at a domain that receives mail; replies to this one could "
            "never arrive."
        ),
        classes=(5,),
        enhanced=("5.7.27",),
    ),
    _Rule(
        summary="The recipient's domain does not accept any mail (null MX), {the server} says",
        advice=(
            "Check the domain after the @: it publishes that it takes no mail. Ask the "
            "recipient for another address."
        ),
        codes=(556,),
    ),
    _Rule(
        # Exchange Online says 5.1.10 for an unknown recipient, not for a null MX.
        summary="{The server} says the recipient address does not exist",
        advice=(
            "Check the spelling of the address, or ask the recipient for the right one. The "
            "other recipients are not affected."
        ),
        classes=(5,),
        enhanced=("5.1.10",),
        words=("recipientnotfound", "recipient not found"),
    ),
    _Rule(
        summary="The recipient's domain does not accept any mail (null MX), {the server} says",
        advice=(
            "Check the domain after the @: it publishes that it takes no mail. Ask the "
            "recipient for another address."
        ),
        classes=(5,),
        enhanced=("5.1.10",),
    ),
    _Rule(
        summary="{The server} says the recipient's domain does not exist or takes no mail",
        advice="Check the part of the address after the @ for spelling.",
        classes=(5,),
        enhanced=("5.1.2",),
    ),
    _Rule(
        summary="{The server} says the address is not a valid email address",
        advice="Check the address for typing mistakes, spaces or missing parts.",
        classes=(5,),
        enhanced=("5.1.3", "5.1.7"),
    ),
    _Rule(
        summary="The recipient's mailbox is full, {the server} says",
        advice="The recipient has to make room before new mail can arrive.",
        classes=(4,),
        enhanced=("4.2.2",),
    ),
    _Rule(
        summary="The recipient's mailbox is full, {the server} says",
        advice=(
            "The recipient has to make room before new mail can arrive; tell them another "
            "way, then send it again."
        ),
        classes=(5,),
        enhanced=("5.2.2",),
    ),
    _Rule(
        summary="The recipient's mailbox is full, {the server} says",
        advice="The recipient has to make room before new mail can arrive.",
        words=("mailbox full", "mailbox is full", "over quota", "quota exceeded"),
        classes=(4, 5),
        stages=_ENVELOPE_STAGES,
    ),
    _Rule(
        summary="{The server} says the recipient address does not exist",
        advice=(
            "Check the spelling of the address, or ask the recipient for the right one. The "
            "other recipients are not affected."
        ),
        classes=(5,),
        enhanced=("5.1.1",),
    ),
    _Rule(
        summary="{The server} says the recipient address does not exist",
        advice=(
            "Check the spelling of the address, or ask the recipient for the right one. The "
            "other recipients are not affected."
        ),
        classes=(5,),
        words=("user unknown", "unknown user", "no such user", "does not exist", "not found"),
        stages=(Stage.RCPT,),
    ),
    _Rule(
        summary="{The server} will take no more recipients in this message",
        advice=(
            "This is normal for long recipient lists: the recipients accepted so far go ahead, "
            "and the remaining recipients go in a new transaction (another copy of the "
            "message)."
        ),
        codes=(452,),
        stages=(Stage.RCPT,),
        unless_enhanced=("4.2.2", "4.3.1"),
    ),
    _Rule(
        summary="{The server} accepts fewer recipients per message than this one has",
        advice="Split the recipients over several messages.",
        classes=(5,),
        enhanced=("5.5.3",),
    ),
    # --- The message itself. ----------------------------------------------
    _Rule(
        summary="{The server} says the message is too big",
        advice=(
            "Make it smaller: share large attachments as a link, or split them over several "
            "messages. Many providers stop at 20–25 MB, and attachments grow by a third "
            "when sent."
        ),
        classes=(5,),
        enhanced=("5.3.4", "5.2.3"),
    ),
    _Rule(
        summary="{The server} says the message is too big",
        advice=(
            "Make it smaller: share large attachments as a link, or split them over several "
            "messages. Many providers stop at 20–25 MB, and attachments grow by a third "
            "when sent."
        ),
        codes=(552,),
        stages=(Stage.MAIL, *_MESSAGE_STAGES),
    ),
    _Rule(
        summary="{The server} is short of storage for now",
        advice="The problem is on the server's side.",
        classes=(4,),
        enhanced=("4.3.1",),
    ),
    _Rule(
        summary="{The server} rejected the message because the sender's domain failed its checks "
        "(SPF, DKIM or DMARC)",
        advice=(
            "Send through the provider's own server with sign-in, or ask whoever runs the "
            "sender's domain to set up SPF and DKIM for it."
        ),
        classes=(4, 5),
        enhanced=("5.7.26", "5.7.25", "4.7.26", "4.7.25", "5.7.23", "4.7.23"),
    ),
    _Rule(
        summary="{The server} refused the message as spam or against its policy",
        advice=(
            "Read the server's words for the reason. Links, attachments or wording can look "
            "like spam; if this happens to every message, ask the provider."
        ),
        classes=(5,),
        words=("spam", "blocked", "policy"),
        stages=_MESSAGE_STAGES,
    ),
    # --- Temporary replies with a name. -----------------------------------
    _Rule(
        summary="{The server} asked to try later (greylisting)",
        advice=(
            "This is normal for a first message to a new server, which checks that the sender "
            "comes back; it accepts the message on a later try."
        ),
        classes=(4,),
        words=("greylist", "graylist"),
    ),
    _Rule(
        summary="{The server} says the mailbox is busy or unavailable for now",
        advice="The recipient's server could not take the message at this moment.",
        codes=(450,),
    ),
    _Rule(
        summary="{The server} had a temporary error on its side",
        advice="The problem is on the server's side, not in the message or the settings.",
        codes=(451,),
    ),
    _Rule(
        summary="{The server} is short of storage for now",
        advice="The problem is on the server's side.",
        codes=(452,),
    ),
)

# What a reply that no rule names means at each stage: (failure, advice).
_STAGE_FAILURE: dict[Stage, tuple[str, str, str]] = {
    Stage.GREETING: (
        "{The server} is not accepting connections right now",
        "{The server} refused the connection",
        "Check the server name and port in the account settings, or ask the provider.",
    ),
    Stage.EHLO: (
        "{The server} could not take this computer's greeting (EHLO) right now",
        "{The server} did not accept this computer's greeting (EHLO)",
        "Check that the server name and port belong to an SMTP submission server.",
    ),
    Stage.HELO: (
        "{The server} could not take this computer's greeting (HELO) right now",
        "{The server} did not accept this computer's greeting (HELO)",
        "Check that the server name and port belong to an SMTP submission server.",
    ),
    Stage.STARTTLS: (
        "{The server} could not start encryption just now",
        "{The server} could not start encryption (STARTTLS)",
        "Check the connection security setting: try TLS on port 465, or ask the provider.",
    ),
    Stage.AUTH: (
        "{The server} could not complete the sign-in just now",
        "{The server} refused the sign-in",
        "Check the user name, password and authentication method in the account settings.",
    ),
    Stage.MAIL: (
        "{The server} could not take the sender address just now",
        "{The server} refused the sender (From) address",
        "Check the From address: the server may not let this account send as it.",
    ),
    Stage.RCPT: (
        "{The server} deferred this recipient",
        "{The server} refused this recipient",
        "Check the recipient address and the server's words. The other recipients are not "
        "affected.",
    ),
    Stage.DATA: (
        "{The server} could not take the message just now",
        "{The server} would not take the message",
        "Read the server's words for the reason, or ask the provider.",
    ),
    Stage.DATA_END: (
        "{The server} could not accept the message just now",
        "{The server} refused the message",
        "Read the server's words for the reason; change the message or ask the provider.",
    ),
    Stage.BDAT: (
        "{The server} could not accept the message just now",
        "{The server} refused the message",
        "Read the server's words for the reason; change the message or ask the provider.",
    ),
    Stage.RSET: (
        "{The server} could not reset the transaction",
        "{The server} refused to reset the transaction",
        "This does not affect messages already accepted.",
    ),
    Stage.NOOP: (
        "{The server} answered a keep-alive check (NOOP) with a temporary error",
        "{The server} answered a keep-alive check (NOOP) with an error",
        "This does not affect messages already accepted.",
    ),
    Stage.QUIT: (
        "{The server} answered the goodbye (QUIT) with a temporary error",
        "{The server} answered the goodbye (QUIT) with an error",
        "Nothing to do: this comes after everything else and changes nothing already accepted.",
    ),
    Stage.CONNECTION: (
        "The connection to {the server} failed before it answered",
        "The connection to {the server} failed",
        "Check the network connection and the server name and port.",
    ),
}

_STAGE_SUCCESS: dict[Stage, str] = {
    Stage.GREETING: "{The server} is ready",
    Stage.EHLO: "{The server} accepted the greeting (EHLO)",
    Stage.HELO: "{The server} accepted the greeting (HELO)",
    Stage.STARTTLS: "{The server} agreed to encrypt the connection",
    Stage.AUTH: "{The server} accepted the sign-in",
    Stage.MAIL: "{The server} accepted the sender address",
    Stage.RCPT: "{The server} accepted the recipient",
    Stage.DATA: "{The server} is ready for the message",
    Stage.DATA_END: "{The server} accepted the message for delivery",
    Stage.BDAT: "{The server} accepted the message for delivery",
    Stage.RSET: "{The server} reset the transaction",
    Stage.NOOP: "{The server} is still there",
    Stage.QUIT: "{The server} closed the connection",
    Stage.CONNECTION: "{The server} answered",
}

# Housekeeping stages: a failure there loses nothing, so no retry is promised.
_NO_RETRY_NOTE = (Stage.RSET, Stage.NOOP, Stage.QUIT)


def _clean(text: str) -> str:
    """Server or user supplied text made safe and short for a person to read."""
    text = _SPACE_RUN.sub(" ", _CONTROL.sub("\ufffd", text)).strip()
    if len(text) > _MAX_SERVER_WORDS:
        text = text[: _MAX_SERVER_WORDS - 1].rstrip() + "…"
    return text


def _enhanced_codes(reply: Reply) -> set[str]:
    """The reply's enhanced code plus any written in its text with the right class.

    Some servers put the code only on later lines (where the parser leaves it
    in the text), or mention it in words.
    """
    found = {reply.enhanced} if reply.enhanced else set()
    first = str(reply.code)[0]
    for match in _ENHANCED_IN_TEXT.finditer(reply.text):
        if match.group(1) == first:
            found.add(".".join(match.group(1, 2, 3)))
    return found


def _provider(text: str, host: str | None) -> str | None:
    for name, words in _PROVIDER_TEXT:
        if any(word in text for word in words):
            return name
    if host:
        host = host.lower().rstrip(".")
        for name, domains in _PROVIDER_HOSTS:
            if any(host == domain or host.endswith("." + domain) for domain in domains):
                return name
        if "yahoo" in host.split("."):
            return "yahoo"
    return None


def _matches(
    rule: _Rule,
    reply: Reply,
    stage: Stage,
    text: str,
    enhanced: set[str],
    provider: str | None,
) -> bool:
    return (
        (not rule.codes or reply.code in rule.codes)
        and (not rule.classes or reply.code // 100 in rule.classes)
        and (not rule.stages or stage in rule.stages)
        and (not rule.enhanced or not enhanced.isdisjoint(rule.enhanced))
        and enhanced.isdisjoint(rule.unless_enhanced)
        and (not rule.providers or provider in rule.providers)
        and (not rule.words or any(word in text for word in rule.words))
    )


_RETRY_NOTES = re.compile(
    r"\s*Mailer will (?:try (?:this recipient )?again later|not retry (?:this recipient|this) "
    r"by itself)\."
)


def without_retry_note(text: str) -> str:
    """``text`` without what the outbox will do next ("Mailer will try again
    later."): for a test of the settings, which nothing retries."""
    return _RETRY_NOTES.sub("", text).strip()


def _retry_note(outcome: Outcome, stage: Stage) -> str:
    if stage in _NO_RETRY_NOTE or outcome in ("ok", "continue"):
        return ""
    if outcome == "transient":
        if stage is Stage.RCPT:
            return "Mailer will try this recipient again later."
        return "Mailer will try again later."
    if stage is Stage.RCPT:
        return "Mailer will not retry this recipient by itself."
    return "Mailer will not retry this by itself."


def explain(reply: Reply, stage: Stage, *, host: str | None = None) -> Explanation:
    """A reply in plain words, with advice, for the person sending.

    ``explain(Reply(535, "5.7.8", ("Username and Password not accepted",)), Stage.AUTH)``
    -> summary "The server rejected the user name or password (535 5.7.8).", advice
    "Check the password; Gmail needs an app password when 2-step verification is on: …".
    ``host`` names the server in the summary and helps recognise the provider.
    """
    host_name = _clean(host) if host else ""
    server = f"server {host_name}" if host_name else "server"
    words = _clean(str(reply))
    # A Reply built by hand may carry anything as its enhanced code; show only a real one.
    real_enhanced = reply.enhanced and _ENHANCED_CODE.fullmatch(reply.enhanced)
    code = f"{reply.code} {reply.enhanced}" if real_enhanced else str(reply.code)
    outcome = classify(reply, stage)

    if outcome == "ok":
        summary, advice = _STAGE_SUCCESS[stage], "Nothing to do."
    elif outcome == "continue":
        summary = (
            "{The server} asks for the next step of the sign-in"
            if stage is Stage.AUTH
            else "{The server} is ready for the message text"
        )
        advice = "Nothing to do: Mailer goes on by itself."
    elif reply.is_intermediate:
        summary = "{The server} sent an answer that does not belong at this step"
        advice = "This is a fault in the server; if it keeps happening, ask the provider."
    else:
        text = reply.text.lower()
        enhanced = _enhanced_codes(reply)
        provider = _provider(text, host)
        rule = next(
            (r for r in _RULES if _matches(r, reply, stage, text, enhanced, provider)), None
        )
        if rule is not None:
            summary, advice = rule.summary, rule.advice
        else:
            transient_summary, permanent_summary, advice = _STAGE_FAILURE[stage]
            summary = transient_summary if outcome == "transient" else permanent_summary
    note = _retry_note(outcome, stage)
    if note:
        # Advice may end in a link; a full stop keeps the two sentences apart.
        stop = "" if advice.endswith((".", "!", "?")) else "."
        advice = f"{advice}{stop} {note}"

    # One pass, so a host name that contains "{the server}" is left as it is.
    summary = _SERVER_SLOT.sub(lambda slot: f"{slot.group(1)}he {server}", summary)
    return Explanation(summary=f"{summary} ({code}).", advice=advice, server_words=words)
