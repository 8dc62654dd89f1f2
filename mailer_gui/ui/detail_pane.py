"""The detail pane: one outbox message, what happened to it, and what can be done next.

It shows the message as it was frozen in the spool (parsed off the GUI thread,
ui/message_view.py), each recipient's reply, and every attempt with the
server's words and what they mean in plain words (message/inspect.py reads the
stored transcripts, smtp/replies.py explains the replies). Everything it reads
or changes goes through OutboxBridge, and it follows the bridge's signals for
the message shown. Problems appear in a line at the top of the pane, never as
a dialog.
"""

from __future__ import annotations

import contextlib
import dataclasses
import html
import math
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from PySide6.QtCore import QEvent, Qt, QTimer, Signal, Slot
from PySide6.QtGui import (
    QAction,
    QColor,
    QFontDatabase,
    QGuiApplication,
    QKeySequence,
    QPalette,
)
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QFileDialog,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QTextBrowser,
    QToolBar,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from mailer_gui.message.addresses import (
    AddressError,
    MailAddress,
    parse_address,
    shown_address,
)
from mailer_gui.message.draft import Draft
from mailer_gui.message.eml import load_eml, save_eml
from mailer_gui.message.inspect import (
    END_OF_DATA,
    Conversation,
    MessageFileError,
    clean_text,
    human_size,
    read_transcript,
    recipient_explanation,
)
from mailer_gui.outbox.store import AttemptRow, MessageRow, RecipientRow, State
from mailer_gui.paths import ensure_private_dir
from mailer_gui.smtp.replies import without_retry_note
from mailer_gui.ui.bridge import OutboxBridge
from mailer_gui.ui.message_view import DisplayedMessage, MessageBrowser, load_for_display
from mailer_gui.ui.outbox_model import SENDING_PAUSED, Paused, held_by, with_sending_paused
from mailer_gui.ui.questions import Role, two_choices

# A scheduled message due sooner than this counts down ("Sending in 8 s"): the
# undo window. One due later shows the time it will go.
COUNTDOWN_LIMIT = 120.0
# Refusals listed per attempt; the transcript holds the rest.
MAX_PROBLEMS_SHOWN = 5

RETRYABLE = (State.SCHEDULED, State.QUEUED, State.DEFERRED, State.FAILED)
# The retry action's words (text, accessible name, tip): for a message tried
# before, and for one never tried (send later, or the undo window).
_RETRY_NOW = ("&Retry now", "Retry now", "Send this message again as soon as possible")
_SEND_NOW = ("Send &now", "Send now", "Send this message now instead of waiting for its time")
CANCELLABLE = (State.SCHEDULED, State.QUEUED, State.DEFERRED, State.SENDING)

#: Keyboard shortcuts of the pane's actions (window-wide while the pane is shown).
SHORTCUTS = {
    "retry": "Ctrl+R",
    "cancel": "Ctrl+Shift+X",
    "edit": "Ctrl+E",
    "send_again": "Ctrl+Shift+R",
    "mark_sent": "Ctrl+Shift+M",
    "save": "Ctrl+Shift+S",
    "transcript": "Ctrl+U",
}

_OUTCOMES = {
    "sent": ("Sent", "ok"),
    "partial": ("Partly sent", "warn"),
    "deferred": ("Deferred", "warn"),
    "defer": ("Deferred", "warn"),
    "given-up": ("Deferred again: Mailer gave up", "error"),
    "rejected": ("Refused", "error"),
    "fail": ("Failed", "error"),
    "pause-account": ("Stopped: the account needs attention", "error"),
    "uncertain": ("Uncertain: no reply after the whole message", "warn"),
    "interrupted": ("Interrupted", "muted"),
}
_UNCERTAIN_ADVICE = (
    "Ask a recipient, or look in the account's Sent folder, whether it arrived; then "
    "choose Mark as sent, or Send again (the recipients may get it twice)."
)
_KIND_NAMES = {"to": "To", "cc": "Cc", "bcc": "Bcc"}
_UNSAFE_FILE_NAME = re.compile(r'[\\/:*?"<>|\x00-\x1f\x7f]+')


# -- words -----------------------------------------------------------------------------


def _when(at: float, now: float, *, seconds: bool = False) -> str:
    """A time as people read it: ``14:05`` today, ``Tue 03 Jun 14:05`` otherwise."""
    local, today = time.localtime(at), time.localtime(now)
    clock = "%H:%M:%S" if seconds else "%H:%M"
    if local[:3] == today[:3]:
        return time.strftime(clock, local)
    if local.tm_year == today.tm_year:
        return time.strftime(f"%a %d %b {clock}", local)
    return time.strftime(f"%d %b %Y {clock}", local)


def _duration(seconds: float) -> str:
    """``0.34`` -> ``"0.3 s"``, ``75`` -> ``"1 min 15 s"``."""
    if seconds < 0.1:
        return "under 0.1 s"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes} min {rest} s"


def describe_state(row: MessageRow, now: float, paused: Paused | None = None) -> str:
    """The message's state in plain words, e.g. "Deferred — next attempt at 14:05"."""
    held = held_by(row, paused, now)
    if held == SENDING_PAUSED:
        return "Waiting — sending is paused; the message goes once you resume sending"
    if held is not None:
        # The short state ("needs password") in a sentence: "needs its password".
        said = "needs its password" if held == "needs password" else held
        return (
            f"Waiting — the account {row.account} {said}; the message goes once that is "
            "fixed (see below)"
        )
    state = row.state
    if state is State.SCHEDULED:
        wait = row.due_at - now
        if wait <= 0:
            return "Sending now"
        if wait < COUNTDOWN_LIMIT:
            return f"Sending in {math.ceil(wait)} s"
        return f"Scheduled to send at {_when(row.due_at, now)}"
    if state is State.QUEUED:
        if row.due_at > now + 1:
            return f"Queued — sending at {_when(row.due_at, now)}"
        return "Queued — waiting to be sent"
    if state is State.SENDING:
        return "Sending…"
    if state is State.SENT:
        sent = f"Sent at {_when(row.updated_at, now)}"
        refused = sum(1 for r in row.recipients if r.status == "rejected")
        if refused:
            return f"{sent} ({refused} of {len(row.recipients)} recipients refused)"
        return sent
    if state is State.DEFERRED:
        return f"Deferred — next attempt at {_when(row.due_at, now)}"
    if state is State.FAILED:
        return "Failed"
    if state is State.CANCELLED:
        return "Cancelled"
    # Either the server's reply never came, or Mailer stopped (killed, a crash)
    # between the final "." and the reply: whether it arrived is not known.
    return "Uncertain: the whole message went out, but no confirmation came"


