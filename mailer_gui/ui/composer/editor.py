"""The body editor: plain text that the formatting toolbar edits as Markdown.

Each toolbar action is one undoable edit of the text: wrapping the selection
(bold, italic, code, link) or prefixing its lines (heading, lists, quote).
Pasted images and dropped files are handed to the window as signals; the
editor itself only ever holds text.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from pathlib import Path

from PySide6.QtCore import QEvent, QMimeData, Signal
from PySide6.QtGui import QImage, QKeyEvent, QKeySequence, QTextCursor
from PySide6.QtWidgets import QPlainTextEdit, QWidget

_PARAGRAPH_SEPARATOR = "\u2029"  # how QTextCursor.selectedText() ends a line
_URL = re.compile(r"^(?:https?://|mailto:)\S+$", re.IGNORECASE)
_HEADING = re.compile(r"^#{1,6} ")
_NUMBERED = re.compile(r"^\d+\. ")
_BULLET = re.compile(r"^[-*+] ")
_QUOTE = re.compile(r"^> ?")


class MarkdownEditor(QPlainTextEdit):
    """The message body. Formatting methods act on the selection, or insert a sample."""

    #: an image pasted from the clipboard
    imagePasted = Signal(QImage)
    #: local files dropped or pasted onto the editor (list of Path)
    filesDropped = Signal(list)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setAccessibleName("Message body")
        self.setObjectName("body_editor")
        self.setTabChangesFocus(False)
        self._reserved: set[str] = set()

    def reserve_shortcuts(self, sequences: Iterable[QKeySequence]) -> None:
        """Keys the window's actions own, even where a text editor has its own use.

        On X11 Ctrl+K deletes to the end of the line; here it inserts a link.
        """
        self._reserved = {sequence.toString() for sequence in sequences if not sequence.isEmpty()}

    def event(self, event: QEvent) -> bool:
        if event.type() == QEvent.Type.ShortcutOverride and isinstance(event, QKeyEvent):
            pressed = QKeySequence(event.keyCombination()).toString()
            if pressed in self._reserved:
                event.ignore()  # let the action's shortcut fire
                return True
        return super().event(event)

    # ------------------------------------------------------------ wrapping

    def _edit(self) -> QTextCursor:
        cursor = self.textCursor()
        cursor.beginEditBlock()
        return cursor

    def wrap(self, marker: str, sample: str) -> None:
        """``text`` -> ``**text**`` (again: back to ``text``); no selection inserts a sample."""
        cursor = self._edit()
        text = self.toPlainText()
        start, end = cursor.selectionStart(), cursor.selectionEnd()
        size = len(marker)
        selected = text[start:end]
        if selected and len(selected) >= 2 * size and selected[:size] == selected[-size:] == marker:
            inner = selected[size:-size]
            cursor.insertText(inner)
            self._select(cursor, start, start + len(inner))
        elif selected and text[start - size : start] == marker and text[end : end + size] == marker:
            cursor.setPosition(start - size)
            cursor.setPosition(end + size, QTextCursor.MoveMode.KeepAnchor)
            cursor.insertText(selected)
            self._select(cursor, start - size, end - size)
        else:
            inner = selected or sample
            cursor.insertText(f"{marker}{inner}{marker}")
            self._select(cursor, start + size, start + size + len(inner))
        cursor.endEditBlock()
        self.setTextCursor(cursor)

    def _select(self, cursor: QTextCursor, start: int, end: int) -> None:
        cursor.setPosition(start)
        cursor.setPosition(end, QTextCursor.MoveMode.KeepAnchor)

    def bold(self) -> None:
        self.wrap("**", "bold text")

    def italic(self) -> None:
        self.wrap("_", "italic text")

    def code(self) -> None:
        """Inline code, or a fenced block when the selection spans lines."""
        cursor = self.textCursor()
        if _PARAGRAPH_SEPARATOR not in cursor.selectedText():
            self.wrap("`", "code")
            return
        cursor = self._edit()
        start = cursor.selectionStart()
        selected = cursor.selectedText().replace(_PARAGRAPH_SEPARATOR, "\n")
        before = "" if self._at_line_start(start) else "\n"
        block = f"{before}```\n{selected.rstrip(chr(10))}\n```\n"
        cursor.insertText(block)
        cursor.endEditBlock()
        self.setTextCursor(cursor)

    def _at_line_start(self, position: int) -> bool:
        return position == 0 or self.toPlainText()[position - 1] == "\n"

    def link(self) -> None:
        """``text`` -> ``[text](https://)`` with the address selected to type over."""
        cursor = self._edit()
        start = cursor.selectionStart()
        selected = cursor.selectedText()
        if selected and _URL.match(selected):
            cursor.insertText(f"[]({selected})")
            cursor.setPosition(start + 1)
        else:
            label = selected or "link text"
            cursor.insertText(f"[{label}](https://)")
            if selected:
                url_start = start + len(label) + 3  # after "[label]("
                self._select(cursor, url_start, url_start + len("https://"))
            else:
                self._select(cursor, start + 1, start + 1 + len(label))
        cursor.endEditBlock()
        self.setTextCursor(cursor)

    def insert_image_reference(self, name: str, url: str) -> None:
        """``![name](url)`` at the cursor, the way the renderer finds inline images."""
        alt = name.rpartition(".")[0] or name
        cursor = self._edit()
        cursor.insertText(f"![{alt}]({url})")
        cursor.endEditBlock()
        self.setTextCursor(cursor)

    def horizontal_rule(self) -> None:
        """A ``---`` line with a blank line around it (else it would underline a heading)."""
        cursor = self._edit()
        cursor.clearSelection()
        cursor.movePosition(QTextCursor.MoveOperation.EndOfBlock)
        block = cursor.block()
        if block.text().strip():
            before = "\n\n"
        elif block.previous().isValid() and block.previous().text().strip():
            before = "\n"
        else:
            before = ""
        cursor.insertText(f"{before}---\n\n")
        cursor.endEditBlock()
        self.setTextCursor(cursor)

    # ------------------------------------------------------------ line prefixes

    def _block_numbers(self) -> list[int]:
        """The lines the selection touches (the cursor's line when nothing is selected)."""
        cursor = self.textCursor()
        document = self.document()
        first = document.findBlock(cursor.selectionStart()).blockNumber()
        last_block = document.findBlock(cursor.selectionEnd())
        last = last_block.blockNumber()
        if last > first and cursor.selectionEnd() == last_block.position():
            last -= 1  # a selection ending at a line's start does not take that line
        return list(range(first, last + 1))

    def _prefix_lines(self, prefix: Callable[[int], str], strip: re.Pattern[str]) -> None:
        """Put ``prefix(n)`` before the n-th selected line; when all have one, take it off."""
        document = self.document()
        blocks = [document.findBlockByNumber(number) for number in self._block_numbers()]
        remove = all(strip.match(block.text()) for block in blocks)
        cursor = self._edit()
        for index, block in enumerate(blocks):
            edit = QTextCursor(block)
            found = strip.match(block.text())
            if found:
                edit.movePosition(
                    QTextCursor.MoveOperation.Right, QTextCursor.MoveMode.KeepAnchor, found.end()
                )
                edit.removeSelectedText()
            if not remove:
                edit.insertText(prefix(index + 1))
        first = blocks[0].position()
        last = blocks[-1].position() + blocks[-1].length() - 1
        self._select(cursor, first, last)
        cursor.endEditBlock()
        self.setTextCursor(cursor)

    def heading(self) -> None:
        """``## `` before each line, or the heading marks taken off again."""
        self._prefix_lines(lambda _: "## ", _HEADING)

    def bulleted_list(self) -> None:
        self._prefix_lines(lambda _: "- ", _BULLET)

    def numbered_list(self) -> None:
        self._prefix_lines(lambda n: f"{n}. ", _NUMBERED)

    def quote(self) -> None:
        self._prefix_lines(lambda _: "> ", _QUOTE)

    # ------------------------------------------------------------ paste and drop

    def canInsertFromMimeData(self, source: QMimeData) -> bool:
        if source.hasImage() or local_files(source):
            return True
        return super().canInsertFromMimeData(source)

    def insertFromMimeData(self, source: QMimeData) -> None:
        files = local_files(source)
        if files:
            self.filesDropped.emit(files)
            return
        if source.hasImage():
            image = source.imageData()
            if isinstance(image, QImage) and not image.isNull():
                self.imagePasted.emit(image)
                return
        super().insertFromMimeData(source)


def local_files(source: QMimeData) -> list[Path]:
    """The files a drop or paste carries; [] when it carries anything but local files."""
    if not source.hasUrls():
        return []
    urls = source.urls()
    if not urls or not all(url.isLocalFile() for url in urls):
        return []
    return [Path(url.toLocalFile()) for url in urls]


__all__ = ["MarkdownEditor", "local_files"]
