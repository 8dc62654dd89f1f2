"""The Sending, Composer and Privacy pages: the fields of `Preferences`, edited.

Each page shows its preferences, reads them back (text that is not a
duration becomes an error for that field), and shows the checks' errors
beside the fields they concern. Saving is the dialog's job.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QFont, QFontDatabase
from PySide6.QtWidgets import (
    QAbstractItemView,
    QAbstractSpinBox,
    QCheckBox,
    QComboBox,
    QFontComboBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from mailer_gui.outbox.policy import UNDO_WINDOW_MAX
from mailer_gui.preferences import (
    FONT_SIZES,
    MAX_CONNECTIONS,
    MAX_PER_CONNECTION,
    MAX_RETRY_DELAYS,
    MAX_TRANSCRIPT_DAYS,
    Preferences,
    describe,
    format_duration,
    parse_duration,
)
from mailer_gui.ui.settings.widgets import MessageLabel


class PreferencesPage(QWidget):
    """A form of some preferences, each with an error line beneath it."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.errors: dict[str, MessageLabel] = {}
        self._form = QFormLayout()
        self._form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapLongRows)
        self._layout = QVBoxLayout(self)
        self._layout.addLayout(self._form)

    def _row(
        self,
        name: str,
        label: str,
        widget: QWidget,
        *,
        accessible: str,
        buddy: QWidget | None = None,
    ) -> None:
        """Add `widget` for the preference `name`, labelled, described and with its error line."""
        widget.setObjectName(f"preference-{name}")
        if isinstance(widget, QAbstractSpinBox | QLineEdit | QComboBox):
            widget.setMaximumWidth(320)  # a number or a duration; a full-width box misleads
        widget.setAccessibleName(accessible)
        widget.setAccessibleDescription(describe(name))
        widget.setToolTip(describe(name))
        caption = QLabel(label, self)
        caption.setBuddy(buddy or widget)
        caption.setToolTip(describe(name))
        error = MessageLabel(f"{accessible}: problem", self)
        cell = QWidget(self)
        column = QVBoxLayout(cell)
        column.setContentsMargins(0, 0, 0, 0)
        column.setSpacing(2)
        column.addWidget(widget)
        column.addWidget(error)
        self._form.addRow(caption, cell)
        self.errors[name] = error

    def set_preferences(self, preferences: Preferences) -> None:
        raise NotImplementedError

    def read(self, values: dict[str, Any], errors: dict[str, str]) -> None:
        """Put this page's values into `values`; text that cannot be read into `errors`."""
        raise NotImplementedError

    def show_errors(self, errors: Mapping[str, str]) -> bool:
        """Show the errors of this page's fields (and clear the others); True if any."""
        shown = False
        for name, label in self.errors.items():
            if name in errors:
                label.show_error(errors[name])
                shown = True
            else:
                label.clear_message()
        return shown

    def error_text(self, name: str) -> str:
        return self.errors[name].text()


