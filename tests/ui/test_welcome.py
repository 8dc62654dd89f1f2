"""The first-start welcome page (offscreen, pytest-qt)."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication

from mailer_gui.ui.welcome import WelcomePage

# The offscreen plugin says this about every shown window with a layout.
pytestmark = pytest.mark.qt_log_ignore(r"This plugin does not support propagateSizeHints\(\)")


def make_page(qtbot) -> WelcomePage:
    page = WelcomePage()
    qtbot.addWidget(page)
    page.show()
    qtbot.waitExposed(page)
    return page


def test_the_two_choices_emit_their_signals(qtbot) -> None:
    page = make_page(qtbot)
    with qtbot.waitSignal(page.addAccount, timeout=1_000), qtbot.assertNotEmitted(page.trySandbox):
        qtbot.mouseClick(page.add_button, Qt.MouseButton.LeftButton)
    with qtbot.waitSignal(page.trySandbox, timeout=1_000), qtbot.assertNotEmitted(page.addAccount):
        qtbot.mouseClick(page.try_button, Qt.MouseButton.LeftButton)


def test_reachable_from_the_keyboard(qtbot) -> None:
    page = make_page(qtbot)
    page.activateWindow()
    page.setFocus()
    qtbot.waitUntil(lambda: page.add_button.hasFocus(), timeout=2_000)
    with qtbot.waitSignal(page.addAccount, timeout=1_000):
        qtbot.keyClick(page.add_button, Qt.Key.Key_Space)
    # Tab moves to the second choice, and Space chooses it.
    qtbot.keyClick(page.add_button, Qt.Key.Key_Tab)
    qtbot.waitUntil(lambda: page.try_button.hasFocus(), timeout=2_000)
    with qtbot.waitSignal(page.trySandbox, timeout=1_000):
        qtbot.keyClick(page.try_button, Qt.Key.Key_Space)
    # And each has its own shortcut.
    assert page.add_button.shortcut().toString() == "Alt+A"
    assert page.try_button.shortcut().toString() == "Alt+T"


def test_says_what_each_choice_does_and_names_its_controls(qtbot) -> None:
    page = make_page(qtbot)
    assert page.title.text() == "Welcome to Mailer"
    assert "Add your email account" in page.add_button.text()
    assert "keyring" in page.add_button.description()
    assert "built-in test server" in page.try_button.text()
    assert "delivers nothing" in page.try_button.description()
    for widget in (page, page.title, page.subtitle, page.add_button, page.try_button, page.message):
        assert widget.accessibleName()
    assert page.add_button.accessibleDescription() == page.add_button.description()


def test_busy_and_problem_messages(qtbot) -> None:
    page = make_page(qtbot)
    assert page.message.isHidden()
    page.set_busy("Starting the test server…")
    assert page.message.isVisible() and page.message.text() == "Starting the test server…"
    assert not page.add_button.isEnabled() and not page.try_button.isEnabled()
    page.show_problem("The test server could not start: port in use. Try again.")
    assert page.add_button.isEnabled() and page.try_button.isEnabled()
    assert "could not start" in page.message.text()
    problem = page.message.palette().color(QPalette.ColorRole.WindowText)
    assert problem != page.palette().color(QPalette.ColorRole.WindowText)
    page.set_busy(None)
    assert page.message.isHidden() and page.add_button.isEnabled()


def test_follows_a_dark_palette(qtbot) -> None:
    page = make_page(qtbot)
    dark = QPalette(QApplication.palette())
    dark.setColor(QPalette.ColorRole.Window, QColor("#1e1e1e"))
    dark.setColor(QPalette.ColorRole.WindowText, QColor("#eeeeee"))
    page.setPalette(dark)
    subtitle = page.subtitle.palette().color(QPalette.ColorRole.WindowText)
    assert subtitle.lightness() > 128  # light text on the dark window, not black
    page.show_problem("Something went wrong.")
    problem = page.message.palette().color(QPalette.ColorRole.WindowText)
    assert problem.lightness() > 128

    light = QPalette(QApplication.palette())
    light.setColor(QPalette.ColorRole.Window, QColor("#fafafa"))
    light.setColor(QPalette.ColorRole.WindowText, QColor("#111111"))
    page.setPalette(light)
    assert page.subtitle.palette().color(QPalette.ColorRole.WindowText).lightness() < 128
    assert page.message.palette().color(QPalette.ColorRole.WindowText).lightness() < 128
