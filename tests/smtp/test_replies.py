"""Tests for mailer_gui.smtp.replies: the reply parser, classify() and explain().

The parser is driven with bytes alone: tables of wire text and the replies (or
the error) expected, then hypothesis for any bytes in any chunking. explain()
is checked against the provider replies people actually get.
"""

from __future__ import annotations

import itertools
import re
import unicodedata
from collections.abc import Sequence

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailer_gui.smtp.replies import (
    MAX_REPLY_LINE,
    MAX_REPLY_LINES,
    Explanation,
    Reply,
    ReplyParseError,
    ReplyParser,
    Stage,
    classify,
    explain,
    parse_reply_lines,
)

# --------------------------------------------------------------------------
# Helpers


def feed_chunks(chunks: Sequence[bytes]) -> tuple[list[Reply], ReplyParser]:
    parser = ReplyParser()
    replies: list[Reply] = []
    for chunk in chunks:
        replies.extend(parser.feed(chunk))
    return replies, parser


def split_at(data: bytes, cuts: Sequence[int]) -> list[bytes]:
    points = [0, *sorted(set(cuts)), len(data)]
    return [data[start:end] for start, end in itertools.pairwise(points)]


def byte_by_byte(data: bytes) -> list[bytes]:
    return [data[i : i + 1] for i in range(len(data))]


def outcome_of(chunks: Sequence[bytes]) -> list[Reply] | None:
    """The replies parsed, or None when the parser raised ReplyParseError."""
    try:
        replies, _ = feed_chunks(chunks)
    except ReplyParseError:
        return None
    return replies


def wire(code: int, enhanced: str | None, lines: Sequence[str], eol: bytes = b"\r\n") -> bytes:
    """A reply as a server writes it: every line but the last with '-'."""
    out = b""
    for index, text in enumerate(lines):
        sep = " " if index == len(lines) - 1 else "-"
        prefix = f"{enhanced} " if enhanced else ""
        out += f"{code}{sep}{prefix}{text}".encode() + eol
    return out


GMAIL_535 = (
    b"535-5.7.8 Username and Password not accepted. For more information, go to\r\n"
    b"535 5.7.8  https://support.google.com/mail/?p=BadCredentials a1sm123 - gsmtp\r\n"
)


# --------------------------------------------------------------------------
# Parser: tables

PARSE_CASES: list[tuple[str, bytes, list[Reply]]] = [
    ("single line", b"250 OK\r\n", [Reply(250, None, ("OK",))]),
    ("code only", b"250\r\n", [Reply(250, None, ("",))]),
    ("code and space", b"221 \r\n", [Reply(221, None, ("",))]),
    (
        "multi-line EHLO",
        b"250-mail.example.org Hello\r\n250-PIPELINING\r\n250-SIZE 35882577\r\n250 STARTTLS\r\n",
        [Reply(250, None, ("mail.example.org Hello", "PIPELINING", "SIZE 35882577", "STARTTLS"))],
    ),
    ("enhanced code", b"250 2.1.0 Ok\r\n", [Reply(250, "2.1.0", ("Ok",))]),
    (
        "enhanced code with three-digit detail",
        b"535 5.7.139 Authentication unsuccessful\r\n",
        [Reply(535, "5.7.139", ("Authentication unsuccessful",))],
    ),
    ("enhanced code and nothing else", b"250 2.0.0\r\n", [Reply(250, "2.0.0", ("",))]),
    (
        "enhanced code on every line (Gmail)",
        GMAIL_535,
        [
            Reply(
                535,
                "5.7.8",
                (
                    "Username and Password not accepted. For more information, go to",
                    "https://support.google.com/mail/?p=BadCredentials a1sm123 - gsmtp",
                ),
            )
        ],
    ),
    (
        "enhanced code only on the first line",
        b"550-5.1.1 The email account\r\n550 does not exist\r\n",
        [Reply(550, "5.1.1", ("The email account", "does not exist"))],
    ),
    (
        "enhanced code only on a later line stays text",
        b"250-mail.example.org\r\n250 2.0.0 ENHANCEDSTATUSCODES\r\n",
        [Reply(250, None, ("mail.example.org", "2.0.0 ENHANCEDSTATUSCODES"))],
    ),
    (
        "enhanced class must match the reply code",
        b"250 5.1.1 odd\r\n",
        [Reply(250, None, ("5.1.1 odd",))],
    ),
    (
        "enhanced code must be followed by a space",
        b"250 2.1.0Ok\r\n",
        [Reply(250, None, ("2.1.0Ok",))],
    ),
    (
        "non-ASCII digits are not an enhanced code",
        "250 2.١.٠ x\r\n".encode(),
        [Reply(250, None, ("2.١.٠ x",))],
    ),
    ("bare LF", b"220 mail.example.org ESMTP\n", [Reply(220, None, ("mail.example.org ESMTP",))]),
    (
        "CRLF and bare LF mixed in one reply",
        b"250-first\n250 second\r\n",
        [Reply(250, None, ("first", "second"))],
    ),
    (
        "two replies in one chunk (pipelining)",
        b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n",
        [
            Reply(250, "2.1.0", ("Ok",)),
            Reply(250, "2.1.5", ("Ok",)),
            Reply(354, None, ("End data with <CR><LF>.<CR><LF>",)),
        ],
    ),
    ("UTF-8 text", "250 Grüße\r\n".encode(), [Reply(250, None, ("Grüße",))]),
    ("invalid UTF-8 replaced", b"250 caf\xe9\r\n", [Reply(250, None, ("caf\ufffd",))]),
    (
        "line of exactly the maximum length",
        b"250 " + b"x" * (MAX_REPLY_LINE - 4) + b"\r\n",
        [Reply(250, None, ("x" * (MAX_REPLY_LINE - 4),))],
    ),
    (
        "the maximum number of lines",
        b"250-x\r\n" * (MAX_REPLY_LINES - 1) + b"250 end\r\n",
        [Reply(250, None, ("x",) * (MAX_REPLY_LINES - 1) + ("end",))],
    ),
]


