"""The sandbox SMTP server: aiosmtpd on 127.0.0.1, on an asyncio loop in its own thread.

It behaves like a submission server (STARTTLS with a self-signed certificate
the sandbox account pins, AUTH PLAIN/LOGIN only after STARTTLS, SIZE,
SMTPUTF8), keeps every message it accepts in a Maildir (sandbox.maildir)
instead of delivering it, and misbehaves on request (sandbox.faults). Its
neighbours: sandbox.account turns a running server into an account, and
sandbox.cli runs it headless.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import secrets
import ssl
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from mailer_gui.sandbox.certificate import load_or_create_certificate
from mailer_gui.sandbox.errors import SandboxError
from mailer_gui.sandbox.faults import DEFAULT_SIZE_LIMIT, Faults
from mailer_gui.sandbox.maildir import CapturedMessage, Inbox

HOST: Final = "127.0.0.1"  # loopback only: the sandbox is never reachable from outside
SERVER_NAME: Final = "localhost"
USERNAME: Final = "sandbox"
START_TIMEOUT: Final = 10.0
STOP_TIMEOUT: Final = 10.0
IDLE_TIMEOUT: Final = 300.0  # a client silent this long is disconnected (RFC 5321: 5 min)

REPLY_RCPT_BUSY: Final = "450 4.2.0 Sandbox: mailbox busy (fault switch)"
REPLY_RCPT_UNKNOWN: Final = "550 5.1.1 Sandbox: no such user (fault switch)"
REPLY_GREYLISTED: Final = "451 4.7.1 Sandbox: greylisted, try again later (fault switch)"

MessageCallback = Callable[[CapturedMessage], None]

_log = logging.getLogger(__name__)


def _not_login_data_deprecation(record: logging.LogRecord) -> bool:
    # aiosmtpd's own smtp_AUTH sets Session.login_data, and warns about doing so.
    return "login_data is deprecated" not in record.getMessage()


logging.getLogger("mail.log").addFilter(_not_login_data_deprecation)


def new_password() -> str:
    """A random password for the sandbox login (about 140 bits, URL-safe characters)."""
    return secrets.token_urlsafe(18)


def _checked_password(password: str) -> str:
    if not password or any(char in password for char in "\r\n\0"):
        raise ValueError("the sandbox password must be non-empty, without NUL, CR or LF")
    return password


class _Handler:
    """aiosmtpd handler: the login check, the fault switches, and capture to the Maildir."""

    def __init__(self, server: SandboxServer) -> None:
        self._server = server
        self._password = server.password.encode("utf-8")

    def authenticate(
        self, smtp: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        if isinstance(data, LoginPassword):
            # Both compared, always: the time taken tells nothing about which was wrong.
            user_ok = hmac.compare_digest(data.login, USERNAME.encode())
            password_ok = hmac.compare_digest(data.password, self._password)
            if user_ok and password_ok:
                return AuthResult(success=True, auth_data=LoginPassword(data.login, b""))
        return AuthResult(success=False, handled=False)  # aiosmtpd answers 535 5.7.8

    async def handle_EHLO(
        self,
        smtp: SMTP,
        session: Session,
        envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        # aiosmtpd reads pipelined commands correctly but does not say so.
        # Real servers do, and clients (Mailer among them) then send MAIL, RCPT
        # and DATA in one go: the sandbox shows the same conversation.
        session.host_name = hostname  # this form of the hook must set it itself
        return [*responses[:-1], "250-PIPELINING", responses[-1]]

    async def handle_MAIL(
        self,
        smtp: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        mail_options: list[str],
    ) -> str:
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 OK"

    async def handle_RCPT(
        self,
        smtp: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        faults = self._server.faults
        rejection = faults.take_rcpt_rejection()
        if rejection == "4xx":
            return REPLY_RCPT_BUSY
        if rejection == "5xx":
            return REPLY_RCPT_UNKNOWN
        if faults.greylisted(envelope.mail_from or "", address):
            return REPLY_GREYLISTED
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 OK"

    async def handle_DATA(self, smtp: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        try:
            # Off the loop: a 25 MB fsync must not stall the other connections.
            captured = await asyncio.to_thread(
                self._server.inbox.deliver,
                envelope.mail_from or "",
                list(envelope.rcpt_tos),
                bytes(content),
            )
        except OSError as error:
            _log.warning("sandbox: a message could not be stored: %s", error)
            return (
                f"451 4.3.0 Sandbox: the message could not be stored "
                f"({error.strerror or error}); try again later"
            )
        callback = self._server.on_message
        if callback is not None:
            try:
                callback(captured)
            except Exception:
                _log.exception("sandbox: the on_message callback failed")
        return f"250 2.0.0 OK: captured as {captured.id}"

    async def handle_exception(self, error: Exception) -> str:
        # Reported briefly: aiosmtpd's default would log a traceback for a client
        # that simply gave up on the TLS handshake.
        _log.info("sandbox: session error: %s: %s", type(error).__name__, error)
        return f"451 4.3.0 Sandbox: internal error ({type(error).__name__})"


class _SandboxSMTP(SMTP):
    """One connection: aiosmtpd's SMTP reading SIZE and reply delays from the faults."""

    AuthLoginUsernameChallenge = "Username:"
    AuthLoginPasswordChallenge = "Password:"

    def __init__(
        self,
        handler: _Handler,
        *,
        faults: Faults,
        connections: set[_SandboxSMTP],
        **kwargs: Any,
    ) -> None:
        self._faults = faults
        self._connections = connections
        self._raw_transport: asyncio.BaseTransport | None = None
        super().__init__(handler, **kwargs)

    @property
    def data_size_limit(self) -> int | None:
        return self._faults.size_limit

    @data_size_limit.setter
    def data_size_limit(self, value: int | None) -> None:
        pass  # aiosmtpd's __init__ sets it; the fault switch is what counts

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self._raw_transport is None:  # later calls bring the TLS layer, not the socket
            self._raw_transport = transport
            self._connections.add(self)
        super().connection_made(transport)

    def connection_lost(self, error: Exception | None) -> None:
        self._connections.discard(self)
        super().connection_lost(error)

    def abort(self) -> None:
        """Drop the connection now (the server is stopping)."""
        if isinstance(self._raw_transport, asyncio.WriteTransport):
            self._raw_transport.abort()

    async def push(self, status: str | bytes) -> None:
        final = status[3:4] not in ("-", b"-")  # one delay per reply, not per line
        if final:
            delay = self._faults.slow_replies
            if delay > 0:
                await asyncio.sleep(delay)
        if isinstance(status, str) and status.startswith("552 Error"):
            # aiosmtpd's two size refusals, given the enhanced code RFC 3463 has for them.
            limit = self._faults.size_limit
            status = (
                f"552 5.3.4 Sandbox: message too big; the limit is {limit} bytes"
                if limit
                else "552 5.3.4 Sandbox: message too big"
            )
        if isinstance(status, str):  # two calls: aiosmtpd types it with AnyStr
            await super().push(status)
        else:
            await super().push(status)

    async def smtp_DATA(self, arg: str) -> None:
        if self._faults.drop_during_data and self._would_accept_data(arg):
            # Closed before 354: the client knows nothing of its message was taken.
            _log.info("sandbox: dropping the connection at DATA (fault switch)")
            if self._handler_coroutine is not None:
                self._handler_coroutine.cancel()
            if self.transport is not None:
                self.transport.close()
            return
        await super().smtp_DATA(arg)

    def _would_accept_data(self, arg: str | None) -> bool:
        session, envelope = self.session, self.envelope
        return (
            session is not None
            and envelope is not None
            and bool(session.host_name)
            and (session.authenticated or not self._auth_required)
            and bool(envelope.rcpt_tos)
            and not arg
        )


