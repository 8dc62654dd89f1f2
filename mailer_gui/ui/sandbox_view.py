"""The sandbox in the GUI: the in-process test server, and the "Sandbox inbox" that shows its mail.

`SandboxController` runs a SandboxServer (mailer_gui/sandbox/) for the app:
it starts and stops it on a worker thread, keeps the "sandbox" account in
step, and hands the outbox the server's in-memory password through
`credentials_lookup()`, so sending works with or without a keyring.
`SandboxInboxView` lists what the server captured, shows a message as a mail
reader would (without fetching anything from the network), and has the fault
switches that make the server misbehave on purpose.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import html
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import shiboken6
from PySide6.QtCore import (
    QCoreApplication,
    QEvent,
    QFileSystemWatcher,
    QItemSelectionModel,
    QObject,
    Qt,
    QThreadPool,
    QTimer,
    QUrl,
    Signal,
    Slot,
)
from PySide6.QtGui import (
    QColor,
    QFontDatabase,
    QImage,
    QKeySequence,
    QPalette,
    QShortcut,
    QTextDocument,
)
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QDoubleSpinBox,
    QFileDialog,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QSplitter,
    QTabWidget,
    QTextBrowser,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from mailer_gui.accounts.model import Account
from mailer_gui.accounts.store import AccountStore, AccountStoreError, UnknownAccount
from mailer_gui.message.addresses import parse_address
from mailer_gui.message.draft import Draft
from mailer_gui.outbox.runner import CredentialsLookup
from mailer_gui.paths import AppPaths, ensure_private_dir
from mailer_gui.sandbox.account import (
    SANDBOX_ACCOUNT,
    SANDBOX_USERNAME,
    ensure_sandbox_account,
    is_sandbox_account,
    sandbox_credentials,
    stored_password,
)
from mailer_gui.sandbox.errors import SandboxError
from mailer_gui.sandbox.faults import DEFAULT_SIZE_LIMIT, Faults, RcptRejection
from mailer_gui.sandbox.maildir import CapturedMessage, Inbox
from mailer_gui.sandbox.reader import CapturedContent, read_captured, save_attachment
from mailer_gui.sizes import human_size
from mailer_gui.ui.bridge import stored_credentials

if TYPE_CHECKING:
    import keyring.backend

    from mailer_gui.sandbox.server import SandboxServer

TRIAL_RECIPIENT: Final = "Friend <friend@sandbox.test>"
TRIAL_SUBJECT: Final = "Hello from Mailer"
TRIAL_BODY: Final = """\
Hi!

This message goes to Mailer's **built-in test server**: it keeps what it is sent
and delivers nothing, so nobody is bothered.

