"""How the app behaves: the undo window, the retry schedule, connections, the composer.

Every preference is declared once, as a field of `Preferences` with its default,
its description and its check; the JSON file and the Settings dialog are built
from that table. The file (AppPaths.preferences_file) holds no secrets:

    {"schema": 1, "undo_seconds": 10, "retry_delays": [60, 300, 900, 1800, 3600], ...}

Reading never fails and never writes: a missing file gives the defaults, a
damaged one gives the defaults (or, for one bad value, that value's default)
and a warning naming the file, and the file stays as it is until the person
saves. Keys this version does not know are kept when saving.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal, get_args

from mailer_gui.outbox.policy import UNDO_WINDOW_MAX, RetryPolicy, format_duration
from mailer_gui.paths import ensure_private_dir, write_private_file_atomic

SCHEMA: Final = 1

MessageFormat = Literal["markdown", "plain"]
MESSAGE_FORMATS: Final[tuple[str, ...]] = get_args(MessageFormat)

MINUTE: Final = 60
HOUR: Final = 3600
DAY: Final = 86400

MAX_RETRY_DELAYS: Final = 20
MAX_DELAY: Final = 7 * DAY
MAX_GIVE_UP: Final = 30 * DAY
MAX_CONNECTIONS: Final = 8
MAX_PER_CONNECTION: Final = 1000
FONT_SIZES: Final = (6, 72)
MAX_TRANSCRIPT_DAYS: Final = 3650

_log = logging.getLogger(__name__)


class PreferencesError(ValueError):
    """A preference has a value it cannot have.

    ``field`` is the preference's name (as in the file); ``reason`` says what is
    wrong in words that stand on their own next to the field in a form.
    """

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class PreferencesSaveError(Exception):
    """The preferences file could not be written; the message names the file and why."""

    def __init__(self, message: str, *, path: Path) -> None:
        super().__init__(message)
        self.path = path


# --- checks of one value ------------------------------------------------------


def _whole_number(name: str, value: Any) -> int:
    # bool is an int in Python; "undo_seconds": true is still wrong.
    if not isinstance(value, int) or isinstance(value, bool):
        raise PreferencesError(name, f"must be a whole number, not {value!r}.")
    return value


def _in_range(name: str, value: Any, low: int, high: int, what: str) -> None:
    number = _whole_number(name, value)
    if not low <= number <= high:
        raise PreferencesError(name, f"{what} must be {low} to {high}, not {number}.")


def _check_undo(value: Any) -> None:
    _in_range("undo_seconds", value, 0, int(UNDO_WINDOW_MAX), "the undo window (seconds)")


def _check_delay(name: str, value: Any, what: str, high: int) -> None:
    number = _whole_number(name, value)
    if not 1 <= number <= high:
        raise PreferencesError(
            name, f"{what} must be from 1 second to {format_duration(high)}, not {number} s."
        )


def _check_retry_delays(value: Any) -> None:
    if not isinstance(value, tuple) or not value:
        raise PreferencesError(
            "retry_delays", "the retry schedule needs at least one delay, like 1 min."
        )
    if len(value) > MAX_RETRY_DELAYS:
        raise PreferencesError(
            "retry_delays",
            f"the retry schedule has {len(value)} delays; at most {MAX_RETRY_DELAYS} are allowed "
            "(after the last one, “then every” repeats).",
        )
    for number, delay in enumerate(value, start=1):
        _check_delay("retry_delays", delay, f"delay {number}", MAX_DELAY)


def _check_retry_every(value: Any) -> None:
    _check_delay("retry_every", value, "the steady retry delay", MAX_DELAY)


def _check_give_up(value: Any) -> None:
    number = _whole_number("give_up_after", value)
    if not MINUTE <= number <= MAX_GIVE_UP:
        raise PreferencesError(
            "give_up_after",
            f"Mailer gives up after 1 min to {format_duration(MAX_GIVE_UP)}, "
            f"not {format_duration(number) if number > 0 else f'{number} s'}.",
        )


def _check_max_connections(value: Any) -> None:
    _in_range("max_connections", value, 1, MAX_CONNECTIONS, "the number of connections")


def _check_per_connection(value: Any) -> None:
    _in_range(
        "per_connection", value, 1, MAX_PER_CONNECTION, "the number of messages per connection"
    )


def _check_format(value: Any) -> None:
    if value not in MESSAGE_FORMATS:
        raise PreferencesError(
            "default_format", f"must be one of {', '.join(MESSAGE_FORMATS)}, not {value!r}."
        )


def _check_font_family(value: Any) -> None:
    if not isinstance(value, str):
        raise PreferencesError("composer_font_family", f"must be a font name, not {value!r}.")
    if len(value) > 200 or any(unicodedata.category(char) == "Cc" for char in value):
        raise PreferencesError(
            "composer_font_family", "a font name is at most 200 characters, without line breaks."
        )


def _check_font_size(value: Any) -> None:
    low, high = FONT_SIZES
    _in_range("composer_font_size", value, low, high, "the font size (points)")


def _check_transcript_days(value: Any) -> None:
    _in_range("transcript_days", value, 0, MAX_TRANSCRIPT_DAYS, "the days transcripts are kept")


def _check_notifications(value: Any) -> None:
    if not isinstance(value, bool):
        raise PreferencesError("notifications", f"must be true or false, not {value!r}.")


def _about(description: str, check: Callable[[Any], None]) -> dict[str, Any]:
    return {"description": description, "check": check}


# --- the table ----------------------------------------------------------------


@dataclass(frozen=True)
class Preferences:
    """The app's behaviour. Construction validates every value (PreferencesError)."""

    undo_seconds: int = field(
        default=10,
        metadata=_about(
            "How long a message waits after Send, so that Undo can still stop it (0 to 60 s; "
            "0 sends at once).",
            _check_undo,
        ),
    )
    retry_delays: tuple[int, ...] = field(
        default=(1 * MINUTE, 5 * MINUTE, 15 * MINUTE, 30 * MINUTE, 1 * HOUR),
        metadata=_about(
            "How long to wait after the first, second, … failed attempt before trying again.",
            _check_retry_delays,
        ),
    )
    retry_every: int = field(
        default=2 * HOUR,
        metadata=_about(
            "How long to wait between further attempts once the retry schedule is used up.",
            _check_retry_every,
        ),
    )
    give_up_after: int = field(
        default=2 * DAY,
        metadata=_about(
            "How long after the first attempt Mailer stops trying and marks the message failed.",
            _check_give_up,
        ),
    )
    max_connections: int = field(
        default=4,
        metadata=_about(
            "How many servers Mailer talks to at the same time (1 to 8).", _check_max_connections
        ),
    )
    per_connection: int = field(
        default=50,
        metadata=_about(
            "How many messages one connection carries before Mailer reconnects.",
            _check_per_connection,
        ),
    )
    default_format: MessageFormat = field(
        default="markdown",
        metadata=_about("The format a new message starts in: markdown or plain.", _check_format),
    )
    composer_font_family: str = field(
        default="",
        metadata=_about(
            "The font of the composer's text; empty means the system's fixed-width font.",
            _check_font_family,
        ),
    )
    composer_font_size: int = field(
        default=11,
        metadata=_about("The size of the composer's text, in points (6 to 72).", _check_font_size),
    )
    transcript_days: int = field(
        default=30,
        metadata=_about(
            "Days a sent, failed or cancelled message keeps the transcripts of its attempts "
            "(0 keeps them forever).",
            _check_transcript_days,
        ),
    )
    notifications: bool = field(
        default=True,
        metadata=_about(
            "Show a desktop notification when a message fails or is deferred, and when a "
            "deferred one is finally sent.",
            _check_notifications,
        ),
    )

    def __post_init__(self) -> None:
        if isinstance(self.retry_delays, list):
            # A list from JSON or a caller: the frozen record keeps a tuple.
            object.__setattr__(self, "retry_delays", tuple(self.retry_delays))
        for spec in dataclasses.fields(self):
            validate_preference(spec.name, getattr(self, spec.name))

    def retry_policy(self) -> RetryPolicy:
        """The outbox's retry schedule (OutboxStore.policy) from these preferences."""
        return RetryPolicy(
            delays=tuple(float(delay) for delay in self.retry_delays),
            then_every=float(self.retry_every),
            give_up_after=float(self.give_up_after),
        )

    def to_json(self) -> dict[str, Any]:
        document: dict[str, Any] = {"schema": SCHEMA}
        for spec in dataclasses.fields(self):
            value = getattr(self, spec.name)
            document[spec.name] = list(value) if isinstance(value, tuple) else value
        return document


