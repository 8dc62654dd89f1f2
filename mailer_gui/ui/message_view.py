"""Showing a sent or queued message: its HTML or text, with nothing fetched from outside.

`load_for_display` runs on a worker thread (OutboxBridge.run_in_background):
it parses the spool file (message/inspect.py) and decodes the inline images.
`MessageBrowser` shows the result. A message's HTML may point at remote images
and style sheets (trackers, or plain links to the web); the browser loads only
the images the message itself carries (``cid:``) and refuses every other
resource, remote or local, so that showing a message never tells anyone it was
opened and never reads a file from this computer.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PySide6.QtCore import QUrl, Signal, Slot
from PySide6.QtGui import QDesktopServices, QImage, QTextDocument
from PySide6.QtWidgets import QTextBrowser, QWidget

from mailer_gui.message.inspect import MessageView, read_message

# What a click on a link in a message may open, in the person's browser or mail program.
_OPENABLE = frozenset({"http", "https", "mailto"})


@dataclass(frozen=True)
class DisplayedMessage:
    """A parsed message plus its inline images, decoded off the GUI thread."""

    view: MessageView
    images: dict[str, QImage] = field(default_factory=dict, repr=False)


def load_for_display(path: Path) -> DisplayedMessage:
    """Parse ``path`` and decode its inline images. Blocking: call on a worker thread.

    Raises message.inspect.MessageFileError when the file is missing or unreadable.
    """
    view = read_message(path)
    images: dict[str, QImage] = {}
    if view.html is not None:
        for content_id, part in view.inline_parts.items():
            image = QImage()
            if image.loadFromData(part.data):
                images[content_id] = image
    return DisplayedMessage(view, images)


def _blank_image() -> QImage:
    image = QImage(1, 1, QImage.Format.Format_ARGB32)
    image.fill(0)
    return image


class MessageBrowser(QTextBrowser):
    """A read-only view of one message that loads only the message's own images."""

    #: A resource was refused (``blocked_urls`` grew). Emitted during layout:
    #: connect it queued.
    blockedChanged = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setAccessibleName("Message text")
        self.setReadOnly(True)
        self.setOpenLinks(False)  # never navigate inside the pane
        self.setOpenExternalLinks(False)
        self.anchorClicked.connect(self._open_link)
        self._images: dict[str, QImage] = {}
        self._blank = _blank_image()
        #: Every resource the shown HTML asked for and did not get (remote or local).
        self.blocked_urls: list[str] = []
        #: The cid: images shown.
        self.loaded_images: list[str] = []

    def show_displayed(self, displayed: DisplayedMessage) -> None:
        """Show the HTML body with its inline images, else the text body."""
        self._reset(displayed.images)
        view = displayed.view
        if view.html is not None:
            self.setHtml(view.html)
        else:
            self.setPlainText(view.text)

    def show_note(self, text: str) -> None:
        """A line in place of the message (loading, or why it cannot be shown)."""
        self._reset({})
        self.setHtml(f"<p><i>{html.escape(text)}</i></p>")

    def _reset(self, images: dict[str, QImage]) -> None:
        self._images = images
        self.blocked_urls = []
        self.loaded_images = []
        self.document().clear()

    def loadResource(self, type: int, name: QUrl | str) -> Any:
        """Only ``cid:`` images of this message; anything else gets an empty stand-in.

        Returning nothing (or bytes that are not an image) would let Qt fall
        back to reading local files and data: URLs itself, so every refusal
        returns a real value: a blank image, or an empty style sheet.
        """
        if isinstance(name, str):
            name = QUrl(name)
        is_image = type == QTextDocument.ResourceType.ImageResource.value
        if name.scheme().lower() == "cid":
            image = self._images.get(name.path()) or self._images.get(name.toString()[4:])
            if image is not None and is_image:
                self.loaded_images.append(name.toString())
                return image
        self.blocked_urls.append(name.toString())
        self.blockedChanged.emit()
        return self._blank if is_image else " "

    @Slot(QUrl)
    def _open_link(self, url: QUrl) -> None:
        if url.scheme().lower() in _OPENABLE:
            QDesktopServices.openUrl(url)


__all__ = ["DisplayedMessage", "MessageBrowser", "load_for_display"]
