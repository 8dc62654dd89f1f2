"""Where files live, and the private-file helpers: modes checked with os.stat."""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Iterator
from pathlib import Path

import platformdirs
import pytest

from mailer_gui.paths import (
    AppPaths,
    ensure_private_dir,
    resolve_paths,
    write_private_file_atomic,
)

posix_only = pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")


def mode_of(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def loose_umask() -> Iterator[None]:
    """umask 0: whatever is private is so because we made it so, not the umask."""
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


def test_home_puts_everything_below_it(tmp_path: Path) -> None:
    resolved = resolve_paths(tmp_path, environ={})
    assert resolved == AppPaths(
        config_dir=tmp_path / "config",
        data_dir=tmp_path / "data",
        spool_dir=tmp_path / "data" / "spool",
        home=tmp_path,
    )
    assert resolved.accounts_file == tmp_path / "config" / "accounts.json"
    assert resolved.database == tmp_path / "data" / "outbox.sqlite3"


def test_environment_variable_is_used_without_home(tmp_path: Path) -> None:
    resolved = resolve_paths(environ={"MAILER_GUI_HOME": str(tmp_path)})
    assert resolved.config_dir == tmp_path / "config"


def test_process_environment_is_the_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MAILER_GUI_HOME", str(tmp_path))
    assert resolve_paths().data_dir == tmp_path / "data"


def test_home_option_beats_environment(tmp_path: Path) -> None:
    resolved = resolve_paths(tmp_path / "option", environ={"MAILER_GUI_HOME": str(tmp_path)})
    assert resolved.config_dir == tmp_path / "option" / "config"


def test_relative_home_is_made_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    resolved = resolve_paths("portable", environ={})
    assert resolved.config_dir.is_absolute()
    monkeypatch.chdir("/")
    assert resolved.config_dir == tmp_path / "portable" / "config"


def test_without_home_platformdirs_decides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MAILER_GUI_HOME", raising=False)
    resolved = resolve_paths(environ={"MAILER_GUI_HOME": ""})  # empty counts as unset
    assert resolved.config_dir == Path(platformdirs.user_config_dir("mailer-gui", appauthor=False))
    assert resolved.data_dir == Path(platformdirs.user_data_dir("mailer-gui", appauthor=False))
    assert resolved.spool_dir == resolved.data_dir / "spool"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="XDG folders are Linux's")
def test_xdg_folders_are_followed_on_linux(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))
    resolved = resolve_paths(environ={})
    assert resolved.config_dir == tmp_path / "xdg-config" / "mailer-gui"
    assert resolved.database == tmp_path / "xdg-data" / "mailer-gui" / "outbox.sqlite3"


def test_resolving_creates_nothing(tmp_path: Path) -> None:
    resolve_paths(tmp_path / "home", environ={})
    assert not (tmp_path / "home").exists()


@posix_only
def test_ensure_private_dir_creates_0700_with_parents(tmp_path: Path, loose_umask: None) -> None:
    target = tmp_path / "a" / "b" / "config"
    assert ensure_private_dir(target) == target
    assert target.is_dir()
    assert mode_of(target) == 0o700


@posix_only
def test_ensure_private_dir_tightens_an_existing_dir(tmp_path: Path) -> None:
    target = tmp_path / "config"
    target.mkdir()
    os.chmod(target, 0o755)
    ensure_private_dir(target)
    assert mode_of(target) == 0o700
    ensure_private_dir(target)  # again: nothing to do, no error
    assert mode_of(target) == 0o700


def test_ensure_private_dir_refuses_a_file(tmp_path: Path) -> None:
    (tmp_path / "config").write_bytes(b"")
    with pytest.raises(FileExistsError):
        ensure_private_dir(tmp_path / "config")


@posix_only
def test_atomic_write_creates_0600_file(tmp_path: Path, loose_umask: None) -> None:
    target = tmp_path / "accounts.json"
    write_private_file_atomic(target, b"{}\n")
    assert target.read_bytes() == b"{}\n"
    assert mode_of(target) == 0o600
    assert os.listdir(tmp_path) == ["accounts.json"]  # no temporary file left


@posix_only
def test_atomic_write_replaces_a_loose_file_with_a_private_one(tmp_path: Path) -> None:
    target = tmp_path / "accounts.json"
    target.write_bytes(b"old")
    os.chmod(target, 0o644)
    write_private_file_atomic(target, b"new")
    assert target.read_bytes() == b"new"
    assert mode_of(target) == 0o600


def test_failed_write_keeps_the_old_file_and_no_debris(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "accounts.json"
    target.write_bytes(b"old")

    def broken_replace(source: str, destination: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="No space left"):
        write_private_file_atomic(target, b"new")
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["accounts.json"]


def test_atomic_write_needs_an_existing_folder(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        write_private_file_atomic(tmp_path / "missing" / "accounts.json", b"{}")


def test_core_modules_do_not_import_qt() -> None:
    import subprocess

    code = (
        "import sys, mailer_gui.paths, mailer_gui.accounts.model, "
        "mailer_gui.accounts.store, mailer_gui.accounts.secrets\n"
        "assert not [m for m in sys.modules if m.startswith(('PySide6', 'PyQt'))]"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parent.parent)
