"""A real Secret Service for the tests: gnome-keyring on a private D-Bus session bus.

`secret_service` (session scope) starts dbus-daemon with a bus config of its
own (no service activation, so nothing else gets started behind our back) and
gnome-keyring-daemon with HOME and XDG_* in a temporary folder, where it creates
and unlocks its own "login" keyring. The person's real keyring is never
touched. `memory_keyring` is a plain in-memory backend for tests that only
need somewhere to keep a password.
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import keyring
import keyring.backend
import keyring.core
import keyring.errors
import pytest

from tests.servers.availability import unavailable

WHAT = "gnome-keyring (Secret Service)"
KEYRING_PASSWORD = b"mailer-gui-tests"  # unlocks the throwaway login keyring
START_TIMEOUT = 15.0

_BUS_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"""


@dataclass(frozen=True)
class SecretServiceHandle:
    """The running Secret Service: its bus, its home folder, the backend in use."""

    bus_address: str
    home: Path
    backend: keyring.backend.KeyringBackend


class MemoryKeyring(keyring.backend.KeyringBackend):
    """Passwords in a dict. Priority 1 so that secrets.keyring_usable accepts it."""

    priority: float = 1

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.passwords: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.passwords.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.passwords[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        try:
            del self.passwords[(service, username)]
        except KeyError:
            raise keyring.errors.PasswordDeleteError("no such password") from None


# keyring registers every backend class for its auto-detection; keep this one out,
# so only a test that asks for it ever gets it.
keyring.backend.KeyringBackend._classes.discard(MemoryKeyring)


@contextlib.contextmanager
def use_keyring_backend(
    backend: keyring.backend.KeyringBackend,
) -> Iterator[keyring.backend.KeyringBackend]:
    """Make `backend` keyring's current backend for the block, then put back the previous one."""
    # The private attribute, not get_keyring(): that would run auto-detection when
    # nothing was chosen yet, and "nothing chosen" is what must be restored.
    previous = keyring.core._keyring_backend
    keyring.set_keyring(backend)
    try:
        yield backend
    finally:
        keyring.core._keyring_backend = previous


@pytest.fixture
def memory_keyring() -> Iterator[MemoryKeyring]:
    """A fresh in-memory keyring as the current backend for one test."""
    with use_keyring_backend(MemoryKeyring()) as backend:
        assert isinstance(backend, MemoryKeyring)
        yield backend


@pytest.fixture(scope="session")
def secret_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecretServiceHandle]:
    """gnome-keyring's Secret Service on a private bus, selected as keyring's backend."""
    try:
        import secretstorage  # noqa: F401
        from keyring.backends import SecretService
    except ImportError as error:
        unavailable(f"{WHAT} [python module missing: {error.name}]")
    dbus_daemon = shutil.which("dbus-daemon")
    keyring_daemon = shutil.which("gnome-keyring-daemon")
    if dbus_daemon is None or keyring_daemon is None:
        missing = "dbus-daemon" if dbus_daemon is None else "gnome-keyring-daemon"
        unavailable(f"{WHAT} [{missing} not found]")

    home = tmp_path_factory.mktemp("secret-service-home")
    # A unix socket path must stay under ~108 bytes; pytest's folders can be deeper.
    socket_dir = Path(tempfile.mkdtemp(prefix="mg-bus-", dir="/tmp"))
    processes: list[subprocess.Popen[bytes]] = []
    saved_address = os.environ.get("DBUS_SESSION_BUS_ADDRESS")
    try:
        environment = _private_environment(home)
        bus_address = _start_bus(dbus_daemon, socket_dir, home, environment, processes)
        environment["DBUS_SESSION_BUS_ADDRESS"] = bus_address
        _start_keyring(keyring_daemon, home, environment, processes)
        _wait_until_unlocked(bus_address, processes[-1], home)
    except (_StartFailed, OSError) as failure:
        _stop(processes)
        shutil.rmtree(socket_dir, ignore_errors=True)
        unavailable(f"{WHAT} [{failure}]")

    os.environ["DBUS_SESSION_BUS_ADDRESS"] = bus_address
    try:
        with use_keyring_backend(SecretService.Keyring()) as backend:  # type: ignore[no-untyped-call]
            yield SecretServiceHandle(bus_address=bus_address, home=home, backend=backend)
    finally:
        if saved_address is None:
            os.environ.pop("DBUS_SESSION_BUS_ADDRESS", None)
        else:
            os.environ["DBUS_SESSION_BUS_ADDRESS"] = saved_address
        _stop(processes)
        shutil.rmtree(socket_dir, ignore_errors=True)


