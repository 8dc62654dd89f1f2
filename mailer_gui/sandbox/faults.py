"""The sandbox's fault switches: ways to make it misbehave on purpose.

A person testing mail flips these (from the GUI thread, a test, anywhere)
while the server runs on its own thread; the server reads them at each
command. Every read and write goes through one lock. Kept free of aiosmtpd
so the CLI can import the defaults without loading the server.
"""

from __future__ import annotations

import math
import threading
from typing import Final, Literal, get_args

RcptRejection = Literal["4xx", "5xx"]
RCPT_REJECTIONS: Final[tuple[str, ...]] = get_args(RcptRejection)

DEFAULT_SIZE_LIMIT: Final = 25 * 1024 * 1024  # 25 MiB, what large providers accept
MAX_REPLY_DELAY: Final = 600.0  # seconds; longer would only look like a hung server


class Faults:
    """Thread-safe switches, read by the server at every command.

    - ``reject_next_rcpt``: None, "4xx" or "5xx". The next RCPT TO gets 450 or
      550, then the switch goes back to None by itself.
    - ``greylist``: the first RCPT of each (sender, recipient) pair gets 451
      4.7.1; any later try of the pair is accepted. Switching it on forgets the
      pairs seen before.
    - ``drop_during_data``: when DATA arrives the connection is closed without
      a reply. Nothing of the message was taken, so a client must treat it as
      not sent (retry later), never as "maybe delivered".
    - ``slow_replies``: seconds to wait before each reply.
    - ``size_limit``: bytes, advertised as SIZE (None: no limit); a bigger
      message gets 552 5.3.4.
    """

    def __init__(self, *, size_limit: int | None = DEFAULT_SIZE_LIMIT) -> None:
        self._lock = threading.Lock()
        self._reject_next_rcpt: RcptRejection | None = None
        self._greylist = False
        self._greylisted: set[tuple[str, str]] = set()
        self._drop_during_data = False
        self._slow_replies = 0.0
        self._size_limit = _checked_size_limit(size_limit)

    @property
    def reject_next_rcpt(self) -> RcptRejection | None:
        with self._lock:
            return self._reject_next_rcpt

    @reject_next_rcpt.setter
    def reject_next_rcpt(self, value: RcptRejection | None) -> None:
        if value is not None and value not in RCPT_REJECTIONS:
            raise ValueError(f"reject_next_rcpt must be None, '4xx' or '5xx', not {value!r}")
        with self._lock:
            self._reject_next_rcpt = value

    def take_rcpt_rejection(self) -> RcptRejection | None:
        """The pending RCPT rejection, if any, switching it off in the same step."""
        with self._lock:
            value, self._reject_next_rcpt = self._reject_next_rcpt, None
            return value

    @property
    def greylist(self) -> bool:
        with self._lock:
            return self._greylist

    @greylist.setter
    def greylist(self, value: bool) -> None:
        with self._lock:
            if value and not self._greylist:
                self._greylisted.clear()
            self._greylist = bool(value)

    def greylisted(self, sender: str, rcpt: str) -> bool:
        """True when this RCPT is refused as a first try; records the pair as tried."""
        key = (sender.casefold(), rcpt.casefold())
        with self._lock:
            if not self._greylist or key in self._greylisted:
                return False
            self._greylisted.add(key)
            return True

    @property
    def drop_during_data(self) -> bool:
        with self._lock:
            return self._drop_during_data

    @drop_during_data.setter
    def drop_during_data(self, value: bool) -> None:
        with self._lock:
            self._drop_during_data = bool(value)

    @property
    def slow_replies(self) -> float:
        with self._lock:
            return self._slow_replies

    @slow_replies.setter
    def slow_replies(self, seconds: float) -> None:
        seconds = float(seconds)
        if not math.isfinite(seconds) or not 0.0 <= seconds <= MAX_REPLY_DELAY:
            raise ValueError(
                f"slow_replies must be 0 to {MAX_REPLY_DELAY:g} seconds, not {seconds!r}"
            )
        with self._lock:
            self._slow_replies = seconds

    @property
    def size_limit(self) -> int | None:
        with self._lock:
            return self._size_limit

    @size_limit.setter
    def size_limit(self, value: int | None) -> None:
        checked = _checked_size_limit(value)
        with self._lock:
            self._size_limit = checked

    def reset(self) -> None:
        """Every switch off; the size limit stays as it is."""
        with self._lock:
            self._reject_next_rcpt = None
            self._greylist = False
            self._greylisted.clear()
            self._drop_during_data = False
            self._slow_replies = 0.0


def _checked_size_limit(value: int | None) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"size_limit must be a positive number of bytes or None, not {value!r}")
    return value
