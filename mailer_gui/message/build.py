"""Draft -> MIME bytes in a spool file, in bounded memory.

Headers and the MIME skeleton come from the stdlib `email` package with the
SMTP policy (RFC 2047 for non-ASCII names and subjects, RFC 2231 for file
names, lines folded under 998 octets). File contents never pass through it:
each file part carries a placeholder in the skeleton, and the writer streams
the file base64-encoded, chunk by chunk, from disk into the spool in its
place. A 50 MB attachment costs a few megabytes of memory, where
`EmailMessage.add_attachment` + `smtplib.send_message` holds several copies.

Structure: plain -> text/plain; Markdown -> multipart/alternative (text/plain,
text/html); inline images -> multipart/related around the HTML with cid:
references; attachments -> multipart/mixed around all of it. Text parts are
quoted-printable when not ASCII, so the message is 7-bit clean for any
server; only a non-ASCII local part needs SMTPUTF8 (the session refuses such
a message before sending when the server lacks it).
"""

from __future__ import annotations

import base64
import errno
import io
import mimetypes
import os
import re
import secrets
import stat
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from email import policy as email_policy
from email.generator import BytesGenerator
from email.message import EmailMessage, MIMEPart
from email.parser import BytesHeaderParser
from email.utils import format_datetime, getaddresses, make_msgid
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from mailer_gui import APP_NAME, __version__
from mailer_gui.message.draft import Draft, InlineImage, Priority

if TYPE_CHECKING:
    _Policy = email_policy.EmailPolicy[EmailMessage]
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
        "In-Reply-To",
        "References",
    )
)
# 57 input bytes make one 76-character base64 line; read many lines at once.
_B64_LINE_INPUT = 57
_READ_SIZE = _B64_LINE_INPUT * 16384  # ~0.9 MB read, ~1.2 MB written per step

_PRIORITY_HEADERS = {
    Priority.HIGH: (("X-Priority", "1 (Highest)"), ("Importance", "high")),
    Priority.LOW: (("X-Priority", "5 (Lowest)"), ("Importance", "low")),
    Priority.NORMAL: (),
}


# A write into the spool that failed for want of room, not the attachment's fault.
_NO_ROOM = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


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
    dsn_notify: tuple[str, ...] = ()
    eight_bit: bool = False  # only prepared messages; built ones are 7-bit clean


# Everything str.splitlines() breaks at: the email package refuses them all in headers.
_LINE_BREAKS = re.compile("[\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")


def _check_header_value(field: str, value: str) -> None:
    if _LINE_BREAKS.search(value):
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


def _text_part(text: str, subtype: str, policy: _Policy) -> MIMEPart:
    part = MIMEPart(policy=policy)
    # 7bit only when it is also short-lined: RFC 5322 caps a line at 998 octets,
    # and one long Markdown paragraph easily renders to a longer HTML line.
    short = all(len(line) <= 998 for line in text.splitlines())
    cte = "7bit" if text.isascii() and short else "quoted-printable"
    part.set_content(text, subtype=subtype, cte=cte)
    del part["MIME-Version"]  # only the top level carries it
    return part


def _multipart(subtype: str, parts: Iterable[MIMEPart], policy: _Policy) -> MIMEPart:
    container = MIMEPart(policy=policy)
    container["Content-Type"] = f"multipart/{subtype}"
    for part in parts:
        container.attach(part)
    return container


def _content_type(name: str, given: str | None = None) -> tuple[str, str]:
    ctype = given
    if ctype is None:
        guessed, encoding = mimetypes.guess_type(name)
        ctype = guessed if guessed and encoding is None else "application/octet-stream"
    maintype, _, subtype = ctype.partition("/")
    return maintype, subtype or "octet-stream"


@dataclass
class _FilePart:
    """A part whose body is streamed from a file at write time."""

    token: bytes
    path: Path


