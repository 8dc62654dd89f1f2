"""The session log: every line the server said and every line we sent.

Records are made redacted: AUTH payloads never reach a `TranscriptRecord`
(protocol.transcript_text replaces them before the session records a line),
and `Transcript.secrets` is a last guard that scrubs any known secret, in
plain or base64 form, from text that a note might carry (a server echoing a
username and password back, say).
"""

from __future__ import annotations

import base64
import enum
import threading
import time
from collections.abc import Callable, Iterable
from typing import NamedTuple

from mailer_gui.smtp.protocol import REDACTED


class Direction(enum.Enum):
    CLIENT = "C"
    SERVER = "S"
    NOTE = "*"

    # Members are singletons, equal only to themselves: hashed by identity, in
    # C. Enum's own __hash__ is Python code, and several are hashed per message.
    __hash__ = object.__hash__


class TranscriptRecord(NamedTuple):
    """One line of a session log (a named tuple: a dozen are made per message)."""

    time: float  # seconds since the epoch
    direction: Direction
    text: str

    def render(self) -> str:
        """``C: EHLO host`` / ``S: 250 ok`` / ``* TLS 1.3 established``."""
        # By identity: an enum's .value is a Python-level property, and a
        # dozen lines a message are rendered at thousands of messages a second.
        direction = self.direction
        if direction is _CLIENT:
            return "C: " + self.text
        if direction is _SERVER:
            return "S: " + self.text
        return "* " + self.text


_CLIENT, _SERVER = Direction.CLIENT, Direction.SERVER
_PREFIXES = {Direction.CLIENT: "C: ", Direction.SERVER: "S: ", Direction.NOTE: "* "}


def render_records(records: Iterable[TranscriptRecord]) -> str:
    """Records as the stored session log: one `TranscriptRecord.render` line each.

    The outbox renders a dozen records for every message it sends, so this
    looks the prefix up instead of calling render() per line.
    """
    prefixes = _PREFIXES
    return "\n".join([prefixes[record.direction] + record.text for record in records])


Listener = Callable[[TranscriptRecord], None]


def _secret_forms(secret: str) -> set[str]:
    """The ways a secret could appear in a line: as is, and base64 encoded
    on its own or at any of the three byte alignments inside a longer payload."""
    raw = secret.encode("utf-8")
    forms = {secret, base64.b64encode(raw).decode("ascii")}
    for shift in range(3):
        encoded = base64.b64encode(b"\0" * shift + raw).decode("ascii")
        # Drop the characters touched by the padding bytes on each side.
        start = (shift * 4 + 2) // 3
        inner = encoded[start:]
        inner = inner.rstrip("=")
        if len(inner) > 4:
            forms.add(inner[:-2])
    # Short base64 fragments would match unrelated text; the secret itself
    # is always scrubbed, however short.
    return {form for form in forms if len(form) >= 4} | {secret}


class Transcript:
    """Thread-safe list of records with live listeners (the CLI's -v, the GUI log)."""

    def __init__(self, listener: Listener | None = None) -> None:
        self._records: list[TranscriptRecord] = []
        # Replaced, never mutated, so _add can call them without a copy.
        self._listeners: tuple[Listener, ...] = (listener,) if listener else ()
        self._lock = threading.Lock()
        self._secret_forms: frozenset[str] = frozenset()

    def add_secret(self, secret: str) -> None:
        """Scrub this secret (and its base64 forms) from every later record."""
        if secret:
            with self._lock:
                self._secret_forms = self._secret_forms | _secret_forms(secret)

    def add_listener(self, listener: Listener) -> None:
        with self._lock:
            self._listeners = (*self._listeners, listener)

    def _add(self, direction: Direction, text: str) -> None:
        # A dozen lines a message: the empty cases (no secret, nobody
        # listening) skip their loops.
        if self._secret_forms:
            for form in self._secret_forms:
                if form in text:
                    text = text.replace(form, REDACTED)
        record = TranscriptRecord(time.time(), direction, text)
        # One append, and one copy in `records`: each is a single operation
        # on the list, which Python keeps whole between threads (the GIL, or
        # the list's own lock without it). No lock of ours for a dozen a message.
        self._records.append(record)
        if self._listeners:
            for listener in self._listeners:
                listener(record)

    def client(self, text: str) -> None:
        self._add(Direction.CLIENT, text)

    def server(self, text: str) -> None:
        self._add(Direction.SERVER, text)

    def note(self, text: str) -> None:
        self._add(Direction.NOTE, text)

    @property
    def records(self) -> tuple[TranscriptRecord, ...]:
        return tuple(self._records)

    def render(self) -> str:
        return render_records(self.records)
