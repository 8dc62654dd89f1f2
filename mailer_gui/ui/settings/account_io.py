"""What the Accounts page does with files, the keyring and servers (no Qt here).

Each function blocks (file locks and fsync, the keyring, the network), so the
page runs them on its worker threads; they return a sentence for the person
or raise an error whose message is one.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

from mailer_gui.accounts import secrets
from mailer_gui.accounts.model import Account, AccountError
from mailer_gui.accounts.store import AccountStore, AccountStoreError
from mailer_gui.outbox.store import OutboxError, existing_outbox
from mailer_gui.paths import AppPaths
from mailer_gui.smtp.errors import SmtpError
from mailer_gui.smtp.replies import without_retry_note
from mailer_gui.smtp.session import Session
from mailer_gui.smtp.transcript import Transcript
from mailer_gui.ui.bridge import stored_credentials


def load_accounts(paths: AppPaths) -> tuple[list[Account], str | None]:
    """The accounts in the file, and the name of the default one (None if none)."""
    store = AccountStore(paths.accounts_file)
    accounts = store.load()
    default = store.default()
    return accounts, default.name if default is not None else None


def replace_account(paths: AppPaths, name: str, account: Account) -> None:
    """Put `account` in place of the account called `name`, in one atomic write.

    The account keeps its place in the file, its default mark, and any keys
    this version of Mailer does not know.
    """
    AccountStore(paths.accounts_file).replace(name, account)
    resume_outbox(paths, account.name)


def remove_account(paths: AppPaths, name: str) -> str:
    """Remove the account and its keyring entry; the sentence says what was done."""
    removed = AccountStore(paths.accounts_file).remove(name)
    secrets.forget_password(removed.name)
    if removed.secret_source != "keyring":
        return f"The account {removed.name!r} was removed."
    try:
        secrets.delete_password(removed.name, service=paths.keyring_service)
    except secrets.SecretError as error:
        return f"The account {removed.name!r} was removed, but its password was not: {error}"
    return f"The account {removed.name!r} and its saved password were removed."


def change_password(paths: AppPaths, name: str, password: str) -> str:
    """Keep `password` in the keyring for the account `name` (never in a file)."""
    service = paths.keyring_service
    secrets.store_password(name, password, service=service)
    secrets.forget_token(name, service=service)
    secrets.forget_password(name)  # a password typed into the prompt no longer wins
    _usable, where = secrets.keyring_usable()
    resume_outbox(paths, name)
    return f"The new password for {name!r} is saved. {where}"


def paused_accounts(paths: AppPaths) -> dict[str, tuple[str, str]]:
    """Accounts the outbox does not try until they are fixed: name -> (state, reason)."""
    with (
        existing_outbox(paths.database, paths.spool_dir) as store,
        contextlib.suppress(OutboxError),
    ):
        if store is not None:
            return store.paused_accounts()
    return {}


def resume_outbox(paths: AppPaths, name: str) -> None:
    """The person fixed the account: messages held for it may be tried again."""
    with (
        existing_outbox(paths.database, paths.spool_dir) as store,
        contextlib.suppress(OutboxError),
    ):
        if store is not None:
            store.resume_account(name)


def probe_account(
    paths: AppPaths,
    account: Account,
    transcript: Transcript,
    started: Callable[[Session], None] | None = None,
) -> str:
    """Connect, secure and log in as the account would to send, then say how it went.

    Nothing is sent. `started` receives the session before it connects, so
    that the caller can abort it from another thread.
    """
    if account.kind == "direct":
        return (
            f"{account.name} delivers directly to each recipient's mail servers (port "
            f"{account.effective_port}); there is no single server to test. Send a "
            "message and watch the session log to see each connection."
        )
    credentials = stored_credentials(account, service=paths.keyring_service)
    session = Session(account.server_settings(), transcript=transcript, credentials=credentials)
    if started is not None:
        started(session)
    session.open()
    try:
        tls = "TLS" if session.tls_active else "no encryption"
        login = "logged in" if session.authenticated else "no login"
        limit = session.size_limit
        size = f", messages up to {limit / 1e6:.1f} MB" if limit else ""
    finally:
        session.close()
    return (
        f"OK: {account.name} reached {account.host} port {account.effective_port} "
        f"({tls}, {login}{size})."
    )


def explain_failure(error: BaseException) -> str:
    """The sentence to show for an error raised by the functions above."""
    if isinstance(error, SmtpError):
        return without_retry_note(error.message)  # a test: nothing is retried
    if isinstance(error, secrets.SecretError | AccountError | AccountStoreError):
        return str(error)
    if isinstance(error, OSError):
        return f"The file could not be written: {error.strerror or error}."
    return f"That did not work: {error} ({type(error).__name__})."