class _Assembler:
    """Builds the skeleton and remembers which files fill which placeholders."""

    def __init__(self, policy: _Policy) -> None:
        self.policy = policy
        self.files: list[_FilePart] = []
        self._nonce = secrets.token_hex(8)

    def file_part(
        self,
        path: Path,
        *,
        name: str,
        disposition: str,
        content_type: str | None = None,
        content_id: str | None = None,
    ) -> MIMEPart:
        maintype, subtype = _content_type(name, content_type)
        part = MIMEPart(policy=self.policy)
        part.add_header("Content-Type", f"{maintype}/{subtype}", name=name)
        part.add_header("Content-Disposition", disposition, filename=name)
        part["Content-Transfer-Encoding"] = "base64"
        if content_id:
            part["Content-ID"] = f"<{content_id}>"
        token = f"MAILER-PLACEHOLDER-{self._nonce}-{len(self.files)}"
        part.set_payload(token)
        self.files.append(_FilePart(token.encode("ascii"), path))
        return part

    def data_part(
        self, data: bytes, *, name: str, content_type: str | None, content_id: str,
        disposition: str = "inline",
    ) -> MIMEPart:  # fmt: skip
        maintype, subtype = _content_type(name, content_type)
        part = MIMEPart(policy=self.policy)
        part.set_content(
            data, maintype=maintype, subtype=subtype, disposition=disposition, filename=name,
            cid=f"<{content_id}>",
        )  # fmt: skip
        del part["MIME-Version"]
        return part

    def image(self, image: InlineImage, content_id: str, *, disposition: str) -> MIMEPart:
        if image.data is not None:
            return self.data_part(
                image.data, name=image.name, content_type=image.content_type,
                content_id=content_id, disposition=disposition,
            )  # fmt: skip
        assert image.path is not None
        return self.file_part(
            image.path,
            name=image.name,
            disposition=disposition,
            content_type=image.content_type,
            content_id=content_id,
        )


def _check_readable(path: Path, what: str) -> None:
    if path.is_dir():
        raise DraftError(f"The {what} {path} is a folder, not a file.")
    try:
        # Looked at before it is opened: opening a pipe waits for a writer.
        if not stat.S_ISREG(path.stat().st_mode):
            # /dev/zero, a pipe, a terminal: no end, or none known, so no
            # message to build (it would fill the disk, or wait forever).
            raise DraftError(
                f"The {what} {path} is not an ordinary file (a device or a pipe); "
                "attach a file, or save what it gives to one first."
            )
        with path.open("rb") as f:
            f.read(1)
    except OSError as exc:
        raise DraftError(
            f"The {what} {path} cannot be read ({exc.strerror or exc}). "
            "Check that the file exists and that you may read it."
        ) from exc


def _content_id(domain: str) -> str:
    return f"{secrets.token_hex(12)}@{domain}"


def _set_headers(
    root: EmailMessage, draft: Draft, smtputf8: bool, message_id: str, now: datetime
) -> None:
    root["From"] = draft.sender.header_address(smtputf8=smtputf8)
    if draft.to:
        root["To"] = [a.header_address(smtputf8=smtputf8) for a in draft.to]
    if draft.cc:
        root["Cc"] = [a.header_address(smtputf8=smtputf8) for a in draft.cc]
    if draft.reply_to:
        root["Reply-To"] = [a.header_address(smtputf8=smtputf8) for a in draft.reply_to]
    # Mail readers drop a header's outer whitespace; drop it here so the
    # message says exactly what every reader will show.
    root["Subject"] = draft.subject.strip()
    root["Date"] = format_datetime(now)
    root["Message-ID"] = message_id
    if draft.in_reply_to:
        root["In-Reply-To"] = draft.in_reply_to
    if draft.references:
        root["References"] = " ".join(draft.references)
    root["User-Agent"] = f"{APP_NAME}/{__version__}"
    for name, value in _PRIORITY_HEADERS[draft.priority]:
        root[name] = value
    for name, value in draft.extra_headers:
        root[name] = value


def _validate(draft: Draft) -> None:
    if not draft.recipients:
        raise DraftError("The message has no recipients: add at least one To, Cc or Bcc.")
    _check_header_value("subject", draft.subject)
    for address in (draft.sender, *draft.recipients, *draft.reply_to):
        _check_header_value("address " + address.addr_spec, str(address))
    for name, value in draft.extra_headers:
        if not _HEADER_NAME.match(name):
            raise DraftError(f"The header name {name!r} is not allowed.")
        _check_header_value(f"header {name}", value)
    for reference in (draft.in_reply_to or "", *draft.references):
        _check_header_value("In-Reply-To/References", reference)
    for path in draft.attachments:
        _check_readable(Path(path), "attachment")
    for image in draft.inline_images:
        if image.path is not None:
            _check_readable(image.path, "inline image")