class SendingPage(PreferencesPage):
    """Undo window, retry schedule, give-up age, connections, notifications."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.undo = QSpinBox(self)
        self.undo.setRange(0, int(UNDO_WINDOW_MAX))
        self.undo.setSuffix(" s")
        self.undo.setSpecialValueText("Off: send at once")
        self._row("undo_seconds", "&Undo window:", self.undo, accessible="Undo window")

        self.delays = QListWidget(self)
        self.delays.setEditTriggers(
            QAbstractItemView.EditTrigger.DoubleClicked
            | QAbstractItemView.EditTrigger.EditKeyPressed
            | QAbstractItemView.EditTrigger.SelectedClicked
        )
        self.delays.setMaximumHeight(self.delays.fontMetrics().lineSpacing() * 7 + 8)
        self.add_delay = QPushButton("A&dd delay", self)
        self.add_delay.setAccessibleName("Add a retry delay")
        self.add_delay.clicked.connect(self._add_delay)
        self.remove_delay = QPushButton("Remo&ve delay", self)
        self.remove_delay.setAccessibleName("Remove the chosen retry delay")
        self.remove_delay.clicked.connect(self._remove_delay)
        self.reset_delays = QPushButton("Default sc&hedule", self)
        self.reset_delays.setAccessibleName("Use the default retry schedule")
        self.reset_delays.clicked.connect(self._reset_schedule)
        schedule = QWidget(self)
        schedule_layout = QVBoxLayout(schedule)
        schedule_layout.setContentsMargins(0, 0, 0, 0)
        schedule_layout.addWidget(self.delays)
        buttons = QHBoxLayout()
        buttons.addWidget(self.add_delay)
        buttons.addWidget(self.remove_delay)
        buttons.addWidget(self.reset_delays)
        buttons.addStretch(1)
        schedule_layout.addLayout(buttons)
        hint = QLabel(
            "After the 1st, 2nd, … failure wait this long (like 5 min, 1 h or 2 d); F2 or a "
            "double click edits a delay.",
            schedule,
        )
        hint.setWordWrap(True)
        schedule_layout.addWidget(hint)
        self._row(
            "retry_delays",
            "&Retry after:",
            schedule,
            accessible="Retry schedule",
            buddy=self.delays,
        )
        self.delays.setAccessibleName("Retry delays")
        self.delays.setAccessibleDescription(describe("retry_delays"))

        self.every = QLineEdit(self)
        self.every.setPlaceholderText("like 2 h")
        self._row("retry_every", "&Then every:", self.every, accessible="Then retry every")
        self.give_up = QLineEdit(self)
        self.give_up.setPlaceholderText("like 2 d")
        self._row("give_up_after", "&Give up after:", self.give_up, accessible="Give up after")

        self.connections = QSpinBox(self)
        self.connections.setRange(1, MAX_CONNECTIONS)
        self._row(
            "max_connections",
            "Servers at &once:",
            self.connections,
            accessible="Connections at the same time",
        )
        self.per_connection = QSpinBox(self)
        self.per_connection.setRange(1, MAX_PER_CONNECTION)
        self.per_connection.setSuffix(" messages")
        self._row(
            "per_connection",
            "&Messages per connection:",
            self.per_connection,
            accessible="Messages per connection",
        )
        self.notifications = QCheckBox("Show desktop &notifications", self)
        self._row("notifications", "Notifications:", self.notifications, accessible="Notifications")
        self._layout.addStretch(1)

    def set_preferences(self, preferences: Preferences) -> None:
        self.undo.setValue(preferences.undo_seconds)
        self._set_delays(preferences.retry_delays)
        self.every.setText(format_duration(preferences.retry_every))
        self.give_up.setText(format_duration(preferences.give_up_after))
        self.connections.setValue(preferences.max_connections)
        self.per_connection.setValue(preferences.per_connection)
        self.notifications.setChecked(preferences.notifications)

    def read(self, values: dict[str, Any], errors: dict[str, str]) -> None:
        values["undo_seconds"] = self.undo.value()
        delays: list[int] = []
        for row in range(self.delays.count()):
            text = self.delays.item(row).text()
            try:
                delays.append(parse_duration(text))
            except ValueError as error:
                errors.setdefault("retry_delays", f"Delay {row + 1}: {error}")
        values["retry_delays"] = tuple(delays)
        for name, field in (("retry_every", self.every), ("give_up_after", self.give_up)):
            try:
                values[name] = parse_duration(field.text())
            except ValueError as error:
                errors[name] = str(error)
        values["max_connections"] = self.connections.value()
        values["per_connection"] = self.per_connection.value()
        values["notifications"] = self.notifications.isChecked()

    def delay_texts(self) -> list[str]:
        return [self.delays.item(row).text() for row in range(self.delays.count())]

    def _set_delays(self, delays: tuple[int, ...]) -> None:
        self.delays.clear()
        for delay in delays:
            self._append_delay(format_duration(delay))
        self._update_delay_buttons()

    def _append_delay(self, text: str) -> QListWidgetItem:
        item = QListWidgetItem(text)
        item.setFlags(item.flags() | Qt.ItemFlag.ItemIsEditable)
        self.delays.addItem(item)
        return item

    def _add_delay(self) -> None:
        last = self.delays.item(self.delays.count() - 1) if self.delays.count() else None
        try:
            seconds = parse_duration(last.text()) * 2 if last is not None else 60
        except ValueError:
            seconds = 60
        item = self._append_delay(format_duration(seconds))
        self.delays.setCurrentItem(item)
        self.delays.setFocus()
        self.delays.editItem(item)
        self._update_delay_buttons()

    def _remove_delay(self) -> None:
        row = self.delays.currentRow()
        if row >= 0 and self.delays.count() > 1:
            self.delays.takeItem(row)
        self._update_delay_buttons()

    def _reset_schedule(self) -> None:
        defaults = Preferences()
        self._set_delays(defaults.retry_delays)
        self.every.setText(format_duration(defaults.retry_every))
        self.give_up.setText(format_duration(defaults.give_up_after))

    def _update_delay_buttons(self) -> None:
        self.add_delay.setEnabled(self.delays.count() < MAX_RETRY_DELAYS)
        self.remove_delay.setEnabled(self.delays.count() > 1)


_FORMATS = (("markdown", "Markdown"), ("plain", "Plain text"))
_SAMPLE = "**Hello** — the quick brown fox jumps over the lazy dog. 0123456789"


class ComposerPage(PreferencesPage):
    """The format a new message starts in, and the composer's font."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.format = QComboBox(self)
        for value, text in _FORMATS:
            self.format.addItem(text, value)
        self._row("default_format", "&New messages in:", self.format, accessible="Default format")

        self.system_font = QCheckBox("Use the system's &fixed-width font", self)
        self.system_font.setAccessibleName("Use the system's fixed-width font")
        self.system_font.toggled.connect(self._font_changed)
        self.font_box = QFontComboBox(self)
        self.font_box.currentFontChanged.connect(lambda _font: self._font_changed())
        font_cell = QWidget(self)
        font_column = QVBoxLayout(font_cell)
        font_column.setContentsMargins(0, 0, 0, 0)
        font_column.addWidget(self.system_font)
        font_column.addWidget(self.font_box)
        self._row(
            "composer_font_family",
            "F&ont:",
            font_cell,
            accessible="Composer font",
            buddy=self.font_box,
        )
        self.font_box.setAccessibleName("Composer font")
        self.font_box.setAccessibleDescription(describe("composer_font_family"))

        self.font_size = QSpinBox(self)
        self.font_size.setRange(*FONT_SIZES)
        self.font_size.setSuffix(" pt")
        self.font_size.valueChanged.connect(lambda _size: self._font_changed())
        self._row(
            "composer_font_size", "Font si&ze:", self.font_size, accessible="Composer font size"
        )

        self.sample = QLabel(_SAMPLE, self)
        self.sample.setAccessibleName("Font sample")
        self.sample.setWordWrap(True)
        self._form.addRow("Sample:", self.sample)
        self._layout.addStretch(1)

    def set_preferences(self, preferences: Preferences) -> None:
        self.format.setCurrentIndex(max(self.format.findData(preferences.default_format), 0))
        self.system_font.setChecked(not preferences.composer_font_family)
        if preferences.composer_font_family:
            self.font_box.setCurrentFont(QFont(preferences.composer_font_family))
        else:
            self.font_box.setCurrentFont(self._system_font())
        self.font_size.setValue(preferences.composer_font_size)
        self._font_changed()

    def read(self, values: dict[str, Any], errors: dict[str, str]) -> None:
        values["default_format"] = self.format.currentData()
        values["composer_font_family"] = (
            "" if self.system_font.isChecked() else self.font_box.currentFont().family()
        )
        values["composer_font_size"] = self.font_size.value()

    def chosen_font(self) -> QFont:
        font = self._system_font() if self.system_font.isChecked() else self.font_box.currentFont()
        font.setPointSize(self.font_size.value())
        return font

    @staticmethod
    def _system_font() -> QFont:
        return QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)

    def _font_changed(self) -> None:
        self.font_box.setEnabled(not self.system_font.isChecked())
        self.sample.setFont(self.chosen_font())


