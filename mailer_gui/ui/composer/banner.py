"""An inline message bar at the top of a window: text, a few buttons, a close button.

Problems are told where they happened, in the window, without a modal dialog
on top of another; the person can go on typing while it is shown.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from PySide6.QtCore import Qt
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QToolButton, QWidget

from mailer_gui.ui.composer.address_field import error_colour


class Banner(QFrame):
    def __init__(self, name: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setAccessibleName(name)
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setAutoFillBackground(True)
        self.setBackgroundRole(QPalette.ColorRole.AlternateBase)
        self.label = QLabel(self)
        self.label.setWordWrap(True)
        self.label.setAccessibleName(f"{name} text")
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.close_button = QToolButton(self)
        self.close_button.setText("✕")
        self.close_button.setToolTip("Dismiss")
        self.close_button.setAccessibleName(f"Dismiss {name.lower()}")
        self.close_button.clicked.connect(self.hide)
        self._layout = QHBoxLayout(self)
        self._layout.addWidget(self.label, 1)
        self._layout.addWidget(self.close_button)
        self._buttons: list[QPushButton] = []
        self.hide()

    def show_message(
        self,
        text: str,
        buttons: Sequence[tuple[str, Callable[[], None]]] = (),
        *,
        error: bool = False,
    ) -> None:
        """Show ``text`` with a button per (label, action); error text is drawn in red."""
        self.label.setText(text)
        palette = self.label.palette()
        role = self.label.foregroundRole()
        colour = (
            error_colour(self.palette())
            if error
            else self.palette().color(QPalette.ColorRole.WindowText)
        )
        palette.setColor(role, colour)
        self.label.setPalette(palette)
        for button in self._buttons:
            self._layout.removeWidget(button)
            button.deleteLater()
        self._buttons = []
        for label, action in buttons:
            button = QPushButton(label, self)
            button.setAccessibleName(label.replace("&", ""))
            button.clicked.connect(action)
            self._layout.insertWidget(self._layout.count() - 1, button)
            self._buttons.append(button)
        self.show()

    def text(self) -> str:
        """The message shown, or "" while the banner is hidden."""
        return "" if self.isHidden() else self.label.text()

    def button(self, label: str) -> QPushButton:
        """The button whose label (without its & mnemonic) is ``label``."""
        for button in self._buttons:
            if button.text().replace("&", "") == label:
                return button
        raise KeyError(label)


__all__ = ["Banner"]
