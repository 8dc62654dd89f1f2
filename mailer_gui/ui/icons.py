"""QIcons for the window: the application icon and the toolbar/menu actions.

The SVG files live in `mailer_gui/resources/icons/` (read by
`mailer_gui.resources`). Action icons are monochrome, drawn in ``currentColor``:
`action_icon()` paints them in the palette's button-text colour at paint time
(so they follow a light or dark theme, and a palette change), or in a fixed
colour when one is given. Every size is rendered from the SVG, so the icons
stay sharp at any scale factor.
"""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import QByteArray, QRect, QRectF, QSize
from PySide6.QtGui import (
    QColor,
    QGuiApplication,
    QIcon,
    QIconEngine,
    QImage,
    QPainter,
    QPalette,
    QPixmap,
)
from PySide6.QtSvg import QSvgRenderer

from mailer_gui.resources import action_icon_svg, app_icon_svgs

_CURRENT_COLOR = b"currentColor"


class SvgIconEngine(QIconEngine):
    """Renders one of several SVG drawings, the one meant for the size asked.

    `variants` holds (largest size it suits, SVG bytes); 0 means any size.
    With `tinted`, ``currentColor`` in the SVG becomes `color`, or, when
    `color` is None, the application palette's colour for the icon's mode:
    button text, highlighted text when selected, the disabled group's button
    text when disabled.
    """

    def __init__(
        self,
        variants: Sequence[tuple[int, bytes]],
        *,
        tinted: bool = False,
        color: QColor | None = None,
    ) -> None:
        super().__init__()
        self._variants = sorted(variants, key=lambda v: v[0] or 1 << 30)
        self._tinted = tinted
        self._color = QColor(color) if color is not None else None

    # QIconEngine needs clone() to copy an icon.
    def clone(self) -> QIconEngine:
        return SvgIconEngine(self._variants, tinted=self._tinted, color=self._color)

    def key(self) -> str:
        return "mailer-svg"

    def isNull(self) -> bool:
        return not self._variants

    def availableSizes(
        self, mode: QIcon.Mode = QIcon.Mode.Normal, state: QIcon.State = QIcon.State.Off
    ) -> list[QSize]:
        return [QSize(s, s) for s in (16, 22, 24, 32, 48, 64, 128, 256)]

    def actualSize(self, size: QSize, mode: QIcon.Mode, state: QIcon.State) -> QSize:
        side = min(size.width(), size.height())
        return QSize(side, side)

    def paint(self, painter: QPainter, rect: QRect, mode: QIcon.Mode, state: QIcon.State) -> None:
        side = min(rect.width(), rect.height())
        scale = painter.device().devicePixelRatioF() if painter.device() else 1.0
        renderer = self._renderer(round(side * scale), mode)
        target = QRectF(
            rect.x() + (rect.width() - side) / 2, rect.y() + (rect.height() - side) / 2, side, side
        )
        renderer.render(painter, target)

    def pixmap(self, size: QSize, mode: QIcon.Mode, state: QIcon.State) -> QPixmap:
        return self.scaledPixmap(size, mode, state, 1.0)

    def scaledPixmap(
        self, size: QSize, mode: QIcon.Mode, state: QIcon.State, scale: float
    ) -> QPixmap:
        side = min(size.width(), size.height())
        pixels = max(1, round(side * scale))
        image = QImage(pixels, pixels, QImage.Format.Format_ARGB32_Premultiplied)
        painter = QPainter(image)
        # Cleared to transparent by painting: image.fill() would build the Qt
        # namespace's enums while it picks an overload, and the toolbar's icons
        # are drawn in the window's first paint (see main_window).
        painter.setCompositionMode(QPainter.CompositionMode.CompositionMode_Clear)
        painter.eraseRect(QRectF(0, 0, pixels, pixels))
        painter.setCompositionMode(QPainter.CompositionMode.CompositionMode_SourceOver)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        self._renderer(pixels, mode).render(painter, QRectF(0, 0, pixels, pixels))
        painter.end()
        pixmap = QPixmap.fromImage(image)
        pixmap.setDevicePixelRatio(scale)
        return pixmap

    def _renderer(self, pixels: int, mode: QIcon.Mode) -> QSvgRenderer:
        svg = self._variants[-1][1]
        for largest, data in self._variants:
            if largest == 0 or pixels <= largest:
                svg = data
                break
        if self._tinted:
            svg = svg.replace(_CURRENT_COLOR, self._color_for(mode).name().encode("ascii"))
        return QSvgRenderer(QByteArray(svg))

    def _color_for(self, mode: QIcon.Mode) -> QColor:
        palette = QGuiApplication.palette()
        if mode == QIcon.Mode.Disabled:
            return palette.color(QPalette.ColorGroup.Disabled, QPalette.ColorRole.ButtonText)
        if self._color is not None:
            return self._color
        if mode == QIcon.Mode.Selected:
            return palette.color(QPalette.ColorGroup.Active, QPalette.ColorRole.HighlightedText)
        return palette.color(QPalette.ColorGroup.Active, QPalette.ColorRole.ButtonText)


def action_icon(name: str, color: QColor | None = None) -> QIcon:
    """The toolbar/menu icon `name` (one of mailer_gui.resources.ACTION_ICONS).

    Drawn in `color`, or in the palette's button-text colour when None.
    Raises ValueError for an unknown name.
    """
    return QIcon(SvgIconEngine([(0, action_icon_svg(name))], tinted=True, color=color))


def app_icon() -> QIcon:
    """The application icon in full colour: the small drawing up to 24 px, the full one above."""
    return QIcon(SvgIconEngine(app_icon_svgs()))
