"""Markdown syntax highlighting for the body editor, in the palette's own colours.

Marks (``**``, ``#``, ``>``, list bullets) are dimmed, the text they mark is
shown the way it will look (bold, italic, monospace), links take the link
colour. Fenced code blocks span lines, kept in the block state.
"""

from __future__ import annotations

from PySide6.QtCore import QRegularExpression
from PySide6.QtGui import (
    QColor,
    QFont,
    QFontDatabase,
    QPalette,
    QSyntaxHighlighter,
    QTextCharFormat,
    QTextDocument,
)

_IN_FENCE = 1
_OUTSIDE = 0


def _expression(pattern: str) -> QRegularExpression:
    # QRegularExpression counts positions in UTF-16 units, as setFormat does.
    return QRegularExpression(pattern)


_FENCE = _expression(r"^\s*(```|~~~)")
_HEADING = _expression(r"^#{1,6}\s.*$")
_QUOTE = _expression(r"^\s*>.*$")
_LIST_MARK = _expression(r"^\s*(?:[-*+]|\d+\.)\s")
_RULE = _expression(r"^\s*([-*_])(?:\s*\1){2,}\s*$")
_BOLD = _expression(r"\*\*[^*\s](?:[^*]*[^*\s])?\*\*|__[^_\s](?:[^_]*[^_\s])?__")
_ITALIC = _expression(
    r"(?<![*\w])\*[^*\s](?:[^*]*[^*\s])?\*(?!\*)|(?<!\w)_[^_\s](?:[^_]*[^_\s])?_(?!\w)"
)
_CODE = _expression(r"`[^`]+`")
_LINK = _expression(r"!?\[[^\]]*\]\([^)\s]*\)")


class MarkdownHighlighter(QSyntaxHighlighter):
    def __init__(self, document: QTextDocument, palette: QPalette) -> None:
        # Qt highlights a new document from the event loop, after the formats below exist.
        super().__init__(document)
        self.set_palette(palette)

    def set_palette(self, palette: QPalette) -> None:
        """Colours from the palette, so the editor reads the same in light and dark."""
        dimmed = palette.color(QPalette.ColorRole.PlaceholderText)
        self.mark = QTextCharFormat()
        self.mark.setForeground(dimmed)
        self.heading = QTextCharFormat()
        self.heading.setFontWeight(QFont.Weight.Bold)
        self.bold = QTextCharFormat()
        self.bold.setFontWeight(QFont.Weight.Bold)
        self.italic = QTextCharFormat()
        self.italic.setFontItalic(True)
        self.code = QTextCharFormat()
        self.code.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.code.setBackground(palette.color(QPalette.ColorRole.AlternateBase))
        self.quote = QTextCharFormat()
        self.quote.setForeground(dimmed)
        self.quote.setFontItalic(True)
        self.link = QTextCharFormat()
        self.link.setForeground(palette.color(QPalette.ColorRole.Link))
        self.link.setFontUnderline(True)
        self.rule = QTextCharFormat()
        self.rule.setForeground(QColor(dimmed))
        self.rehighlight()

    def highlightBlock(self, text: str) -> None:
        fence = _FENCE.match(text).hasMatch()
        if self.previousBlockState() == _IN_FENCE:
            self.setFormat(0, len(text.encode("utf-16-le")) // 2, self.code)
            self.setCurrentBlockState(_OUTSIDE if fence else _IN_FENCE)
            return
        if fence:
            self.setFormat(0, len(text.encode("utf-16-le")) // 2, self.code)
            self.setCurrentBlockState(_IN_FENCE)
            return
        self.setCurrentBlockState(_OUTSIDE)
        for expression, text_format in (
            (_HEADING, self.heading),
            (_QUOTE, self.quote),
            (_RULE, self.rule),
            (_LIST_MARK, self.mark),
            (_BOLD, self.bold),
            (_ITALIC, self.italic),
            (_LINK, self.link),
            (_CODE, self.code),
        ):
            matches = expression.globalMatch(text)
            while matches.hasNext():
                match = matches.next()
                self.setFormat(match.capturedStart(), match.capturedLength(), text_format)


__all__ = ["MarkdownHighlighter"]
