"""Markdown to email-safe HTML, and the plain-text alternative.

One renderer for the composer's preview and for what is sent, so the preview
is what recipients get. The HTML carries inline styles only (many mail
clients drop <style> blocks) and no scripts or remote resources.
"""

from __future__ import annotations

import html

import markdown

_EXTENSIONS = ["tables", "fenced_code", "sane_lists", "nl2br"]

_WRAPPER = (
    '<!DOCTYPE html>\n<html><head><meta charset="utf-8">'
    '<meta name="viewport" content="width=device-width"></head>\n'
    "<body style=\"font-family: -apple-system, 'Segoe UI', Roboto, Helvetica, Arial, "
    'sans-serif; font-size: 15px; line-height: 1.5; color: #1f2328;">\n{body}\n</body></html>\n'
)


def render_html(source: str) -> str:
    """The complete HTML document for a Markdown body."""
    converter = markdown.Markdown(extensions=_EXTENSIONS, output_format="html")
    return _WRAPPER.format(body=converter.convert(source))


def render_plain(source: str) -> str:
    """The text/plain alternative: the Markdown itself, with tidy line ends."""
    lines = [line.rstrip() for line in source.replace("\r\n", "\n").split("\n")]
    return "\n".join(lines).strip("\n") + "\n"


def escape_plain_as_html(text: str) -> str:
    return "<pre>" + html.escape(text) + "</pre>"
