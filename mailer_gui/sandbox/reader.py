"""One captured message taken apart for the sandbox inbox: body, headers, source, attachments.

The inbox view (ui/sandbox_view.py) shows a captured message the way a mail
reader would, and lets the person save its attachments. The reading happens
here, without Qt, on a worker thread: a message may be as big as the size
limit. sandbox.maildir keeps the files; this module only reads them.
"""

from __future__ import annotations

import email.message
import email.parser
import email.policy
import mimetypes
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from mailer_gui.paths import write_private_file_atomic
from mailer_gui.sandbox.errors import SandboxError

SOURCE_SHOWN_LIMIT: Final = 1024 * 1024  # bytes of raw source shown; the file has the rest
INLINE_IMAGES_LIMIT: Final = 16 * 1024 * 1024  # bytes of cid: images kept for the view


@dataclass(frozen=True)
class CapturedAttachment:
    """A part shown as an attachment; `index` finds it again (walk order) to save it."""

    index: int
    filename: str
    content_type: str
    size: int  # decoded bytes


@dataclass(frozen=True)
class CapturedContent:
    """What the inbox shows of one message."""

    path: Path
    headers: str  # the header block as received, the sandbox's envelope lines first
    source: str  # the raw message, up to SOURCE_SHOWN_LIMIT bytes
    source_size: int  # bytes in the file: more than `source` holds when it was cut
    html: str | None  # the text/html body, when the message has one
    text: str | None  # the text/plain body, when the message has one
    # Content-ID (without <>) -> (content type, bytes): what cid: URLs in `html` show.
    inline_images: Mapping[str, tuple[str, bytes]] = field(repr=False)
    attachments: tuple[CapturedAttachment, ...]

    @property
    def source_cut(self) -> bool:
        """The file holds more than `source` shows."""
        return self.source_size > SOURCE_SHOWN_LIMIT


def read_captured(path: Path) -> CapturedContent:
    """Read and take apart the captured message at `path`.

    SandboxError when the file is gone (deleted, or moved by a mail reader)
    or cannot be read.
    """
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise SandboxError(
            "This message is no longer in the sandbox inbox (deleted, or moved by another "
            "program). The list is refreshed."
        ) from None
    except OSError as error:
        raise SandboxError(
            f"The message file {path} cannot be read: {error.strerror or error}."
        ) from None
    message = email.parser.BytesParser(policy=email.policy.default).parsebytes(data)
    html_part = _body(message, "html")
    text_part = _body(message, "plain")
    html = _text_of(html_part)
    # An image the HTML shows by its Content-ID is part of the body, whatever its
    # Content-Disposition says (senders mark such parts "attachment" too).
    referenced = (html or "").casefold()
    bodies = {id(part) for part in (html_part, text_part) if part is not None}
    inline: dict[str, tuple[str, bytes]] = {}
    inline_bytes = 0
    attachments: list[CapturedAttachment] = []
    for index, part in _leaves(message):
        if id(part) in bodies:
            continue
        payload = _payload(part)
        content_id = _content_id(part)
        if (
            content_id
            and part.get_content_maintype() == "image"
            and f"cid:{content_id}".casefold() in referenced
            and inline_bytes + len(payload) <= INLINE_IMAGES_LIMIT
        ):
            inline[content_id] = (part.get_content_type(), payload)
            inline_bytes += len(payload)
            continue
        attachments.append(
            CapturedAttachment(
                index=index,
                filename=_filename(part, index),
                content_type=part.get_content_type(),
                size=len(payload),
            )
        )
    return CapturedContent(
        path=Path(path),
        headers=_header_block(data).decode("utf-8", "replace"),
        source=data[:SOURCE_SHOWN_LIMIT].decode("utf-8", "replace"),
        source_size=len(data),
        html=html,
        text=_text_of(text_part),
        inline_images=inline,
        attachments=tuple(attachments),
    )


def save_attachment(path: Path, index: int, target: Path) -> int:
    """Write the decoded part number `index` of the message at `path` to `target`.

    All or nothing (a temporary file renamed over `target`). The number of
    bytes written; SandboxError when the message or the part is gone, or the
    file cannot be written.
    """
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise SandboxError(
            "The attachment cannot be saved: its message is no longer in the sandbox inbox "
            f"({error.strerror or error})."
        ) from None
    message = email.parser.BytesParser(policy=email.policy.default).parsebytes(data)
    for number, part in _leaves(message):
        if number == index:
            payload = _payload(part)
            break
    else:
        raise SandboxError("The attachment cannot be saved: the message no longer has it.")
    try:
        write_private_file_atomic(target, payload)
    except OSError as error:
        raise SandboxError(
            f"The attachment could not be saved to {target}: {error.strerror or error}. "
            "Choose another folder or file name."
        ) from None
    return len(payload)


def _leaves(message: email.message.EmailMessage) -> Iterator[tuple[int, email.message.Message]]:
    for index, part in enumerate(message.walk()):
        if not part.is_multipart():
            yield index, part


def _body(message: email.message.EmailMessage, subtype: str) -> email.message.EmailMessage | None:
    try:
        part = message.get_body(preferencelist=(subtype,))
    except Exception:  # a structure the email package cannot walk: no body of that kind
        return None
    if part is None or part.get_content_type() != f"text/{subtype}":
        return None
    return part  # type: ignore[return-value]  # typeshed: Message, at run time EmailMessage


def _text_of(part: email.message.Message | None) -> str | None:
    if part is None:
        return None
    try:
        content = part.get_content()  # type: ignore[attr-defined]
    except (LookupError, ValueError, AssertionError):  # an unknown charset, a broken encoding
        content = _payload(part).decode("utf-8", "replace")
    return content if isinstance(content, str) else None


def _payload(part: email.message.Message) -> bytes:
    payload = part.get_payload(decode=True)
    return payload if isinstance(payload, bytes) else b""


def _content_id(part: email.message.Message) -> str | None:
    value = part.get("Content-ID")
    if value is None:
        return None
    text = str(value).strip()
    return text.removeprefix("<").removesuffix(">") or None


def _filename(part: email.message.Message, index: int) -> str:
    name = part.get_filename()
    if name:
        # A name is shown and offered for saving: no folders in it.
        return name.replace("/", "_").replace("\\", "_").strip() or f"part-{index}"
    extension = mimetypes.guess_extension(part.get_content_type()) or ".bin"
    return f"part-{index}{extension}"


def _header_block(data: bytes) -> bytes:
    ends = [at for at in (data.find(b"\r\n\r\n"), data.find(b"\n\n")) if at >= 0]
    return data[: min(ends)] if ends else data


__all__ = [
    "CapturedAttachment",
    "CapturedContent",
    "read_captured",
    "save_attachment",
]
