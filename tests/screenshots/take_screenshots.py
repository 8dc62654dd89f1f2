"""Screenshots of the real app under Xvfb, for review and for the AppStream metainfo.

    python3 tests/screenshots/take_screenshots.py [--out packaging/screenshots]

Starts Xvfb (the app's own display), makes a sample home by really sending
through the sandbox (sample_home.py: sent, failed, deferred and scheduled
messages), opens Mailer's main window on it and saves:

- main-window.png     the Outbox with its folders, table and detail pane
- message-detail.png  a failed message: each recipient's reply explained
- session-log.png     the live session log while a deferred message is retried
- composer.png        a Markdown message with its live preview and an attachment
- sandbox-inbox.png   what the built-in test server captured

Everything talks to 127.0.0.1 only. Exits non-zero when a view did not show
what it should within its time (the PNGs taken so far are kept).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.screenshots.display import start_xvfb, stop_xvfb  # noqa: E402
from tests.screenshots.sample_home import BODY, make_sample_home  # noqa: E402

SIZE = (1280, 800)


class NotShown(Exception):
    pass


def wait_until(app: object, condition: Callable[[], bool], what: str, timeout: float = 15) -> None:
    from PySide6.QtCore import QCoreApplication

    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise NotShown(f"{what} did not happen within {timeout:.0f} s")
        QCoreApplication.processEvents()
        time.sleep(0.02)


def settle(seconds: float = 0.4) -> None:
    """Let timers (debounced previews, counts) fire and paint."""
    from PySide6.QtCore import QCoreApplication

    end = time.monotonic() + seconds
    while time.monotonic() < end:
        QCoreApplication.processEvents()
        time.sleep(0.02)


def take(out: Path, home: Path) -> list[Path]:
    from PySide6.QtWidgets import QApplication

    from mailer_gui.message.addresses import parse_address
    from mailer_gui.message.draft import Draft
    from mailer_gui.paths import resolve_paths
    from mailer_gui.ui.main_window import MainWindow

    app = QApplication.instance() or QApplication(["mailer-gui"])
    app.setApplicationDisplayName("Mailer")
    attachment = home.parent / "quarterly-report.pdf"
    attachment.write_bytes(b"%PDF-1.4\n" + os.urandom(180_000))
    make_sample_home(home, attachment=attachment)
    paths = resolve_paths(home)
    window = MainWindow(paths, tray=False)
    window.resize(*SIZE)
    window.show()
    ready = getattr(window, "is_ready", lambda: True)
    wait_until(app, ready, "the main window's start-up")
    saved: list[Path] = []

    def save(widget: object, name: str) -> None:
        settle()
        target = out / name
        if not widget.grab().save(str(target)):  # type: ignore[attr-defined]
            raise NotShown(f"{target} could not be written")
        saved.append(target)
        print(f"saved {target}")

    try:
        # The outbox: a deferred and a scheduled message, one selected.
        wait_until(app, lambda: window.model.rowCount() >= 2, "the outbox rows")
        window.table.selectRow(0)
        wait_until(app, lambda: window.detail.row is not None, "the detail pane")
        save(window, "main-window.png")

        # A failed message, its recipient's reply explained.
        window.show_folder("failed")
        wait_until(app, lambda: window.model.rowCount() >= 1, "the failed message")
        window.table.selectRow(0)
        wait_until(app, lambda: "550" in window.detail.recipients_text(), "the 550 reply")
        window.log.hide()  # the pane gets the height: recipients and attempts show
        save(window, "message-detail.png")
        window.log.show()

        # The session log, live: the deferred message is sent now.
        window.show_folder("sent")
        window.send_queued_now()
        wait_until(app, lambda: window._folder_item("sent").text() == "Sent (4)", "the retry")
        window.log.flush()
        wait_until(app, lambda: window.model.rowCount() == 4, "the sent messages")
        window.table.selectRow(0)
        wait_until(app, lambda: window.detail.row is not None, "the detail pane")
        save(window, "session-log.png")

        # A composer with the Markdown preview and an attachment.
        draft = Draft(
            sender=parse_address("Mailer Sandbox <me@sandbox.test>"),
            to=(parse_address("Team <team@sandbox.test>"),),
            subject="Quarterly report",
            body=BODY,
            attachments=(attachment,),
        )
        composer = window.open_composer(draft=draft, account="sandbox")
        if composer is None:
            raise NotShown("the composer did not open")
        composer.resize(*SIZE)
        wait_until(
            app, lambda: "quarterly report" in composer.preview.toHtml().lower(), "the preview"
        )
        save(composer, "composer.png")
        composer.discard()

        window.show_folder("sandbox")
        wait_until(
            app,
            lambda: (
                window.sandbox_view is not None
                and window.sandbox.running
                and window.sandbox_view.list.topLevelItemCount() >= 4
            ),
            "the sandbox inbox",
        )
        window.sandbox_view.list.setCurrentItem(window.sandbox_view.list.topLevelItem(0))
        settle(1.0)
        save(window, "sandbox-inbox.png")
    finally:
        for composer in list(window.composers):
            composer.discard()
        window.close()
    return saved


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "packaging" / "screenshots")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    server = start_xvfb(os.environ)
    if server is None:
        print("Xvfb is not installed (apt-get install xvfb): drawing offscreen instead")
    try:
        with tempfile.TemporaryDirectory() as scratch:
            take(args.out.resolve(), Path(scratch) / "home")
    except NotShown as exc:
        print(f"screenshots: {exc}", file=sys.stderr)
        return 1
    finally:
        stop_xvfb(server)
    return 0


if __name__ == "__main__":
    sys.exit(main())