def _state_tone(row: MessageRow) -> str:
    state = row.state
    if state is State.SENT and any(r.status == "rejected" for r in row.recipients):
        return "warn"
    return {
        State.SENT: "ok",
        State.FAILED: "error",
        State.DEFERRED: "warn",
        State.UNCERTAIN: "warn",
        State.CANCELLED: "muted",
    }.get(state, "normal")


# States a message is not tried again from by itself: what the replies'
# explanations say Mailer will try again later is no longer so.
_NOT_TRIED_AGAIN = frozenset({State.FAILED, State.SENT, State.CANCELLED, State.UNCERTAIN})
# States a message comes to that make a notice about the moment before stale.
_NEWS = frozenset(
    {State.SENDING, State.SENT, State.FAILED, State.DEFERRED, State.UNCERTAIN, State.CANCELLED}
)
_HELD_WITH_OTHERS = (
    "It waits with its account's other messages: the server put one of them off just "
    "before (it could not be reached, or asked to be left alone for a while), so Mailer "
    "does not ask it again before then. Send now tries at once."
)


def _recipient_status(recipient: RecipientRow, row: MessageRow) -> tuple[str, str]:
    """What happened to one recipient, and the tone to show it in."""
    status, state = recipient.status, row.state
    if row.in_doubt(recipient):
        return "Unknown: it may have arrived", "warn"
    if state is State.UNCERTAIN and status in ("pending", "deferred"):
        # Another transaction's "." is in doubt; this one's never began.
        return "Not sent yet: it goes once you decide", "normal"
    if status == "accepted":
        if recipient.text == "marked as sent":
            return "Marked as sent", "ok"
        return "Accepted", "ok"
    if status == "rejected":
        # No reply code: Mailer failed it (its file missing, too big for the
        # server's stated limit), no server refused it.
        return ("Refused" if recipient.code is not None else "Not sent"), "error"
    if state is State.FAILED:
        return "Not delivered", "error"
    if state is State.UNCERTAIN:
        return "Unknown: it may have arrived", "warn"
    if state is State.CANCELLED:
        return "Not sent (cancelled)", "muted"
    if status == "deferred":
        return "Deferred: Mailer will try again", "warn"
    if state is State.SENDING:
        return "Sending", "normal"
    return "Waiting", "normal"


def _reply_words(recipient: RecipientRow) -> str:
    if recipient.code is None:
        return clean_text(recipient.text or "")
    enhanced = f" {recipient.enhanced}" if recipient.enhanced else ""
    return clean_text(f"{recipient.code}{enhanced} {recipient.text or ''}")


def _file_name_for(subject: str) -> str:
    stem = _UNSAFE_FILE_NAME.sub(" ", subject).strip(" .")[:80].strip()
    return f"{stem or 'message'}.eml"


def open_as_draft(row: MessageRow, root: Path) -> tuple[Draft, list[str]]:
    """The spool file of ``row`` as a new draft, attachments in a fresh folder under ``root``.

    Blocking (reads and writes files): call it on a worker thread. Bcc
    recipients are not in the message's headers, so they come from the
    outbox row. Returns the draft and the addresses that could not be read.
    """
    ensure_private_dir(root)
    folder = Path(tempfile.mkdtemp(prefix=f"message-{row.id}-", dir=root))
    try:
        draft, unparsed = load_eml(row.spool_path, folder)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    if not draft.attachments:
        with contextlib.suppress(OSError):
            folder.rmdir()
    known = {a.addr_spec.lower() for a in draft.recipients}
    bcc: list[MailAddress] = []
    for recipient in row.recipients:
        if recipient.kind != "bcc" or recipient.address.lower() in known:
            continue
        try:
            bcc.append(parse_address(recipient.address))
        except AddressError:
            unparsed.append(recipient.address)
    if bcc:
        draft = dataclasses.replace(draft, bcc=(*draft.bcc, *bcc))
    return draft, unparsed


# -- colours ---------------------------------------------------------------------------


def _tone_colour(palette: QPalette, tone: str) -> QColor:
    """Colours derived from the palette, readable on light and dark themes alike."""
    dark = palette.color(QPalette.ColorRole.Window).lightness() < 128
    if tone == "error":
        return QColor("#ff7b72") if dark else QColor("#c62828")
    if tone == "ok":
        return QColor("#7ee787") if dark else QColor("#2e7d32")
    if tone == "warn":
        return QColor("#e3b341") if dark else QColor("#8a5a00")
    if tone == "muted":
        return palette.color(QPalette.ColorRole.PlaceholderText)
    return palette.color(QPalette.ColorRole.WindowText)


def _label(text: str = "", parent: QWidget | None = None, *, bold: bool = False) -> QLabel:
    """A plain-text label (server words and subjects are never read as markup)."""
    label = QLabel(parent)
    label.setTextFormat(Qt.TextFormat.PlainText)
    label.setWordWrap(True)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    # A word longer than the column (a Message-ID) is cut at the edge; without this
    # its width would be the label's minimum, and the rows around it would not wrap.
    label.setMinimumWidth(1)
    if bold:
        font = label.font()
        font.setBold(True)
        label.setFont(font)
    label.setText(text)
    return label


def _clear_layout(layout: QVBoxLayout) -> None:
    while layout.count():
        item = layout.takeAt(0)
        widget = item.widget() if item is not None else None
        if widget is not None:
            widget.hide()
            widget.deleteLater()


# -- the transcript window -------------------------------------------------------------


def _line_kind(line: str) -> str:
    if line.startswith("C: "):
        return "client"
    if line.startswith("S: "):
        return "error" if re.match(r"S: [45]\d\d(?:[ -]|$)", line) else "server"
    return "note"


