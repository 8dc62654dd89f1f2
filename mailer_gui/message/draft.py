"""The Draft: what the composer (or the send command) puts together.

A Draft is a plain frozen value: the composer makes a new one on every edit,
and what is frozen at Send is exactly what gets built. Attachments are file
paths, read only when the message is built; inline images may also carry
their bytes (pasted from the clipboard).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from mailer_gui.message.addresses import MailAddress

BodyFormat = Literal["markdown", "plain"]


class Priority(enum.Enum):
    """Shown by clients as a flag; sent as X-Priority and Importance."""

    HIGH = "high"
    NORMAL = "normal"
    LOW = "low"


@dataclass(frozen=True)
class InlineImage:
    """An image shown inside the HTML body.

    ``name`` is how the Markdown refers to it: ``![chart](chart.png)`` shows
    the inline image named ``chart.png``. Exactly one of ``path`` and
    ``data`` is set (a file, or bytes pasted from the clipboard).
    """

    name: str
    path: Path | None = None
    data: bytes | None = field(default=None, repr=False)
    content_type: str | None = None  # guessed from the name when None

    def __post_init__(self) -> None:
        if (self.path is None) == (self.data is None):
            raise ValueError("an inline image needs either a path or data")


@dataclass(frozen=True)
class Draft:
    sender: MailAddress
    to: tuple[MailAddress, ...] = ()
    cc: tuple[MailAddress, ...] = ()
    bcc: tuple[MailAddress, ...] = ()
    reply_to: tuple[MailAddress, ...] = ()
    subject: str = ""
    body: str = ""
    body_format: BodyFormat = "markdown"
    attachments: tuple[Path, ...] = ()
    inline_images: tuple[InlineImage, ...] = ()
    extra_headers: tuple[tuple[str, str], ...] = ()
    priority: Priority = Priority.NORMAL
    # DSN (RFC 3461) NOTIFY for every recipient, e.g. ("SUCCESS", "FAILURE");
    # empty asks for nothing beyond the server's default.
    dsn_notify: tuple[str, ...] = ()
    in_reply_to: str | None = None  # Message-ID of the message answered, with <>
    references: tuple[str, ...] = ()

    @property
    def recipients(self) -> tuple[MailAddress, ...]:
        """Everyone the message goes to, Bcc included, each once."""
        seen: dict[str, MailAddress] = {}
        for address in (*self.to, *self.cc, *self.bcc):
            seen.setdefault(address.addr_spec.lower(), address)
        return tuple(seen.values())
