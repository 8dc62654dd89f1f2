"""Small pieces the wizard's pages share: the inline message banner, the live log
view, and the words for where a setting came from."""

from __future__ import annotations

from PySide6.QtCore import Qt, QTimer, Slot
from PySide6.QtGui import QFontDatabase, QPalette
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QSizePolicy,
    QStyle,
    QWidget,
)

from mailer_gui.accounts.discover import (
    SOURCE_AUTOCONFIG,
    SOURCE_GUESS,
    SOURCE_MX,
    SOURCE_PROVIDERS,
    SOURCE_SRV,
)
from mailer_gui.smtp.transcript import TranscriptRecord

__all__ = ["Banner", "LogView", "source_phrase"]

_SOURCE_PHRASES = {
    SOURCE_PROVIDERS: "from the provider list",
    SOURCE_AUTOCONFIG: "from autoconfig",
    SOURCE_SRV: "from DNS SRV",
    SOURCE_GUESS: "guessed and probed",
}


def source_phrase(source: str) -> str:
    """Where a candidate came from, for a person: ``from DNS SRV``, ``guessed and probed``."""
    if source in _SOURCE_PHRASES:
        return _SOURCE_PHRASES[source]
    if source.startswith(SOURCE_MX):
        # "MX → Google": the domain's mail is hosted by a provider on the list.
        provider = source.partition("→")[2].strip()
        return f"from the MX records ({provider}'s servers)" if provider else "from the MX records"
    return f"from {source}"


_ICONS = {
    "error": QStyle.StandardPixmap.SP_MessageBoxCritical,
    "warning": QStyle.StandardPixmap.SP_MessageBoxWarning,
    "info": QStyle.StandardPixmap.SP_MessageBoxInformation,
    "ok": QStyle.StandardPixmap.SP_DialogApplyButton,
}


class Banner(QFrame):
    """A message inside the page (never a dialog): an icon and selectable words.

    Drawn with the palette's alternate base and text colours, so it reads in
    light and dark themes alike; hidden while it has nothing to say.
    """

    def __init__(self, accessible_name: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setAutoFillBackground(True)
        self.setBackgroundRole(QPalette.ColorRole.AlternateBase)
        self.kind = ""
        layout = QHBoxLayout(self)
        layout.setContentsMargins(8, 6, 8, 6)
        self.icon = QLabel(self)
        self.icon.setAlignment(Qt.AlignmentFlag.AlignTop)
        self.label = QLabel(self)
        self.label.setWordWrap(True)
        self.label.setTextFormat(Qt.TextFormat.PlainText)
        self.label.setTextInteractionFlags(
            Qt.TextInteractionFlag.TextSelectableByMouse
            | Qt.TextInteractionFlag.TextSelectableByKeyboard
        )
        self.label.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        self.label.setAccessibleName(accessible_name)
        layout.addWidget(self.icon)
        layout.addWidget(self.label, 1)
        self.hide()

    def show_message(self, kind: str, text: str) -> None:
        """``kind`` is error, warning, info or ok."""
        self.kind = kind
        size = self.style().pixelMetric(QStyle.PixelMetric.PM_SmallIconSize)
        self.icon.setPixmap(self.style().standardIcon(_ICONS[kind]).pixmap(size, size))
        self.label.setText(text)
        self.label.setAccessibleDescription(f"{kind}: {text}")
        self.show()

    def clear(self) -> None:
        self.kind = ""
        self.label.clear()
        self.hide()

    def text(self) -> str:
        return "" if self.isHidden() else self.label.text()


class LogView(QPlainTextEdit):
    """A read-only, fixed-width, live log; lines arriving together are drawn together."""

    FLUSH_MS = 50

    def __init__(self, accessible_name: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setReadOnly(True)
        self.setUndoRedoEnabled(False)
        self.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.setMaximumBlockCount(5000)
        self.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.setAccessibleName(accessible_name)
        self._pending: list[str] = []
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(self.FLUSH_MS)
        self._timer.timeout.connect(self.flush)

    def add_line(self, text: str) -> None:
        self._pending.append(" ".join(text.splitlines()))
        if not self._timer.isActive():
            self._timer.start()

    def add_record(self, record: TranscriptRecord) -> None:
        self.add_line(record.render())

    @Slot()
    def flush(self) -> None:
        self._timer.stop()
        if self._pending:
            # One call per batch: cheap for bursts (see log_dock.py on per-call cost).
            self.appendPlainText("\n".join(self._pending))
            self._pending.clear()

    def reset(self) -> None:
        self._timer.stop()
        self._pending.clear()
        self.clear()

    def text(self) -> str:
        """Every line, the pending ones drawn first."""
        self.flush()
        return self.toPlainText()
