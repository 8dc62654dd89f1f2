"""Draft -> MIME bytes in a spool file, ready for the session to stream.

Headers come from the stdlib `email` package with the SMTP policy (RFC 2047
for non-ASCII names and subjects, RFC 2231 for file names). Text parts use
quoted-printable when they are not ASCII, so the message is 7-bit clean and
needs no 8BITMIME; only a non-ASCII local part needs SMTPUTF8.
"""

from __future__ import annotations

import mimetypes
import os
import re
import tempfile
from dataclasses import dataclass
from datetime import datetime
from email import policy as email_policy
from email.generator import BytesGenerator
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path

from mailer_gui import APP_NAME, __version__
from mailer_gui.message.draft import Draft
from mailer_gui.message.render import render_html, render_plain

_HEADER_NAME = re.compile(r"^[!-9;-~]+$")  # RFC 5322 ftext: printable, no colon
_RESERVED_HEADERS = frozenset(
    h.lower()
    for h in (
        "From",
        "To",
        "Cc",
        "Bcc",
        "Subject",
        "Date",
        "Message-ID",
        "MIME-Version",
        "Content-Type",
        "Content-Transfer-Encoding",
        "Reply-To",
    )
)


class DraftError(ValueError):
    """The draft cannot become a message; the text names the field or file."""


@dataclass(frozen=True)
class BuiltMessage:
    path: Path
    size: int
    message_id: str
    envelope_from: str
    recipients: tuple[str, ...]
    smtputf8: bool


def _check_header_value(field: str, value: str) -> None:
    if "\r" in value or "\n" in value:
        raise DraftError(f"The {field} contains a line break, which a mail header cannot hold.")


def parse_header_option(text: str) -> tuple[str, str]:
    """``"X-Ticket: 42"`` -> ``("X-Ticket", "42")``, refusing what would break the message."""
    name, sep, value = text.partition(":")
    name, value = name.strip(), value.strip()
    if not sep or not name or not _HEADER_NAME.match(name):
        raise DraftError(f"The header {text!r} is not of the form 'Name: value'.")
    if name.lower() in _RESERVED_HEADERS:
        raise DraftError(f"The header {name} is set by Mailer itself; use the matching option.")
    _check_header_value(f"header {name}", value)
    return name, value


def _text_cte(text: str) -> str:
    return "7bit" if text.isascii() else "quoted-printable"


def build_message(draft: Draft, *, spool_dir: Path | None = None) -> BuiltMessage:
    """Build the message and write it to a new file (0600) in ``spool_dir``."""
    if not draft.recipients:
        raise DraftError("The message has no recipients: add at least one To, Cc or Bcc.")
    _check_header_value("subject", draft.subject)
    for name, value in draft.extra_headers:
        _check_header_value(f"header {name}", value)
    smtputf8 = any(a.needs_smtputf8 for a in (draft.sender, *draft.recipients, *draft.reply_to))
    policy = email_policy.SMTPUTF8 if smtputf8 else email_policy.SMTP

    message = EmailMessage(policy=policy)
    message["From"] = draft.sender.header_address(smtputf8=smtputf8)
    if draft.to:
        message["To"] = [a.header_address(smtputf8=smtputf8) for a in draft.to]
    if draft.cc:
        message["Cc"] = [a.header_address(smtputf8=smtputf8) for a in draft.cc]
    if draft.reply_to:
        message["Reply-To"] = [a.header_address(smtputf8=smtputf8) for a in draft.reply_to]
    message["Subject"] = draft.subject
    message["Date"] = format_datetime(_now())
    message_id = make_msgid(domain=draft.sender.ascii_domain)
    message["Message-ID"] = message_id
    message["User-Agent"] = f"{APP_NAME}/{__version__}"
    for name, value in draft.extra_headers:
        message[name] = value

    plain = render_plain(draft.body)
    message.set_content(plain, subtype="plain", cte=_text_cte(plain))
    if draft.body_format == "markdown":
        html = render_html(draft.body)
        message.add_alternative(html, subtype="html", cte=_text_cte(html))

    for path in draft.attachments:
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise DraftError(
                f"The attachment {path} cannot be read ({exc.strerror or exc}). "
                "Check that the file exists and that you may read it."
            ) from exc
        ctype, encoding = mimetypes.guess_type(str(path))
        if ctype is None or encoding is not None:
            ctype = "application/octet-stream"
        maintype, subtype = ctype.split("/", 1)
        message.add_attachment(data, maintype=maintype, subtype=subtype, filename=Path(path).name)

    directory = spool_dir or Path(tempfile.gettempdir())
    directory.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix="msg-", suffix=".eml", dir=directory)
    try:
        with os.fdopen(fd, "wb") as out:
            BytesGenerator(out, policy=policy).flatten(message)
            size = out.tell()
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
    return BuiltMessage(
        path=Path(name),
        size=size,
        message_id=message_id,
        envelope_from=draft.sender.envelope(smtputf8=smtputf8),
        recipients=tuple(a.envelope(smtputf8=smtputf8) for a in draft.recipients),
        smtputf8=smtputf8,
    )


def _now() -> datetime:
    return datetime.now().astimezone()
