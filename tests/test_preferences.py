"""Preferences: defaults, checks naming the field, the file (missing, damaged, saved)."""

from __future__ import annotations

import json
import logging
import stat
from dataclasses import replace
from pathlib import Path

import pytest

from mailer_gui.outbox.policy import RetryPolicy
from mailer_gui.preferences import (
    PREFERENCE_FIELDS,
    Preferences,
    PreferencesError,
    PreferencesSaveError,
    describe,
    format_duration,
    load_preferences,
    parse_duration,
    read_preferences,
    save_preferences,
)


def test_defaults() -> None:
    prefs = Preferences()
    assert prefs.undo_seconds == 10
    assert prefs.retry_delays == (60, 300, 900, 1800, 3600)
    assert prefs.retry_every == 7200
    assert prefs.give_up_after == 2 * 86400
    assert (prefs.max_connections, prefs.per_connection) == (4, 50)
    assert prefs.default_format == "markdown"
    assert prefs.transcript_days == 30
    assert prefs.notifications is True


def test_default_retry_policy_is_the_outbox_default() -> None:
    assert Preferences().retry_policy() == RetryPolicy()


def test_retry_policy_follows_the_schedule() -> None:
    policy = Preferences(retry_delays=(30, 90), retry_every=600, give_up_after=3600).retry_policy()
    assert [policy.delay(n) for n in (1, 2, 3, 4)] == [30.0, 90.0, 600.0, 600.0]
    assert policy.give_up_after == 3600.0
    assert policy.next_attempt(3, first_attempt_at=0.0, now=3500.0) is None


def test_every_preference_is_described() -> None:
    for spec in PREFERENCE_FIELDS:
        assert len(describe(spec.name)) > 20


