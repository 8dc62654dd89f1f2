"""Data folders for the window's tests: one plain account, no undo window."""

from __future__ import annotations

from pathlib import Path

from mailer_gui.accounts.model import Account
from mailer_gui.accounts.store import AccountStore
from mailer_gui.paths import AppPaths, ensure_private_dir, resolve_paths
from mailer_gui.preferences import Preferences, save_preferences
from mailer_gui.smtp.settings import AuthMethod, Security


def home_with_account(
    tmp_path: Path, port: int, *, undo_seconds: int = 0, host: str = "localhost"
) -> AppPaths:
    """``tmp_path/home`` with the account "work": ``host:port``, no TLS, no login."""
    paths = resolve_paths(tmp_path / "home")
    ensure_private_dir(paths.config_dir)
    AccountStore(paths.accounts_file).add(
        Account(
            name="work",
            email="ann@example.org",
            display_name="Ann",
            host=host,
            port=port,
            security=Security.NONE,
            auth=AuthMethod.NONE,
        )
    )
    save_preferences(paths.preferences_file, Preferences(undo_seconds=undo_seconds))
    return paths
