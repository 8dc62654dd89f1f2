"""Blocking socket and TLS for one SMTP connection.

Moves bytes and nothing else: `session.py` decides what to send and feeds
what arrives to the protocol. Certificates are verified with host names
against the system trust store (OpenSSL defaults, so SSL_CERT_FILE works),
TLS 1.2 at least; a pinned SHA-256 fingerprint replaces the chain check for
a self-signed server the person chose to trust. `abort()` may be called from
another thread to cancel: it shuts the socket so a blocked read returns.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
import time
from dataclasses import dataclass

from mailer_gui.smtp.certinfo import CertificateInfo, certificate_info
from mailer_gui.smtp.errors import (
    Cancelled,
    ConnectError,
    ConnectionLost,
    TimeoutError_,
    TlsError,
)

READ_SIZE = 65536


@dataclass(frozen=True)
class TlsInfo:
    version: str
    cipher: str
    certificate: CertificateInfo | None

    def describe(self) -> str:
        text = f"TLS established: {self.version}, {self.cipher}"
        if self.certificate:
            text += f"; certificate {self.certificate.describe()}"
        return text


def make_tls_context(*, pinned: bool, verify: bool = True) -> ssl.SSLContext:
    """A client context: system trust store and host names, or a pin.

    ``verify=False`` is only for opportunistic STARTTLS between mail servers
    (direct delivery on port 25), where the alternative is no encryption.
    """
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if pinned or not verify:
        # Chain and name are not checked: the fingerprint is compared instead,
        # after the handshake and before a single SMTP byte goes over it.
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _verification_advice(exc: ssl.SSLCertVerificationError, host: str) -> str:
    code = getattr(exc, "verify_code", 0)
    reason = getattr(exc, "verify_message", "") or str(exc)
    if code == 10 or "expired" in reason:
        what = f"The certificate of {host} has expired"
        todo = "The server's administrator must renew it; check your computer's date too."
    elif code == 62 or "Hostname mismatch" in reason or "IP address mismatch" in reason:
        what = f"The certificate presented by {host} is for a different server name"
        todo = (
            "Check the server name in the account settings: use the exact name your "
            "provider gives (the certificate lists the names it is valid for)."
        )
    elif code in (18, 19) or "self-signed" in reason or "self signed" in reason:
        what = f"The certificate of {host} is self-signed, so nobody vouches for it"
        todo = (
            "If this is your own server, check its fingerprint and trust it explicitly "
            "(pin the SHA-256 fingerprint in the account settings)."
        )
    elif code in (2, 20, 21) or "issuer" in reason:
        what = f"The certificate of {host} was issued by an authority this computer does not trust"
        todo = (
            "If this is a company or test server, install its certificate authority in the "
            "system trust store, or pin the server's SHA-256 fingerprint in the account."
        )
    else:
        what = f"The certificate of {host} could not be verified"
        todo = "Check the server name and your computer's date, or ask the server's administrator."
    return f"{what} ({reason}). Mailer did not send anything over this connection. {todo}"


class Transport:
    """One TCP connection, optionally wrapped in TLS."""

    def __init__(self, sock: socket.socket, host: str) -> None:
        self._sock: socket.socket = sock
        self.host = host
        self.tls: TlsInfo | None = None
        self._aborted = threading.Event()
        self._current_timeout: float | None = None

    @classmethod
    def connect(
        cls,
        host: str,
        port: int,
        *,
        timeout: float,
        implicit_tls: bool = False,
        fingerprint: str | None = None,
    ) -> Transport:
        try:
            sock = socket.create_connection((host, port), timeout=timeout)
        except TimeoutError as exc:
            raise ConnectError(
                f"No answer from {host} port {port} within {timeout:g} s. The server may be "
                "down, or a firewall may block the port; try again later or check the port."
            ) from exc
        except socket.gaierror as exc:
            raise ConnectError(
                f"The server name {host} could not be found ({exc.strerror}). "
                "Check the spelling of the server name and your network connection."
            ) from exc
        except ConnectionRefusedError as exc:
            raise ConnectError(
                f"{host} refused the connection on port {port}. The server is not accepting "
                "mail on this port: check the port and security settings (465 is TLS, 587 "
                "is STARTTLS)."
            ) from exc
        except OSError as exc:
            raise ConnectError(
                f"Could not connect to {host} port {port}: {exc.strerror or exc}. Check your "
                "network connection; Mailer will try again later."
            ) from exc
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        transport = cls(sock, host)
        if implicit_tls:
            transport.start_tls(timeout=timeout, fingerprint=fingerprint)
        return transport

    def start_tls(
        self, *, timeout: float, fingerprint: str | None = None, verify: bool = True
    ) -> TlsInfo:
        """Wrap the socket in TLS and verify the peer; raise TlsError if it fails."""
        context = make_tls_context(pinned=fingerprint is not None, verify=verify)
        self._set_timeout(timeout)
        try:
            tls_sock = context.wrap_socket(self._sock, server_hostname=self.host)
        except ssl.SSLCertVerificationError as exc:
            self.close()
            raise TlsError(_verification_advice(exc, self.host), unverified=True) from exc
        except ssl.SSLError as exc:
            self.close()
            raise TlsError(
                f"TLS with {self.host} failed ({exc.reason or exc}). The server may not "
                "speak TLS on this port (465 is TLS from the start, 587 uses STARTTLS), or "
                "it only offers protocols older than TLS 1.2."
            ) from exc
        except (TimeoutError, OSError) as exc:
            self.close()
            raise ConnectionLost(f"The connection to {self.host} broke during TLS setup.") from exc
        self._sock = tls_sock
        self._current_timeout = None
        der = tls_sock.getpeercert(binary_form=True)
        cert = certificate_info(der) if der else None
        if fingerprint is not None:
            expected = fingerprint.replace(":", "").lower()
            if cert is None or cert.sha256 != expected:
                self.close()
                seen = cert.sha256_colons if cert else "none"
                raise TlsError(
                    f"The certificate of {self.host} does not match the fingerprint pinned "
                    f"in the account (server shows SHA-256 {seen}). The server's certificate "
                    "changed, or someone is intercepting the connection. Mailer sent nothing. "
                    "If you replaced the certificate yourself, pin the new fingerprint.",
                    certificate=cert,
                )
        cipher = tls_sock.cipher()
        self.tls = TlsInfo(
            version=tls_sock.version() or "TLS",
            cipher=cipher[0] if cipher else "unknown",
            certificate=cert,
        )
        return self.tls

    def write(self, data: bytes, *, timeout: float) -> None:
        if self._aborted.is_set():
            raise Cancelled("The send was cancelled.")
        try:
            self._set_timeout(timeout)
            self._sock.sendall(data)
        except TimeoutError as exc:
            raise self._timeout(timeout) from exc
        except OSError as exc:
            raise self._lost(exc) from exc

    def read(self, *, timeout: float) -> bytes:
        """Bytes from the server; ``b""`` when it closed the connection."""
        if self._aborted.is_set():
            raise Cancelled("The send was cancelled.")
        try:
            data = self._recv(timeout)
        except TimeoutError as exc:
            raise self._timeout(timeout) from exc
        except ssl.SSLError as exc:
            raise self._lost(exc) from exc
        except OSError as exc:
            raise self._lost(exc) from exc
        if not data and self._aborted.is_set():
            raise Cancelled("The send was cancelled.")
        return data

    def _recv(self, timeout: float) -> bytes:
        """One read, waiting at most ``timeout`` seconds for it.

        A wait longer than the socket's timeout (the final reply may take ten
        minutes, a write two) is made in steps of that timeout rather than by
        changing it: each change is a system call, twice per message sent.
        """
        step = self._current_timeout
        if step is None or timeout <= step:
            self._set_timeout(timeout)
            return self._sock.recv(READ_SIZE)
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self._sock.recv(READ_SIZE)
            except TimeoutError:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise
                if left < step:
                    self._set_timeout(step := left)

    def _set_timeout(self, timeout: float) -> None:
        if timeout != self._current_timeout:  # one system call saved per read and write
            self._sock.settimeout(timeout)
            self._current_timeout = timeout

    def _timeout(self, timeout: float) -> Exception:
        if self._aborted.is_set():
            return Cancelled("The send was cancelled.")
        return TimeoutError_(
            f"{self.host} stopped answering (nothing for {timeout:g} s). Mailer will try "
            "again later; if this keeps happening the server or the network is overloaded."
        )

    def _lost(self, exc: BaseException) -> Exception:
        if self._aborted.is_set():
            return Cancelled("The send was cancelled.")
        return ConnectionLost(
            f"The connection to {self.host} was lost ({exc}). Mailer will try again later."
        )

    def abort(self) -> None:
        """Cancel from any thread: wakes a blocked read or write."""
        self._aborted.set()
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)

    def local_address(self) -> str:
        return str(self._sock.getsockname()[0])

    @property
    def aborted(self) -> bool:
        return self._aborted.is_set()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.close()
