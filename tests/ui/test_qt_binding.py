"""The Qt binding itself must survive a long session.

PySide6-Essentials 6.12.0 on Python 3.11 loses a reference to None on every
Qt method that returns nothing, and the interpreter aborts after a few
thousand calls ("none_dealloc"). pyproject.toml keeps that release out; this
test proves the installed one is sound.
"""

from __future__ import annotations

import os
import subprocess
import sys


def test_many_void_calls_do_not_crash_the_interpreter() -> None:
    code = (
        "from PySide6.QtCore import QObject\n"
        "o = QObject()\n"
        "for _ in range(50_000):\n"
        "    o.setObjectName('x')\n"
        "print('survived')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ, QT_QPA_PLATFORM="offscreen"),
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "survived"