PREFERENCE_FIELDS: Final[tuple[dataclasses.Field[Any], ...]] = dataclasses.fields(Preferences)
FIELDS_BY_NAME: Final[Mapping[str, dataclasses.Field[Any]]] = {
    spec.name: spec for spec in PREFERENCE_FIELDS
}


def describe(name: str) -> str:
    """The description of the preference called `name` (for tooltips and help)."""
    return str(FIELDS_BY_NAME[name].metadata["description"])


def validate_preference(name: str, value: Any) -> None:
    """Raise PreferencesError unless `value` is allowed for the preference `name`."""
    spec = FIELDS_BY_NAME.get(name)
    if spec is None:
        raise PreferencesError(name, "there is no such preference.")
    check: Callable[[Any], None] = spec.metadata["check"]
    check(value)


# --- durations, as people write them ------------------------------------------

_UNIT_WORDS: Final[Mapping[str, int]] = {
    **dict.fromkeys(("s", "sec", "secs", "second", "seconds"), 1),
    **dict.fromkeys(("m", "min", "mins", "minute", "minutes"), MINUTE),
    **dict.fromkeys(("h", "hr", "hrs", "hour", "hours"), HOUR),
    **dict.fromkeys(("d", "day", "days"), DAY),
}
_PART = re.compile(r"\s*(\d+(?:[.,]\d+)?)\s*([a-z]*)", re.IGNORECASE)


