"""The Draft: what the composer (or the send command) puts together."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from mailer_gui.message.addresses import MailAddress

BodyFormat = Literal["markdown", "plain"]


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
    extra_headers: tuple[tuple[str, str], ...] = field(default=())

    @property
    def recipients(self) -> tuple[MailAddress, ...]:
        """Everyone the message goes to, Bcc included, each once."""
        seen: dict[str, MailAddress] = {}
        for address in (*self.to, *self.cc, *self.bcc):
            seen.setdefault(address.addr_spec.lower(), address)
        return tuple(seen.values())
