"""Small pieces shared by the Settings pages: inline messages that follow the palette."""

from __future__ import annotations

from PySide6.QtCore import QEvent, Qt
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QLabel, QWidget


def error_colour(palette: QPalette) -> QColor:
    """A red readable on the palette's window colour, light or dark."""
    dark = palette.color(QPalette.ColorRole.Window).lightness() < 128
    return QColor("#ff7b72") if dark else QColor("#c62828")


class MessageLabel(QLabel):
    """An inline message: hidden when empty, red for errors, selectable, word-wrapped.

    Errors go next to what they are about (a field, a page), never into a
    pile of message boxes.
    """

    def __init__(self, accessible_name: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setAccessibleName(accessible_name)
        self.setWordWrap(True)
        self.setTextFormat(Qt.TextFormat.PlainText)
        self.setTextInteractionFlags(
            Qt.TextInteractionFlag.TextSelectableByMouse
            | Qt.TextInteractionFlag.TextSelectableByKeyboard
        )
        self._error = False
        self.hide()

    @property
    def is_error(self) -> bool:
        return self._error

    def show_error(self, text: str) -> None:
        self._show(text, error=True)

    def show_info(self, text: str) -> None:
        self._show(text, error=False)

    def clear_message(self) -> None:
        self._error = False
        self.clear()
        self.setAccessibleDescription("")
        self.setToolTip("")
        self.hide()

    def _show(self, text: str, *, error: bool) -> None:
        self._error = error
        self.setText(text)
        self.setAccessibleDescription(text)
        # Whole in the tooltip too: where little room is left (a small pane of
        # a splitter), the wrapped lines can be cut.
        self.setToolTip(text if len(text) > 100 else "")
        self._paint()
        self.setVisible(bool(text))

    def _paint(self) -> None:
        self.setPalette(QPalette())  # inherit the dialog's colours again
        if self._error:
            palette = self.palette()
            palette.setColor(QPalette.ColorRole.WindowText, error_colour(palette))
            self.setPalette(palette)

    def changeEvent(self, event: QEvent) -> None:
        # Light to dark (or back) while the dialog is open: pick the red again.
        if event.type() == QEvent.Type.ApplicationPaletteChange:
            self._paint()
        super().changeEvent(event)
