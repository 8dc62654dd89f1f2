"""Attachments of a draft: the list with sizes and total, and the server's SIZE limit.

File sizes are read off the GUI thread (a file on a slow share must not freeze
typing). The limit comes from the account's server: `SizeLimits` connects and
says EHLO on a worker thread (no login, no message), remembers the answer per
account, and says nothing when the server does not tell.
"""

from __future__ import annotations

import contextlib
import functools
import os
import threading
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

import shiboken6
from PySide6.QtCore import QObject, Qt, QThreadPool, Signal, Slot
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from mailer_gui.accounts.model import Account
from mailer_gui.sizes import human_size
from mailer_gui.smtp.errors import SmtpError
from mailer_gui.smtp.session import Session
from mailer_gui.smtp.settings import Timeouts
from mailer_gui.ui.composer.address_field import error_colour

PROBE_TIMEOUT = 10.0  # seconds per step: a slow server only delays the warning
RunInBackground = Callable[[Callable[[], Any], Callable[[Any, BaseException | None], None]], None]


def encoded_size(size: int) -> int:
    """How big ``size`` bytes of a file get in the message: base64 in 76-column lines."""
    lines = -(-size // 57)
    return lines * 78


def probe_size_limit(account: Account, timeout: float = PROBE_TIMEOUT) -> int | None:
    """The largest message ``account``'s server takes (its EHLO SIZE); None if unknown.

    Connects as a send would (TLS as the account says), reads the EHLO answer
    and says QUIT: no login, nothing sent. Direct delivery has no one server,
    so its limit is unknown too. Blocks: call it off the GUI thread.
    """
    if account.kind != "relay" or account.host is None:
        return None
    settings = replace(
        account.server_settings(),
        timeouts=Timeouts(connect=timeout, greeting=timeout, command=timeout),
    )
    session = Session(settings)  # no credentials: the session stops after EHLO
    try:
        session.open()
    except (SmtpError, OSError, ValueError):
        return None
    try:
        return session.size_limit
    finally:
        session.close()


def _account_key(account: Account) -> str:
    return f"{account.name}\n{account.host}\n{account.effective_port}\n{account.security.value}"


class SizeLimits(QObject):
    """Each account's server SIZE limit, asked once; share one between composers.

    `request(account)` starts a probe unless the answer is known or coming;
    `known(account name, limit or None)` follows on the GUI thread.
    """

    known = Signal(str, object)
    _probed = Signal(str, str, object)

    def __init__(
        self,
        parent: QObject | None = None,
        *,
        probe: Callable[[Account], int | None] = probe_size_limit,
    ) -> None:
        super().__init__(parent)
        self._probe = probe
        self._limits: dict[str, int | None] = {}
        self._asking: set[str] = set()
        # The application's shared pool, not one of our own: deleting a composer
        # must not wait for a probe stuck on an unreachable server.
        self._pool = QThreadPool.globalInstance()
        self._running = 0
        self._idle = threading.Condition()
        self._probed.connect(self._on_probed, Qt.ConnectionType.QueuedConnection)

    def cached(self, account: Account) -> tuple[bool, int | None]:
        """(known, limit): whether the server has answered, and its limit then."""
        key = _account_key(account)
        return key in self._limits, self._limits.get(key)

    def request(self, account: Account) -> None:
        key = _account_key(account)
        if key in self._limits:
            self.known.emit(account.name, self._limits[key])
            return
        if key in self._asking:
            return
        self._asking.add(key)
        probe = self._probe

        idle = self._idle
        probed = self._probed

        def task() -> None:
            try:
                limit = probe(account)
            except Exception:  # an unknown limit only means no warning
                limit = None
            with contextlib.suppress(RuntimeError):  # this object was deleted meanwhile
                probed.emit(key, account.name, limit)
            with idle:
                self._running -= 1
                idle.notify_all()

        with idle:
            self._running += 1
        self._pool.start(task)

    def wait(self, timeout: float = 30.0) -> bool:
        """Wait for probes under way (quit, tests); True when none is left."""
        with self._idle:
            return self._idle.wait_for(lambda: self._running == 0, timeout)

    @Slot(str, str, object)
    def _on_probed(self, key: str, name: str, limit: int | None) -> None:
        self._asking.discard(key)
        self._limits[key] = limit
        self.known.emit(name, limit)


class AttachmentList(QWidget):
    """The files a draft carries: name and size each, the total, a warning if too big."""

    changed = Signal()

    def __init__(self, run_in_background: RunInBackground, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setAccessibleName("Attachments")
        self._run = run_in_background
        self._sizes: dict[Path, int | None] = {}
        self._unreadable: dict[Path, str] = {}
        self._limit: int | None = None
        self._server = ""
        self._extra = 0  # bytes of inline images, which travel in the message too

        self.list = QListWidget(self)
        self.list.setAccessibleName("Attached files")
        self.list.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.list.itemSelectionChanged.connect(self._selection_changed)
        self.add_button = QPushButton("&Attach…", self)
        self.add_button.setAccessibleName("Attach files")
        self.remove_button = QPushButton("&Remove", self)
        self.remove_button.setAccessibleName("Remove the selected attachments")
        self.remove_button.setEnabled(False)
        self.remove_button.clicked.connect(self.remove_selected)
        self.total_label = QLabel(self)
        self.total_label.setAccessibleName("Attachment total")
        self.warning = QLabel(self)
        self.warning.setAccessibleName("Attachment size warning")
        self.warning.setWordWrap(True)
        warning_palette = self.warning.palette()
        warning_palette.setColor(
            self.warning.foregroundRole(), error_colour(self.warning.palette())
        )
        self.warning.setPalette(warning_palette)
        self.warning.hide()

        buttons = QHBoxLayout()
        buttons.addWidget(self.add_button)
        buttons.addWidget(self.remove_button)
        buttons.addWidget(self.total_label, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.list)
        layout.addLayout(buttons)
        layout.addWidget(self.warning)
        self._update()

    # ------------------------------------------------------------ contents

    def paths(self) -> tuple[Path, ...]:
        return tuple(self._sizes)

    def add_paths(self, paths: Iterable[Path | str]) -> None:
        """Attach files (each once); their sizes follow from a worker thread."""
        added = False
        for raw in paths:
            path = Path(os.path.abspath(os.fspath(raw)))
            if path in self._sizes:
                continue
            self._sizes[path] = None
            item = QListWidgetItem(self._item_text(path), self.list)
            item.setData(Qt.ItemDataRole.UserRole, str(path))
            item.setToolTip(str(path))
            self._run(functools.partial(_stat_size, path), self._sized(path))
            added = True
        if added:
            self._update()
            self.changed.emit()

    def set_paths(self, paths: Iterable[Path]) -> None:
        self.list.clear()
        self._sizes.clear()
        self._unreadable.clear()
        self.add_paths(paths)
        self._update()

    def remove_selected(self) -> None:
        rows = sorted((self.list.row(item) for item in self.list.selectedItems()), reverse=True)
        for row in rows:
            item = self.list.takeItem(row)
            path = Path(item.data(Qt.ItemDataRole.UserRole))
            self._sizes.pop(path, None)
            self._unreadable.pop(path, None)
        if rows:
            self._update()
            self.changed.emit()

    def total(self) -> int:
        """Bytes of the files whose size is known."""
        return sum(size for size in self._sizes.values() if size is not None)

    def sizes_known(self) -> bool:
        return all(size is not None for size in self._sizes.values())

    def unreadable(self) -> dict[Path, str]:
        """Attached files that could not be looked at, with what went wrong."""
        return dict(self._unreadable)

    def set_inline_bytes(self, size: int) -> None:
        self._extra = size
        self._update()

    def set_size_limit(self, limit: int | None, server: str) -> None:
        """The server's SIZE (None: unknown, and no warning)."""
        self._limit = limit
        self._server = server
        self._update()

    def estimated_message_size(self) -> int:
        return encoded_size(self.total() + self._extra)

    def over_limit(self) -> bool:
        return self._limit is not None and self.estimated_message_size() > self._limit

    # ------------------------------------------------------------ display

    def _item_text(self, path: Path) -> str:
        if path in self._unreadable:
            return f"{path.name} — cannot be read"
        size = self._sizes.get(path)
        return f"{path.name} — {human_size(size)}" if size is not None else f"{path.name} — …"

    def _sized(self, path: Path) -> Callable[[Any, BaseException | None], None]:
        def done(size: int | None, error: BaseException | None) -> None:
            if not shiboken6.isValid(self) or path not in self._sizes:
                return  # closed, or the file was removed from the list meanwhile
            if error is not None:
                reason = error.strerror if isinstance(error, OSError) else None
                self._unreadable[path] = reason or str(error)
                self._sizes[path] = 0
            else:
                self._sizes[path] = size
            for row in range(self.list.count()):
                item = self.list.item(row)
                if item.data(Qt.ItemDataRole.UserRole) == str(path):
                    item.setText(self._item_text(path))
                    if path in self._unreadable:
                        item.setToolTip(f"{path}\n{self._unreadable[path]}")
            self._update()
            self.changed.emit()

        return done

    def _selection_changed(self) -> None:
        self.remove_button.setEnabled(bool(self.list.selectedItems()))

    def _update(self) -> None:
        count = len(self._sizes)
        self.list.setVisible(count > 0)
        if count:
            # As tall as its rows, up to four; more scroll.
            rows = min(count, 4) * max(self.list.sizeHintForRow(0), 1)
            self.list.setFixedHeight(rows + 2 * self.list.frameWidth())
        if count == 0:
            self.total_label.setText("No attachments")
        else:
            files = "1 file" if count == 1 else f"{count} files"
            pending = "" if self.sizes_known() else " so far"
            self.total_label.setText(f"{files}, {human_size(self.total())}{pending}")
        if self.over_limit() and self._limit is not None:
            self.warning.setText(
                f"The message will be about {human_size(self.estimated_message_size())} "
                f"(attachments grow by a third when sent), more than the "
                f"{human_size(self._limit)} {self._server} accepts. The server will refuse "
                "it: remove some files, or share large ones by link."
            )
            self.warning.show()
        else:
            self.warning.hide()


def _stat_size(path: Path) -> int:
    info = path.stat()
    if not path.is_file():
        raise OSError(0, "it is a folder, not a file")
    if not os.access(path, os.R_OK):
        raise OSError(0, "you may not read it")
    return info.st_size


__all__ = [
    "AttachmentList",
    "SizeLimits",
    "encoded_size",
    "probe_size_limit",
]
