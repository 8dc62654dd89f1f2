"""HTTPS file servers on 127.0.0.1 (http.server + ssl on a thread), one free port each.

``https_server_factory(files=..., cert=...)`` starts a server and returns an
:class:`HttpsServer` (``.host``, ``.port``, ``.url(path)``, ``.requests``, ``.stop()``);
every server still running is stopped at teardown. ``files`` maps a path (without
the query) to what a GET returns:

- ``bytes`` or ``str``: ``200`` with that body (``application/xml``),
- a :class:`Response`: any status, headers and body (redirects, errors, a delay).

Anything else is ``404``. ``requests`` lists every request line's target (path and
query), in arrival order. The certificate is ``cert`` or, by default, ``server_cert``
(test CA; localhost/127.0.0.1/::1): a client trusts it through ``trust_test_ca``. The
TLS handshake runs on each connection's own thread, so a client that never completes
it does not hold up the others.
"""

from __future__ import annotations

import contextlib
import http.server
import socket
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

import pytest

from tests.servers.tls import ServerCert

__all__ = ["HttpsServer", "HttpsServerFactory", "Response", "https_server_factory"]

HOST = "127.0.0.1"
REQUEST_TIMEOUT = 10.0  # seconds a connection may idle before the server drops it


@dataclass(frozen=True)
class Response:
    status: int = 200
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds to wait before answering


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Server
    timeout = REQUEST_TIMEOUT
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self.server.requests.append(self.path)
        path = self.path.split("?", 1)[0]
        entry = self.server.files.get(path)
        if entry is None:
            response = Response(404, b"not found\n", {"Content-Type": "text/plain"})
        elif isinstance(entry, Response):
            response = entry
        else:
            body = entry.encode("utf-8") if isinstance(entry, str) else entry
            response = Response(200, body, {"Content-Type": "application/xml"})
        if response.delay:
            time.sleep(response.delay)
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(response.body)
        self.close_connection = True

    def log_message(self, format: str, *args: object) -> None:
        pass  # requests are kept in .requests; stderr stays quiet


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    files: Mapping[str, bytes | str | Response]
    requests: list[str]

    def __init__(self, cert: ServerCert, files: Mapping[str, bytes | str | Response]) -> None:
        super().__init__((HOST, 0), _Handler)
        self.files = dict(files)
        self.requests = []
        self._context = cert.server_context()

    def get_request(self) -> tuple[socket.socket, object]:
        sock, address = super().get_request()
        # The handshake happens on the first read, on the connection's own thread.
        sock.settimeout(REQUEST_TIMEOUT)
        tls = self._context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return tls, address

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a client that hangs up mid-handshake is part of the tests


@dataclass
class HttpsServer:
    host: str
    port: int
    cert: ServerCert
    _server: _Server = field(repr=False)
    _thread: threading.Thread = field(repr=False)
    _stopped: bool = field(default=False, repr=False)

    @property
    def requests(self) -> list[str]:
        """Request targets (path and query) in arrival order (live list)."""
        return self._server.requests

    def url(self, path: str, *, host: str = "localhost") -> str:
        """``https://localhost:PORT/path`` (the certificate names localhost)."""
        return f"https://{host}:{self.port}{path}"

    def stop(self) -> None:
        if not self._stopped:
            self._stopped = True
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(timeout=5)


class HttpsServerFactory:
    def __init__(self, default_cert: ServerCert) -> None:
        self._default_cert = default_cert
        self.servers: list[HttpsServer] = []

    def __call__(
        self,
        files: Mapping[str, bytes | str | Response] | None = None,
        *,
        cert: ServerCert | None = None,
    ) -> HttpsServer:
        the_cert = cert or self._default_cert
        server = _Server(the_cert, files or {})
        thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="https-test-server",
            daemon=True,
        )
        thread.start()
        https = HttpsServer(HOST, server.server_address[1], the_cert, server, thread)
        self.servers.append(https)
        return https

    def stop_all(self) -> None:
        for server in self.servers:
            with contextlib.suppress(OSError):
                server.stop()


@pytest.fixture
def https_server_factory(server_cert: ServerCert) -> Iterator[HttpsServerFactory]:
    factory = HttpsServerFactory(server_cert)
    try:
        yield factory
    finally:
        factory.stop_all()