@pytest.mark.parametrize(
    ("data", "expected"), [c[1:] for c in PARSE_CASES], ids=[c[0] for c in PARSE_CASES]
)
def test_parse_all_at_once(data: bytes, expected: list[Reply]) -> None:
    replies, parser = feed_chunks([data])
    assert replies == expected
    assert not parser.has_partial


@pytest.mark.parametrize(
    ("data", "expected"), [c[1:] for c in PARSE_CASES], ids=[c[0] for c in PARSE_CASES]
)
def test_parse_byte_by_byte(data: bytes, expected: list[Reply]) -> None:
    replies, parser = feed_chunks(byte_by_byte(data))
    assert replies == expected
    assert not parser.has_partial


def test_reply_is_returned_only_when_its_last_line_arrives() -> None:
    parser = ReplyParser()
    assert parser.feed(b"250-mail.example.org\r\n250-PIPE") == []
    assert parser.has_partial
    assert parser.feed(b"LINING\r\n250 SIZE") == []
    assert parser.feed(b"\r") == []
    assert parser.has_partial
    assert parser.feed(b"\n") == [Reply(250, None, ("mail.example.org", "PIPELINING", "SIZE"))]
    assert not parser.has_partial


def test_parser_goes_on_after_a_reply() -> None:
    parser = ReplyParser()
    assert parser.feed(b"220 ready\r\n") == [Reply(220, None, ("ready",))]
    assert parser.feed(b"250 2.0.0 Ok\r\n") == [Reply(250, "2.0.0", ("Ok",))]


PARSE_ERRORS: list[tuple[str, bytes]] = [
    ("bad separator", b"250x ok\r\n"),
    ("bad separator on a later line", b"250-first\r\n250_second\r\n"),
    ("letter in the code", b"2a0 ok\r\n"),
    ("not a reply at all", b"HTTP/1.1 400 Bad Request\r\n"),
    ("code too short", b"25\r\n"),
    ("empty line", b"\r\n"),
    ("superscript digit in the code", "²50 ok\r\n".encode()),
    ("code below 200", b"199 too low\r\n"),
    ("code above 599", b"600 too high\r\n"),
    ("code 000", b"000 zero\r\n"),
    ("code changes mid-reply", b"250-first\r\n251 second\r\n"),
    ("line one byte too long", b"250 " + b"x" * (MAX_REPLY_LINE - 3) + b"\r\n"),
    ("line far too long, no end", b"250 " + b"x" * (MAX_REPLY_LINE + 10)),
    ("too many lines", b"250-x\r\n" * MAX_REPLY_LINES + b"250 end\r\n"),
]


@pytest.mark.parametrize("data", [c[1] for c in PARSE_ERRORS], ids=[c[0] for c in PARSE_ERRORS])
def test_parse_error_all_at_once(data: bytes) -> None:
    with pytest.raises(ReplyParseError):
        feed_chunks([data])


@pytest.mark.parametrize("data", [c[1] for c in PARSE_ERRORS], ids=[c[0] for c in PARSE_ERRORS])
def test_parse_error_byte_by_byte(data: bytes) -> None:
    with pytest.raises(ReplyParseError):
        feed_chunks(byte_by_byte(data))


def test_bad_line_fails_at_once_not_at_the_end_of_the_reply() -> None:
    parser = ReplyParser()
    parser.feed(b"250-first\r\n")
    with pytest.raises(ReplyParseError, match="changed"):
        parser.feed(b"251-second\r\n")
    with pytest.raises(ReplyParseError, match="not an SMTP reply"):
        ReplyParser().feed(b"garbage-line\r\n")


