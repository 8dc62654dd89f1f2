"""The main window: folders with counts, the messages, the detail pane and the session log.

Everything that touches the outbox goes through `OutboxBridge`, which runs the
delivery loop and every store query off the GUI thread and hands results back
as signals. Composers are windows of their own; the window keeps track of them
so that quitting asks about each unsaved draft once.

A first start with no account shows the welcome page (set up an account, or
try the built-in sandbox). Window size, splitters and the dock layout are
remembered in the config folder.

Start-up comes in two steps, so that the window is on screen before the
outbox, the SMTP engine and the other windows have loaded: the constructor
builds only what the first paint shows (menus, toolbar, folders, the table's
header, the log dock, the status bar) from modules that load quickly. Right
after that first paint the outbox database is opened (created, or migrated,
which may wait for another Mailer's write) on a worker thread; once it is
open, `finish_startup()` loads the rest (preferences, the runner, the
sandbox, the detail pane, the accounts) and emits `ready`. The composer,
wizard, settings and sandbox inbox are imported when first opened.
tests/bench/bench_startup.py measures it.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import shiboken6
from PySide6.QtCore import QByteArray, QEvent, QObject, QSettings, QSize, QTimer, Signal
from PySide6.QtGui import (
    QAction,
    QIcon,
    QStandardItemModel,
)
from PySide6.QtWidgets import (
    QApplication,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMainWindow,
    QSplitter,
    QStackedWidget,
    QTableView,
    QVBoxLayout,
    QWidget,
)

# Only what the first paint needs is imported here; the outbox, the SMTP engine,
# Markdown, the keyring and the other windows load after it (see finish_startup).
# The `Qt` namespace is imported where it is used, after the first paint:
# PySide6 builds all of its ~90 enum types at once on first use (20-35 ms here).
# That includes overload resolution: a call with an overload taking a Qt enum
# builds them while it tries that overload. So before the paint, enum-valued
# properties are set by name (setProperty), QSplitter gets its parent by
# keyword, and actions get their keys after the paint (_apply_shortcuts).
from mailer_gui import __version__
from mailer_gui.paths import AppPaths, ensure_private_dir, resolve_paths
from mailer_gui.ui.icons import action_icon, app_icon
from mailer_gui.ui.log_dock import SessionLogDock

if TYPE_CHECKING:
    from pathlib import Path

    from PySide6.QtGui import QCloseEvent, QPaintEvent, QResizeEvent
    from PySide6.QtWidgets import QAbstractButton, QMessageBox, QSystemTrayIcon

    from mailer_gui.accounts.model import Account
    from mailer_gui.message.draft import Draft
    from mailer_gui.message.drafts import DraftListing, DraftStore, StoredDraft
    from mailer_gui.outbox.store import MessageRow, OutboxStore, State
    from mailer_gui.preferences import Preferences
    from mailer_gui.ui.bridge import OutboxBridge
    from mailer_gui.ui.composer import ComposerWindow, SizeLimits
    from mailer_gui.ui.detail_pane import DetailPane
    from mailer_gui.ui.outbox_model import Folder, OutboxTableModel, PreparedRows
    from mailer_gui.ui.sandbox_view import SandboxController, SandboxTrial
    from mailer_gui.ui.settings import SettingsDialog
    from mailer_gui.ui.single_instance import InstanceServer
    from mailer_gui.ui.status_widgets import Connectivity, SendProgress, UndoCountdown
    from mailer_gui.ui.welcome import WelcomePage

OUTBOX, SENT, FAILED, DRAFTS, SANDBOX = "outbox", "sent", "failed", "drafts", "sandbox"
#: The folder list's rows, top to bottom.
_FOLDERS = (OUTBOX, SENT, FAILED, DRAFTS, SANDBOX)
#: The folders shown as a table of messages (the others have pages of their own).
_TABLE_FOLDERS = (OUTBOX, SENT, FAILED)
_NAMES = {
    OUTBOX: "Outbox",
    SENT: "Sent",
    FAILED: "Failed",
    DRAFTS: "Drafts",
    SANDBOX: "Sandbox inbox",
}
#: How long a passing line stays in the status bar (show_status(passing=True)).
PASSING_STATUS_MS = 12_000
# How often the window looks whether another Mailer changed the outbox.
OUTBOX_LOOK_MS = 2_000
# First deferrals that come within this long of each other are told in one
# notification ("3 messages deferred"), not one each (a DNS server or a
# network that is down defers a whole run at once).
DEFERRALS_GATHERED_MS = 1_500
# Uncertain messages seen in the counts are told this long after, unless a
# state change told of them meanwhile.
UNCERTAIN_TOLD_MS = 1_000
#: After this many milliseconds without the outbox open, the status line says why.
SLOW_OUTBOX_MS = 1000
SLOW_OUTBOX = (
    "Opening the outbox... It is taking a while: another Mailer (the command line, "
    "say) may be writing to it."
)

#: The table's header as the first paint shows it, before the outbox model is
#: loaded; the same titles as mailer_gui.ui.outbox_model.COLUMNS (a test checks).
FIRST_PAINT_COLUMNS = (
    "Subject",
    "Recipients",
    "Account",
    "State",
    "Attempts",
    "Next attempt",
    "Last server reply",
)
#: When the window is shown but no paint comes (minimised, on a hidden
#: workspace), start-up finishes anyway after this many milliseconds.
PAINT_WAIT_MS = 1000


def _folder(key: str) -> Folder:
    """The messages a table folder shows (``key`` in _TABLE_FOLDERS)."""
    from mailer_gui.ui.outbox_model import Folder

    return Folder[key.upper()]


def _stored_from_draft(draft: Draft, account: str) -> StoredDraft:
    """A Draft (edit as new, undo send, the sandbox's first message) as a composer opens it."""
    from mailer_gui.message.drafts import StoredDraft

    def text(addresses: tuple[Any, ...]) -> str:
        return ", ".join(str(a) for a in addresses)

    return StoredDraft(
        account=account,
        identity=draft.sender.addr_spec,
        to=text(draft.to),
        cc=text(draft.cc),
        bcc=text(draft.bcc),
        subject=draft.subject,
        body=draft.body,
        body_format=draft.body_format,
        attachments=draft.attachments,
        inline_images=draft.inline_images,
        priority=draft.priority,
        in_reply_to=draft.in_reply_to,
        references=draft.references,
    )


class MainWindow(QMainWindow):
    """Folders, messages, detail pane and session log; see the module docstring on start-up.

    Until `is_ready()` (the `ready` signal), the attributes made by
    `finish_startup()` do not exist yet: `bridge` (unless one was given),
    `sandbox`, `detail`, `model`, `preferences`, `drafts`, `connectivity`,
    and the status bar's `send_progress`, `countdown` and `network_label`
    (hidden or empty until they have something to show).
    Actions and requests that need them finish start-up first.
    """

    #: start-up is complete: the outbox runs and every part of the window exists
    ready = Signal()
    # The outbox as opened by the start-up thread: (store, None) or (None, error).
    _outboxOpened = Signal(object, object)

    # Made by finish_startup(), right after the first paint.
    bridge: OutboxBridge
    sandbox: SandboxController
    detail: DetailPane
    model: OutboxTableModel
    preferences: Preferences
    drafts: DraftStore
    connectivity: Connectivity
    send_progress: SendProgress
    countdown: UndoCountdown
    network_label: QLabel

    def __init__(
        self,
        paths: AppPaths,
        bridge: OutboxBridge | None = None,
        *,
        tray: bool = True,
        claim: Callable[[], bool] | None = None,
    ) -> None:
        """``claim()`` runs as start-up finishes, before the outbox is opened
        (run_gui: take the single-instance name). When it returns False, another
        Mailer owns this data folder: the window goes away without loading more.
        """
        super().__init__()
        self.paths = paths
        self.setWindowTitle("Mailer")
        self.setObjectName("mainWindow")
        self.resize(1100, 720)
        self._given_bridge = bridge
        if bridge is not None:
            self.bridge = bridge
        self._want_tray = tray
        self._claim = claim
        self.tray: QSystemTrayIcon | None = None
        self._started_at = time.time()  # files changed since may belong to this run
        self._started = False  # finish_startup() has begun
        self._opening: threading.Thread | None = None  # opens the outbox after the paint
        self._ready = False  # ... and is done
        self._closed = False
        self._when_ready: list[Callable[[], None]] = []
        self._preference_warning: str | None = None
        self.settings_dialog: SettingsDialog | None = None
        self.folder_key = OUTBOX
        self.accounts: list[Account] = []
        self.composers: list[ComposerWindow] = []
        self._quit_after_composers = False
        # Quitting with a message on its way asks first (quit_question), unless
        # the person answered already or the desktop session is ending.
        self._quit_confirmed = False
        self.quit_question: QMessageBox | None = None
        self._quit_timer = QTimer(self)
        self._quit_timer.setInterval(200)
        self._quit_timer.timeout.connect(self._quit_if_sent)
        # "Send now and quit": the messages of the undo window Mailer waits for.
        self._quit_waiting_for: set[int] = set()
        self._undoing: set[int] = set()
        self._sent_drafts: dict[int, StoredDraft] = {}  # in their undo window
        self._opening_drafts: set[str] = set()
        self._reloading = False
        self._reload_again = False
        self._refilling = False  # the table's rows are being replaced (see _reload)
        self._current_leaving = False  # the chosen row is leaving (see _rows_leaving)
        self.password_prompts: dict[str, QWidget] = {}
        # Accounts whose prompt the person closed with "Not now": not asked
        # again while that pause lasts, unless they press Send now or Send
        # queued now. A pause that ends and comes again asks again.
        self._declined: set[str] = set()
        self._size_limits: SizeLimits | None = None
        self._known_addresses: set[str] = set()
        self.wizard: QWidget | None = None
        self._sandbox_started = False
        self.notifications: list[tuple[str, str]] = []  # what was announced, newest last
        self._subjects: dict[int, str] = {}
        # The message the status line speaks of ("... will be sent at ..."):
        # the line goes once that message moves on.
        self._status_about: int | None = None
        # Uncertain messages already told of: more (after a restart that
        # recovered some, or another Mailer's) are told as the counts show them.
        self._uncertain_told = 0
        self._uncertain_seen = 0
        self._deferred_before: set[int] = set()
        # First deferrals waiting to be told together: (subject, " at 14:05", reason).
        self._deferrals: list[tuple[int, str, str, str]] = []  # message, subject, at, detail

        self._build_actions()
        self._build_folders()
        self._build_pages()
        self._build_status()
        self._settings = QSettings(
            str(paths.config_dir / "window.ini"), QSettings.Format.IniFormat, self
        )
        self._restore_layout()
        self._build_log()
        if not paths.accounts_file.exists():
            # A first start: the welcome is what the first paint shows. Whether
            # an existing file holds accounts is read after the paint.
            self._show_welcome()

        # Start-up finishes right after the first paint (paintEvent); a window
        # that is not shown has nothing to paint and finishes as soon as events run.
        self._startup_timer = QTimer(self)
        self._startup_timer.setSingleShot(True)
        self._startup_timer.timeout.connect(self._startup_tick)
        self._waiting_for_paint = False
        self._startup_timer.start(0)

    # ------------------------------------------------------------- start-up

    def is_ready(self) -> bool:
        """True once `finish_startup()` is done (the `ready` signal was emitted)."""
        return self._ready

    def when_ready(self, fn: Callable[[], None]) -> None:
        """Call ``fn()`` now if start-up is done, else right after it (not at all if closed)."""
        if self._ready:
            fn()
        else:
            self._when_ready.append(fn)

    def _startup_tick(self) -> None:
        if self._started or self._closed:
            return
        if self.isVisible() and not self._waiting_for_paint:
            # Shown: the first paint comes first; this is only the fallback.
            self._waiting_for_paint = True
            self._startup_timer.start(PAINT_WAIT_MS)
            return
        self._open_outbox()

    def paintEvent(self, event: QPaintEvent) -> None:
        super().paintEvent(event)
        if not self._started and not self._closed and self._opening is None:
            # The first frame is on its way to the screen; finish once control is back.
            self._waiting_for_paint = True
            self._startup_timer.start(0)

    def _put_off_while_opening(self, fn: Callable[[], Any]) -> bool:
        """While the outbox is being opened, have ``fn`` run once start-up finishes.

        What the person clicks while the outbox opens (which can wait for
        another Mailer's write) waits for it, instead of opening it again on
        the GUI thread. True when ``fn`` was put off; False: the caller goes on.
        """
        if self._opening is not None and not self._started:
            self.when_ready(fn)
            return True
        return False

    def _require_ready(self) -> None:
        # Something needs the whole window before the first paint came (a
        # shortcut pressed early, a test): finish start-up now.
        if not self._started:
            self.finish_startup()

    def _open_outbox(self) -> None:
        """After the first paint: open the outbox off the GUI thread, then finish start-up.

        Opening creates the database, or migrates one an older Mailer wrote,
        and a migration waits while another Mailer (the command line) writes
        to it: the window stays responsive meanwhile. Runs once. The thread is
        a daemon: a window closed meanwhile lets Mailer quit without waiting
        for SQLite's busy timeout.
        """
        if self._started or self._opening is not None:
            return
        if self._given_bridge is not None:
            self.finish_startup()
            return
        if not self._take_claim():
            return
        self._startup_timer.stop()  # later paints need not come back here
        from mailer_gui.outbox.store import OutboxStore

        paths = self.paths

        def open_outbox() -> None:
            store: OutboxStore | None = None
            error: BaseException | None = None
            try:
                store = OutboxStore(paths.database, paths.spool_dir)
                store.close()  # this thread's connection; each thread opens its own
            except Exception as exc:  # reported by finish_startup
                error = exc
            with contextlib.suppress(RuntimeError):  # the window is gone
                self._outboxOpened.emit(store, error)

        self._outboxOpened.connect(self._outbox_opened)  # queued: emitted by the thread
        self._opening = threading.Thread(target=open_outbox, name="mailer-outbox-open", daemon=True)
        self._opening.start()
        QTimer.singleShot(SLOW_OUTBOX_MS, self, self._outbox_slow)

    def _outbox_slow(self) -> None:
        if not self._started and not self._closed:
            self.show_status(SLOW_OUTBOX)

    def _outbox_opened(self, store: OutboxStore | None, error: BaseException | None) -> None:
        if self.status.text() == SLOW_OUTBOX:
            self.show_status("")
        if self._started or self._closed:
            return  # finished without it (an early action), or closed
        self._finish_startup((store, error))

    def _take_claim(self) -> bool:
        """run_gui's claim on the data folder, taken once before the outbox opens.

        False when another Mailer owns the folder: this window goes away
        without loading more, and never becomes ready.
        """
        claim, self._claim = self._claim, None
        if claim is None or claim():
            return True
        self._started = True
        self._closed = True
        self._startup_timer.stop()
        self._when_ready.clear()
        for action in self.actions():
            action.setEnabled(False)
        self.hide()
        return False

    def finish_startup(self) -> None:
        """Load what the first paint did without: the outbox, the sandbox, the accounts.

        Runs on its own once the outbox, opened off the GUI thread after the
        first paint, is open; call it to have the whole window at once (the
        outbox is then opened here). Does nothing the second time.
        """
        self._finish_startup(None)

    def _finish_startup(
        self, opened: tuple[OutboxStore | None, BaseException | None] | None
    ) -> None:
        """`finish_startup`, with the outbox the start-up thread opened
        (store, None), or the error that stopped it (None, error)."""
        if self._started:
            return
        if not self._take_claim():
            return
        self._started = True
        self._startup_timer.stop()
        # What the first paint showed empty, or did not show at all.
        self._apply_shortcuts()
        self.log.finish()
        self._build_send_status()

        from mailer_gui.message.drafts import DraftStore
        from mailer_gui.preferences import load_preferences
        from mailer_gui.ui.bridge import OutboxBridge
        from mailer_gui.ui.sandbox_view import SandboxController

        paths = self.paths
        self.preferences = load_preferences(paths.preferences_file, warn=self._preference_warned)
        # The built-in test server; its account logs in with the password the
        # running server holds, keyring or not.
        self.sandbox = SandboxController(paths, parent=self)
        if self._given_bridge is None:
            from mailer_gui.outbox.store import OutboxError

            store, error = opened or (None, None)
            try:
                if error is not None:
                    raise error
                self.bridge = OutboxBridge.for_paths(
                    paths,
                    parent=self,
                    credentials=self.sandbox.credentials_lookup(),
                    store=store,
                )
            except (OutboxError, OSError) as exc:
                self._outbox_unusable(str(exc))
                return
        self.sandbox.error.connect(self.show_status)
        # Its account may wait, paused for a password it now has, or deferred
        # because it was not running: either goes now.
        self.sandbox.started.connect(lambda _port: self._sandbox_running())
        self.drafts = DraftStore.for_paths(paths)

        self._build_detail()
        self._show_table(self.folder_key if self.folder_key in _TABLE_FOLDERS else OUTBOX)
        # Loading the network backend can take a while: not before the first paint.
        from mailer_gui.ui.status_widgets import Connectivity

        self.connectivity = Connectivity(self.network_label, self)
        self.connectivity.changed.connect(self._online_changed)
        # The application icon (every window's) after the paint: the window system
        # is given every size of it, each drawn from the SVG. Before the tray's,
        # which is made from it.
        app = QApplication.instance()
        if isinstance(app, QApplication) and app.windowIcon().isNull():
            app.setWindowIcon(QIcon.fromTheme("mailer-gui", app_icon()))
        self.tray = self._build_tray() if self._want_tray else None

        self.bridge.stateChanged.connect(self._state_changed)
        self.bridge.transcriptLine.connect(self.log.append)
        self.bridge.countsChanged.connect(self._show_counts)
        self.bridge.progress.connect(self.send_progress.update_progress)
        self.bridge.actionFailed.connect(lambda _id, text: self.show_status(text))
        self.bridge.trouble.connect(self.show_status)

        self._load_accounts()
        self.apply_preferences(self.preferences)
        if self._preference_warning:
            self.show_status(self._preference_warning)
        if self._settings.value("sendingPaused", False, type=bool):
            # Paused when Mailer last quit: it stays so, from before the first send.
            self.pause_action.blockSignals(True)
            self.pause_action.setChecked(True)
            self.pause_action.blockSignals(False)
            self._set_paused(True)
            self.show_status("Sending is paused (as when Mailer last quit): messages wait.")
        self._reload()
        self.bridge.refresh_counts()
        self.bridge.start()
        self._prune_transcripts()
        self._prune_extracted()
        self._paused_timer = QTimer(self)
        self._paused_timer.setSingleShot(True)
        self._paused_timer.setInterval(300)  # changes arriving together share one look
        self._paused_timer.timeout.connect(self._ask_for_passwords)
        self._paused_timer.start()
        self._watch_accounts_file()
        self._watch_outbox()
        self._build_draft_actions()
        self.reload_drafts()  # their count beside the folder's name from the start

        self._ready = True
        self.ready.emit()
        waiting, self._when_ready = self._when_ready, []
        for fn in waiting:
            fn()

    def _outbox_unusable(self, reason: str) -> None:
        """The outbox database cannot be opened: say so where the messages would be.

        Nothing is deleted or rewritten to "fix" it; the person quits, and moves
        or repairs the file the message names.
        """
        text = (
            f"Mailer cannot open its outbox: {reason}\n\nNothing was changed. Quit Mailer, "
            "move or repair that file (a copy from a backup, or a newer Mailer if it "
            "came from one), and start Mailer again."
        )
        from PySide6.QtCore import Qt

        notice = QLabel(text, self)
        notice.setWordWrap(True)
        notice.setAlignment(Qt.AlignmentFlag.AlignCenter)
        notice.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        notice.setAccessibleName("Outbox problem")
        self.pages.addWidget(notice)
        self.pages.setCurrentWidget(notice)
        for action in self.actions():
            if action is not self.quit_action:
                action.setEnabled(False)
        self.folders.setEnabled(False)
        self.show_status(f"The outbox could not be opened: {reason}")

    @property
    def size_limits(self) -> SizeLimits:
        """Each server's SIZE, asked once per run and shared by the composers."""
        if self._size_limits is None:
            from mailer_gui.ui.composer import SizeLimits

            self._size_limits = SizeLimits(self)
        return self._size_limits

    # ------------------------------------------------------------- building

    def _action(
        self,
        text: str,
        slot: Callable[[], Any],
        shortcut: str | None = None,
        tip: str = "",
    ) -> QAction:
        action = QAction(text, self)
        if shortcut is not None:
            self._shortcuts.append((action, shortcut))
        if tip:
            action.setToolTip(tip)
            action.setStatusTip(tip)
        action.triggered.connect(lambda _checked=False: self._put_off_while_opening(slot) or slot())
        self.addAction(action)
        return action

    def _apply_shortcuts(self) -> None:
        """Give the actions their keys (after the first paint: QKeySequence and its
        enums load here). ``"standard:Name"`` is the platform's key for
        QKeySequence.StandardKey.Name. Not setShortcut(): its overloads take Qt
        enums (see the imports)."""
        from PySide6.QtGui import QKeySequence

        for action, shortcut in self._shortcuts:
            if shortcut.startswith("standard:"):
                standard = getattr(QKeySequence.StandardKey, shortcut.removeprefix("standard:"))
                action.setShortcuts([QKeySequence(standard)])
            else:
                action.setShortcuts([QKeySequence(shortcut)])
        self._shortcuts.clear()
        if self.settings_action.shortcut().isEmpty():  # no standard key on this platform
            self.settings_action.setShortcuts([QKeySequence("Ctrl+,")])

    def _build_actions(self) -> None:
        self._shortcuts: list[tuple[QAction, str]] = []  # set by _apply_shortcuts()
        self.new_action = self._action(
            "&New message", self.open_composer, "standard:New",
            "Write a new message (Ctrl+N)",
        )  # fmt: skip
        self.send_now_action = self._action(
            "Send &queued now", self.send_queued_now, "F9",
            "Send what waits in the outbox now, deferred messages too (F9); "
            "messages sent later keep their time",
        )  # fmt: skip
        self.pause_action = QAction("&Pause sending", self)
        self.pause_action.setCheckable(True)
        self._shortcuts.append((self.pause_action, "Ctrl+Shift+P"))
        self.pause_action.setToolTip("Start no new send until sending is resumed (Ctrl+Shift+P)")
        self.pause_action.toggled.connect(self._pause_toggled)
        self.addAction(self.pause_action)
        self.settings_action = self._action(
            "&Settings…", self.open_settings, "standard:Preferences",
            "Accounts, sending, composer and privacy settings",
        )  # fmt: skip
        self.add_account_action = self._action(
            "&Add account…", self.open_wizard, None, "Set up an email account"
        )
        self.sandbox_action = self._action(
            "Try the &sandbox", self.start_sandbox_trial, None,
            "Start the built-in test server and write a first message to it",
        )  # fmt: skip
        self.quit_action = self._action("&Quit", self.close, "standard:Quit")
        self.undo_action = self._action(
            "&Undo send", self._undo_latest, "standard:Undo",
            "Stop the message that is counting down to be sent",
        )  # fmt: skip

        file_menu = self.menuBar().addMenu("&File")
        file_menu.addAction(self.new_action)
        file_menu.addSeparator()
        file_menu.addAction(self.quit_action)
        outbox_menu = self.menuBar().addMenu("&Outbox")
        for action in (self.send_now_action, self.pause_action, self.undo_action):
            outbox_menu.addAction(action)
        self.view_menu = self.menuBar().addMenu("&View")
        accounts_menu = self.menuBar().addMenu("&Accounts")
        for action in (self.add_account_action, self.sandbox_action, self.settings_action):
            accounts_menu.addAction(action)
        help_menu = self.menuBar().addMenu("&Help")
        help_menu.addAction(self._action("&About Mailer", self._about))

        toolbar = self.addToolBar("Main toolbar")
        toolbar.setObjectName("mainToolbar")
        toolbar.setAccessibleName("Main toolbar")
        toolbar.setProperty("toolButtonStyle", "ToolButtonTextBesideIcon")
        for action in (self.new_action, self.send_now_action, self.pause_action):
            toolbar.addAction(action)
        toolbar.addSeparator()
        toolbar.addAction(self.settings_action)
        for action, icon in (
            (self.new_action, "message-new"),
            (self.send_now_action, "send"),
            (self.pause_action, "pause"),
            (self.settings_action, "settings"),
            (self.add_account_action, "message-new"),
            (self.sandbox_action, "sandbox"),
        ):
            action.setIcon(action_icon(icon))

    def _build_folders(self) -> None:
        self.folders = QListWidget(self)
        self.folders.setAccessibleName("Folders")
        self.folders.addItems([_NAMES[key] for key in _FOLDERS])
        self.folders.setRowHidden(_FOLDERS.index(SANDBOX), True)  # until the sandbox is used
        self.folders.setCurrentRow(0)
        self.folders.currentItemChanged.connect(self._folder_chosen)

    def _build_pages(self) -> None:
        # The first paint shows the header only; finish_startup() puts the
        # folder's model in (its module needs the outbox store).
        header_model = QStandardItemModel(0, len(FIRST_PAINT_COLUMNS), self)
        header_model.setHorizontalHeaderLabels(list(FIRST_PAINT_COLUMNS))
        self.table = QTableView(self)
        self.table.setAccessibleName("Messages")
        self.table.setModel(header_model)
        self.table.setSortingEnabled(True)
        self.table.setSelectionBehavior(QTableView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QTableView.SelectionMode.SingleSelection)
        self.table.verticalHeader().hide()
        self.table.setWordWrap(False)
        header = self.table.horizontalHeader()
        header.setStretchLastSection(True)
        # Subject, recipients, account, state, attempts, next attempt: the
        # server's reply takes what is left. Together they fit the table of
        # the window's first size (1100 wide, beside the folders and the
        # details), so that every column's title shows from the start, bold
        # (a row selected) as well.
        for column, width in enumerate((180, 140, 80, 160, 75, 105)):
            header.resizeSection(column, width)

        # The detail pane's place, sized by the saved layout from the start;
        # finish_startup() puts the pane in.
        self.detail_area = QWidget(self)
        self._detail_layout = QVBoxLayout(self.detail_area)
        self._detail_layout.setContentsMargins(0, 0, 0, 0)
        # parent= by keyword: QSplitter(self) tries QSplitter(Qt.Orientation) first.
        self.message_split = QSplitter(parent=self)
        self.message_split.setProperty("orientation", "Vertical")
        self.message_split.setObjectName("messageSplit")
        self.message_split.addWidget(self.table)
        self.message_split.addWidget(self.detail_area)
        self.message_split.setStretchFactor(0, 2)
        self.message_split.setStretchFactor(1, 3)

        self.drafts_list = QListWidget(self)
        self.drafts_list.setAccessibleName("Drafts")
        self.drafts_list.itemActivated.connect(self._open_draft_item)

        self.pages = QStackedWidget(self)
        self.pages.addWidget(self.message_split)
        self.pages.addWidget(self.drafts_list)
        self.welcome: WelcomePage | None = None
        self.sandbox_view: QWidget | None = None

        self.main_split = QSplitter(parent=self)
        self.main_split.setObjectName("mainSplit")
        self.main_split.addWidget(self.folders)
        self.main_split.addWidget(self.pages)
        self.main_split.setStretchFactor(1, 4)
        self.main_split.setSizes([180, 900])
        self.setCentralWidget(self.main_split)

    def _build_log(self) -> None:
        # Made after restoreState() (_restore_layout), which keeps the dock's
        # place for it: restoreDockWidget() puts it there.
        self.log = SessionLogDock(self, deferred=True)  # finish_startup() finishes it
        if not (self._state_restored and self.restoreDockWidget(self.log)):
            from PySide6.QtCore import Qt

            self.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, self.log)
            # first start: the log is there, but the messages get the room
            self.resizeDocks([self.log], [170], Qt.Orientation.Vertical)
        log_action = self.log.toggleViewAction()
        self._shortcuts.append((log_action, "Ctrl+L"))
        self.view_menu.addAction(log_action)

    def _build_status(self) -> None:
        self.status = _StatusLine(self)
        self.status.setAccessibleName("Status")
        self.statusBar().addWidget(self.status, 1)

    def _build_send_status(self) -> None:
        # After the first paint, which they are not part of: hidden until a send
        # or an undo window, and empty until Connectivity has asked the system.
        from mailer_gui.ui.status_widgets import SendProgress, UndoCountdown

        self.send_progress = SendProgress(self)
        self.send_progress.subject_of = self._subject_of
        self.statusBar().addPermanentWidget(self.send_progress)
        self.countdown = UndoCountdown(self)
        self.countdown.undoRequested.connect(self.undo_send)
        self.statusBar().addPermanentWidget(self.countdown)
        self.network_label = QLabel(self)
        self.statusBar().addPermanentWidget(self.network_label)

    def _build_detail(self) -> None:
        from mailer_gui.ui.detail_pane import DetailPane

        self.detail = DetailPane(self.bridge, self)
        self.detail.editAsNew.connect(
            lambda draft, account: self.open_composer(draft=draft, account=account)
        )
        self.detail.takeBack.connect(lambda message: self.undo_send(message, taking_out=True))
        # Send now on a message whose account waits for its password: ask again.
        self.detail.retry_action.triggered.connect(self._declined.clear)
        self._detail_layout.addWidget(self.detail)
        self.detail.show()  # at once: a layout shows a late child only on a later event
        if self.message_split.isVisible() and not self._detail_size_saved:
            # The splitter shared its height out at the first paint, when the pane's
            # place was still empty: give the table a few rows and the pane the rest.
            total = sum(self.message_split.sizes())
            if total > 0:
                table = min(240, max(120, total * 2 // 5))
                self.message_split.setSizes([table, total - table])

    def _show_table(self, key: str) -> None:
        """Give the table the model of folder ``key``, sorted as its header says."""
        from mailer_gui.ui.outbox_model import OutboxTableModel

        previous = self.table.model()
        header = self.table.horizontalHeader()
        columns = header.saveState()  # widths and sort order stay as the person set them
        self.model = OutboxTableModel(_folder(key))
        # Connected before the table's selection model is made, so these run
        # before it moves the current row away from a row that leaves.
        self.model.rowsAboutToBeRemoved.connect(self._rows_leaving)
        self.model.rowsRemoved.connect(self._rows_left)
        self.table.setModel(self.model)
        previous.deleteLater()
        header.restoreState(columns)
        self.model.sort(header.sortIndicatorSection(), header.sortIndicatorOrder())
        self._connect_selection()

    def _build_tray(self) -> QSystemTrayIcon | None:
        from PySide6.QtWidgets import QMenu, QSystemTrayIcon

        if not QSystemTrayIcon.isSystemTrayAvailable():
            return None
        tray = QSystemTrayIcon(self.windowIcon(), self)
        tray.setToolTip("Mailer")
        menu = QMenu(self)
        menu.addAction("Show Mailer", self._raise)
        menu.addAction(self.new_action)
        menu.addAction(self.pause_action)
        menu.addSeparator()
        menu.addAction(self.quit_action)
        tray.setContextMenu(menu)
        tray.activated.connect(lambda reason: self._raise())
        tray.show()
        return tray

    # --------------------------------------------------------------- layout

    def _restore_layout(self) -> None:
        geometry = self._settings.value("geometry")
        if isinstance(geometry, QByteArray):
            self.restoreGeometry(geometry)
        state = self._settings.value("windowState")
        self._state_restored = isinstance(state, QByteArray) and self.restoreState(state)
        columns = self._settings.value("columns")
        if isinstance(columns, QByteArray):
            self.table.horizontalHeader().restoreState(columns)
        self._detail_size_saved = False
        for splitter in (self.main_split, self.message_split):
            saved = self._settings.value(splitter.objectName())
            if isinstance(saved, QByteArray):
                splitter.restoreState(saved)
                self._detail_size_saved |= splitter is self.message_split

    def save_layout(self) -> None:
        with contextlib.suppress(OSError):
            ensure_private_dir(self.paths.config_dir)
        self._settings.setValue("geometry", self.saveGeometry())
        self._settings.setValue("windowState", self.saveState())
        self._settings.setValue("columns", self.table.horizontalHeader().saveState())
        for splitter in (self.main_split, self.message_split):
            self._settings.setValue(splitter.objectName(), splitter.saveState())
        self._settings.sync()

    # -------------------------------------------------------------- folders

    def _folder_item(self, key: str) -> QListWidgetItem:
        if key not in _FOLDERS:
            raise KeyError(key)
        return self.folders.item(_FOLDERS.index(key))

    def show_folder(self, key: str) -> None:
        self.folders.setCurrentItem(self._folder_item(key))

    def _folder_chosen(self, item: QListWidgetItem | None) -> None:
        if item is None or self._put_off_while_opening(lambda: self._folder_chosen(item)):
            return
        self._require_ready()
        self.folder_key = _FOLDERS[self.folders.row(item)]
        if self.folder_key == DRAFTS:
            self.pages.setCurrentWidget(self.drafts_list)
            self.reload_drafts()
            return
        if self.folder_key == SANDBOX:
            view = self._ensure_sandbox_view()
            self.pages.setCurrentWidget(view)
            return
        self.pages.setCurrentWidget(self.message_split)
        self._show_table(self.folder_key)
        self.detail.show_message(None)
        self._reload()

    def _connect_selection(self) -> None:
        self.table.selectionModel().currentRowChanged.connect(self._row_chosen)

    def _row_chosen(self, current: Any, _previous: Any) -> None:
        from mailer_gui.ui.outbox_model import MESSAGE_ID_ROLE

        if self._refilling or self._current_leaving:
            return  # the table's own move while rows change, not the person's choice
        message = current.data(MESSAGE_ID_ROLE) if current.isValid() else None
        self.detail.show_message(message)

    def _rows_leaving(self, _parent: Any, first: int, last: int) -> None:
        """The chosen row is about to leave the table (its message was cancelled,
        or sent): the table would choose the next row in its place, and the pane
        would show that message, where an action meant for the one that left (a
        second Cancel) would fall on it. The pane keeps the message it shows;
        no row is chosen (see _rows_left)."""
        current = self.table.currentIndex()
        if current.isValid() and first <= current.row() <= last:
            self._current_leaving = True

    def _rows_left(self, *_args: Any) -> None:
        if self._current_leaving:
            try:
                self.table.selectionModel().clear()
            finally:
                self._current_leaving = False

    def select_message(self, message: int) -> bool:
        """Select ``message`` in the current folder's table (True when it is there)."""
        self._require_ready()
        row = self.model.row_of(message)
        if row is None:
            return False
        self.table.setCurrentIndex(self.model.index(row, 0))
        return True

    def _reload(self) -> None:
        from mailer_gui.ui.outbox_model import prepare_rows, with_sending_paused

        if self.folder_key not in _TABLE_FOLDERS:
            return
        if self._reloading:
            # One query at a time, answers in order: a late answer could bring
            # back a row that has left the folder meanwhile. Once more when back.
            self._reload_again = True
            return
        self._reloading = True
        folder = _folder(self.folder_key)
        key = self.folder_key
        store = self.bridge.store
        states = tuple(folder.states)

        def load() -> PreparedRows:
            # Query and cell texts both on the worker: the GUI thread only swaps lists.
            paused = with_sending_paused(store.paused_accounts(), self.bridge.runner.paused)
            return prepare_rows(store.messages(states), states, paused=paused)

        def loaded(prepared: PreparedRows | None, error: BaseException | None) -> None:
            self._reloading = False
            if self._reload_again:
                self._reload_again = False
                QTimer.singleShot(0, self._reload)
            if error is not None:
                self.show_status(str(error))
            elif key == self.folder_key and prepared is not None:
                current = self.detail.message_id
                # Rows that leave make the table choose another: not followed
                # here (see below).
                self._refilling = True
                try:
                    self.model.set_prepared(prepared)
                    shown = self.detail.row
                    if current is not None and shown is not None:
                        fresh = self.model.row_of(current)
                        now_row = self.model.message_row(fresh) if fresh is not None else None
                        if now_row is not None and (now_row.state, now_row.due_at) != (
                            shown.state, shown.due_at,
                        ):  # fmt: skip
                            # Changed by another hand (held with the others,
                            # the command line): the pane reads it again.
                            self.detail.refresh()
                    if current is not None and not self.select_message(current):
                        # The message shown left this folder (cancelled, sent):
                        # the pane goes on showing it as it is now, and no other
                        # row takes its place, so that an action meant for it (a
                        # second Cancel) never falls on the next message.
                        self.table.selectionModel().clear()
                finally:
                    self._refilling = False
                for row in prepared.rows:
                    self._subjects[row.id] = row.subject
                if store.damaged:
                    self.show_status(
                        f"{store.damaged} Only the messages that could still be read are shown."
                    )

        self.bridge.run_in_background(load, loaded)

    def _state_changed(self, message: int, state: str, detail: str) -> None:
        from mailer_gui.outbox.store import State

        new = State(state)
        if new not in (State.SCHEDULED, State.QUEUED, State.SENDING):
            self._quit_waiting_for.discard(message)  # through, one way or another
        if message == self._status_about and new is not State.SCHEDULED:
            self.show_status("")  # "will be sent at ..." is no longer true
        if new is not State.SCHEDULED:
            self.countdown.forget(message)
            if new is not State.CANCELLED:
                self._sent_drafts.pop(message, None)  # past its undo window
        if new is not State.SENDING:
            self.send_progress.finished(message)
        if self._reloading:
            # The answer on its way may have been read before this change and
            # would bring the old state back: ask again once it is in.
            self._reload_again = True
        tried_before = False
        if new is State.SENT and self.folder_key in _TABLE_FOLDERS:
            # Read before the row leaves the table: a failed earlier try left
            # its reason, or its count, there.
            listed = self.model.row_of(message)
            if listed is not None:
                row = self.model.message_row(listed)
                tried_before = row.attempts > 1 or row.last_error is not None
        if self.folder_key in _TABLE_FOLDERS and (
            self.model.update_state(message, state, detail)
            or new in _folder(self.folder_key).states
        ):
            self._reload()
        if new in (State.FAILED, State.DEFERRED, State.UNCERTAIN, State.SENT):
            self._announce(message, new, detail, tried_before=tried_before)
        if (
            new in (State.QUEUED, State.DEFERRED, State.FAILED)
            and not self._paused_timer.isActive()
        ):
            self._paused_timer.start()  # a refused login pauses the account: ask

    def _ask_for_passwords(self) -> None:
        """Open a password prompt for each account paused as "needs password"."""
        from mailer_gui.ui.bridge import NEEDS_PASSWORD

        def loaded(paused: dict[str, tuple[str, str]] | None, error: BaseException | None) -> None:
            if error is not None or self._closed:
                return
            paused = paused or {}
            needing = {n.casefold() for n, (state, _) in paused.items() if state == NEEDS_PASSWORD}
            self._declined &= needing
            for key in [key for key in self.password_prompts if key not in needing]:
                # Resumed meanwhile (the command line, Settings): nothing to ask.
                self.password_prompts.pop(key).close()
            for name, (state, reason) in paused.items():
                if state != NEEDS_PASSWORD:
                    continue
                account = next((a for a in self.accounts if a.name == name), None)
                if account is None:
                    continue
                if self._sandbox_logs_in(account):
                    # Paused by a command line that had no password for it (no
                    # keyring): this window's sandbox holds it, so it sends again.
                    prompt = self.password_prompts.pop(name.casefold(), None)
                    if prompt is not None:
                        prompt.close()
                    self.bridge.resume_account(account.name)
                elif name.casefold() not in self.password_prompts.keys() | self._declined:
                    self._prompt_password(account, reason)

        self.bridge.load_paused_accounts(loaded)

    def _sandbox_running(self) -> None:
        from mailer_gui.sandbox.account import SANDBOX_ACCOUNT

        self._ask_for_passwords()
        self.bridge.resume_account(SANDBOX_ACCOUNT, retry=True)

    def _sandbox_logs_in(self, account: Account) -> bool:
        """Whether ``account`` is the sandbox's own while this window runs the
        sandbox: it logs in with the password the server holds, no prompt."""
        from mailer_gui.sandbox.account import is_sandbox_account

        return self.sandbox.running and is_sandbox_account(account)

    def _prompt_password(self, account: Account, reason: str) -> None:
        from mailer_gui.ui.password_prompt import PasswordPrompt

        prompt = PasswordPrompt(account, reason, self)
        key = account.name.casefold()
        self.password_prompts[key] = prompt

        def provided(name: str, password: str, keep: bool) -> None:
            def done(_result: object, error: BaseException | None) -> None:
                from mailer_gui.accounts.secrets import SecretError
                from mailer_gui.ui.bridge import PasswordRefused

                if isinstance(error, PasswordRefused):
                    # Neither used nor kept: asked again, saying so.
                    if self._closed:
                        return
                    self._prompt_password(
                        account, f"That password was refused too. {error.message}"
                    )
                    return
                if isinstance(error, SecretError):
                    self.show_status(
                        f"The password is used until Mailer quits, but the keyring did not "
                        f"keep it: {error}"
                    )
                elif error is not None:
                    self.show_status(f"Sending from {name} could not start again: {error}")
                else:
                    self.show_status(f"Sending from {name} again.", passing=True)
                self._reload()  # its messages no longer wait for the password

            self.bridge.provide_password(
                name, password, keep=keep, on_done=done, check=account.server_settings()
            )

        prompt.provided.connect(provided)

        def finished(result: int) -> None:
            from PySide6.QtWidgets import QDialog

            if self.password_prompts.get(key) is prompt:
                del self.password_prompts[key]
                if result != QDialog.DialogCode.Accepted.value:
                    self._declined.add(key)  # "Not now"

        prompt.finished.connect(finished)
        prompt.finished.connect(prompt.deleteLater)
        self.show_status(f"The account {account.name!r} needs its password to send.")
        prompt.show()

    def _show_counts(self, counts: dict[str, int]) -> None:
        for key in _TABLE_FOLDERS:
            number = sum(counts.get(state.value, 0) for state in _folder(key).states)
            name = _NAMES[key]
            self._folder_item(key).setText(f"{name} ({number})" if number else name)
        self._uncertain_seen = counts.get("uncertain", 0)
        if self._uncertain_seen < self._uncertain_told:
            self._uncertain_told = self._uncertain_seen  # decided since
        elif self._uncertain_seen > self._uncertain_told:
            # A moment later: a message this window's runner made uncertain
            # is told by its state change, which may come after the counts.
            QTimer.singleShot(UNCERTAIN_TOLD_MS, self, self._tell_uncertain)

    def _tell_uncertain(self) -> None:
        """Uncertain messages no state change told of: found at start (Mailer
        stopped after all of a message went out), or left by another Mailer.
        The person decides for each, so they are told, once."""
        uncertain = self._uncertain_seen
        if uncertain <= self._uncertain_told:
            return
        self._uncertain_told = uncertain
        some = "1 message" if uncertain == 1 else f"{uncertain} messages"
        text = (
            f"{some} may have been delivered: all of {'it' if uncertain == 1 else 'each'} "
            "went out, but no confirmation came. Choose Send again or Mark as sent in "
            "the Outbox (shown as Uncertain)."
        )
        self.show_status(text)
        self._notify("Uncertain: did it arrive?", text, warn=True)

    # --------------------------------------------------------- notifications

    def _announce(
        self,
        message: int,
        state: State,
        detail: str,
        *,
        due: float | None = None,
        tried_before: bool = False,
    ) -> None:
        """Tell the person about what they would otherwise miss (tray, status bar).

        ``due``: a deferred message's next try (0 when it could not be read).
        The tray tells a message's first deferral only: the status bar the
        others, each with its time. ``tried_before``: a message sent now had
        failed an earlier try this window did not see (the command line's,
        or one before a restart): "Sent after all" too.
        """
        from mailer_gui.outbox.store import State
        from mailer_gui.ui.outbox_model import clock_time

        if state is State.SENT and message not in self._deferred_before and not detail:
            if not tried_before:
                return  # sent at the first try, to everyone: the folder count says enough
            self._deferred_before.add(message)
        deferred = state is State.DEFERRED
        if self._started and (message not in self._subjects or (deferred and due is None)):
            # Not listed here (another folder or page is shown): by its subject
            # once read, not by its number; a deferral with its next try's time.
            def loaded(row: MessageRow | None, error: BaseException | None) -> None:
                self._subjects[message] = (row.subject or "(no subject)") if row else ""
                if not self._closed:
                    when = row.due_at if row is not None and deferred else 0.0
                    self._announce(message, state, detail, due=when, tried_before=tried_before)

            self.bridge.load_message(message, loaded)
            return
        subject = self._subjects.get(message) or f"message {message}"
        if state is State.SENT and detail:
            # Taken for some recipients, refused for good by others (the
            # detail names them): the person has to act on those.
            self._deferred_before.discard(message)
            title = "Sent, not to everyone"
            text = f"“{subject}” went to some of its recipients only. {detail}".strip()
        elif state is State.SENT:
            self._deferred_before.discard(message)
            title, text = "Sent after all", f"“{subject}” was delivered."
        elif state is State.DEFERRED:
            again = message in self._deferred_before
            self._deferred_before.add(message)
            title = "Sending deferred"
            at = f" at {clock_time(due, time.time())}" if due else ""
            text = f"“{subject}” will be tried again{at}. {detail}".strip()
            self.show_status(f"{title}: {text}")
            if not again:  # said once in the tray already: the status bar is enough
                self._deferrals.append((message, subject, at, detail))
                if len(self._deferrals) == 1:
                    QTimer.singleShot(DEFERRALS_GATHERED_MS, self, self._tell_deferrals)
            return
        elif state is State.UNCERTAIN:
            self._uncertain_told += 1  # told here: the counts need not tell it again
            title = "Delivery uncertain"
            text = (
                f"“{subject}” went out whole, but no confirmation came: it may have "
                "arrived. Check it in the Outbox."
            )
        else:
            self._deferred_before.discard(message)
            title = "Sending failed"
            text = f"“{subject}” could not be sent. {detail}".strip()
        self.show_status(f"{title}: {text}")
        warn = state in (State.FAILED, State.UNCERTAIN) or (state is State.SENT and detail)
        self._notify(title, text, warn=warn)

    def _tell_deferrals(self) -> None:
        """The first deferrals gathered in DEFERRALS_GATHERED_MS, in one notification."""
        told, self._deferrals = self._deferrals, []
        if not told or self._closed:
            return
        # Named by the oldest: the order they were told in is that of their
        # subjects' lookups, which may come back in any order.
        _message, subject, at, detail = min(told)
        if len(told) == 1:
            self._notify(
                "Sending deferred", f"“{subject}” will be tried again{at}. {detail}".strip()
            )
            return
        others = len(told) - 1
        more = f"and {others} other message{'s' if others > 1 else ''}"
        self._notify(
            f"Sending deferred: {len(told)} messages",
            f"“{subject}” {more} will be tried again{at}. {detail}".strip(),
        )

    def _notify(self, title: str, text: str, *, warn: bool = False) -> None:
        """A notification in the tray (and in `notifications`, what was told)."""
        self.notifications.append((title, text))
        if self.tray is not None and self.tray.isVisible():
            from PySide6.QtWidgets import QSystemTrayIcon

            icon = (
                QSystemTrayIcon.MessageIcon.Warning
                if warn
                else QSystemTrayIcon.MessageIcon.Information
            )
            self.tray.showMessage(title, text, icon, 8000)

    def show_status(self, text: str, *, about: int | None = None, passing: bool = False) -> None:
        """One line in the status bar; ``about``: the message it is about, whose
        next change of state (sent, cancelled...) clears it; ``passing``: news
        that is stale after a while ("Sending resumed."), cleared after
        PASSING_STATUS_MS unless another line took its place."""
        self.status.setText(text)
        self._status_about = about
        if passing:
            QTimer.singleShot(PASSING_STATUS_MS, self, lambda: self._clear_status(text))

    def _clear_status(self, text: str) -> None:
        if self.status.text() == text:
            self.status.setText("")

    # --------------------------------------------------------------- actions

    def _pause_toggled(self, paused: bool) -> None:
        if self._put_off_while_opening(lambda: self._pause_toggled(paused)):
            return
        self._require_ready()
        self._set_paused(paused)
        self._settings.setValue("sendingPaused", paused)  # so after a restart too
        self._reload()  # the waiting messages say so, or no longer do
        self.detail.refresh()
        self.show_status(
            "Sending is paused: messages wait in the outbox." if paused else "Sending resumed.",
            passing=not paused,
        )

    def _set_paused(self, paused: bool) -> None:
        """The runner, the undo countdown and the action follow Pause sending."""
        self.countdown.set_paused(paused)
        self.bridge.pause_sending(paused)
        self.pause_action.setText("Resume sending" if paused else "&Pause sending")

    def send_queued_now(self) -> None:
        """Every deferred (and queued) message is due now, in order; then the runner looks."""
        from mailer_gui.outbox.store import State

        self._require_ready()
        self._declined.clear()  # asked for: a paused account's password is asked again
        store = self.bridge.store

        def retry_all() -> int:
            # Queued ones too, so that a deferred message does not overtake an
            # older one still waiting its turn; scheduled ones keep their time
            # (the store adds those whose time has come, in their turn).
            return len(store.all_due_now((State.DEFERRED, State.QUEUED)))

        def done(count: int | None, error: BaseException | None) -> None:
            if error is not None:
                self.show_status(str(error))
                return
            if self.pause_action.isChecked():
                self.pause_action.setChecked(False)
            self.bridge.runner.clear_backoff()  # servers that were unreachable: try now
            self.bridge.wake()
            self.bridge.refresh_counts()
            self._reload()
            self.show_status("Sending what is waiting in the outbox now.", passing=True)

        self.bridge.run_in_background(retry_all, done)

    def _online_changed(self, online: bool) -> None:
        if online:
            self.bridge.wake()

    def _undo_latest(self) -> None:
        self._require_ready()
        latest = self.countdown.latest()
        if latest is not None:
            self.undo_send(latest)

    def undo_send(self, message: int, *, taking_out: bool = False) -> None:
        """Stop a message in its undo window and give it back as a draft;
        ``taking_out``: one not sent yet, taken out of the outbox (Edit as new)."""
        from mailer_gui.message.eml import load_eml
        from mailer_gui.outbox.store import State

        self._require_ready()
        if message in self._undoing:
            return  # Undo pressed twice: one composer comes back
        self._undoing.add(message)
        store = self.bridge.store
        attachments = self.paths.data_dir / "restored" / str(message)

        # The composer's own state at Send (format, identity, pasted images) when
        # this window sent it; else the message is read back from the spool.
        kept = self._sent_drafts.get(message)

        def cancel_and_load() -> tuple[State, Any, str | None]:
            state = store.cancel(message)
            if state is not State.CANCELLED:
                return state, None, None
            if kept is not None:
                return state, kept, None
            row = store.get(message)
            try:
                ensure_private_dir(attachments.parent)
                draft, _notes = load_eml(row.spool_path, attachments)
            except Exception as exc:  # stopped, but not reopened: say where it is
                return state, None, str(exc)
            return state, (row.account, draft), None

        def done(result: tuple[State, Any, str | None] | None, error: BaseException | None) -> None:
            self._undoing.discard(message)
            self.countdown.forget(message)
            if error is not None or result is None:
                self.show_status(f"Could not {'take it out' if taking_out else 'undo'}: {error}")
                return
            state, loaded, problem = result
            self.bridge.refresh_counts()
            self._reload()
            if problem is not None:
                self.show_status(
                    f"Sending stopped, but the message could not be reopened ({problem}). "
                    "It is in Failed as cancelled: use Edit as new there."
                )
                return
            if loaded is None:
                late = "take it out" if taking_out else "undo"
                self.show_status(f"Too late to {late}: the message is {state.value} already.")
                return
            from mailer_gui.message.drafts import StoredDraft

            self._sent_drafts.pop(message, None)
            self.show_status(
                ("Taken out of the outbox" if taking_out else "Sending undone")
                + ": the message is back in a composer and in Drafts.",
                passing=True,
            )
            if isinstance(loaded, StoredDraft):
                composer = self.open_composer(stored=loaded)
            else:
                account, draft = loaded
                composer = self.open_composer(draft=draft, account=account)
            if composer is not None:
                # Its draft file went when it was sent: written again, so that
                # closing the composer unchanged keeps the message in Drafts.
                # Once it is there, the cancelled copy leaves the outbox.

                def saved(ok: bool) -> None:
                    if ok:
                        self._withdraw(message)

                composer.save_draft(on_done=saved)

        self.bridge.run_in_background(cancel_and_load, done)

    def _withdraw(self, message: int) -> None:
        """Undo send: the message, saved in Drafts again, leaves the outbox."""

        def done(removed: object, error: BaseException | None) -> None:
            if error is None and shiboken6.isValid(self) and not self._closed:
                if removed and self.detail.message_id == message:
                    # Gone from the outbox: its actions would fall on nothing.
                    self.detail.show_message(None)
                self.bridge.refresh_counts()
                self._reload()

        self.bridge.run_in_background(lambda: self.bridge.store.withdraw(message), done)

    def _raise(self) -> None:
        self.showNormal()
        self.raise_()
        self.activateWindow()

    def _about(self) -> None:
        self.show_status(
            f"Mailer {__version__}: writes messages and delivers them over SMTP, "
            "showing every line the server said."
        )

    # ------------------------------------------------------------- accounts

    def _load_accounts(self) -> None:
        from mailer_gui.accounts.store import AccountStore, AccountStoreError
        from mailer_gui.sandbox.account import SANDBOX_ACCOUNT, is_sandbox_account

        # A small JSON file: reading it here does not stall the window.
        try:
            self.accounts = AccountStore(self.paths.accounts_file).load()
        except AccountStoreError as exc:
            self.accounts = []
            self.show_status(str(exc))
            return
        # The built-in sandbox's own account (not an account of the person's
        # that happens to point at some other sandbox, such as `mailer-gui sandbox`).
        if any(
            a.name.casefold() == SANDBOX_ACCOUNT and is_sandbox_account(a) for a in self.accounts
        ):
            self._folder_item(SANDBOX).setHidden(False)
            if not self.sandbox.running and not self._sandbox_started:
                # Its messages need it: the sandbox runs while Mailer does.
                self._sandbox_started = True
                self.sandbox.start()
        if not self.accounts:
            self._show_welcome()
            self.show_status("No account yet: add yours, or try the built-in test server.")
        else:
            self._hide_welcome()
            names = ", ".join(a.name for a in self.accounts)
            self.show_status(f"Mailer {__version__} · accounts: {names}", passing=True)

    def accounts_changed(self) -> None:
        self._require_ready()
        self._load_accounts()
        self._reload()  # an account fixed in Settings no longer holds its messages

    def _watch_outbox(self) -> None:
        """What another Mailer (the command line's send, outbox retry or
        cancel) changes in the outbox shows here within OUTBOX_LOOK_MS: the
        folder's rows and counts. This window's own changes come as events."""
        # Unknown at first: the first look reloads, for what changed between
        # the first load and now.
        self._outbox_mark: tuple[object, ...] = ()
        self._outbox_looking = False
        self._outbox_timer = QTimer(self)
        self._outbox_timer.setInterval(OUTBOX_LOOK_MS)
        self._outbox_timer.timeout.connect(self._look_at_outbox)
        self._outbox_timer.start()

    def _look_at_outbox(self) -> None:
        if self._closed or self._outbox_looking:
            return
        self._outbox_looking = True
        store = self.bridge.store

        def done(mark: tuple[object, ...] | None, error: BaseException | None) -> None:
            self._outbox_looking = False
            if error is not None or mark is None or self._closed:
                return  # a damaged outbox says so where it is read
            before, self._outbox_mark = self._outbox_mark, mark
            if mark != before:
                self._reload()
                self.bridge.refresh_counts()
                if not self._paused_timer.isActive():
                    self._paused_timer.start()  # an account paused elsewhere: ask

        self.bridge.run_in_background(store.change_mark, done)

    def _watch_accounts_file(self) -> None:
        """Accounts added, changed or removed from outside the window (the command
        line's `mailer-gui accounts`, another Mailer) show up here too: in new
        messages' From list, Settings and the outbox's paused accounts.

        The folder is watched, not the file: a write replaces the file by another.
        """
        from PySide6.QtCore import QFileSystemWatcher

        folder = self.paths.accounts_file.parent
        try:
            ensure_private_dir(folder)
        except OSError:
            return  # the accounts file itself says what is wrong when it is read
        self._accounts_watcher = QFileSystemWatcher([str(folder)], self)
        self._accounts_timer = QTimer(self)
        self._accounts_timer.setSingleShot(True)
        self._accounts_timer.setInterval(300)  # a write is several changes: one look
        self._accounts_timer.timeout.connect(self._accounts_file_changed)
        self._accounts_watcher.directoryChanged.connect(lambda _path: self._accounts_timer.start())

    def _accounts_file_changed(self) -> None:
        from mailer_gui.accounts.store import AccountStore, AccountStoreError

        if self._closed:
            return
        try:
            accounts = AccountStore(self.paths.accounts_file).load()
        except AccountStoreError:
            accounts = None  # _load_accounts says what is wrong with it
        if accounts is not None and accounts == self.accounts:
            return  # another file of that folder, or a write that changed nothing
        self.accounts_changed()

    def _show_welcome(self) -> None:
        from mailer_gui.ui.welcome import WelcomePage

        if self.welcome is None:
            welcome = WelcomePage(self)
            welcome.addAccount.connect(self.open_wizard)
            welcome.trySandbox.connect(self.start_sandbox_trial)
            self.pages.addWidget(welcome)
            self.welcome = welcome
        self.pages.setCurrentWidget(self.welcome)

    def _hide_welcome(self) -> None:
        if self.welcome is not None and self.pages.currentWidget() is self.welcome:
            self.pages.setCurrentWidget(self.message_split)

    # --------------------------------------------------- other windows (stubs)

    def open_composer(
        self,
        *,
        draft: Draft | None = None,
        account: str | None = None,
        stored: StoredDraft | None = None,
        mailto: str | None = None,
    ) -> ComposerWindow | None:
        """A composer window: empty, or filled from a Draft, a stored draft or a mailto: URL."""
        from mailer_gui.ui.composer import ComposerWindow

        self._require_ready()
        if not self.accounts:
            self.show_status(
                "Add an account first (Accounts → Add account…), or try the built-in test server."
            )
            self._show_welcome()
            return None
        options: dict[str, Any] = {
            "undo_seconds": float(self.preferences.undo_seconds),
            "default_format": self.preferences.default_format,
            "known_addresses": sorted(self._known_addresses),
            "size_limits": self.size_limits,
        }
        if draft is not None:
            stored = _stored_from_draft(draft, account or "")
        if mailto is not None:
            composer = ComposerWindow.from_mailto(
                mailto, self.bridge, self.accounts, self.drafts, **options
            )
        else:
            composer = ComposerWindow(
                self.bridge, self.accounts, self.drafts, stored=stored, **options
            )
        from PySide6.QtCore import Qt

        composer.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        composer.apply_preferences(self.preferences)
        composer.queued.connect(
            lambda message, due, c=composer: self._composer_queued(message, due, c)
        )
        composer.draftSaved.connect(lambda _id: self.reload_drafts())
        composer.draftDeleted.connect(lambda _id: self.reload_drafts())
        composer.drafts_changed_later = self._drafts_changed_later
        composer.destroyed.connect(lambda _obj=None, c=composer: self._forget_composer(c))
        composer.closeCancelled.connect(self._quit_cancelled)
        composer.quitRequested.connect(self.close)  # File → Quit, from the composer
        self.composers.append(composer)
        composer.show()
        composer.raise_()
        composer.activateWindow()
        return composer

    def _drafts_changed_later(self) -> None:
        """A closed composer's draft was written or removed: count the drafts again."""
        if shiboken6.isValid(self):
            self.reload_drafts()

    def _sending_now(self) -> bool:
        """True while the outbox is in the middle of sending a message."""
        bridge = getattr(self, "bridge", None)
        return self._started and bridge is not None and bool(bridge.runner.in_flight())

    def _ask_quit_while_sending(self) -> None:
        """Quit with a message on its way: wait for it, quit now, or stay."""
        from mailer_gui.ui.questions import Role, two_choices

        if self.quit_question is not None and self.quit_question.isVisible():
            return
        box, wait, now = two_choices(
            self,
            "Quit while sending?",
            "A message is being sent right now.",
            "Quit when sent: Mailer starts nothing new and quits once it is through.\n"
            "Quit now: the message goes back to the outbox and is sent the next time "
            "Mailer runs (if all of it had gone out, Mailer asks you whether it arrived).",
            ("Quit when &sent", Role.AcceptRole),
            ("Quit &now", Role.DestructiveRole),
        )

        def answered(button: QAbstractButton) -> None:
            if button is wait:
                self.bridge.pause_sending(True)  # nothing new; the window is going
                self._quit_timer.start()
                self.show_status("Mailer quits once the message being sent is through.")
            elif button is now:
                self._quit_confirmed = True
                QTimer.singleShot(0, self.close)
            else:
                self.show_status(
                    "Quitting was cancelled; the message goes on being sent.", passing=True
                )

        box.buttonClicked.connect(answered)
        self.quit_question = box
        box.open()

    def _subject_of(self, message: int) -> str | None:
        """The subject of ``message`` if the table shows it."""
        listed = self.model.row_of(message)
        return None if listed is None else self.model.message_row(listed).subject

    def _ask_quit_while_waiting(self, messages: list[int]) -> None:
        """Quit during a message's undo window: send it now, keep it for the
        next time Mailer runs, or stay. (It used to quit without a word, and
        the message waited, unsent, until Mailer was started again.)"""
        from mailer_gui.ui.questions import Role, two_choices

        if self.quit_question is not None and self.quit_question.isVisible():
            return
        one = len(messages) == 1
        box, send, leave = two_choices(
            self,
            "Quit before it is sent?",
            "A message you sent waits out its undo time."
            if one
            else f"{len(messages)} messages you sent wait out their undo time.",
            f"Send now and quit: {'it goes' if one else 'they go'} at once, and Mailer quits "
            "once that is through.\n"
            f"Quit: {'it stays' if one else 'they stay'} in the outbox and "
            f"{'is' if one else 'are'} sent the next time Mailer runs.",
            ("Send &now and quit", Role.AcceptRole),
            ("&Quit", Role.DestructiveRole),
        )

        def answered(button: QAbstractButton) -> None:
            if button is send:
                self._quit_waiting_for.update(messages)
                for message in messages:
                    self.countdown.forget(message)
                    self.bridge.retry_now(message)
                if self.pause_action.isChecked():
                    self.pause_action.setChecked(False)  # asked to send: sending resumes
                self._quit_timer.start()
                self.show_status("Sending now; Mailer quits once that is through.")
            elif button is leave:
                self._quit_confirmed = True
                QTimer.singleShot(0, self.close)
            else:
                self.show_status("Quitting was cancelled.", passing=True)

        box.buttonClicked.connect(answered)
        self.quit_question = box
        box.open()

    def _quit_if_sent(self) -> None:
        """ "Quit when sent": looked at a few times a second until nothing is on its way."""
        if not self._sending_now() and not self._quit_waiting_for:
            self._quit_timer.stop()
            self._quit_confirmed = True
            self.close()

    def _quit_cancelled(self) -> None:
        """Cancel in an open message's "Save draft?" while quitting: Mailer stays."""
        if self._quit_after_composers:
            self._quit_after_composers = False
            self.show_status("Quitting was cancelled; the message stays open.", passing=True)

    def _forget_composer(self, composer: ComposerWindow) -> None:
        with contextlib.suppress(ValueError):
            self.composers.remove(composer)
        if self._quit_after_composers and not self.composers:
            QTimer.singleShot(0, self.close)  # the person was quitting: go on

    def _composer_queued(self, message: int, due_at: float, composer: ComposerWindow) -> None:
        import dataclasses
        from datetime import datetime

        from mailer_gui.message.addresses import split_address_list
        from mailer_gui.outbox.policy import UNDO_WINDOW_MAX

        subject = composer.subject_field.text()
        self._subjects[message] = subject
        if due_at - time.time() <= UNDO_WINDOW_MAX + 1:
            # Undo gives back exactly what was written (a new draft: no id).
            self._sent_drafts[message] = dataclasses.replace(composer.state(), id=None)
            self.countdown.add(message, subject, due_at)  # its undo window
        else:
            when = datetime.fromtimestamp(due_at).strftime("%Y-%m-%d %H:%M")
            self.show_status(
                f"“{subject}” will be sent at {when} (it waits in the Outbox).", about=message
            )
        for address in split_address_list(
            ", ".join((composer.to_field.text(), composer.cc_field.text()))
        ):
            self._known_addresses.add(address)
        self._reload()

    def reload_drafts(self) -> None:
        """List the drafts folder (read off the GUI thread); damaged files are named."""
        self._require_ready()
        drafts = self.drafts

        def loaded(listing: DraftListing | None, error: BaseException | None) -> None:
            if error is not None or listing is None:
                self.show_status(f"The drafts could not be listed: {error}")
                return
            from datetime import datetime

            from PySide6.QtCore import Qt

            self.drafts_list.clear()
            for stored in listing.drafts:
                when = datetime.fromtimestamp(stored.updated_at).strftime("%Y-%m-%d %H:%M")
                to = stored.to.strip() or "no recipient yet"
                item = QListWidgetItem(f"{stored.title}\n    to {to} · {when}")
                item.setData(Qt.ItemDataRole.UserRole, stored.id)
                item.setToolTip("Double-click or press Enter to go on writing")
                self.drafts_list.addItem(item)
            for damaged in listing.damaged:
                item = QListWidgetItem(f"{damaged.name}: {damaged.reason}")
                item.setFlags(Qt.ItemFlag.NoItemFlags)
                self.drafts_list.addItem(item)
            count = len(listing.drafts)
            name = _NAMES[DRAFTS]
            self._folder_item(DRAFTS).setText(f"{name} ({count})" if count else name)

        self.bridge.run_in_background(drafts.list, loaded)

    def _build_draft_actions(self) -> None:
        """Open and Delete on the Drafts list: a right click, Enter, or Delete."""
        from PySide6.QtCore import Qt
        from PySide6.QtGui import QAction, QKeySequence

        self.drafts_list.setContextMenuPolicy(Qt.ContextMenuPolicy.ActionsContextMenu)
        self.open_draft_action = QAction("&Open draft", self.drafts_list)
        self.open_draft_action.triggered.connect(self._open_current_draft)
        self.delete_draft_action = QAction("&Delete draft…", self.drafts_list)
        self.delete_draft_action.setShortcuts([QKeySequence(QKeySequence.StandardKey.Delete)])
        self.delete_draft_action.setShortcutContext(Qt.ShortcutContext.WidgetShortcut)
        self.delete_draft_action.triggered.connect(self.delete_selected_draft)
        for action in (self.open_draft_action, self.delete_draft_action):
            self.drafts_list.addAction(action)
        self.draft_question: QMessageBox | None = None

    def _open_current_draft(self) -> None:
        item = self.drafts_list.currentItem()
        if item is not None:
            self._open_draft_item(item)

    def delete_selected_draft(self) -> None:
        """Delete the draft chosen in the list, once the person confirms it."""
        from PySide6.QtCore import Qt
        from PySide6.QtWidgets import QMessageBox

        item = self.drafts_list.currentItem()
        draft_id = item.data(Qt.ItemDataRole.UserRole) if item is not None else None
        if not draft_id or item is None:
            return
        if any(composer.draft_id == draft_id for composer in self.composers):
            self.show_status(
                "That draft is open in a window: close it there (Discard keeps it as it was, "
                "or delete it after closing)."
            )
            return
        title = item.text().split("\n", 1)[0]
        box = QMessageBox(
            QMessageBox.Icon.Question,
            "Delete draft?",
            f"Delete the draft “{title}”? It cannot be brought back.",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel,
            self,
        )
        box.setDefaultButton(QMessageBox.StandardButton.Cancel)
        box.setWindowModality(Qt.WindowModality.WindowModal)
        drafts = self.drafts

        def answered(button: QAbstractButton) -> None:
            if box.standardButton(button) != QMessageBox.StandardButton.Yes:
                return

            def deleted(_result: object, error: BaseException | None) -> None:
                if error is not None:
                    self.show_status(f"The draft could not be deleted: {error}")
                    return
                self.show_status(f"Draft “{title}” deleted.", passing=True)
                self.reload_drafts()

            self.bridge.run_in_background(lambda: drafts.delete(draft_id), deleted)

        box.buttonClicked.connect(answered)
        self.draft_question = box
        box.open()

    def _open_draft_item(self, item: QListWidgetItem) -> None:
        from PySide6.QtCore import Qt

        draft_id = item.data(Qt.ItemDataRole.UserRole)
        if not draft_id:
            return
        for composer in self.composers:
            if composer.draft_id == draft_id:
                composer.raise_()
                composer.activateWindow()
                return
        if draft_id in self._opening_drafts:
            return  # asked twice before it loaded: one composer per draft
        self._opening_drafts.add(draft_id)

        def loaded(stored: StoredDraft | None, error: BaseException | None) -> None:
            self._opening_drafts.discard(draft_id)
            if error is not None or stored is None:
                self.show_status(f"The draft could not be opened: {error}")
                return
            self.open_composer(stored=stored)

        self.bridge.run_in_background(lambda: self.drafts.load(draft_id), loaded)

    def open_wizard(self) -> None:
        """The account setup wizard (window-modal; nothing is saved before Finish)."""
        from PySide6.QtCore import Qt

        from mailer_gui.ui.wizard import SetupWizard

        self._require_ready()
        wizard = SetupWizard(self.paths, self)
        wizard.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        wizard.accountCreated.connect(self._account_created)
        wizard.open()
        self.wizard = wizard

    def _account_created(self, name: str) -> None:
        self.accounts_changed()
        if self.settings_dialog is not None:
            self.settings_dialog.accounts_page.reload()
        self.show_status(
            f"The account {name!r} is ready. Write a message with Ctrl+N.", passing=True
        )
        self.bridge.wake()

    def open_settings(self, page: str | None = None) -> None:
        """The settings window (one at a time, not modal)."""
        self._require_ready()
        if self.settings_dialog is None:
            from mailer_gui.ui.settings import SettingsDialog

            dialog = SettingsDialog(
                self.paths, self.preferences, self, add_account=self.open_wizard
            )
            dialog.preferencesChanged.connect(self.apply_preferences)
            dialog.accountsChanged.connect(self.accounts_changed)
            self.settings_dialog = dialog
        if page is not None:
            self.settings_dialog.show_page(page)
        self.settings_dialog.show()
        self.settings_dialog.raise_()
        self.settings_dialog.activateWindow()

    def apply_preferences(self, preferences: Preferences) -> None:
        """New settings take effect at once: retries, connections, composers."""
        self._require_ready()
        self.preferences = preferences
        store = self.bridge.store
        policy = preferences.retry_policy()
        if policy != store.policy:
            store.policy = policy

            def rescheduled(moved: list[int] | None, error: BaseException | None) -> None:
                if error is not None:
                    self.show_status(f"Waiting messages keep their old retry times: {error}")
                elif moved:
                    self._reload()  # their "Waiting to retry at" times
                    if self.status.text().startswith("Sending deferred"):
                        self.show_status("")  # its "tried again at" time is the old one
                self.bridge.wake()

            # Messages waiting already follow the new schedule too.
            self.bridge.run_in_background(store.reschedule, rescheduled)
        runner = self.bridge.runner
        runner.max_connections = preferences.max_connections
        runner.per_connection = preferences.per_connection
        for composer in list(self.composers):
            composer.apply_preferences(preferences)
        self.bridge.wake()

    def _preference_warned(self, text: str) -> None:
        self._preference_warning = text

    def _prune_transcripts(self) -> None:
        from mailer_gui.outbox.retention import prune_transcripts

        days = self.preferences.transcript_days
        if days <= 0:
            return
        store = self.bridge.store

        def done(count: int | None, error: BaseException | None) -> None:
            if error is not None:
                self.show_status(f"Old transcripts were not cleared: {error}")

        self.bridge.run_in_background(lambda: prune_transcripts(store, days), done)

    def _prune_extracted(self) -> None:
        """Remove the attachment folders of Edit as new and Undo send that no draft uses."""
        from mailer_gui.message.drafts import prune_unused_folders

        roots = [self.detail.edits_dir, self.paths.data_dir / "restored"]
        drafts, started = self.drafts, self._started_at

        def done(removed: list[Path] | None, error: BaseException | None) -> None:
            if error is not None:
                self.show_status(f"Old attachment folders were not removed: {error}")

        store = self.bridge.store

        def prune() -> list[Path]:
            store.remove_stale_builds()  # messages a killed Mailer was building
            return prune_unused_folders(roots, drafts, before=started)

        self.bridge.run_in_background(prune, done)

    def start_sandbox_trial(self) -> None:
        """Start the test server, make its account, and open a first message to it."""
        self._require_ready()
        if self.welcome is not None:
            self.welcome.set_busy("Starting the test server…")
        self.show_status("Starting the built-in test server…")

        def done(trial: SandboxTrial | None, error: BaseException | None) -> None:
            if self.welcome is not None:
                self.welcome.set_busy(None)
            if error is not None or trial is None:
                text = f"The test server did not start: {error}"
                if self.welcome is not None and self.pages.currentWidget() is self.welcome:
                    self.welcome.show_problem(text)
                self.show_status(text)
                return
            self.accounts_changed()
            self.show_status(
                f"The test server runs on 127.0.0.1:{trial.port}. What you send to it "
                "shows up in Sandbox inbox."
            )
            self.open_composer(draft=trial.draft, account=trial.account.name)

        self.sandbox.start_trial(done)

    def _ensure_sandbox_view(self) -> QWidget:
        if self.sandbox_view is None:
            from mailer_gui.ui.sandbox_view import SandboxInboxView

            self.sandbox_view = SandboxInboxView(self.sandbox, self)
            self.pages.addWidget(self.sandbox_view)
        if not self.sandbox.running:
            self.sandbox.start()
        return self.sandbox_view

    def open_request(self, request: str) -> None:
        """A mailto: URL (or nothing) from the command line or a second launch.

        Before start-up is done, the request waits for it.
        """
        if self._closed:
            return  # quitting: a late hand-over opens nothing
        if not self._ready:
            self.when_ready(lambda: self.open_request(request))
            return
        self._raise()
        if request.lower().startswith("mailto:"):
            self.open_composer(mailto=request)
        elif request:
            self.show_status(f"Mailer opens mailto: links; {request!r} is not one.")

    # --------------------------------------------------------------- closing

    def end_session(self) -> None:
        """Quit as File > Quit does, with no question (SIGTERM: the desktop
        session is ending; SIGINT, SIGHUP): each open message is kept as a draft
        as it stands, then the window closes and the outbox stops (messages on
        their way go back to the queue, or are uncertain once their "." left)."""
        self._quit_after_composers = True
        self._quit_confirmed = True  # no question about a send under way either
        for composer in list(self.composers):
            composer.keep_and_close()
        if all(composer.closed for composer in self.composers):
            self.close()  # else once the last one is closed (_composer_closed)

    def closeEvent(self, event: QCloseEvent) -> None:
        # Open messages first: each unsaved one asks Save / Discard / Cancel; the
        # window quits once none is left (a Cancel keeps Mailer running).
        for composer in list(self.composers):
            if not composer.closed:
                composer.close()
        if any(not composer.closed for composer in self.composers):
            event.ignore()
            self._quit_after_composers = True
            self.show_status("Mailer quits once the open messages are saved or discarded.")
            return
        self._quit_after_composers = False
        if not self._quit_confirmed and self._sending_now():
            event.ignore()
            self._ask_quit_while_sending()
            return
        waiting = self.countdown.pending() if self._started else []
        if not self._quit_confirmed and waiting and not self._quit_waiting_for:
            event.ignore()
            self._ask_quit_while_waiting(waiting)
            return
        self._quit_timer.stop()
        if self.quit_question is not None:
            self.quit_question.hide()
        for window in (*self.password_prompts.values(), self.wizard):
            if window is not None and shiboken6.isValid(window):
                window.close()
        self._closed = True  # closed before start-up finished: it never does
        self._startup_timer.stop()
        self._when_ready.clear()
        self.save_layout()
        self.hide()  # gone at once; the sends under way are stopped just after
        if self.tray is not None:
            self.tray.hide()
        if self.settings_dialog is not None:
            self.settings_dialog.shutdown()
        if self._started:
            if getattr(self, "bridge", None) is not None:
                self.bridge.shutdown()
            if getattr(self, "sandbox", None) is not None:
                self.sandbox.shutdown()
        elif self._given_bridge is not None:
            self._given_bridge.shutdown()
        super().closeEvent(event)


class _StatusLine(QLabel):
    """The status bar's line. A text too long for it is cut short with "…" and
    shown whole in its tooltip: wrapped onto a second line, it made the status
    bar taller and moved everything above it while the person aimed a click.
    `text()` is the whole text."""

    def __init__(self, parent: QWidget) -> None:
        super().__init__(parent)
        self._whole = ""

    def setText(self, text: str) -> None:
        self._whole = text
        self.setToolTip(text if "\n" in text or len(text) > 80 else "")
        self.setAccessibleDescription(text)
        self._fit()

    def text(self) -> str:
        return self._whole

    def minimumSizeHint(self) -> QSize:
        return QSize(0, super().minimumSizeHint().height())

    def sizeHint(self) -> QSize:
        return QSize(0, super().sizeHint().height())

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._fit()

    def _fit(self) -> None:
        line = " ".join(self._whole.split("\n"))
        metrics = self.fontMetrics()
        width = self.contentsRect().width()
        if metrics.horizontalAdvance(line) > width and width > 0:
            from PySide6.QtCore import Qt  # only now: see the imports above

            line = metrics.elidedText(line, Qt.TextElideMode.ElideRight, width)
        super().setText(line)


class _UrlOpened(QObject):
    """Passes the URL of a QFileOpenEvent (macOS: a clicked mailto: link) to the window."""

    def __init__(self, window: MainWindow, parent: QObject) -> None:
        super().__init__(parent)
        self.window = window

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() != QEvent.Type.FileOpen:
            return False
        from PySide6.QtGui import QFileOpenEvent

        if isinstance(event, QFileOpenEvent):
            url = event.url().toString()
            if url.lower().startswith("mailto:"):
                self.window.open_request(url)
                return True
        return False


def _no_display() -> bool:
    """On X11/Wayland systems, no display means Qt would abort; say so instead."""
    if sys.platform in ("win32", "darwin") or os.environ.get("QT_QPA_PLATFORM"):
        return False
    return not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


class _GuiArgs(NamedTuple):
    home: str | None
    words: list[str]  # compose, and/or a mailto: URL
    qt_args: list[str]  # options for Qt (-style, -platform ...), passed on


def _parse_gui_args(argv: Sequence[str]) -> _GuiArgs:
    """``[--home DIR] [compose] [mailto:...]`` and Qt's own options.

    By hand, not argparse: the window's start-up does without loading it.
    (`mailer_gui.app` sends --help and every command to the CLI's parser.)
    Raises ValueError for --home without a folder.
    """
    home: str | None = None
    words: list[str] = []
    qt_args: list[str] = []
    args = iter(argv)
    for arg in args:
        if arg == "--home":
            home = next(args, None)
            if home is None or not home:
                raise ValueError("--home needs a folder")
        elif arg.startswith("--home="):
            home = arg.partition("=")[2]
            if not home:
                raise ValueError("--home needs a folder")
        elif arg.startswith("-") and len(arg) > 1:
            qt_args.append(arg)
        else:
            words.append(arg)
    return _GuiArgs(home, words, qt_args)


def _request(args: _GuiArgs) -> str:
    words = [w for w in args.words if w != "compose"]
    return words[0] if words else ""


def run_gui(argv: Sequence[str], *, on_shown: Callable[[MainWindow], None] | None = None) -> int:
    """Open the window (or hand a mailto: URL to the one already open).

    ``on_shown(window)`` runs right after the window is shown (benchmarks and
    the screenshot script use it to watch the first paint).
    """
    from mailer_gui.ui.single_instance import hand_over, may_be_running

    try:
        args = _parse_gui_args(argv)
    except ValueError as exc:
        print(f"mailer-gui: {exc}", file=sys.stderr)
        return 2
    qt_args = args.qt_args
    if _no_display():
        print(
            "mailer-gui: no desktop display was found (DISPLAY and WAYLAND_DISPLAY are "
            "unset), so the window cannot open. Start Mailer from a desktop session, or "
            "use the command line: mailer-gui send --help",
            file=sys.stderr,
        )
        return 69
    app = QApplication.instance() or QApplication(["mailer-gui", *qt_args])
    assert isinstance(app, QApplication)
    app.setApplicationName("mailer-gui")
    app.setApplicationDisplayName("Mailer")
    app.setDesktopFileName("mailer-gui")
    paths = resolve_paths(args.home)
    request = _request(args)
    if may_be_running(paths) and hand_over(paths, request):
        return 0  # the running Mailer opens it
    servers: list[InstanceServer] = []

    def claim() -> bool:
        # Listening (QtNetwork) waits for the first paint; a Mailer that started
        # at the same moment may have taken the name meanwhile.
        from mailer_gui.ui.single_instance import InstanceServer

        server = InstanceServer(paths)
        servers.append(server)
        if not server.listen() and hand_over(paths, request):
            QTimer.singleShot(0, app.quit)  # the other Mailer opens the request
            return False
        server.received.connect(window.open_request)
        return True

    window = MainWindow(paths, claim=claim)
    opened: _UrlOpened | None = None
    if sys.platform == "darwin":
        # macOS hands mailto: clicks over as events. Only there: an application-wide
        # filter sees every event of every widget, in Python.
        opened = _UrlOpened(window, app)
        app.installEventFilter(opened)
    window.show()
    if on_shown is not None:
        on_shown(window)
    if request:
        window.open_request(request)  # opened once start-up is done
    restore = _end_session_on_signals(app, window.end_session)
    try:
        return app.exec()
    finally:
        restore()
        for server in servers:
            server.close()


def _end_session_on_signals(app: QApplication, end: Callable[[], None]) -> Callable[[], None]:
    """SIGTERM (the desktop session ending, a plain `kill`), SIGINT (Ctrl+C in
    the terminal Mailer was started from) and SIGHUP call ``end`` on the GUI
    thread, instead of ending the process where it stands. A second one ends
    it as before (a Mailer that does not quit can still be stopped). A signal
    ignored when Mailer started (`nohup`, a background job) stays ignored.
    Returns what puts things back.

    The signal's number is written to a socket (`signal.set_wakeup_fd`) that
    the event loop watches: Python runs its own handlers only between two
    steps of Python code, which the event loop may not reach for a while.
    """
    import signal
    import socket

    from PySide6.QtCore import QSocketNotifier

    if sys.platform == "win32":
        return lambda: None  # no such signals from a Windows session
    ours = [
        number
        for number in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
        if signal.getsignal(number) is not signal.SIG_IGN
    ]
    reader, writer = socket.socketpair()
    reader.setblocking(False)
    writer.setblocking(False)
    before_fd = signal.set_wakeup_fd(writer.fileno())
    # A Python-level handler (doing nothing itself) is what makes the
    # signal write to the wakeup socket instead of ending the process.
    before = {number: signal.signal(number, lambda *_: None) for number in ours}
    notifier = QSocketNotifier(reader.fileno(), QSocketNotifier.Type.Read, app)
    ending = False

    def woken() -> None:
        nonlocal ending
        try:
            received = reader.recv(64)
        except OSError:
            return
        numbers = [number for number in ours if int(number) in received]
        if not numbers:
            return
        if ending:  # asked again: the default action (the process ends)
            signal.signal(numbers[0], signal.SIG_DFL)
            os.kill(os.getpid(), numbers[0])
            return
        ending = True
        end()

    notifier.activated.connect(woken)

    def restore() -> None:
        for number, handler in before.items():
            # None: set outside Python (by nobody here), so the default.
            signal.signal(number, signal.SIG_DFL if handler is None else handler)
        signal.set_wakeup_fd(before_fd)
        notifier.setEnabled(False)
        notifier.deleteLater()
        reader.close()
        writer.close()

    return restore


__all__ = ["MainWindow", "run_gui"]
