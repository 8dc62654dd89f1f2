"""Test certificates: a private CA (trustme) and the server certificates tests need.

Fixtures:

- ``tls_ca`` (session): the ``trustme.CA`` every test server certificate comes from.
- ``server_cert`` (session): a :class:`ServerCert` for ``localhost``, ``127.0.0.1``
  and ``::1``, issued by ``tls_ca``.
- ``ca_bundle`` (session): ``Path`` of the CA certificate (PEM) in a temporary folder.
- ``trust_test_ca`` (function): sets ``SSL_CERT_FILE`` to ``ca_bundle`` (monkeypatch),
  so an ``ssl.create_default_context()`` made afterwards trusts the test CA, and
  nothing else. Returns the bundle's ``Path``.
- ``self_signed_cert``, ``expired_cert``, ``wrong_host_cert`` (session): the bad
  certificates of the certificate-error tests, made by :func:`make_self_signed_cert`,
  :func:`make_expired_cert` and :func:`make_wrong_host_cert`.

Any :class:`ServerCert` can be handed to ``aiosmtpd_factory(cert=...)``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import ssl
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

__all__ = [
    "LOOPBACK_IDENTITIES",
    "WRONG_HOST",
    "ServerCert",
    "ca_bundle",
    "expired_cert",
    "make_expired_cert",
    "make_self_signed_cert",
    "make_server_cert",
    "make_wrong_host_cert",
    "self_signed_cert",
    "server_cert",
    "tls_ca",
    "trust_test_ca",
    "wrong_host_cert",
]

LOOPBACK_IDENTITIES: tuple[str, ...] = ("localhost", "127.0.0.1", "::1")
WRONG_HOST = "wrong.example"


@dataclass(frozen=True)
class ServerCert:
    """A server certificate with its key, in PEM.

    ``chain_pem`` is the leaf first, then any intermediates (never the root).
    ``sha256`` is the SHA-256 of the leaf's DER encoding (lower-case hex, no colons),
    the value a pinning test stores.
    """

    chain_pem: bytes
    key_pem: bytes
    identities: tuple[str, ...]
    not_after: dt.datetime

    @property
    def leaf_pem(self) -> bytes:
        end = b"-----END CERTIFICATE-----"
        return self.chain_pem[: self.chain_pem.index(end) + len(end)] + b"\n"

    @property
    def leaf_der(self) -> bytes:
        return ssl.PEM_cert_to_DER_cert(self.leaf_pem.decode("ascii"))

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.leaf_der).hexdigest()

    def write(self, directory: Path) -> tuple[Path, Path]:
        """Write ``cert.pem`` (chain) and ``key.pem`` (mode 0600) into ``directory``."""
        directory.mkdir(parents=True, exist_ok=True)
        cert_path = directory / "cert.pem"
        key_path = directory / "key.pem"
        cert_path.write_bytes(self.chain_pem)
        key_path.touch(mode=0o600)
        key_path.write_bytes(self.key_pem)
        return cert_path, key_path

    def server_context(self) -> ssl.SSLContext:
        """A server-side context presenting this certificate (no client certs asked)."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        # load_cert_chain reads files only; the context keeps what it loaded.
        with tempfile.TemporaryDirectory(prefix="mailer-test-cert-") as directory:
            cert_path, key_path = self.write(Path(directory))
            context.load_cert_chain(cert_path, key_path)
        return context


def _from_leaf(leaf: trustme.LeafCert, identities: tuple[str, ...]) -> ServerCert:
    chain = b"".join(blob.bytes() for blob in leaf.cert_chain_pems)
    not_after = x509.load_pem_x509_certificate(leaf.cert_chain_pems[0].bytes()).not_valid_after_utc
    return ServerCert(
        chain_pem=chain,
        key_pem=leaf.private_key_pem.bytes(),
        identities=identities,
        not_after=not_after,
    )


def make_server_cert(ca: trustme.CA, *identities: str) -> ServerCert:
    """A valid certificate from ``ca`` (default identities: the loopback names)."""
    names = identities or LOOPBACK_IDENTITIES
    return _from_leaf(ca.issue_cert(*names), names)


def make_expired_cert(ca: trustme.CA) -> ServerCert:
    """A certificate from the trusted ``ca`` for the loopback names, expired yesterday."""
    now = dt.datetime.now(dt.UTC)
    leaf = ca.issue_cert(
        *LOOPBACK_IDENTITIES,
        not_before=now - dt.timedelta(days=30),
        not_after=now - dt.timedelta(days=1),
    )
    return _from_leaf(leaf, LOOPBACK_IDENTITIES)


def make_wrong_host_cert(ca: trustme.CA) -> ServerCert:
    """A valid certificate from the trusted ``ca``, but only for ``wrong.example``."""
    return _from_leaf(ca.issue_cert(WRONG_HOST), (WRONG_HOST,))


def make_self_signed_cert(*identities: str) -> ServerCert:
    """A self-signed certificate (issuer == subject, no CA) for the loopback names.

    No trust store accepts it; a client can only accept it by pinning ``.sha256``.
    """
    names = identities or LOOPBACK_IDENTITIES
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Mailer tests, self-signed"),
            x509.NameAttribute(NameOID.COMMON_NAME, names[0]),
        ]
    )
    alt_names: list[x509.GeneralName] = []
    for name in names:
        try:
            alt_names.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            alt_names.append(x509.DNSName(name))
    now = dt.datetime.now(dt.UTC)
    not_after = now + dt.timedelta(days=30)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(not_after)
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return ServerCert(
        chain_pem=cert.public_bytes(serialization.Encoding.PEM),
        key_pem=key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
        identities=names,
        not_after=not_after,
    )


@pytest.fixture(scope="session")
def tls_ca() -> trustme.CA:
    return trustme.CA(organization_name="Mailer test CA")


@pytest.fixture(scope="session")
def server_cert(tls_ca: trustme.CA) -> ServerCert:
    return make_server_cert(tls_ca)


@pytest.fixture(scope="session")
def ca_bundle(tls_ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("test-ca") / "ca.pem"
    tls_ca.cert_pem.write_to_path(str(path))
    return path


@pytest.fixture
def trust_test_ca(ca_bundle: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Make default SSL contexts created from now on trust the test CA (only it)."""
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_bundle))
    # A folder without hashed certificate names: the system's CAs are not consulted.
    monkeypatch.setenv("SSL_CERT_DIR", str(ca_bundle.parent))
    yield ca_bundle


@pytest.fixture(scope="session")
def self_signed_cert() -> ServerCert:
    return make_self_signed_cert()


@pytest.fixture(scope="session")
def expired_cert(tls_ca: trustme.CA) -> ServerCert:
    return make_expired_cert(tls_ca)


@pytest.fixture(scope="session")
def wrong_host_cert(tls_ca: trustme.CA) -> ServerCert:
    return make_wrong_host_cert(tls_ca)