def test_too_long_line_fails_before_its_end_arrives() -> None:
    parser = ReplyParser()
    with pytest.raises(ReplyParseError, match="too long"):
        for _ in range(MAX_REPLY_LINE):
            parser.feed(b"xx")


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        (
            [b"250-mail.example.org", b"250 PIPELINING"],
            Reply(250, None, ("mail.example.org", "PIPELINING")),
        ),
        ([b"550 5.1.1 No such user"], Reply(550, "5.1.1", ("No such user",))),
    ],
)
def test_parse_reply_lines(lines: list[bytes], expected: Reply) -> None:
    assert parse_reply_lines(lines) == expected


@pytest.mark.parametrize(
    "lines",
    [[], ["²50 ok".encode()], [b"250x"], [b"250-a", b"354 b"], [b"abc"]],
    ids=["empty", "superscript digit", "bad separator", "code change", "letters"],
)
def test_parse_reply_lines_rejects(lines: list[bytes]) -> None:
    with pytest.raises(ReplyParseError):
        parse_reply_lines(lines)


@pytest.mark.parametrize(
    ("reply", "positive", "intermediate", "transient", "permanent"),
    [
        (Reply(250, None, ("ok",)), True, False, False, False),
        (Reply(354, None, ("go on",)), False, True, False, False),
        (Reply(451, "4.3.0", ("later",)), False, False, True, False),
        (Reply(550, "5.1.1", ("no",)), False, False, False, True),
    ],
)
def test_reply_kind(
    reply: Reply, positive: bool, intermediate: bool, transient: bool, permanent: bool
) -> None:
    assert (reply.is_positive, reply.is_intermediate) == (positive, intermediate)
    assert (reply.is_transient, reply.is_permanent) == (transient, permanent)


def test_reply_text_and_str() -> None:
    reply = Reply(550, "5.1.1", ("The email account", "", "does not exist"))
    assert reply.text == "The email account does not exist"
    assert str(reply) == "550 5.1.1 The email account does not exist"
    assert str(Reply(250, None, ("",))) == "250"


# --------------------------------------------------------------------------
# Parser: hypothesis

CHUNKING = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# Lines that are nearly SMTP, so that the interesting paths (continuations,
# enhanced codes, code changes, the length limit) are reached, not only the
# first-line errors that random bytes give.
@st.composite
def _smtpish_line(draw: st.DrawFn) -> bytes:
    head = draw(
        st.sampled_from(
            [b"220", b"250", b"334", b"354", b"421", b"535", b"550", b"199", b"2a0", b"60", b""]
        )
    )
    head += draw(st.sampled_from([b" ", b" ", b"-", b"-", b"", b"x"]))
    head += draw(st.sampled_from([b"", b"2.1.0 ", b"5.7.8 ", b"4.7.0 ", b"5.7.139 "]))
    if draw(st.integers(0, 4)) == 0:
        # A line right at the length limit, where chunking once changed the result.
        length = draw(st.integers(MAX_REPLY_LINE - 1, MAX_REPLY_LINE + 2))
        text = b"x" * max(0, length - len(head))
    else:
        text = draw(st.binary(max_size=24))
    return head + text + draw(st.sampled_from([b"\r\n", b"\r\n", b"\n", b"\r", b""]))


_smtpish = st.lists(_smtpish_line(), max_size=8).map(b"".join)
_any_input = st.one_of(st.binary(max_size=400), _smtpish)


@CHUNKING
@given(data=_any_input, cuts=st.lists(st.integers(min_value=0, max_value=20_000), max_size=12))
def test_any_bytes_any_chunking_same_result_or_parse_error(data: bytes, cuts: list[int]) -> None:
    # Any other exception fails the test by itself; a hang is caught by
    # pytest-timeout (pyproject sets it for every test).
    whole = outcome_of([data])
    chunked = outcome_of(split_at(data, [cut for cut in cuts if cut <= len(data)]))
    single_bytes = outcome_of(byte_by_byte(data))
    assert chunked == whole
    assert single_bytes == whole


@CHUNKING
@given(data=_any_input)
def test_parser_consumes_every_complete_line(data: bytes) -> None:
    try:
        replies, parser = feed_chunks([data])
    except ReplyParseError:
        return
    *complete, tail = data.split(b"\n")
    complete = [line.removesuffix(b"\r") for line in complete]
    # Every line that ends a reply has produced one; only an unfinished
    # multi-line reply or an unfinished line may be left waiting.
    assert len(replies) == sum(1 for line in complete if line[3:4] != b"-")
    continues = bool(complete) and complete[-1][3:4] == b"-"
    assert parser.has_partial == (bool(tail) or continues)


_text_char = st.characters(exclude_categories=["Cs"], exclude_characters="\r\n")


