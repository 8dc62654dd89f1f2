"""A question with two answers and Cancel, as the window asks before quitting
or before editing a message that has not gone yet."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QAbstractButton, QMessageBox, QWidget

Role = QMessageBox.ButtonRole


def two_choices(
    parent: QWidget,
    title: str,
    text: str,
    informative: str,
    first: tuple[str, Role],
    second: tuple[str, Role],
) -> tuple[QMessageBox, QAbstractButton, QAbstractButton]:
    """A window-modal question (not yet open): ``first`` is the default answer,
    Escape is Cancel. The box and the two answers' buttons."""
    box = QMessageBox(
        QMessageBox.Icon.Question, title, text, QMessageBox.StandardButton.Cancel, parent
    )
    box.setInformativeText(informative)
    one = box.addButton(*first)
    two = box.addButton(*second)
    box.setDefaultButton(one)
    box.setEscapeButton(QMessageBox.StandardButton.Cancel)
    box.setWindowModality(Qt.WindowModality.WindowModal)
    return box, one, two
