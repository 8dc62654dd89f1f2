"""The main window: folders with counts, the message table, and the session log.

Everything that touches the outbox goes through `OutboxBridge`, which runs
the delivery loop and every store query off the GUI thread and hands results
back as signals. The composer, the detail pane and the setup wizard come next.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from PySide6.QtCore import Qt
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import (
    QApplication,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMainWindow,
    QSplitter,
    QTableView,
)

from mailer_gui import __version__
from mailer_gui.accounts.store import AccountStore, AccountStoreError
from mailer_gui.outbox.store import MessageRow, State
from mailer_gui.paths import AppPaths, resolve_paths
from mailer_gui.ui.bridge import OutboxBridge
from mailer_gui.ui.log_dock import SessionLogDock
from mailer_gui.ui.outbox_model import Folder, OutboxTableModel

_FOLDER_NAMES = {Folder.OUTBOX: "Outbox", Folder.SENT: "Sent", Folder.FAILED: "Failed"}


class MainWindow(QMainWindow):
    def __init__(self, paths: AppPaths, bridge: OutboxBridge | None = None) -> None:
        super().__init__()
        self.setWindowTitle("Mailer")
        self.resize(960, 600)
        self.bridge = bridge or OutboxBridge.for_paths(paths, parent=self)
        self.folder = Folder.OUTBOX

        self.folders = QListWidget(self)
        self.folders.setAccessibleName("Folders")
        for folder, name in _FOLDER_NAMES.items():
            item = QListWidgetItem(name)
            item.setData(Qt.ItemDataRole.UserRole, folder)
            self.folders.addItem(item)
        self.folders.setCurrentRow(0)
        self.folders.currentItemChanged.connect(self._folder_chosen)

        self.model = OutboxTableModel(self.folder)
        self.table = QTableView(self)
        self.table.setAccessibleName("Messages")
        self.proxy = self.model.make_proxy(self.table)
        self.table.setModel(self.proxy)
        self.table.setSortingEnabled(True)
        self.table.setSelectionBehavior(QTableView.SelectionBehavior.SelectRows)
        self.table.verticalHeader().hide()

        splitter = QSplitter(self)
        splitter.addWidget(self.folders)
        splitter.addWidget(self.table)
        splitter.setStretchFactor(1, 4)
        self.setCentralWidget(splitter)

        self.log = SessionLogDock(self)
        self.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, self.log)

        self.status = QLabel(self)
        self.status.setWordWrap(True)
        self.statusBar().addWidget(self.status, 1)

        self.bridge.stateChanged.connect(self._state_changed)
        self.bridge.transcriptLine.connect(self.log.append)
        self.bridge.countsChanged.connect(self._show_counts)
        self.bridge.actionFailed.connect(lambda _id, text: self.status.setText(text))

        self._describe_accounts(paths)
        self._reload()
        self.bridge.refresh_counts()
        self.bridge.start()

    # ------------------------------------------------------------- loading

    def _reload(self) -> None:
        folder = self.folder

        def loaded(rows: list[MessageRow] | None, error: BaseException | None) -> None:
            if error is not None:
                self.status.setText(str(error))
            elif folder is self.folder and rows is not None:
                self.model.set_rows(rows)

        self.bridge.load_messages(folder.states, loaded)

    def _folder_chosen(self, item: QListWidgetItem | None) -> None:
        if item is None:
            return
        self.folder = item.data(Qt.ItemDataRole.UserRole)
        self.model.deleteLater()
        self.model = OutboxTableModel(self.folder)
        self.proxy = self.model.make_proxy(self.table)
        self.table.setModel(self.proxy)
        self._reload()

    def _state_changed(self, message: int, state: str, detail: str) -> None:
        if self.model.update_state(message, state, detail) or State(state) in self.folder.states:
            self._reload()

    def _show_counts(self, counts: dict[str, int]) -> None:
        for index in range(self.folders.count()):
            item = self.folders.item(index)
            folder = item.data(Qt.ItemDataRole.UserRole)
            number = sum(counts.get(state.value, 0) for state in folder.states)
            name = _FOLDER_NAMES[folder]
            item.setText(f"{name} ({number})" if number else name)

    def _describe_accounts(self, paths: AppPaths) -> None:
        # A small JSON file: reading it here does not stall the window.
        try:
            accounts = AccountStore(paths.accounts_file).load()
        except AccountStoreError as exc:
            self.status.setText(str(exc))
            return
        if not accounts:
            self.status.setText(
                "No account yet. Set one up from a terminal: mailer-gui accounts setup "
                "you@example.org --password-stdin (or try mailer-gui sandbox)."
            )
        else:
            names = ", ".join(a.name for a in accounts)
            self.status.setText(f"Mailer {__version__} · accounts: {names}")

    def closeEvent(self, event: QCloseEvent) -> None:
        self.bridge.shutdown()
        super().closeEvent(event)


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
