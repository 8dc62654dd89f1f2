"""Where Mailer keeps its files, and how private files are written.

`resolve_paths` answers "where": the platform's per-user folders, or one folder
given by `--home DIR` / MAILER_GUI_HOME (tests, portable installs). The account
store and the outbox use `ensure_private_dir` and `write_private_file_atomic` so
that config and data are 0600 files in 0700 folders, never half written.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

APP_NAME = "mailer-gui"
HOME_ENV = "MAILER_GUI_HOME"

PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600


class AppPaths(NamedTuple):
    """The folders Mailer reads and writes; nothing here creates them.

    A NamedTuple, not a frozen dataclass: the window imports this module before
    its first paint, and loading `dataclasses` would add about 5 ms to it.
    """

    config_dir: Path
    data_dir: Path
    spool_dir: Path
    #: The folder given by --home or MAILER_GUI_HOME; None for the per-user folders.
    home: Path | None = None

    @property
    def accounts_file(self) -> Path:
        return self.config_dir / "accounts.json"

    @property
    def database(self) -> Path:
        return self.data_dir / "outbox.sqlite3"

    @property
    def preferences_file(self) -> Path:
        """How the app behaves (undo window, retry schedule, composer): no secrets."""
        return self.config_dir / "preferences.json"

    @property
    def drafts_dir(self) -> Path:
        """Unsent drafts, one file each, autosaved while a composer is open."""
        return self.data_dir / "drafts"

    @property
    def keyring_service(self) -> str:
        """The keyring service name this profile's passwords are kept under
        (accounts.secrets): "mailer-gui" for the per-user folders, and
        "mailer-gui:DIR" for a profile kept in DIR, so that two profiles with
        an account of the same name each keep their own password. A profile
        moved to another folder asks for its passwords again, once, rather
        than reading another profile's."""
        return APP_NAME if self.home is None else f"{APP_NAME}:{self.home}"

    @property
    def sandbox_dir(self) -> Path:
        """The built-in test server's captured mail and certificate."""
        return self.data_dir / "sandbox"


def resolve_paths(
    home: str | os.PathLike[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
) -> AppPaths:
    """The folders to use: `home` (from --home), else $MAILER_GUI_HOME, else platformdirs.

    With a home folder everything lives below it (DIR/config, DIR/data,
    DIR/data/spool), so a test or a portable install touches nothing else.
    """
    env = os.environ if environ is None else environ
    root: Path | None = None
    if home is None and env.get(HOME_ENV):
        home = env[HOME_ENV]
    if home is not None:
        # Absolute now, so a later chdir cannot move the files.
        root = Path(os.path.abspath(os.path.expanduser(os.fspath(home))))
        config_dir = root / "config"
        data_dir = root / "data"
    else:
        # Imported here: with a home folder (tests, portable installs) it is not needed.
        import platformdirs

        # appauthor=False: "%LOCALAPPDATA%\mailer-gui" on Windows, not "...\mailer-gui\mailer-gui".
        config_dir = Path(platformdirs.user_config_dir(APP_NAME, appauthor=False))
        data_dir = Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))
    return AppPaths(
        config_dir=config_dir, data_dir=data_dir, spool_dir=data_dir / "spool", home=root
    )


def ensure_private_dir(path: str | os.PathLike[str]) -> Path:
    """Create `path` (and missing parents) and make the folder itself 0700.

    An existing folder that we own is tightened to 0700; one owned by someone
    else is left as it is (we could not change it anyway). Parents keep the
    umask's mode: only the leaf holds our files.
    """
    directory = Path(path)
    os.makedirs(directory, mode=PRIVATE_DIR_MODE, exist_ok=True)
    if os.name != "posix":
        return directory  # Windows: the per-user profile ACLs already keep others out.
    info = os.stat(directory)
    if info.st_uid == os.getuid() and (info.st_mode & 0o777) != PRIVATE_DIR_MODE:
        os.chmod(directory, PRIVATE_DIR_MODE)
    return directory


def write_private_file_atomic(path: str | os.PathLike[str], data: bytes) -> None:
    """Replace the file at `path` with `data`, all or nothing, as a 0600 file.

    The bytes go to a temporary file in the same folder (created 0600 by
    mkstemp), are fsynced, and the temporary file is renamed over `path`; then
    the folder is fsynced so the rename survives a power cut. A crash leaves
    either the old file or the new one. The folder must exist.
    """
    target = Path(path)
    directory = target.parent
    fd, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    fsync_directory(directory)


def fsync_directory(directory: str | os.PathLike[str]) -> None:
    """Make a rename in ``directory`` durable (best effort where folders cannot be synced)."""
    if os.name != "posix":
        return  # Windows cannot open a folder for fsync; NTFS journals the rename.
    with contextlib.suppress(OSError):
        dir_fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
