"""SASL for SMTP AUTH (RFC 4954): PLAIN, LOGIN, CRAM-MD5 and XOAUTH2.

Each mechanism is a small object that produces the client's lines; the
session feeds it the server's 334 challenges. The lines are secrets: the
protocol layer sends them and the transcript shows ``*****`` in their place.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from dataclasses import dataclass, field

from mailer_gui.smtp.errors import AuthenticationError, SecurityPolicyError
from mailer_gui.smtp.settings import AuthMethod

# Strongest first. CRAM-MD5 never shows the password to the wire; PLAIN needs
# one round trip (initial response) and LOGIN two. XOAUTH2 is chosen only when
# the account says so, because it needs a token rather than a password.
_PREFERENCE = ("CRAM-MD5", "PLAIN", "LOGIN")


@dataclass(frozen=True)
class Credentials:
    username: str
    secret: str = field(repr=False)  # password, or an OAuth2 access token for XOAUTH2


def b64(data: bytes) -> bytes:
    return base64.b64encode(data)


def plain_response(username: str, password: str) -> bytes:
    """RFC 4616: ``base64("\\0user\\0password")`` (no authorization identity)."""
    return b64(b"\0" + username.encode("utf-8") + b"\0" + password.encode("utf-8"))


def cram_md5_response(username: str, password: str, challenge_b64: bytes) -> bytes:
    """RFC 2195: ``base64(user + " " + hex(HMAC-MD5(password, challenge)))``."""
    try:
        challenge = base64.b64decode(challenge_b64, validate=True)
    except binascii.Error as exc:
        raise AuthenticationError(
            "The server sent a CRAM-MD5 challenge that is not base64; "
            "choose another login method for this account."
        ) from exc
    digest = hmac.new(password.encode("utf-8"), challenge, hashlib.md5).hexdigest()
    return b64(f"{username} {digest}".encode())


def xoauth2_response(username: str, token: str) -> bytes:
    """Google/Microsoft XOAUTH2: ``base64("user=U\\x01auth=Bearer T\\x01\\x01")``."""
    return b64(f"user={username}\x01auth=Bearer {token}\x01\x01".encode())


class Mechanism:
    """One AUTH exchange. ``initial`` goes with the AUTH command; ``respond``
    answers each 334."""

    name: str = ""

    def __init__(self, credentials: Credentials):
        self.credentials = credentials
        self.steps = 0

    def initial(self) -> bytes | None:
        return None

    def respond(self, challenge: bytes) -> bytes:
        raise NotImplementedError


class Plain(Mechanism):
    name = "PLAIN"

    def initial(self) -> bytes | None:
        return plain_response(self.credentials.username, self.credentials.secret)

    def respond(self, challenge: bytes) -> bytes:
        # A server that ignores the initial response asks with an empty 334.
        return plain_response(self.credentials.username, self.credentials.secret)


class Login(Mechanism):
    name = "LOGIN"

    def respond(self, challenge: bytes) -> bytes:
        # The prompts ("Username:", "Password:") vary by server; the order does not.
        self.steps += 1
        if self.steps == 1:
            return b64(self.credentials.username.encode("utf-8"))
        return b64(self.credentials.secret.encode("utf-8"))


class CramMd5(Mechanism):
    name = "CRAM-MD5"

    def respond(self, challenge: bytes) -> bytes:
        return cram_md5_response(self.credentials.username, self.credentials.secret, challenge)


class XOAuth2(Mechanism):
    name = "XOAUTH2"

    def initial(self) -> bytes | None:
        return xoauth2_response(self.credentials.username, self.credentials.secret)

    def respond(self, challenge: bytes) -> bytes:
        # A 334 here carries a JSON error; an empty line asks for the final reply.
        return b""


MECHANISMS: dict[str, type[Mechanism]] = {m.name: m for m in (Plain, Login, CramMd5, XOAuth2)}


def choose_mechanism(
    offered: tuple[str, ...],
    configured: AuthMethod,
    *,
    tls_active: bool,
    allow_insecure: bool,
) -> str:
    """The mechanism to use, or raise a person-readable error.

    AUTO takes the strongest that both sides know. A fixed mechanism the
    server does not offer is an error rather than a silent switch.
    """
    offered_set = {m.upper() for m in offered}
    if configured is AuthMethod.AUTO:
        candidates = [m for m in _PREFERENCE if m in offered_set]
        if not candidates:
            names = ", ".join(sorted(offered_set)) or "none"
            raise AuthenticationError(
                f"The server offers no login method Mailer can use (it offers: {names}). "
                "If it needs OAuth2, set the account's authentication to xoauth2 with a "
                "token command."
            )
        choice = candidates[0]
    else:
        choice = configured.value.upper()
        if choice not in offered_set:
            names = ", ".join(sorted(offered_set)) or "none"
            raise AuthenticationError(
                f"The account is set to log in with {choice}, but the server offers only: "
                f"{names}. Change the account's authentication to one of those, or to auto."
            )
    if not tls_active and not allow_insecure:
        raise SecurityPolicyError(
            f"The connection is not encrypted, so Mailer will not send the password "
            f"({choice}) over it. Use TLS or STARTTLS for this account; allow insecure "
            "authentication only for a server on a network you trust."
        )
    return choice


def mechanism_for(name: str, credentials: Credentials) -> Mechanism:
    return MECHANISMS[name.upper()](credentials)