@st.composite
def replies(draw: st.DrawFn) -> Reply:
    code = draw(st.integers(200, 599))
    enhanced = draw(
        st.one_of(
            st.none(),
            st.tuples(st.integers(0, 999), st.integers(0, 999)).map(
                lambda sd: f"{str(code)[0]}.{sd[0]}.{sd[1]}"
            ),
        )
    )
    if code // 100 == 3:
        enhanced = None  # RFC 3463 has classes 2, 4 and 5 only
    lines = draw(st.lists(st.text(_text_char, max_size=30), min_size=1, max_size=5))
    if draw(st.integers(0, 3)) == 0:
        # One line right at the length limit (code, separator, code, text).
        prefix = 4 + (len(enhanced) + 1 if enhanced else 0)
        lines[-1] = "y" * (MAX_REPLY_LINE - prefix - draw(st.integers(0, 2)))
    if enhanced:
        # The parser strips the code and the spaces after it.
        lines = [line.lstrip(" \t\x0b\x0c") for line in lines]
    elif re.match(rf"{str(code)[0]}\.\d{{1,3}}\.\d{{1,3}}(\s|$)", lines[0], re.ASCII):
        lines[0] = "x" + lines[0]
    return Reply(code, enhanced, tuple(lines))


@CHUNKING
@given(
    sent=st.lists(replies(), min_size=1, max_size=4),
    eol=st.sampled_from([b"\r\n", b"\n"]),
    data=st.data(),
)
def test_round_trip_in_any_chunking(sent: list[Reply], eol: bytes, data: st.DataObject) -> None:
    raw = b"".join(wire(r.code, r.enhanced, r.lines, eol) for r in sent)
    cuts = data.draw(st.lists(st.integers(min_value=0, max_value=len(raw)), max_size=12))
    for chunks in (split_at(raw, cuts), byte_by_byte(raw)):
        received, parser = feed_chunks(chunks)
        assert received == sent
        assert not parser.has_partial


# --------------------------------------------------------------------------
# classify()


@pytest.mark.parametrize(
    ("reply", "stage", "expected"),
    [
        (Reply(220, None, ("ready",)), Stage.GREETING, "ok"),
        (Reply(235, "2.7.0", ("Accepted",)), Stage.AUTH, "ok"),
        (Reply(334, None, ("VXNlcm5hbWU6",)), Stage.AUTH, "continue"),
        (Reply(354, None, ("Go ahead",)), Stage.DATA, "continue"),
        (Reply(354, None, ("Go ahead",)), Stage.MAIL, "transient"),
        (Reply(454, "4.7.0", ("Temporary authentication failure",)), Stage.AUTH, "transient"),
        (Reply(421, "4.7.0", ("Try again later, closing connection",)), Stage.RCPT, "transient"),
        (Reply(452, "4.5.3", ("Too many recipients",)), Stage.RCPT, "transient"),
        (Reply(550, "5.4.5", ("Daily user sending limit exceeded",)), Stage.DATA_END, "permanent"),
        (Reply(535, "5.7.8", ("Username and Password not accepted",)), Stage.AUTH, "permanent"),
        (Reply(554, None, ("No SMTP service here",)), Stage.GREETING, "permanent"),
    ],
)
def test_classify(reply: Reply, stage: Stage, expected: str) -> None:
    assert classify(reply, stage) == expected


# --------------------------------------------------------------------------
# explain(): the replies people get

