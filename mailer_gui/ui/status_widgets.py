"""The status bar's live parts: the undo-send countdown, the current send, online state.

The countdown never says "Sent" before the server said so: a message in its
undo window reads "Sending “Subject” in 8 s", and the Undo button cancels it
while it is still only scheduled. What happens afterwards is reported by the
state changes the bridge forwards (sending, sent, deferred, failed).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, NamedTuple

from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QPushButton, QWidget

from mailer_gui.sizes import human_size

if TYPE_CHECKING:
    from PySide6.QtNetwork import QNetworkInformation


class _Pending(NamedTuple):  # not a dataclass: see log_dock.LogLine
    subject: str
    due_at: float


def _subject(text: str) -> str:
    text = text.strip() or "(no subject)"
    return text if len(text) <= 40 else text[:39] + "…"


class UndoCountdown(QWidget):
    """ "Sending “Report” in 8 s  [Undo]" for messages still in their undo window."""

    #: the message the person wants back
    undoRequested = Signal(int)

    def __init__(
        self, parent: QWidget | None = None, *, clock: Callable[[], float] = time.time
    ) -> None:
        super().__init__(parent)
        self._clock = clock
        self._pending: dict[int, _Pending] = {}  # in the order they were sent
        self._paused = False
        self.label = QLabel(self)
        self.label.setAccessibleName("Undo send countdown")
        self.button = QPushButton("&Undo", self)
        self.button.setAccessibleName("Undo send")
        self.button.setToolTip("Stop this message and keep it as a draft (Ctrl+Z)")
        self.button.clicked.connect(self._undo_latest)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.label)
        layout.addWidget(self.button)
        self._timer = QTimer(self)
        self._timer.setInterval(250)
        self._timer.timeout.connect(self._tick)
        self.hide()

    def add(self, message: int, subject: str, due_at: float) -> None:
        """A message was queued with an undo window ending at ``due_at``."""
        if due_at <= self._clock():
            return  # no window (undo set to 0 s): nothing to undo
        self._pending[message] = _Pending(subject, due_at)
        self._tick()
        self._timer.start()

    def forget(self, message: int) -> None:
        """The message left its undo window (sending, cancelled, …)."""
        if self._pending.pop(message, None) is not None:
            self._tick()

    def pending(self) -> list[int]:
        return list(self._pending)

    def latest(self) -> int | None:
        """The message sent last (the one Undo takes back), or None."""
        return next(reversed(self._pending), None)

    def set_paused(self, paused: bool) -> None:
        """Sending is paused: a message past its window waits, and can still be undone."""
        self._paused = paused
        self._tick()

    def _undo_latest(self) -> None:
        latest = self.latest()
        if latest is not None:
            self.undoRequested.emit(latest)

    def _tick(self) -> None:
        now = self._clock()
        latest = self.latest()
        if latest is None:
            self._timer.stop()
            self.hide()
            return
        item = self._pending[latest]
        seconds = max(0, math.ceil(item.due_at - now))
        if seconds > 0:
            text = f"Sending “{_subject(item.subject)}” in {seconds} s"
        elif self._paused:
            text = f"“{_subject(item.subject)}” waits: sending is paused"
        else:
            text = f"Sending “{_subject(item.subject)}”…"
        others = len(self._pending) - 1
        if others:
            text += f" (and {others} more)"
        self.label.setText(text)
        # Until the runner takes it (a state change calls forget), Undo still works.
        self.button.setEnabled(True)
        self.show()


class SendProgress(QWidget):
    """The message being sent now: a bar with bytes and speed."""

    def __init__(
        self, parent: QWidget | None = None, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__(parent)
        self._clock = clock
        self._message: int | None = None
        self._started = 0.0
        # The window shows no message numbers: the subject names the message
        # (None when the window does not know it: "a message").
        self.subject_of: Callable[[int], str | None] = lambda message: None
        self._subject: str | None = None
        self.label = QLabel(self)
        self.label.setAccessibleName("Current send")
        self.bar = QProgressBar(self)
        self.bar.setAccessibleName("Send progress")
        self.bar.setMaximumWidth(160)
        self.bar.setTextVisible(False)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.label)
        layout.addWidget(self.bar)
        self.hide()

    def update_progress(self, message: int, sent: int, total: int) -> None:
        now = self._clock()
        if message != self._message:
            self._message = message
            self._started = now
            self._subject = self.subject_of(message)
        self.bar.setRange(0, 1000)
        self.bar.setValue(int(1000 * sent / total) if total else 1000)
        elapsed = now - self._started
        speed = f", {human_size(sent / elapsed)}/s" if elapsed > 0.2 and sent else ""
        what = f"“{self._subject}”" if self._subject else "a message"
        self.label.setText(f"Sending {what}: {human_size(sent)} of {human_size(total)}{speed}")
        self.show()

    def finished(self, message: int) -> None:
        if message == self._message:
            self._message = None
            self.hide()


class Connectivity(QObject):
    """Online or offline, as the system's network information backend says.

    Where no backend exists the state is unknown and nothing is shown.
    """

    #: True when the system is online again
    changed = Signal(bool)

    def __init__(self, label: QLabel, parent: QObject | None = None) -> None:
        # QtNetwork loads here, not with the module: the status bar is part of
        # the window's first paint, Connectivity is made after it.
        from PySide6.QtNetwork import QNetworkInformation

        super().__init__(parent)
        self.label = label
        self.label.setAccessibleName("Network state")
        self.online: bool | None = None
        if QNetworkInformation.loadBackendByFeatures(QNetworkInformation.Feature.Reachability):
            info = QNetworkInformation.instance()
            if info is not None:
                info.reachabilityChanged.connect(self._changed)
                self._changed(info.reachability())
                return
        self.label.hide()

    def _changed(self, reachability: QNetworkInformation.Reachability) -> None:
        from PySide6.QtNetwork import QNetworkInformation

        online = reachability in (
            QNetworkInformation.Reachability.Online,
            QNetworkInformation.Reachability.Site,
            QNetworkInformation.Reachability.Local,
        )
        unknown = reachability is QNetworkInformation.Reachability.Unknown
        self.label.setText("" if unknown else ("Online" if online else "Offline"))
        self.label.setToolTip(
            "" if online or unknown else "Messages wait in the outbox until the network is back."
        )
        before, self.online = self.online, (None if unknown else online)
        if self.online is not None and self.online != before:
            self.changed.emit(self.online)


__all__ = ["Connectivity", "SendProgress", "UndoCountdown", "human_size"]
