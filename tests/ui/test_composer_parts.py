"""The composer's parts on their own: address field, editor toolbar edits, highlighter,
preview, reminder words, sizes (offscreen, pytest-qt)."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QEvent, QMimeData, Qt, QUrl
from PySide6.QtGui import QColor, QFont, QHelpEvent, QImage, QTextCharFormat, QTextCursor
from PySide6.QtWidgets import QApplication, QToolTip

from mailer_gui.message.addresses import split_address_list
from mailer_gui.message.render import render_html
from mailer_gui.ui.composer.address_field import AddressField, address_spans
from mailer_gui.ui.composer.attachments import encoded_size
from mailer_gui.ui.composer.editor import MarkdownEditor
from mailer_gui.ui.composer.highlighter import MarkdownHighlighter
from mailer_gui.ui.composer.preview import MAX_IMAGE_WIDTH, PreviewPane
from mailer_gui.ui.composer.reminder import attachment_mention

pytestmark = pytest.mark.qt_log_ignore(r"This plugin does not support propagateSizeHints\(\)")


# ------------------------------------------------------------ address field


@pytest.mark.parametrize(
    "value",
    [
        "",
        "a@x.org",
        "a@x.org, b@y.org;c@z.org",
        '"Doe, J" <j@y.org>, Ann <ann@x.org>',
        "Team: a@x.org, b@x.org;, c@x.org",
        "undisclosed-recipients:;",
        '  spaced@x.org  ,  ,, "odd\\" name" <o@x.org>',
        "bob@, not an address, ok@x.org",
        "a <b@x.org>, <c@x.org>",
    ],
)
def test_spans_split_like_the_address_parser(value: str) -> None:
    assert [value[start:end] for start, end in address_spans(value)] == split_address_list(value)


def test_a_bad_address_is_underlined_with_its_reason(qtbot) -> None:
    field = AddressField("To")
    qtbot.addWidget(field)
    field.setText("bob@example.org, carol@, Dan <dan@example.org>")
    [problem] = field.problems()
    assert problem.text == "carol@"
    assert "has no domain after the @" in (problem.error or "")
    [selection] = field.extraSelections()
    assert selection.cursor.selectedText() == "carol@"
    assert selection.format.underlineStyle() == QTextCharFormat.UnderlineStyle.SpellCheckUnderline
    inside = field.text().index("carol") + 2
    assert field.tooltip_at(inside) == problem.error
    assert field.tooltip_at(2) == ""  # on bob: nothing wrong there
    assert "has no domain" in field.accessibleDescription()

    field.setText("bob@example.org, carol@example.org")
    assert field.problems() == [] and field.extraSelections() == []


def test_the_address_being_typed_waits_until_the_cursor_leaves(qtbot) -> None:
    field = AddressField("To")
    qtbot.addWidget(field)
    with qtbot.waitExposed(field):
        field.show()
    field.setFocus()
    qtbot.waitUntil(field.hasFocus)
    qtbot.keyClicks(field, "ok@x.org, bad@")
    assert field.problems() == []  # still typing "bad@"
    field.show_all_problems()  # as Send does
    assert [p.text for p in field.problems()] == ["bad@"]
    qtbot.keyClicks(field, "y")  # the text changed: back to waiting
    assert field.problems() == []


def test_completion_offers_known_addresses_after_the_last_comma(qtbot) -> None:
    field = AddressField("To")
    qtbot.addWidget(field)
    field.set_known_addresses(["Bob Smith <bob@example.org>", "carol@example.org", "bo@x.org"])
    with qtbot.waitExposed(field):
        field.show()
    field.setFocus()
    qtbot.keyClicks(field, "ann@example.org, smi")
    completer = field.completer()
    assert completer.completionPrefix() == "smi"
    assert completer.completionCount() == 1  # matched anywhere in the entry, any case
    popup = completer.popup()
    qtbot.waitUntil(popup.isVisible)
    qtbot.keyClick(popup, Qt.Key.Key_Return)
    assert field.text() == "ann@example.org, Bob Smith <bob@example.org>, "
    assert not popup.isVisible()


def test_pasted_lines_become_one_list_and_files_are_refused(qtbot) -> None:
    field = AddressField("Cc")
    qtbot.addWidget(field)
    lines = QMimeData()
    lines.setText("a@x.org\nb@x.org\n")
    field.insertFromMimeData(lines)
    assert field.text() == "a@x.org, b@x.org"
    files = QMimeData()
    files.setUrls([QUrl.fromLocalFile("/tmp/report.pdf")])
    assert not field.canInsertFromMimeData(files)  # the window attaches them instead


# ------------------------------------------------------------ editor


@pytest.fixture
def editor(qtbot) -> MarkdownEditor:
    widget = MarkdownEditor()
    qtbot.addWidget(widget)
    return widget


def select(editor: MarkdownEditor, start: int, end: int) -> None:
    cursor = editor.textCursor()
    cursor.setPosition(start)
    cursor.setPosition(end, QTextCursor.MoveMode.KeepAnchor)
    editor.setTextCursor(cursor)


def test_bold_wraps_the_selection_and_unwraps_it_again(editor: MarkdownEditor) -> None:
    editor.setPlainText("make this bold")
    select(editor, 5, 9)
    editor.bold()
    assert editor.toPlainText() == "make **this** bold"
    assert editor.textCursor().selectedText() == "this"
    editor.bold()
    assert editor.toPlainText() == "make this bold"
    editor.undo()
    assert editor.toPlainText() == "make **this** bold"  # each edit is one undo step


def test_wrapping_without_a_selection_inserts_a_sample_to_type_over(
    editor: MarkdownEditor,
) -> None:
    editor.italic()
    assert editor.toPlainText() == "_italic text_"
    assert editor.textCursor().selectedText() == "italic text"
    editor.setPlainText("call f")
    select(editor, 5, 6)
    editor.code()
    assert editor.toPlainText() == "call `f`"


def test_code_over_several_lines_becomes_a_fenced_block(editor: MarkdownEditor) -> None:
    editor.setPlainText("Run:\nmake\nmake test")
    select(editor, 5, len(editor.toPlainText()))
    editor.code()
    assert editor.toPlainText() == "Run:\n```\nmake\nmake test\n```\n"


def test_link_puts_the_address_up_for_typing(editor: MarkdownEditor) -> None:
    editor.setPlainText("see the docs")
    select(editor, 8, 12)
    editor.link()
    assert editor.toPlainText() == "see the [docs](https://)"
    assert editor.textCursor().selectedText() == "https://"
    editor.setPlainText("https://example.org/a")
    select(editor, 0, len(editor.toPlainText()))
    editor.link()
    assert editor.toPlainText() == "[](https://example.org/a)"
    assert editor.textCursor().position() == 1


def test_line_prefixes_toggle_on_every_selected_line(editor: MarkdownEditor) -> None:
    editor.setPlainText("one\ntwo\nthree")
    select(editor, 0, len(editor.toPlainText()))
    editor.numbered_list()
    assert editor.toPlainText() == "1. one\n2. two\n3. three"
    editor.numbered_list()
    assert editor.toPlainText() == "one\ntwo\nthree"
    editor.bulleted_list()
    assert editor.toPlainText() == "- one\n- two\n- three"
    editor.bulleted_list()
    select(editor, 0, 7)  # "one\ntwo": a selection ending at a line's start leaves it
    editor.quote()
    assert editor.toPlainText() == "> one\n> two\nthree"
    editor.setPlainText("Title\nbody")
    editor.moveCursor(QTextCursor.MoveOperation.Start)
    editor.heading()
    assert editor.toPlainText() == "## Title\nbody"
    editor.heading()
    assert editor.toPlainText() == "Title\nbody"


def test_horizontal_rule_is_never_read_as_a_heading_underline(editor: MarkdownEditor) -> None:
    editor.setPlainText("Paragraph")
    editor.moveCursor(QTextCursor.MoveOperation.End)
    editor.horizontal_rule()
    assert editor.toPlainText() == "Paragraph\n\n---\n\n"
    assert "<hr" in render_html(editor.toPlainText())
    assert "<h2" not in render_html(editor.toPlainText())


def test_pasted_images_and_files_are_handed_over(qtbot, editor: MarkdownEditor) -> None:
    picture = QImage(8, 8, QImage.Format.Format_RGB32)
    picture.fill(QColor("green"))
    mime = QMimeData()
    mime.setImageData(picture)
    with qtbot.waitSignal(editor.imagePasted) as pasted:
        editor.insertFromMimeData(mime)
    assert pasted.args[0].size() == picture.size()
    files = QMimeData()
    files.setUrls([QUrl.fromLocalFile("/tmp/a.pdf")])
    with qtbot.waitSignal(editor.filesDropped) as dropped:
        editor.insertFromMimeData(files)
    assert [str(p) for p in dropped.args[0]] == ["/tmp/a.pdf"]
    assert editor.toPlainText() == ""  # neither became text


# ------------------------------------------------------------ highlighter and preview


def test_highlighter_marks_markdown(qtbot, editor: MarkdownEditor) -> None:
    highlighter = MarkdownHighlighter(editor.document(), editor.palette())
    editor.setPlainText("## Title\nsome **bold** and `code`\n```\nx = 1\n```\nafter")
    qtbot.waitUntil(lambda: bool(editor.document().firstBlock().layout().formats()))
    document = editor.document()

    def format_at(block: int, column: int) -> QTextCharFormat:
        spans = document.findBlockByNumber(block).layout().formats()
        for span in spans:
            if span.start <= column < span.start + span.length:
                return QTextCharFormat(span.format)  # a copy: the list owns the original
        return QTextCharFormat()

    assert format_at(0, 3).fontWeight() == QFont.Weight.Bold
    assert format_at(1, 8).fontWeight() == QFont.Weight.Bold  # **bold**
    assert format_at(1, 1).fontWeight() != QFont.Weight.Bold
    assert format_at(1, 20) == highlighter.code  # `code`
    assert format_at(3, 0) == highlighter.code  # inside the fence
    assert format_at(5, 0) == QTextCharFormat()  # after it
    assert highlighter.link.foreground().color() == editor.palette().link().color()


def test_preview_is_the_sent_html_with_inline_pictures(qtbot) -> None:
    preview = PreviewPane()
    qtbot.addWidget(preview)
    wide = QImage(MAX_IMAGE_WIDTH * 2, 10, QImage.Format.Format_RGB32)
    wide.fill(QColor("red"))
    preview.show_markdown("**Hi** ![chart](chart.png)", {"chart.png": wide})
    html = preview.rendered_html()
    assert html == render_html(
        "**Hi** ![chart](chart.png)", inline_images={"chart.png": f"preview-{wide.cacheKey()}"}
    )
    assert "<strong" in html and "Hi" in preview.toPlainText()
    url = QUrl(f"cid:preview-{wide.cacheKey()}")
    shown = preview.document().resource(2, url)  # 2: QTextDocument.ImageResource
    assert isinstance(shown, QImage) and shown.width() == MAX_IMAGE_WIDTH
    # Nothing from anywhere else, not even a local file.
    assert preview.loadResource(2, QUrl("file:///etc/hostname")) is None
    assert preview.loadResource(2, QUrl("https://example.org/pixel.png")) is None
    assert not preview.openLinks()


# ------------------------------------------------------------ reminder and sizes


@pytest.mark.parametrize(
    ("text", "word"),
    [
        ("The report is attached.", "attached"),
        ("See the ATTACHMENT for details", "ATTACHMENT"),
        ("Please find enclosed the plans", "enclosed"),
        ("I attach the slides", "I attach"),
        ("Anbei die Rechnung", "Anbei"),
        ("Details im Anhang", "Anhang"),
        ("Voir la pièce jointe", "pièce jointe"),
        ("Hello\n> the file is attached\n", None),  # quoted: someone else's words
        ("Hello\n\n-- \nAttachments welcome, Ann", None),  # the signature
        ("The detachment left", None),
        ("Nothing here", None),
    ],
)
def test_attachment_mention(text: str, word: str | None) -> None:
    assert attachment_mention(text) == word


def test_an_attachment_grows_by_a_third_in_base64_lines() -> None:
    assert encoded_size(57) == 78 and encoded_size(58) == 156 and encoded_size(0) == 0


def test_hovering_a_bad_address_shows_its_reason(qtbot) -> None:
    field = AddressField("Bcc")
    qtbot.addWidget(field)
    field.setText("ok@example.org, x@")
    with qtbot.waitExposed(field):
        field.show()
    field.show_all_problems()  # shown: it may have the focus, with the cursor in "x@"
    start = field.text().index("x@")
    cursor = field.textCursor()
    cursor.setPosition(start + 1)
    point = field.cursorRect(cursor).center()
    QApplication.sendEvent(
        field.viewport(), QHelpEvent(QEvent.Type.ToolTip, point, field.mapToGlobal(point))
    )
    qtbot.waitUntil(lambda: "has no domain" in QToolTip.text())
    QToolTip.hideText()
