"""The "sandbox" account: made from a running server, kept up to date, usable by the engine."""

from __future__ import annotations

import io
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from keyring.backends import fail

from mailer_gui.accounts import secrets
from mailer_gui.accounts.model import Account
from mailer_gui.accounts.store import AccountStore
from mailer_gui.paths import AppPaths, resolve_paths
from mailer_gui.sandbox.account import (
    SANDBOX_ACCOUNT,
    ensure_sandbox_account,
    is_sandbox_account,
    stored_password,
)
from mailer_gui.sandbox.errors import SandboxError
from mailer_gui.sandbox.server import SandboxServer
from mailer_gui.smtp.auth import Credentials
from mailer_gui.smtp.session import Envelope, Session
from mailer_gui.smtp.settings import AuthMethod, Security
from tests.sandbox.conftest import MESSAGE
from tests.servers.secret_service import MemoryKeyring

FINGERPRINT = "ab" * 32


@dataclass(frozen=True)
class FakeSandbox:
    port: int = 2525
    fingerprint: str = FINGERPRINT
    password: str = "pw-1"


@pytest.fixture
def paths(tmp_path: Path) -> AppPaths:
    return resolve_paths(tmp_path / "home")


def test_created_with_the_servers_settings(paths: AppPaths) -> None:
    backend = MemoryKeyring()
    account = ensure_sandbox_account(paths, FakeSandbox(), backend=backend)
    assert account == AccountStore(paths.accounts_file).get(SANDBOX_ACCOUNT)
    assert (account.name, account.kind, account.host, account.port) == (
        "sandbox",
        "relay",
        "127.0.0.1",
        2525,
    )
    assert account.security is Security.STARTTLS and account.auth is AuthMethod.PLAIN
    assert account.username == "sandbox" and account.tls_fingerprint == FINGERPRINT
    assert (account.email, account.display_name) == ("you@sandbox.test", "You (sandbox)")
    assert account.secret_source == "keyring"
    assert secrets.get_password(account, backend=backend, service=paths.keyring_service) == "pw-1"
    assert stored_password(paths, backend=backend) == "pw-1"
    assert is_sandbox_account(account)
    assert "pw-1" not in paths.accounts_file.read_text()


def test_updated_for_a_new_port_and_password(paths: AppPaths) -> None:
    backend = MemoryKeyring()
    store = AccountStore(paths.accounts_file)
    store.add(Account(name="work", email="me@work.example", host="smtp.work.example"))
    ensure_sandbox_account(paths, FakeSandbox(), backend=backend)
    store.set_default(SANDBOX_ACCOUNT)
    # The person renamed the sender; that stays.
    edited = replace(store.get(SANDBOX_ACCOUNT), display_name="Tester")
    store.remove(SANDBOX_ACCOUNT)
    store.add(edited, make_default=True)

    account = ensure_sandbox_account(
        paths, FakeSandbox(port=40000, password="pw-2", fingerprint="cd" * 32), backend=backend
    )
    assert account.port == 40000 and account.tls_fingerprint == "cd" * 32
    assert account.display_name == "Tester"
    assert store.get(SANDBOX_ACCOUNT) == account
    assert [a.name for a in store.load()] == ["work", "sandbox"]
    default = store.default()
    assert default is not None and default.name == SANDBOX_ACCOUNT  # still the default
    assert stored_password(paths, backend=backend) == "pw-2"


def test_unchanged_account_not_rewritten(paths: AppPaths) -> None:
    backend = MemoryKeyring()
    ensure_sandbox_account(paths, FakeSandbox(), backend=backend)
    before = paths.accounts_file.stat().st_mtime_ns
    ensure_sandbox_account(paths, FakeSandbox(), backend=backend)
    assert paths.accounts_file.stat().st_mtime_ns == before


def test_without_a_keyring_the_password_is_asked(paths: AppPaths) -> None:
    no_keyring = fail.Keyring()  # type: ignore[no-untyped-call]
    account = ensure_sandbox_account(paths, FakeSandbox(), backend=no_keyring)
    assert account.secret_source == "none"
    assert stored_password(paths, backend=no_keyring) is None
    # A keyring later: the account switches to it.
    backend = MemoryKeyring()
    assert ensure_sandbox_account(paths, FakeSandbox(), backend=backend).secret_source == "keyring"


def test_the_persons_own_sandbox_account_left_alone(paths: AppPaths) -> None:
    store = AccountStore(paths.accounts_file)
    mine = Account(name="Sandbox", email="me@example.org", host="smtp.example.org")
    store.add(mine)
    with pytest.raises(SandboxError, match="leaves it alone"):
        ensure_sandbox_account(paths, FakeSandbox(), backend=MemoryKeyring())
    assert store.load() == [mine]


def test_needs_a_started_server(paths: AppPaths) -> None:
    with pytest.raises(SandboxError, match="Start the sandbox"):
        ensure_sandbox_account(paths, FakeSandbox(port=0), backend=MemoryKeyring())


def test_the_account_sends_to_the_sandbox(paths: AppPaths, tmp_path: Path) -> None:
    backend = MemoryKeyring()
    server = SandboxServer(
        paths.data_dir / "sandbox" / "Maildir",
        paths.data_dir / "sandbox",
        password=stored_password(paths, backend=backend),
    )
    with server:
        account = ensure_sandbox_account(paths, server, backend=backend)
        settings = account.server_settings()
        password = secrets.get_password(account, backend=backend, service=paths.keyring_service)
        assert settings.tls_fingerprint == server.fingerprint

        def credentials() -> Credentials:
            return Credentials(settings.username or "", password)

        with Session(settings, credentials=credentials) as session:
            envelope = Envelope(account.email, ("bo@example.test",))
            result = session.send_message(envelope, io.BytesIO(MESSAGE), len(MESSAGE))
        assert result.outcome == "sent"
        assert [m.envelope_from for m in server.messages()] == ["you@sandbox.test"]

    # Next start: the same login, kept in the keyring, and the same certificate.
    again = SandboxServer(
        paths.data_dir / "sandbox" / "Maildir",
        paths.data_dir / "sandbox",
        password=stored_password(paths, backend=backend),
    )
    assert again.password == server.password and again.fingerprint == server.fingerprint
