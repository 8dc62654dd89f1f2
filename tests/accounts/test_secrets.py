"""Passwords: the real Secret Service (gnome-keyring), password commands, no keyring at all."""

from __future__ import annotations

import os
import re
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import keyring
import keyring.backend
import keyring.errors
import pytest
from keyring.backends import chainer, fail, null

from mailer_gui.accounts import secrets
from mailer_gui.accounts.model import Account
from mailer_gui.accounts.secrets import (
    PasswordMissing,
    SecretError,
    delete_password,
    get_password,
    keyring_usable,
    run_password_command,
    store_password,
)
from mailer_gui.accounts.store import AccountStore
from mailer_gui.paths import resolve_paths
from tests.servers.secret_service import MemoryKeyring, SecretServiceHandle, use_keyring_backend

PASSWORD = "pässwörd-7f3a!"
SERVICE = secrets.SERVICE  # the per-user profile's; tests of profiles kept apart name theirs


def account(name: str | None = None, **changes: Any) -> Account:
    values: dict[str, Any] = {
        "name": name or f"test-{uuid.uuid4().hex[:12]}",  # the keyring is shared by the session
        "email": "ana@example.org",
        "host": "smtp.example.org",
    }
    values.update(changes)
    return Account(**values)


def command_account(command: str) -> Account:
    return account(secret_source="command", password_command=command)


# --- the real Secret Service ---------------------------------------------------------


def test_secret_service_is_usable(secret_service: SecretServiceHandle) -> None:
    usable, explanation = keyring_usable()
    assert usable, explanation
    assert "SecretService" in explanation


def test_store_get_delete_in_gnome_keyring(secret_service: SecretServiceHandle) -> None:
    work = account()
    store_password(work.name, PASSWORD, service=SERVICE)
    assert get_password(work, service=SERVICE) == PASSWORD
    store_password(work.name, PASSWORD + "-new", service=SERVICE)  # storing again replaces
    assert get_password(work, service=SERVICE) == PASSWORD + "-new"
    delete_password(work.name, service=SERVICE)
    with pytest.raises(PasswordMissing) as caught:
        get_password(work, service=SERVICE)
    assert caught.value.account_name == work.name
    assert work.name in str(caught.value)


def test_the_entry_is_service_mailer_gui_and_the_account_name(
    secret_service: SecretServiceHandle,
) -> None:
    work = account()
    store_password(work.name, PASSWORD, service=SERVICE)
    try:
        # What `keyring get mailer-gui NAME` and seahorse see, read without our module.
        assert keyring.get_password("mailer-gui", work.name) == PASSWORD
        assert secrets.SERVICE == "mailer-gui"
    finally:
        delete_password(work.name, service=SERVICE)


def test_accounts_do_not_share_passwords(secret_service: SecretServiceHandle) -> None:
    first, second = account(), account()
    store_password(first.name, "first-secret", service=SERVICE)
    store_password(second.name, "second-secret", service=SERVICE)
    try:
        assert get_password(first, service=SERVICE) == "first-secret"
        assert get_password(second, service=SERVICE) == "second-secret"
        delete_password(first.name, service=SERVICE)
        assert get_password(second, service=SERVICE) == "second-secret"
    finally:
        delete_password(first.name, service=SERVICE)
        delete_password(second.name, service=SERVICE)


def test_profiles_keep_their_own_passwords(
    secret_service: SecretServiceHandle, tmp_path: Path
) -> None:
    """Two profiles (--home) with an account of the same name: each keeps its own."""
    name = account().name
    one, two = (resolve_paths(tmp_path / folder).keyring_service for folder in ("one", "two"))
    assert one == f"mailer-gui:{tmp_path / 'one'}"
    assert resolve_paths(environ={}).keyring_service == "mailer-gui"  # the per-user folders
    store_password(name, "first-secret", service=one)
    store_password(name, "second-secret", service=two)
    try:
        assert get_password(account(name), service=one) == "first-secret"
        assert get_password(account(name), service=two) == "second-secret"
        with pytest.raises(PasswordMissing):
            get_password(account(name), service=SERVICE)  # nor the per-user profile's
        delete_password(name, service=two)
        assert get_password(account(name), service=one) == "first-secret"
        with pytest.raises(PasswordMissing):
            get_password(account(name), service=two)
    finally:
        delete_password(name, service=one)
        delete_password(name, service=two)


def test_missing_password_in_gnome_keyring(secret_service: SecretServiceHandle) -> None:
    with pytest.raises(PasswordMissing, match="No password is stored"):
        get_password(account(), service=SERVICE)


def test_deleting_an_absent_password_is_fine(secret_service: SecretServiceHandle) -> None:
    delete_password(account().name, service=SERVICE)


