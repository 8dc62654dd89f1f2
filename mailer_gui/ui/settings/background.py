"""Blocking work for the Settings dialog, off the GUI thread.

The dialog saves files (fsync), talks to the keyring and tests servers; each
runs on a small thread pool and its result comes back on the GUI thread
through a queued signal, as OutboxBridge.run_in_background does for the
main window (the dialog does not need the bridge to be open).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, Qt, QThreadPool, Signal, Slot

Done = Callable[[Any, BaseException | None], None]


class Background(QObject):
    """Runs `fn()` on a worker thread and `on_done(result, error)` back on the GUI thread."""

    _taskDone = Signal(int, object, object, object)
    #: True while any task runs, False when the last one has reported back
    busyChanged = Signal(bool)

    def __init__(self, parent: QObject | None = None, *, threads: int = 2) -> None:
        super().__init__(parent)
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(threads)
        self._taskDone.connect(self._on_task_done, Qt.ConnectionType.QueuedConnection)
        self._running = 0
        self._closed = False
        # Results of tasks started before a shutdown are dropped, even after reopen().
        self._generation = 0

    @property
    def busy(self) -> bool:
        return self._running > 0

    def run(self, fn: Callable[[], Any], on_done: Done) -> None:
        if self._closed:
            return
        self._running += 1
        if self._running == 1:
            self.busyChanged.emit(True)
        generation = self._generation

        def task() -> None:
            result: Any = None
            error: BaseException | None = None
            try:
                result = fn()
            except Exception as exc:  # handed to on_done, which tells the person
                error = exc
            with contextlib.suppress(RuntimeError):  # the dialog was deleted meanwhile
                self._taskDone.emit(generation, on_done, result, error)

        self._pool.start(task)

    @Slot(int, object, object, object)
    def _on_task_done(
        self, generation: int, on_done: Done, result: Any, error: BaseException | None
    ) -> None:
        if self._closed or generation != self._generation:
            return
        self._running -= 1
        try:
            on_done(result, error)
        finally:
            if self._running == 0:
                self.busyChanged.emit(False)

    def shutdown(self, timeout: float = 5.0) -> None:
        """Drop tasks not yet started and wait (bounded) for the running ones."""
        if self._closed:
            return
        self._closed = True
        self._pool.clear()
        self._pool.waitForDone(int(timeout * 1000))
        self._generation += 1
        self._running = 0

    def reopen(self) -> None:
        """Accept work again after `shutdown` (the dialog was shown again)."""
        self._closed = False
