"""The self-signed certificate: made once, kept 0600, the same fingerprint after a restart."""

from __future__ import annotations

import hashlib
import ssl
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509

from mailer_gui.sandbox.certificate import (
    CERT_FILE,
    KEY_FILE,
    VALID_DAYS,
    load_or_create_certificate,
)
from mailer_gui.sandbox.server import SandboxServer
from tests.sandbox.conftest import smtp_client


def test_made_at_first_use_and_private(tmp_path: Path) -> None:
    state = tmp_path / "data" / "sandbox"
    certificate = load_or_create_certificate(state)
    assert certificate.created
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    for name in (CERT_FILE, KEY_FILE):
        assert stat.S_IMODE((state / name).stat().st_mode) == 0o600
    der = ssl.PEM_cert_to_DER_cert((state / CERT_FILE).read_text())
    assert certificate.fingerprint == hashlib.sha256(der).hexdigest()
    assert "PRIVATE KEY" in (state / KEY_FILE).read_text()


def test_names_and_validity(tmp_path: Path) -> None:
    certificate = x509.load_pem_x509_certificate(load_or_create_certificate(tmp_path).pem.encode())
    names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["localhost"]
    assert {str(ip) for ip in names.get_values_for_type(x509.IPAddress)} == {"127.0.0.1", "::1"}
    assert certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    lifetime = certificate.not_valid_after_utc - datetime.now(UTC)
    assert timedelta(days=VALID_DAYS - 2) < lifetime <= timedelta(days=VALID_DAYS)


def test_kept_across_restarts(tmp_path: Path) -> None:
    first = SandboxServer(tmp_path / "Maildir", tmp_path / "state")
    with first:
        pinned = first.fingerprint
    second = SandboxServer(tmp_path / "Maildir", tmp_path / "state")
    assert first.certificate_created and not second.certificate_created
    assert second.fingerprint == pinned
    with second, smtp_client(second) as client:
        sock = client.sock
        assert sock is not None
        der = sock.getpeercert(binary_form=True)  # type: ignore[attr-defined]
    assert hashlib.sha256(der).hexdigest() == pinned


def test_another_folder_another_certificate(tmp_path: Path) -> None:
    one = load_or_create_certificate(tmp_path / "one")
    two = load_or_create_certificate(tmp_path / "two")
    assert one.fingerprint != two.fingerprint


def test_unusable_pair_replaced(tmp_path: Path) -> None:
    original = load_or_create_certificate(tmp_path)
    # A key that does not belong to the certificate (say, half of an interrupted write).
    load_or_create_certificate(tmp_path / "other")
    (tmp_path / KEY_FILE).write_bytes((tmp_path / "other" / KEY_FILE).read_bytes())
    replaced = load_or_create_certificate(tmp_path)
    assert replaced.created and replaced.fingerprint != original.fingerprint
    again = load_or_create_certificate(tmp_path)
    assert not again.created and again.fingerprint == replaced.fingerprint

    (tmp_path / CERT_FILE).write_text("not a certificate")
    assert load_or_create_certificate(tmp_path).created
    (tmp_path / CERT_FILE).unlink()
    assert load_or_create_certificate(tmp_path).created


def test_renewed_before_it_expires(tmp_path: Path) -> None:
    long_ago = datetime.now(UTC) - timedelta(days=VALID_DAYS - 10)
    old = load_or_create_certificate(tmp_path, now=long_ago)  # ten days left
    renewed = load_or_create_certificate(tmp_path)
    assert renewed.created and renewed.fingerprint != old.fingerprint
