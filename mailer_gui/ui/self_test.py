"""`mailer-gui --self-test`: prove an installation works, end to end, offscreen.

Builds the main window, composes a message, sends it through the real outbox
and engine to an in-process sandbox server (STARTTLS with a pinned
certificate, AUTH PLAIN), and checks that it arrived. Exit 0 when it did,
1 with the reason otherwise. Nothing outside a temporary folder is touched:
no keyring, no account of the person's.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

SUBJECT = "Mailer self-test"


def run_self_test() -> int:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QEventLoop, QTimer
    from PySide6.QtWidgets import QApplication

    from mailer_gui.accounts.store import AccountStore
    from mailer_gui.message.addresses import parse_address
    from mailer_gui.message.build import build_message
    from mailer_gui.message.draft import Draft
    from mailer_gui.outbox.runner import SendingAccount
    from mailer_gui.outbox.store import OutboxStore
    from mailer_gui.paths import ensure_private_dir, resolve_paths
    from mailer_gui.sandbox.account import sandbox_account
    from mailer_gui.sandbox.server import SandboxServer
    from mailer_gui.smtp.auth import Credentials
    from mailer_gui.ui.bridge import OutboxBridge
    from mailer_gui.ui.main_window import MainWindow

    app = QApplication.instance() or QApplication(["mailer-gui-self-test"])
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="mailer-self-test-") as tmp:
        home = Path(tmp)
        paths = resolve_paths(home)
        ensure_private_dir(paths.config_dir)
        server = SandboxServer(home / "Maildir", home / "sandbox", port=0)
        try:
            server.start()
            account = sandbox_account(server, secret_source="none")
            AccountStore(paths.accounts_file).add(account, make_default=True)

            def credentials(_account: SendingAccount) -> Callable[[], Credentials] | None:
                return lambda: Credentials(server.username, server.password)

            store = OutboxStore(paths.database, paths.spool_dir)
            bridge = OutboxBridge(
                store, AccountStore(paths.accounts_file).get, credentials=credentials
            )
            window = MainWindow(paths, bridge)
            window.show()
            draft = Draft(
                sender=parse_address(f"Self test <{account.email}>"),
                to=(parse_address("check@sandbox.test"),),
                subject=SUBJECT,
                body="# It works\n\nThis message went through the *outbox*.",
            )
            built = build_message(draft, spool_dir=home)
            store.enqueue(built, account=account.name, subject=SUBJECT)
            bridge.wake()

            loop = QEventLoop()
            poll = QTimer()
            poll.timeout.connect(
                lambda: (
                    loop.quit()
                    if any(m.subject == SUBJECT for m in server.messages())
                    or time.monotonic() - started > 30
                    else None
                )
            )
            poll.start(50)
            loop.exec()
            poll.stop()
            arrived = [m for m in server.messages() if m.subject == SUBJECT]
            window.close()
            bridge.shutdown()
            store.close()
        except Exception as exc:  # the self-test reports any failure in words
            print(f"mailer-gui self-test FAILED: {exc}", file=sys.stderr)
            return 1
        finally:
            server.stop()
        app.processEvents()
    if not arrived:
        print(
            "mailer-gui self-test FAILED: the message did not reach the sandbox within 30 s",
            file=sys.stderr,
        )
        return 1
    print(f"mailer-gui self-test passed in {time.monotonic() - started:.1f} s")
    return 0
