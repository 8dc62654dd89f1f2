"""Every control a person can reach has a name a screen reader can say.

Walks the real windows (main window with its detail pane and log, a composer,
the settings dialog, the setup wizard, the sandbox inbox) and lists each
focusable control that has neither an accessible name nor visible text nor a
label pointing at it (QLabel.setBuddy).
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractButton,
    QAbstractItemView,
    QAbstractSpinBox,
    QComboBox,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QTextEdit,
    QWidget,
)

from mailer_gui.accounts.model import Account
from mailer_gui.smtp.settings import AuthMethod, Security
from mailer_gui.ui.main_window import MainWindow
from tests.ui.homes import home_for

CONTROLS = (
    QAbstractButton,
    QAbstractItemView,
    QAbstractSpinBox,
    QComboBox,
    QLineEdit,
    QPlainTextEdit,
    QTextEdit,
)


def unnamed(root: QWidget) -> list[str]:
    labelled = {
        id(label.buddy()) for label in root.findChildren(QLabel) if label.buddy() is not None
    }
    missing = []
    for widget in root.findChildren(QWidget):
        if not isinstance(widget, CONTROLS):
            continue
        if widget.focusPolicy() == Qt.FocusPolicy.NoFocus:
            continue
        if widget.window() is not root:
            continue  # a combo box's popup list, a completer: named by their owner
        if isinstance(widget, QLineEdit) and isinstance(
            widget.parent(), QAbstractSpinBox | QComboBox
        ):
            continue  # the spin box's or combo box's own editor: named through its owner
        if widget.accessibleName().strip() or id(widget) in labelled:
            continue
        if isinstance(widget, QAbstractButton) and widget.text().replace("&", "").strip():
            continue
        missing.append(
            f"{type(widget).__name__} {widget.objectName()!r} in {type(widget.window()).__name__}"
        )
    return missing


def test_every_control_has_a_name(qtbot, tmp_path: Path, memory_keyring) -> None:
    account = Account(
        name="work",
        email="ann@example.org",
        host="localhost",
        port=9,
        security=Security.NONE,
        auth=AuthMethod.NONE,
    )
    paths = home_for(tmp_path, account, undo_seconds=None)
    window = MainWindow(paths, tray=False)
    qtbot.addWidget(window)
    ready = getattr(window, "is_ready", lambda: True)
    qtbot.waitUntil(ready, timeout=10_000)
    composer = window.open_composer()
    assert composer is not None
    window.open_settings()
    window.open_wizard()
    window.show_folder("drafts")
    window.show_folder("outbox")
    roots = [window, composer, window.settings_dialog, window.wizard]
    missing = [name for root in roots if root is not None for name in unnamed(root)]
    composer.discard()
    assert window.wizard is not None
    window.wizard.reject()
    window.close()
    assert missing == []


def test_the_walk_finds_an_unnamed_control(qtbot) -> None:
    root = QWidget()
    qtbot.addWidget(root)
    field = QLineEdit(root)
    assert unnamed(root) == ["QLineEdit '' in QWidget"]
    label = QLabel("&Subject:", root)
    label.setBuddy(field)
    assert unnamed(root) == []


def test_the_identity_dialog_names_its_controls(qtbot) -> None:
    from mailer_gui.ui.settings.identities import IdentitiesEditor

    editor = IdentitiesEditor()
    qtbot.addWidget(editor)
    assert unnamed(editor) == []
    dialog = editor.open_dialog(None)
    assert unnamed(dialog) == []
    dialog.reject()
