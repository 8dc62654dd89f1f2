"""A one-line address field that underlines each address it cannot use.

Every address is checked as typed (message/addresses.py); a bad one gets a
wavy underline, and hovering it shows the reason. The address still being
typed (where the cursor is) waits until the cursor leaves it. A completer
offers addresses used before for the address after the last comma.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from PySide6.QtCore import QEvent, QMimeData, QSize, QStringListModel, Qt
from PySide6.QtGui import (
    QColor,
    QFocusEvent,
    QHelpEvent,
    QKeyEvent,
    QPalette,
    QTextCharFormat,
    QTextCursor,
)
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCompleter,
    QPlainTextEdit,
    QSizePolicy,
    QTextEdit,
    QToolTip,
    QWidget,
)

from mailer_gui.message.addresses import AddressError, MailAddress, address_spans, parse_address

_SEPARATORS = ",;"


@dataclass(frozen=True)
class AddressSpan:
    """One address of the field: where it is, what it says, and what is wrong with it."""

    start: int
    end: int
    text: str
    address: MailAddress | None
    error: str | None


def check_spans(value: str) -> list[AddressSpan]:
    """Every address in ``value`` with its verdict."""
    result: list[AddressSpan] = []
    for start, end in address_spans(value):
        text = value[start:end]
        try:
            result.append(AddressSpan(start, end, text, parse_address(text), None))
        except AddressError as exc:
            result.append(AddressSpan(start, end, text, None, str(exc)))
    return result


def error_colour(palette: QPalette) -> QColor:
    """A red that reads on the palette's background, light or dark."""
    dark = palette.color(QPalette.ColorRole.Base).lightness() < 128
    return QColor("#ff7070") if dark else QColor("#c62828")


