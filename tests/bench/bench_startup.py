"""Start-up to a painted main window, beside a bare PySide6 window in the same run.

Target (DESIGN.md): Mailer's main window is painted within 1.3 times the time
a bare QMainWindow takes, both measured the same way: from starting a new
Python process to the first paint event of the window, on the same display
(Xvfb when it is installed, else Qt's offscreen platform). Mailer starts with
a sample home (two accounts, messages in every state, tests/screenshots), as
a person who has used it for a while would.

    python3 tests/bench/bench_startup.py [--runs 7]

Prints each run and the median ratio; exits 1 when the median ratio misses
the target. Each Mailer run also reports when, counted from the same start,
mailer_gui.ui.main_window was imported, the window was shown, painted, and
ready (its start-up finished: the outbox runs, every part of the window is
there). tests/bench/README.md explains the probe and the bytecode.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.screenshots.display import start_xvfb, stop_xvfb  # noqa: E402
from tests.screenshots.sample_home import make_sample_home  # noqa: E402

TARGET = 1.3

# Both children print "painted" at the first paint event of their window. The
# probe is an event filter on the window itself ("window", the default); with
# --probe application it sees every event of the application instead, as this
# bench did at first. That filter runs in Python for each event of each widget
# before the paint and creates the Python types of everything it touches, so it
# adds its own cost to both sides (about 60 ms to the bare window here).
BARE = """
import sys

from PySide6.QtCore import QEvent, QObject, QTimer
from PySide6.QtWidgets import QApplication, QMainWindow

app = QApplication(["bare"])
window = QMainWindow()
window.resize(960, 600)


class FirstPaint(QObject):
    def eventFilter(self, watched, event):
        if event.type() == QEvent.Type.Paint:
            print("painted", flush=True)
            QTimer.singleShot(0, app.quit)
            watched_by.removeEventFilter(self)
        return False


first = FirstPaint()
watched_by = app if sys.argv[1] == "application" else window
watched_by.installEventFilter(first)
window.show()
app.exec()
"""

MAILER = """
import sys
import time

STARTED = float(sys.argv[3])  # the parent's perf_counter() as it started this process


def ms():
    return (time.perf_counter() - STARTED) * 1000


from PySide6.QtCore import QEvent, QObject, QTimer
from PySide6.QtWidgets import QApplication

from mailer_gui.ui.main_window import run_gui

imported = ms()


class FirstPaint(QObject):
    def __init__(self, window, shown, watched_by):
        super().__init__()
        self.window = window
        self.shown = shown
        self.watched_by = watched_by
        self.painted = 0.0
        self.whole = hasattr(window, "ready")  # else complete when shown (older Mailer)
        if self.whole:
            window.ready.connect(self.ready)

    def eventFilter(self, watched, event):
        if event.type() == QEvent.Type.Paint and getattr(watched, "window", None):
            if watched.window() is self.window:
                self.painted = ms()
                print("painted", flush=True)
                self.watched_by.removeEventFilter(self)
                if not self.whole:
                    QTimer.singleShot(0, self.ready)
        return False

    def ready(self):
        print(f"phases {imported:.0f} {self.shown:.0f} {self.painted:.0f} {ms():.0f}", flush=True)
        QTimer.singleShot(0, self.window.close)


def shown(window):
    global first
    watched_by = QApplication.instance() if sys.argv[2] == "application" else window
    first = FirstPaint(window, ms(), watched_by)
    watched_by.installEventFilter(first)


sys.exit(run_gui(["--home", sys.argv[1]], on_shown=shown))
"""


@dataclass(frozen=True)
class Phases:
    """Milliseconds from the process start until Mailer's start-up step."""

    imported: float  # mailer_gui.ui.main_window imported (PySide6 with it)
    shown: float  # the window built and shown
    painted: float  # its first paint event
    ready: float  # finish_startup() done: outbox, sandbox, detail pane, accounts


def _time_to_paint(script: str, *args: str, env: dict[str, str]) -> tuple[float, Phases | None]:
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-c", script, *args, repr(started)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    elapsed = time.perf_counter() - started
    try:
        rest, err = process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise SystemExit("the window did not close after painting") from None
    if line.strip() != "painted":
        raise SystemExit(f"no paint reported; stderr:\n{err}")
    phases = None
    for extra in rest.splitlines():
        if extra.startswith("phases "):
            phases = Phases(*(float(word) for word in extra.split()[1:]))
    return elapsed, phases


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument(
        "--probe",
        choices=("window", "application"),
        default="window",
        help="where the paint is watched: the window's own events (default), or "
        "every event of the application (the probe then costs time of its own)",
    )
    args = parser.parse_args()
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    # An installed Mailer runs from compiled bytecode (pip and the packages
    # compile it), as PySide6 does here: the warm-up run below writes it.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    server = start_xvfb(env)
    try:
        with tempfile.TemporaryDirectory() as home:
            make_sample_home(Path(home))
            print(f"display: {env.get('DISPLAY') or 'offscreen'}, probe: {args.probe}")
            # One of each first, so both read their files from the page cache
            # (and Mailer's bytecode is written).
            _time_to_paint(BARE, args.probe, env=env)
            _time_to_paint(MAILER, home, args.probe, env=env)
            ratios = []
            readies = []
            for run in range(args.runs):
                bare, _ = _time_to_paint(BARE, args.probe, env=env)
                mailer, phases = _time_to_paint(MAILER, home, args.probe, env=env)
                ratios.append(mailer / bare)
                detail = ""
                if phases is not None:
                    readies.append(phases.ready)
                    detail = (
                        f" (imported {phases.imported:.0f}, shown {phases.shown:.0f},"
                        f" painted {phases.painted:.0f}, ready {phases.ready:.0f} ms)"
                    )
                print(
                    f"run {run + 1}: bare {bare * 1000:.0f} ms, Mailer {mailer * 1000:.0f} ms, "
                    f"ratio {mailer / bare:.2f}{detail}"
                )
    finally:
        stop_xvfb(server)
    median = statistics.median(ratios)
    verdict = "meets" if median <= TARGET else "MISSES"
    if readies:
        print(f"median time until start-up finished (ready): {statistics.median(readies):.0f} ms")
    print(f"median ratio {median:.2f} ({verdict} the target of {TARGET})")
    return 0 if median <= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
