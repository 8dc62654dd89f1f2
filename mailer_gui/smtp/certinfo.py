"""What a person needs to see about a server certificate before trusting it."""

from __future__ import annotations

import hashlib
import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class CertificateInfo:
    subject: str
    issuer: str
    not_before: str
    not_after: str
    sha256: str  # lower-case hex, no colons
    subject_alt_names: tuple[str, ...] = ()

    @property
    def sha256_colons(self) -> str:
        return ":".join(self.sha256[i : i + 2] for i in range(0, len(self.sha256), 2)).upper()

    def describe(self) -> str:
        names = ", ".join(self.subject_alt_names) or "none"
        return (
            f"subject {self.subject}; issuer {self.issuer}; valid {self.not_before} "
            f"to {self.not_after}; names {names}; SHA-256 {self.sha256_colons}"
        )


def fingerprint(der: bytes) -> str:
    return hashlib.sha256(der).hexdigest()


def _name(parts: Any) -> str:
    # ssl's decoded names are tuples of RDNs, each a tuple of (key, value).
    return ", ".join(f"{key}={value}" for rdn in parts for key, value in rdn) or "(empty)"


def certificate_info(der: bytes) -> CertificateInfo:
    """Decode a DER certificate without trusting it (stdlib only).

    `ssl` decodes only through a file; the file holds a public certificate.
    """
    pem = ssl.DER_cert_to_PEM_cert(der)
    with tempfile.TemporaryDirectory(prefix="mailer-cert-") as tmp:
        path = Path(tmp) / "peer.pem"
        path.write_text(pem)
        decoded: dict[str, Any] = ssl._ssl._test_decode_cert(str(path))  # type: ignore[attr-defined]
    sans = tuple(f"{kind}:{value}" for kind, value in decoded.get("subjectAltName", ()))
    return CertificateInfo(
        subject=_name(decoded.get("subject", ())),
        issuer=_name(decoded.get("issuer", ())),
        not_before=str(decoded.get("notBefore", "")),
        not_after=str(decoded.get("notAfter", "")),
        sha256=fingerprint(der),
        subject_alt_names=sans,
    )