def parse_duration(text: str) -> int:
    """Seconds from ``"5 min"``, ``"1 h 30 min"``, ``"2 d"``, ``"90 s"``; a bare number is minutes.

    ValueError (with a sentence for the person) when the text is not a duration.
    """
    position, total, stripped = 0, 0.0, text.strip()
    if not stripped:
        raise ValueError("Enter a duration, like 5 min, 1 h or 2 d.")
    while position < len(stripped):
        match = _PART.match(stripped, position)
        if match is None or match.end() == position:
            raise ValueError(f"{text.strip()!r} is not a duration like 5 min, 1 h or 2 d.")
        number, unit = match.groups()
        size = _UNIT_WORDS.get(unit.lower()) if unit else MINUTE
        if size is None:
            raise ValueError(
                f"{unit!r} is not a unit of time; use s, min, h or d (like 5 min or 1 h)."
            )
        total += float(number.replace(",", ".")) * size
        position = match.end()
        while position < len(stripped) and stripped[position].isspace():
            position += 1
    seconds = round(total)
    if seconds <= 0:
        raise ValueError("A duration must be longer than zero.")
    return seconds


# --- the file -----------------------------------------------------------------


def load_preferences(
    path: str | os.PathLike[str], *, warn: Callable[[str], None] | None = None
) -> Preferences:
    """The preferences in the file at `path`; the defaults when there is none.

    A damaged file, or invalid values in it, give the defaults (for the bad
    values only, when the rest is readable) and one warning naming the file,
    passed to `warn` (logged when `warn` is None). The file is never written
    here, so nothing is lost until the person saves the settings.
    """
    target = Path(path)
    preferences, warning = read_preferences(target)
    if warning is not None:
        if warn is None:
            _log.warning("%s", warning)
        else:
            warn(warning)
    return preferences


def read_preferences(path: str | os.PathLike[str]) -> tuple[Preferences, str | None]:
    """Like `load_preferences`, returning the warning (or None) beside the preferences."""
    target = Path(path)
    try:
        data = target.read_bytes()
    except FileNotFoundError:
        return Preferences(), None
    except OSError as error:
        return Preferences(), (
            f"The preferences file {target} cannot be read ({error.strerror}), so the default "
            "settings are used. The file was left as it is."
        )
    try:
        raw = json.loads(data.decode("utf-8-sig"))
    except UnicodeDecodeError:
        return Preferences(), _damaged(target, "it is not UTF-8 text")
    except json.JSONDecodeError as error:
        return Preferences(), _damaged(
            target, f"not valid JSON: {error.msg} at line {error.lineno}"
        )
    if not isinstance(raw, dict):
        return Preferences(), _damaged(target, "the top level is not a JSON object")
    values: dict[str, Any] = {}
    problems: list[str] = []
    for spec in PREFERENCE_FIELDS:
        if spec.name not in raw:
            continue
        value = raw[spec.name]
        if spec.name == "retry_delays" and isinstance(value, list):
            value = tuple(value)  # validated as the record holds it
        try:
            validate_preference(spec.name, value)
        except PreferencesError as error:
            problems.append(str(error))
        else:
            values[spec.name] = value
    preferences = Preferences(**values)
    if not problems:
        return preferences, None
    return preferences, (
        f"The preferences file {target} has invalid settings, so their defaults are used: "
        + "; ".join(problems)
        + " The file was left as it is; saving the settings replaces it."
    )


def _damaged(path: Path, reason: str) -> str:
    return (
        f"The preferences file {path} is damaged ({reason}), so the default settings are "
        "used. The file was left as it is: fix it, or save the settings to replace it."
    )


def save_preferences(path: str | os.PathLike[str], preferences: Preferences) -> None:
    """Write `preferences` to `path`, all or nothing, as a 0600 file in a 0700 folder.

    Keys in the existing file that this version does not know are kept, so an
    older Mailer does not erase what a newer one wrote. PreferencesSaveError
    when the file cannot be written.
    """
    target = Path(path)
    document: dict[str, Any] = {}
    try:
        existing = json.loads(target.read_bytes().decode("utf-8-sig"))
    except (OSError, ValueError):
        existing = None  # missing or damaged: replaced by what the person saved
    if isinstance(existing, dict):
        document.update((k, v) for k, v in existing.items() if k not in FIELDS_BY_NAME)
    document.update(preferences.to_json())
    data = (json.dumps(document, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
    try:
        ensure_private_dir(target.parent)
        write_private_file_atomic(target, data)
    except OSError as error:
        raise PreferencesSaveError(
            f"The preferences could not be saved to {target}: "
            f"{error.strerror or error}. The previous file is unchanged.",
            path=target,
        ) from error