def build_skeleton(
    draft: Draft, *, now: datetime | None = None
) -> tuple[EmailMessage, _Assembler, bool]:
    """The message with placeholders for file contents (small, in memory)."""
    # Markdown and Pygments load with the first message built, not with every
    # importer of this module (the outbox store, the window's start-up).
    from mailer_gui.message.render import render_html, render_plain

    _validate(draft)
    smtputf8 = any(a.needs_smtputf8 for a in (draft.sender, *draft.recipients, *draft.reply_to))
    policy = email_policy.SMTPUTF8 if smtputf8 else email_policy.SMTP
    assembler = _Assembler(policy)
    domain = draft.sender.ascii_domain
    message_id = make_msgid(domain=domain)

    plain = _text_part(render_plain(draft.body), "plain", policy)
    body: MIMEPart
    extra_attachments: list[MIMEPart] = []
    if draft.body_format == "markdown":
        cids = {image.name: _content_id(domain) for image in draft.inline_images}
        markup = render_html(draft.body, inline_images=cids)
        html = _text_part(markup, "html", policy)
        # An image the text never shows would travel hidden in the related part,
        # seen by nobody: it goes as an ordinary attachment instead.
        shown = [i for i in draft.inline_images if f"cid:{cids[i.name].strip('<>')}" in markup]
        if shown:
            images = [
                assembler.image(image, cids[image.name], disposition="inline") for image in shown
            ]
            html = _multipart("related", [html, *images], policy)
        extra_attachments = [
            assembler.image(image, cids[image.name], disposition="attachment")
            for image in draft.inline_images
            if image not in shown
        ]
        body = _multipart("alternative", [plain, html], policy)
    else:
        body = plain
        # Plain text cannot show images: they travel as ordinary attachments.
        extra_attachments = [
            assembler.image(image, _content_id(domain), disposition="attachment")
            for image in draft.inline_images
        ]

    attachments = [
        assembler.file_part(Path(path), name=Path(path).name, disposition="attachment")
        for path in draft.attachments
    ] + extra_attachments

    root = EmailMessage(policy=policy)
    _set_headers(root, draft, smtputf8, message_id, now or datetime.now().astimezone())
    root["MIME-Version"] = "1.0"
    top = _multipart("mixed", [body, *attachments], policy) if attachments else body
    for name, value in top.items():
        root[name] = value
    root.set_payload(top.get_payload())
    return root, assembler, smtputf8


def write_base64(source: BinaryIO, out: BinaryIO) -> None:
    """Stream ``source`` as base64 in 76-character CRLF lines (no final CRLF)."""
    first = True
    while True:
        chunk = source.read(_READ_SIZE)
        if not chunk:
            break
        encoded = base64.b64encode(chunk)
        lines = b"\r\n".join(encoded[i : i + 76] for i in range(0, len(encoded), 76))
        if not first:
            out.write(b"\r\n")
        out.write(lines)
        first = False


def build_message(
    draft: Draft, *, spool_dir: Path | None = None, now: datetime | None = None
) -> BuiltMessage:
    """Build the message into a new 0600 file in ``spool_dir`` (fsynced)."""
    root, assembler, smtputf8 = build_skeleton(draft, now=now)
    buffer = io.BytesIO()
    BytesGenerator(buffer, policy=root.policy, mangle_from_=False).flatten(root)
    skeleton = buffer.getvalue()

    directory = spool_dir or Path(tempfile.gettempdir())
    directory.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix="msg-", suffix=".eml", dir=directory)
    try:
        with os.fdopen(fd, "wb") as out:
            position = 0
            for file_part in assembler.files:
                index = skeleton.index(file_part.token, position)
                out.write(skeleton[position:index])
                try:
                    with file_part.path.open("rb") as source:
                        write_base64(source, out)
                except OSError as exc:
                    if exc.errno in _NO_ROOM:  # writing, not reading: the outbox's disk
                        raise
                    raise DraftError(
                        f"The file {file_part.path} could not be read while the message "
                        f"was built ({exc.strerror or exc}). Nothing was queued."
                    ) from exc
                position = index + len(file_part.token)
            out.write(skeleton[position:])
            out.flush()
            os.fsync(out.fileno())
            size = out.tell()
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
    return BuiltMessage(
        path=Path(name),
        size=size,
        message_id=str(root["Message-ID"]),
        envelope_from=draft.sender.envelope(smtputf8=smtputf8),
        recipients=tuple(a.envelope(smtputf8=smtputf8) for a in draft.recipients),
        smtputf8=smtputf8,
        dsn_notify=draft.dsn_notify,
    )