@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        ({"undo_seconds": 61}, "undo_seconds", "0 to 60"),
        ({"undo_seconds": -1}, "undo_seconds", "0 to 60"),
        ({"undo_seconds": True}, "undo_seconds", "whole number"),
        ({"retry_delays": ()}, "retry_delays", "at least one"),
        ({"retry_delays": (60, 0)}, "retry_delays", "delay 2"),
        ({"retry_delays": (60,) * 21}, "retry_delays", "at most 20"),
        ({"retry_every": 0}, "retry_every", "1 second"),
        ({"give_up_after": 10}, "give_up_after", "1 min to 30 d"),
        ({"max_connections": 9}, "max_connections", "1 to 8"),
        ({"max_connections": 0}, "max_connections", "1 to 8"),
        ({"per_connection": 0}, "per_connection", "1 to 1000"),
        ({"default_format": "html"}, "default_format", "markdown, plain"),
        ({"composer_font_family": "Mono\nspace"}, "composer_font_family", "line breaks"),
        ({"composer_font_size": 5}, "composer_font_size", "6 to 72"),
        ({"transcript_days": -1}, "transcript_days", "0 to 3650"),
        ({"notifications": 1}, "notifications", "true or false"),
    ],
)
def test_invalid_values_name_the_field(changes: dict, field: str, words: str) -> None:
    with pytest.raises(PreferencesError) as caught:
        replace(Preferences(), **changes)
    assert caught.value.field == field
    assert words in caught.value.reason
    assert str(caught.value).startswith(f"{field}: ")


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90 s", 90), ("5 min", 300), ("5", 300), ("1 h 30 min", 5400), ("2 d", 172800),
     ("1.5 h", 5400), ("1,5h", 5400), ("2 hours", 7200), ("30 seconds", 30), (" 1 H ", 3600)],
)  # fmt: skip
def test_parse_duration(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("text", "words"),
    [("", "Enter a duration"), ("soon", "not a duration"), ("5 weeks", "not a unit"),
     ("0 min", "longer than zero"), ("-5 min", "not a duration")],
)  # fmt: skip
def test_parse_duration_refuses(text: str, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        parse_duration(text)


@pytest.mark.parametrize("seconds", [1, 59, 60, 90, 300, 3600, 5400, 7200, 86400, 90061])
def test_format_duration_round_trips(seconds: int) -> None:
    assert parse_duration(format_duration(seconds)) == seconds


def test_format_duration_reads_well() -> None:
    assert [format_duration(s) for s in (60, 90, 7200, 172800)] == [
        "1 min",
        "1 min 30 s",
        "2 h",
        "2 d",
    ]


# ------------------------------------------------------------------ the file


def test_missing_file_gives_defaults_without_a_warning(tmp_path: Path) -> None:
    warnings: list[str] = []
    assert load_preferences(tmp_path / "nope.json", warn=warnings.append) == Preferences()
    assert warnings == []


def test_round_trip_is_private_and_atomic(tmp_path: Path) -> None:
    path = tmp_path / "config" / "preferences.json"
    prefs = Preferences(
        undo_seconds=0,
        retry_delays=(30, 120),
        retry_every=900,
        give_up_after=86400,
        max_connections=2,
        per_connection=10,
        default_format="plain",
        composer_font_family="DejaVu Sans Mono",
        composer_font_size=14,
        transcript_days=0,
        notifications=False,
    )
    save_preferences(path, prefs)
    assert load_preferences(path) == prefs
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert [p.name for p in path.parent.iterdir()] == ["preferences.json"]  # no temporary left
    document = json.loads(path.read_text(encoding="utf-8"))
    assert document["schema"] == 1 and document["retry_delays"] == [30, 120]


@pytest.mark.parametrize(
    ("content", "reason"),
    [(b"{not json", "not valid JSON"), (b"[1, 2]", "not a JSON object"),
     (b"\xff\xfe{}", "not UTF-8")],
)  # fmt: skip
def test_damaged_file_gives_defaults_and_a_warning_and_is_kept(
    tmp_path: Path, content: bytes, reason: str
) -> None:
    path = tmp_path / "preferences.json"
    path.write_bytes(content)
    warnings: list[str] = []
    assert load_preferences(path, warn=warnings.append) == Preferences()
    assert len(warnings) == 1
    assert str(path) in warnings[0] and reason in warnings[0] and "damaged" in warnings[0]
    assert path.read_bytes() == content  # not overwritten until the person saves

    save_preferences(path, Preferences(undo_seconds=5))
    assert load_preferences(path).undo_seconds == 5


def test_one_bad_value_keeps_the_others(tmp_path: Path) -> None:
    path = tmp_path / "preferences.json"
    original = json.dumps({"schema": 1, "undo_seconds": 99, "max_connections": 2})
    path.write_text(original, encoding="utf-8")
    prefs, warning = read_preferences(path)
    assert prefs.undo_seconds == 10 and prefs.max_connections == 2
    assert warning is not None and str(path) in warning and "undo_seconds" in warning
    assert path.read_text(encoding="utf-8") == original


def test_warning_is_logged_without_a_callback(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "preferences.json"
    path.write_text('{"max_connections": "many"}', encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="mailer_gui.preferences"):
        assert load_preferences(path).max_connections == 4
    assert any("max_connections" in r.getMessage() and str(path) in r.getMessage()
               for r in caplog.records)  # fmt: skip


def test_unknown_keys_survive_a_save(tmp_path: Path) -> None:
    path = tmp_path / "preferences.json"
    path.write_text(json.dumps({"schema": 1, "spell_check": "en_GB"}), encoding="utf-8")
    save_preferences(path, Preferences(per_connection=7))
    document = json.loads(path.read_text(encoding="utf-8"))
    assert document["spell_check"] == "en_GB" and document["per_connection"] == 7


def test_save_failure_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "preferences.json"
    path.mkdir()  # something that cannot be replaced by a file
    with pytest.raises(PreferencesSaveError) as caught:
        save_preferences(path, Preferences(undo_seconds=4))
    assert str(path) in str(caught.value) and caught.value.path == path
    assert path.is_dir() and not list(tmp_path.glob(".preferences.json.*"))


def test_a_list_of_delays_is_kept_as_a_tuple() -> None:
    prefs = Preferences(retry_delays=[30, 60])  # type: ignore[arg-type]
    assert prefs.retry_delays == (30, 60)
    assert hash(prefs) == hash(Preferences(retry_delays=(30, 60)))
