"""Page 2: looking for the server settings, live, one row per source.

accounts.discover runs on a worker thread (without the password: nothing is
sent to a server before the person has seen it on the next page). Its
progress events and the probes' transcript lines arrive here through the
task's queued posts. Stop, Back and closing the wizard cancel it.
"""

from __future__ import annotations

from PySide6.QtCore import Slot
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import (
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QStyle,
    QVBoxLayout,
    QWidget,
    QWizardPage,
)

from mailer_gui.accounts.discover import (
    SOURCE_AUTOCONFIG,
    SOURCE_GUESS,
    SOURCE_MX,
    SOURCE_PROVIDERS,
    SOURCE_SRV,
    DiscoveryResult,
    ProgressEvent,
    Status,
    discover,
)
from mailer_gui.smtp.transcript import Transcript, TranscriptRecord
from mailer_gui.ui.wizard.background import BackgroundTask
from mailer_gui.ui.wizard.state import WizardState
from mailer_gui.ui.wizard.widgets import Banner, LogView, source_phrase

__all__ = ["SOURCE_ROWS", "DiscoveryPage"]

# The sources in the order they are shown, with their row titles.
SOURCE_ROWS: dict[str, str] = {
    SOURCE_PROVIDERS: "Provider list",
    SOURCE_AUTOCONFIG: "Autoconfig (the domain's settings file)",
    SOURCE_SRV: "DNS SRV records",
    SOURCE_MX: "MX records (who hosts the domain's mail)",
    SOURCE_GUESS: "Probing likely server names",
}

_ICON_FOR: dict[Status, QStyle.StandardPixmap] = {
    Status.STARTED: QStyle.StandardPixmap.SP_BrowserReload,
    Status.PROBING: QStyle.StandardPixmap.SP_BrowserReload,
    Status.ACCEPTED: QStyle.StandardPixmap.SP_BrowserReload,
    Status.REJECTED: QStyle.StandardPixmap.SP_BrowserReload,
    Status.FOUND: QStyle.StandardPixmap.SP_DialogApplyButton,
    Status.NOTHING: QStyle.StandardPixmap.SP_DialogNoButton,
    Status.FAILED: QStyle.StandardPixmap.SP_MessageBoxWarning,
    Status.TIMED_OUT: QStyle.StandardPixmap.SP_MessageBoxWarning,
    Status.CANCELLED: QStyle.StandardPixmap.SP_MediaStop,
    Status.NOT_NEEDED: QStyle.StandardPixmap.SP_MediaSkipForward,
}


def status_text(event: ProgressEvent) -> str:
    """A progress event as the words of its row."""
    detail = event.detail
    status = event.status
    if status is Status.STARTED:
        return "looking…"
    if status is Status.FOUND:
        if detail and not detail.isdigit():
            return f"found ({detail})"
        return f"found {detail}" if detail and detail != "1" else "found"
    if status is Status.NOTHING:
        return f"nothing found: {detail}" if detail else "nothing found"
    if status is Status.FAILED:
        return f"failed: {detail}" if detail else "failed"
    if status is Status.TIMED_OUT:
        return "no answer in time"
    if status is Status.CANCELLED:
        return "stopped"
    if status is Status.NOT_NEEDED:
        return "not needed: a better source answered first"
    if status is Status.PROBING:
        return f"trying {detail}…"
    if status is Status.ACCEPTED:
        return f"{detail} answers"
    if status is Status.REJECTED:
        return f"turned down {detail}"
    return f"{status.value} {detail}".strip()


