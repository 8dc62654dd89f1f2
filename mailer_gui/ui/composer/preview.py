"""The live preview: the HTML that will be sent, drawn by Qt's rich-text engine.

It is rendered by `message.render.render_html`, the very function that builds
the text/html part, with inline images given as ``cid:`` resources of the
document. Nothing is ever loaded from elsewhere: not the network, not a file.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from PySide6.QtCore import QUrl
from PySide6.QtGui import QColor, QImage, QPalette, QTextDocument
from PySide6.QtWidgets import QTextBrowser, QWidget

from mailer_gui.message.render import render_html

# Images wider than this are shown scaled down, as mail readers fit them to the window.
MAX_IMAGE_WIDTH = 640


class PreviewPane(QTextBrowser):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setAccessibleName("Preview")
        self.setObjectName("preview")
        self.setOpenLinks(False)  # a click must not navigate the preview away
        self.setOpenExternalLinks(False)
        # The rendered HTML carries its own light colours (recipients' readers
        # draw it on white), so the preview is a sheet of that paper, in the
        # light or the dark theme alike.
        paper = QPalette(self.palette())
        paper.setColor(QPalette.ColorRole.Base, QColor("#ffffff"))
        paper.setColor(QPalette.ColorRole.Text, QColor("#1f2328"))
        self.setPalette(paper)
        self._html = ""
        self._images: dict[str, QImage] = {}

    def show_markdown(self, source: str, images: Mapping[str, QImage]) -> None:
        """Render ``source``; ``images`` maps the names the Markdown uses to their pictures."""
        # A Content-ID per picture (not per name): the document caches resources
        # by URL, so a name given to a new picture must not show the old one.
        content_ids = {name: f"preview-{image.cacheKey()}" for name, image in images.items()}
        self._images = {
            "cid:" + content_ids[name]: (
                image.scaledToWidth(MAX_IMAGE_WIDTH) if image.width() > MAX_IMAGE_WIDTH else image
            )
            for name, image in images.items()
        }
        html = render_html(source, inline_images=content_ids)
        scroll = self.verticalScrollBar().value()
        self._html = html
        self.setHtml(html)
        self.verticalScrollBar().setValue(scroll)  # typing must not jump the view to the top

    def rendered_html(self) -> str:
        """The HTML last shown (exactly what render_html returned)."""
        return self._html

    def loadResource(self, kind: int, name: QUrl | str) -> Any:
        # Only the inline images of this message; anything else (http:, file:,
        # a relative name) stays unloaded.
        if kind == QTextDocument.ResourceType.ImageResource.value:
            return self._images.get(name.toString() if isinstance(name, QUrl) else name)
        return None


__all__ = ["MAX_IMAGE_WIDTH", "PreviewPane"]
