"""Data folders for the window's tests: an account, and no undo window."""

from __future__ import annotations

from pathlib import Path

from mailer_gui.accounts.model import Account
from mailer_gui.accounts.store import AccountStore
from mailer_gui.paths import AppPaths, ensure_private_dir, resolve_paths
from mailer_gui.preferences import Preferences, save_preferences
from mailer_gui.smtp.settings import AuthMethod, Security


def home_for(root: Path, account: Account, *, undo_seconds: int | None = 0) -> AppPaths:
    """The data folders under ``root`` with ``account``; preferences with that undo
    window (None: no preferences file, the defaults)."""
    paths = resolve_paths(root)
    ensure_private_dir(paths.config_dir)
    AccountStore(paths.accounts_file).add(account)
    if undo_seconds is not None:
        save_preferences(paths.preferences_file, Preferences(undo_seconds=undo_seconds))
    return paths


def home_with_account(
    tmp_path: Path, port: int, *, undo_seconds: int = 0, host: str = "localhost"
) -> AppPaths:
    """``tmp_path/home`` with the account "work": ``host:port``, no TLS, no login."""
    account = Account(
        name="work",
        email="ann@example.org",
        display_name="Ann",
        host=host,
        port=port,
        security=Security.NONE,
        auth=AuthMethod.NONE,
    )
    return home_for(tmp_path / "home", account, undo_seconds=undo_seconds)
