"""The sandbox's self-signed certificate: made once, kept, and pinned by fingerprint.

At first use a key and a certificate for localhost, 127.0.0.1 and ::1 are made
with the `cryptography` package and written 0600 under the sandbox's state
folder (0700). Later starts reuse them, so the fingerprint the sandbox account
pins stays the same. A missing, unreadable, mismatched or nearly expired pair
is replaced. A lock keeps two starting processes from writing halves of two
different pairs.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import os
import ssl
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final

from mailer_gui.paths import ensure_private_dir, write_private_file_atomic
from mailer_gui.sandbox.errors import SandboxError

if sys.platform != "win32":
    import fcntl

CERT_FILE: Final = "cert.pem"
KEY_FILE: Final = "key.pem"
COMMON_NAME: Final = "Mailer sandbox"
VALID_DAYS: Final = 3650
RENEW_BEFORE: Final = timedelta(days=30)
LOCK_TIMEOUT: Final = 10.0  # seconds; another start holds it only while it makes a key


@dataclass(frozen=True)
class SandboxCertificate:
    """The certificate in use: its files, its PEM text and its SHA-256 fingerprint."""

    cert_path: Path
    key_path: Path
    pem: str
    created: bool  # made by this call (a new fingerprint), not found on disk

    @property
    def der(self) -> bytes:
        return ssl.PEM_cert_to_DER_cert(self.pem)

    @property
    def fingerprint(self) -> str:
        """Lower-case hex SHA-256 of the DER certificate, as accounts pin it."""
        return hashlib.sha256(self.der).hexdigest()

    def server_context(self) -> ssl.SSLContext:
        """A TLS server context with this certificate, TLS 1.2 at least."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(self.cert_path, self.key_path)
        return context


def load_or_create_certificate(
    state_dir: Path, *, now: datetime | None = None
) -> SandboxCertificate:
    """The certificate kept in `state_dir`, made (and kept) first if there is none usable."""
    moment = now or datetime.now(UTC)
    try:
        ensure_private_dir(state_dir)
        with _locked(state_dir / ".cert.lock"):
            existing = _load(state_dir, moment)
            if existing is not None:
                return existing
            key_pem, cert_pem = _generate(moment)
            # The key first: a crash in between leaves a pair that does not load,
            # which the next start replaces.
            write_private_file_atomic(state_dir / KEY_FILE, key_pem)
            write_private_file_atomic(state_dir / CERT_FILE, cert_pem)
    except OSError as error:
        raise SandboxError(
            f"The sandbox cannot keep its certificate in {state_dir}: "
            f"{error.strerror or error}. Check that the folder is writable."
        ) from error
    return SandboxCertificate(
        state_dir / CERT_FILE, state_dir / KEY_FILE, cert_pem.decode("ascii"), created=True
    )


def _load(state_dir: Path, moment: datetime) -> SandboxCertificate | None:
    cert_path, key_path = state_dir / CERT_FILE, state_dir / KEY_FILE
    try:
        pem = cert_path.read_text(encoding="ascii")
        certificate = SandboxCertificate(cert_path, key_path, pem, created=False)
        certificate.server_context()  # the key must match the certificate
    except (OSError, ValueError, ssl.SSLError):
        return None
    if _expires(pem) - RENEW_BEFORE < moment:
        return None
    return certificate


def _expires(pem: str) -> datetime:
    from cryptography import x509

    return x509.load_pem_x509_certificate(pem.encode("ascii")).not_valid_after_utc


def _generate(moment: datetime, valid_days: int = VALID_DAYS) -> tuple[bytes, bytes]:
    """A new EC P-256 key and a self-signed certificate, both as PEM."""
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
    except ImportError as error:  # pragma: no cover - a declared dependency
        raise SandboxError(
            "The sandbox needs the Python package 'cryptography' to make its certificate; "
            "install it (pip install cryptography) and start the sandbox again."
        ) from error

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, COMMON_NAME)])
    names: list[x509.GeneralName] = [
        x509.DNSName("localhost"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.IPAddress(ipaddress.ip_address("::1")),
    ]
    public_key = key.public_key()
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(moment - timedelta(days=1))  # a clock a little behind still accepts it
        .not_valid_after(moment + timedelta(days=valid_days))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(public_key), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return key_pem, certificate.public_bytes(serialization.Encoding.PEM)


@contextlib.contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    descriptor = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        if sys.platform != "win32":
            deadline = time.monotonic() + LOCK_TIMEOUT
            while True:
                try:
                    fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise SandboxError(
                            f"Another program keeps {lock_path} locked; is another sandbox "
                            "starting? Try again in a moment."
                        ) from None
                    time.sleep(0.05)
        yield
    finally:
        os.close(descriptor)  # closing releases the lock
