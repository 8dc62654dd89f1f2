"""The main window lists the accounts (offscreen, pytest-qt)."""

from __future__ import annotations

from pathlib import Path

from mailer_gui.accounts.model import Account
from mailer_gui.accounts.store import AccountStore
from mailer_gui.paths import resolve_paths
from mailer_gui.ui.main_window import MainWindow


def test_lists_accounts(qtbot, tmp_path: Path) -> None:
    paths = resolve_paths(tmp_path)
    paths.config_dir.mkdir(parents=True)
    AccountStore(paths.accounts_file).add(
        Account(name="work", email="ann@example.org", host="smtp.example.org")
    )
    window = MainWindow(paths)
    qtbot.addWidget(window)
    assert window.accounts.count() == 1
    assert "ann@example.org" in window.accounts.item(0).text()


def test_first_start_explains_what_to_do(qtbot, tmp_path: Path) -> None:
    window = MainWindow(resolve_paths(tmp_path))
    qtbot.addWidget(window)
    assert window.accounts.count() == 0
    assert "mailer-gui accounts add" in window.status.text()
