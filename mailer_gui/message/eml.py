""".eml files: saving a built message as it will be sent, opening one as a new draft or a reply.

Saving copies the spool file that build.py wrote, byte for byte. Opening uses
the stdlib email package for the MIME structure but reads addresses with
addresses.py, because the stdlib parser quietly "repairs" broken ones
(``Ann <ann@ex ample.org>`` comes back as ``ann@ex``) where a person should see them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import html.parser
import mimetypes
import os
import re
import shutil
import tempfile
from email import policy as email_policy
from email.message import EmailMessage, Message
from email.parser import BytesParser
from pathlib import Path

from mailer_gui.message.addresses import (
    AddressError,
    MailAddress,
    parse_address,
    split_address_list,
)
from mailer_gui.message.draft import Draft, InlineImage
from mailer_gui.paths import APP_NAME, fsync_directory

_CHUNK = 1024 * 1024  # spool files can be 50 MB and more: never read one whole
_UNFOLD = re.compile(r"\r?\n(?=[ \t])")
_MSG_ID = re.compile(r"<[^<>\s]+>")
_REPLY_PREFIX = re.compile(r"^\s*re\s*:", re.IGNORECASE)
# Control characters, what Windows refuses in names, and bidi controls that
# can dress "evil\u202etxt.exe" up as "evilexe.txt".
_UNSAFE_IN_NAME = re.compile(r'[\x00-\x1f\x7f<>:"|?*\u200e\u200f\u202a-\u202e\u2066-\u2069]')
_WINDOWS_DEVICES = frozenset(
    {"CON", "PRN", "AUX", "NUL"} | {f"{kind}{n}" for kind in ("COM", "LPT") for n in range(1, 10)}
)
_MAX_NAME_BYTES = 150  # leaves room for " (2)" and a temp prefix under the usual 255


class EmlError(ValueError):
    """A message file that cannot be saved or opened; ``path`` is that file."""

    def __init__(self, message: str, path: Path) -> None:
        super().__init__(message)
        self.path = path


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)


# -- saving -------------------------------------------------------------------


def save_eml(source: Path, destination: Path) -> None:
    """Copy the built message ``source`` to ``destination`` exactly, all or nothing.

    The copy goes to a temporary file next to ``destination``, is flushed to
    disk and then renamed over it, so a crash or a full disk never leaves a
    half-written .eml (or a damaged older one) behind. The file is 0600, like
    the spool file: a message is private until it is sent.
    """
    try:
        reader = source.open("rb")
    except OSError as exc:
        raise EmlError(
            f"The message to save ({source}) cannot be read ({_reason(exc)}). "
            "Build it again and retry.",
            source,
        ) from exc
    with reader:
        try:
            fd, temp_name = tempfile.mkstemp(
                prefix=f".{destination.name[:40]}.", suffix=".part", dir=destination.parent
            )
        except OSError as exc:
            raise EmlError(_save_failed(destination, exc), destination) from exc
        temp = Path(temp_name)
        try:
            with os.fdopen(fd, "wb") as out:
                shutil.copyfileobj(reader, out, _CHUNK)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temp, destination)
        except BaseException as exc:
            temp.unlink(missing_ok=True)
            if isinstance(exc, OSError):
                raise EmlError(_save_failed(destination, exc), destination) from exc
            raise
    fsync_directory(destination.parent)


def _save_failed(destination: Path, exc: OSError) -> str:
    return (
        f"The message could not be saved as {destination} ({_reason(exc)}). "
        "Check that the folder exists, that you may write to it and that the disk has room."
    )


# -- reading ------------------------------------------------------------------


def _read_message(path: Path) -> EmailMessage:
    try:
        with path.open("rb") as reader:
            message = BytesParser(EmailMessage, policy=email_policy.default).parse(reader)
    except OSError as exc:
        raise EmlError(f"{path.name} cannot be opened ({_reason(exc)}).", path) from exc
    if not message.keys():
        raise EmlError(
            f"{path.name} is not an email message: it has no headers (From, To, Subject, ...).",
            path,
        )
    return message


def _header_values(message: Message, name: str) -> list[str]:
    """Every ``name`` header as written, unfolded; 8-bit text read as UTF-8 (RFC 6532)."""
    values: list[str] = []
    for key, value in message.raw_items():
        if key.lower() == name:
            text = str(value).encode("utf-8", "surrogateescape").decode("utf-8", "replace")
            values.append(_UNFOLD.sub("", text))
    return values


def _decoded(text: str) -> str:
    """RFC 2047 encoded-words decoded, on one line (a header value cannot hold a break)."""
    with contextlib.suppress(Exception):  # undecodable words are better shown as written
        text = str(email_policy.default.header_factory("x-decoded", text))
    return " ".join(text.splitlines()).strip()


def _header_text(message: Message, name: str) -> str:
    values = _header_values(message, name)
    return _decoded(values[0]) if values else ""


def _addresses(message: Message, name: str, unparsed: list[str]) -> tuple[MailAddress, ...]:
    """The addresses of every ``name`` header; those that do not parse go to ``unparsed``."""
    found: list[MailAddress] = []
    for value in _header_values(message, name):
        for part in split_address_list(value):
            text = _decoded(part)
            try:
                found.append(parse_address(text))
            except AddressError:
                unparsed.append(text)
    return tuple(found)


def _message_ids(text: str) -> list[str]:
    """``<a@x> <b@y>`` -> ``["<a@x>", "<b@y>"]``; a bare ``a@x`` gets its brackets."""
    ids = _MSG_ID.findall(text)
    if not ids and text.strip() and not any(ch.isspace() for ch in text.strip()):
        ids = [f"<{text.strip()}>"]
    return ids


class _HtmlText(html.parser.HTMLParser):
    """Crude HTML -> text: tags dropped, scripts and styles gone, blocks on their own lines.

    Paragraph-like blocks are set apart by a blank line, line-like ones (div,
    li, tr: Gmail writes one div per line) by a line break, never doubled up.
    """

    _PARAGRAPH = re.compile(
        r"address|article|aside|blockquote|dl|fig(caption|ure)|footer|form|h[1-6r]"
        r"|header|main|nav|ol|p|pre|section|table|ul"
    )
    _LINE = frozenset({"div", "li", "tr", "dt", "dd"})
    _HIDDEN = frozenset({"script", "style", "head", "title", "template"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self._chunks: list[str] = []
        self._newlines = 0  # how many line breaks the text ends with
        self._hidden = 0
        self._pre = 0

    def _emit(self, text: str) -> None:
        if not text:
            return
        self._chunks.append(text)
        stripped = text.rstrip("\n")
        trailing = len(text) - len(stripped)
        self._newlines = self._newlines + trailing if not stripped else trailing

    def _break(self, newlines: int) -> None:
        if self._chunks and self._newlines < newlines:
            self._emit("\n" * (newlines - self._newlines))

    def _block(self, tag: str) -> None:
        if self._PARAGRAPH.fullmatch(tag):
            self._break(2)
        elif tag in self._LINE:
            self._break(1)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._HIDDEN:
            self._hidden += 1
        elif self._hidden:
            return
        elif tag == "br":
            self._emit("\n")
        elif tag == "img":
            self._emit(dict(attrs).get("alt") or "")
        else:
            self._block(tag)
            self._pre += tag == "pre"

    def handle_endtag(self, tag: str) -> None:
        if tag in self._HIDDEN:
            self._hidden = max(0, self._hidden - 1)
        elif not self._hidden:
            self._block(tag)
            if tag == "pre":
                self._pre = max(0, self._pre - 1)

    def handle_data(self, data: str) -> None:
        if self._hidden:
            return
        if not self._pre:
            data = re.sub(r"\s+", " ", data)
            if self._newlines or not self._chunks:
                data = data.lstrip(" ")
        self._emit(data)

    def text(self) -> str:
        lines = [line.rstrip() for line in "".join(self._chunks).split("\n")]
        return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip("\n")


def _html_to_text(markup: str) -> str:
    parser = _HtmlText()
    parser.feed(markup)
    parser.close()
    return parser.text()


def decoded_text(part: Message) -> str:
    """A text part decoded, line ends made ``\\n``; an unknown or wrong charset
    degrades to UTF-8 with U+FFFD (a mislabelled message still reads)."""
    payload = part.get_payload(decode=True)
    data = payload if isinstance(payload, bytes) else b""
    charset = part.get_content_charset() or "utf-8"
    if charset in ("us-ascii", "ascii"):
        charset = "utf-8"  # a superset: mislabelled 8-bit text still reads
    try:
        text = data.decode(charset, errors="replace")
    except (LookupError, UnicodeError):  # "x-unknown", or "idna" that ignores errors=
        text = data.decode("utf-8", errors="replace")
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _part_text(part: Message) -> str:
    """A body part as plain text (an HTML one turned into text)."""
    text = decoded_text(part)
    return _html_to_text(text) if part.get_content_subtype() == "html" else text


def _body_part(message: EmailMessage) -> Message | None:
    """The text/plain part the reader sees, else the HTML one (get_body skips attachments)."""
    return message.get_body(preferencelist=("plain", "html"))


@dataclasses.dataclass(frozen=True)
class _FoundPart:
    """A part that becomes a file (an attachment) or an InlineImage."""

    name: str
    data: bytes
    content_type: str


def _safe_filename(name: str | None, fallback: str) -> str:
    """``../../etc/passwd`` -> ``passwd``: a plain name that stays in its folder.

    The last path component (either separator), control and reserved
    characters replaced, no leading dots (no ``..``, no hidden files), no
    trailing dots or spaces (Windows drops them), never empty, never too long.
    """
    components = [c for c in re.split(r"[/\\]", name or "") if c.strip(". ")]
    leaf = _UNSAFE_IN_NAME.sub("_", components[-1] if components else "")
    leaf = leaf.strip().lstrip(".").strip().rstrip(". ")
    if not leaf:
        leaf = fallback
    stem, suffix = _split_suffix(leaf)
    if stem.split(".")[0].upper() in _WINDOWS_DEVICES:  # "con.tar.gz" is a device there too
        stem = f"_{stem}"
    budget = _MAX_NAME_BYTES - len(suffix.encode())
    stem = stem.encode()[:budget].decode("utf-8", errors="ignore").rstrip(". ") or "attachment"
    return stem + suffix


def _split_suffix(name: str) -> tuple[str, str]:
    """``report.pdf`` -> ``("report", ".pdf")``; an absurd "suffix" stays in the stem."""
    stem, dot, suffix = name.rpartition(".")
    if not dot or not stem or len(suffix) > 16:
        return name, ""
    return stem, "." + suffix


def _numbered(name: str, n: int) -> str:
    """``report.pdf``, 2 -> ``report (2).pdf``."""
    if n == 1:
        return name
    stem, suffix = _split_suffix(name)
    return f"{stem} ({n}){suffix}"


def _fallback_name(base: str, content_type: str) -> str:
    return base + (mimetypes.guess_extension(content_type) or "")


def _collect_parts(
    part: Message,
    parent_type: str,
    body: Message | None,
    attachments: list[_FoundPart],
    images: list[_FoundPart],
) -> None:
    """Walk the MIME tree: images of a multipart/related are inline, the rest attaches.

    Other renderings of the body (the HTML twin of a text/plain) are skipped;
    any other part, even one without a file name, becomes an attachment so
    nothing the message carried is lost.
    """
    if part is body:
        return
    content_type = part.get_content_type()
    disposition = part.get_content_disposition()
    filename = part.get_filename()
    if content_type == "message/rfc822":
        payload = part.get_payload()
        inner = payload[0] if isinstance(payload, list) and payload else None
        data = inner.as_bytes(policy=email_policy.default) if isinstance(inner, Message) else b""
        name = _safe_filename(filename, "attached message.eml")
        attachments.append(_FoundPart(name, data, content_type))
        return
    if part.is_multipart():
        for child in part.get_payload():
            if isinstance(child, Message):
                _collect_parts(child, content_type, body, attachments, images)
        return
    payload = part.get_payload(decode=True)
    data = payload if isinstance(payload, bytes) else b""
    content_id = str(part.get("Content-ID", "")).strip().strip("<>")
    if parent_type == "multipart/related" and content_id and part.get_content_maintype() == "image":
        # Even when marked "attachment" (the stdlib's add_related does that): the HTML
        # refers to it by its Content-ID.
        name = _safe_filename(filename or content_id, _fallback_name("image", content_type))
        images.append(_FoundPart(name, data, content_type))
    elif (
        content_type in ("text/plain", "text/html")
        and disposition != "attachment"
        and not filename
        and parent_type in ("multipart/alternative", "multipart/related")
    ):
        return
    else:
        attachments.append(
            _FoundPart(
                _safe_filename(filename, _fallback_name("attachment", content_type)),
                data,
                content_type,
            )
        )


def _write_attachments(found: list[_FoundPart], directory: Path, eml: Path) -> tuple[Path, ...]:
    """Each attachment as a new 0600 file in ``directory`` (0700), never over an existing one."""
    if not found:
        return ()
    written: list[Path] = []
    try:
        existed = directory.is_dir()
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not existed:
            os.chmod(directory, 0o700)  # mkdir's mode is filtered by the umask
        # Names compared case-folded, so the outcome is the same on case-insensitive disks.
        taken = {entry.name.casefold() for entry in directory.iterdir()}
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
        for attachment in found:
            n = 1
            while True:
                name = _numbered(attachment.name, n)
                n += 1
                if name.casefold() in taken:
                    continue
                try:
                    # O_EXCL: an existing file, or a planted symlink, is never written through.
                    fd = os.open(directory / name, flags, 0o600)
                except FileExistsError:
                    continue
                break
            taken.add(name.casefold())
            path = directory / name
            written.append(path)
            with os.fdopen(fd, "wb") as out:
                out.write(attachment.data)
    except OSError as exc:
        for path in written:
            path.unlink(missing_ok=True)
        raise EmlError(
            f"The attachments of {eml.name} could not be saved in {directory} ({_reason(exc)}).",
            eml,
        ) from exc
    return tuple(written)


def _unique_names(found: list[_FoundPart]) -> list[str]:
    taken: set[str] = set()
    names: list[str] = []
    for part in found:
        n = 1
        while (name := _numbered(part.name, n)).casefold() in taken:
            n += 1
        taken.add(name.casefold())
        names.append(name)
    return names


def _unreadable(path: Path, exc: Exception) -> EmlError:
    """The error for a file the stdlib email package choked on.

    Its header and MIME parsers are not hardened against hostile input (an
    address ending in "@" raises IndexError), so anything they raise means
    "this file cannot be read as a message", not a crash.
    """
    return EmlError(f"{path.name} could not be read as an email message ({exc!r}).", path)


def load_eml(path: Path, attachments_dir: Path) -> tuple[Draft, list[str]]:
    """Open a message file as a new plain-text draft, and the address texts that did not parse.

    From becomes the sender (EmlError when it is missing or unusable); To,
    Cc, Bcc and Reply-To, Subject and the text body (text/plain, else the
    HTML as text) are kept. Attachments are written to ``attachments_dir``;
    images of a multipart/related become inline images. Other headers
    (Message-ID, Date, In-Reply-To, ...) are not kept: the new message gets its own.
    """
    message = _read_message(path)
    try:
        draft, unparsed, found_attachments = _draft_from_message(message, path)
    except EmlError:
        raise
    except Exception as exc:
        raise _unreadable(path, exc) from exc
    attachments = _write_attachments(found_attachments, attachments_dir, path)
    return dataclasses.replace(draft, attachments=attachments), unparsed


def _draft_from_message(
    message: EmailMessage, path: Path
) -> tuple[Draft, list[str], list[_FoundPart]]:
    from_texts = [
        _decoded(part) for v in _header_values(message, "from") for part in split_address_list(v)
    ]
    if not from_texts:
        raise EmlError(f"{path.name} has no From address, so it cannot become a draft.", path)
    try:
        sender = parse_address(from_texts[0])
    except AddressError as exc:
        raise EmlError(f"{path.name} has no usable From address: {exc}", path) from exc
    unparsed: list[str] = []
    body = _body_part(message)
    attachments: list[_FoundPart] = []
    images: list[_FoundPart] = []
    _collect_parts(message, "", body, attachments, images)
    inline_images = tuple(
        InlineImage(name=name, data=image.data, content_type=image.content_type)
        for name, image in zip(_unique_names(images), images, strict=True)
    )
    draft = Draft(
        sender=sender,
        to=_addresses(message, "to", unparsed),
        cc=_addresses(message, "cc", unparsed),
        bcc=_addresses(message, "bcc", unparsed),
        reply_to=_addresses(message, "reply-to", unparsed),
        subject=_header_text(message, "subject"),
        body=_part_text(body) if body is not None else "",
        body_format="markdown" if _written_in_markdown(message, body) else "plain",
        inline_images=inline_images,
    )
    return draft, unparsed, attachments


def _written_in_markdown(message: EmailMessage, body: Message | None) -> bool:
    """Mailer sends a Markdown message as its source (text/plain) beside the HTML
    made from it; such a message comes back as Markdown, anything else as plain text."""
    user_agent = str(message.get("User-Agent", ""))
    return (
        user_agent.startswith(f"{APP_NAME}/")
        and body is not None
        and body.get_content_type() == "text/plain"
        and message.get_body(preferencelist=("html",)) is not None
    )


# -- replying -----------------------------------------------------------------


def _address_key(address: MailAddress) -> str:
    return f"{address.local_part.lower()}@{address.ascii_domain.lower()}"


def reply_draft(path: Path, sender: MailAddress, *, reply_all: bool = False) -> Draft:
    """A reply to the message in ``path``, quoting it, threaded by RFC 5322 §3.6.4.

    To is the original's Reply-To, else its From (answering one's own message
    goes to its To instead); ``reply_all`` adds the original To (to To) and Cc
    (to Cc), without ``sender`` and without repeats. Addresses that do not
    parse cannot go into a Draft and are left out. The body quotes the
    original with "> ", which is also a Markdown blockquote.
    """
    message = _read_message(path)
    try:
        return _reply(message, sender, reply_all=reply_all)
    except Exception as exc:
        raise _unreadable(path, exc) from exc


def _reply(message: EmailMessage, sender: MailAddress, *, reply_all: bool) -> Draft:
    ignored: list[str] = []
    own = _address_key(sender)
    original_from = _addresses(message, "from", ignored)
    reply_to = _addresses(message, "reply-to", ignored)
    original_to = _addresses(message, "to", ignored)
    targets = reply_to or original_from
    if not reply_to and targets and all(_address_key(a) == own for a in targets):
        targets = original_to  # a reply to one's own message goes where it went

    seen: set[str] = {own} if reply_all else set()

    def fresh(addresses: tuple[MailAddress, ...]) -> tuple[MailAddress, ...]:
        kept: list[MailAddress] = []
        for address in addresses:
            if _address_key(address) not in seen:
                seen.add(_address_key(address))
                kept.append(address)
        return tuple(kept)

    if reply_all:
        to = fresh((*targets, *original_to))
        cc = fresh(_addresses(message, "cc", ignored))
    else:
        to, cc = fresh(targets), ()

    subject = _header_text(message, "subject")
    if not _REPLY_PREFIX.match(subject):
        subject = f"Re: {subject}".rstrip()

    message_id = next(iter(_message_ids(_header_text(message, "message-id"))), None)
    references = _message_ids(_header_text(message, "references"))
    if not references:
        in_reply_to = _message_ids(_header_text(message, "in-reply-to"))
        references = in_reply_to if len(in_reply_to) == 1 else []
    if message_id and message_id not in references:
        references.append(message_id)

    return Draft(
        sender=sender,
        to=to,
        cc=cc,
        subject=subject,
        body=_quoted(message, original_from),
        body_format="markdown",
        in_reply_to=message_id,
        references=tuple(references),
    )


def _quoted(message: EmailMessage, original_from: tuple[MailAddress, ...]) -> str:
    """``On <Date>, Ann wrote:`` and the original text, each line behind "> "."""
    if original_from:
        who = original_from[0].display_name or original_from[0].addr_spec
    else:
        who = _header_text(message, "from") or "Someone"
    date = _header_text(message, "date")
    attribution = f"On {date}, {who} wrote:" if date else f"{who} wrote:"
    body = _body_part(message)
    text = _part_text(body).rstrip() if body is not None else ""
    if not text:
        return f"{attribution}\n"
    quoted = "\n".join(f"> {line}".rstrip() for line in text.split("\n"))
    return f"{attribution}\n{quoted}\n"