class PrivacyPage(PreferencesPage):
    """How long transcripts are kept, and clearing the old ones now."""

    #: the number of days chosen: clear the transcripts older than that
    pruneRequested = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.days = QSpinBox(self)
        self.days.setRange(0, MAX_TRANSCRIPT_DAYS)
        self.days.setSuffix(" days")
        self.days.setSpecialValueText("Forever")
        self._row(
            "transcript_days", "&Keep transcripts for:", self.days, accessible="Keep transcripts"
        )
        explanation = QLabel(
            "A transcript is everything Mailer and the server said while sending a message. "
            "Once a message is sent, failed or cancelled, its transcripts are cleared after "
            "this many days; what each server answered stays with the message.",
            self,
        )
        explanation.setWordWrap(True)
        self._layout.addWidget(explanation)
        self.prune_button = QPushButton("&Delete old transcripts now", self)
        self.prune_button.setAccessibleName("Delete old transcripts now")
        self.prune_button.setToolTip(
            "Clear, now, the transcripts older than the number of days above."
        )
        self.prune_button.clicked.connect(lambda: self.pruneRequested.emit(self.days.value()))
        row = QHBoxLayout()
        row.addWidget(self.prune_button)
        row.addStretch(1)
        self._layout.addLayout(row)
        self.prune_result = MessageLabel("Deleting old transcripts: result", self)
        self._layout.addWidget(self.prune_result)
        self._layout.addStretch(1)

    def set_preferences(self, preferences: Preferences) -> None:
        self.days.setValue(preferences.transcript_days)

    def read(self, values: dict[str, Any], errors: dict[str, str]) -> None:
        values["transcript_days"] = self.days.value()

    def set_pruning(self, running: bool) -> None:
        self.prune_button.setEnabled(not running)
        if running:
            self.prune_result.show_info("Deleting old transcripts…")