# ------------------------------------------------------- prepared messages

_MAX_HEADER_BLOCK = 1024 * 1024


def _crlf_copy(source: BinaryIO, out: BinaryIO, first: bytes = b"") -> bool:
    """Copy with every line break made CRLF; True if any byte is 8-bit."""
    eight_bit = False
    carry = first
    while True:
        chunk = source.read(_READ_SIZE)
        data = carry + chunk
        carry = b""
        if chunk and data.endswith(b"\r"):
            carry, data = b"\r", data[:-1]
        if data:
            if not eight_bit and not data.isascii():
                eight_bit = True
            lines = data.splitlines()
            if data[-1:] in (b"\n", b"\r"):
                lines.append(b"")
            out.write(b"\r\n".join(lines))
        if not chunk:
            return eight_bit


def _header_fields(block: bytes) -> list[bytes]:
    """Raw header fields, each with its continuation lines (CRLF removed at the end)."""
    fields: list[bytes] = []
    for line in block.splitlines():
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1] += b"\r\n" + line
        elif line:
            fields.append(line)
    return fields


def build_from_eml(
    path: Path,
    *,
    envelope_from: str,
    recipients: tuple[str, ...] = (),
    sender_domain: str,
    spool_dir: Path | None = None,
    dsn_notify: tuple[str, ...] = (),
) -> BuiltMessage:
    """A prepared RFC 5322 message, ready to send as it is.

    The envelope recipients come from To, Cc and Bcc unless given; the Bcc
    header is removed so no recipient sees it; Date and Message-ID are added
    when missing. The body is copied chunk by chunk with CRLF line ends.
    """
    try:
        source = path.open("rb")
    except OSError as exc:
        raise DraftError(
            f"The message file {path} cannot be read ({exc.strerror or exc})."
        ) from exc
    with source:
        head = bytearray()
        while b"\n\n" not in head.replace(b"\r\n", b"\n"):
            chunk = source.read(65536)
            if not chunk:
                break
            head += chunk
            if len(head) > _MAX_HEADER_BLOCK:
                raise DraftError(f"{path} does not look like an email message (no end of headers).")
        normalized = bytes(head).replace(b"\r\n", b"\n")
        block, sep, rest = normalized.partition(b"\n\n")
        if not sep:
            block, rest = normalized, b""
        headers = BytesHeaderParser(policy=email_policy.default).parsebytes(block + b"\n\n")
        if not headers.keys() or not headers.get("From"):
            raise DraftError(f"{path} is not an email message: it has no From header.")
        if not recipients:
            values = [str(v) for key in ("To", "Cc", "Bcc") for v in headers.get_all(key, [])]
            recipients = tuple(addr for _, addr in getaddresses(values) if addr)
        if not recipients:
            raise DraftError(f"{path} names no recipients (no To, Cc or Bcc): give them with --to.")
        for address in recipients:
            if any(c in address for c in "\r\n<> "):
                raise DraftError(f"The recipient {address!r} in {path} is not an address.")
        kept = [f for f in _header_fields(block) if not f.lower().startswith(b"bcc:")]
        message_id = str(headers.get("Message-ID", "")).strip()
        added: list[bytes] = []
        if not headers.get("Date"):
            added.append(b"Date: " + format_datetime(datetime.now().astimezone()).encode())
        if not message_id:
            message_id = make_msgid(domain=sender_domain)
            added.append(b"Message-ID: " + message_id.encode())

        directory = spool_dir or Path(tempfile.gettempdir())
        directory.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix="msg-", suffix=".eml", dir=directory)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(b"\r\n".join(kept + added) + b"\r\n\r\n")
                eight_bit = _crlf_copy(source, out, first=rest)
                out.flush()
                os.fsync(out.fileno())
                size = out.tell()
        except BaseException:
            Path(name).unlink(missing_ok=True)
            raise
    smtputf8 = not all(a.split("@")[0].isascii() for a in (envelope_from, *recipients))
    return BuiltMessage(
        path=Path(name),
        size=size,
        message_id=message_id,
        envelope_from=envelope_from,
        recipients=recipients,
        smtputf8=smtputf8,
        eight_bit=eight_bit or not bytes(block).isascii(),
        dsn_notify=dsn_notify,
    )
