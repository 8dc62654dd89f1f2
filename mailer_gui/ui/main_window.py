"""The main window. For now: the accounts and how to send from the command line.

The composer, outbox views and session log come with the desktop issue; the
window already reaches the core only through plain calls that do not touch
the network.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from PySide6.QtWidgets import (
    QApplication,
    QLabel,
    QListWidget,
    QMainWindow,
    QVBoxLayout,
    QWidget,
)

from mailer_gui import __version__
from mailer_gui.accounts.store import AccountStore, AccountStoreError
from mailer_gui.paths import AppPaths, resolve_paths


class MainWindow(QMainWindow):
    def __init__(self, paths: AppPaths) -> None:
        super().__init__()
        self.setWindowTitle("Mailer")
        self.resize(720, 480)
        central = QWidget(self)
        layout = QVBoxLayout(central)
        heading = QLabel(f"<h2>Mailer {__version__}</h2>")
        layout.addWidget(heading)
        self.accounts = QListWidget(central)
        self.status = QLabel(central)
        self.status.setWordWrap(True)
        layout.addWidget(QLabel("Accounts:"))
        layout.addWidget(self.accounts)
        layout.addWidget(self.status)
        self.setCentralWidget(central)
        self._load(paths)

    def _load(self, paths: AppPaths) -> None:
        try:
            accounts = AccountStore(paths.accounts_file).load()
        except AccountStoreError as exc:
            self.status.setText(str(exc))
            return
        for account in accounts:
            self.accounts.addItem(
                f"{account.name} — {account.email} via {account.host}:{account.effective_port}"
            )
        if not accounts:
            self.status.setText(
                "No account yet. Add one from a terminal:\n"
                "  mailer-gui accounts add work --email you@example.org --host smtp.example.org\n"
                "then send with: mailer-gui send --to someone@example.org --subject Hi --body Hello"
            )
        else:
            self.status.setText("Send from a terminal with: mailer-gui send --to ... --subject ...")


def _no_display() -> bool:
    """On X11/Wayland systems, no display means Qt would abort; say so instead."""
    if sys.platform in ("win32", "darwin") or os.environ.get("QT_QPA_PLATFORM"):
        return False
    return not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def run_gui(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="mailer-gui")
    parser.add_argument("--home", metavar="DIR")
    parser.add_argument("url", nargs="?")
    args, qt_args = parser.parse_known_args(list(argv))
    if _no_display():
        print(
            "mailer-gui: no desktop display was found (DISPLAY and WAYLAND_DISPLAY are "
            "unset), so the window cannot open. Start Mailer from a desktop session, or "
            "use the command line: mailer-gui send --help",
            file=sys.stderr,
        )
        return 69
    app = QApplication(["mailer-gui", *qt_args])
    app.setApplicationName("mailer-gui")
    app.setApplicationDisplayName("Mailer")
    window = MainWindow(resolve_paths(args.home))
    window.show()
    return app.exec()
