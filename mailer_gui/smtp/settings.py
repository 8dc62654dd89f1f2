"""What the engine needs to know about a server: where, how secure, how to log in.

Accounts (mailer_gui.accounts) own these values and hand a `ServerSettings` to
the session; the session never reads config files or the keyring itself.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Security(enum.Enum):
    """How the connection is protected."""

    TLS = "tls"  # implicit TLS from the first byte (submissions, port 465)
    STARTTLS = "starttls"  # plaintext greeting, then STARTTLS, required (port 587)
    NONE = "none"  # no TLS at all (port 25 relays, local test servers)

    @property
    def default_port(self) -> int:
        return {Security.TLS: 465, Security.STARTTLS: 587, Security.NONE: 25}[self]


class AuthMethod(enum.Enum):
    """The SASL mechanism to use, or AUTO to pick the strongest both sides offer."""

    AUTO = "auto"
    PLAIN = "plain"
    LOGIN = "login"
    CRAM_MD5 = "cram-md5"
    XOAUTH2 = "xoauth2"
    NONE = "none"


@dataclass(frozen=True)
class Timeouts:
    """Seconds to wait, per RFC 5321 §4.5.3.2 in shape, shorter for a desktop.

    The final "." reply may take long on a busy server (content filters run
    then), so it is never below two minutes.
    """

    connect: float = 30.0
    greeting: float = 60.0
    command: float = 60.0
    data_block: float = 120.0
    data_end: float = 600.0

    def __post_init__(self) -> None:
        if self.data_end < 120.0:
            raise ValueError("the final '.' timeout must be at least 120 seconds")


@dataclass(frozen=True)
class ServerSettings:
    """A submission server and how to talk to it."""

    host: str
    port: int
    security: Security = Security.STARTTLS
    auth: AuthMethod = AuthMethod.AUTO
    username: str | None = None
    allow_insecure_auth: bool = False
    # Lower-case hex SHA-256 of the server certificate (DER), for a self-signed
    # server the person chose to trust; colons are accepted and ignored.
    tls_fingerprint: str | None = None
    local_hostname: str | None = None
    timeouts: Timeouts = Timeouts()
    # With Security.NONE: use STARTTLS when the server offers it, unverified
    # (direct delivery to MX hosts on port 25, like Postfix's "may" level).
    opportunistic_tls: bool = False

    @property
    def normalized_fingerprint(self) -> str | None:
        if not self.tls_fingerprint:
            return None
        return self.tls_fingerprint.replace(":", "").strip().lower()
