"""aiosmtpd in-process SMTP servers on 127.0.0.1, one free port each.

``aiosmtpd_factory(**options)`` starts a server and returns an :class:`AiosmtpdServer`
(``.host``, ``.port``, ``.messages``, ``.stop()``, ``.wait_for_messages()``); every
server still running is stopped at teardown. Options (all keyword):

- ``tls``: ``"none"`` (plain), ``"starttls"`` (STARTTLS offered) or ``"implicit"``
  (TLS from the first byte). The certificate is ``cert`` or, by default, ``server_cert``
  (from the test CA, for localhost/127.0.0.1/::1).
- ``require_starttls``: refuse everything but EHLO/NOOP/QUIT/STARTTLS before STARTTLS.
- ``auth_require_tls`` (default True): AUTH is offered only over TLS. Implicit TLS
  counts as TLS.
- ``users``: ``{username: password}``; AUTH is offered (PLAIN, LOGIN, CRAM-MD5) only
  when given. ``auth_mechanisms`` narrows the offer (e.g. ``["CRAM-MD5"]``).
  ``auth_required``: MAIL/RCPT/DATA need a successful AUTH first.
- ``enable_smtputf8`` (default True), ``data_size_limit`` (bytes, advertised as SIZE;
  ``None`` for no limit).
- Fault hooks: ``rcpt_replies`` maps a recipient address to the reply its RCPT gets
  (e.g. ``{"nobody@example.test": "550 5.1.1 No such user"}``); ``on_mail``,
  ``on_rcpt`` (``(address, options) -> reply | None``) and ``on_data``
  (``(ReceivedMessage) -> reply | None``) return a reply to send instead of the normal
  ``250``, or ``None`` to accept. A 2xx reply from a hook still accepts.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import logging
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session, auth_mechanism

from tests.servers.tls import ServerCert

__all__ = [
    "AiosmtpdFactory",
    "AiosmtpdServer",
    "ReceivedMessage",
    "aiosmtpd_factory",
]

TlsMode = Literal["none", "starttls", "implicit"]
ReplyHook = Callable[[str, list[str]], str | None]
DataHook = Callable[["ReceivedMessage"], str | None]

HOST = "127.0.0.1"
HOSTNAME = "localhost"


def _not_login_data_deprecation(record: logging.LogRecord) -> bool:
    # aiosmtpd's own smtp_AUTH sets Session.login_data, and logs a warning about it.
    return "login_data is deprecated" not in record.getMessage()


logging.getLogger("mail.log").addFilter(_not_login_data_deprecation)


@dataclass
class ReceivedMessage:
    """One accepted (or, with ``on_data``, at least fully received) mail transaction."""

    mail_from: str
    rcpt_tos: list[str]
    content: bytes
    mail_options: list[str]
    rcpt_options: list[list[str]]  # one list per accepted recipient, same order
    smtp_utf8: bool
    tls: bool  # the transaction ran over STARTTLS or implicit TLS
    auth_login: str | None  # the user that authenticated, if any
    peer: Any = None


class HeldReply:
    """An ``on_data`` hook that holds back the reply to the final "." until
    `release()` (for at most ``limit`` seconds): a send is in flight, all of it
    gone, no answer yet. ``first_only``: only the first message's reply.
    ``reached`` is set once a message is held."""

    def __init__(self, *, first_only: bool = False, limit: float = 20.0) -> None:
        self.reached = threading.Event()
        self._released = threading.Event()
        self._first_only = first_only
        self._limit = limit
        self.held: list[str] = []  # the first recipient of each message held

    def __call__(self, message: ReceivedMessage) -> str | None:
        if not (self._first_only and self.held):
            self.held.append(message.rcpt_tos[0])
            self.reached.set()
            self._released.wait(self._limit)
        return None

    def release(self) -> None:
        self._released.set()


def _per_rcpt_options(envelope: Envelope) -> list[list[str]]:
    # aiosmtpd flattens RCPT options into one list; keep them per recipient as well.
    options: list[list[str]] | None = getattr(envelope, "per_rcpt_options", None)
    if options is None:
        options = []
        envelope.per_rcpt_options = options  # type: ignore[attr-defined]
    return options


class _Handler:
    """aiosmtpd handler: records transactions and applies the fault hooks."""

    def __init__(
        self,
        *,
        offer_auth: bool,
        implicit_tls: bool,
        rcpt_replies: Mapping[str, str],
        on_mail: ReplyHook | None,
        on_rcpt: ReplyHook | None,
        on_data: DataHook | None,
    ) -> None:
        self.offer_auth = offer_auth
        self.implicit_tls = implicit_tls
        self.rcpt_replies = dict(rcpt_replies)
        self.on_mail = on_mail
        self.on_rcpt = on_rcpt
        self.on_data = on_data
        self.messages: list[ReceivedMessage] = []
        self.received = threading.Condition()

    async def handle_EHLO(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        session.host_name = hostname
        if not self.offer_auth:
            responses = [line for line in responses if not line[4:].startswith("AUTH")]
        return responses

    async def handle_MAIL(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        mail_options: list[str],
    ) -> str:
        reply = self.on_mail(address, mail_options) if self.on_mail else None
        if reply is None or reply.startswith("2"):
            envelope.mail_from = address
            envelope.mail_options.extend(mail_options)
        return reply or "250 2.1.0 OK"

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        reply = self.rcpt_replies.get(address)
        if reply is None and self.on_rcpt is not None:
            reply = self.on_rcpt(address, rcpt_options)
        if reply is None or reply.startswith("2"):
            envelope.rcpt_tos.append(address)
            envelope.rcpt_options.extend(rcpt_options)
            _per_rcpt_options(envelope).append(list(rcpt_options))
        return reply or "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        auth_data = session.auth_data
        login = auth_data.login if isinstance(auth_data, LoginPassword) else None
        message = ReceivedMessage(
            mail_from=envelope.mail_from or "",
            rcpt_tos=list(envelope.rcpt_tos),
            content=bytes(content),
            mail_options=list(envelope.mail_options),
            rcpt_options=list(_per_rcpt_options(envelope)),
            smtp_utf8=envelope.smtp_utf8,
            tls=self.implicit_tls or session.ssl is not None,
            auth_login=login.decode("utf-8", "replace") if login is not None else None,
            peer=session.peer,
        )
        reply = self.on_data(message) if self.on_data else None
        if reply is None or reply.startswith("2"):
            with self.received:
                self.messages.append(message)
                self.received.notify_all()
        return reply or "250 2.0.0 OK: queued"


class _SMTP(SMTP):
    """aiosmtpd's SMTP plus CRAM-MD5 (RFC 2195) against the stored plain passwords."""

    def __init__(
        self,
        handler: _Handler,
        *,
        users: Mapping[str, str] | None,
        implicit_tls: bool,
        **kwargs: Any,
    ) -> None:
        self._users = dict(users or {})
        super().__init__(handler, **kwargs)
        if implicit_tls:  # the whole connection is TLS; aiosmtpd only knows STARTTLS
            self._auth_require_tls = False

    async def smtp_AUTH(self, arg: str) -> None:
        if not self._users:
            await self.push("502 5.5.1 AUTH not supported")
            return
        await super().smtp_AUTH(arg)

    @auth_mechanism("CRAM-MD5")
    async def auth_CRAM_MD5(self, _: SMTP, args: list[str]) -> AuthResult:
        if len(args) != 1:
            await self.push("501 5.5.4 CRAM-MD5 takes no initial response")
            return AuthResult(success=False, handled=True)
        challenge = f"<{secrets.randbelow(10**12)}.{int(time.time())}@{HOSTNAME}>"
        response = await self.challenge_auth(challenge)
        if not isinstance(response, bytes):  # MISSING: aborted, reply already sent
            return AuthResult(success=False, handled=True)
        try:
            username, digest = response.decode("utf-8").rsplit(" ", 1)
        except ValueError:
            await self.push("501 5.5.2 Malformed CRAM-MD5 response")
            return AuthResult(success=False, handled=True)
        password = self._users.get(username)
        if password is not None:
            expected = hmac.new(password.encode(), challenge.encode(), "md5").hexdigest()
            if hmac.compare_digest(expected.encode(), digest.lower().encode()):
                return AuthResult(
                    success=True,
                    auth_data=LoginPassword(username.encode(), b""),
                )
        return AuthResult(success=False, handled=False)

    @auth_mechanism("XOAUTH2")
    async def auth_XOAUTH2(self, _: SMTP, args: list[str]) -> AuthResult:
        """Google's XOAUTH2: the "password" in the user table is the valid access token.

        A refused token gets what Gmail sends: a 334 with a base64 JSON status,
        then 535 after the client's empty line.
        """
        if len(args) != 2:
            await self.push("501 5.5.2 XOAUTH2 needs an initial response")
            return AuthResult(success=False, handled=True)
        try:
            fields = base64.b64decode(args[1], validate=True).decode("utf-8").split("\x01")
            user = fields[0].removeprefix("user=")
            token = fields[1].removeprefix("auth=Bearer ")
        except (ValueError, IndexError):
            await self.push("501 5.5.2 Malformed XOAUTH2 response")
            return AuthResult(success=False, handled=True)
        expected = self._users.get(user)
        if expected is not None and hmac.compare_digest(expected.encode(), token.encode()):
            return AuthResult(success=True, auth_data=LoginPassword(user.encode(), b""))
        status = base64.b64encode(b'{"status":"401","schemes":"bearer","scope":"mail"}')
        await self.challenge_auth(status.decode(), encode_to_b64=False)
        await self.push("535 5.7.8 Username and Password not accepted. gsmtp")
        return AuthResult(success=False, handled=True)