class AddressField(QPlainTextEdit):
    """To, Cc or Bcc: one line of addresses separated by commas."""

    def __init__(self, name: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setAccessibleName(name)
        self.setObjectName(name.lower() + "_field")
        self.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setTabChangesFocus(True)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setPlaceholderText("name@example.org, …")
        self._spans: list[AddressSpan] = []
        self._show_all = False
        self._completer = QCompleter(self)
        self._completer.setModel(QStringListModel(self._completer))
        self._completer.setCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self._completer.setFilterMode(Qt.MatchFlag.MatchContains)
        self._completer.setCompletionMode(QCompleter.CompletionMode.PopupCompletion)
        self._completer.setWidget(self)
        self._popup().setAccessibleName(f"{name} suggestions")
        self._completer.activated[str].connect(self.insert_completion)  # type: ignore[index]
        self.textChanged.connect(self._text_changed)
        self.cursorPositionChanged.connect(self._refresh)
        self.setFixedHeight(self.sizeHint().height())

    # ------------------------------------------------------------ contents

    def text(self) -> str:
        return self.toPlainText()

    def setText(self, text: str) -> None:  # Qt's spelling, as in QLineEdit
        self.setPlainText(" ".join(text.splitlines()))
        self.moveCursor(QTextCursor.MoveOperation.End)

    def spans(self) -> list[AddressSpan]:
        """Every address in the field with its verdict, the one being typed included."""
        return check_spans(self.toPlainText())

    def problems(self) -> list[AddressSpan]:
        """The addresses underlined right now (bad, and not still being typed)."""
        return [span for span in self._spans if span.error is not None]

    def tooltip_at(self, position: int) -> str:
        """The reason shown when hovering the character at ``position``."""
        for span in self.problems():
            if span.start <= position <= span.end:
                return span.error or ""
        return ""

    def set_known_addresses(self, addresses: Sequence[str]) -> None:
        model = self._completer.model()
        assert isinstance(model, QStringListModel)
        model.setStringList(sorted(dict.fromkeys(addresses), key=str.casefold))

    def completer(self) -> QCompleter:
        return self._completer

    def _popup(self) -> QAbstractItemView:
        popup = self._completer.popup()
        assert popup is not None  # QCompleter makes its list view when constructed
        return popup

    # ------------------------------------------------------------ validation

    def show_all_problems(self) -> None:
        """Underline the address being typed too (at Send), until the text changes."""
        self._show_all = True
        self._refresh()

    def _text_changed(self) -> None:
        self._show_all = False
        self._refresh()

    def _typing_span(self) -> tuple[int, int] | None:
        if self._show_all or not self.hasFocus():
            return None
        position = self.textCursor().position()
        text = self.toPlainText()
        start = max(text.rfind(ch, 0, position) for ch in _SEPARATORS) + 1
        ends = [i for i in (text.find(ch, position) for ch in _SEPARATORS) if i >= 0]
        return start, min(ends, default=len(text))

    def _refresh(self) -> None:
        typing = self._typing_span()
        self._spans = [
            span
            for span in self.spans()
            if typing is None or not (typing[0] <= span.start and span.end <= typing[1])
        ]
        underline = QTextCharFormat()
        underline.setUnderlineStyle(QTextCharFormat.UnderlineStyle.SpellCheckUnderline)
        underline.setUnderlineColor(error_colour(self.palette()))
        selections: list[QTextEdit.ExtraSelection] = []
        for span in self.problems():
            selection = QTextEdit.ExtraSelection()
            cursor = QTextCursor(self.document())
            cursor.setPosition(span.start)
            cursor.setPosition(span.end, QTextCursor.MoveMode.KeepAnchor)
            selection.cursor = cursor
            selection.format = underline
            selections.append(selection)
        self.setExtraSelections(selections)
        summary = "; ".join(span.error or "" for span in self.problems())
        self.setAccessibleDescription(summary)

    # ------------------------------------------------------------ events

    def sizeHint(self) -> QSize:
        hint = super().sizeHint()
        margins = self.contentsMargins()
        height = (
            self.fontMetrics().lineSpacing()
            + int(2 * self.document().documentMargin())
            + 2 * self.frameWidth()
            + margins.top()
            + margins.bottom()
        )
        hint.setHeight(height)
        return hint

    def event(self, event: QEvent) -> bool:
        if event.type() == QEvent.Type.ToolTip and isinstance(event, QHelpEvent):
            position = self.cursorForPosition(event.pos()).position()
            reason = self.tooltip_at(position)
            if reason:
                QToolTip.showText(event.globalPos(), reason, self)
            else:
                QToolTip.hideText()
                event.ignore()
            return True
        return super().event(event)

    def focusOutEvent(self, event: QFocusEvent) -> None:
        super().focusOutEvent(event)
        self._refresh()

    def focusInEvent(self, event: QFocusEvent) -> None:
        super().focusInEvent(event)
        self._refresh()

    def keyPressEvent(self, event: QKeyEvent) -> None:
        popup = self._popup()
        key = event.key()
        if popup.isVisible() and key in (
            Qt.Key.Key_Enter,
            Qt.Key.Key_Return,
            Qt.Key.Key_Escape,
            Qt.Key.Key_Tab,
            Qt.Key.Key_Backtab,
        ):
            event.ignore()  # the completer's popup takes these
            return
        if key in (Qt.Key.Key_Enter, Qt.Key.Key_Return):
            self.focusNextChild()  # one line: Return moves on, as in a line edit
            return
        super().keyPressEvent(event)
        if (event.text() and event.text().isprintable()) or key == Qt.Key.Key_Backspace:
            self._complete()

    def _current_prefix(self) -> str:
        cursor = self.textCursor()
        text = self.toPlainText()[: cursor.position()]
        start = max(text.rfind(ch) for ch in _SEPARATORS) + 1
        return text[start:].lstrip()

    def _complete(self) -> None:
        prefix = self._current_prefix()
        popup = self._popup()
        if not prefix:
            popup.hide()
            return
        self._completer.setCompletionPrefix(prefix)
        if self._completer.completionCount() == 0:
            popup.hide()
            return
        popup.setCurrentIndex(self._completer.completionModel().index(0, 0))
        rect = self.cursorRect()
        rect.setWidth(popup.sizeHintForColumn(0) + popup.verticalScrollBar().sizeHint().width() + 8)
        self._completer.complete(rect)

    def insert_completion(self, completion: str) -> None:
        """Replace the address being typed with ``completion`` and start the next one."""
        text = self.toPlainText()
        position = self.textCursor().position()
        start = max(text.rfind(ch, 0, position) for ch in _SEPARATORS) + 1
        ends = [i for i in (text.find(ch, position) for ch in _SEPARATORS) if i >= 0]
        end = min(ends, default=len(text))
        lead = " " if start > 0 else ""
        cursor = self.textCursor()
        cursor.beginEditBlock()
        cursor.setPosition(start)
        cursor.setPosition(end, QTextCursor.MoveMode.KeepAnchor)
        tail = ", " if end == len(text) else ""
        cursor.insertText(f"{lead}{completion}{tail}")
        cursor.endEditBlock()
        self.setTextCursor(cursor)
        self._popup().hide()

    # ------------------------------------------------------------ pasting

    def canInsertFromMimeData(self, source: QMimeData) -> bool:
        if source.hasUrls() and all(url.isLocalFile() for url in source.urls()):
            return False  # files dropped here are attachments: the window takes them
        return super().canInsertFromMimeData(source)

    def insertFromMimeData(self, source: QMimeData) -> None:
        # Pasted lists (one address per line) become one comma-separated line.
        lines = [line.strip() for line in source.text().splitlines() if line.strip()]
        self.textCursor().insertText(", ".join(lines))


__all__ = ["AddressField", "AddressSpan", "address_spans", "check_spans", "error_colour"]
