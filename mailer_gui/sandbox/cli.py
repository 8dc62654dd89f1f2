"""`mailer-gui sandbox`: the sandbox SMTP server, headless, in the foreground.

Prints where to connect and how to log in (one "name: value" per line, for
people and for programs), then one "captured ..." line per message, until
Ctrl+C or SIGTERM stop it cleanly (exit 0). mailer_gui/cli.py wires
`add_parser` and `run` in; the server itself is imported only when the
command runs, so other commands do not pay for aiosmtpd and cryptography.
"""

from __future__ import annotations

import argparse
import contextlib
import queue
import signal
import sys
import threading
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Final, TypeVar

from mailer_gui.paths import AppPaths, ensure_private_dir
from mailer_gui.sandbox.errors import SandboxError
from mailer_gui.sandbox.faults import DEFAULT_SIZE_LIMIT

if TYPE_CHECKING:
    from mailer_gui.sandbox.maildir import CapturedMessage
    from mailer_gui.sandbox.server import SandboxServer

# sysexits.h, as mailer_gui/cli.py uses them
EX_OK: Final = 0
EX_UNAVAILABLE: Final = 69
EX_CANTCREAT: Final = 73

POLL_SECONDS: Final = 0.2  # how often the foreground loop looks for a stop request

_ParserT = TypeVar("_ParserT", bound=argparse.ArgumentParser)


def add_parser(commands: argparse._SubParsersAction[_ParserT]) -> _ParserT:
    """Add `sandbox` to the CLI's subcommands; returns its parser."""
    parser = commands.add_parser(
        "sandbox",
        help="run the built-in test SMTP server that keeps what it is sent",
        description=(
            "Run Mailer's sandbox: an SMTP server on 127.0.0.1 that accepts mail after "
            "STARTTLS and login, keeps every message in a Maildir, and delivers nothing. "
            "It prints where to connect and the login, then a line per captured message. "
            "Stop it with Ctrl+C."
        ),
    )
    parser.add_argument(
        "--port",
        type=_port,
        default=0,
        metavar="N",
        help="listen on this port of 127.0.0.1 (default: any free port, printed at start)",
    )
    parser.add_argument(
        "--maildir",
        metavar="DIR",
        help="keep captured mail in this Maildir (default: the data folder's sandbox/Maildir)",
    )
    parser.add_argument(
        "--size-limit",
        type=_size,
        default=DEFAULT_SIZE_LIMIT,
        metavar="BYTES",
        help=f"refuse bigger messages with 552 (default: {DEFAULT_SIZE_LIMIT}; 0: no limit)",
    )
    parser.add_argument(
        "--no-account",
        action="store_true",
        help="do not create or update the 'sandbox' account that sends to this server",
    )
    return parser


def run(args: argparse.Namespace, paths: AppPaths) -> int:
    """Serve until Ctrl+C or SIGTERM; 0 after a clean stop, a sysexits code if it cannot start."""
    from mailer_gui.sandbox.account import stored_password
    from mailer_gui.sandbox.server import SandboxServer

    state_dir = paths.sandbox_dir
    maildir = Path(args.maildir).expanduser().absolute() if args.maildir else state_dir / "Maildir"
    captured: queue.Queue[CapturedMessage] = queue.Queue()
    try:
        ensure_private_dir(paths.data_dir)
        server = SandboxServer(
            maildir,
            state_dir,
            port=args.port,
            size_limit=args.size_limit or None,
            password=stored_password(paths),
            on_message=captured.put,
        )
    except (SandboxError, OSError) as error:
        _error(error.message if isinstance(error, SandboxError) else str(error))
        return EX_CANTCREAT
    try:
        server.start()
    except SandboxError as error:
        _error(error.message)
        return EX_UNAVAILABLE

    stop = threading.Event()
    try:
        with _stop_on_signals(stop):
            account_note = ""
            if not args.no_account:
                account_note = _set_up_account(paths, server)
            _print_banner(server, account_note)
            while not stop.is_set():
                with contextlib.suppress(queue.Empty):
                    _print(_captured_line(captured.get(timeout=POLL_SECONDS)))
    except KeyboardInterrupt:
        pass  # not the main thread, so no handler of ours: Ctrl+C still stops cleanly
    except BrokenPipeError:
        pass  # whoever read our output has gone: nobody to serve
    finally:
        server.stop()
    with contextlib.suppress(BrokenPipeError):
        while not captured.empty():
            _print(_captured_line(captured.get_nowait()))
        _print("stopped")
    return EX_OK


# --------------------------------------------------------------- helpers


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(
            f"the port must be 0 (any free port) to 65535, not {value}"
        )
    return value


def _size(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of bytes") from None
    if value < 0:
        raise argparse.ArgumentTypeError("the size limit must be 0 (no limit) or more bytes")
    return value


def _set_up_account(paths: AppPaths, server: SandboxServer) -> str:
    """Create or update the account; a failure is a note, the server is useful anyway."""
    from mailer_gui.accounts.store import AccountStoreError
    from mailer_gui.sandbox.account import ensure_sandbox_account

    try:
        account = ensure_sandbox_account(paths, server)
    except (SandboxError, AccountStoreError) as error:
        _error(f"note: the 'sandbox' account was not set up: {error}")
        return ""
    if account.secret_source == "keyring":
        kept = "password kept in the keyring: the same login next time"
    else:
        kept = (
            "no usable keyring: the password lives in memory and changes at each start; "
            "type the one above when mailer-gui asks for it"
        )
    return f"sandbox (mailer-gui send --account sandbox ...); {kept}"


def _print_banner(server: SandboxServer, account_note: str) -> None:
    limit = server.faults.size_limit
    lines = [
        "Mailer sandbox: an SMTP server on this computer that keeps mail and delivers nothing.",
        f"host: {server.host}",
        f"port: {server.port}",
        "security: STARTTLS (login only after STARTTLS; self-signed certificate, pin it)",
        f"user: {server.username}",
        f"password: {server.password}",
        f"fingerprint: {server.fingerprint}",
        f"maildir: {server.maildir}",
        f"size limit: {f'{limit} bytes' if limit else 'none'}",
    ]
    if account_note:
        lines.append(f"account: {account_note}")
    lines.append("Waiting for mail; stop with Ctrl+C.")
    for line in lines:
        _print(line)


def _printable(text: str) -> str:
    # A subject is the sender's text: no escape sequence of theirs reaches the terminal.
    return "".join("?" if unicodedata.category(char) in ("Cc", "Cf") else char for char in text)


def _captured_line(message: CapturedMessage) -> str:
    subject = _printable(message.subject) or "(no subject)"
    sender = _printable(message.envelope_from) or "<>"
    rcpts = ", ".join(_printable(rcpt) for rcpt in message.envelope_to)
    return f"captured {subject} from {sender} to {rcpts}"


def _print(line: str) -> None:
    print(line, flush=True)


def _error(message: str) -> None:
    print(f"mailer-gui: {message}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """SIGINT and SIGTERM set `stop` (only the main thread may set handlers)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    wanted = [signal.SIGINT, signal.SIGTERM]
    previous = {number: signal.signal(number, handler) for number in wanted}
    try:
        yield
    finally:
        for number, old in previous.items():
            signal.signal(number, old)
