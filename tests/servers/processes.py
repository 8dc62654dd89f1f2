"""Stopping the peers the tests start: by their own process id, politely first."""

from __future__ import annotations

import os
import signal
import subprocess


def stop_process(process: subprocess.Popen[bytes], *, grace: float = 5.0) -> None:
    """SIGTERM, then SIGKILL after ``grace`` seconds; reaped either way."""
    if process.poll() is not None:
        return
    os.kill(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=grace)
