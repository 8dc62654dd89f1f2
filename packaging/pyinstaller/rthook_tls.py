"""PyInstaller runtime hook: give TLS verification a trust store in the frozen app.

Python's ssl module verifies against OpenSSL's default locations: SSL_CERT_FILE
and SSL_CERT_DIR when set, else the file and folder compiled into the bundled
OpenSSL (on Windows it also reads the system certificate store itself). Those
compiled-in paths belong to the machine that built the app: on Debian they are
/usr/lib/ssl/..., which exists on Debian and Ubuntu, but not on Fedora or
macOS. When they hold nothing and the person set neither variable, this
points SSL_CERT_FILE (or SSL_CERT_DIR) at the system's own CA bundle, and only
when the system has none at certifi's bundle shipped inside the app. It runs
before the app's code and changes nothing when the defaults work.
"""

from __future__ import annotations

import os
import ssl
import sys
from collections.abc import Mapping, Sequence

#: Where operating systems keep their CA bundle, most common first.
SYSTEM_CA_FILES = (
    "/etc/ssl/certs/ca-certificates.crt",  # Debian, Ubuntu, Arch, Gentoo
    "/etc/pki/tls/certs/ca-bundle.crt",  # Fedora, RHEL
    "/etc/ssl/ca-bundle.pem",  # openSUSE
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",  # RHEL 7 and later
    "/etc/ssl/cert.pem",  # macOS, Alpine, the BSDs
)
#: Folders of hashed certificates (c_rehash), for systems with no bundle file.
SYSTEM_CA_DIRS = ("/etc/ssl/certs", "/etc/pki/tls/certs")


def _has_certificates(folder: str) -> bool:
    try:
        return any(name.endswith((".0", ".pem", ".crt")) for name in os.listdir(folder))
    except OSError:
        return False


def ca_environment(
    environ: Mapping[str, str],
    defaults: ssl.DefaultVerifyPaths,
    platform: str,
    bundled_ca_file: str | None,
    system_ca_files: Sequence[str] = SYSTEM_CA_FILES,
    system_ca_dirs: Sequence[str] = SYSTEM_CA_DIRS,
) -> dict[str, str]:
    """The variables to set so that verification has CA certificates ({} for none).

    Nothing when the person set SSL_CERT_FILE or SSL_CERT_DIR, on Windows
    (ssl loads the system store there), or when OpenSSL's compiled-in file or
    folder holds certificates. Otherwise the first system bundle or folder
    found, and the bundled certifi file only when the system has none.
    """
    if environ.get(defaults.openssl_cafile_env) or environ.get(defaults.openssl_capath_env):
        return {}
    if platform == "win32":
        return {}
    if os.path.isfile(defaults.openssl_cafile) or _has_certificates(defaults.openssl_capath):
        return {}
    for candidate in system_ca_files:
        if os.path.isfile(candidate):
            return {defaults.openssl_cafile_env: candidate}
    for candidate in system_ca_dirs:
        if _has_certificates(candidate):
            return {defaults.openssl_capath_env: candidate}
    if bundled_ca_file and os.path.isfile(bundled_ca_file):
        return {defaults.openssl_cafile_env: bundled_ca_file}
    return {}


def _bundled_certifi() -> str | None:
    base = getattr(sys, "_MEIPASS", None)
    return os.path.join(base, "certifi", "cacert.pem") if base else None


if getattr(sys, "frozen", False):
    os.environ.update(
        ca_environment(os.environ, ssl.get_default_verify_paths(), sys.platform, _bundled_certifi())
    )
