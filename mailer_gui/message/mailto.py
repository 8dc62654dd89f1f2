"""mailto: links (RFC 6068) -> the fields the composer opens a new draft with.

Parsing keeps addresses as the text the link held, so the composer can show
an invalid one underlined instead of losing it; `draft_from_mailto` turns the
fields into a `Draft` (see draft.py) and hands back what did not parse.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email import policy as email_policy
from urllib.parse import unquote

from mailer_gui.message.addresses import (
    AddressError,
    MailAddress,
    parse_address,
    split_address_list,
)
from mailer_gui.message.draft import Draft

# Every header a link may set. Anything else (From, Sender, Reply-To,
# References, X-anything, ...) is ignored: a web page must not choose who the
# message claims to come from or slip in headers the person cannot see.
SUPPORTED_HFIELDS = frozenset({"to", "cc", "bcc", "subject", "body", "in-reply-to"})

_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_MSG_ID = re.compile(r"^<[^<>\s]+>$")


class MailtoError(ValueError):
    """The text is not a mailto: link; ``url`` is what was given."""

    def __init__(self, message: str, url: str) -> None:
        super().__init__(message)
        self.url = url


@dataclass(frozen=True)
class MailtoFields:
    """What a mailto: link asks for, addresses still as text."""

    to: tuple[str, ...] = ()
    cc: tuple[str, ...] = ()
    bcc: tuple[str, ...] = ()
    subject: str = ""
    body: str = ""
    in_reply_to: str | None = None


def _decode(text: str) -> str:
    """Percent-decoding as UTF-8; ``+`` stays a plus (RFC 6068 §5: only %20 is a space)."""
    return unquote(text, encoding="utf-8", errors="replace")


def _one_line(text: str) -> str:
    """A header value cannot hold a line break: each becomes a space.

    ``splitlines`` also knows VT, FF, NEL, U+2028 and friends, which the email
    package refuses in a header just as it refuses CR and LF.
    """
    return " ".join(text.splitlines()).strip()


def _address_texts(value: str) -> list[str]:
    """``a@x.org,%20Ann%20%3Cann@y.org%3E`` -> ``["a@x.org", "Ann <ann@y.org>"]``.

    Decoded before splitting, so lists written with ``%2C`` split too; quoted
    commas (``"Doe, J" <j@y.org>``) do not split. A line break separates like a
    comma, so no address text carries one.
    """
    return [part for line in _decode(value).splitlines() for part in split_address_list(line)]


def _subject(value: str) -> str:
    """Percent-decoded, then RFC 2047 encoded-words (``=?utf-8?Q?caf=C3=A9?=``) some links carry."""
    text = _decode(value)
    if "=?" in text:
        text = str(email_policy.default.header_factory("subject", _one_line(text)))
    return _one_line(text)


def parse_mailto(url: str) -> MailtoFields:
    """``mailto:joe@example.com?cc=bob@example.com&body=hello`` -> MailtoFields.

    The scheme and header names are case-insensitive; ``to=`` adds to the
    recipients before the ``?``; cc and bcc accumulate; the first subject,
    body and in-reply-to win; other headers are ignored (SUPPORTED_HFIELDS).
    Body line breaks (``%0D%0A``) become ``\\n``. A ``#fragment`` is not part
    of the mail (RFC 3986) and is dropped. Raises MailtoError only when the
    text is not a mailto: link at all.
    """
    text = url.strip()
    if text[:7].lower() != "mailto:":
        shown = text if len(text) <= 60 else text[:57] + "..."
        raise MailtoError(f"{shown!r} is not a mailto: link (it should start with mailto:).", url)
    path, _, query = text[7:].partition("#")[0].partition("?")

    to = _address_texts(path)
    cc: list[str] = []
    bcc: list[str] = []
    subject: str | None = None
    body: str | None = None
    in_reply_to: str | None = None
    for hfield in query.split("&"):
        raw_name, has_value, value = hfield.partition("=")
        name = _decode(raw_name).strip().lower()
        if not has_value or name not in SUPPORTED_HFIELDS:
            continue
        if name == "to":
            to += _address_texts(value)
        elif name == "cc":
            cc += _address_texts(value)
        elif name == "bcc":
            bcc += _address_texts(value)
        elif name == "subject" and subject is None:
            subject = _subject(value)
        elif name == "body" and body is None:
            body = _LINE_BREAK.sub("\n", _decode(value))
        elif name == "in-reply-to" and in_reply_to is None:
            in_reply_to = _one_line(_decode(value)) or None
    return MailtoFields(
        to=tuple(to),
        cc=tuple(cc),
        bcc=tuple(bcc),
        subject=subject or "",
        body=body or "",
        in_reply_to=in_reply_to,
    )


def _message_id(text: str | None) -> str | None:
    """``3469A91.D10AF4C@example.com`` -> ``<3469A91.D10AF4C@example.com>``; junk -> None."""
    if not text:
        return None
    msg_id = text if text.startswith("<") else f"<{text}>"
    return msg_id if _MSG_ID.match(msg_id) else None


def draft_from_mailto(fields: MailtoFields, sender: MailAddress) -> tuple[Draft, list[str]]:
    """A plain-text draft from the link, and the address texts that did not parse.

    The body is plain text (a link carries no Markdown). An In-Reply-To that
    is not one message id is left out rather than sent as a broken header.
    """
    unparsed: list[str] = []

    def addresses(texts: tuple[str, ...]) -> tuple[MailAddress, ...]:
        parsed: list[MailAddress] = []
        for text in texts:
            try:
                parsed.append(parse_address(text))
            except AddressError:
                unparsed.append(text)
        return tuple(parsed)

    in_reply_to = _message_id(fields.in_reply_to)
    draft = Draft(
        sender=sender,
        to=addresses(fields.to),
        cc=addresses(fields.cc),
        bcc=addresses(fields.bcc),
        subject=fields.subject,
        body=fields.body,
        body_format="plain",
        in_reply_to=in_reply_to,
        references=(in_reply_to,) if in_reply_to else (),
    )
    return draft, unparsed
