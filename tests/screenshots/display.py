"""A private X display for benchmarks and screenshots: Xvfb on a free display number."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import MutableMapping
from pathlib import Path


def start_xvfb(
    env: MutableMapping[str, str], *, size: str = "1280x800x24"
) -> subprocess.Popen[bytes] | None:
    """Start Xvfb and point ``env`` at it (DISPLAY); None when Xvfb is missing or fails.

    The caller stops the returned process (terminate, then wait). Without Xvfb,
    ``env`` gets QT_QPA_PLATFORM=offscreen instead.
    """
    if shutil.which("Xvfb") is None:
        env["QT_QPA_PLATFORM"] = "offscreen"
        return None
    number = next(
        (n for n in range(90, 130) if not Path(f"/tmp/.X11-unix/X{n}").exists()
         and not Path(f"/tmp/.X{n}-lock").exists()),
        None,
    )  # fmt: skip
    if number is None:
        env["QT_QPA_PLATFORM"] = "offscreen"
        return None
    server = subprocess.Popen(
        ["Xvfb", f":{number}", "-screen", "0", size, "-nolisten", "tcp"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while not Path(f"/tmp/.X11-unix/X{number}").exists():
        if time.monotonic() > deadline or server.poll() is not None:
            server.kill()
            server.wait(5)
            env["QT_QPA_PLATFORM"] = "offscreen"
            return None
        time.sleep(0.05)
    env["DISPLAY"] = f":{number}"
    env.pop("QT_QPA_PLATFORM", None)
    return server


def stop_xvfb(server: subprocess.Popen[bytes] | None) -> None:
    if server is not None and server.poll() is None:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(5)