class TranscriptDialog(QDialog):
    """The full transcript of each attempt, one attempt at a time, in a fixed-width font.

    Client lines (``C:``), server lines (``S:``) and notes (``*``) keep their
    prefixes and each get their own colour; error replies stand out.
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Transcript")
        self.setModal(False)
        self.setAccessibleName("Transcript")
        self.resize(720, 480)
        self._attempts: list[AttemptRow] = []
        self._kinds: list[str] = []

        layout = QVBoxLayout(self)
        self.attempt_box = QComboBox(self)
        self.attempt_box.setAccessibleName("Attempt")
        self.attempt_box.setToolTip("Which attempt's transcript to show")
        self.view = QTextBrowser(self)
        self.view.setAccessibleName("Transcript lines")
        self.view.setOpenLinks(False)
        self.view.setLineWrapMode(QTextBrowser.LineWrapMode.NoWrap)
        self.view.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.copy_button = QPushButton("&Copy all", self)
        self.copy_button.setAccessibleName("Copy transcript")
        self.copy_button.setToolTip("Copy the whole transcript of this attempt")
        self.close_button = QPushButton("Close", self)
        self.close_button.setAccessibleName("Close transcript")
        self.close_button.setToolTip("Close this window (Esc)")
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(self.copy_button)
        buttons.addWidget(self.close_button)
        layout.addWidget(self.attempt_box)
        layout.addWidget(self.view, 1)
        layout.addLayout(buttons)

        self.attempt_box.currentIndexChanged.connect(self._show_attempt)
        self.copy_button.clicked.connect(self.copy)
        self.close_button.clicked.connect(self.close)

    def set_attempts(self, title: str, attempts: Sequence[AttemptRow], current: int = -1) -> None:
        """Offer ``attempts`` (oldest first); show the one at ``current`` (-1: the last)."""
        self.setWindowTitle(f"Transcript — {title}" if title else "Transcript")
        self._attempts = list(attempts)
        now = time.time()
        self.attempt_box.blockSignals(True)
        self.attempt_box.clear()
        for number, attempt in enumerate(self._attempts, start=1):
            outcome = _OUTCOMES.get(attempt.outcome or "", ("In progress", ""))[0]
            self.attempt_box.addItem(
                f"Attempt {number} — {_when(attempt.started_at, now, seconds=True)} — {outcome}"
            )
        self.attempt_box.blockSignals(False)
        if self._attempts:
            index = current if 0 <= current < len(self._attempts) else len(self._attempts) - 1
            self.attempt_box.setCurrentIndex(index)
        self._show_attempt()

    @Slot()
    def _show_attempt(self) -> None:
        index = self.attempt_box.currentIndex()
        transcript = self._attempts[index].transcript if 0 <= index < len(self._attempts) else ""
        lines = transcript.splitlines()
        self._kinds = [_line_kind(line) for line in lines]
        if not lines:
            self.view.setHtml("<p><i>Nothing was recorded for this attempt.</i></p>")
            return
        palette = self.palette()
        colours = {
            "client": palette.color(QPalette.ColorRole.Link),
            "server": palette.color(QPalette.ColorRole.Text),
            "note": palette.color(QPalette.ColorRole.PlaceholderText),
            "error": _tone_colour(palette, "error"),
        }
        paragraphs = []
        for line, kind in zip(lines, self._kinds, strict=True):
            weight = "bold" if kind == "error" else "normal"
            style = f"margin:0; white-space:pre; color:{colours[kind].name()}; font-weight:{weight}"
            paragraphs.append(f'<p style="{style}">{html.escape(line)}</p>')
        self.view.setHtml("".join(paragraphs))

    def text(self) -> str:
        return self.view.toPlainText()

    def line_kinds(self) -> list[str]:
        """Each shown line's kind: client, server, error or note."""
        return list(self._kinds)

    @Slot()
    def copy(self) -> None:
        QGuiApplication.clipboard().setText(self.text())

    def changeEvent(self, event: QEvent) -> None:
        super().changeEvent(event)
        if event.type() == QEvent.Type.PaletteChange:
            self._show_attempt()


# -- the pane --------------------------------------------------------------------------


