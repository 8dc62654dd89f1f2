"""The composer: one window per draft, from writing to the outbox.

The window edits a `StoredDraft` (what is autosaved and what the drafts folder
lists) and, at Send, turns it into a `Draft` that the bridge builds and queues
off the GUI thread. Every disk write (drafts) goes through
`OutboxBridge.run_in_background`, one at a time so a later save never races an
earlier one; the server's SIZE limit is asked by `SizeLimits` on its own
threads. Problems are shown in the window's banner; nothing typed is lost.
"""

from __future__ import annotations

import re
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

import shiboken6
from PySide6.QtCore import QBuffer, QDateTime, QIODevice, Qt, QTimer, Signal, Slot
from PySide6.QtGui import (
    QAction,
    QCloseEvent,
    QDragEnterEvent,
    QDragMoveEvent,
    QDropEvent,
    QFont,
    QFontDatabase,
    QIcon,
    QImage,
    QKeySequence,
)
from PySide6.QtWidgets import (
    QComboBox,
    QDateTimeEdit,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QLabel,
    QLineEdit,
    QMainWindow,
    QMessageBox,
    QSplitter,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from mailer_gui.accounts.model import Account, Identity
from mailer_gui.message.addresses import AddressError, MailAddress, parse_address
from mailer_gui.message.build import DraftError
from mailer_gui.message.draft import BodyFormat, Draft, InlineImage, Priority
from mailer_gui.message.drafts import DraftStore, StoredDraft
from mailer_gui.message.mailto import MailtoError, parse_mailto
from mailer_gui.preferences import Preferences
from mailer_gui.ui.bridge import OutboxBridge
from mailer_gui.ui.composer.address_field import AddressField
from mailer_gui.ui.composer.attachments import AttachmentList, SizeLimits
from mailer_gui.ui.composer.banner import Banner
from mailer_gui.ui.composer.editor import MarkdownEditor, local_files
from mailer_gui.ui.composer.highlighter import MarkdownHighlighter
from mailer_gui.ui.composer.preview import PreviewPane
from mailer_gui.ui.composer.reminder import attachment_mention

AUTOSAVE_SECONDS = 5.0
PREVIEW_DELAY_MS = 300  # the preview follows typing once it pauses this long
SIGNATURE_SEPARATOR = "-- \n"
_SIGNATURE_LINE = re.compile(r"^-- $", re.MULTILINE)
_MESSAGE_ID = re.compile(r"^<[^<>\s]+>$")
_IMAGE_FILTER = "Images (*.png *.jpg *.jpeg *.gif *.webp *.bmp *.svg);;All files (*)"
_PRIORITIES = (
    ("Normal priority", Priority.NORMAL),
    ("High priority", Priority.HIGH),
    ("Low priority", Priority.LOW),
)
_FORMATS: tuple[tuple[str, BodyFormat], ...] = (("Markdown", "markdown"), ("Plain text", "plain"))

Done = Callable[[Any, BaseException | None], None]


def _sender_address(identity: Identity) -> MailAddress:
    address = parse_address(identity.email)
    return replace(address, display_name=identity.display_name or "")


def _png(image: QImage) -> bytes:
    device = QBuffer()
    device.open(QIODevice.OpenModeFlag.WriteOnly)
    # The format is a str at run time, whatever the stubs say (bytes is refused).
    image.save(device, "PNG")  # type: ignore[call-overload]
    device.close()
    return bytes(device.data().data())


def _image_url(name: str) -> str:
    """How the Markdown names an inline image (spaces and the like %-escaped)."""
    return quote(name)


class SendLaterDialog(QDialog):
    """Pick when the message goes: a date and time in the future."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Send later")
        self.setAccessibleName("Send later")
        now = QDateTime.currentDateTime()
        self.when = QDateTimeEdit(now.addSecs(3600), self)
        self.when.setAccessibleName("Send at")
        self.when.setCalendarPopup(True)
        self.when.setDisplayFormat("yyyy-MM-dd HH:mm")
        self.when.setMinimumDateTime(now)
        self.error = QLabel(self)
        self.error.setAccessibleName("Send later problem")
        self.error.setWordWrap(True)
        self.error.hide()
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel, self
        )
        ok = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        ok.setText("&Schedule")
        ok.setAccessibleName("Schedule")
        self.buttons.button(QDialogButtonBox.StandardButton.Cancel).setAccessibleName("Cancel")
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout = QFormLayout(self)
        layout.addRow("Send &at:", self.when)
        layout.addRow(self.error)
        layout.addRow(self.buttons)

    def due_at(self) -> float:
        """The chosen moment, in seconds since the epoch."""
        return self.when.dateTime().toMSecsSinceEpoch() / 1000

    def accept(self) -> None:
        if self.due_at() <= time.time():
            self.error.setText("That moment has passed: pick a time in the future.")
            self.error.show()
            return
        super().accept()


class ComposerWindow(QMainWindow):
    """A message being written. Emits `queued` once the outbox holds it, then closes."""

    #: outbox message number, when it is due (epoch seconds): the undo window ends then
    queued = Signal(int, float)
    #: the draft's id, after its file was written
    draftSaved = Signal(str)
    #: the draft's id, after its file was removed (sent, or discarded)
    draftDeleted = Signal(str)
    #: asked to close, it stays open (Cancel in "Save draft?", or the save failed)
    closeCancelled = Signal()
    #: Quit Mailer (Ctrl+Q) pressed in this window
    quitRequested = Signal()

    def __init__(
        self,
        bridge: OutboxBridge,
        accounts: Sequence[Account],
        drafts: DraftStore,
        *,
        stored: StoredDraft | None = None,
        undo_seconds: float = 10.0,
        default_format: Literal["markdown", "plain"] = "markdown",
        known_addresses: Sequence[str] = (),
        size_limits: SizeLimits | None = None,
        autosave_seconds: float = AUTOSAVE_SECONDS,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setAccessibleName("Composer")
        self.resize(960, 680)
        self.bridge = bridge
        self.drafts = drafts
        # Called when a draft write or removal finishes after this window has
        # gone (it closes as it sends, before its draft is removed), since its
        # draftSaved and draftDeleted signals went with it.
        self.drafts_changed_later: Callable[[], None] | None = None
        self._accounts = {account.name: account for account in accounts}
        self._senders: list[tuple[Account, Identity]] = [
            (account, identity) for account in accounts for identity in account.all_identities
        ]
        self._undo_seconds = undo_seconds
        self.size_limits = size_limits or SizeLimits(self)
        self.size_limits.known.connect(self._size_limit_known)

        opened_from_store = stored is not None and stored.id is not None
        self._opened: StoredDraft | None = stored if opened_from_store else None
        self._draft_id = stored.id if stored is not None and stored.id else uuid.uuid4().hex
        self._stored_exists = opened_from_store
        self._in_reply_to = stored.in_reply_to if stored else None
        self._references = stored.references if stored else ()
        self._images: dict[str, InlineImage] = {}
        self._pictures: dict[str, QImage] = {}
        self._signature_block: str | None = None
        self._loading = True
        self._sending = False
        self._ending = False  # the desktop session is ending: no questions (keep_and_close)
        self._close_now = False
        self._closed = False
        self._pending_send_at: float | None = None
        self._io: deque[tuple[Callable[[], Any], Done]] = deque()
        self._io_busy = False
        self.close_question: QMessageBox | None = None
        self._problem: str | None = None  # what the error notice is about (_show_error)
        self.send_later_dialog: SendLaterDialog | None = None
        self.file_dialog: QFileDialog | None = None

        self._build_widgets(known_addresses)
        self._build_actions()
        self._fill(stored, default_format)
        self._loading = False

        # What "unchanged" means: what was opened (or started), then each save.
        self._clean = self.state()
        # What the draft file holds once the writes handed over so far are done
        # (writes go in order, so later decisions can count on it).
        self._written = self._opened if self._opened is not None else self._clean
        # The version the drafts folder returns to on Discard: the one opened, or
        # the last one saved with Save draft; None: no draft file to keep.
        self._kept: StoredDraft | None = self._opened

        self._preview_timer = QTimer(self)
        self._preview_timer.setSingleShot(True)
        self._preview_timer.setInterval(PREVIEW_DELAY_MS)
        self._preview_timer.timeout.connect(self._render_preview)
        self._autosave_timer = QTimer(self)
        self._autosave_timer.setInterval(max(1, int(autosave_seconds * 1000)))
        self._autosave_timer.timeout.connect(self.autosave)
        self._autosave_timer.start()
        self._connect_changes()
        self._attachments_changed()
        self._render_preview()
        self._update_title()
        # Where the writing starts: who to, unless the draft already says.
        (self.editor if self.to_field.text() else self.to_field).setFocus()

    # ================================================================ building

    def _build_widgets(self, known_addresses: Sequence[str]) -> None:
        self.notice = Banner("Notice", self)
        self.reminder = Banner("Attachment reminder", self)

        self.from_box = QComboBox(self)
        self.from_box.setAccessibleName("From")
        several = len(self._accounts) > 1
        for account, identity in self._senders:
            label = f"{identity}  ({account.name})" if several else str(identity)
            self.from_box.addItem(label)
        if not self._senders:
            self.from_box.addItem("No account: add one in the main window first")
            self.from_box.setEnabled(False)

        self.to_field = AddressField("To", self)
        self.cc_field = AddressField("Cc", self)
        self.bcc_field = AddressField("Bcc", self)
        self.set_known_addresses(known_addresses)
        self.subject_field = QLineEdit(self)
        self.subject_field.setAccessibleName("Subject")
        self.subject_field.setObjectName("subject_field")

        self.format_box = QComboBox(self)
        self.format_box.setAccessibleName("Body format")
        self.format_box.setToolTip("Markdown (sent as HTML with a plain-text copy) or plain text")
        for label, value in _FORMATS:
            self.format_box.addItem(label, value)
        self.priority_box = QComboBox(self)
        self.priority_box.setAccessibleName("Priority")
        for label, priority in _PRIORITIES:
            self.priority_box.addItem(label, priority)

        self.editor = MarkdownEditor(self)
        self.highlighter = MarkdownHighlighter(self.editor.document(), self.editor.palette())
        self.preview = PreviewPane(self)
        self.splitter = QSplitter(Qt.Orientation.Horizontal, self)
        self.splitter.setAccessibleName("Editor and preview")
        self.splitter.addWidget(self.editor)
        self.splitter.addWidget(self.preview)
        self.splitter.setChildrenCollapsible(False)
        self.splitter.setSizes([1, 1])

        self.attachments = AttachmentList(self.bridge.run_in_background, self)
        self.attachments.add_button.clicked.connect(self.choose_attachments)

        form = QFormLayout()
        form.addRow("&From:", self.from_box)
        form.addRow("&To:", self.to_field)
        form.addRow("&Cc:", self.cc_field)
        form.addRow("&Bcc:", self.bcc_field)
        form.addRow("S&ubject:", self.subject_field)

        central = QWidget(self)
        layout = QVBoxLayout(central)
        layout.addWidget(self.notice)
        layout.addWidget(self.reminder)
        layout.addLayout(form)
        layout.addWidget(self.splitter, 1)
        layout.addWidget(self.attachments)
        self.setCentralWidget(central)
        self.statusBar().setAccessibleName("Composer status")
        self.setAcceptDrops(True)

    def _action(
        self,
        text: str,
        slot: Callable[[], object],
        shortcuts: Iterable[QKeySequence | QKeySequence.StandardKey | str] = (),
        *,
        icon: str = "",
        icon_text: str = "",
        tip: str = "",
    ) -> QAction:
        action = QAction(text, self)
        if icon:
            action.setIcon(QIcon.fromTheme(icon))
        if icon_text:
            action.setIconText(icon_text)
        keys = [QKeySequence(s) for s in shortcuts]
        if keys:
            action.setShortcuts(keys)
        shown = keys[0].toString(QKeySequence.SequenceFormat.NativeText) if keys else ""
        action.setToolTip(f"{tip or text.replace('&', '').rstrip('…')} ({shown})" if shown else tip)
        action.triggered.connect(lambda _checked=False: slot())
        self.addAction(action)
        return action

    def _build_actions(self) -> None:
        editor = self.editor
        self.send_action = self._action(
            "&Send",
            self.send,
            ["Ctrl+Return", "Ctrl+Enter"],
            icon="mail-send",
            tip="Send the message (it waits in the outbox for the undo time first)",
        )
        self.send_later_action = self._action(
            "Send &later…", self.send_later, ["Ctrl+Shift+Return"], icon="appointment-new"
        )
        self.save_action = self._action(
            "Sa&ve draft", self.save_draft, [QKeySequence.StandardKey.Save], icon="document-save"
        )
        self.attach_action = self._action(
            "&Attach files…", self.choose_attachments, ["Ctrl+Shift+A"], icon="mail-attachment"
        )
        self.close_action = self._action(
            "&Close", self.close, [QKeySequence.StandardKey.Close], icon="window-close"
        )
        # Quit from here as from the main window: it asks about each open message.
        self.quit_action = self._action(
            "&Quit Mailer", self.quitRequested.emit, [QKeySequence.StandardKey.Quit],
            icon="application-exit",
        )  # fmt: skip
        self.format_actions: dict[str, QAction] = {
            "bold": self._action(
                "&Bold", editor.bold, ["Ctrl+B"], icon="format-text-bold", icon_text="B"
            ),
            "italic": self._action(
                "&Italic", editor.italic, ["Ctrl+I"], icon="format-text-italic", icon_text="I"
            ),
            "heading": self._action(
                "&Heading", editor.heading, ["Ctrl+Shift+H"], icon_text="H"
            ),
            "link": self._action(
                "&Link", editor.link, ["Ctrl+K"], icon="insert-link", icon_text="Link"
            ),
            "bulleted_list": self._action(
                "B&ulleted list",
                editor.bulleted_list,
                ["Ctrl+Shift+8"],
                icon="format-list-unordered",
                icon_text="• List",
            ),
            "numbered_list": self._action(
                "&Numbered list",
                editor.numbered_list,
                ["Ctrl+Shift+7"],
                icon="format-list-ordered",
                icon_text="1. List",
            ),
            "quote": self._action("&Quote", editor.quote, ["Ctrl+Shift+9"], icon_text="Quote"),
            "code": self._action("&Code", editor.code, ["Ctrl+E"], icon_text="Code"),
            "image": self._action(
                "I&mage…", self.choose_image, ["Ctrl+Shift+I"], icon="insert-image",
                icon_text="Image",
            ),
            "horizontal_rule": self._action(
                "Horizontal &rule",
                editor.horizontal_rule,
                ["Ctrl+Shift+-"],
                icon="insert-horizontal-rule",
                icon_text="Rule",
            ),
        }  # fmt: skip
        self.preview_action = self._action(
            "Show &preview", lambda: None, ["Ctrl+Shift+P"], icon_text="Preview"
        )
        self.preview_action.setCheckable(True)
        self.preview_action.setChecked(True)
        self.preview_action.toggled.connect(self._update_format)

        every = [
            self.send_action,
            self.send_later_action,
            self.save_action,
            self.attach_action,
            self.close_action,
            self.quit_action,
            self.preview_action,
            *self.format_actions.values(),
        ]
        editor.reserve_shortcuts(key for action in every for key in action.shortcuts())

        message_menu = self.menuBar().addMenu("&Message")
        for action in (self.send_action, self.send_later_action, self.save_action):
            message_menu.addAction(action)
        message_menu.addAction(self.attach_action)
        message_menu.addSeparator()
        message_menu.addAction(self.close_action)
        message_menu.addAction(self.quit_action)
        format_menu = self.menuBar().addMenu("F&ormat")
        for action in self.format_actions.values():
            format_menu.addAction(action)
        format_menu.addSeparator()
        format_menu.addAction(self.preview_action)
        self.menuBar().setAccessibleName("Composer menu")

        message_bar = QToolBar("Message", self)
        message_bar.setObjectName("message_toolbar")
        message_bar.setAccessibleName("Message toolbar")
        message_bar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        for action in (self.send_action, self.send_later_action, self.save_action):
            message_bar.addAction(action)
        message_bar.addAction(self.attach_action)
        message_bar.addSeparator()
        message_bar.addWidget(self.priority_box)
        self.addToolBar(message_bar)
        format_bar = QToolBar("Formatting", self)
        format_bar.setObjectName("format_toolbar")
        format_bar.setAccessibleName("Formatting toolbar")
        format_bar.addWidget(self.format_box)
        format_bar.addSeparator()
        for action in self.format_actions.values():
            format_bar.addAction(action)
        format_bar.addSeparator()
        format_bar.addAction(self.preview_action)
        self.addToolBarBreak()
        self.addToolBar(format_bar)
        for bar in (message_bar, format_bar):
            for action in bar.actions():
                button = bar.widgetForAction(action)
                if button is not None and not button.accessibleName():
                    button.setAccessibleName(action.text().replace("&", "").rstrip("…"))

    def apply_preferences(self, preferences: Preferences) -> None:
        """Settings changed (or first applied): the undo window and the editor's font."""
        self._undo_seconds = float(preferences.undo_seconds)
        if preferences.composer_font_family:
            font = QFont(preferences.composer_font_family)
        else:
            font = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)
        font.setPointSize(preferences.composer_font_size)
        self.editor.setFont(font)

    def set_known_addresses(self, addresses: Sequence[str]) -> None:
        """Addresses offered while typing To, Cc and Bcc (those used before)."""
        for field in (self.to_field, self.cc_field, self.bcc_field):
            field.set_known_addresses(addresses)

    # ================================================================ filling

    def _fill(self, stored: StoredDraft | None, default_format: BodyFormat) -> None:
        draft = stored or StoredDraft(body_format=default_format)
        self._select_sender(draft)
        self.to_field.setText(draft.to)
        self.cc_field.setText(draft.cc)
        self.bcc_field.setText(draft.bcc)
        self.subject_field.setText(draft.subject)
        self.format_box.setCurrentIndex(
            next(i for i, (_, value) in enumerate(_FORMATS) if value == draft.body_format)
        )
        self.priority_box.setCurrentIndex(
            next(i for i, (_, value) in enumerate(_PRIORITIES) if value is draft.priority)
        )
        self.editor.setPlainText(draft.body)
        for image in draft.inline_images:
            self._add_image(image)
        self.attachments.set_paths(draft.attachments)
        signature = self._identity_signature()
        if self._opened is None:
            self._set_signature(signature)  # a new message gets the sender's signature
            cursor = self.editor.textCursor()
            cursor.setPosition(len(draft.body.rstrip("\n")))
            self.editor.setTextCursor(cursor)
        elif signature and SIGNATURE_SEPARATOR + signature in draft.body:
            self._signature_block = SIGNATURE_SEPARATOR + signature
        self.editor.document().clearUndoRedoStacks()
        self._update_format()

    def _select_sender(self, draft: StoredDraft) -> None:
        if not self._senders:
            self.notice.show_message(
                "There is no account to send from yet. Add one in the main window "
                "(Accounts); this draft can be saved meanwhile.",
                error=True,
            )
            return
        index = next(
            (
                i
                for i, (account, identity) in enumerate(self._senders)
                if account.name == draft.account and identity.email == draft.identity
            ),
            None,
        )
        if index is None:
            index = next(
                (i for i, (acc, _) in enumerate(self._senders) if acc.name == draft.account), 0
            )
            if draft.account and draft.account not in self._accounts:
                self.notice.show_message(
                    f"This draft was written from the account “{draft.account}”, which no "
                    f"longer exists. Check who it is sent from (From).",
                )
        self.from_box.setCurrentIndex(index)

    def _connect_changes(self) -> None:
        self.from_box.currentIndexChanged.connect(self._sender_changed)
        self.format_box.currentIndexChanged.connect(self._update_format)
        self.subject_field.textChanged.connect(self._update_title)
        self.editor.textChanged.connect(self._preview_timer.start)
        self.editor.textChanged.connect(self._hide_reminder_if_resolved)
        self.editor.imagePasted.connect(self.paste_image)
        self.editor.filesDropped.connect(self.add_attachments)
        self.attachments.changed.connect(self._attachments_changed)
        for field in (self.to_field, self.cc_field, self.bcc_field):
            field.textChanged.connect(self._recheck_problem)
        self.attachments.changed.connect(self._recheck_problem)

    @classmethod
    def from_mailto(
        cls,
        url: str,
        bridge: OutboxBridge,
        accounts: Sequence[Account],
        drafts: DraftStore,
        **options: Any,
    ) -> ComposerWindow:
        """A new composer filled from a ``mailto:`` link (RFC 6068).

        Addresses stay as the link wrote them, so a bad one shows underlined;
        the body is plain text, as a link carries no Markdown. Text that is not
        a mailto: link opens an empty composer that says so.
        """
        try:
            fields = parse_mailto(url)
        except MailtoError as exc:
            window = cls(bridge, accounts, drafts, **options)
            window.notice.show_message(str(exc), error=True)
            return window
        in_reply_to = fields.in_reply_to
        if in_reply_to and not in_reply_to.startswith("<"):
            in_reply_to = f"<{in_reply_to}>"
        if in_reply_to and not _MESSAGE_ID.match(in_reply_to):
            in_reply_to = None
        prefill = StoredDraft(
            to=", ".join(fields.to),
            cc=", ".join(fields.cc),
            bcc=", ".join(fields.bcc),
            subject=fields.subject,
            body=fields.body,
            body_format="plain",
            in_reply_to=in_reply_to,
            references=(in_reply_to,) if in_reply_to else (),
        )
        return cls(bridge, accounts, drafts, stored=prefill, **options)

    # ================================================================ state

    @property
    def draft_id(self) -> str:
        """The id the draft has (or will have, at its first save) in the drafts folder."""
        return self._draft_id

    def current_sender(self) -> tuple[Account, Identity] | None:
        index = self.from_box.currentIndex()
        return self._senders[index] if 0 <= index < len(self._senders) else None

    def body_format(self) -> BodyFormat:
        value: BodyFormat = self.format_box.currentData()
        return value

    def inline_images(self) -> tuple[InlineImage, ...]:
        """The inline images the body refers to (one deleted from the text is not sent)."""
        body = self.editor.toPlainText()
        return tuple(
            image for name, image in self._images.items() if f"({_image_url(name)})" in body
        )

    def state(self) -> StoredDraft:
        """Everything in the window, as the drafts folder keeps it."""
        sender = self.current_sender()
        return StoredDraft(
            account=sender[0].name if sender else "",
            identity=sender[1].email if sender else "",
            to=self.to_field.text(),
            cc=self.cc_field.text(),
            bcc=self.bcc_field.text(),
            subject=self.subject_field.text(),
            body=self.editor.toPlainText(),
            body_format=self.body_format(),
            attachments=self.attachments.paths(),
            inline_images=self.inline_images(),
            priority=self.priority_box.currentData(),
            in_reply_to=self._in_reply_to,
            references=self._references,
            id=self._draft_id,
        )

    def is_modified(self) -> bool:
        """Changed since it was opened or last saved with Save draft."""
        return not self.state().same_content(self._clean)

    def _update_title(self) -> None:
        self.setWindowTitle(self.subject_field.text().strip() or "New message")

    # ================================================================ signature

    def _identity_signature(self) -> str | None:
        sender = self.current_sender()
        return sender[1].signature if sender else None

    def _set_signature(self, signature: str | None) -> None:
        """Put ``signature`` below a "-- " line, in place of the one there (undoable)."""
        new_block = SIGNATURE_SEPARATOR + signature if signature else ""
        text = self.editor.toPlainText()
        start, end = -1, len(text)
        if self._signature_block:
            found = text.rfind(self._signature_block)
            if found >= 0:
                start, end = found, found + len(self._signature_block)
        if start < 0:
            lines = list(_SIGNATURE_LINE.finditer(text))
            if lines:  # the signature was edited: it still runs from its "-- " line
                start = lines[-1].start()
        cursor = self.editor.textCursor()
        position = cursor.position()
        cursor.beginEditBlock()
        if start >= 0:
            if not new_block:
                while start > 0 and text[start - 1] == "\n":
                    start -= 1  # the blank lines that set it apart go too
            cursor.setPosition(start)
            cursor.setPosition(end, cursor.MoveMode.KeepAnchor)
            cursor.insertText(new_block)
        elif new_block:
            trailing = len(text) - len(text.rstrip("\n"))
            cursor.movePosition(cursor.MoveOperation.End)
            cursor.insertText("\n" * max(0, 2 - trailing) + new_block)
        cursor.setPosition(min(position, len(self.editor.toPlainText())))
        cursor.endEditBlock()
        self.editor.setTextCursor(cursor)
        self._signature_block = new_block or None

    @Slot(int)
    def _sender_changed(self, _index: int) -> None:
        if self._loading:
            return
        self._set_signature(self._identity_signature())
        self._attachments_changed()

    # ================================================================ format and preview

    @Slot()
    def _update_format(self) -> None:
        markdown = self.body_format() == "markdown"
        self.highlighter.setDocument(self.editor.document() if markdown else None)
        for action in self.format_actions.values():
            action.setEnabled(markdown)
        self.preview_action.setEnabled(markdown)
        self.preview.setVisible(markdown and self.preview_action.isChecked())
        if not self._loading:
            self._render_preview()

    @Slot()
    def _render_preview(self) -> None:
        if self._closed or not self.preview.isVisibleTo(self):
            return
        pictures = {
            image.name: self._pictures[image.name]
            for image in self.inline_images()
            if image.name in self._pictures
        }
        self.preview.show_markdown(self.editor.toPlainText(), pictures)

    # ================================================================ images

    def _unique_image_name(self, wanted: str) -> str:
        stem, dot, extension = wanted.rpartition(".")
        if not dot:
            stem, extension = wanted, ""
        name, number = wanted, 1
        while name in self._images:
            number += 1
            name = f"{stem}-{number}{dot}{extension}"
        return name

    @Slot(QImage)
    def paste_image(self, image: QImage) -> None:
        """Inline a picture (from the clipboard) as PNG, with ``![image-1](image-1.png)``."""
        number = 1
        while f"image-{number}.png" in self._images:
            number += 1
        name = f"image-{number}.png"
        self._add_image(InlineImage(name, data=_png(image), content_type="image/png"), image)
        self.editor.insert_image_reference(name, _image_url(name))

    def insert_image_file(self, path: Path | str) -> None:
        """Inline a picture file, read when the message is built."""
        file = Path(path)
        name = self._unique_image_name(file.name)
        self._add_image(InlineImage(name, path=file))
        self.editor.insert_image_reference(name, _image_url(name))

    def _add_image(self, image: InlineImage, picture: QImage | None = None) -> None:
        self._images[image.name] = image
        if picture is not None:
            self._pictures[image.name] = picture
        elif image.data is not None:
            self._pictures[image.name] = QImage.fromData(image.data)
        elif image.path is not None:
            path = image.path

            def loaded(picture: QImage | None, error: BaseException | None) -> None:
                if not shiboken6.isValid(self):
                    return
                if picture is not None and not picture.isNull():
                    self._pictures[image.name] = picture
                    self._preview_timer.start()

            self.bridge.run_in_background(lambda: QImage(str(path)), loaded)
        self._update_inline_bytes()

    def _update_inline_bytes(self) -> None:
        self.attachments.set_inline_bytes(
            sum(len(image.data) for image in self._images.values() if image.data is not None)
        )

    def choose_image(self) -> None:
        dialog = self._file_dialog("Insert image", _IMAGE_FILTER)
        dialog.filesSelected.connect(self._insert_image_files)
        dialog.open()

    @Slot(list)
    def _insert_image_files(self, files: list[str]) -> None:
        for file in files:
            self.insert_image_file(file)

    # ================================================================ attachments

    def _file_dialog(self, title: str, name_filter: str = "") -> QFileDialog:
        dialog = QFileDialog(self, title)
        dialog.setAccessibleName(title)
        dialog.setFileMode(QFileDialog.FileMode.ExistingFiles)
        if name_filter:
            dialog.setNameFilter(name_filter)
        self.file_dialog = dialog
        return dialog

    def choose_attachments(self) -> None:
        """Ask for files to attach (a window-modal file dialog; typing is not blocked)."""
        dialog = self._file_dialog("Attach files")
        dialog.filesSelected.connect(self.add_attachments)
        dialog.open()

    @Slot(list)
    def add_attachments(self, paths: Iterable[Path | str]) -> None:
        self.attachments.add_paths(paths)

    def drop_files(self, event: QDropEvent) -> bool:
        """Attach the local files a drop carries; whether it carried any."""
        files = local_files(event.mimeData())
        if not files:
            return False
        self.add_attachments(files)
        event.acceptProposedAction()
        return True

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if local_files(event.mimeData()):
            event.acceptProposedAction()
        else:
            super().dragEnterEvent(event)

    def dragMoveEvent(self, event: QDragMoveEvent) -> None:
        if local_files(event.mimeData()):
            event.acceptProposedAction()
        else:
            super().dragMoveEvent(event)

    def dropEvent(self, event: QDropEvent) -> None:
        if not self.drop_files(event):
            super().dropEvent(event)

    @Slot()
    def _attachments_changed(self) -> None:
        if self.attachments.paths():
            self.reminder.hide()
        sender = self.current_sender()
        if sender is None or not self.attachments.paths():
            return
        account = sender[0]
        known, limit = self.size_limits.cached(account)
        if known:
            self.attachments.set_size_limit(limit, account.host or account.name)
        else:
            self.attachments.set_size_limit(None, "")
            self.size_limits.request(account)

    @Slot(str, object)
    def _size_limit_known(self, account_name: str, limit: int | None) -> None:
        sender = self.current_sender()
        if sender is not None and sender[0].name == account_name:
            self.attachments.set_size_limit(limit, sender[0].host or account_name)

    # ================================================================ sending

    def _show_error(self, text: str, problem: str | None = None) -> None:
        """Show what stops the message; ``problem`` ("addresses", "recipients",
        "attachments") lets the notice go by itself once the person fixed it."""
        self.notice.show_message(text, error=True)
        self._problem = problem

    @Slot()
    def _recheck_problem(self) -> None:
        """The fields a shown problem is about changed: hide it if it is gone."""
        problem = self._problem
        if problem is None or self.notice.isHidden():
            return
        fields = (self.to_field, self.cc_field, self.bcc_field)
        if problem == "addresses":
            solved = not any(span.error for field in fields for span in field.spans())
        elif problem == "recipients":
            solved = any(span.address is not None for field in fields for span in field.spans())
        else:
            solved = not self.attachments.unreadable()
        if solved:
            self.notice.hide()
            self._problem = None

    def _hide_reminder_if_resolved(self) -> None:
        if not self.reminder.isHidden() and attachment_mention(self._reminder_text()) is None:
            self.reminder.hide()

    def _reminder_text(self) -> str:
        return f"{self.subject_field.text()}\n{self.editor.toPlainText()}"

    def draft_for_sending(self) -> tuple[Draft, str] | None:
        """The Draft to queue and its account, or None after showing what stops it."""
        sender = self.current_sender()
        if sender is None:
            self._show_error(
                "There is no account to send from. Add one in the main window (Accounts), "
                "then send; this draft can be saved meanwhile."
            )
            return None
        account, identity = sender
        problems: list[str] = []
        try:
            from_address = _sender_address(identity)
        except AddressError as exc:
            self._show_error(f"The sender address cannot be used: {exc}. Fix it in the account.")
            return None
        reply_to: tuple[MailAddress, ...] = ()
        if identity.reply_to:
            try:
                reply_to = (parse_address(identity.reply_to),)
            except AddressError as exc:
                problems.append(f"Reply-To of {identity.email}: {exc}")
        recipients: dict[str, tuple[MailAddress, ...]] = {}
        for label, field in (("To", self.to_field), ("Cc", self.cc_field), ("Bcc", self.bcc_field)):
            field.show_all_problems()
            spans = field.spans()
            problems += [f"{label}: {span.error}" for span in spans if span.error]
            recipients[label] = tuple(span.address for span in spans if span.address is not None)
        if problems:
            self._show_error(
                "Some addresses cannot be used; fix the underlined ones:\n" + "\n".join(problems),
                "addresses",
            )
            return None
        if not any(recipients.values()):
            self._show_error(
                "The message has no recipient: add at least one in To, Cc or Bcc.", "recipients"
            )
            self.to_field.setFocus()
            return None
        unreadable = self.attachments.unreadable()
        if unreadable:
            self._show_error(
                "\n".join(
                    f"The attachment {path} cannot be read ({reason}). "
                    "Remove it, or attach it again."
                    for path, reason in unreadable.items()
                ),
                "attachments",
            )
            return None
        draft = Draft(
            sender=from_address,
            to=recipients["To"],
            cc=recipients["Cc"],
            bcc=recipients["Bcc"],
            reply_to=reply_to,
            subject=self.subject_field.text(),
            body=self.editor.toPlainText(),
            body_format=self.body_format(),
            attachments=self.attachments.paths(),
            inline_images=self.inline_images(),
            priority=self.priority_box.currentData(),
            in_reply_to=self._in_reply_to,
            references=self._references,
        )
        return draft, account.name

    @Slot()
    def send(self) -> None:
        """Send now: into the outbox, due when the undo time is over."""
        self._send(later_at=None)

    @Slot()
    def send_later(self) -> None:
        """Ask when, then queue the message for that moment."""
        if self._sending or self.draft_for_sending() is None:
            return
        dialog = SendLaterDialog(self)
        dialog.accepted.connect(lambda: self._send(later_at=dialog.due_at()))
        self.send_later_dialog = dialog
        dialog.open()

    def send_at(self, due_at: float) -> None:
        """Queue the message to go at ``due_at`` (epoch seconds)."""
        self._send(later_at=due_at)

    def _send(self, *, later_at: float | None, skip_reminder: bool = False) -> None:
        if self._sending:
            return
        ready = self.draft_for_sending()
        if ready is None:
            return
        draft, account_name = ready
        mention = attachment_mention(self._reminder_text())
        if mention and not draft.attachments and not skip_reminder:
            self._pending_send_at = later_at
            self.reminder.show_message(
                f"The message says “{mention}”, but nothing is attached.",
                [
                    ("Send a&nyway", self._send_anyway),
                    ("Attach a f&ile…", self.choose_attachments),
                ],
            )
            return
        self.notice.hide()
        self.reminder.hide()
        self._sending = True
        self._set_busy(True)
        due_at = later_at if later_at is not None else time.time() + self._undo_seconds
        self.statusBar().showMessage("Putting the message in the outbox…")
        self.bridge.send_draft(
            draft,
            account_name,
            lambda message, error: self._queued(message, error, due_at),
            due_at=due_at,
        )

    def _send_anyway(self) -> None:
        self.reminder.hide()
        self._send(later_at=self._pending_send_at, skip_reminder=True)

    def _set_busy(self, busy: bool) -> None:
        for action in (self.send_action, self.send_later_action, self.save_action):
            action.setEnabled(not busy)
        centre = self.centralWidget()
        if centre is not None:
            centre.setEnabled(not busy)

    def _queued(self, message: int | None, error: BaseException | None, due_at: float) -> None:
        if not shiboken6.isValid(self):
            return
        self._sending = False
        self.statusBar().clearMessage()
        if error is not None or message is None:
            self._set_busy(False)
            if self._ending:
                self.keep_and_close()  # nobody is there to read why: it is a draft again
                return
            if isinstance(error, DraftError):
                about = str(error)
                named = any(str(path) in about for path in self.attachments.paths())
                self._show_error(
                    f"{error} Nothing was sent; the message is still here.",
                    "attachments" if named else None,  # gone once that file is
                )
            else:
                self._show_error(
                    f"The message could not be put in the outbox: {error}. Nothing was sent; "
                    "the message is still here, try again."
                )
            return
        self._autosave_timer.stop()
        self.queued.emit(message, due_at)
        self._delete_stored()
        self._close_now = True
        self.close()

    # ================================================================ drafts

    def _run_io(self, fn: Callable[[], Any], on_done: Done) -> None:
        """Draft files are written one at a time, in order, off the GUI thread."""
        self._io.append((fn, on_done))
        self._next_io()

    def _next_io(self) -> None:
        if self._io_busy or not self._io:
            return
        fn, on_done = self._io.popleft()
        self._io_busy = True

        def finished(result: Any, error: BaseException | None) -> None:
            self._io_busy = False
            if shiboken6.isValid(self):  # the window may be gone; its writes still finish
                on_done(result, error)
            elif self.drafts_changed_later is not None:
                self.drafts_changed_later()
            self._next_io()

        self.bridge.run_in_background(fn, finished)

    @property
    def closed(self) -> bool:
        """Whether the window has closed for good (sent, saved, or discarded)."""
        return self._closed

    def saving(self) -> bool:
        """Whether a draft write is under way or waiting."""
        return self._io_busy or bool(self._io)

    @Slot()
    def save_draft(self, on_done: Callable[[bool], None] | None = None) -> None:
        """Save the draft now (Ctrl+S); ``on_done(saved)`` when the file is written."""
        self._write(self.state(), explicit=True, on_done=on_done)

    @Slot()
    def autosave(self) -> None:
        """Save if anything changed since the last write (runs every few seconds)."""
        if self._sending or self._closed or self.saving():
            return
        state = self.state()
        if not state.same_content(self._written):
            self._write(state, explicit=False)

    def _write(
        self,
        state: StoredDraft,
        *,
        explicit: bool,
        on_done: Callable[[bool], None] | None = None,
    ) -> None:
        drafts = self.drafts
        if not state.updated_at:
            state = replace(state, updated_at=time.time())
        before, kept_before = self._written, self._kept
        self._written = state
        self._stored_exists = True
        if explicit:
            self._kept = state

        def finished(draft_id: str | None, error: BaseException | None) -> None:
            if error is not None or draft_id is None:
                if self._written is state:
                    self._written = before  # not on disk: autosave tries again
                if self._kept is state:
                    self._kept = kept_before
                reason = error.strerror if isinstance(error, OSError) else None
                self._show_error(
                    f"The draft could not be saved ({reason or error}). The text is still in "
                    f"this window; free some disk space or check {drafts.directory}, then save "
                    "again (Ctrl+S)."
                )
                if on_done is not None:
                    on_done(False)
                return
            if explicit:
                self._clean = state
                self.statusBar().showMessage("Draft saved", 3000)
            self.draftSaved.emit(draft_id)
            if on_done is not None:
                on_done(True)

        self._run_io(lambda: drafts.save(state), finished)

    def _delete_stored(self) -> None:
        if not self._stored_exists:
            return
        draft_id = self._draft_id

        def finished(_result: object, error: BaseException | None) -> None:
            if error is None:
                self.draftDeleted.emit(draft_id)

        self._stored_exists = False
        self._run_io(lambda: self.drafts.delete(draft_id), finished)

    def discard(self) -> None:
        """Close, leaving the draft as it was opened or last saved with Save draft."""
        self._autosave_timer.stop()
        self._restore_kept()
        self._close_now = True
        self.close()

    def _restore_kept(self) -> None:
        """Undo what autosave wrote since the kept version (or remove an autosaved copy)."""
        kept = self._kept
        if kept is None:
            self._delete_stored()
        elif self._written != kept:
            self._write(kept, explicit=False)

    # ================================================================ closing

    def closeEvent(self, event: QCloseEvent) -> None:
        if self._close_now or self._closed:
            self._shut_down()
            event.accept()
            return
        if self._sending:
            event.ignore()  # the message is on its way into the outbox: a moment
            return
        if self.is_modified():
            event.ignore()
            self._ask_to_save()
            return
        # Unchanged: autosave may have written steps in between; put back what was kept.
        self._restore_kept()
        self._shut_down()
        event.accept()

    def keep_and_close(self) -> None:
        """The desktop session is ending (main window's `end_session`): keep the
        message as it stands as its draft, without asking, then close. A message
        on its way into the outbox closes by itself once it is there, or is
        kept as a draft if it cannot go."""
        self._ending = True
        if self._closed or self._sending:
            return  # on its way: `_queued` closes it, or keeps it if it cannot go
        if not self.is_modified():
            self.close()  # nothing to ask about: closes as usual
            return
        # Closed whether the write succeeds or not: what autosave wrote a few
        # seconds ago is there in any case.
        self.save_draft(on_done=lambda _saved: self._close_at_once())

    def _close_at_once(self) -> None:
        self._close_now = True
        self.close()

    def _ask_to_save(self) -> None:
        if self.close_question is not None and self.close_question.isVisible():
            return
        box = QMessageBox(
            QMessageBox.Icon.Question,
            "Save draft?",
            "Save the changes to this message as a draft before closing?",
            QMessageBox.StandardButton.Save
            | QMessageBox.StandardButton.Discard
            | QMessageBox.StandardButton.Cancel,
            self,
        )
        box.setInformativeText(
            "Discard throws away what changed since the draft was opened or last saved."
        )
        box.setAccessibleName("Save draft?")
        box.setDefaultButton(QMessageBox.StandardButton.Save)
        box.setEscapeButton(QMessageBox.StandardButton.Cancel)
        box.setWindowModality(Qt.WindowModality.WindowModal)
        box.buttonClicked.connect(lambda button: self._close_answer(box.standardButton(button)))
        self.close_question = box
        box.open()

    def _close_answer(self, answer: QMessageBox.StandardButton) -> None:
        if answer == QMessageBox.StandardButton.Save:
            self.save_draft(on_done=self._close_after_save)
        elif answer == QMessageBox.StandardButton.Discard:
            self.discard()
        else:
            self.closeCancelled.emit()

    def _close_after_save(self, saved: bool) -> None:
        if saved:
            self._close_now = True
            self.close()
        else:
            self.closeCancelled.emit()  # the message stays, with what the save said

    def _shut_down(self) -> None:
        self._closed = True
        self._autosave_timer.stop()
        self._preview_timer.stop()


__all__ = ["AUTOSAVE_SECONDS", "ComposerWindow", "SendLaterDialog"]