def test_gnome_keyring_keeps_no_plaintext(secret_service: SecretServiceHandle) -> None:
    work = account()
    store_password(work.name, PASSWORD, service=SERVICE)
    try:
        for path in secret_service.home.rglob("*"):
            if path.is_file():
                assert PASSWORD.encode() not in path.read_bytes(), path
    finally:
        delete_password(work.name, service=SERVICE)


# --- password commands ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "password"),
    [
        ("printf 'hunter2\\n'", "hunter2"),
        ("printf 'hunter2'", "hunter2"),
        ("printf 'hunter2\\r\\n'", "hunter2"),
        ("printf 'two\\n\\n'", "two\n"),  # only one newline is the command's, the rest is data
        ("printf ' spaced '", " spaced "),
        ("echo pässwörd | cat", "pässwörd"),
    ],
)
def test_password_command_output_is_the_password(command: str, password: str) -> None:
    assert get_password(command_account(command), service=SERVICE) == password


def test_password_command_runs_in_a_shell_without_our_stdin(tmp_path: Path) -> None:
    (tmp_path / "secret").write_text("from-a-file\n", encoding="utf-8")
    assert run_password_command(f"cat '{tmp_path}/secret'") == "from-a-file"
    assert run_password_command("cat; printf done") == "done"  # stdin is empty, not ours


def test_failing_command_reports_status_and_stderr_never_stdout() -> None:
    work = command_account("echo 'gpg: decryption failed' >&2; echo more >&2; echo leaked; exit 3")
    with pytest.raises(SecretError) as caught:
        get_password(work, service=SERVICE)
    message = str(caught.value)
    assert "exit status 3" in message
    assert "gpg: decryption failed" in message
    assert "more" not in message  # the first line only
    assert "leaked" not in message
    assert work.name in message
    assert caught.value.__context__ is None and caught.value.__cause__ is None
    assert not isinstance(caught.value, PasswordMissing)


def test_failing_command_without_stderr() -> None:
    with pytest.raises(SecretError, match=r"exit status 1.*no error message"):
        run_password_command("echo secret-output; false")


def test_command_that_hangs_is_stopped(tmp_path: Path) -> None:
    """Ended with what it started: the shell's `sleep` was left running before."""
    marker = f"{tmp_path}/hung"
    raised: list[BaseException] = []

    def run() -> None:
        try:
            run_password_command(f"echo partial; sh -c 'sleep 600; true' {marker}", timeout=0.5)
        except BaseException as exc:
            raised.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(60)
    assert not thread.is_alive(), "the command was not stopped"
    (caught,) = raised
    assert isinstance(caught, SecretError)
    assert "did not finish within 0.5 seconds" in str(caught)
    assert "partial" not in str(caught)
    assert caught.__context__ is None
    if sys.platform.startswith("linux"):
        still = []
        for entry in Path("/proc").iterdir():
            try:
                if marker.encode() in (entry / "cmdline").read_bytes():
                    still.append(entry.name)
            except OSError:
                continue
        assert still == []


def test_command_that_prints_nothing_is_an_error() -> None:
    with pytest.raises(SecretError, match="printed nothing"):
        run_password_command("printf '\\n'")


def test_command_that_prints_binary_is_an_error() -> None:
    with pytest.raises(SecretError, match="not UTF-8"):
        run_password_command("printf '\\377\\376'")


def test_missing_program_is_reported_by_the_shell() -> None:
    with pytest.raises(SecretError, match=r"exit status 127.*not found"):
        run_password_command("no-such-program-mailer-gui-test")


# --- no keyring at all ------------------------------------------------------------


@pytest.fixture
def no_keyring() -> Iterator[keyring.backend.KeyringBackend]:
    with use_keyring_backend(fail.Keyring()) as backend:  # type: ignore[no-untyped-call]
        yield backend


def test_no_keyring_says_so_and_offers_the_choices(
    no_keyring: keyring.backend.KeyringBackend,
) -> None:
    usable, explanation = keyring_usable()
    assert not usable
    for words in ("No usable system keyring", "Secret Service", "--password-command", "each time"):
        assert words in explanation
    with pytest.raises(SecretError) as caught:
        store_password("work", PASSWORD, service=SERVICE)
    assert str(caught.value) == explanation
    assert PASSWORD not in str(caught.value)
    with pytest.raises(SecretError, match="No usable system keyring") as caught_get:
        get_password(account("work"), service=SERVICE)
    assert not isinstance(caught_get.value, PasswordMissing)
    with pytest.raises(SecretError, match="No usable system keyring"):
        delete_password("work", service=SERVICE)


