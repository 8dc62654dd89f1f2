"""`mailer-gui --self-test`: prove an installation works, end to end, offscreen.

Goes the way a new person goes: the main window on an empty home shows the
welcome, "Try it with the built-in test server" starts the sandbox (STARTTLS
with a pinned certificate, AUTH PLAIN) and opens a composer; the message is
written there and sent with the composer's Send action, through the real
outbox and engine. Passes when the sandbox captured it with its HTML part
(so the Markdown renderer is installed too). Exit 0 when it did, 1 with the
reason otherwise. Nothing outside a temporary folder is touched: the keyring
is not used (the sandbox's password stays in memory), no account of the
person's is read.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

SUBJECT = "Mailer self-test"
TIMEOUT = 30.0


class SelfTestFailed(Exception):
    pass


def run_self_test() -> int:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    import keyring
    from keyring.backends import fail
    from PySide6.QtCore import QCoreApplication
    from PySide6.QtWidgets import QApplication

    from mailer_gui.paths import ensure_private_dir, resolve_paths
    from mailer_gui.preferences import Preferences, save_preferences
    from mailer_gui.sandbox.maildir import CapturedMessage
    from mailer_gui.ui.main_window import MainWindow

    keyring.set_keyring(fail.Keyring())  # type: ignore[no-untyped-call]  # left alone
    app = QApplication.instance() or QApplication(["mailer-gui-self-test"])
    started = time.monotonic()

    def wait_for(condition: Callable[[], bool], what: str) -> None:
        while not condition():
            if time.monotonic() - started > TIMEOUT:
                raise SelfTestFailed(f"{what} did not happen within {TIMEOUT:.0f} s")
            QCoreApplication.processEvents()
            time.sleep(0.01)

    with tempfile.TemporaryDirectory(prefix="mailer-self-test-") as tmp:
        paths = resolve_paths(Path(tmp))
        ensure_private_dir(paths.config_dir)
        save_preferences(paths.preferences_file, Preferences(undo_seconds=0))
        window = MainWindow(paths, tray=False)
        try:
            window.show()
            window.finish_startup()
            if window.welcome is None:
                raise SelfTestFailed("the first start did not show the welcome")
            window.welcome.trySandbox.emit()
            wait_for(lambda: bool(window.composers), "the sandbox's first composer")
            composer = window.composers[0]
            composer.subject_field.setText(SUBJECT)
            composer.editor.setPlainText("# It works\n\nThis message went through the *outbox*.")
            composer.send_action.trigger()

            def captured() -> list[CapturedMessage]:
                server = window.sandbox.server
                messages = server.messages() if server is not None else []
                return [m for m in messages if m.subject == SUBJECT]

            wait_for(lambda: bool(captured()), "the message's arrival in the sandbox")
            arrived = captured()[0]
            if not _has_html_heading(arrived.path, "It works"):
                raise SelfTestFailed("the message arrived without its HTML part")
        except Exception as exc:  # the self-test reports any failure in words
            print(f"mailer-gui self-test FAILED: {exc}", file=sys.stderr)
            return 1
        finally:
            for open_composer in list(window.composers):
                open_composer.discard()
            window.close()
            app.processEvents()
    print(f"mailer-gui self-test passed in {time.monotonic() - started:.1f} s")
    return 0


def _has_html_heading(path: Path, text: str) -> bool:
    """The Markdown heading reached the HTML part (the composer's renderer is bundled)."""
    import email
    from email import policy

    message = email.message_from_bytes(path.read_bytes(), policy=policy.default)
    for part in message.walk():
        if part.get_content_type() == "text/html":
            html = part.get_content()
            return "<h1" in html and text in html
    return False
