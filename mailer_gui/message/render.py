"""Markdown to email-safe HTML, and the plain-text alternative.

One renderer for the composer's preview and for what is sent, so the preview
is what recipients get. `build.py` puts both texts into the message; the HTML
carries inline styles only (many mail clients drop <style> blocks), no
scripts, no raw HTML from the writer and no remote resources.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator, Mapping
from functools import lru_cache
from typing import Any
from urllib.parse import unquote
from xml.etree import ElementTree as etree

import markdown
from markdown.extensions import Extension
from markdown.extensions.fenced_code import FencedBlockPreprocessor
from markdown.postprocessors import RawHtmlPostprocessor
from markdown.preprocessors import Preprocessor
from markdown.treeprocessors import Treeprocessor
from markdown.util import AMP_SUBSTITUTE
from pygments.lexers import get_lexer_by_name  # type: ignore[import-untyped, unused-ignore]
from pygments.styles import get_style_by_name  # type: ignore[import-untyped, unused-ignore]
from pygments.token import Token  # type: ignore[import-untyped, unused-ignore]
from pygments.util import ClassNotFound  # type: ignore[import-untyped, unused-ignore]

# Inline CSS per tag: the only styling recipients get, since Gmail, Outlook and
# others drop or rewrite <style> blocks. Colours follow GitHub's light theme.
_FONT = (
    "font-family: -apple-system, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif; "
    "font-size: 15px; line-height: 1.5; color: #1f2328;"
)
_MONO = "font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, 'Liberation Mono', monospace;"
_HEADING = "margin: 20px 0 10px; font-weight: 600; line-height: 1.25;"
_CELL = "border: 1px solid #d1d9e0; padding: 6px 13px;"
_STYLES: dict[str, str] = {
    "p": "margin: 0 0 12px;",
    "h1": f"{_HEADING} font-size: 1.6em; border-bottom: 1px solid #d1d9e0; padding-bottom: 4px;",
    "h2": f"{_HEADING} font-size: 1.35em; border-bottom: 1px solid #d1d9e0; padding-bottom: 4px;",
    "h3": f"{_HEADING} font-size: 1.15em;",
    "h4": f"{_HEADING} font-size: 1em;",
    "h5": f"{_HEADING} font-size: 0.9em;",
    "h6": f"{_HEADING} font-size: 0.85em; color: #59636e;",
    "ul": "margin: 0 0 12px; padding-left: 2em;",
    "ol": "margin: 0 0 12px; padding-left: 2em;",
    "blockquote": "margin: 0 0 12px; padding: 0 12px; color: #59636e; "
    "border-left: 4px solid #d1d9e0;",
    "table": "border-collapse: collapse; border-spacing: 0; margin: 0 0 12px; "
    "border: 1px solid #d1d9e0;",
    # Left before the tables extension's own "text-align: ..." so that one wins.
    "th": f"{_CELL} background-color: #f6f8fa; font-weight: 600; text-align: left;",
    "td": _CELL,
    "code": f"{_MONO} font-size: 0.9em; background-color: #eff1f3; padding: 1px 4px; "
    "border-radius: 4px;",
    # pre-wrap: a mail client may be narrower than the code and may not scroll.
    "pre": f"{_MONO} font-size: 13px; line-height: 1.45; background-color: #f6f8fa; "
    "padding: 12px 16px; margin: 0 0 12px; border-radius: 6px; white-space: pre-wrap; "
    "word-wrap: break-word;",
    "hr": "height: 0; border: 0; border-top: 1px solid #d1d9e0; margin: 16px 0;",
    "a": "color: #0969da; text-decoration: underline;",
    "img": "max-width: 100%; height: auto;",
}
_CODE_IN_PRE = f"{_MONO} font-size: 1em;"  # the <pre> already has the background

_WRAPPER = (
    '<!DOCTYPE html>\n<html><head><meta charset="utf-8">'
    '<meta name="viewport" content="width=device-width"></head>\n'
    # Gmail drops <body> attributes, so the font is repeated on a wrapping <div>.
    '<body style="margin: 0; {font}">\n<div style="{font}">\n{body}\n</div>\n</body></html>\n'
)

_LINK_SCHEMES = frozenset({"http", "https", "mailto"})
_REMOTE_SCHEMES = frozenset({"http", "https"})
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):")
_URL_IGNORED = re.compile(r"[\t\n\r]")  # browsers drop these anywhere in a URL
_FENCE_LANGUAGE = re.compile(r"\.([\w#.+-]+)")  # first class in a ```{.lang #id} fence
_BLANK_RUN = re.compile(r"\n{4,}")  # three or more blank lines

# Pygments' own default theme; its colours read well on the light <pre> background.
_CODE_THEME: Any = get_style_by_name("default")


def render_html(source: str, *, inline_images: Mapping[str, str] | None = None) -> str:
    """The complete HTML document for a Markdown body.

    ``inline_images`` maps the name an image has in the Markdown
    (``![chart](chart.png)``) to the Content-ID of the MIME part that carries
    it, without angle brackets; the <img> then points at ``cid:<id>``.
    """
    converter = markdown.Markdown(
        extensions=["tables", "sane_lists", "nl2br", _EmailSafeExtension(inline_images or {})],
        output_format="html",
    )
    try:
        body = converter.convert(source)
    except RecursionError:
        # Markdown recurses once per nesting level (lists indented hundreds of
        # levels deep): show such text as it was typed rather than fail.
        body = escape_plain_as_html(source)
    return _WRAPPER.format(font=_FONT, body=body)


def render_plain(source: str) -> str:
    """The text/plain alternative: the Markdown itself, tidied.

    Line ends become ``\\n``, trailing whitespace goes (nl2br makes a single
    newline a break already, so no hard-break spaces are needed), runs of three
    or more blank lines become one, and the text ends with exactly one newline.
    """
    text = source.replace("\r\n", "\n").replace("\r", "\n")
    text = "\n".join(line if line == "-- " else line.rstrip() for line in text.split("\n"))
    return _BLANK_RUN.sub("\n\n", text).strip("\n") + "\n"


def escape_plain_as_html(text: str) -> str:
    """Plain text shown as-is in HTML: ``a < b`` -> ``<pre style="...">a &lt; b</pre>``."""
    return f'<pre style="{_STYLES["pre"]}">{html.escape(text)}</pre>'


class _EmailSafeExtension(Extension):  # type: ignore[misc]
    """Raw HTML escaped, fenced code highlighted inline, styles and URLs made mail-safe."""

    def __init__(self, inline_images: Mapping[str, str]) -> None:
        super().__init__()
        self.inline_images = inline_images

    def extendMarkdown(self, md: Any) -> None:
        # Without these, typed <script>, <iframe> or <img onerror=...> would
        # pass through as markup; now they are text like any other.
        md.preprocessors.deregister("html_block")
        md.inlinePatterns.deregister("html")
        code_blocks: dict[str, etree.Element] = {}
        # Where fenced_code would run (25): after whitespace normalisation.
        md.preprocessors.register(_FencedCode(md, code_blocks), "mail_fenced_code", 25)
        # After "unescape" (0), so attribute values are final when URLs are checked.
        md.treeprocessors.register(
            _MailSafeTree(md, code_blocks, self.inline_images), "mail_safe", -10
        )
        md.postprocessors.register(_RawHtmlOrElement(md), "raw_html", 30)


class _FencedCode(Preprocessor):  # type: ignore[misc]
    """```lang blocks -> <pre><code> elements with Pygments colours as inline styles.

    fenced_code (and codehilite) stash finished HTML strings, which no
    treeprocessor sees and which carry class attributes. These blocks are
    Elements instead, put in the tree by `_MailSafeTree`.
    """

    def __init__(self, md: Any, code_blocks: dict[str, etree.Element]) -> None:
        super().__init__(md)
        self.code_blocks = code_blocks

    def run(self, lines: list[str]) -> list[str]:
        text = "\n".join(lines)
        pieces: list[str] = []
        end = 0
        for match in FencedBlockPreprocessor.FENCED_BLOCK_RE.finditer(text):
            language = match.group("lang")
            if match.group("attrs"):
                first_class = _FENCE_LANGUAGE.search(match.group("attrs"))
                language = first_class.group(1) if first_class else None
            block = _code_block(match.group("code"), language)
            placeholder: str = self.md.htmlStash.store(block)
            self.code_blocks[placeholder] = block
            # Blank lines around it: the placeholder becomes a paragraph of its own.
            pieces += [text[end : match.start()], f"\n\n{placeholder}\n\n"]
            end = match.end()
        pieces.append(text[end:])
        return "".join(pieces).split("\n")


class _MailSafeTree(Treeprocessor):  # type: ignore[misc]
    """Style every element inline; neutralise unsafe links; images to cid: or text."""

    def __init__(
        self,
        md: Any,
        code_blocks: Mapping[str, etree.Element],
        inline_images: Mapping[str, str],
    ) -> None:
        super().__init__(md)
        self.code_blocks = code_blocks
        self.inline_images = inline_images

    def run(self, root: etree.Element) -> None:
        # An explicit stack: nesting depth is the writer's to choose.
        pending: list[tuple[etree.Element, bool]] = [(root, False)]
        while pending:
            parent, in_link = pending.pop()
            index = 0
            while index < len(parent):
                element = parent[index]
                block = self.code_blocks.get(element.text or "") if element.tag == "p" else None
                if block is not None and len(element) == 0:
                    block.tail = element.tail
                    parent[index] = block  # styled when it was built
                    index += 1
                    continue
                if element.tag == "img":
                    replacement = self._image(element, in_link)
                    if replacement is None:
                        _replace_with_text(parent, index, element.get("alt") or "")
                        continue
                    parent[index] = element = replacement
                if element.tag == "a":
                    _neutralise_link(element)
                _style(element, parent.tag)
                pending.append((element, in_link or element.tag == "a"))
                index += 1

    def _image(self, img: etree.Element, in_link: bool) -> etree.Element | None:
        """The element to show for an image, or None for its alt text alone."""
        src = img.get("src") or ""
        content_id = self.inline_images.get(src) or self.inline_images.get(unquote(src))
        if content_id is not None:
            img.set("src", "cid:" + content_id.strip("<>"))
            return img
        scheme = _url_scheme(src)
        if scheme == "cid":
            return img
        if scheme in _REMOTE_SCHEMES and not in_link:
            # Fetching it would tell the sender who read the mail, and when.
            link = etree.Element("a", {"href": src})
            link.text = img.get("alt") or src
            link.tail = img.tail
            return link
        return None


class _RawHtmlOrElement(RawHtmlPostprocessor):  # type: ignore[misc]
    """The stock postprocessor, also for a code block that did not land in the tree."""

    def stash_to_string(self, text: Any) -> str:
        if isinstance(text, etree.Element):
            serialized: str = self.md.serializer(text)
            return serialized
        return str(text)


def _style(element: etree.Element, parent_tag: str) -> None:
    css = (
        _CODE_IN_PRE if element.tag == "code" and parent_tag == "pre" else _STYLES.get(element.tag)
    )
    if css is None:
        return
    existing = element.get("style")
    element.set("style", f"{css} {existing}" if existing else css)


def _style_subtree(element: etree.Element) -> None:
    for parent in element.iter():
        for child in parent:
            _style(child, parent.tag)


def _neutralise_link(link: etree.Element) -> None:
    """``<a href="javascript:...">text</a>`` -> ``<span>text</span>``."""
    href = link.get("href")
    if href is None:
        return
    scheme = _url_scheme(href)
    if scheme is not None and scheme not in _LINK_SCHEMES:
        del link.attrib["href"]
        link.tag = "span"


def _url_scheme(url: str) -> str | None:
    """The scheme a browser would see, lower case; None for a relative URL.

    ``" Java\\tScript&#58;x"`` -> ``"javascript"``. Decoding every entity is
    stricter than a browser (the serializer escapes a typed ``&``), never laxer.
    """
    url = html.unescape(url.replace(AMP_SUBSTITUTE, "&"))
    url = _URL_IGNORED.sub("", url).lstrip("".join(map(chr, range(0x21))))
    match = _SCHEME.match(url)
    return match.group(1).lower() if match else None


def _replace_with_text(parent: etree.Element, index: int, text: str) -> None:
    text += parent[index].tail or ""
    if index == 0:
        parent.text = (parent.text or "") + text
    else:
        previous = parent[index - 1]
        previous.tail = (previous.tail or "") + text
    del parent[index]


def _code_block(code: str, language: str | None) -> etree.Element:
    pre = etree.Element("pre")
    element = etree.SubElement(pre, "code")
    last: etree.Element | None = None
    for css, text in _highlighted(code, language):
        if css:
            last = etree.SubElement(element, "span", {"style": css})
            last.text = text
        elif last is None:
            element.text = (element.text or "") + text
        else:
            last.tail = (last.tail or "") + text
    _style(pre, parent_tag="")
    _style_subtree(pre)
    return pre


@lru_cache(maxsize=128)
def _highlighted(code: str, language: str | None) -> tuple[tuple[str, str], ...]:
    """(inline css, text) runs of ``code``; css is "" for plain text.

    Cached: the preview renders on each keystroke, and lexing is most of the
    cost of a document with code in it.
    """
    lexer = _lexer(language.lower()) if language else None
    if lexer is None:
        return (("", code),)
    try:
        tokens = list(lexer.get_tokens(code))
    except Exception:
        # Colours are a nicety: a lexer that trips over odd text must not
        # stop the message (or the preview) from rendering.
        return (("", code),)
    return tuple(_runs(tokens))


def _runs(tokens: list[tuple[Any, str]]) -> Iterator[tuple[str, str]]:
    """Adjacent tokens that look the same merged into one run: fewer <span>s."""
    run_css, run_text = "", ""
    for token_type, text in tokens:
        # Coloured blanks are invisible: keep them in the run, saving a <span>.
        css = run_css if text.isspace() and token_type in Token.Text else _token_css(token_type)
        if css != run_css and run_text:
            yield run_css, run_text
            run_text = ""
        run_css = css
        run_text += text
    if run_text:
        yield run_css, run_text


@lru_cache(maxsize=64)
def _lexer(language: str) -> Any:
    # Cached: an unknown name makes Pygments scan installed plugins every time.
    try:
        return get_lexer_by_name(language, stripnl=False, ensurenl=True)
    except ClassNotFound:
        return None


@lru_cache(maxsize=512)
def _token_css(token_type: Any) -> str:
    """``Token.Keyword`` -> ``"color: #008000; font-weight: bold;"``."""
    style = _CODE_THEME.style_for_token(token_type)
    parts = []
    if style["color"]:
        parts.append(f"color: #{style['color']};")
    if style["bgcolor"]:
        parts.append(f"background-color: #{style['bgcolor']};")
    if style["border"]:
        parts.append(f"border: 1px solid #{style['border']};")
    if style["bold"]:
        parts.append("font-weight: bold;")
    if style["italic"]:
        parts.append("font-style: italic;")
    if style["underline"]:
        parts.append("text-decoration: underline;")
    return " ".join(parts)