# (id, wire, stage, host, classify(), words the advice must contain,
#  words the summary must contain). Words are compared in lower case.
EXPLAIN_CASES: list[tuple[str, bytes, Stage, str | None, str, list[str], list[str]]] = [
    (
        "gmail 535 5.7.8 bad credentials",
        GMAIL_535,
        Stage.AUTH,
        None,
        "permanent",
        ["app password", "2-step verification", "support.google.com/accounts/answer/185833"],
        ["user name or password", "535 5.7.8"],
    ),
    (
        "gmail 535 recognised by host only",
        b"535 5.7.8 Authentication failed\r\n",
        Stage.AUTH,
        "smtp.gmail.com",
        "permanent",
        ["gmail", "app password"],
        ["smtp.gmail.com", "user name or password"],
    ),
    (
        "gmail 534 5.7.9 application-specific password",
        b"534-5.7.9 Application-specific password required. Learn more at\r\n"
        b"534 5.7.9  https://support.google.com/mail/?p=InvalidSecondFactor - gsmtp\r\n",
        Stage.AUTH,
        None,
        "permanent",
        ["app password", "2-step verification"],
        ["app password"],
    ),
    (
        "530 5.7.0 must issue STARTTLS (at MAIL)",
        b"530 5.7.0 Must issue a STARTTLS command first\r\n",
        Stage.MAIL,
        None,
        "permanent",
        ["starttls", "587", "465"],
        ["encrypted connection"],
    ),
    (
        "530 5.7.0 must issue STARTTLS (at AUTH, gmail)",
        b"530 5.7.0 Must issue a STARTTLS command first. a1sm123 - gsmtp\r\n",
        Stage.AUTH,
        None,
        "permanent",
        ["starttls", "587"],
        ["encrypted connection"],
    ),
    (
        "microsoft 535 5.7.139 basic authentication disabled",
        b"535 5.7.139 Authentication unsuccessful, basic authentication is disabled. "
        b"[AM0PR01CA0001.eurprd01.prod.exchangelabs.com]\r\n",
        Stage.AUTH,
        None,
        "permanent",
        ["oauth2", "smtp auth", "mailbox"],
        ["basic authentication is disabled"],
    ),
    (
        "microsoft 535 5.7.139 SMTP AUTH disabled for the mailbox",
        b"535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled "
        b"for the Mailbox.\r\n",
        Stage.AUTH,
        "smtp.office365.com",
        "permanent",
        ["administrator", "smtp auth", "mailbox", "oauth2"],
        ["smtp auth", "turned off"],
    ),
    (
        "microsoft 535 5.7.3 recognised by text",
        b"535 5.7.3 Authentication unsuccessful [MN2PR01CA0001.namprd01.prod.outlook.com]\r\n",
        Stage.AUTH,
        None,
        "permanent",
        ["full email address", "oauth2", "smtp auth"],
        ["refused the sign-in"],
    ),
    (
        "microsoft 535 5.7.3 recognised by host",
        b"535 5.7.3 Authentication unsuccessful\r\n",
        Stage.AUTH,
        "smtp-mail.outlook.com",
        "permanent",
        ["oauth2", "september 2024"],
        ["smtp-mail.outlook.com"],
    ),
    (
        "yahoo 535 5.7.0 #AUTH005 too many bad attempts",
        b"535 5.7.0 (#AUTH005) Too many bad auth attempts.\r\n",
        Stage.AUTH,
        None,
        "permanent",
        ["app password", "wait", "yahoo"],
        ["too many failed attempts"],
    ),
    (
        "gmail 550 5.4.5 daily sending limit",
        b"550-5.4.5 Daily user sending limit exceeded. For more information on Gmail\r\n"
        b"550-5.4.5 sending limits go to\r\n"
        b"550 5.4.5  https://support.google.com/a/answer/166852 a1sm123 - gsmtp\r\n",
        Stage.DATA_END,
        None,
        "permanent",
        ["tomorrow", "will not retry"],
        ["daily sending limit"],
    ),
    (
        "gmail 5.4.5 at MAIL",
        b"550 5.4.5 Daily user sending quota exceeded. a1sm123 - gsmtp\r\n",
        Stage.MAIL,
        None,
        "permanent",
        ["tomorrow"],
        ["daily sending limit"],
    ),
    (
        "5.1.1 no such user",
        b"550-5.1.1 The email account that you tried to reach does not exist. Please try\r\n"
        b"550 5.1.1 double-checking the recipient's email address - gsmtp\r\n",
        Stage.RCPT,
        None,
        "permanent",
        ["spelling", "other recipients", "will not retry this recipient"],
        ["does not exist"],
    ),
    (
        "no such user in words only",
        b"550 <nobody@example.org>: Recipient address rejected: User unknown in local table\r\n",
        Stage.RCPT,
        None,
        "permanent",
        ["spelling"],
        ["does not exist"],
    ),
    (
        "4.2.2 mailbox full",
        b"452 4.2.2 The email account that you tried to reach is over quota.\r\n",
        Stage.RCPT,
        None,
        "transient",
        ["make room", "try this recipient again later"],
        ["mailbox is full"],
    ),
    (
        "5.2.2 mailbox full",
        b"552 5.2.2 The recipient's inbox is out of storage space.\r\n",
        Stage.RCPT,
        None,
        "permanent",
        ["make room", "another way"],
        ["mailbox is full"],
    ),
    (
        "5.3.4 message too big",
        b"552 5.3.4 Message size exceeds fixed limit\r\n",
        Stage.DATA_END,
        None,
        "permanent",
        ["smaller", "link"],
        ["too big"],
    ),
    (
        "552 without enhanced code on MAIL SIZE",
        b"552 Message size exceeds maximum permitted\r\n",
        Stage.MAIL,
        None,
        "permanent",
        ["smaller"],
        ["too big"],
    ),
    (
        "5.1.10 recipient null MX",
        b"556 5.1.10 Recipient address has null MX\r\n",
        Stage.RCPT,
        None,
        "permanent",
        ["another address"],
        ["null mx", "recipient's domain"],
    ),
    (
        "Exchange 5.1.10 recipient not found is not a null MX",
        b"550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address "
        b"lookup\r\n",
        Stage.RCPT,
        "smtp.office365.com",
        "permanent",
        ["spelling"],
        ["does not exist"],
    ),
    (
        "5.7.27 sender null MX",
        b"550 5.7.27 Sender address has null MX\r\n",
        Stage.MAIL,
        None,
        "permanent",
        ["from address"],
        ["null mx", "from address"],
    ),
    (
        "454 4.7.0 temporary authentication failure",
        b"454 4.7.0 Temporary authentication failure\r\n",
        Stage.AUTH,
        None,
        "transient",
        ["do not re-enter", "not mean the password is wrong", "try again later"],
        ["could not check the password"],
    ),
    (
        "432 4.7.12 password transition",
        b"432 4.7.12 A password transition is needed\r\n",
        Stage.AUTH,
        None,
        "transient",
        ["plain password", "encrypted connection"],
        ["password transition"],
    ),
    (
        "534 5.7.9 mechanism too weak (not Gmail)",
        b"534 5.7.9 Authentication mechanism is too weak\r\n",
        Stage.AUTH,
        "mail.example.org",
        "permanent",
        ["stronger authentication method"],
        ["too weak"],
    ),
    (
        "538 encryption required",
        b"538 5.7.11 Encryption required for requested authentication mechanism\r\n",
        Stage.AUTH,
        None,
        "permanent",
        ["encryption", "587", "465"],
        ["encrypted connection"],
    ),
    (
        "421 service closing",
        b"421 4.7.0 Try again later, closing connection. (EHLO) a1sm123 - gsmtp\r\n",
        Stage.EHLO,
        None,
        "transient",
        ["not sent", "try again later"],
        ["closing the connection"],
    ),
    (
        "450 mailbox unavailable",
        b"450 4.2.1 Mailbox busy\r\n",
        Stage.RCPT,
        None,
        "transient",
        ["try this recipient again later"],
        ["busy or unavailable"],
    ),
    (
        "450 greylisting",
        b"450 4.2.0 <bob@example.org>: Recipient address rejected: Greylisted, try later\r\n",
        Stage.RCPT,
        None,
        "transient",
        ["later try", "try this recipient again later"],
        ["greylisting"],
    ),
    (
        "451 local error",
        b"451 4.3.0 Error: queue file write error\r\n",
        Stage.DATA_END,
        None,
        "transient",
        ["server's side", "try again later"],
        ["temporary error"],
    ),
    (
        "452 4.3.1 storage at MAIL",
        b"452 4.3.1 Insufficient system storage\r\n",
        Stage.MAIL,
        None,
        "transient",
        ["server's side", "try again later"],
        ["short of storage"],
    ),
    (
        "452 4.5.3 too many recipients",
        b"452 4.5.3 Too many recipients\r\n",
        Stage.RCPT,
        None,
        "transient",
        ["new transaction", "remaining recipients"],
        ["no more recipients"],
    ),
    (
        "452 on RCPT without enhanced code",
        b"452 Too many recipients\r\n",
        Stage.RCPT,
        None,
        "transient",
        ["new transaction"],
        ["no more recipients"],
    ),
    (
        "554 on greeting",
        b"554 5.7.1 Service unavailable; Client host [192.0.2.1] blocked using "
        b"zen.spamhaus.org\r\n",
        Stage.GREETING,
        "mx.example.org",
        "permanent",
        ["blocklist", "587", "submission server"],
        ["refused the connection", "mx.example.org"],
    ),
    (
        "550 5.7.1 relaying denied",
        b"550 5.7.1 Unable to relay\r\n",
        Stage.RCPT,
        None,
        "permanent",
        ["authentication", "from address"],
        ["relaying denied"],
    ),
    (
        "554 5.7.1 relay access denied (Postfix)",
        b"554 5.7.1 <bob@example.net>: Relay access denied\r\n",
        Stage.RCPT,
        None,
        "permanent",
        ["authentication", "from address"],
        ["relaying denied"],
    ),
    (
        "553 5.7.1 sender not owned by user",
        b"553 5.7.1 <ceo@example.org>: Sender address rejected: not owned by user bob\r\n",
        Stage.MAIL,
        None,
        "permanent",
        ["alias", "own address"],
        ["from address"],
    ),
    (
        "5.7.26 unauthenticated sender",
        b"550 5.7.26 This mail has been blocked because the sender is unauthenticated.\r\n",
        Stage.DATA_END,
        None,
        "permanent",
        ["spf", "dkim"],
        ["failed its checks"],
    ),
    (
        "504 mechanism not supported",
        b"504 5.5.4 Unrecognized authentication type\r\n",
        Stage.AUTH,
        None,
        "permanent",
        ["another authentication method"],
        ["does not support this sign-in method"],
    ),
    (
        "530 authentication required",
        b"530 5.7.0 Authentication required\r\n",
        Stage.MAIL,
        None,
        "permanent",
        ["turn on authentication"],
        ["requires sign-in"],
    ),
    (
        "iCloud 535 by host",
        b"535 5.7.8 Authentication credentials invalid\r\n",
        Stage.AUTH,
        "smtp.mail.me.com",
        "permanent",
        ["app-specific password", "full email address"],
        ["user name or password"],
    ),
]