def test_no_keyring_writes_nothing_to_disk(
    no_keyring: keyring.backend.KeyringBackend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    for variable in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME", "XDG_STATE_HOME"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.delenv("MAILER_GUI_HOME", raising=False)
    monkeypatch.chdir(tmp_path)
    store = AccountStore(resolve_paths().accounts_file)
    assert tmp_path in store.path.parents
    store.add(account("work"))
    with pytest.raises(SecretError):
        store_password("work", PASSWORD, service=SERVICE)
    written = [path for path in tmp_path.rglob("*") if path.is_file()]
    assert store.path in written
    for path in written:
        assert PASSWORD.encode() not in path.read_bytes(), path


def test_a_command_account_needs_no_keyring(no_keyring: keyring.backend.KeyringBackend) -> None:
    assert get_password(command_account("printf ok"), service=SERVICE) == "ok"


def test_account_without_a_secret_source_is_asked(
    no_keyring: keyring.backend.KeyringBackend,
) -> None:
    with pytest.raises(PasswordMissing, match="asked for when sending"):
        get_password(account(secret_source="none"), service=SERVICE)


class _HalfSafeKeyring(MemoryKeyring):
    priority = 0.5  # like keyrings.alt's plaintext file


keyring.backend.KeyringBackend._classes.discard(_HalfSafeKeyring)


@pytest.mark.parametrize(
    "backend",
    [null.Keyring(), _HalfSafeKeyring()],  # type: ignore[no-untyped-call]
    ids=["null (disabled)", "not recommended"],
)
def test_disabled_or_unsafe_backends_are_refused(backend: keyring.backend.KeyringBackend) -> None:
    usable, explanation = keyring_usable(backend)
    assert not usable
    assert "--password-command" in explanation
    with pytest.raises(SecretError):
        store_password("work", PASSWORD, backend=backend, service=SERVICE)
    assert getattr(backend, "passwords", {}) == {}


def test_a_chainer_with_nothing_to_chain_is_no_keyring(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(keyring.backend, "_limit", lambda ring: False)
    usable, explanation = keyring_usable(chainer.ChainerBackend())  # type: ignore[no-untyped-call]
    assert not usable
    assert "No usable system keyring" in explanation


# --- the in-memory backend, and keyring failures ---------------------------------


def test_memory_keyring_round_trip(memory_keyring: MemoryKeyring) -> None:
    store_password("work", PASSWORD, service=SERVICE)
    assert memory_keyring.passwords == {("mailer-gui", "work"): PASSWORD}
    assert get_password(account("work"), service=SERVICE) == PASSWORD
    delete_password("work", service=SERVICE)
    delete_password("work", service=SERVICE)
    assert memory_keyring.passwords == {}


def test_refuses_empty_values(memory_keyring: MemoryKeyring) -> None:
    with pytest.raises(ValueError, match="empty password"):
        store_password("work", "", service=SERVICE)
    with pytest.raises(ValueError, match="account_name"):
        store_password("", PASSWORD, service=SERVICE)


class _BrokenKeyring(MemoryKeyring):
    def get_password(self, service: str, username: str) -> str | None:
        raise keyring.errors.KeyringLocked("Failed to unlock the collection!")

    def set_password(self, service: str, username: str, password: str) -> None:
        raise keyring.errors.PasswordSetError(f"D-Bus said no to {password}")

    def delete_password(self, service: str, username: str) -> None:
        raise OSError("the bus went away")


keyring.backend.KeyringBackend._classes.discard(_BrokenKeyring)


def test_keyring_failures_become_readable_errors_without_the_password() -> None:
    broken = _BrokenKeyring()
    with pytest.raises(SecretError) as stored:
        store_password("work", PASSWORD, backend=broken, service=SERVICE)
    assert PASSWORD not in str(stored.value)
    assert "could not be saved" in str(stored.value)
    assert "PasswordSetError" in str(stored.value)
    assert stored.value.__context__ is None
    with pytest.raises(SecretError, match=r"keyring is locked.*Unlock it"):
        get_password(account("work"), backend=broken, service=SERVICE)
    with pytest.raises(SecretError, match=r"could not be removed.*the bus went away"):
        delete_password("work", backend=broken, service=SERVICE)


def test_secret_error_module_has_no_file_writing() -> None:
    # The promise "never a plaintext fallback", checked where it could be broken.
    source = Path(secrets.__file__).read_text(encoding="utf-8")
    for forbidden in ("write_text", "write_bytes", "write_private_file_atomic"):
        assert forbidden not in source
    # open( and os.open( (a file opened to write), not subprocess.Popen(.
    assert re.findall(r"(?<![A-Za-z_])open\(", source) == []
    assert os.path.basename(secrets.__file__) == "secrets.py"


def test_secret_service_without_a_bus_is_a_plain_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from keyring.backends import SecretService

    monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", "unix:path=/nonexistent/mailer-gui-bus")
    backend = SecretService.Keyring()  # type: ignore[no-untyped-call]
    assert keyring_usable(backend)[0] is False
    with pytest.raises(SecretError, match="is not usable") as caught:
        store_password("work", PASSWORD, backend=backend, service=SERVICE)
    assert "--password-command" in str(caught.value)