class SandboxServer:
    """The sandbox: an SMTP server on 127.0.0.1 that captures what it is sent.

    `maildir` holds the captured messages, `state_dir` the certificate (made
    there at first use). `port` 0 takes any free port; `.port` tells which
    once started. Without `password` a random one is made; keep it (the
    keyring, via sandbox.account) to have the same login next time.
    `on_message` is called on the server's thread for each captured message:
    keep it short (put the message on a queue, emit a signal).
    """

    def __init__(
        self,
        maildir: Path,
        state_dir: Path,
        *,
        port: int = 0,
        size_limit: int | None = DEFAULT_SIZE_LIMIT,
        password: str | None = None,
        on_message: MessageCallback | None = None,
    ) -> None:
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise ValueError(f"port must be 0 (any free port) to 65535, not {port!r}")
        self.host: Final = HOST
        self.username: Final = USERNAME
        self.password: Final = new_password() if password is None else _checked_password(password)
        self.faults = Faults(size_limit=size_limit)
        self.on_message = on_message
        self._certificate = load_or_create_certificate(Path(state_dir))
        self.inbox = Inbox(Path(maildir))
        self._requested_port = port
        self._port = port
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_event: asyncio.Event | None = None
        self._connections: set[_SandboxSMTP] = set()

    # ------------------------------------------------------------- what it is

    @property
    def port(self) -> int:
        """The port listened on; before start, the one asked for (0: any)."""
        return self._port

    @property
    def fingerprint(self) -> str:
        """Lower-case hex SHA-256 of the certificate (DER): what the account pins."""
        return self._certificate.fingerprint

    @property
    def certificate_pem(self) -> str:
        """The certificate, for a client that would rather trust it than pin it."""
        return self._certificate.pem

    @property
    def certificate_created(self) -> bool:
        """The certificate was made by this server (first use, or the old one was unusable)."""
        return self._certificate.created

    @property
    def maildir(self) -> Path:
        return self.inbox.path

    @property
    def running(self) -> bool:
        return self._thread is not None

    # -------------------------------------------------------------- captured

    def messages(self) -> list[CapturedMessage]:
        """The captured messages, oldest first."""
        return self.inbox.messages()

    def delete(self, message_id: str) -> bool:
        """Remove one captured message; False if it is not there."""
        return self.inbox.delete(message_id)

    def clear(self) -> int:
        """Remove every captured message; how many went."""
        return self.inbox.clear()

    # ------------------------------------------------------------ start, stop

    def start(self) -> None:
        """Listen; SandboxError if the port is taken or the server does not come up in time."""
        with self._lock:
            if self._thread is not None:
                raise SandboxError("The sandbox is already running.")
            try:
                context = self._certificate.server_context()
            except (OSError, ssl.SSLError) as error:
                raise SandboxError(
                    f"The sandbox's certificate ({self._certificate.cert_path}) cannot be "
                    f"loaded: {error}. Create the server again to make a new one."
                ) from error
            ready = threading.Event()
            failure: list[BaseException] = []
            thread = threading.Thread(
                target=self._run, args=(context, ready, failure), name="sandbox-smtp", daemon=True
            )
            thread.start()
            started = ready.wait(START_TIMEOUT)
            if started and not failure:
                self._thread = thread
                return
            self._request_stop()
            thread.join(STOP_TIMEOUT)
        if not failure:
            raise SandboxError(f"The sandbox did not start within {START_TIMEOUT:g} seconds.")
        cause = failure[0]
        if isinstance(cause, OSError):
            raise SandboxError(
                f"The sandbox cannot listen on {HOST} port {self._requested_port}: "
                f"{cause.strerror or cause}. Choose another port, or 0 for any free port."
            ) from cause
        raise SandboxError(f"The sandbox could not start: {cause}") from cause

    def stop(self) -> None:
        """Close every connection and the listening socket; wait (bounded) for the thread."""
        with self._lock:
            thread, self._thread = self._thread, None
            if thread is None:
                return
            if thread is threading.current_thread():
                raise RuntimeError("stop() called from the sandbox's own thread")
            self._request_stop()
            thread.join(STOP_TIMEOUT)
            if thread.is_alive():
                raise SandboxError(f"The sandbox did not stop within {STOP_TIMEOUT:g} seconds.")

    def __enter__(self) -> SandboxServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # ---------------------------------------------------------- the thread

    def _request_stop(self) -> None:
        loop, event = self._loop, self._stop_event
        if loop is None or event is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop has already closed
            loop.call_soon_threadsafe(event.set)

    def _run(
        self, context: ssl.SSLContext, ready: threading.Event, failure: list[BaseException]
    ) -> None:
        try:
            asyncio.run(self._serve(context, ready, failure))
        except BaseException as error:
            if not ready.is_set():
                failure.append(error)
            else:
                _log.exception("sandbox: the server thread failed")
        finally:
            self._loop = None
            self._stop_event = None
            ready.set()

    async def _serve(
        self, context: ssl.SSLContext, ready: threading.Event, failure: list[BaseException]
    ) -> None:
        loop = asyncio.get_running_loop()
        handler = _Handler(self)

        def connection() -> _SandboxSMTP:
            return _SandboxSMTP(
                handler,
                faults=self.faults,
                connections=self._connections,
                loop=loop,
                hostname=SERVER_NAME,
                ident="ESMTP Mailer sandbox (keeps mail, delivers nothing)",
                tls_context=context,
                enable_SMTPUTF8=True,
                auth_required=True,
                auth_require_tls=True,
                authenticator=handler.authenticate,
                timeout=IDLE_TIMEOUT,
            )

        try:
            server = await loop.create_server(connection, host=HOST, port=self._requested_port)
        except OSError as error:
            failure.append(error)
            ready.set()
            return
        stop = asyncio.Event()
        self._loop, self._stop_event = loop, stop
        self._port = server.sockets[0].getsockname()[1]
        ready.set()
        try:
            await stop.wait()
        finally:
            server.close()
            for open_connection in list(self._connections):
                open_connection.abort()
            await server.wait_closed()
            # Whatever still runs (a reply delay, a handler) ends here.
            current = asyncio.current_task()
            pending = [task for task in asyncio.all_tasks() if task is not current]
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