class _StartFailed(Exception):
    pass


def _private_environment(home: Path) -> dict[str, str]:
    environment = {
        key: value
        for key, value in os.environ.items()
        # No display: gnome-keyring must never pop up a prompt on a developer's screen.
        if key not in {"DISPLAY", "WAYLAND_DISPLAY", "GNOME_KEYRING_CONTROL", "SSH_AUTH_SOCK"}
    }
    runtime = home / "runtime"
    runtime.mkdir(mode=0o700, exist_ok=True)
    environment.update(
        HOME=str(home),
        XDG_DATA_HOME=str(home / "data"),
        XDG_CONFIG_HOME=str(home / "config"),
        XDG_CACHE_HOME=str(home / "cache"),
        XDG_RUNTIME_DIR=str(runtime),
    )
    return environment


def _start_bus(
    program: str,
    socket_dir: Path,
    home: Path,
    environment: dict[str, str],
    processes: list[subprocess.Popen[bytes]],
) -> str:
    config = home / "bus.conf"
    config.write_text(_BUS_CONFIG.format(socket=socket_dir / "bus"), encoding="utf-8")
    with open(home / "dbus-daemon.log", "wb") as log:
        bus = subprocess.Popen(
            [program, f"--config-file={config}", "--nofork", "--nopidfile", "--print-address=1"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=log,
            env=environment,
        )
    processes.append(bus)
    assert bus.stdout is not None
    ready, _, _ = select.select([bus.stdout], [], [], START_TIMEOUT)
    line = bus.stdout.readline().decode().strip() if ready else ""
    if not line:
        raise _StartFailed(f"dbus-daemon printed no address; {_tail(home / 'dbus-daemon.log')}")
    return line


def _start_keyring(
    program: str,
    home: Path,
    environment: dict[str, str],
    processes: list[subprocess.Popen[bytes]],
) -> None:
    # --foreground keeps it our child (its PID is ours to stop); --unlock reads the
    # login keyring's password from stdin and creates that keyring when it is missing.
    with open(home / "gnome-keyring.log", "wb") as log:
        daemon = subprocess.Popen(
            [program, "--foreground", "--unlock", "--components=secrets"],
            stdin=subprocess.PIPE,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=environment,
        )
    processes.append(daemon)
    assert daemon.stdin is not None
    try:
        daemon.stdin.write(KEYRING_PASSWORD)
        daemon.stdin.close()
    except BrokenPipeError:
        raise _StartFailed(
            f"gnome-keyring-daemon exited at once; {_tail(home / 'gnome-keyring.log')}"
        ) from None


def _wait_until_unlocked(bus_address: str, daemon: subprocess.Popen[bytes], home: Path) -> None:
    """Poll, bounded, until the default collection exists and is unlocked."""
    import secretstorage
    from jeepney.io.blocking import open_dbus_connection  # type: ignore[import-untyped]

    deadline = time.monotonic() + START_TIMEOUT
    last_error = "no answer"
    while time.monotonic() < deadline:
        if daemon.poll() is not None:
            raise _StartFailed(
                f"gnome-keyring-daemon exited with status {daemon.returncode}; "
                f"{_tail(home / 'gnome-keyring.log')}"
            )
        try:
            with contextlib.closing(open_dbus_connection(bus=bus_address)) as connection:
                if not secretstorage.check_service_availability(connection):
                    last_error = "org.freedesktop.secrets is not on the bus"
                elif secretstorage.Collection(connection).is_locked():
                    last_error = "the login keyring is still locked"
                else:
                    return
        except Exception as error:  # not there yet: keep polling until the deadline
            last_error = f"{type(error).__name__}: {error}"
        time.sleep(0.05)
    raise _StartFailed(
        f"the Secret Service did not answer within {START_TIMEOUT:g} s ({last_error}); "
        f"{_tail(home / 'gnome-keyring.log')}"
    )


def _stop(processes: list[subprocess.Popen[bytes]]) -> None:
    """Stop what we started, newest first, by PID: SIGTERM, then SIGKILL."""
    for process in reversed(processes):
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        if process.stdout is not None:
            process.stdout.close()
        if process.stdin is not None and not process.stdin.closed:
            process.stdin.close()
    processes.clear()


def _tail(log: Path) -> str:
    try:
        lines = log.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    except OSError:
        return "no log"
    return "log: " + (" | ".join(lines[-3:]) if lines else "empty")