class _Controller(Controller):
    def __init__(self, handler: _Handler, *, smtp_kwargs: dict[str, Any], **kwargs: Any):
        self._smtp_kwargs = smtp_kwargs
        super().__init__(handler, hostname=HOST, port=0, server_hostname=HOSTNAME, **kwargs)

    def factory(self) -> SMTP:
        return _SMTP(self.handler, hostname=HOSTNAME, **self._smtp_kwargs)

    def _trigger_server(self) -> None:
        # Bound to port 0: learn the real port before aiosmtpd's readiness probe uses it.
        if self.port == 0 and isinstance(self.server, asyncio.Server):
            self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()  # type: ignore[no-untyped-call]


@dataclass
class AiosmtpdServer:
    host: str
    port: int
    tls: TlsMode
    users: dict[str, str]
    cert: ServerCert | None
    _controller: _Controller = field(repr=False)
    _handler: _Handler = field(repr=False)
    _stopped: bool = field(default=False, repr=False)

    @property
    def messages(self) -> list[ReceivedMessage]:
        """The transactions accepted so far (live list, in arrival order)."""
        return self._handler.messages

    def wait_for_messages(self, count: int, timeout: float = 10.0) -> list[ReceivedMessage]:
        """Block until ``count`` messages have been accepted; fail after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        with self._handler.received:
            while len(self._handler.messages) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(
                        f"aiosmtpd on port {self.port}: {len(self._handler.messages)} of "
                        f"{count} messages after {timeout} s"
                    )
                self._handler.received.wait(remaining)
            return list(self._handler.messages)

    def stop(self) -> None:
        if not self._stopped:
            self._stopped = True
            self._controller.stop()


class AiosmtpdFactory:
    def __init__(self, default_cert: ServerCert) -> None:
        self._default_cert = default_cert
        self.servers: list[AiosmtpdServer] = []

    def __call__(
        self,
        *,
        tls: TlsMode = "none",
        cert: ServerCert | None = None,
        require_starttls: bool = False,
        auth_require_tls: bool = True,
        users: Mapping[str, str] | None = None,
        auth_mechanisms: Iterable[str] | None = None,
        auth_required: bool = False,
        enable_smtputf8: bool = True,
        data_size_limit: int | None = 33_554_432,
        rcpt_replies: Mapping[str, str] | None = None,
        on_mail: ReplyHook | None = None,
        on_rcpt: ReplyHook | None = None,
        on_data: DataHook | None = None,
        timeout: float = 60.0,
    ) -> AiosmtpdServer:
        if tls not in ("none", "starttls", "implicit"):
            raise ValueError(f"tls must be 'none', 'starttls' or 'implicit', not {tls!r}")
        if require_starttls and tls != "starttls":
            raise ValueError("require_starttls needs tls='starttls'")
        the_cert = (cert or self._default_cert) if tls != "none" else None
        context = the_cert.server_context() if the_cert else None
        handler = _Handler(
            offer_auth=bool(users),
            implicit_tls=tls == "implicit",
            rcpt_replies=rcpt_replies or {},
            on_mail=on_mail,
            on_rcpt=on_rcpt,
            on_data=on_data,
        )
        excluded: list[str] = []
        if auth_mechanisms is not None:
            wanted = {name.upper() for name in auth_mechanisms}
            excluded = [m for m in ("PLAIN", "LOGIN", "CRAM-MD5", "XOAUTH2") if m not in wanted]
        user_table = dict(users or {})

        def authenticator(
            server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
        ) -> AuthResult:
            if isinstance(data, LoginPassword):
                login = data.login.decode("utf-8", "replace")
                password = data.password.decode("utf-8", "replace")
                if login in user_table and hmac.compare_digest(
                    user_table[login].encode(), password.encode()
                ):
                    return AuthResult(success=True, auth_data=data)
            return AuthResult(success=False, handled=False)

        smtp_kwargs: dict[str, Any] = {
            "users": user_table,
            "tls_context": context if tls == "starttls" else None,
            "require_starttls": require_starttls,
            "implicit_tls": tls == "implicit",
            "auth_require_tls": auth_require_tls,
            "auth_required": auth_required,
            "auth_exclude_mechanism": excluded,
            "authenticator": authenticator,
            "enable_SMTPUTF8": enable_smtputf8,
            "data_size_limit": data_size_limit,
            "timeout": timeout,
        }
        controller = _Controller(
            handler,
            smtp_kwargs=smtp_kwargs,
            ssl_context=context if tls == "implicit" else None,
            ready_timeout=10.0,
        )
        controller.start()
        server = AiosmtpdServer(
            host=HOST,
            port=controller.port,
            tls=tls,
            users=user_table,
            cert=the_cert,
            _controller=controller,
            _handler=handler,
        )
        self.servers.append(server)
        return server

    def stop_all(self) -> None:
        for server in self.servers:
            server.stop()


@pytest.fixture
def aiosmtpd_factory(server_cert: ServerCert) -> Iterator[AiosmtpdFactory]:
    factory = AiosmtpdFactory(server_cert)
    try:
        yield factory
    finally:
        factory.stop_all()
