"""Captured mail, kept as a Maildir any mail reader can open.

Each accepted message is one file, written 0600 into tmp/, fsynced and renamed
into new/ (so a reader never sees half a message), with the exact bytes the
client sent (CRLF line ends) after three kinds of header the sandbox adds on
top, as a local delivery agent does:

    Return-Path: <sender@example.org>
    X-Sandbox-Envelope-To: <rcpt@example.org>      (one per envelope recipient)
    X-Sandbox-Captured: 2024-05-01T10:00:00.123456+00:00; size=1234

The envelope is what was given in MAIL FROM and RCPT TO, so Bcc recipients
show. The server (sandbox.server) writes here from its thread; the listing,
delete and clear may run on any thread.
"""

from __future__ import annotations

import contextlib
import email.parser
import email.policy
import itertools
import os
import re
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from mailer_gui.paths import ensure_private_dir, fsync_directory
from mailer_gui.sandbox.errors import SandboxError

ENVELOPE_FROM: Final = b"Return-Path"
ENVELOPE_TO: Final = b"X-Sandbox-Envelope-To"
CAPTURED: Final = b"X-Sandbox-Captured"
HEADER_READ_LIMIT: Final = 64 * 1024  # the listing reads no further into a file
_INFO_SEPARATOR = re.compile(r"[:!]")  # "name:2,S" (or "!2,S" on Windows) in cur/
_counter = itertools.count()
_counter_lock = threading.Lock()


@dataclass(frozen=True)
class CapturedMessage:
    """One captured message: what the listing shows and where the file is."""

    id: str  # the Maildir file name, without the ":2,flags" a mail reader may add
    envelope_from: str
    envelope_to: tuple[str, ...]
    subject: str
    date: datetime  # when the sandbox took it (UTC)
    size: int  # bytes as the client sent them
    path: Path


class Inbox:
    """The Maildir at `path` (created with cur/, new/ and tmp/, all 0700)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        try:
            for folder in (self.path, self.path / "tmp", self.path / "new", self.path / "cur"):
                ensure_private_dir(folder)
        except OSError as error:
            raise SandboxError(
                f"The sandbox cannot use {self.path} as its mail folder: "
                f"{error.strerror or error}. Choose a folder you can write to."
            ) from error

    def deliver(
        self,
        envelope_from: str,
        envelope_to: Sequence[str],
        content: bytes,
        *,
        now: datetime | None = None,
    ) -> CapturedMessage:
        """Keep one message: tmp/ then, complete and synced, new/. OSError if the disk fails."""
        moment = now or datetime.now(UTC)
        name = _unique_name()
        prefix = _envelope_headers(envelope_from, envelope_to, moment, len(content))
        temporary = self.path / "tmp" / name
        final = self.path / "new" / name
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(descriptor, "wb") as stream:
                if os.name == "posix":
                    os.fchmod(stream.fileno(), 0o600)  # whatever the umask
                stream.write(prefix)
                stream.write(content)
                stream.flush()
                os.fsync(stream.fileno())
            os.rename(temporary, final)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
            raise
        fsync_directory(final.parent)
        return CapturedMessage(
            id=name,
            envelope_from=envelope_from,
            envelope_to=tuple(envelope_to),
            subject=_subject(content[:HEADER_READ_LIMIT]),
            date=moment,
            size=len(content),
            path=final,
        )

    def messages(self) -> list[CapturedMessage]:
        """Every message in new/ and cur/, oldest first."""
        found = [message for path in self._files() if (message := _read(path)) is not None]
        return sorted(found, key=lambda message: (message.date, message.id))

    def delete(self, message_id: str) -> bool:
        """Remove one message; False when there is none with that id (any more)."""
        for path in self._files():
            if _id_of(path.name) == message_id:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                    return True
        return False

    def clear(self) -> int:
        """Remove every message (not those still being written); how many went."""
        removed = 0
        for path in self._files():
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                removed += 1
        return removed

    def _files(self) -> Iterator[Path]:
        for folder in ("new", "cur"):
            try:
                entries = list(os.scandir(self.path / folder))
            except FileNotFoundError:
                continue
            for entry in entries:
                if not entry.name.startswith(".") and entry.is_file(follow_symlinks=False):
                    yield Path(entry.path)


def _unique_name() -> str:
    """A Maildir name: time, microseconds, process, counter and host make it unique."""
    with _counter_lock:
        sequence = next(_counter)
    now = time.time()
    seconds = int(now)
    micro = int((now - seconds) * 1_000_000)
    host = socket.gethostname().replace("/", r"\057").replace(":", r"\072") or "localhost"
    return f"{seconds}.M{micro}P{os.getpid()}Q{sequence}.{host}"


def _id_of(file_name: str) -> str:
    return _INFO_SEPARATOR.split(file_name, maxsplit=1)[0]


def _header_value(text: str) -> bytes:
    # Addresses come from the SMTP command line (UTF-8 with surrogate escapes for
    # stray bytes); a stray CR or LF must not start a header of its own.
    cleaned = "".join("?" if char in "\r\n\0" else char for char in text)
    return cleaned.encode("utf-8", "surrogateescape")


def _envelope_headers(
    envelope_from: str, envelope_to: Sequence[str], moment: datetime, size: int
) -> bytes:
    lines = [ENVELOPE_FROM + b": <" + _header_value(envelope_from) + b">"]
    lines += [ENVELOPE_TO + b": <" + _header_value(rcpt) + b">" for rcpt in envelope_to]
    lines.append(CAPTURED + f": {moment.isoformat()}; size={size}".encode("ascii"))
    return b"\r\n".join(lines) + b"\r\n"


def _header_block(head: bytes) -> bytes:
    ends = [position for position in (head.find(b"\r\n\r\n"), head.find(b"\n\n")) if position >= 0]
    return head[: min(ends)] if ends else head


def _subject(head: bytes) -> str:
    """The decoded Subject of a message's header block ("" when there is none)."""
    text = _header_block(head).decode("utf-8", "replace")
    try:
        subject = email.parser.HeaderParser(policy=email.policy.default).parsestr(text)["subject"]
    except Exception:  # a header the email package cannot parse: show no subject
        return ""
    return "" if subject is None else " ".join(str(subject).split())


