"""The first-start welcome: what the main window shows while there is no account.

Two ways on: set up the person's own account (the wizard), or try everything
at once against the built-in test server (the sandbox). The page only asks;
the main window answers `addAccount` and `trySandbox`, and may show progress
or a problem here with `set_busy` and `show_problem`.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, Qt, Signal, Slot
from PySide6.QtGui import QColor, QFont, QKeySequence, QPalette
from PySide6.QtWidgets import (
    QCommandLinkButton,
    QLabel,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

TITLE = "Welcome to Mailer"
SUBTITLE = "Write in Markdown, press Send, and see every line the mail server says."
ADD_ACCOUNT = "&Add your email account"
ADD_ACCOUNT_DETAIL = (
    "Enter your address and password; Mailer finds your provider's settings and "
    "checks that they work. Your password stays in the system keyring."
)
TRY_SANDBOX = "&Try it with the built-in test server"
TRY_SANDBOX_DETAIL = (
    "No account needed: send to a mail server running on this computer that keeps "
    "every message and delivers nothing, then look at what arrived."
)


class WelcomePage(QWidget):
    """Two big choices, centred; the first one has the focus."""

    addAccount = Signal()
    trySandbox = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setAccessibleName("Welcome")
        self.setObjectName("welcomePage")

        self.title = QLabel(TITLE, self)
        self.title.setAccessibleName(TITLE)
        self.title.setAlignment(Qt.AlignmentFlag.AlignHCenter)
        title_font = QFont(self.font())
        title_font.setPointSizeF(max(title_font.pointSizeF(), 9.0) * 1.8)
        title_font.setBold(True)
        self.title.setFont(title_font)

        self.subtitle = QLabel(SUBTITLE, self)
        self.subtitle.setAccessibleName("What Mailer does")
        self.subtitle.setAlignment(Qt.AlignmentFlag.AlignHCenter)
        self.subtitle.setWordWrap(True)

        self.add_button = QCommandLinkButton(ADD_ACCOUNT, ADD_ACCOUNT_DETAIL, self)
        self.add_button.setAccessibleName("Add your email account")
        self.add_button.setAccessibleDescription(ADD_ACCOUNT_DETAIL)
        self.add_button.setShortcut(QKeySequence("Alt+A"))  # also where mnemonics are off
        self.add_button.setDefault(True)

        self.try_button = QCommandLinkButton(TRY_SANDBOX, TRY_SANDBOX_DETAIL, self)
        self.try_button.setAccessibleName("Try it with the built-in test server")
        self.try_button.setAccessibleDescription(TRY_SANDBOX_DETAIL)
        self.try_button.setShortcut(QKeySequence("Alt+T"))

        for button in (self.add_button, self.try_button):
            button.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
            button.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)

        # Progress ("Starting the test server…") or a problem, in words, on this page.
        self.message = QLabel(self)
        self.message.setAccessibleName("Welcome status")
        self.message.setAlignment(Qt.AlignmentFlag.AlignHCenter)
        self.message.setWordWrap(True)
        self.message.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.message.hide()
        self._problem = False

        column = QWidget(self)
        column.setMaximumWidth(560)
        column_layout = QVBoxLayout(column)
        column_layout.setSpacing(12)
        column_layout.addWidget(self.title)
        column_layout.addWidget(self.subtitle)
        column_layout.addSpacing(12)
        column_layout.addWidget(self.add_button)
        column_layout.addWidget(self.try_button)
        column_layout.addWidget(self.message)

        layout = QVBoxLayout(self)
        layout.addStretch(1)
        layout.addWidget(column, 0, Qt.AlignmentFlag.AlignHCenter)
        layout.addStretch(2)
        self.setTabOrder(self.add_button, self.try_button)
        self.setFocusProxy(self.add_button)

        self.add_button.clicked.connect(self.addAccount)
        self.try_button.clicked.connect(self.trySandbox)
        self._apply_palette()

    # ------------------------------------------------------------ for the main window

    def set_busy(self, text: str | None) -> None:
        """Show progress (`text`) with both choices disabled; None enables them again."""
        busy = bool(text)
        self.add_button.setEnabled(not busy)
        self.try_button.setEnabled(not busy)
        self._problem = False
        self._set_message(text or "")

    @Slot(str)
    def show_problem(self, text: str) -> None:
        """Say what went wrong (and what to do) below the choices; both stay available."""
        self.add_button.setEnabled(True)
        self.try_button.setEnabled(True)
        self._problem = True
        self._set_message(text)

    def _set_message(self, text: str) -> None:
        self.message.setText(text)
        self.message.setVisible(bool(text))
        self._apply_palette()

    # ------------------------------------------------------------ colours

    def _apply_palette(self) -> None:
        """Secondary text and problems in colours taken from the current palette."""
        palette = self.palette()
        window = palette.color(QPalette.ColorRole.Window)
        text = palette.color(QPalette.ColorRole.WindowText)
        secondary = _mix(text, window, 0.7)
        subtitle_palette = self.subtitle.palette()
        subtitle_palette.setColor(QPalette.ColorRole.WindowText, secondary)
        self.subtitle.setPalette(subtitle_palette)
        if self._problem:
            colour = QColor("#ff7b72") if window.lightness() < 128 else QColor("#c62828")
        else:
            colour = secondary
        message_palette = self.message.palette()
        message_palette.setColor(QPalette.ColorRole.WindowText, colour)
        self.message.setPalette(message_palette)

    def changeEvent(self, event: QEvent) -> None:
        super().changeEvent(event)
        if event.type() == QEvent.Type.PaletteChange:
            self._apply_palette()


def _mix(front: QColor, back: QColor, amount: float) -> QColor:
    """`amount` of `front` over `back`: a quieter shade of the text, in any theme."""
    return QColor(
        round(front.red() * amount + back.red() * (1 - amount)),
        round(front.green() * amount + back.green() * (1 - amount)),
        round(front.blue() * amount + back.blue() * (1 - amount)),
    )


__all__ = ["WelcomePage"]