class DetailPane(QWidget):
    """Everything about one outbox message, live, with the actions its state allows."""

    #: A new draft made from the shown message ("Edit as new"): a Draft, and the
    #: account it was sent from (the composer sends from it again).
    editAsNew = Signal(object, str)
    #: A message not sent yet, to be taken out of the outbox and edited (as
    #: Undo send does): its number.
    takeBack = Signal(int)

    def __init__(
        self,
        bridge: OutboxBridge,
        parent: QWidget | None = None,
        *,
        edits_dir: Path | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("detailPane")
        self.setAccessibleName("Message details")
        self.bridge = bridge
        # "Edit as new" copies attachments out of the message, under the data folder.
        self.edits_dir = edits_dir or bridge.store.database.parent / "edit-as-new"
        self._message: int | None = None
        self._row: MessageRow | None = None
        self._attempts: list[tuple[AttemptRow, Conversation]] = []
        self._displayed: DisplayedMessage | None = None
        self._body_for: int | None = None
        self._requests = {"details": 0, "body": 0, "paused": 0}
        self._paused: Paused = {}  # accounts not being tried, as last read
        self._busy: set[str] = set()
        self._transcript: TranscriptDialog | None = None
        self.edit_question: QMessageBox | None = None

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)

        self.toolbar = QToolBar("Message actions", self)
        self.toolbar.setAccessibleName("Message actions")
        self.toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        text, name, tip = _RETRY_NOW
        self.retry_action = self._action(text, "retry", name, tip, self.retry_now)
        self.cancel_action = self._action(
            "&Cancel", "cancel", "Cancel sending", "Do not send this message", self.cancel
        )
        self.send_again_action = self._action(
            "Send &again", "send_again", "Send again",
            "The message did not arrive: send it again (recipients may get it twice)",
            self.send_again,
        )  # fmt: skip
        self.mark_sent_action = self._action(
            "&Mark as sent", "mark_sent", "Mark as sent",
            "The message arrived: record it as sent without sending it again",
            self.mark_as_sent,
        )  # fmt: skip
        self.edit_action = self._action(
            "&Edit as new", "edit", "Edit as new message",
            "Open a new draft with this message's recipients, subject, text and attachments",
            self.edit_as_new,
        )  # fmt: skip
        self.save_action = self._action(
            "&Save as .eml…", "save", "Save as .eml",
            "Save the message exactly as it is sent, as an .eml file", self._ask_save,
        )  # fmt: skip
        self.transcript_action = self._action(
            "Show &transcript", "transcript", "Show transcript",
            "Every line Mailer and the server said, attempt by attempt", self.show_transcript,
        )  # fmt: skip
        layout.addWidget(self.toolbar)

        self.banner = _label("", self)
        self.banner.setObjectName("detailBanner")
        self.banner.setContentsMargins(8, 6, 8, 6)
        self.banner.setAutoFillBackground(True)
        self.banner.hide()
        self._banner_tone = "normal"
        layout.addWidget(self.banner)

        self.placeholder = _label("Select a message to see what happened to it.", self)
        self.placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.placeholder.setContentsMargins(12, 12, 12, 12)
        layout.addWidget(self.placeholder, 1)

        self.scroll_area = QScrollArea(self)
        self.scroll_area.setAccessibleName("Message details")
        self.scroll_area.setWidgetResizable(True)
        self.scroll_area.setFrameShape(QFrame.Shape.NoFrame)
        self.scroll_area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        layout.addWidget(self.scroll_area, 1)
        self._build_content()
        self.scroll_area.hide()

        self._countdown = QTimer(self)
        self._countdown.setInterval(1000)
        self._countdown.timeout.connect(self._tick)

        bridge.stateChanged.connect(self._on_state_changed)
        bridge.progress.connect(self._on_progress)
        self._update_actions()

    def _action(
        self, text: str, key: str, name: str, tip: str, slot: Callable[[], None]
    ) -> QAction:
        action = QAction(text, self)
        sequence = QKeySequence(SHORTCUTS[key])
        action.setShortcut(sequence)
        action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        shortcut = sequence.toString(QKeySequence.SequenceFormat.NativeText)
        action.setToolTip(f"{tip} ({shortcut})")
        action.setStatusTip(tip)
        action.triggered.connect(slot)
        self.toolbar.addAction(action)
        button = self.toolbar.widgetForAction(action)
        if button is not None:
            button.setAccessibleName(name)
            button.setAccessibleDescription(tip)
        return action

    def button(self, action: QAction) -> QToolButton:
        """The tool button that shows ``action``."""
        widget = self.toolbar.widgetForAction(action)
        assert isinstance(widget, QToolButton)
        return widget

    def _build_content(self) -> None:
        content = QWidget(self.scroll_area)
        content.setAccessibleName("Message details content")
        # Never wider than the column: long words (a Message-ID, an address) are cut
        # at the edge instead of pushing the whole pane into sideways scrolling.
        policy = QSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        policy.setHeightForWidth(True)  # wrapped lines make it taller, never wider
        content.setSizePolicy(policy)
        column = QVBoxLayout(content)
        column.setContentsMargins(10, 8, 10, 10)

        self.subject_label = _label("", content, bold=True)
        font = self.subject_label.font()
        font.setPointSizeF(font.pointSizeF() * 1.25)
        self.subject_label.setFont(font)
        column.addWidget(self.subject_label)

        # A grid, not a QFormLayout: its rows grow when a long value wraps.
        form = QGridLayout()
        form.setColumnStretch(1, 1)
        form.setHorizontalSpacing(8)
        form.setVerticalSpacing(2)
        self.fields: dict[str, QLabel] = {}
        self._field_names: dict[str, QLabel] = {}
        for row, name in enumerate(
            ("From", "To", "Cc", "Bcc", "Account", "State", "Size", "Message-ID", "Date")
        ):
            title = _label(f"{name}:", content)
            title.setWordWrap(False)
            title.setMinimumWidth(0)
            title.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Minimum)
            value = _label("", content)
            form.addWidget(title, row, 0, Qt.AlignmentFlag.AlignTop)
            form.addWidget(value, row, 1)
            self._field_names[name] = title
            self.fields[name] = value
        self.state_label = self.fields["State"]
        column.addLayout(form)

        self.state_detail = _label("", content)
        column.addWidget(self.state_detail)

        progress_row = QHBoxLayout()
        self.progress_bar = QProgressBar(content)
        self.progress_bar.setAccessibleName("Sending progress")
        self.progress_bar.setRange(0, 1000)
        self.progress_bar.setTextVisible(False)
        self.progress_label = _label("", content)
        # One line beside the bar: wrapped, the bar's stretch squeezed it into
        # a column one word wide ("1.1 KB" / "of" / "1.1 KB", five lines high).
        self.progress_label.setWordWrap(False)
        self.progress_label.setMinimumWidth(0)
        progress_row.addWidget(self.progress_bar, 1)
        progress_row.addWidget(self.progress_label)
        column.addLayout(progress_row)
        self.progress_bar.hide()
        self.progress_label.hide()

        # What happened first (each recipient, each attempt), then the message itself.
        column.addWidget(self._heading("Recipients", content))
        self.recipients_box = QVBoxLayout()
        column.addLayout(self.recipients_box)

        column.addWidget(self._heading("Attempts", content))
        self.attempts_box = QVBoxLayout()
        column.addLayout(self.attempts_box)
        column.addWidget(self._heading("Message", content))
        self.browser = MessageBrowser(content)
        self.browser.setMinimumHeight(180)
        self.browser.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.browser.blockedChanged.connect(
            self._update_body_notes, Qt.ConnectionType.QueuedConnection
        )
        column.addWidget(self.browser, 3)
        self.body_note = _label("", content)
        self.body_note.hide()
        column.addWidget(self.body_note)
        self.attachments_label = _label("", content)
        self.attachments_label.hide()
        column.addWidget(self.attachments_label)

        column.addStretch(1)
        self.scroll_area.setWidget(content)

    @staticmethod
    def _heading(text: str, parent: QWidget) -> QLabel:
        label = _label(text, parent, bold=True)
        label.setContentsMargins(0, 10, 0, 2)
        return label

    # -- public --------------------------------------------------------------------------

    @property
    def message_id(self) -> int | None:
        """The outbox number of the message shown, or None."""
        return self._message

    @property
    def row(self) -> MessageRow | None:
        """The message as last loaded."""
        return self._row

    def refresh(self) -> None:
        """Read the message shown again (something it depends on changed)."""
        self._reload()

    def show_message(self, message_id: int | None) -> None:
        """Show the outbox message ``message_id``; None empties the pane."""
        if message_id is not None and message_id == self._message:
            self._reload()
            return
        self._message = message_id
        self._row = None
        self._attempts = []
        self._displayed = None
        self._body_for = None
        self._busy.clear()
        for key in self._requests:
            self._requests[key] += 1  # answers still on their way are for another message
        self._countdown.stop()
        self._clear_banner()
        self._clear_content()
        if message_id is None:
            self.scroll_area.hide()
            self.placeholder.show()
            if self._transcript is not None:
                self._transcript.hide()
        else:
            self.placeholder.hide()
            self.scroll_area.show()
            self.subject_label.setText("Loading…")
            self._reload()
        self._update_actions()

    def state_text(self) -> str:
        return self.state_label.text()

    def recipients_text(self) -> str:
        """What the recipients section says, as plain text."""
        return self._text_of(self.recipients_box)

    def attempts_text(self) -> str:
        """What the attempts section says, as plain text."""
        return self._text_of(self.attempts_box)

    @staticmethod
    def _text_of(layout: QVBoxLayout) -> str:
        texts: list[str] = []
        for index in range(layout.count()):
            item = layout.itemAt(index)
            widget = item.widget() if item is not None else None
            if widget is not None:
                texts.extend(label.text() for label in widget.findChildren(QLabel))
        return "\n".join(t for t in texts if t)

    # -- loading -------------------------------------------------------------------------

    def _reload(self) -> None:
        message = self._message
        if message is None:
            return
        self._requests["details"] += 1
        request = self._requests["details"]
        self.bridge.load_details(
            message, lambda details, error: self._details_loaded(request, message, details, error)
        )
        self._requests["paused"] += 1
        paused_request = self._requests["paused"]
        self.bridge.load_paused_accounts(
            lambda paused, error: self._paused_loaded(paused_request, paused, error)
        )

    def _paused_loaded(
        self, request: int, paused: Paused | None, error: BaseException | None
    ) -> None:
        if request != self._requests["paused"] or error is not None or paused is None:
            return  # an older answer; an unreadable outbox is told by the row's answer
        self._paused = paused
        self._render_state()

    def _details_loaded(
        self,
        request: int,
        message: int,
        details: tuple[MessageRow, list[AttemptRow]] | None,
        error: BaseException | None,
    ) -> None:
        if request != self._requests["details"] or message != self._message:
            return  # an older answer, or for a message no longer shown
        if error is not None or details is None:
            self._row = None
            self.subject_label.setText("")
            self._show_problem(f"The message cannot be shown: {error}")
            self._update_actions()
            return
        row, attempts = details
        before = self._row.state if self._row is not None and self._row.id == row.id else None
        if before is not None and row.state is not before and row.state in _NEWS:
            # What the banner said of the moment before ("too late to cancel",
            # "sending is paused") is over: the state says what happened.
            self._clear_banner()
        # The row and its attempts are rendered together: both come from one
        # read, so the state shown always agrees with the attempts below it.
        self._attempts = [(attempt, read_transcript(attempt.transcript)) for attempt in attempts]
        self._row = row
        self._render_row()  # the recipients and the actions with it
        self._render_attempts()
        if self._body_for != row.id:
            self._load_body(row)
        dialog = self._transcript
        if dialog is not None and dialog.isVisible():
            # Follow the latest attempt, unless an earlier one was chosen.
            chosen = dialog.attempt_box.currentIndex()
            latest = chosen == dialog.attempt_box.count() - 1
            self._fill_transcript(-1 if latest else chosen)

    def _load_body(self, row: MessageRow) -> None:
        self._body_for = row.id
        self._requests["body"] += 1
        request, path = self._requests["body"], row.spool_path
        self.browser.show_note("Loading the message…")
        self.bridge.run_in_background(
            lambda: load_for_display(path),
            lambda displayed, error: self._body_loaded(request, row.id, displayed, error),
        )

    def _body_loaded(
        self,
        request: int,
        message: int,
        displayed: DisplayedMessage | None,
        error: BaseException | None,
    ) -> None:
        if request != self._requests["body"] or message != self._message:
            return
        if error is not None or displayed is None:
            self.browser.show_note("The message itself cannot be shown.")
            if isinstance(error, MessageFileError):
                self._show_problem(str(error))
            else:
                self._show_problem(f"The message itself cannot be shown: {error}")
            return
        self._displayed = displayed
        view = displayed.view
        if view.html is not None or view.text.strip():
            self.browser.show_displayed(displayed)
        else:
            self.browser.show_note("This message has no text.")
        if view.sender:
            self._set_field("From", view.sender)
        self._set_field("Date", view.date)
        if view.attachments:
            lines = [f"Attachments ({len(view.attachments)}):"]
            lines += [f"  {a.name} — {human_size(a.size)}" for a in view.attachments]
            self.attachments_label.setText("\n".join(lines))
            self.attachments_label.show()
        else:
            self.attachments_label.hide()
        self._update_body_notes()

    @Slot()
    def _update_body_notes(self) -> None:
        notes = []
        blocked = sorted(set(self.browser.blocked_urls))
        if blocked:
            count = len(blocked)
            things = "item" if count == 1 else "items"
            notes.append(
                f"Remote content blocked: {count} {things} this message links to (images, "
                "style sheets) were not loaded, so showing it here tells nobody it was opened."
            )
        if self._displayed is not None and self._displayed.view.cut:
            notes.append(
                "The message is long: only its beginning is shown. Save it as .eml to read "
                "all of it."
            )
        self.body_note.setText("\n".join(notes))
        self._tone(self.body_note, "muted")
        self.body_note.setVisible(bool(notes))

    # -- showing -------------------------------------------------------------------------

    def _clear_content(self) -> None:
        self.subject_label.setText("")
        for name in self.fields:
            self._set_field(name, "")
        self.state_detail.setText("")
        self.state_detail.hide()
        self.progress_bar.hide()
        self.progress_label.hide()
        self.browser.show_note("")
        self.body_note.hide()
        self.attachments_label.hide()
        _clear_layout(self.recipients_box)
        _clear_layout(self.attempts_box)

    def _set_field(self, name: str, text: str) -> None:
        label = self.fields[name]
        label.setText(text)
        label.setToolTip(text if len(text) > 40 else "")  # the whole of a value cut at the edge
        label.setVisible(bool(text))
        self._field_names[name].setVisible(bool(text))

    def _held_with_others(self, row: MessageRow) -> bool:
        """Queued for later by no choice of the person's: its account's server
        put another message off just before (OutboxStore.hold_queued). A
        message given back by Cancel waits too, after an interrupted attempt."""
        if row.state is not State.QUEUED or row.due_at <= time.time() + 1:
            return False
        return not self._attempts or self._attempts[-1][0].outcome != "interrupted"

    def _render_row(self) -> None:
        row = self._row
        if row is None:
            return
        self.subject_label.setText(clean_text(row.subject) or "(no subject)")
        sender = self._displayed.view.sender if self._displayed is not None else ""
        self._set_field("From", sender or row.envelope_from)
        for kind in ("to", "cc", "bcc"):
            addresses = [shown_address(r.address) for r in row.recipients if r.kind == kind]
            self._set_field(_KIND_NAMES[kind], ", ".join(addresses))
        self._set_field("Account", row.account)
        self._set_field("Size", human_size(row.size))
        self._set_field("Message-ID", row.message_id)
        if self._displayed is None:
            self._set_field("Date", "")
        self._render_state()
        detail = clean_text(row.last_error or "")
        if row.state is State.UNCERTAIN:
            detail = f"{detail} {_UNCERTAIN_ADVICE}".strip()
        elif self._held_with_others(row):
            detail = f"{_HELD_WITH_OTHERS} Its last try: {detail}" if detail else _HELD_WITH_OTHERS
        show_detail = bool(detail) and row.state not in (State.SENT, State.CANCELLED)
        self.state_detail.setText(detail if show_detail else "")
        self._tone(self.state_detail, "error" if row.state is State.FAILED else "muted")
        self.state_detail.setVisible(show_detail)
        sending = row.state is State.SENDING
        if not sending:
            self.progress_bar.hide()
            self.progress_label.hide()
        elif not self.progress_bar.isVisibleTo(self):
            self.progress_bar.setValue(0)
            self.progress_bar.show()
        if row.state is State.SCHEDULED:
            self._countdown.start()
        else:
            self._countdown.stop()
        self._render_recipients()
        self._update_actions()

    def _render_state(self) -> None:
        row = self._row
        if row is None:
            return
        paused = with_sending_paused(self._paused, self.bridge.runner.paused)
        self._set_field("State", describe_state(row, time.time(), paused))
        self._tone(self.state_label, _state_tone(row))

    @Slot()
    def _tick(self) -> None:
        if self._row is None or self._row.state is not State.SCHEDULED:
            self._countdown.stop()
            return
        self._render_state()

    def _conversation_for(self, address: str) -> Conversation | None:
        """The latest attempt that asked the server about ``address`` (else the latest)."""
        for _attempt, conversation in reversed(self._attempts):
            if conversation.rcpt_reply(address) is not None:
                return conversation
        return self._attempts[-1][1] if self._attempts else None

    def _render_recipients(self) -> None:
        row = self._row
        _clear_layout(self.recipients_box)
        if row is None:
            return
        for recipient in row.recipients:
            box = QFrame()
            shown = shown_address(recipient.address)
            box.setAccessibleName(f"Recipient {shown}")
            lines = QVBoxLayout(box)
            lines.setContentsMargins(0, 2, 0, 4)
            lines.setSpacing(1)
            top = QHBoxLayout()
            kind = _KIND_NAMES.get(recipient.kind, recipient.kind)
            top.addWidget(_label(f"{shown} ({kind})", box), 1)
            status, tone = _recipient_status(recipient, row)
            status_label = _label(status, box, bold=True)
            status_label.setWordWrap(False)  # short: keeps its width beside a long address
            status_label.setMinimumWidth(0)
            status_label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignTop)
            self._tone(status_label, tone)
            top.addWidget(status_label)
            lines.addLayout(top)
            words = _reply_words(recipient)
            if recipient.code is None and row.state in _NOT_TRIED_AGAIN:
                words = without_retry_note(words)  # Mailer's own words: nothing is tried again
            if words and not (recipient.status == "accepted" and recipient.code is None):
                prefix = "Server: " if recipient.code is not None else ""
                lines.addWidget(_label(f"{prefix}{words}", box))
            explanation = recipient_explanation(
                recipient.address,
                recipient.code,
                recipient.enhanced,
                recipient.text,
                self._conversation_for(recipient.address),
                alone=not any(r.status == "accepted" for r in row.recipients),
            )
            if explanation is not None:
                advice = explanation.advice
                if row.state in _NOT_TRIED_AGAIN and recipient.status != "rejected":
                    # Mailer gave up on it, or it went to the others only: no
                    # "will try this recipient again later" any more.
                    advice = without_retry_note(advice)
                meaning = _label(f"{explanation.summary} {advice}".strip(), box)
                self._tone(meaning, "muted")
                lines.addWidget(meaning)
            self.recipients_box.addWidget(box)

    def _render_attempts(self) -> None:
        _clear_layout(self.attempts_box)
        if not self._attempts:
            none = _label("No attempt yet.")
            self._tone(none, "muted")
            self.attempts_box.addWidget(none)
            return
        now = time.time()
        for number in range(len(self._attempts), 0, -1):  # the latest first
            attempt, conversation = self._attempts[number - 1]
            self.attempts_box.addWidget(self._attempt_entry(number, attempt, conversation, now))

    def _attempt_entry(
        self, number: int, attempt: AttemptRow, conversation: Conversation, now: float
    ) -> QFrame:
        box = QFrame()
        box.setFrameShape(QFrame.Shape.StyledPanel)
        box.setAccessibleName(f"Attempt {number}")
        lines = QVBoxLayout(box)
        lines.setContentsMargins(6, 4, 6, 4)
        lines.setSpacing(2)
        outcome, tone = _OUTCOMES.get(attempt.outcome or "", ("In progress", "normal"))
        parts = [f"Attempt {number}", _when(attempt.started_at, now, seconds=True)]
        if attempt.ended_at is not None:
            parts.append(_duration(max(0.0, attempt.ended_at - attempt.started_at)))
        parts.append(outcome)
        top = QHBoxLayout()
        title = _label(" · ".join(parts), box, bold=True)
        self._tone(title, tone)
        top.addWidget(title, 1)
        if attempt.transcript:
            show = QToolButton(box)
            show.setText("Transcript")
            show.setAccessibleName(f"Show transcript of attempt {number}")
            show.setToolTip(f"Every line of attempt {number}")
            show.clicked.connect(lambda _=False, index=number - 1: self._open_transcript(index))
            top.addWidget(show, 0, Qt.AlignmentFlag.AlignTop)
        lines.addLayout(top)
        several = len(conversation.hosts) > 1  # direct delivery to several servers
        if several:
            lines.addWidget(_label(f"Servers: {', '.join(conversation.hosts)}", box))
        elif conversation.host:
            lines.addWidget(_label(f"Server: {conversation.host}", box))
        problems = conversation.problems
        for exchange in problems[:MAX_PROBLEMS_SHOWN]:
            asked = clean_text(exchange.command)
            if asked == END_OF_DATA:
                asked = "the end of the message (.)"  # a lone "." reads as nothing
            said = clean_text(str(exchange.reply))
            words = f"{asked} → {said}" if asked else said
            who = exchange.host if several and exchange.host else "The server"
            lines.addWidget(_label(f"{who} said: {words}", box))
            alone = self.row is not None and not any(
                r.status == "accepted" for r in self.row.recipients
            )
            explanation = conversation.explain(exchange, alone=alone)
            advice = explanation.advice
            if self.row is not None and self.row.state in _NOT_TRIED_AGAIN:
                advice = without_retry_note(advice)  # nothing is tried again now
            meaning = _label(f"{explanation.summary} {advice}".strip(), box)
            self._tone(meaning, "muted")
            lines.addWidget(meaning)
        if len(problems) > MAX_PROBLEMS_SHOWN:
            more = len(problems) - MAX_PROBLEMS_SHOWN
            lines.addWidget(_label(f"…and {more} more in the transcript.", box))
        if attempt.error and not problems:
            error = _label(clean_text(attempt.error), box)
            self._tone(error, tone if tone != "normal" else "muted")
            lines.addWidget(error)
        if attempt.outcome == "interrupted" and not problems and not attempt.error:
            lines.addWidget(_label("The send stopped before the server answered.", box))
        return box

    # -- live updates --------------------------------------------------------------------

    @Slot(int, str, str)
    def _on_state_changed(self, message: int, state: str, detail: str) -> None:
        if message != self._message:
            return
        if state == State.SENDING.value:
            self._mark_sending()
        else:
            self.progress_bar.hide()
            self.progress_label.hide()
        self._reload()

    def _mark_sending(self) -> None:
        """Show "Sending…" at once; the reload that follows brings the rest."""
        if self._row is not None and self._row.state is not State.SENDING:
            self._row = self._row._replace(state=State.SENDING)
            self._render_row()

    @Slot(int, int, int)
    def _on_progress(self, message: int, sent: int, total: int) -> None:
        if message != self._message:
            return
        self._mark_sending()
        self.progress_bar.setValue(int(sent * 1000 / total) if total > 0 else 0)
        self.progress_label.setText(f"{human_size(sent)} of {human_size(total)}")
        self.progress_bar.show()
        self.progress_label.show()

    # -- actions -------------------------------------------------------------------------

    def _update_actions(self) -> None:
        row = self._row
        state = row.state if row is not None else None
        uncertain = state is State.UNCERTAIN
        self.retry_action.setEnabled(state in RETRYABLE and "retry" not in self._busy)
        self._word_retry(first=row is not None and row.attempts == 0)
        self.cancel_action.setEnabled(state in CANCELLABLE and "cancel" not in self._busy)
        self.send_again_action.setVisible(uncertain)
        self.mark_sent_action.setVisible(uncertain)
        resolving = "resolve" in self._busy
        self.send_again_action.setEnabled(uncertain and not resolving)
        self.mark_sent_action.setEnabled(uncertain and not resolving)
        self.edit_action.setEnabled(row is not None and "edit" not in self._busy)
        self.save_action.setEnabled(row is not None and "save" not in self._busy)
        self.transcript_action.setEnabled(any(a.transcript for a, _ in self._attempts))

    def _word_retry(self, *, first: bool) -> None:
        """ "Send now" for a message never tried (scheduled, or waiting for its
        turn), "Retry now" for one that was."""
        text, name, tip = _SEND_NOW if first else _RETRY_NOW
        action = self.retry_action
        if action.text() == text:
            return
        shortcut = action.shortcut().toString(QKeySequence.SequenceFormat.NativeText)
        action.setText(text)
        action.setToolTip(f"{tip} ({shortcut})")
        action.setStatusTip(tip)
        button = self.toolbar.widgetForAction(action)
        if button is not None:
            button.setAccessibleName(name)
            button.setAccessibleDescription(tip)

    def _start(self, name: str) -> int | None:
        """Mark action ``name`` under way for the shown message; its number, or None."""
        if self._row is None or name in self._busy:
            return None
        self._busy.add(name)
        self._clear_banner()
        self._update_actions()
        return self._row.id

    def _finished(
        self, name: str, message: int, failed: str, succeeded: Callable[[Any], None] | None = None
    ) -> Callable[[Any, BaseException | None], None]:
        """The on_done of an action: the problem inline, then the state as it is now."""

        def done(result: Any, error: BaseException | None) -> None:
            # Told even when another message is shown by now: nothing is lost.
            if error is not None:
                self._show_problem(f"{failed}: {error}")
            elif succeeded is not None:
                succeeded(result)
            if message == self._message:
                self._busy.discard(name)
                self._update_actions()
                self._reload()

        return done

    @Slot()
    def retry_now(self) -> None:
        message = self._start("retry")
        if message is None:
            return

        def retried(_result: Any) -> None:
            if self.bridge.runner.paused:
                self._show_notice(
                    "Sending is paused: this message goes as soon as you resume sending "
                    "(Resume sending, or Send queued now)."
                )

        self.bridge.retry_now(
            message,
            self._finished("retry", message, "The message could not be retried", retried),
        )

    @Slot()
    def cancel(self) -> None:
        message = self._start("cancel")
        if message is None:
            return

        def cancelled(state: Any) -> None:
            if state is State.SENDING:
                self._show_notice(
                    "Stopping the send: the connection is being closed. The message goes back "
                    "to the queue and waits a minute; press Cancel again to cancel it for good."
                )

        self.bridge.cancel(
            message,
            self._finished("cancel", message, "The message could not be cancelled", cancelled),
        )

    @Slot()
    def send_again(self) -> None:
        self._resolve(sent=False)

    @Slot()
    def mark_as_sent(self) -> None:
        self._resolve(sent=True)

    def _resolve(self, *, sent: bool) -> None:
        message = self._start("resolve")
        if message is not None:
            failed = (
                "The message could not be marked as sent"
                if sent
                else ("The message could not be queued again")
            )
            self.bridge.resolve_uncertain(
                message, sent=sent, on_done=self._finished("resolve", message, failed)
            )

    @Slot()
    def edit_as_new(self) -> None:
        """A new draft from the shown message. One not sent yet would still go
        as it is beside the new one: the person chooses to take it out of the
        outbox to edit it, or to edit a copy."""
        row = self._row
        if row is not None and row.state in (State.SCHEDULED, State.QUEUED, State.DEFERRED):
            self._ask_edit_waiting(row.id)
            return
        self._edit_copy()

    def _ask_edit_waiting(self, message: int) -> None:
        if self.edit_question is not None and self.edit_question.isVisible():
            return
        box, take, copy = two_choices(
            self,
            "Edit a message not sent yet",
            "This message has not been sent yet.",
            "Take it out and edit: it leaves the outbox and goes back to a composer; "
            "nothing is sent until you send it again.\n"
            "Edit a copy: this message is still sent as it is, and the copy is a new one.",
            ("Take it out and &edit", Role.AcceptRole),
            ("Edit a &copy", Role.ActionRole),
        )

        def answered(button: Any) -> None:
            if button is take:
                self.takeBack.emit(message)
            elif button is copy and message == self._message:
                self._edit_copy()

        box.buttonClicked.connect(answered)
        self.edit_question = box
        box.open()

    def _edit_copy(self) -> None:
        row = self._row
        message = self._start("edit")
        if message is None or row is None:
            return
        root = self.edits_dir

        def opened(result: Any) -> None:
            draft, unparsed = result
            if unparsed:
                self._show_notice(
                    "These addresses could not be read and were left out of the new draft: "
                    + ", ".join(clean_text(a) for a in unparsed)
                )
            self.editAsNew.emit(draft, row.account)

        self.bridge.run_in_background(
            lambda: open_as_draft(row, root),
            self._finished(
                "edit", message, "The message could not be opened as a new draft", opened
            ),
        )

    @Slot()
    def _ask_save(self) -> None:
        if self._row is None:
            return
        path, _ = QFileDialog.getSaveFileName(
            self,
            "Save message as .eml",
            _file_name_for(self._row.subject),
            "Email messages (*.eml);;All files (*)",
        )
        if path:
            self.save_eml_to(path)

    def save_eml_to(self, path: str | os.PathLike[str]) -> None:
        """Write the message, byte for byte as it is sent, to ``path`` (off the GUI thread)."""
        row = self._row
        message = self._start("save")
        if message is None or row is None:
            return
        source, target = row.spool_path, Path(path)
        self.bridge.run_in_background(
            lambda: save_eml(source, target),
            self._finished(
                "save", message, "The message was not saved",
                lambda _: self._show_notice(f"Saved as {target}."),
            ),
        )  # fmt: skip

    @Slot()
    def show_transcript(self) -> None:
        self._open_transcript(-1)

    def _open_transcript(self, index: int) -> None:
        if self._transcript is None:
            self._transcript = TranscriptDialog(self)
        self._fill_transcript(index)
        self._transcript.show()
        self._transcript.raise_()

    @property
    def transcript_dialog(self) -> TranscriptDialog | None:
        """The transcript window, once it was opened."""
        return self._transcript

    def _fill_transcript(self, index: int) -> None:
        if self._transcript is None:
            return
        subject = clean_text(self._row.subject) if self._row is not None else ""
        self._transcript.set_attempts(subject, [a for a, _ in self._attempts], index)

    # -- the banner and colours ----------------------------------------------------------

    def _show_problem(self, text: str) -> None:
        self._set_banner(text, "error")

    def _show_notice(self, text: str) -> None:
        self._set_banner(text, "normal")

    def _set_banner(self, text: str, tone: str) -> None:
        self._banner_tone = tone
        self.banner.setText(text)
        self.banner.setAccessibleName("Problem" if tone == "error" else "Notice")
        self._paint_banner()
        self.banner.show()

    def _clear_banner(self) -> None:
        self.banner.setText("")
        self.banner.hide()

    def banner_text(self) -> str:
        """The problem or notice shown at the top, or "" when none is."""
        return self.banner.text() if not self.banner.isHidden() else ""

    def _paint_banner(self) -> None:
        palette = self.banner.palette()
        base = self.palette()
        palette.setColor(QPalette.ColorRole.Window, base.color(QPalette.ColorRole.AlternateBase))
        palette.setColor(QPalette.ColorRole.WindowText, _tone_colour(base, self._banner_tone))
        self.banner.setPalette(palette)

    def _tone(self, label: QLabel, tone: str) -> None:
        label.setProperty("tone", tone)  # painted again when the palette changes
        self._paint(label, tone)

    def _paint(self, label: QLabel, tone: str) -> None:
        palette = label.palette()
        palette.setColor(QPalette.ColorRole.WindowText, _tone_colour(self.palette(), tone))
        label.setPalette(palette)

    def changeEvent(self, event: QEvent) -> None:
        super().changeEvent(event)
        if event.type() == QEvent.Type.PaletteChange:
            for label in self.findChildren(QLabel):
                tone = label.property("tone")
                if isinstance(tone, str):
                    self._paint(label, tone)
            self._paint_banner()


__all__ = ["SHORTCUTS", "DetailPane", "TranscriptDialog", "describe_state", "open_as_draft"]