def _read(path: Path) -> CapturedMessage | None:
    try:
        info = path.stat()
        with open(path, "rb") as stream:
            head = stream.read(HEADER_READ_LIMIT)
    except FileNotFoundError:
        return None  # deleted since the folder was listed
    except OSError:
        return None  # unreadable: not ours to show
    envelope_from = ""
    envelope_to: list[str] = []
    moment: datetime | None = None
    size = info.st_size
    lines = _header_block(head).splitlines(keepends=True)
    consumed = 0
    for line in lines:
        name, _, raw = line.partition(b":")
        value = raw.strip().decode("utf-8", "replace")
        if name == ENVELOPE_FROM:
            envelope_from = value.removeprefix("<").removesuffix(">")
        elif name == ENVELOPE_TO:
            envelope_to.append(value.removeprefix("<").removesuffix(">"))
        elif name == CAPTURED:
            moment, size = _captured_fields(value, size)
            consumed += len(line)
            break
        else:
            break
        consumed += len(line)
    if moment is None:  # not written by the sandbox: show what the file itself tells
        envelope_from, envelope_to, consumed = "", [], 0
        moment = datetime.fromtimestamp(info.st_mtime, UTC)
    return CapturedMessage(
        id=_id_of(path.name),
        envelope_from=envelope_from,
        envelope_to=tuple(envelope_to),
        subject=_subject(head[consumed:]),
        date=moment,
        size=size,
        path=path,
    )


def _captured_fields(value: str, default_size: int) -> tuple[datetime | None, int]:
    stamp, _, rest = value.partition(";")
    try:
        moment: datetime | None = datetime.fromisoformat(stamp.strip())
    except ValueError:
        moment = None
    if moment is not None and moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    size = default_size
    key, _, number = rest.strip().partition("=")
    if key == "size" and number.isdigit():
        size = int(number)
    return moment, size
