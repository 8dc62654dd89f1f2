"""The session log dock: live lines, colours, bounds, filter, copy, save, clear (offscreen)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QGuiApplication, QPalette
from PySide6.QtWidgets import QMainWindow

from mailer_gui.smtp.transcript import Direction, TranscriptRecord
from mailer_gui.ui.log_dock import SessionLogDock

T0 = 1_700_000_000.0


def stamp(at: float = T0) -> str:
    return time.strftime("%H:%M:%S", time.localtime(at))


def rec(direction: Direction, text: str, at: float = T0) -> TranscriptRecord:
    return TranscriptRecord(at, direction, text)


CONVERSATION = [
    rec(Direction.NOTE, "connecting to smtp.example.org port 587 (starttls)"),
    rec(Direction.SERVER, "220 smtp.example.org ESMTP"),
    rec(Direction.CLIENT, "EHLO client.example.org"),
    rec(Direction.SERVER, "250 ok"),
    rec(Direction.NOTE, "TLS 1.3 established"),
    rec(Direction.CLIENT, "AUTH PLAIN *****"),
    rec(Direction.SERVER, "535 5.7.8 Authentication credentials invalid"),
]


@pytest.fixture
def dock(qtbot) -> SessionLogDock:
    dock = SessionLogDock(max_lines=100)
    qtbot.addWidget(dock)
    return dock


def feed(dock: SessionLogDock, records=CONVERSATION, account: str = "work") -> None:
    for record in records:
        dock.append(7, account, record)


def test_lines_appear_in_order_with_prefixes_and_heading(dock: SessionLogDock) -> None:
    feed(dock)
    s = stamp()
    assert dock.text().splitlines() == [
        f"{s} [work] * connecting to smtp.example.org port 587 (starttls)",
        f"{s} [work] S: 220 smtp.example.org ESMTP",
        f"{s} [work] C: EHLO client.example.org",
        f"{s} [work] S: 250 ok",
        f"{s} [work] * TLS 1.3 established",
        f"{s} [work] C: AUTH PLAIN *****",
        f"{s} [work] S: 535 5.7.8 Authentication credentials invalid",
    ]
    assert dock.windowTitle() == "Session log"


def test_kinds_and_error_reply_is_highlighted(dock: SessionLogDock) -> None:
    feed(dock)
    feed(dock, [rec(Direction.SERVER, "421 4.7.0 try later"), rec(Direction.SERVER, "4 of 5")])
    assert dock.line_kinds() == [
        "heading",
        "server",
        "client",
        "server",
        "note",
        "client",
        "error",
        "error",
        "server",
    ]
    document = dock.view.document()
    error = document.findBlockByNumber(6).begin().fragment().charFormat()
    normal = document.findBlockByNumber(3).begin().fragment().charFormat()
    assert error.foreground().color() != normal.foreground().color()
    assert error.fontWeight() > normal.fontWeight()


def test_buffer_keeps_only_the_last_max_lines(dock: SessionLogDock) -> None:
    for n in range(250):
        dock.append(1, "work", rec(Direction.CLIENT, f"line {n}"))
    lines = dock.text().splitlines()
    assert len(lines) == 100
    assert lines[0].endswith("C: line 150")
    assert lines[-1].endswith("C: line 249")
    # The filter rebuilds from the same bounded history.
    dock.filter.setText("LINE 1")
    assert [line.split("C: ")[1] for line in dock.text().splitlines()][:2] == [
        "line 150",
        "line 151",
    ]


def test_lines_of_connections_at_once_name_their_account(dock: SessionLogDock) -> None:
    """Two accounts' connections interleave: each line says whose it is, and the
    filter keeps one account's conversation whole."""
    feed(dock, CONVERSATION[:3], account="home")
    feed(dock, CONVERSATION[:3], account="work")
    feed(dock, CONVERSATION[3:5], account="home")
    dock.filter.setText("[home]")
    lines = dock.text().splitlines()
    assert len(lines) == 5 and all(" [home] " in line for line in lines)


def test_filter_narrows_and_clearing_it_restores(dock: SessionLogDock) -> None:
    feed(dock)
    everything = dock.text()
    dock.filter.setText("ehlo")
    assert dock.text() == f"{stamp()} [work] C: EHLO client.example.org"
    assert dock.line_kinds() == ["client"]
    # A matching line arriving while filtered shows; others are kept for later.
    dock.append(7, "work", rec(Direction.CLIENT, "EHLO again"))
    dock.append(7, "work", rec(Direction.CLIENT, "QUIT"))
    assert dock.text().splitlines()[-1].endswith("C: EHLO again")
    dock.filter.setText("WORK")  # every line carries the account name
    assert len(dock.line_kinds()) == len(CONVERSATION) + 2
    dock.filter.clear()
    assert dock.text().startswith(everything)
    assert dock.text().splitlines()[-1].endswith("C: QUIT")


def test_save_to_writes_exactly_the_shown_lines(dock: SessionLogDock, tmp_path: Path) -> None:
    feed(dock)
    dock.filter.setText("S:")
    target = tmp_path / "log.txt"
    target.write_text("old contents")
    dock.save_to(target)
    assert target.read_text(encoding="utf-8") == dock.text() + "\n"
    assert len(dock.text().splitlines()) == 3
    assert [p.name for p in tmp_path.iterdir()] == ["log.txt"]  # no temp file left


