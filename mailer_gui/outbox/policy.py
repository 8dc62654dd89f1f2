"""When to try again, and what a failure means for the message and the account.

SMTP promises several attempts and an error report when they fail. The
schedule starts soon (the network may just have come back) and slows to
every two hours, giving up after two days (RFC 5321 §4.5.4.1 asks for days,
not minutes). A refused password never retries: that locks accounts.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from mailer_gui.smtp.errors import (
    AuthenticationError,
    MessageRefused,
    SecurityPolicyError,
    SmtpError,
    TlsError,
)

MINUTE = 60.0
HOUR = 3600.0

#: What a paused account's state says: its password is wanted, or another fix.
NEEDS_PASSWORD = "needs password"
NEEDS_ATTENTION = "needs attention"


@dataclass(frozen=True)
class RetryPolicy:
    """Delays after the first, second, ... failed attempt, then a steady one."""

    delays: tuple[float, ...] = (1 * MINUTE, 5 * MINUTE, 15 * MINUTE, 30 * MINUTE, 1 * HOUR)
    then_every: float = 2 * HOUR
    give_up_after: float = 48 * HOUR

    def __post_init__(self) -> None:
        if any(d <= 0 for d in self.delays) or self.then_every <= 0 or self.give_up_after <= 0:
            raise ValueError("retry delays and the give-up age must be positive")

    def delay(self, failed_attempts: int) -> float:
        """Seconds to wait after ``failed_attempts`` (1 = the first failure)."""
        if failed_attempts < 1:
            return 0.0
        index = failed_attempts - 1
        return self.delays[index] if index < len(self.delays) else self.then_every

    def next_attempt(
        self, failed_attempts: int, first_attempt_at: float, now: float
    ) -> float | None:
        """When to try next, or None when the message has waited long enough."""
        when = now + self.delay(failed_attempts)
        if when - first_attempt_at > self.give_up_after:
            return None
        return when


def format_duration(seconds: int) -> str:
    """``90`` -> ``"1 min 30 s"``, ``7200`` -> ``"2 h"``, ``172800`` -> ``"2 d"``:
    a duration as the retry schedule is written in Settings."""
    if seconds <= 0:
        return "0 s"
    parts: list[str] = []
    rest = seconds
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60), ("s", 1)):
        count, rest = divmod(rest, size)
        if count:
            parts.append(f"{count} {unit}")
    return " ".join(parts)


def human_duration(seconds: float) -> str:
    """How long something took, in `format_duration`'s words: ``372.4`` ->
    ``"6 min 12 s"``; from an hour on, to the minute (``90030`` -> ``"1 d 1 h 1 min"``)."""
    if seconds >= HOUR:
        return format_duration(round(seconds / MINUTE) * int(MINUTE))
    return format_duration(round(seconds))


class Disposition(enum.Enum):
    """What a failure that ended an attempt means."""

    DEFER = "defer"  # try the message again later
    FAIL = "fail"  # the message cannot be sent as it is
    PAUSE_ACCOUNT = "pause-account"  # nothing for this account until the person acts


@dataclass(frozen=True)
class Verdict:
    disposition: Disposition
    reason: str
    # For PAUSE_ACCOUNT: the short state shown beside the account.
    account_state: str | None = None


def judge(error: SmtpError) -> Verdict:
    """The outbox's reading of an error that ended an attempt."""
    if isinstance(error, AuthenticationError) and not error.transient:
        # 535 and friends: retrying a wrong password gets accounts locked.
        return Verdict(Disposition.PAUSE_ACCOUNT, error.message, NEEDS_PASSWORD)
    if isinstance(error, TlsError | SecurityPolicyError):
        # A certificate or a missing STARTTLS will not fix itself; ask the person.
        return Verdict(Disposition.PAUSE_ACCOUNT, error.message, NEEDS_ATTENTION)
    if isinstance(error, MessageRefused):
        return Verdict(Disposition.FAIL, error.message)
    if error.transient:
        return Verdict(Disposition.DEFER, error.message)
    return Verdict(Disposition.FAIL, error.message)


UNDO_WINDOW_DEFAULT = 10.0
UNDO_WINDOW_MAX = 60.0


def undo_deadline(now: float, seconds: float = UNDO_WINDOW_DEFAULT) -> float:
    """When a message pressed Send on at ``now`` may leave (the undo window).

    Until then it waits as ``scheduled``, and Undo simply cancels it: the
    message has not been sent, so nothing claims it was.
    """
    if not 0 <= seconds <= UNDO_WINDOW_MAX:
        raise ValueError(f"the undo window is 0 to {UNDO_WINDOW_MAX:g} seconds, not {seconds:g}")
    return now + seconds