@pytest.mark.parametrize(
    ("data", "stage", "host", "expected_class", "advice_words", "summary_words"),
    [c[1:] for c in EXPLAIN_CASES],
    ids=[c[0] for c in EXPLAIN_CASES],
)
def test_explain_provider_replies(
    data: bytes,
    stage: Stage,
    host: str | None,
    expected_class: str,
    advice_words: list[str],
    summary_words: list[str],
) -> None:
    (reply,) = ReplyParser().feed(data)
    explanation = explain(reply, stage, host=host)
    assert classify(reply, stage) == expected_class
    advice, summary = explanation.advice.lower(), explanation.summary.lower()
    for word in advice_words:
        assert word in advice, f"{word!r} not in advice {explanation.advice!r}"
    for word in summary_words:
        assert word in summary, f"{word!r} not in summary {explanation.summary!r}"
    assert explanation.server_words == str(reply)


def _advice(data: bytes, stage: Stage, host: str | None = None) -> str:
    (reply,) = ReplyParser().feed(data)
    return explain(reply, stage, host=host).advice.lower()


def test_provider_advice_is_not_given_to_other_servers() -> None:
    generic_535 = _advice(b"535 5.7.8 Error: authentication failed\r\n", Stage.AUTH)
    assert "check both" in generic_535
    for provider in ("gmail", "yahoo", "microsoft", "outlook", "icloud"):
        assert provider not in generic_535
    weak = _advice(b"534 5.7.9 Authentication mechanism is too weak\r\n", Stage.AUTH)
    assert "gmail" not in weak
    # The same code from Gmail means something else.
    gmail_534 = _advice(
        b"534-5.7.14 <https://accounts.google.com/signin/continue?sarp=1> Please log in\r\n"
        b"534 5.7.14 via your web browser and then try again. a1sm123 - gsmtp\r\n",
        Stage.AUTH,
    )
    assert "web browser" in gmail_534 and "app password" in gmail_534
    assert "stronger" not in gmail_534
    by_host = _advice(b"534 5.7.9 Mechanism too weak\r\n", Stage.AUTH, "smtp.gmail.com")
    assert "app password" in by_host and "stronger" not in by_host


