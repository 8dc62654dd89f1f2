"""The session log dock: a live, bounded view of every connection's transcript lines.

Records arrive from the bridge's ``transcriptLine(int, str, object)`` signal already
redacted by the core (smtp/transcript.py); this dock only shows, filters and saves them.
"""

from __future__ import annotations

import os
import re
import time
from collections import deque
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from PySide6.QtCore import QEvent, QTimer, Slot
from PySide6.QtGui import QColor, QGuiApplication, QPalette
from PySide6.QtWidgets import (
    QDockWidget,
    QHBoxLayout,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from mailer_gui.paths import fsync_directory

if TYPE_CHECKING:
    from mailer_gui.smtp.transcript import TranscriptRecord

_ERROR_REPLY = re.compile(r"[45]\d\d(?:[ -]|$)")
# Session._open starts every connection with this note.
_HEADING_PREFIX = "connecting to "
# Bursts (a DATA dialogue, many sessions at once) are drawn together, not line by line.
_FLUSH_MS = 50


# NamedTuples here and in paths.py: `dataclasses` would load before the first paint.
class LogLine(NamedTuple):
    message_id: int
    account: str
    record: TranscriptRecord
    kind: str
    text: str  # as shown, and as the filter matches it


def _kind(record: TranscriptRecord) -> str:
    # Imported here: the dock is part of the main window's first paint, the
    # SMTP modules are not (records only arrive once the outbox runs).
    from mailer_gui.smtp.transcript import Direction

    if record.direction is Direction.CLIENT:
        return "client"
    if record.direction is Direction.SERVER:
        return "error" if _ERROR_REPLY.match(record.text) else "server"
    return "heading" if record.text.startswith(_HEADING_PREFIX) else "note"


def _line(message_id: int, account: str, record: TranscriptRecord) -> LogLine:
    kind = _kind(record)
    stamp = time.strftime("%H:%M:%S", time.localtime(record.time))
    # Every line names its account: connections of several accounts run at
    # once, and their lines interleave; the filter then keeps one account's.
    text = f"{stamp} [{account}] {record.render()}"
    # One record, one block: a stray line break would split it and skew line_kinds().
    text = " ".join(text.splitlines())
    return LogLine(message_id, account, record, kind, text)


class SessionLogDock(QDockWidget):
    """The log's lines, a filter box and Copy / Save / Clear.

    With ``deferred=True`` the dock leaves to `finish()` what an empty log does
    not show: the filter's clear button (it loads the icon theme) and the
    fixed-width font. The main window builds the dock for its first paint and
    calls `finish()` right after it.
    """

    def __init__(
        self, parent: QWidget | None = None, *, max_lines: int = 5000, deferred: bool = False
    ) -> None:
        super().__init__("Session log", parent)
        self.setObjectName("sessionLogDock")
        self.max_lines = max_lines
        self._lines: deque[LogLine] = deque(maxlen=max_lines)
        self._pending: deque[LogLine] = deque(maxlen=max_lines)
        # The kind of each line in the view, trimmed in step with setMaximumBlockCount.
        self._shown_kinds: deque[str] = deque(maxlen=max_lines)
        self._needle = ""
        self._finished = False

        body = QWidget(self)
        layout = QVBoxLayout(body)
        layout.setContentsMargins(4, 4, 4, 4)
        bar = QHBoxLayout()
        self.filter = QLineEdit(body)
        self.filter.setPlaceholderText("Filter")
        self.filter.setAccessibleName("Filter session log")
        self.filter.setToolTip("Show only lines containing this text (Ctrl+F)")
        self.copy_button = QPushButton("&Copy", body)
        self.copy_button.setAccessibleName("Copy session log")
        self.copy_button.setToolTip("Copy the selected lines, or every shown line")
        self.save_button = QPushButton("&Save…", body)
        self.save_button.setAccessibleName("Save session log")
        self.save_button.setToolTip("Save the shown lines to a text file")
        self.clear_button = QPushButton("C&lear", body)
        self.clear_button.setAccessibleName("Clear session log")
        bar.addWidget(self.filter, 1)
        for button in (self.copy_button, self.save_button, self.clear_button):
            bar.addWidget(button)
        layout.addLayout(bar)

        self.view = QPlainTextEdit(body)
        self.view.setReadOnly(True)
        self.view.setUndoRedoEnabled(False)
        self.view.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.view.setMaximumBlockCount(max_lines)
        self.view.setAccessibleName("Session log lines")
        layout.addWidget(self.view, 1)
        # Follow the newest line while the view is at its end. Qt's own following
        # stops for good once the view's size changes under it (the horizontal
        # scroll bar coming with the first long line, the first lines trimmed):
        # the end moves, so the view no longer looks "at the end".
        self._following = True
        scroll = self.view.verticalScrollBar()
        scroll.valueChanged.connect(self._scrolled)
        scroll.rangeChanged.connect(self._range_changed)
        self.setWidget(body)

        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(_FLUSH_MS)
        self._timer.timeout.connect(self.flush)
        self._styles = self._make_styles()

        self.filter.textChanged.connect(self._set_filter)
        self.copy_button.clicked.connect(self.copy)
        self.save_button.clicked.connect(self._ask_save)
        self.clear_button.clicked.connect(self.clear)
        if not deferred:
            self.finish()

    def finish(self) -> None:
        """Add the filter's clear button, its keys and the fixed-width font (once)."""
        if self._finished:
            return
        self._finished = True
        from PySide6.QtGui import QFontDatabase, QKeySequence, QShortcut

        # Contexts by name: the Qt namespace's enums are slow to build (see
        # main_window); the keys themselves come after the window's first paint.
        find = QShortcut(QKeySequence.StandardKey.Find, self, self._focus_filter)
        find.setProperty("context", "WidgetWithChildrenShortcut")
        save = QShortcut(QKeySequence.StandardKey.Save, self, self._ask_save)
        save.setProperty("context", "WidgetWithChildrenShortcut")
        escape = QShortcut(QKeySequence("Esc"), self.filter, self.filter.clear)
        escape.setProperty("context", "WidgetShortcut")
        self.filter.setClearButtonEnabled(True)
        self.view.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))

    # -- feeding ---------------------------------------------------------------------------

    @Slot(int, str, object)
    def append(self, message_id: int, account: str, record: TranscriptRecord) -> None:
        line = _line(message_id, account, record)
        self._lines.append(line)
        if self._matches(line):
            self._pending.append(line)
            if not self._timer.isActive():
                self._timer.start()

    @Slot()
    def flush(self) -> None:
        """Draw the lines waiting since the last flush (the timer calls this)."""
        self._timer.stop()
        if not self._pending:
            return
        # The view follows the new lines if it was at the end (_range_changed).
        self._insert(self._pending)
        self._pending.clear()

    def _insert(self, lines: Iterable[LogLine]) -> None:
        # One appendHtml per batch, not a call per line: it keeps a burst cheap, and the
        # installed PySide6 build loses a reference to None on every void call it makes,
        # so per-line calls crash Python 3.11 after a few thousand lines.
        import html  # here, not at the top: the dock is built before the first paint

        paragraphs = []
        for line in lines:
            paragraphs.append(f'<p style="{self._styles[line.kind]}">{html.escape(line.text)}</p>')
            self._shown_kinds.append(line.kind)
        if paragraphs:
            self.view.appendHtml("".join(paragraphs))

    @Slot(int)
    def _scrolled(self, value: int) -> None:
        self._following = value >= self.view.verticalScrollBar().maximum()

    @Slot(int, int)
    def _range_changed(self, _minimum: int, maximum: int) -> None:
        if self._following:
            self.view.verticalScrollBar().setValue(maximum)

    def following(self) -> bool:
        """True while the view shows the newest lines as they come."""
        return self._following

    # -- looking ---------------------------------------------------------------------------

    def _matches(self, line: LogLine) -> bool:
        return not self._needle or self._needle in line.text.casefold()

    @Slot(str)
    def _set_filter(self, text: str) -> None:
        self._needle = text.casefold()
        self._rebuild()

    def _rebuild(self) -> None:
        self._timer.stop()
        self._pending.clear()
        self._clear_view()
        self._insert(line for line in self._lines if self._matches(line))

    def _focus_filter(self) -> None:
        from PySide6.QtCore import Qt

        self.filter.setFocus(Qt.FocusReason.ShortcutFocusReason)
        self.filter.selectAll()

    def text(self) -> str:
        """The shown lines as plain text (pending lines are drawn first)."""
        self.flush()
        return self.view.toPlainText()

    def line_kinds(self) -> list[str]:
        """Each shown line's kind: client, server, note, error or heading."""
        self.flush()
        return list(self._shown_kinds)

    # -- colours ---------------------------------------------------------------------------

    def _make_styles(self) -> dict[str, str]:
        """Colours from the palette, so light and dark themes both read well."""
        palette = self.palette()  # the view inherits it; its own copy updates later
        dark = palette.color(QPalette.ColorRole.Base).lightness() < 128
        colours = {
            "client": palette.color(QPalette.ColorRole.Link),
            "server": palette.color(QPalette.ColorRole.Text),
            "note": palette.color(QPalette.ColorRole.PlaceholderText),
            "error": QColor("#ff7b72") if dark else QColor("#c62828"),
            "heading": palette.color(QPalette.ColorRole.Text),
        }
        styles = {}
        for kind, colour in colours.items():
            weight = "bold" if kind in ("error", "heading") else "normal"
            styles[kind] = f"margin:0; white-space:pre; color:{colour.name()}; font-weight:{weight}"
        return styles

    def changeEvent(self, event: QEvent) -> None:
        super().changeEvent(event)
        if event.type() == QEvent.Type.PaletteChange:
            self._styles = self._make_styles()
            self._rebuild()

    # -- actions ---------------------------------------------------------------------------

    @Slot()
    def copy(self) -> None:
        """Copy the selection, or every shown line when nothing is selected."""
        selected = self.view.textCursor().selection().toPlainText()
        QGuiApplication.clipboard().setText(selected or self.text())

    @Slot()
    def clear(self) -> None:
        self._lines.clear()
        self._timer.stop()
        self._pending.clear()
        self._clear_view()

    def _clear_view(self) -> None:
        self.view.clear()
        self._shown_kinds.clear()

    def save_to(self, path: str | os.PathLike[str]) -> None:
        """Write the shown lines to ``path``, replacing it only once fully written."""
        import tempfile

        target = Path(path)
        text = self.text()
        data = (text + "\n" if text else "").encode("utf-8")
        fd, temp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temp, target)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise
        fsync_directory(target.parent)

    @Slot()
    def _ask_save(self) -> None:
        from PySide6.QtWidgets import QFileDialog, QMessageBox

        path, _ = QFileDialog.getSaveFileName(
            self, "Save session log", "session-log.txt", "Text files (*.txt);;All files (*)"
        )
        if not path:
            return
        try:
            self.save_to(path)
        except OSError as exc:
            QMessageBox.warning(
                self,
                "Session log not saved",
                f"The session log could not be saved to {path}: {exc.strerror or exc}.\n"
                "Choose another folder or file name and try again.",
            )
