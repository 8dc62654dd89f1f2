"""Work off the GUI thread for the setup wizard, with results posted back to it.

Each task runs on its own daemon thread (named ``mailer-wizard-…``), so a
network step that is slow to notice a cancel never holds the app's exit or
the GUI. Results and live reports travel back through one queued signal of a
relay object that lives as long as the application, so a thread finishing
after its wizard was closed never emits on a deleted object. A task can be
*stopped* (the work ends early and still reports) or *abandoned* (stopped,
and nothing it says afterwards reaches the page).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from PySide6.QtCore import QCoreApplication, QObject, Qt, Signal, Slot

__all__ = ["THREAD_PREFIX", "BackgroundTask", "TaskGroup"]

THREAD_PREFIX = "mailer-wizard-"

_T = TypeVar("_T")


class _Relay(QObject):
    """Calls functions on the GUI thread for worker threads."""

    call = Signal(object, object)  # function, arguments (a tuple)

    def __init__(self, parent: QObject) -> None:
        super().__init__(parent)
        self.call.connect(self._call, Qt.ConnectionType.QueuedConnection)

    @Slot(object, object)
    def _call(self, function: Callable[..., None], arguments: tuple[Any, ...]) -> None:
        function(*arguments)


_relay: _Relay | None = None


def _the_relay() -> _Relay:
    """The relay, made on first use on the GUI thread and kept with the application."""
    global _relay
    if _relay is None:
        app = QCoreApplication.instance()
        if app is None:
            raise RuntimeError("the setup wizard needs a running QApplication")
        _relay = _Relay(app)
    return _relay


class BackgroundTask(Generic[_T]):
    """``work(task)`` on a daemon thread; ``on_done(result, error)`` on the GUI thread.

    Create and start it on the GUI thread. ``work`` should look at
    ``task.stopping`` (a threading.Event) or register a stop hook with
    ``on_stop`` to end early.
    """

    def __init__(
        self,
        name: str,
        work: Callable[[BackgroundTask[_T]], _T],
        on_done: Callable[[_T | None, BaseException | None], None],
        group: TaskGroup | None = None,
    ) -> None:
        self.name = name
        self.stopping = threading.Event()
        self._abandoned = threading.Event()
        self._work = work
        self._on_done = on_done
        self._stop_hooks: list[Callable[[], None]] = []
        self._lock = threading.Lock()
        self._finished = False
        self._relay = _the_relay()
        self.thread = threading.Thread(target=self._run, name=f"{THREAD_PREFIX}{name}", daemon=True)
        if group is not None:
            group.add(self)

    def start(self) -> BackgroundTask[_T]:
        self.thread.start()
        return self

    # -- called from the worker thread ---------------------------------------------------

    def post(self, function: Callable[..., None], *arguments: Any) -> None:
        """Have ``function(*arguments)`` called on the GUI thread, unless abandoned by then."""
        if not self._abandoned.is_set():
            with contextlib.suppress(RuntimeError):  # the application is shutting down
                self._relay.call.emit(self._guarded(function), arguments)

    def on_stop(self, hook: Callable[[], None]) -> None:
        """Run ``hook`` when the task is stopped (at once if it already is)."""
        with self._lock:
            if not self.stopping.is_set():
                self._stop_hooks.append(hook)
                return
        hook()

    def _run(self) -> None:
        result: _T | None = None
        error: BaseException | None = None
        try:
            result = self._work(self)
        except Exception as exc:  # handed to on_done, which decides what to tell
            error = exc
        self.post(self._finish, result, error)

    # -- called on the GUI thread ------------------------------------------------------

    def _guarded(self, function: Callable[..., None]) -> Callable[..., None]:
        def call(*arguments: Any) -> None:
            if not self._abandoned.is_set():
                function(*arguments)

        return call

    def _finish(self, result: _T | None, error: BaseException | None) -> None:
        self._finished = True
        self._on_done(result, error)

    @property
    def finished(self) -> bool:
        """Whether on_done has been called."""
        return self._finished

    @property
    def running(self) -> bool:
        """Whether its thread is still alive."""
        return self.thread.is_alive()

    def stop(self) -> None:
        """Ask the work to end early; on_done still comes, with what it has."""
        with self._lock:
            self.stopping.set()
            hooks, self._stop_hooks = self._stop_hooks, []
        for hook in hooks:
            hook()

    def abandon(self) -> None:
        """Stop, and let nothing more from this task reach the GUI."""
        self._abandoned.set()
        self.stop()


class TaskGroup:
    """The tasks of one wizard, so closing it (or its deletion) abandons them all.

    A plain object, not a QObject: it can be called from a ``destroyed``
    signal after the widgets are gone.
    """

    def __init__(self) -> None:
        self._tasks: list[BackgroundTask[Any]] = []

    def add(self, task: BackgroundTask[Any]) -> None:
        alive = [t for t in self._tasks if t.thread.ident is None or t.thread.is_alive()]
        self._tasks = [*alive, task]

    def abandon_all(self, *_ignored: object) -> None:
        for task in self._tasks:
            task.abandon()

    def threads(self) -> list[threading.Thread]:
        """The threads of this group's tasks that are still alive."""
        return [task.thread for task in self._tasks if task.thread.is_alive()]