def test_enhanced_code_found_in_the_text_counts() -> None:
    # Only the last line carries the code, so the parser leaves it in the text.
    data = b"552-Requested mail action aborted\r\n552 5.2.2 Over the limit\r\n"
    (reply,) = ReplyParser().feed(data)
    assert reply.enhanced is None
    assert "make room" in explain(reply, Stage.RCPT).advice
    # An IP address is not an enhanced code.
    advice = _advice(b"550 Client 10.5.1.1 not allowed\r\n", Stage.RCPT)
    assert "spelling" not in advice


def test_text_wins_over_host_when_recognising_the_provider() -> None:
    # A Yahoo reply seen through a relay whose name looks like Gmail.
    advice = _advice(
        b"535 5.7.0 (#AUTH005) Too many bad auth attempts.\r\n", Stage.AUTH, "relay.gmail.com"
    )
    assert "yahoo" in advice
    assert "gmail" not in advice


@pytest.mark.parametrize(
    ("data", "stage", "expected_word", "unexpected_word"),
    [
        (b"552 Requested action aborted\r\n", Stage.DATA_END, "smaller", "make room"),
        (b"452 4.5.3 Too many recipients\r\n", Stage.MAIL, "try again later", "new transaction"),
        (b"554 5.7.1 Message rejected as spam\r\n", Stage.DATA_END, "as spam", "blocklist"),
        (b"554 Transaction failed\r\n", Stage.GREETING, "blocklist", "as spam"),
    ],
    ids=["552 at end of data", "452 at MAIL", "554 on data", "554 on greeting"],
)
def test_stage_changes_the_meaning(
    data: bytes, stage: Stage, expected_word: str, unexpected_word: str
) -> None:
    (reply,) = ReplyParser().feed(data)
    text = explain(reply, stage).text.lower()
    assert expected_word in text
    assert unexpected_word not in text


# Generic replies no rule names: what each stage makes of them.
STAGE_WORDS = {
    Stage.GREETING: "connection",
    Stage.EHLO: "ehlo",
    Stage.HELO: "helo",
    Stage.STARTTLS: "encryption",
    Stage.AUTH: "sign-in",
    Stage.MAIL: "sender",
    Stage.RCPT: "recipient",
    Stage.DATA: "message",
    Stage.DATA_END: "message",
    Stage.BDAT: "message",
    Stage.CONNECTION: "connection",
}


@pytest.mark.parametrize("stage", list(STAGE_WORDS), ids=lambda s: s.value)
@pytest.mark.parametrize("code", [459, 559])
def test_generic_fallback_per_stage(stage: Stage, code: int) -> None:
    reply = Reply(code, None, ("Something unusual happened",))
    explanation = explain(reply, stage)
    assert STAGE_WORDS[stage] in explanation.summary.lower()
    assert explanation.summary.endswith(f"({code}).")
    if code < 500:
        assert classify(reply, stage) == "transient"
        assert "again later" in explanation.advice
        assert "will not retry" not in explanation.advice
    else:
        assert classify(reply, stage) == "permanent"
        assert "will not retry" in explanation.advice
        assert "again later" not in explanation.advice


def test_generic_summaries_differ_between_transient_and_permanent() -> None:
    for stage in STAGE_WORDS:
        soon = explain(Reply(459, None, ("x",)), stage).summary
        never = explain(Reply(559, None, ("x",)), stage).summary
        assert soon.removesuffix("(459).") != never.removesuffix("(559).")


