"""Markdown -> email-safe HTML and the text/plain alternative, read back with html.parser."""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from html.parser import HTMLParser

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailer_gui.message.render import escape_plain_as_html, render_html, render_plain

ALLOWED_LINK_SCHEMES = {"http", "https", "mailto"}
SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):")


@dataclass
class Tag:
    name: str
    attrs: dict[str, str | None]
    ancestors: tuple[str, ...]

    @property
    def style(self) -> str:
        return self.attrs.get("style") or ""


@dataclass
class Page:
    """What a mail client's HTML parser sees: start tags in order and the text."""

    tags: list[Tag] = field(default_factory=list)
    text: str = ""
    text_in: dict[str, str] = field(default_factory=dict)  # tag -> text inside any such tag

    def named(self, name: str) -> list[Tag]:
        return [tag for tag in self.tags if tag.name == name]

    def content(self) -> list[Tag]:
        """The tags produced from the Markdown, without the document wrapper."""
        return [tag for tag in self.tags if len(tag.ancestors) >= 3]  # html > body > div > ...


class _Reader(HTMLParser):
    VOID = frozenset({"meta", "br", "hr", "img"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.page = Page()
        self.open: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.page.tags.append(Tag(tag, dict(attrs), tuple(self.open)))
        if tag not in self.VOID:
            self.open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in self.open:
            del self.open[len(self.open) - 1 - self.open[::-1].index(tag) :]

    def handle_data(self, data: str) -> None:
        self.page.text += data
        for tag in set(self.open):
            self.page.text_in[tag] = self.page.text_in.get(tag, "") + data


def read(document: str) -> Page:
    reader = _Reader()
    reader.feed(document)
    reader.close()
    return reader.page


def render(source: str, **kwargs: object) -> Page:
    return read(render_html(source, **kwargs))  # type: ignore[arg-type]


def assert_mail_safe(document: str) -> None:
    """No scripts, no styles to drop, no classes, no event handlers, nothing fetched."""
    assert "<script" not in document.lower()
    page = read(document)
    for tag in page.tags:
        assert tag.name not in {"script", "style", "link", "iframe", "object", "embed", "form"}
        assert "class" not in tag.attrs, tag
        assert not [name for name in tag.attrs if name.startswith("on")], tag
        if tag.name == "img":
            assert (tag.attrs.get("src") or "").startswith("cid:"), tag
        if tag.name == "a" and tag.attrs.get("href") is not None:
            scheme = SCHEME.match(tag.attrs["href"] or "")
            assert scheme is None or scheme.group(1).lower() in ALLOWED_LINK_SCHEMES, tag


RICH = """\
# One
## Two
### Three
#### Four
##### Five
###### Six

A paragraph with `inline code`, a [link](https://example.org) and ![Chart](chart.png).

- bullet
- list

1. numbered
2. list

> quoted
> reply

| Name | Qty |
|------|----:|
| Tea  | 2   |

```python
print("hi")
```

    indented code

---
"""

# The element -> what its inline style must provide for the mail to read well.
STYLE_NEEDS = {
    "h1": ["font-size", "margin"],
    "h2": ["font-size", "margin"],
    "h3": ["font-size", "margin"],
    "h4": ["font-size", "margin"],
    "h5": ["font-size", "margin"],
    "h6": ["font-size", "margin"],
    "p": ["margin"],
    "ul": ["padding-left"],
    "ol": ["padding-left"],
    "blockquote": ["border-left"],
    "table": ["border-collapse", "border"],
    "th": ["border", "padding", "background-color"],
    "td": ["border", "padding"],
    "code": ["monospace"],
    "pre": ["monospace", "background-color"],
    "hr": ["border-top"],
    "a": ["color"],
    "img": ["max-width: 100%"],
}


# ------------------------------------------------------------- the document


def test_document_wrapper_is_plain_and_carries_the_font() -> None:
    document = render_html("Hello")
    page = read(document)
    assert document.startswith("<!DOCTYPE html>")
    assert page.named("html")[0].attrs == {}  # no lang: the writer's language is unknown
    assert {"charset": "utf-8"} in [tag.attrs for tag in page.named("meta")]
    assert "font-family" in page.named("body")[0].style
    # Gmail drops <body> attributes; the wrapping <div> keeps the font.
    wrapper = page.named("div")[0]
    assert wrapper.ancestors == ("html", "body") and "font-family" in wrapper.style
    assert page.text_in["p"] == "Hello"


def test_every_element_that_needs_a_style_has_it_inline() -> None:
    document = render_html(RICH, inline_images={"chart.png": "c1@example.org"})
    page = read(document)
    seen = {tag.name for tag in page.content()}
    assert set(STYLE_NEEDS) <= seen  # the sample really has each of them
    for tag in page.content():
        for need in STYLE_NEEDS.get(tag.name, []):
            assert need in tag.style, (tag.name, tag.style)
    inline_code = [t for t in page.named("code") if "pre" not in t.ancestors]
    assert "background-color" in inline_code[0].style
    assert_mail_safe(document)


def test_no_style_block_script_or_class_anywhere() -> None:
    document = render_html(RICH, inline_images={"chart.png": "c1@example.org"})
    assert "<style" not in document
    assert "class=" not in document
    assert_mail_safe(document)


# ------------------------------------------------------------- code


def test_fenced_python_is_coloured_with_inline_styles_and_keeps_its_text() -> None:
    code = 'def f(x):\n    return x & 1 < 2  # "odd"\n'
    page = render(f"```python\n{code}```\n")
    spans = page.named("span")
    assert spans and all(span.ancestors[-2:] == ("pre", "code") for span in spans)
    assert all(re.match(r"color: #[0-9A-Fa-f]{6};", span.style) for span in spans)
    assert len({span.style for span in spans}) >= 3  # keyword, name, comment... differ
    assert page.text_in["pre"] == code  # every character, escaped and read back
    assert not [tag for tag in page.tags if "class" in tag.attrs]


@pytest.mark.parametrize("fence", ["```", "```nosuchlanguage", "~~~"])
def test_fence_without_a_known_language_is_plain_monospace(fence: str) -> None:
    page = render(f"{fence}\n<b>bold?</b>\n{fence[:3]}\n")
    assert page.named("span") == [] and page.named("b") == []
    assert page.text_in["code"] == "<b>bold?</b>\n"
    assert "monospace" in page.named("pre")[0].style


def test_fence_interrupting_a_paragraph_is_its_own_block() -> None:
    page = render("before\n```python\nx = 1\n```\nafter")
    assert [tag.name for tag in page.content() if tag.name in {"p", "pre"}] == ["p", "pre", "p"]
    assert page.text_in["pre"] == "x = 1\n"


def test_fence_attributes_name_the_language() -> None:
    page = render("```{.python #ignored}\nimport os\n```\n")
    assert page.named("span")
    assert all("id" not in tag.attrs for tag in page.tags)


# ------------------------------------------------------------- tables, lists, breaks


def test_table_cells_have_borders_and_alignment_survives() -> None:
    page = render("| Left | Middle |\n|------|:------:|\n| a    | b      |\n")
    assert len(page.named("table")) == 1
    header_left, header_middle = page.named("th")
    cells = page.named("td")
    assert len(cells) == 2
    for cell in [header_left, header_middle, *cells]:
        assert "border: 1px solid" in cell.style and "padding" in cell.style
    # The column's alignment comes after the default, so it wins in the cascade.
    assert header_middle.style.rstrip().endswith("text-align: center;")
    assert cells[1].style.rstrip().endswith("text-align: center;")


def test_single_newline_is_a_line_break() -> None:
    page = render("Dear Ann,\nthanks.\n\nBob")
    paragraphs = page.named("p")
    assert len(paragraphs) == 2
    assert [tag.ancestors[-1] for tag in page.named("br")] == ["p"]
    assert page.text_in["p"] == "Dear Ann,\nthanks.Bob"


def test_sane_lists_keep_ordered_and_bulleted_apart() -> None:
    page = render("1. one\n2. two\n\n- three\n")
    assert [tag.name for tag in page.content() if tag.name in {"ol", "ul"}] == ["ol", "ul"]


# ------------------------------------------------------------- raw HTML


@pytest.mark.parametrize(
    "typed",
    [
        "<script>alert(1)</script>",
        "<img src=x onerror=alert(1)>",
        '<iframe src="https://evil.example/"></iframe>',
        '<a href="#" onclick="steal()">click</a>',
        '<div style="background:url(https://track.example/p.gif)">block</div>',
        "<style>p { display: none }</style>",
        "<!-- hidden -->",
    ],
)
@pytest.mark.parametrize("where", ["{}", "Inline {} in text."])
def test_raw_html_shows_as_text(typed: str, where: str) -> None:
    document = render_html(where.format(typed))
    page = read(document)
    assert [tag.name for tag in page.content()] == ["p"]
    assert typed in page.text_in["p"]
    assert_mail_safe(document)


def test_entities_stay_characters() -> None:
    page = render("a &amp; b &#60;script&#62;")
    assert page.text_in["p"] == "a & b <script>"
    assert page.named("script") == []


# ------------------------------------------------------------- links


@pytest.mark.parametrize(
    "markdown",
    [
        "[click](javascript:alert(1))",
        "[click](JaVaScRiPt:alert(1))",
        "[click]( javascript:alert(1))",
        "[click](&#106;avascript:alert(1))",
        "[click](data:text/html;base64,PHNjcmlwdD4=)",
        "[click](vbscript:msgbox(1))",
        "[click](file:///etc/passwd)",
        "[click][ref]\n\n[ref]: javascript:alert(1)",
    ],
)
def test_unsafe_link_loses_its_href_and_keeps_its_text(markdown: str) -> None:
    document = render_html(markdown)
    page = read(document)
    assert page.named("a") == []
    assert page.text_in["p"] == "click"
    assert_mail_safe(document)


@pytest.mark.parametrize(
    ("markdown", "href"),
    [
        ("[x](https://example.org/a?b=1&c=2)", "https://example.org/a?b=1&c=2"),
        ("[x](http://example.org)", "http://example.org"),
        ("[x](mailto:ann@example.org)", "mailto:ann@example.org"),
        ("[x](docs/plan.md)", "docs/plan.md"),
        ("[x](#section-2)", "#section-2"),
        ("<https://example.org/>", "https://example.org/"),
        ("<ann@example.org>", "mailto:ann@example.org"),  # markdown hides it in entities
    ],
)
def test_allowed_links_are_kept_and_styled(markdown: str, href: str) -> None:
    (link,) = render(markdown).named("a")
    assert link.attrs["href"] == href
    assert "color" in link.style


# ------------------------------------------------------------- images


def test_inline_image_points_at_its_content_id() -> None:
    page = render(
        "![Sales chart](chart.png) ![Logo](<my logo.png>) ![again](my%20logo.png)",
        inline_images={"chart.png": "a1@example.org", "my logo.png": "<b2@example.org>"},
    )
    images = page.named("img")
    assert [(i.attrs["src"], i.attrs["alt"]) for i in images] == [
        ("cid:a1@example.org", "Sales chart"),
        ("cid:b2@example.org", "Logo"),
        ("cid:b2@example.org", "again"),
    ]
    assert all("max-width: 100%" in image.style for image in images)


def test_cid_source_given_directly_stays() -> None:
    (image,) = render("![x](cid:part1@example.org)").named("img")
    assert image.attrs["src"] == "cid:part1@example.org"


@pytest.mark.parametrize(
    ("markdown", "text"),
    [
        ("![Logo](https://example.org/logo.png)", "Logo"),
        ("![](http://example.org/pixel.gif)", "http://example.org/pixel.gif"),
    ],
)
def test_remote_image_becomes_a_link_instead_of_a_fetch(markdown: str, text: str) -> None:
    page = render(markdown, inline_images={"chart.png": "c1"})
    assert page.named("img") == []
    (link,) = page.named("a")
    assert link.attrs["href"] == markdown[markdown.index("(") + 1 : -1]
    assert page.text_in["a"] == text


@pytest.mark.parametrize(
    "src", ["/home/ann/diagram.png", "diagram.png", "data:image/png;base64,AAAA", "file:///x.png"]
)
def test_any_other_image_becomes_its_alt_text(src: str) -> None:
    page = render(f"See ![the diagram]({src}) here.", inline_images={"chart.png": "c1"})
    assert page.named("img") == [] and page.named("a") == []
    assert page.text_in["p"] == "See the diagram here."


def test_remote_image_inside_a_link_does_not_nest_links() -> None:
    page = render("[![Logo](https://example.org/logo.png)](https://example.org/)")
    (link,) = page.named("a")
    assert link.attrs["href"] == "https://example.org/"
    assert page.text_in["a"] == "Logo"


# ------------------------------------------------------------- odd input


def test_nesting_too_deep_for_markdown_shows_the_text() -> None:
    source = "\n".join("    " * level + "- item" for level in range(400))
    # Python's default limit (plugins in the test session may have raised it):
    # Markdown needs a few frames per nesting level and gives up near 250.
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(1000)
    try:
        page = render(source)
    finally:
        sys.setrecursionlimit(limit)
    assert page.text_in["pre"] == source
    assert "monospace" in page.named("pre")[0].style


def test_escape_plain_as_html() -> None:
    page = read(escape_plain_as_html("a < b &\n\tc"))
    assert page.text_in["pre"] == "a < b &\n\tc"
    assert "monospace" in page.named("pre")[0].style


# ------------------------------------------------------------- plain text


@pytest.mark.parametrize(
    ("source", "plain"),
    [
        ("a\r\nb\rc\n", "a\nb\nc\n"),
        ("trailing  \nspaces\t \n", "trailing\nspaces\n"),
        ("\tindented\n    code\n", "\tindented\n    code\n"),
        ("a\tb\n", "a\tb\n"),
        ("\n\n  \nbody\n\n\n \n", "body\n"),
        ("a\n\n\nb", "a\n\n\nb\n"),  # two blank lines stay
        ("a\n\n\n\nb", "a\n\nb\n"),  # three become one
        ("a\n \n\t\n  \n \nb", "a\n\nb\n"),
        ("no newline at end", "no newline at end\n"),
        ("", "\n"),
    ],
)
def test_plain_alternative_is_the_tidied_markdown(source: str, plain: str) -> None:
    assert render_plain(source) == plain


# ------------------------------------------------------------- any text

FRAGMENTS = [
    "\n",
    "\n\n",
    "    ",
    "# ",
    "> ",
    "- ",
    "1. ",
    "*",
    "_",
    "`",
    "```python\n",
    "```\n",
    "~~~\n",
    "[",
    "]",
    "(",
    ")",
    "![",
    "](",
    "| a | b |\n|---|:-:|\n",
    "<",
    ">",
    "&",
    "&#106;",
    "<script>",
    "<img src=x onerror=alert(1)>",
    "<https://example.org>",
    "<a@b.org>",
    "javascript:",
    "data:",
    "http://x/i.png",
    "chart.png",
    "cid:x",
    "onclick=",
    '"',
    "\\",
    "---",
    "\r",
    "\t",
    "\x00",
]
markdownish = st.lists(st.sampled_from(FRAGMENTS) | st.text(max_size=8), max_size=60).map("".join)
any_text = st.text(max_size=500) | markdownish


@settings(max_examples=300, deadline=None)
@given(source=any_text)
def test_any_text_renders_mail_safe_html(source: str) -> None:
    document = render_html(source, inline_images={"chart.png": "c1@example.org"})
    assert_mail_safe(document)
    assert document.rstrip().endswith("</html>")


@settings(max_examples=300, deadline=None)
@given(source=any_text)
def test_plain_alternative_is_idempotent_and_tidy(source: str) -> None:
    plain = render_plain(source)
    assert render_plain(plain) == plain
    assert "\r" not in plain
    assert plain == "\n" or not plain.startswith("\n")
    assert plain.endswith("\n") and not plain.endswith("\n\n")
    assert all(line == line.rstrip() for line in plain.split("\n"))
    assert "\n\n\n\n" not in plain