- Press **Send**, then open the *Sandbox inbox* to see it arrive.
- The session log shows every line the server said.
- Attach a file, add a picture or change this text: it all shows up there.
"""

CHANGE_DELAY_MS: Final = 100  # arrivals and folder changes within this share one reload
ONE_SHOT_POLL_MS: Final = 250  # how often an armed "reject the next RCPT" is checked
SMALL_SIZE_DEFAULT_KB: Final = 10
SLOW_REPLY_DEFAULT: Final = 2.0

Done = Callable[[Any, BaseException | None], None]


@dataclass(frozen=True)
class SandboxTrial:
    """What a composer needs to open for a first message to the sandbox."""

    account: Account
    draft: Draft
    port: int


def trial_draft(account: Account) -> Draft:
    """A short Markdown message from `account` to a sample recipient at the sandbox."""
    sender = dataclasses.replace(
        parse_address(account.email), display_name=account.display_name or ""
    )
    return Draft(
        sender=sender,
        to=(parse_address(TRIAL_RECIPIENT),),
        subject=TRIAL_SUBJECT,
        body=TRIAL_BODY,
    )


class _RunningServer:
    """The running server, read from any thread (the outbox runner's included)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._server: SandboxServer | None = None

    def get(self) -> SandboxServer | None:
        with self._lock:
            return self._server

    def set(self, server: SandboxServer) -> None:
        with self._lock:
            self._server = server

    def take(self) -> SandboxServer | None:
        with self._lock:
            server, self._server = self._server, None
            return server


@dataclass(frozen=True)
class _Started:
    server: SandboxServer
    account: Account | None
    note: str | None  # why the account could not be set up
    new: bool  # this call started the server


class SandboxController(QObject):
    """The GUI's own sandbox server under ``paths.sandbox_dir``, run off the GUI thread.

    Start and stop run on a worker thread, in the order asked; listing,
    reading and deleting captured mail on another. Results come back as
    signals (on the GUI thread) or through ``on_done(result, error)``.
    Call `shutdown()` at quit (it is also connected to the application's
    aboutToQuit).
    """

    #: the port listened on
    started = Signal(int)
    stopped = Signal()
    #: captured mail arrived, or was deleted (by this app or another program)
    messagesChanged = Signal()
    #: what went wrong, for a person
    error = Signal(str)

    # Private hops onto the GUI thread.
    _arrived = Signal()
    _taskDone = Signal(object, object, object)

    def __init__(
        self,
        paths: AppPaths,
        *,
        size_limit: int | None = DEFAULT_SIZE_LIMIT,
        keyring_backend: keyring.backend.KeyringBackend | None = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.paths = paths
        self.maildir = paths.sandbox_dir / "Maildir"
        self.size_limit = size_limit
        self._backend = keyring_backend
        self._running = _RunningServer()
        self._account: Account | None = None
        self._closed = False
        # One worker each: start/stop keep their order, and a slow start never
        # holds up the listing.
        self._control = QThreadPool(self)
        self._control.setMaxThreadCount(1)
        self._reader = QThreadPool(self)
        self._reader.setMaxThreadCount(1)
        self._taskDone.connect(self._on_task_done, Qt.ConnectionType.QueuedConnection)
        self._changes = QTimer(self)
        self._changes.setSingleShot(True)
        self._changes.setInterval(CHANGE_DELAY_MS)
        self._changes.timeout.connect(self._announce_change)
        self._arrived.connect(self._changes.start, Qt.ConnectionType.QueuedConnection)
        # Mail written or removed by another program (`mailer-gui sandbox` on the
        # same Maildir, a mail reader) shows up too.
        self._watcher = QFileSystemWatcher(self)
        self._watcher.directoryChanged.connect(self._folder_changed)
        app = QCoreApplication.instance()
        if app is not None:
            app.aboutToQuit.connect(self.shutdown)

    # ------------------------------------------------------------ what it is

    @property
    def server(self) -> SandboxServer | None:
        """The running server, or None."""
        return self._running.get()

    @property
    def running(self) -> bool:
        return self.server is not None

    @property
    def faults(self) -> Faults | None:
        """The running server's fault switches (thread-safe; set them from anywhere)."""
        server = self.server
        return None if server is None else server.faults

    @property
    def account(self) -> Account | None:
        """The sandbox account as set up at the last start (None if it could not be)."""
        return self._account

    def credentials_lookup(self, fallback: CredentialsLookup | None = None) -> CredentialsLookup:
        """For OutboxBridge(credentials=...): the sandbox account logs in with the
        running server's password (held in memory, never in a file); every other
        account, and the sandbox account while it is stopped, gets `fallback`
        (by default what this profile keeps in the keyring)."""
        if fallback is None:
            fallback = functools.partial(stored_credentials, service=self.paths.keyring_service)
        # The runner calls this on its own threads: it reads a plain holder, not this QObject.
        return sandbox_credentials(self._running.get, fallback)

    # ------------------------------------------------------------ start, stop

    def start(self) -> None:
        """Start the server (if it is not running) and set its account up.

        `started(port)` when it listens; `error(text)` when it cannot start,
        or when it runs but its account could not be set up.
        """
        self._run(self._control, self._start_blocking, self._after_start)

    def start_trial(self, on_done: Done) -> None:
        """Start the sandbox if needed and prepare a first message to it.

        ``on_done(SandboxTrial | None, error)`` on the GUI thread: the account
        to send with and a Draft addressed to a sample recipient, ready for a
        composer. SandboxError (or AccountStoreError) says why not.
        """

        def work() -> tuple[_Started, SandboxTrial | None]:
            started = self._start_blocking()
            if started.account is None:
                return started, None
            trial = SandboxTrial(started.account, trial_draft(started.account), started.server.port)
            return started, trial

        def finished(
            result: tuple[_Started, SandboxTrial | None] | None, error: BaseException | None
        ) -> None:
            if result is None:
                on_done(None, error)
                return
            started, trial = result
            self._after_start(started, None)  # it runs, whatever became of the account
            if trial is None:
                note = started.note or "The sandbox account could not be set up."
                on_done(None, SandboxError(note))
            else:
                on_done(trial, None)

        self._run(self._control, work, finished)

    def stop(self) -> None:
        """Stop the server (connections dropped, captured mail kept); `stopped` when done."""
        self._run(self._control, self._stop_blocking, self._after_stop)

    @Slot()
    def shutdown(self, timeout: float = 10.0) -> None:
        """Stop everything now, waiting (bounded) for the worker threads: meant for quit."""
        if self._closed:
            return
        self._closed = True
        self._changes.stop()
        for pool in (self._control, self._reader):
            pool.clear()
            pool.waitForDone(int(timeout * 1000))
        with contextlib.suppress(SandboxError):
            self._stop_blocking()
        # The folder watcher holds an inotify handle watched by a socket notifier:
        # released here, on the GUI thread, not whenever (and on whichever thread)
        # the garbage collector gets to it.
        shiboken6.delete(self._watcher)

    def _start_blocking(self) -> _Started:
        running = self._running.get()
        if running is not None:
            account, note = self._set_up_account(running)
            return _Started(running, account, note, new=False)
        try:
            ensure_private_dir(self.paths.data_dir)
        except OSError as error:
            raise SandboxError(
                f"The sandbox cannot keep its files in {self.paths.data_dir}: "
                f"{error.strerror or error}. Check that the folder is writable."
            ) from None
        port = self._last_port()
        password = stored_password(self.paths, backend=self._backend)
        server = self._make_server(port, password)
        try:
            server.start()
        except SandboxError:
            if port == 0:
                raise
            # Last time's port is taken now: any free one (the account follows).
            server = self._make_server(0, password)
            server.start()
        self._running.set(server)
        account, note = self._set_up_account(server)
        return _Started(server, account, note, new=True)

    def _make_server(self, port: int, password: str | None) -> SandboxServer:
        # aiosmtpd and asyncio load when the sandbox first starts (on the control
        # thread), not with the main window.
        from mailer_gui.sandbox.server import SandboxServer

        return SandboxServer(
            self.maildir,
            self.paths.sandbox_dir,
            port=port,
            size_limit=self.size_limit,
            password=password,
            on_message=lambda _message: self._hop_arrival(),
        )

    def _last_port(self) -> int:
        """The port the sandbox account points at, to keep it when it is free."""
        try:
            account = AccountStore(self.paths.accounts_file).get(SANDBOX_ACCOUNT)
        except (UnknownAccount, AccountStoreError):
            return 0
        if not is_sandbox_account(account) or account.port is None:
            return 0
        return account.port

    def _set_up_account(self, server: SandboxServer) -> tuple[Account | None, str | None]:
        try:
            return ensure_sandbox_account(self.paths, server, backend=self._backend), None
        except SandboxError as error:
            return None, error.message
        except AccountStoreError as error:
            return None, f"The sandbox runs, but its account could not be saved: {error}"

    def _stop_blocking(self) -> None:
        server = self._running.take()
        if server is not None:
            server.stop()

    def _after_start(self, started: _Started | None, error: BaseException | None) -> None:
        if started is None:
            self.error.emit(_describe(error))
            return
        self._account = started.account
        self._watch()
        if started.new:
            self.started.emit(started.server.port)
            self._changes.start()
        if started.note:
            self.error.emit(started.note)

    def _after_stop(self, _result: None, error: BaseException | None) -> None:
        if error is not None:
            self.error.emit(_describe(error))
        self.stopped.emit()

    # ------------------------------------------------------------ captured mail

    def load_messages(self, on_done: Done) -> None:
        """``on_done(list[CapturedMessage] | None, error)``: the captured mail, newest first."""

        def work() -> list[CapturedMessage]:
            messages = self._inbox().messages()
            messages.reverse()
            return messages

        def finished(result: list[CapturedMessage] | None, error: BaseException | None) -> None:
            if error is None:
                self._watch()
            on_done(result, error)

        self._run(self._reader, work, finished)

    def load_message(self, message: CapturedMessage, on_done: Done) -> None:
        """``on_done(CapturedContent | None, error)``: one message taken apart."""
        self._run(self._reader, lambda: read_captured(message.path), on_done)

    def delete(self, message_ids: Iterable[str], on_done: Done | None = None) -> None:
        """Remove captured messages; ``on_done(number removed, error)``."""
        wanted = tuple(message_ids)

        def work() -> int:
            inbox = self._inbox()
            return sum(1 for message_id in wanted if inbox.delete(message_id))

        self._run(self._reader, work, self._changed_then(on_done))

    def clear(self, on_done: Done | None = None) -> None:
        """Remove every captured message; ``on_done(number removed, error)``."""
        self._run(self._reader, lambda: self._inbox().clear(), self._changed_then(on_done))

    def save_attachment(
        self, message: CapturedMessage, index: int, target: Path, on_done: Done
    ) -> None:
        """Write one attachment to `target`; ``on_done(bytes written | None, error)``."""
        self._run(self._reader, lambda: save_attachment(message.path, index, target), on_done)

    def _inbox(self) -> Inbox:
        return Inbox(self.maildir)  # makes the folders the first time

    def _changed_then(self, on_done: Done | None) -> Done:
        def finished(result: Any, error: BaseException | None) -> None:
            self._changes.start()
            if on_done is not None:
                on_done(result, error)
            elif error is not None:
                self.error.emit(_describe(error))

        return finished

    def _hop_arrival(self) -> None:
        """Called on the server's thread for each captured message: only hop."""
        with contextlib.suppress(RuntimeError):  # the controller was deleted at quit
            self._arrived.emit()

    def _watch(self) -> None:
        if self._closed:
            return
        watched = set(self._watcher.directories())
        wanted = [
            str(self.maildir / folder)
            for folder in ("new", "cur")
            if str(self.maildir / folder) not in watched and (self.maildir / folder).is_dir()
        ]
        if wanted:
            self._watcher.addPaths(wanted)

    @Slot(str)
    def _folder_changed(self, _path: str) -> None:
        if not self._closed:
            self._changes.start()

    @Slot()
    def _announce_change(self) -> None:
        if not self._closed:
            self.messagesChanged.emit()

    # ------------------------------------------------------------ threads

    def _run(self, pool: QThreadPool, fn: Callable[[], Any], on_done: Done) -> None:
        if self._closed:
            return

        def task() -> None:
            result: Any = None
            error: BaseException | None = None
            try:
                result = fn()
            except Exception as exc:  # handed to on_done, which tells the person
                error = exc
            with contextlib.suppress(RuntimeError):  # the controller was deleted meanwhile
                self._taskDone.emit(on_done, result, error)

        pool.start(task)

    @Slot(object, object, object)
    def _on_task_done(self, on_done: Done, result: Any, error: BaseException | None) -> None:
        if not self._closed:
            on_done(result, error)


def _describe(error: BaseException | None) -> str:
    if isinstance(error, SandboxError):
        return error.message
    if isinstance(error, OSError):
        return f"The sandbox's mail folder cannot be used: {error.strerror or error}."
    return str(error) if error is not None else ""


# ----------------------------------------------------------------- the message pane


class CapturedMessageBrowser(QTextBrowser):
    """Shows a captured message's HTML: cid: images from the message, nothing from outside.

    Every other resource (http, https, file, a relative name) is refused, as
    a careful mail reader does: loading it would tell a sender the message was
    opened, or read files of this computer.
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setOpenLinks(False)
        self.setOpenExternalLinks(False)
        self._images: dict[str, tuple[str, bytes]] = {}
        self.blocked: set[str] = set()  # what the message asked for and did not get
        self.shown_images: set[str] = set()  # the Content-IDs that were drawn

    def show_content(self, content: CapturedContent | None) -> None:
        self._images = dict(content.inline_images) if content is not None else {}
        self.blocked.clear()
        self.shown_images.clear()
        if content is None:
            self.clear()
        elif content.html is not None:
            self.setHtml(content.html)
        elif content.text is not None:
            self.setHtml(
                '<pre style="white-space: pre-wrap">' + html.escape(content.text) + "</pre>"
            )
        else:
            self.setHtml("<p><i>This message has no text to show.</i></p>")

    def loadResource(self, kind: int, url: QUrl | str) -> Any:
        qurl = url if isinstance(url, QUrl) else QUrl(url)
        if qurl.scheme().lower() == "cid":
            content_id = QUrl.fromPercentEncoding(qurl.path().encode("utf-8"))
            found = self._images.get(content_id)
            if found is not None and kind == QTextDocument.ResourceType.ImageResource.value:
                image = QImage.fromData(found[1])
                if not image.isNull():
                    self.shown_images.add(content_id)
                    return image
            return None
        self.blocked.add(qurl.toString())
        return None


# ----------------------------------------------------------------- the inbox view


_COLUMNS: Final = ("From", "To", "Subject", "Received", "Size")
_RIGHT: Final = Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter


def _fingerprint_text(fingerprint: str) -> str:
    pairs = [fingerprint[i : i + 2].upper() for i in range(0, len(fingerprint), 2)]
    return ":".join(pairs)


class SandboxInboxView(QWidget):
    """ "Sandbox inbox": the captured mail, one message in detail, and the fault switches."""

    def __init__(self, controller: SandboxController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Sandbox inbox")
        self.setAccessibleName("Sandbox inbox")
        self.controller = controller
        self.messages: list[CapturedMessage] = []
        self.content: CapturedContent | None = None
        self._selected: CapturedMessage | None = None
        self._load_serial = 0
        self._loading = False
        self._reload_again = False
        self._notice_is_error = False

        layout = QVBoxLayout(self)

        # -- status and start/stop
        top = QHBoxLayout()
        self.status = QLabel(self)
        self.status.setAccessibleName("Sandbox server status")
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.start_button = QPushButton("St&art server", self)
        self.start_button.setAccessibleName("Start or stop the sandbox server")
        self.start_button.setToolTip("Start or stop the built-in test server (Ctrl+R)")
        self.start_button.setShortcut(QKeySequence("Ctrl+R"))
        top.addWidget(self.status, 1)
        top.addWidget(self.start_button)
        layout.addLayout(top)

        self.notice = QLabel(self)
        self.notice.setAccessibleName("Sandbox message")
        self.notice.setWordWrap(True)
        self.notice.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.notice.hide()
        layout.addWidget(self.notice)

        # -- fault switches
        self.faults_box = QGroupBox("Make the server misbehave", self)
        self.faults_box.setAccessibleName("Fault switches")
        grid = QGridLayout(self.faults_box)
        self.reject_4xx = QCheckBox("Reject the next recipient, &temporarily (450)")
        self.reject_4xx.setAccessibleName("Reject the next recipient with 450")
        self.reject_4xx.setToolTip(
            "The next RCPT TO gets 450 4.2.0; the switch turns itself off after that once."
        )
        self.reject_5xx = QCheckBox("Reject the next recipient, &permanently (550)")
        self.reject_5xx.setAccessibleName("Reject the next recipient with 550")
        self.reject_5xx.setToolTip(
            "The next RCPT TO gets 550 5.1.1; the switch turns itself off after that once."
        )
        self.greylist = QCheckBox("&Greylist (451 on the first try)")
        self.greylist.setAccessibleName("Greylist")
        self.greylist.setToolTip(
            "Each sender and recipient pair is refused with 451 4.7.1 once, then accepted."
        )
        self.drop_data = QCheckBox("&Drop the connection at DATA")
        self.drop_data.setAccessibleName("Drop the connection during DATA")
        self.drop_data.setToolTip("The connection is closed when the message would be sent.")
        self.slow = QCheckBox("S&low replies:")
        self.slow.setAccessibleName("Slow replies")
        self.slow.setToolTip("Wait before every reply, like a busy or distant server.")
        self.slow_seconds = QDoubleSpinBox(self)
        self.slow_seconds.setAccessibleName("Seconds before each reply")
        self.slow_seconds.setRange(0.1, 60.0)
        self.slow_seconds.setSingleStep(0.5)
        self.slow_seconds.setDecimals(1)
        self.slow_seconds.setSuffix(" s")
        self.slow_seconds.setValue(SLOW_REPLY_DEFAULT)
        self.small_size = QCheckBox("Small si&ze limit:")
        self.small_size.setAccessibleName("Small size limit")
        self.small_size.setToolTip("Advertise a small SIZE and refuse bigger messages with 552.")
        self.size_kb = QSpinBox(self)
        self.size_kb.setAccessibleName("Size limit in kilobytes")
        self.size_kb.setRange(1, 100_000)
        self.size_kb.setSuffix(" KB")
        self.size_kb.setValue(SMALL_SIZE_DEFAULT_KB)
        grid.addWidget(self.reject_4xx, 0, 0, 1, 2)
        grid.addWidget(self.reject_5xx, 1, 0, 1, 2)
        grid.addWidget(self.greylist, 2, 0, 1, 2)
        grid.addWidget(self.drop_data, 0, 2, 1, 2)
        grid.addWidget(self.slow, 1, 2)
        grid.addWidget(self.slow_seconds, 1, 3)
        grid.addWidget(self.small_size, 2, 2)
        grid.addWidget(self.size_kb, 2, 3)
        grid.setColumnStretch(1, 1)
        layout.addWidget(self.faults_box)

        # -- the list
        bar = QHBoxLayout()
        self.count_label = QLabel(self)
        self.count_label.setAccessibleName("Number of captured messages")
        self.delete_button = QPushButton("Delete", self)  # Alt+D is the drop switch's
        self.delete_button.setAccessibleName("Delete the selected messages")
        self.delete_button.setToolTip("Delete the selected messages (Delete)")
        self.clear_button = QPushButton("&Clear all", self)
        self.clear_button.setAccessibleName("Delete every captured message")
        self.clear_button.setToolTip("Delete every captured message (Ctrl+Shift+Delete)")
        self.clear_button.setShortcut(QKeySequence("Ctrl+Shift+Delete"))
        bar.addWidget(self.count_label, 1)
        bar.addWidget(self.delete_button)
        bar.addWidget(self.clear_button)

        self.list = QTreeWidget(self)
        self.list.setAccessibleName("Captured messages")
        self.list.setColumnCount(len(_COLUMNS))
        self.list.setHeaderLabels(list(_COLUMNS))
        self.list.setRootIsDecorated(False)
        self.list.setUniformRowHeights(True)
        self.list.setAllColumnsShowFocus(True)
        self.list.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.list.header().setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        self.list.header().setStretchLastSection(False)

        list_pane = QWidget(self)
        list_layout = QVBoxLayout(list_pane)
        list_layout.setContentsMargins(0, 0, 0, 0)
        list_layout.addLayout(bar)
        list_layout.addWidget(self.list, 1)

        # -- the selected message
        self.tabs = QTabWidget(self)
        self.tabs.setAccessibleName("Selected message")
        self.browser = CapturedMessageBrowser(self)
        self.browser.setAccessibleName("Message as shown to the recipient")
        self.headers = QPlainTextEdit(self)
        self.headers.setAccessibleName("Message headers")
        self.source = QPlainTextEdit(self)
        self.source.setAccessibleName("Message source")
        fixed = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)
        for text_view in (self.headers, self.source):
            text_view.setReadOnly(True)
            text_view.setUndoRedoEnabled(False)
            text_view.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
            text_view.setFont(fixed)
        attachments_pane = QWidget(self)
        attachments_layout = QVBoxLayout(attachments_pane)
        self.attachments = QTreeWidget(attachments_pane)
        self.attachments.setAccessibleName("Attachments")
        self.attachments.setColumnCount(3)
        self.attachments.setHeaderLabels(["Name", "Type", "Size"])
        self.attachments.setRootIsDecorated(False)
        self.attachments.header().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.attachments.header().setStretchLastSection(False)
        self.save_button = QPushButton("&Save…", attachments_pane)
        self.save_button.setAccessibleName("Save the selected attachment")
        self.save_button.setToolTip("Save the selected attachment to a file (Ctrl+S)")
        save_row = QHBoxLayout()
        save_row.addStretch(1)
        save_row.addWidget(self.save_button)
        attachments_layout.addWidget(self.attachments, 1)
        attachments_layout.addLayout(save_row)
        self.tabs.addTab(self.browser, "&Message")
        self.tabs.addTab(self.headers, "&Headers")
        self.tabs.addTab(self.source, "So&urce")
        self.tabs.addTab(attachments_pane, "Attachme&nts")

        splitter = QSplitter(Qt.Orientation.Vertical, self)
        splitter.addWidget(list_pane)
        splitter.addWidget(self.tabs)
        splitter.setStretchFactor(1, 2)
        layout.addWidget(splitter, 1)

        # -- wiring
        self.start_button.clicked.connect(self._start_or_stop)
        self.reject_4xx.toggled.connect(lambda on: self._reject_toggled("4xx", on))
        self.reject_5xx.toggled.connect(lambda on: self._reject_toggled("5xx", on))
        for switch in (self.greylist, self.drop_data, self.slow, self.small_size):
            switch.toggled.connect(self._apply_faults)
        self.slow_seconds.valueChanged.connect(self._apply_faults)
        self.size_kb.valueChanged.connect(self._apply_faults)
        self.delete_button.clicked.connect(self.delete_selected)
        self.clear_button.clicked.connect(self.clear_all)
        self.save_button.clicked.connect(self._ask_save)
        self.list.itemSelectionChanged.connect(self._selection_changed)
        self.attachments.itemSelectionChanged.connect(self._update_buttons)
        self.browser.highlighted.connect(self._link_hovered)

        context = Qt.ShortcutContext.WidgetWithChildrenShortcut
        for keys, slot in (
            (QKeySequence.StandardKey.Delete, self.delete_selected),
            (QKeySequence.StandardKey.Refresh, self.reload),
            (QKeySequence.StandardKey.Save, self._ask_save),
        ):
            shortcut = QShortcut(QKeySequence(keys), self, slot)
            shortcut.setContext(context)
        refresh = QShortcut(QKeySequence("F5"), self, self.reload)
        refresh.setContext(context)

        self._one_shot = QTimer(self)
        self._one_shot.setInterval(ONE_SHOT_POLL_MS)
        self._one_shot.timeout.connect(self._check_one_shot)

        controller.started.connect(self._server_started)
        controller.stopped.connect(self._server_stopped)
        controller.messagesChanged.connect(self.reload)
        controller.error.connect(self._controller_error)
        self._show_status()
        self._update_buttons()
        self.reload()

    # ------------------------------------------------------------ server state

    def _show_status(self) -> None:
        server = self.controller.server
        if server is None:
            self.status.setText(
                "The sandbox server is stopped. Start it to send test mail to this computer."
            )
            self.start_button.setText("St&art server")
        else:
            self.status.setText(
                f"Running on {server.host} port {server.port} · STARTTLS · login "
                f"“{SANDBOX_USERNAME}” · certificate SHA-256 "
                f"{_fingerprint_text(server.fingerprint)}"
            )
            self.status.setToolTip(
                "Any program can send here: connect to "
                f"{server.host}:{server.port}, STARTTLS, log in as {SANDBOX_USERNAME}. "
                "Mailer's “sandbox” account is already set up for it."
            )
            self.start_button.setText("St&op server")
        self.faults_box.setEnabled(server is not None)
        self.start_button.setEnabled(True)

    @Slot(int)
    def _server_started(self, _port: int) -> None:
        self._apply_faults()
        self._reject_toggled(None, False)
        self._show_status()

    @Slot()
    def _server_stopped(self) -> None:
        self._one_shot.stop()
        self._show_status()

    @Slot(str)
    def _controller_error(self, text: str) -> None:
        self.show_error(text)
        self._show_status()  # a start that failed leaves the button usable again

    @Slot()
    def _start_or_stop(self) -> None:
        # Greyed out until the server has started or stopped (a second or so):
        # the button says what it is waiting for, so a click then is not lost
        # without a word.
        self.start_button.setEnabled(False)
        self.hide_notice()
        if self.controller.running:
            self.start_button.setText("Stopping…")
            self.controller.stop()
        else:
            self.start_button.setText("Starting…")
            self.controller.start()

    # ------------------------------------------------------------ fault switches

    def _reject_toggled(self, kind: str | None, on: bool) -> None:
        # The two are one switch with three positions: off, 450, 550.
        if on:
            other = self.reject_5xx if kind == "4xx" else self.reject_4xx
            with _signals_blocked(other):
                other.setChecked(False)
        faults = self.controller.faults
        wanted: RcptRejection | None = None
        if self.reject_4xx.isChecked():
            wanted = "4xx"
        elif self.reject_5xx.isChecked():
            wanted = "5xx"
        if faults is not None:
            faults.reject_next_rcpt = wanted
        if wanted is not None and faults is not None:
            self._one_shot.start()
        else:
            self._one_shot.stop()

    @Slot()
    def _check_one_shot(self) -> None:
        """The server turns a one-shot rejection off once used: the boxes follow."""
        faults = self.controller.faults
        if faults is None or faults.reject_next_rcpt is None:
            self._one_shot.stop()
            for box in (self.reject_4xx, self.reject_5xx):
                with _signals_blocked(box):
                    box.setChecked(False)

    @Slot()
    def _apply_faults(self) -> None:
        faults = self.controller.faults
        if faults is None:
            return
        faults.greylist = self.greylist.isChecked()
        faults.drop_during_data = self.drop_data.isChecked()
        faults.slow_replies = self.slow_seconds.value() if self.slow.isChecked() else 0.0
        faults.size_limit = (
            self.size_kb.value() * 1024
            if self.small_size.isChecked()
            else self.controller.size_limit
        )

    # ------------------------------------------------------------ the list

    @Slot()
    def reload(self) -> None:
        """Read the captured mail again (off the GUI thread)."""
        if self._loading:
            self._reload_again = True
            return
        self._loading = True
        self.controller.load_messages(self._loaded)

    def _loaded(self, messages: list[CapturedMessage] | None, error: BaseException | None) -> None:
        self._loading = False
        if error is not None:
            self.show_error(_describe(error))
        elif messages is not None:
            self._fill(messages)
        if self._reload_again:
            self._reload_again = False
            self.reload()

    def _fill(self, messages: list[CapturedMessage]) -> None:
        selected = {message.id for message in self.selected_messages()}
        current = self._selected.id if self._selected is not None else None
        self.messages = messages
        with _signals_blocked(self.list):
            self.list.clear()
            items = []
            for message in messages:
                when = message.date.astimezone().strftime("%Y-%m-%d %H:%M:%S")
                item = QTreeWidgetItem(
                    [
                        message.envelope_from or "<>",
                        ", ".join(message.envelope_to),
                        message.subject or "(no subject)",
                        when,
                        human_size(message.size),
                    ]
                )
                item.setData(0, Qt.ItemDataRole.UserRole, message.id)
                item.setTextAlignment(
                    4, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
                )
                item.setToolTip(2, message.subject)
                items.append(item)
            self.list.addTopLevelItems(items)
            for item in items:
                if item.data(0, Qt.ItemDataRole.UserRole) in selected:
                    item.setSelected(True)
                if item.data(0, Qt.ItemDataRole.UserRole) == current:
                    self.list.setCurrentItem(item, 0, QItemSelectionModel.SelectionFlag.NoUpdate)
        count = len(messages)
        self.count_label.setText(
            "No captured mail yet."
            if count == 0
            else f"{count} captured message{'s' * (count != 1)}"
        )
        self._selection_changed()

    def selected_messages(self) -> list[CapturedMessage]:
        ids = {item.data(0, Qt.ItemDataRole.UserRole) for item in self.list.selectedItems()}
        return [message for message in self.messages if message.id in ids]

    def select_message(self, message_id: str) -> None:
        """Select (only) the message with this id, as a click would."""
        for index in range(self.list.topLevelItemCount()):
            item = self.list.topLevelItem(index)
            if item is not None and item.data(0, Qt.ItemDataRole.UserRole) == message_id:
                self.list.setCurrentItem(item)
                return

    @Slot()
    def _selection_changed(self) -> None:
        chosen = self.selected_messages()
        message = chosen[0] if len(chosen) == 1 else None
        self._update_buttons()
        if message == self._selected:
            return
        self._selected = message
        self._load_serial += 1
        if message is None:
            self._show_content(None)
            return
        serial = self._load_serial

        def loaded(content: CapturedContent | None, error: BaseException | None) -> None:
            if serial != self._load_serial:
                return  # another message was chosen meanwhile
            if error is not None:
                self.show_error(_describe(error))
                self.reload()
            self._show_content(content)

        self.controller.load_message(message, loaded)

    def _show_content(self, content: CapturedContent | None) -> None:
        self.content = content
        self.browser.show_content(content)
        if content is None:
            self.headers.clear()
            self.source.clear()
        else:
            self.headers.setPlainText(content.headers)
            source = content.source
            if content.source_cut:
                source += (
                    f"\n\n[… {human_size(content.source_size)} in all; the whole message is "
                    f"in {content.path}]"
                )
            self.source.setPlainText(source)
        self.attachments.clear()
        for attachment in content.attachments if content is not None else ():
            item = QTreeWidgetItem(
                [attachment.filename, attachment.content_type, human_size(attachment.size)]
            )
            item.setData(0, Qt.ItemDataRole.UserRole, attachment.index)
            item.setTextAlignment(2, _RIGHT)
            self.attachments.addTopLevelItem(item)
        first = self.attachments.topLevelItem(0)
        if first is not None:
            self.attachments.setCurrentItem(first)
        number = self.attachments.topLevelItemCount()
        self.tabs.setTabText(3, f"Attachme&nts ({number})" if number else "Attachme&nts")
        self._update_buttons()

    @Slot()
    def _update_buttons(self) -> None:
        self.delete_button.setEnabled(bool(self.list.selectedItems()))
        self.clear_button.setEnabled(self.list.topLevelItemCount() > 0)
        self.save_button.setEnabled(
            self.content is not None and bool(self.attachments.selectedItems())
        )

    # ------------------------------------------------------------ actions

    @Slot()
    def delete_selected(self) -> None:
        chosen = self.selected_messages()
        if not chosen:
            return
        self.hide_notice()
        self.controller.delete([message.id for message in chosen], self._deleted)

    @Slot()
    def clear_all(self) -> None:
        if not self.messages:
            return
        self.hide_notice()
        self.controller.clear(self._deleted)

    def _deleted(self, _removed: int | None, error: BaseException | None) -> None:
        if error is not None:
            self.show_error(_describe(error))

    @Slot()
    def _ask_save(self) -> None:
        items = self.attachments.selectedItems()
        if self.content is None or not items:
            return
        name = items[0].text(0)
        path, _ = QFileDialog.getSaveFileName(
            self, "Save attachment", str(Path.home() / name), "All files (*)"
        )
        if path:
            self.save_attachment_to(Path(path))

    def save_attachment_to(self, target: Path, on_done: Done | None = None) -> None:
        """Save the selected attachment of the shown message to `target` (off the GUI thread)."""
        items = self.attachments.selectedItems()
        message = self._selected
        if message is None or not items:
            return
        index = int(items[0].data(0, Qt.ItemDataRole.UserRole))
        name = items[0].text(0)

        def saved(size: int | None, error: BaseException | None) -> None:
            if error is not None:
                self.show_error(_describe(error))
            else:
                self.show_info(f"Saved {name} ({human_size(size or 0)}) to {target}.")
            if on_done is not None:
                on_done(size, error)

        self.controller.save_attachment(message, index, target, saved)

    @Slot(QUrl)
    def _link_hovered(self, url: QUrl) -> None:
        self.browser.setToolTip(url.toString() if not url.isEmpty() else "")

    # ------------------------------------------------------------ messages to the person

    @Slot(str)
    def show_error(self, text: str) -> None:
        self._show_notice(text, error=True)

    def show_info(self, text: str) -> None:
        self._show_notice(text, error=False)

    def hide_notice(self) -> None:
        self.notice.clear()
        self.notice.hide()

    def _show_notice(self, text: str, *, error: bool) -> None:
        self._notice_is_error = error
        self.notice.setText(text)
        self._style_notice()
        self.notice.setVisible(bool(text))

    def _style_notice(self) -> None:
        palette = self.palette()
        colour = palette.color(QPalette.ColorRole.WindowText)
        if self._notice_is_error:
            dark = palette.color(QPalette.ColorRole.Window).lightness() < 128
            colour = QColor("#ff7b72") if dark else QColor("#c62828")
        notice_palette = self.notice.palette()
        notice_palette.setColor(QPalette.ColorRole.WindowText, colour)
        self.notice.setPalette(notice_palette)

    def changeEvent(self, event: QEvent) -> None:
        super().changeEvent(event)
        if event.type() == QEvent.Type.PaletteChange:
            self._style_notice()


@contextlib.contextmanager
def _signals_blocked(widget: QObject) -> Iterator[None]:
    previous = widget.blockSignals(True)
    try:
        yield
    finally:
        widget.blockSignals(previous)


__all__ = [
    "TRIAL_RECIPIENT",
    "TRIAL_SUBJECT",
    "CapturedMessageBrowser",
    "SandboxController",
    "SandboxInboxView",
    "SandboxTrial",
    "trial_draft",
]
