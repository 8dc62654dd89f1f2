"""Account passwords: in the OS keyring, or printed by the person's own command.

Keyring entries use the account name as the user name, under a service name
of the profile's own (`AppPaths.keyring_service`): "mailer-gui" for the per-user
folders, so `keyring get mailer-gui work` shows the password of the account
"work"; "mailer-gui:DIR" for a profile kept in DIR with --home or
MAILER_GUI_HOME. Two profiles may each have an account called "work": each
keeps its own password, and removing one leaves the other's.

Nothing here ever writes a password to a file, falls back to a plaintext
store, caches a password, or puts one in an error message. The keyring may be
slow or prompt: call these off the GUI thread.

The keyring package is imported when a password is first stored or read (it
takes about 0.1 s), not with this module: the main window loads this module
for the passwords typed into its prompt, right after its first paint.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Final

from mailer_gui.accounts.model import Account
from mailer_gui.paths import APP_NAME
from mailer_gui.smtp.settings import AuthMethod

if TYPE_CHECKING:
    import keyring.backend

SERVICE: Final = APP_NAME  # the per-user profile's (AppPaths.keyring_service)
PASSWORD_COMMAND_TIMEOUT: Final = 30.0

_ALTERNATIVES = (
    "Mailer never saves passwords in a file. Instead you can give a command that "
    "prints the password (--password-command, for example 'pass show mail/work'), "
    "or store no password and type it each time you send."
)


class SecretError(Exception):
    """A password could not be stored or found; the message is meant for a person.

    It never contains the password, nor the output of a password command.
    """

    def __init__(self, message: str, *, account_name: str | None = None) -> None:
        super().__init__(message)
        self.account_name = account_name


class PasswordMissing(SecretError):
    """Nothing is stored for the account: ask the person for the password."""


def keyring_usable(backend: keyring.backend.KeyringBackend | None = None) -> tuple[bool, str]:
    """Whether passwords can be kept safely, and a sentence saying which keyring or why not.

    Refused: no backend at all (keyring's fail or empty chainer backend), a
    disabled one (null), and any backend that keyring itself does not
    recommend (priority below 1), which includes keyrings.alt's plaintext file.
    """
    import keyring
    from keyring.backends import chainer, fail

    backend = keyring.get_keyring() if backend is None else backend
    if isinstance(backend, fail.Keyring) or (
        isinstance(backend, chainer.ChainerBackend) and not backend.backends
    ):
        return False, (
            "No usable system keyring was found, so the password cannot be stored safely. "
            "On Linux this means no Secret Service (GNOME Keyring, KWallet) is running in "
            "this session, as on a server or a headless machine. " + _ALTERNATIVES
        )
    target = backend.backends[0] if isinstance(backend, chainer.ChainerBackend) else backend
    name = str(target.name)
    try:
        priority = float(type(target).priority)
    except Exception as error:  # a backend reports "not here" by raising from priority
        return False, f"The keyring ({name}) is not usable: {error}. " + _ALTERNATIVES
    if priority < 1:
        return False, (
            f"The configured keyring ({name}) does not keep passwords safely or is "
            "disabled, so Mailer does not use it. " + _ALTERNATIVES
        )
    return True, f"Passwords are kept in the system keyring ({name})."


def store_password(
    account_name: str,
    password: str,
    *,
    service: str,
    backend: keyring.backend.KeyringBackend | None = None,
) -> None:
    """Keep `password` in the keyring for the account; SecretError if there is no keyring."""
    if not account_name:
        raise ValueError("account_name must not be empty")
    if not password:
        raise ValueError("refusing to store an empty password")
    backend = _usable_backend(backend, account_name)
    try:
        backend.set_password(service, account_name, password)
    except Exception as error:
        failure = _describe(error, password)
    else:
        return
    # Raised outside the except block: the backend's error may quote the password,
    # and it must not ride along as __context__ into a traceback or a log.
    raise SecretError(
        f"The password for {account_name!r} could not be saved in the keyring: {failure}.",
        account_name=account_name,
    )


def get_password(
    account: Account,
    *,
    service: str,
    backend: keyring.backend.KeyringBackend | None = None,
    timeout: float = PASSWORD_COMMAND_TIMEOUT,
) -> str:
    """The account's password, from its secret source.

    PasswordMissing when nothing is stored (the keyring has no entry, or the
    source is "none"): the caller asks the person. SecretError for anything else.
    """
    if account.secret_source == "command":
        assert account.password_command is not None  # Account validation guarantees it
        return run_password_command(
            account.password_command, account_name=account.name, timeout=timeout
        )
    if account.secret_source == "none":
        raise PasswordMissing(
            f"The account {account.name!r} keeps no password; it is asked for when sending.",
            account_name=account.name,
        )
    import keyring.errors

    backend = _usable_backend(backend, account.name)
    try:
        password = backend.get_password(service, account.name)
    except keyring.errors.KeyringLocked:
        raise SecretError(
            f"The keyring is locked, so the password for {account.name!r} cannot be read. "
            "Unlock it (log in to the desktop, or open the keyring) and try again.",
            account_name=account.name,
        ) from None
    except Exception as error:
        raise SecretError(
            f"The password for {account.name!r} could not be read from the keyring: "
            f"{_describe(error)}.",
            account_name=account.name,
        ) from None
    if password is None:
        raise PasswordMissing(
            f"No password is stored in the keyring for the account {account.name!r}. "
            "Enter it in the account settings, or when asked while sending.",
            account_name=account.name,
        )
    return password


def delete_password(
    account_name: str,
    *,
    service: str,
    backend: keyring.backend.KeyringBackend | None = None,
) -> None:
    """Forget the account's password; nothing happens when none is stored."""
    import keyring.errors

    backend = _usable_backend(backend, account_name)
    try:
        backend.delete_password(service, account_name)
    except keyring.errors.PasswordDeleteError:
        return  # keyring's way of saying there was nothing to delete
    except Exception as error:
        raise SecretError(
            f"The password for {account_name!r} could not be removed from the keyring: "
            f"{_describe(error)}.",
            account_name=account_name,
        ) from None


def run_password_command(
    command: str,
    *,
    account_name: str | None = None,
    timeout: float = PASSWORD_COMMAND_TIMEOUT,
) -> str:
    """Run the person's shell command and return what it printed, less one final newline.

    Like msmtp's passwordeval. A failure reports the exit status and the first
    line of stderr, never stdout (that would be the password).
    """
    who = f" for {account_name!r}" if account_name else ""
    # /bin/sh -c: the person writes a shell command line (pipes, ~, quotes).
    argv: str | list[str] = command if os.name == "nt" else ["/bin/sh", "-c", command]
    try:
        process = subprocess.Popen(
            argv,
            shell=os.name == "nt",
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
    except OSError as error:
        failure = f"The password command{who} could not be started: {error.strerror}."
    else:
        with process:
            try:
                stdout, stderr = process.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                # What the shell started too (`sleep`, a pipeline), not the shell alone.
                _kill_tree(process.pid)
                process.kill()
                process.wait()  # not its output: a descendant left may hold the pipes
                failure = f"The password command{who} did not finish within {timeout:g} seconds."
            else:
                completed = subprocess.CompletedProcess(argv, process.returncode, stdout, stderr)
                if completed.returncode == 0:
                    return _command_output(completed.stdout, who, account_name)
                failure = _command_failure(completed, who)
    # Raised outside the except blocks, so no traceback carries the captured output.
    raise SecretError(failure, account_name=account_name)


def _kill_tree(pid: int) -> None:
    """SIGKILL every process descended from ``pid`` (Linux: read from /proc).

    Not a process group of its own for the command: that would take the
    terminal away from one that asks for a passphrase (gpg's pinentry).
    """
    import signal

    parents: dict[int, list[int]] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return  # no /proc: the shell alone is ended
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_bytes()
        except OSError:
            continue  # ended meanwhile
        # "pid (name) state ppid ...": the name may hold spaces and ")".
        fields = stat[stat.rfind(b")") + 2 :].split()
        if len(fields) > 1 and fields[1].isdigit():
            parents.setdefault(int(fields[1]), []).append(int(entry))
    found, queue = [], list(parents.get(pid, []))
    while queue:
        child = queue.pop()
        found.append(child)
        queue.extend(parents.get(child, []))
    for child in found:
        try:
            os.kill(child, signal.SIGKILL)
        except OSError:
            continue  # ended meanwhile


def _command_failure(completed: subprocess.CompletedProcess[bytes], who: str) -> str:
    lines = completed.stderr.decode("utf-8", "replace").strip().splitlines()
    said = f": {lines[0].strip()[:200]}" if lines else " (it printed no error message)"
    return f"The password command{who} failed with exit status {completed.returncode}{said}"


def _command_output(output: bytes, who: str, account_name: str | None) -> str:
    try:
        text = output.decode("utf-8")
    except UnicodeDecodeError:
        raise SecretError(
            f"The password command{who} printed something that is not UTF-8 text.",
            account_name=account_name,
        ) from None
    if text.endswith("\r\n"):
        text = text[:-2]
    elif text.endswith("\n"):
        text = text[:-1]
    if not text:
        raise SecretError(
            f"The password command{who} printed nothing; it should print the password.",
            account_name=account_name,
        )
    return text


def _usable_backend(
    backend: keyring.backend.KeyringBackend | None, account_name: str
) -> keyring.backend.KeyringBackend:
    import keyring

    backend = keyring.get_keyring() if backend is None else backend
    usable, explanation = keyring_usable(backend)
    if not usable:
        raise SecretError(explanation, account_name=account_name)
    return backend


def _describe(error: BaseException, password: str | None = None) -> str:
    """The error's class and message, with the password blotted out should a backend echo it."""
    text = str(error).strip() or "no details"
    if password:
        text = text.replace(password, "***")
    return f"{text} ({type(error).__name__})"


# OAuth2 access tokens printed by a token command live about an hour; keep
# them in memory (never on disk) for a few minutes so a burst of messages
# does not run the command for each one.
TOKEN_CACHE_SECONDS: Final = 300.0
_tokens: dict[tuple[str, str], tuple[float, str]] = {}  # by (service, account name)
_tokens_lock = threading.Lock()


def get_secret(account: Account, *, service: str, now: float | None = None) -> str:
    """The password, or for XOAUTH2 with a token command the (cached) access token."""
    if account.auth is not AuthMethod.XOAUTH2 or account.secret_source != "command":
        return get_password(account, service=service)
    moment = time.monotonic() if now is None else now
    key = (service, account.name)
    with _tokens_lock:
        cached = _tokens.get(key)
        if cached is not None and moment - cached[0] < TOKEN_CACHE_SECONDS:
            return cached[1]
    token = get_password(account, service=service)
    with _tokens_lock:
        _tokens[key] = (moment, token)
    return token


def forget_token(account_name: str, *, service: str) -> None:
    """Drop a cached token (it was refused, or the account changed)."""
    with _tokens_lock:
        _tokens.pop((service, account_name), None)


# Passwords the person typed in this session (the window's password prompt),
# by account name: in this process's memory only, never written anywhere.
_session_passwords: dict[str, str] = {}
_session_lock = threading.Lock()


def remember_password(account_name: str, password: str) -> None:
    """Use ``password`` for the account until Mailer quits (or `forget_password`)."""
    with _session_lock:
        _session_passwords[account_name.casefold()] = password


def forget_password(account_name: str) -> None:
    """Drop the typed password (a new one was saved, or the account was removed)."""
    with _session_lock:
        _session_passwords.pop(account_name.casefold(), None)


def session_password(account_name: str) -> str | None:
    with _session_lock:
        return _session_passwords.get(account_name.casefold())
