"""Start-up: the command line for commands, the window otherwise."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from mailer_gui import app


@pytest.mark.parametrize(
    ("argv", "cli"),
    [
        ([], False),
        (["mailto:ann@example.org?subject=Hi"], False),
        (["compose", "mailto:ann@example.org"], False),
        (["compose"], False),
        (["--home", "/tmp/x"], False),
        (["--home", "/tmp/send"], False),
        (["--home", "/tmp/x", "send", "--to", "a@b.c"], True),
        (["accounts", "list"], True),
        (["sned"], True),  # a typo gets the usage message, not a window
        (["--version"], True),
    ],
)
def test_cli_or_window(argv: list[str], cli: bool) -> None:
    assert app._wants_cli(argv) is cli


def test_no_display_is_a_message_not_a_crash(tmp_path) -> None:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "mailer_gui", "--home", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert done.returncode == 69
    assert "no desktop display" in done.stderr
    assert "Traceback" not in done.stderr


def test_typo_command_exits_64() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "mailer_gui", "sned"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 64
    assert "invalid choice: 'sned'" in done.stderr


def test_self_test_sends_through_the_sandbox(tmp_path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "mailer_gui", "--self-test"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "HOME": str(tmp_path), "QT_QPA_PLATFORM": "offscreen"},
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "self-test passed" in done.stdout
    assert not any(tmp_path.iterdir())  # nothing left in the person's home
