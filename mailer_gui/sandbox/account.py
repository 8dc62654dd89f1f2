"""The "sandbox" account: what lets the app send to the sandbox like to any server.

`ensure_sandbox_account` writes (or brings up to date) the account for a
running SandboxServer: its port, its pinned certificate fingerprint, and its
password in the keyring. With no usable keyring the password stays in memory
(the server holds it) and the account asks for it (secret source "none").
`stored_password` gives the password kept from an earlier run, so the login
stays the same for as long as the keyring keeps it. `sandbox_credentials`
lets a process that runs the server itself (the GUI) log in with the password
the server holds in memory, keyring or not: nothing is ever written to a file.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING, Final, Protocol

from mailer_gui.accounts.model import Account, AccountError, SecretSource
from mailer_gui.accounts.store import AccountStore, UnknownAccount
from mailer_gui.paths import AppPaths
from mailer_gui.sandbox.errors import SandboxError
from mailer_gui.smtp.auth import Credentials
from mailer_gui.smtp.settings import AuthMethod, Security

if TYPE_CHECKING:
    import keyring.backend

    from mailer_gui.outbox.runner import CredentialsLookup, SendingAccount

SANDBOX_ACCOUNT: Final = "sandbox"
SANDBOX_EMAIL: Final = "you@sandbox.test"  # .test is reserved (RFC 2606): never a real domain
SANDBOX_DISPLAY_NAME: Final = "You (sandbox)"
SANDBOX_HOST: Final = "127.0.0.1"
SANDBOX_USERNAME: Final = "sandbox"


class RunningSandbox(Protocol):
    """What the account needs from a server (SandboxServer has it)."""

    @property
    def port(self) -> int: ...
    @property
    def fingerprint(self) -> str: ...
    @property
    def password(self) -> str: ...


def sandbox_account(server: RunningSandbox, *, secret_source: SecretSource = "keyring") -> Account:
    """The account that sends to `server` (not saved)."""
    return Account(
        name=SANDBOX_ACCOUNT,
        email=SANDBOX_EMAIL,
        display_name=SANDBOX_DISPLAY_NAME,
        kind="relay",
        host=SANDBOX_HOST,
        port=server.port,
        security=Security.STARTTLS,
        auth=AuthMethod.PLAIN,
        username=SANDBOX_USERNAME,
        tls_fingerprint=server.fingerprint,
        secret_source=secret_source,
    )


def is_sandbox_account(account: Account) -> bool:
    """True for an account that sends to a sandbox (not the person's own account by that name)."""
    return (
        account.kind == "relay"
        and account.host == SANDBOX_HOST
        and account.username == SANDBOX_USERNAME
    )


def sends_to(account: SendingAccount, server: RunningSandbox) -> bool:
    """True when `account` logs in to `server`: its host, port, login and pinned certificate.

    The pin is what makes handing over the password safe: a program that took
    the port after the sandbox stopped fails the TLS check before any AUTH.
    """
    if account.kind != "relay":
        return False
    try:
        settings = account.server_settings()
    except AccountError:
        return False
    return (
        settings.host == SANDBOX_HOST
        and settings.port == server.port
        and settings.security is not Security.NONE
        and settings.username == SANDBOX_USERNAME
        and settings.normalized_fingerprint == server.fingerprint.lower()
    )


def sandbox_credentials(
    running: Callable[[], RunningSandbox | None], fallback: CredentialsLookup
) -> CredentialsLookup:
    """An outbox credentials lookup that knows the running sandbox's password.

    `running()` gives the server this process runs (None while it is
    stopped). An account that sends to it logs in with the password the
    server holds in memory, so a send works without a keyring (the account's
    secret source is "none" then) and never reads a stale keyring entry.
    Every other account, and the sandbox account while the server is
    stopped, gets `fallback(account)`. Called on the runner's threads.
    """

    def lookup(account: SendingAccount) -> Callable[[], Credentials] | None:
        server = running()
        if server is None or not sends_to(account, server):
            return fallback(account)
        password = server.password

        def provide() -> Credentials:
            return Credentials(SANDBOX_USERNAME, password)

        return provide

    return lookup


def stored_password(
    paths: AppPaths, *, backend: keyring.backend.KeyringBackend | None = None
) -> str | None:
    """The sandbox password this profile keeps in the keyring, or None (none
    kept, or no usable keyring)."""
    # The keyring loads when it is used (on a worker thread in the app), not on import.
    from mailer_gui.accounts import secrets

    lookup = Account(name=SANDBOX_ACCOUNT, email=SANDBOX_EMAIL, host=SANDBOX_HOST)
    try:
        return secrets.get_password(lookup, service=paths.keyring_service, backend=backend)
    except secrets.SecretError:
        return None


def ensure_sandbox_account(
    paths: AppPaths,
    server: RunningSandbox,
    *,
    backend: keyring.backend.KeyringBackend | None = None,
) -> Account:
    """Create or update the "sandbox" account for `server`, which must be started (its port).

    The password goes to the keyring when one is usable. The person's changes
    to the sender (address, name, signature, identities) are kept; the
    connection settings are the server's. An account named "sandbox" that
    sends elsewhere is the person's own: SandboxError, and it is left alone.
    AccountStoreError when the accounts file cannot be read or written.
    """
    if server.port == 0:
        raise SandboxError("Start the sandbox before setting up its account (no port yet).")
    kept = _keep_password(paths, server.password, backend)
    source: SecretSource = "keyring" if kept else "none"
    wanted = sandbox_account(server, secret_source=source)
    store = AccountStore(paths.accounts_file)
    try:
        existing = store.get(SANDBOX_ACCOUNT)
    except UnknownAccount:
        store.add(wanted)
        return wanted
    if not is_sandbox_account(existing):
        raise SandboxError(
            f"There is already an account named {existing.name!r} that sends through "
            f"{existing.host or 'direct delivery'}, so the sandbox leaves it alone. Rename or "
            "remove that account to let the sandbox set up its own."
        )
    account = dataclasses.replace(
        existing,
        port=wanted.port,
        security=wanted.security,
        auth=wanted.auth,
        allow_insecure_auth=False,
        tls_fingerprint=wanted.tls_fingerprint,
        secret_source=wanted.secret_source,
        password_command=None,
    )
    if account == existing:
        return existing
    default = store.default()
    was_default = default is not None and default.name.casefold() == existing.name.casefold()
    # The store has no update: remove and add again, under its lock each.
    store.remove(existing.name)
    store.add(account, make_default=was_default)
    return account


def _keep_password(
    paths: AppPaths, password: str, backend: keyring.backend.KeyringBackend | None
) -> bool:
    from mailer_gui.accounts import secrets

    usable, _ = secrets.keyring_usable(backend)
    if not usable:
        return False
    service = paths.keyring_service
    try:
        secrets.store_password(SANDBOX_ACCOUNT, password, service=service, backend=backend)
    except secrets.SecretError:
        return False
    return True