@pytest.mark.parametrize(
    ("reply", "stage", "summary_word"),
    [
        (Reply(250, "2.0.0", ("Ok: queued as 12345",)), Stage.DATA_END, "accepted the message"),
        (Reply(235, "2.7.0", ("Accepted",)), Stage.AUTH, "accepted the sign-in"),
        (Reply(334, None, ("UGFzc3dvcmQ6",)), Stage.AUTH, "next step"),
        (Reply(354, None, ("Go ahead",)), Stage.DATA, "ready for the message"),
    ],
)
def test_explain_success_and_continue(reply: Reply, stage: Stage, summary_word: str) -> None:
    explanation = explain(reply, stage)
    assert summary_word in explanation.summary
    assert explanation.advice.startswith("Nothing to do")
    assert "retry" not in explanation.advice and "again" not in explanation.advice


def test_explanation_text_shape() -> None:
    reply = Reply(535, "5.7.8", ("Username and Password not accepted",))
    explanation = explain(reply, Stage.AUTH)
    assert explanation.summary == "The server rejected the user name or password (535 5.7.8)."
    assert explanation.text.startswith(
        "The server rejected the user name or password (535 5.7.8). "
        "The server said: “535 5.7.8 Username and Password not accepted”. "
        "Check the password; Gmail needs an app password when 2-step verification is on: "
        "https://support.google.com/accounts/answer/185833"
    )
    assert str(explanation) == explanation.text


def test_explanation_text_does_not_double_the_full_stop() -> None:
    explanation = Explanation("It failed (550).", "Do this.", "550 Go away.")
    assert explanation.text == "It failed (550). The server said: “550 Go away.” Do this."


def test_host_is_named_in_the_summary() -> None:
    reply = Reply(451, "4.3.0", ("Try later",))
    assert explain(reply, Stage.DATA_END, host="smtp.example.org").summary.startswith(
        "The server smtp.example.org "
    )
    braces = explain(reply, Stage.DATA_END, host="{the server}").summary
    assert braces.startswith("The server {the server} ")


def test_server_words_are_made_safe_to_show() -> None:
    reply = Reply(550, None, ("\x1b[31mred\x1b[0m \u202eevil", "x" * 5000))
    explanation = explain(reply, Stage.RCPT)
    assert "\x1b" not in explanation.text
    assert "\u202e" not in explanation.text
    assert len(explanation.server_words) <= 600
    assert explanation.server_words.startswith("550 ")
    assert explanation.server_words.endswith("…")


# --------------------------------------------------------------------------
# explain(): hypothesis

_enhanced = st.one_of(
    st.none(),
    st.from_regex(r"\A[245]\.\d{1,3}\.\d{1,3}\Z"),
    st.text(max_size=12),
)
_any_reply = st.builds(
    Reply,
    code=st.integers(200, 599),
    enhanced=_enhanced,
    lines=st.lists(st.text(max_size=80), max_size=4).map(tuple),
)
_host = st.one_of(
    st.none(),
    st.text(max_size=40),
    st.sampled_from(["smtp.gmail.com", "smtp.office365.com", "smtp.mail.yahoo.com"]),
)
_LOSES_NOTHING = {Stage.RSET, Stage.NOOP, Stage.QUIT}


def _is_control(char: str) -> bool:
    return unicodedata.category(char) == "Cc"


@settings(max_examples=500, deadline=None)
@given(reply=_any_reply, stage=st.sampled_from(Stage), host=_host)
def test_explain_never_raises_and_keeps_its_promises(
    reply: Reply, stage: Stage, host: str | None
) -> None:
    explanation = explain(reply, stage, host=host)
    outcome = classify(reply, stage)
    real_enhanced = reply.enhanced and re.fullmatch(
        r"[245]\.\d{1,3}\.\d{1,3}", reply.enhanced, re.ASCII
    )
    code = f"{reply.code} {reply.enhanced}" if real_enhanced else str(reply.code)

    assert explanation.summary.endswith(f"({code}).")
    assert explanation.summary[0].isupper()
    assert explanation.advice
    assert explanation.server_words.startswith(str(reply.code))
    assert not any(_is_control(char) for char in explanation.text)
    assert explanation.summary in explanation.text and explanation.advice in explanation.text

    expected = {2: "ok", 4: "transient", 5: "permanent"}.get(reply.code // 100)
    assert outcome == (
        expected or ("continue" if stage in (Stage.AUTH, Stage.DATA) else "transient")
    )
    # The advice never promises a retry the outbox will not make, nor the reverse.
    if stage not in _LOSES_NOTHING and outcome == "transient":
        assert "again later" in explanation.advice
        assert "will not retry" not in explanation.advice
    if stage not in _LOSES_NOTHING and outcome == "permanent":
        assert "will not retry" in explanation.advice
        assert "again later" not in explanation.advice