class DiscoveryPage(QWizardPage):
    def __init__(self, state: WizardState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.task: BackgroundTask[DiscoveryResult] | None = None
        self.setTitle("Looking for your server settings")
        self.setSubTitle("Every source is asked at once; the most reliable answer wins.")

        grid = QGridLayout()
        self._icons: dict[str, QLabel] = {}
        self._statuses: dict[str, QLabel] = {}
        for row, (source, title) in enumerate(SOURCE_ROWS.items()):
            icon = QLabel(self)
            name = QLabel(title, self)
            status = QLabel("", self)
            status.setWordWrap(True)
            status.setAccessibleName(f"{title}: status")
            grid.addWidget(icon, row, 0)
            grid.addWidget(name, row, 1)
            grid.addWidget(status, row, 2)
            self._icons[source] = icon
            self._statuses[source] = status
        grid.setColumnStretch(2, 1)

        self.summary = Banner("Search result", self)
        self.stop_button = QPushButton("&Stop looking", self)
        self.stop_button.setAccessibleName("Stop looking for settings")
        self.stop_button.setToolTip("Stop now and use what was found so far (Ctrl+.)")
        self.stop_button.setShortcut(QKeySequence("Ctrl+."))
        self.stop_button.clicked.connect(self.stop)
        self.log = LogView("What was tried", self)
        log_title = QLabel("&What was tried:", self)
        log_title.setBuddy(self.log)

        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(self.stop_button)
        layout = QVBoxLayout(self)
        layout.addLayout(grid)
        layout.addLayout(buttons)
        layout.addWidget(self.summary)
        layout.addWidget(log_title)
        layout.addWidget(self.log, 1)

    # -- life of the page ----------------------------------------------------------------

    def initializePage(self) -> None:
        self.abandon()
        self.state.discovery = None
        self.summary.clear()
        self.log.reset()
        for source in SOURCE_ROWS:
            self._set_row(source, ProgressEvent(source, Status.STARTED))
        self.stop_button.setEnabled(True)
        address = self.state.address
        options = dict(self.state.discovery_options)
        self.log.add_line(f"* looking up the settings for {address}")

        def work(task: BackgroundTask[DiscoveryResult]) -> DiscoveryResult:
            transcript = Transcript(listener=lambda record: task.post(self._record, record))
            return discover(
                address,
                cancel=task.stopping,
                on_progress=lambda event: task.post(self._progress, event),
                transcript=transcript,
                **options,
            )

        self.task = BackgroundTask("discovery", work, self._finished, self.state.tasks).start()
        self.completeChanged.emit()

    def cleanupPage(self) -> None:
        """Back: stop looking; the next visit starts afresh."""
        self.abandon()
        self.state.discovery = None

    def isComplete(self) -> bool:
        return self.task is not None and self.task.finished

    # -- controls ----------------------------------------------------------------------

    @Slot()
    def stop(self) -> None:
        """Stop looking; what was found so far is offered."""
        if self.task is not None and not self.task.finished:
            self.log.add_line("* stopping at your request")
            self.task.stop()
            self.stop_button.setEnabled(False)

    def abandon(self) -> None:
        """Stop, and ignore whatever the search still reports."""
        if self.task is not None:
            self.task.abandon()
            self.task = None

    @property
    def searching(self) -> bool:
        return self.task is not None and not self.task.finished

    def status_text(self, source: str) -> str:
        return self._statuses[source].text()

    # -- reports from the worker -------------------------------------------------------

    def _set_row(self, source: str, event: ProgressEvent) -> None:
        pixmap = _ICON_FOR.get(event.status, QStyle.StandardPixmap.SP_BrowserReload)
        size = self.style().pixelMetric(QStyle.PixelMetric.PM_SmallIconSize)
        self._icons[source].setPixmap(self.style().standardIcon(pixmap).pixmap(size, size))
        self._icons[source].setAccessibleName(event.status.value)
        self._statuses[source].setText(status_text(event))

    def _progress(self, event: ProgressEvent) -> None:
        if event.source in self._statuses:
            self._set_row(event.source, event)
        detail = f" {event.detail}" if event.detail else ""
        self.log.add_line(f"* {event.source}: {event.status.value}{detail}")

    def _record(self, record: TranscriptRecord) -> None:
        self.log.add_record(record)

    def _finished(self, result: DiscoveryResult | None, error: BaseException | None) -> None:
        self.stop_button.setEnabled(False)
        if error is not None or result is None:
            self.summary.show_message(
                "error",
                f"The search for settings failed ({error}). Next lets you enter the "
                "settings by hand.",
            )
        else:
            self.state.discovery = result
            self.summary.show_message(*self._describe(result))
        self.completeChanged.emit()

    def _describe(self, result: DiscoveryResult) -> tuple[str, str]:
        domain = result.address.rpartition("@")[2]
        stopped = self.task is not None and self.task.stopping.is_set()
        if not result.candidates:
            why = (
                "The search was stopped before anything was found"
                if stopped
                else (f"No settings were found for {domain}")
            )
            return (
                "warning",
                f"{why}. Next lets you enter them by hand: your provider's help pages list "
                "the outgoing (SMTP) server, its port and its security.",
            )
        best = result.candidates[0]
        others = len(result.candidates) - 1
        more = f" and {others} other possibilit{'y' if others == 1 else 'ies'}" if others else ""
        return (
            "ok",
            f"Found {best.describe()} ({source_phrase(best.source)}){more} in "
            f"{result.elapsed:.1f} s. Next shows the settings; you can change any of them.",
        )