def test_save_to_a_missing_folder_raises_and_leaves_nothing(
    dock: SessionLogDock, tmp_path: Path
) -> None:
    feed(dock)
    with pytest.raises(OSError):
        dock.save_to(tmp_path / "missing" / "log.txt")
    assert list(tmp_path.iterdir()) == []


def test_clear_empties(dock: SessionLogDock) -> None:
    feed(dock)
    dock.clear()
    assert dock.text() == ""
    assert dock.line_kinds() == []
    dock.filter.setText("x")
    dock.filter.clear()
    assert dock.text() == ""  # the history went too


def test_clear_button_and_copy(dock: SessionLogDock, qtbot) -> None:
    feed(dock)
    qtbot.mouseClick(dock.copy_button, Qt.MouseButton.LeftButton)
    assert QGuiApplication.clipboard().text() == dock.text()
    cursor = dock.view.textCursor()
    cursor.setPosition(dock.view.document().findBlockByNumber(2).position())
    cursor.movePosition(cursor.MoveOperation.EndOfBlock, cursor.MoveMode.KeepAnchor)
    dock.view.setTextCursor(cursor)
    dock.copy()
    assert QGuiApplication.clipboard().text() == f"{stamp()} [work] C: EHLO client.example.org"
    qtbot.mouseClick(dock.clear_button, Qt.MouseButton.LeftButton)
    assert dock.text() == ""


# The offscreen plugin says this about every shown window with a layout.
@pytest.mark.qt_log_ignore(r"This plugin does not support propagateSizeHints\(\)")
def test_controls_have_accessible_names_and_ctrl_f_focuses_filter(qtbot) -> None:
    window = QMainWindow()
    qtbot.addWidget(window)
    dock = SessionLogDock(window)
    window.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, dock)
    for widget in (dock.filter, dock.copy_button, dock.save_button, dock.clear_button, dock.view):
        assert widget.accessibleName()
    assert dock.filter.placeholderText() == "Filter"
    window.show()
    qtbot.waitExposed(window)
    window.activateWindow()
    dock.view.setFocus()
    qtbot.waitUntil(dock.view.hasFocus)
    qtbot.keyClick(dock.view, Qt.Key.Key_F, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(dock.filter.hasFocus)


def test_burst_is_batched_by_the_timer(qtbot) -> None:
    dock = SessionLogDock()
    qtbot.addWidget(dock)
    for n in range(5000):
        dock.append(n // 10, "work", rec(Direction.SERVER, f"250 line {n}", T0 + n))
    # Nothing is drawn until the event loop runs the flush.
    assert dock.view.document().isEmpty()
    qtbot.waitUntil(lambda: dock.view.document().blockCount() == 5000)
    last = dock.view.document().lastBlock().text()
    assert last == f"{stamp(T0 + 4999)} [work] S: 250 line 4999"
    assert dock.line_kinds() == ["server"] * 5000


def test_redacted_text_is_shown_verbatim(dock: SessionLogDock) -> None:
    dock.append(1, "work", rec(Direction.CLIENT, "AUTH PLAIN *****"))
    dock.append(1, "work", rec(Direction.NOTE, "server said: user ***** rejected"))
    assert "C: AUTH PLAIN *****" in dock.text()
    assert "* server said: user ***** rejected" in dock.text()


def test_dark_palette_recolours_the_shown_lines(dock: SessionLogDock) -> None:
    feed(dock)
    kinds = dock.line_kinds()

    def error_colour() -> QColor:
        block = dock.view.document().findBlockByNumber(kinds.index("error"))
        return block.begin().fragment().charFormat().foreground().color()

    light = error_colour()
    palette = dock.palette()
    palette.setColor(QPalette.ColorRole.Base, QColor("#1e1e1e"))
    palette.setColor(QPalette.ColorRole.Text, QColor("#eeeeee"))
    dock.setPalette(palette)
    assert error_colour() != light
    assert dock.line_kinds() == kinds


def test_the_view_follows_new_lines_until_scrolled_up(qtbot) -> None:
    """New lines stay in sight while the view is at its end, after a long line
    brings the horizontal scroll bar and after the oldest lines are trimmed
    (Qt's own following stopped there); scrolled up, the view stays put."""
    dock = SessionLogDock(max_lines=60)
    qtbot.addWidget(dock)
    dock.resize(420, 200)
    dock.show()
    qtbot.waitExposed(dock)
    bar = dock.view.verticalScrollBar()

    def add(count: int, start: int, long: bool = False) -> None:
        for n in range(start, start + count):
            text = f"line {n}" + (" and much more" * 40 if long and n == start else "")
            dock.append(1, "work", rec(Direction.SERVER, text))
        dock.flush()
        QGuiApplication.processEvents()

    add(30, 0)
    assert bar.maximum() > 0 and bar.value() == bar.maximum()
    add(5, 30, long=True)  # the horizontal scroll bar comes
    assert dock.view.horizontalScrollBar().isVisible()
    add(10, 35)
    assert bar.value() == bar.maximum() and dock.following()
    add(40, 45)  # past 60 lines: the first ones are trimmed
    assert bar.value() == bar.maximum()
    assert dock.view.toPlainText().splitlines()[-1].endswith("line 84")

    bar.setValue(0)  # the person scrolls up to read
    add(10, 85)
    assert bar.value() == 0 and not dock.following()
    bar.setValue(bar.maximum())  # and back down: following again
    add(10, 95)
    assert bar.value() == bar.maximum() and dock.following()
