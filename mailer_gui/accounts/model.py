"""Accounts: who sends, through which server, and where the password comes from.

Every account setting is declared once, in `ACCOUNT_FIELDS`; the JSON store
(accounts.store) and the command line (`accounts add`) are built from that
table. An account never holds a secret: `secret_source` only says where the
password is found (accounts.secrets reads it). The session gets a
`ServerSettings`, never an Account.
"""

from __future__ import annotations

import enum
import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal, get_args

from mailer_gui.smtp.settings import AuthMethod, Security, ServerSettings

SecretSource = Literal["keyring", "command", "none"]
SECRET_SOURCES: Final[tuple[str, ...]] = get_args(SecretSource)
AccountKind = Literal["relay", "direct"]
ACCOUNT_KINDS: Final[tuple[str, ...]] = get_args(AccountKind)

NAME_MAX_LENGTH = 100
_FINGERPRINT = re.compile(r"[0-9a-fA-F]{64}")


class AccountError(ValueError):
    """An account setting is invalid; the message says which and why."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class _Required(enum.Enum):
    REQUIRED = "required"

    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Final = _Required.REQUIRED
"""The `FieldSpec.default` of a setting that has no default."""


# --- checks of one value (types are checked before these run) ---------------


def _has_control(text: str) -> bool:
    # Cc covers CR, LF, TAB, NUL and DEL: none belongs in a name, a header or an AUTH line.
    return any(unicodedata.category(char) == "Cc" for char in text)


def _check_name(value: Any) -> None:
    if not value.strip():
        raise AccountError("The account name must not be empty.", field="name")
    if value != value.strip():
        raise AccountError(
            f"The account name {value!r} must not start or end with spaces.", field="name"
        )
    if _has_control(value):
        raise AccountError(
            f"The account name {value!r} must not contain control characters.", field="name"
        )
    if len(value) > NAME_MAX_LENGTH:
        raise AccountError(
            f"The account name is longer than {NAME_MAX_LENGTH} characters.", field="name"
        )


def _check_email(value: Any) -> None:
    local, _, domain = value.partition("@")
    if value.count("@") != 1 or not local or not domain:
        raise AccountError(
            f"The address {value!r} is not an email address: it needs exactly one @ "
            "with a name before it and a domain after it (like ana@example.org).",
            field="email",
        )
    if _has_control(value) or any(char.isspace() for char in value):
        raise AccountError(
            f"The address {value!r} must not contain spaces or control characters.",
            field="email",
        )


def _check_display_name(value: Any) -> None:
    if _has_control(value):
        # CR/LF here would let a display name inject mail headers.
        raise AccountError(
            "The display name must not contain line breaks or control characters.",
            field="display_name",
        )


def _check_host(value: Any) -> None:
    if not value or _has_control(value) or any(char.isspace() for char in value):
        raise AccountError(
            f"The server name {value!r} must be a host name or an IP address, without spaces.",
            field="host",
        )


def _check_connection_limit(value: Any) -> None:
    if not 1 <= value <= 1000:
        raise AccountError(
            f"The connection limit must be 1 to 1000 messages, not {value}.",
            field="connection_limit",
        )


def _check_port(value: Any) -> None:
    if not 1 <= value <= 65535:
        raise AccountError(
            f"The port {value} is not between 1 and 65535 (sending through a server uses 587 "
            "with STARTTLS or 465 with TLS; delivering directly, mail servers listen on 25).",
            field="port",
        )


def _check_username(value: Any) -> None:
    if not value or _has_control(value):
        raise AccountError(
            "The user name must not be empty or contain control characters "
            "(leave it unset to log in with the email address).",
            field="username",
        )


def _check_fingerprint(value: Any) -> None:
    if not _FINGERPRINT.fullmatch(value.replace(":", "")):
        raise AccountError(
            f"The certificate fingerprint {value!r} is not a SHA-256 fingerprint: "
            "it must be 64 hexadecimal digits (colons between pairs are allowed).",
            field="tls_fingerprint",
        )


def _check_password_command(value: Any) -> None:
    if not value.strip() or "\x00" in value:
        raise AccountError(
            "The password command must be a shell command that prints the password.",
            field="password_command",
        )


# --- the table ----------------------------------------------------------------


@dataclass(frozen=True)
class FieldSpec:
    """One account setting: its name, type, default, meaning and CLI flag.

    `type` is str, int, bool or an Enum class. A `default` of None means the
    setting is optional (None = unset); REQUIRED means there is no default.
    `choices` lists the allowed text values (an Enum's values, or given).
    """

    name: str
    type: type[Any]
    default: Any
    description: str
    cli_flag: str | None
    choices: tuple[str, ...] | None = None
    check: Callable[[Any], None] | None = None

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    @property
    def nullable(self) -> bool:
        return self.default is None

    @property
    def allowed(self) -> tuple[str, ...] | None:
        """The text values allowed, for argparse `choices` and messages."""
        if self.choices is not None:
            return self.choices
        if issubclass(self.type, enum.Enum):
            return tuple(str(member.value) for member in self.type)
        return None

    def parse(self, text: str) -> Any:
        """A valid value from command-line text ("587" -> 587, "tls" -> Security.TLS)."""
        if self.type is bool:
            lowered = text.strip().lower()
            if lowered in {"1", "true", "yes", "on"}:
                return True
            if lowered in {"0", "false", "no", "off"}:
                return False
            raise AccountError(f"{self.name}: {text!r} is not yes or no.", field=self.name)
        if self.type is int:
            try:
                number = int(text)
            except ValueError:
                raise AccountError(
                    f"{self.name}: {text!r} is not a whole number.", field=self.name
                ) from None
            return self.from_json(number)  # its own check says what is wrong with it
        return self.from_json(text)

    def from_json(self, raw: Any) -> Any:
        """A valid value from its JSON form (an Enum from its value); AccountError if not."""
        if raw is not None and issubclass(self.type, enum.Enum):
            try:
                raw = self.type(raw)
            except (ValueError, TypeError):
                raise AccountError(
                    f"{self.name}: {raw!r} is not one of {', '.join(self.allowed or ())}.",
                    field=self.name,
                ) from None
        self.validate(raw)
        return raw

    def validate(self, value: Any) -> None:
        """Raise AccountError unless `value` is allowed for this setting."""
        if value is None:
            if not self.nullable:
                raise AccountError(f"{self.name} must be set.", field=self.name)
            return
        # bool is an int in Python; a port of True is still wrong.
        if not isinstance(value, self.type) or (self.type is not bool and isinstance(value, bool)):
            raise AccountError(
                f"{self.name} must be {self.type.__name__}, not {type(value).__name__} "
                f"({value!r}).",
                field=self.name,
            )
        if self.choices is not None and value not in self.choices:
            raise AccountError(
                f"{self.name}: {value!r} is not one of {', '.join(self.choices)}.",
                field=self.name,
            )
        if self.check is not None:
            self.check(value)

    def to_json(self, value: Any) -> Any:
        return value.value if isinstance(value, enum.Enum) else value


ACCOUNT_FIELDS: Final[tuple[FieldSpec, ...]] = (
    FieldSpec(
        "name", str, REQUIRED,
        "A short name for the account, unique; also the key of its password in the keyring.",
        None, check=_check_name,
    ),
    FieldSpec(
        "email", str, REQUIRED, "The sender address (envelope From and the From header).",
        "--email", check=_check_email,
    ),
    FieldSpec(
        "display_name", str, None, "The name shown next to the address in From.",
        "--display-name", check=_check_display_name,
    ),
    FieldSpec(
        "kind", str, "relay",
        "relay: send through the provider's server (the usual case); direct: deliver "
        "straight to each recipient's mail servers (MX), with no relay.",
        "--kind", choices=ACCOUNT_KINDS,
    ),
    FieldSpec(
        "host", str, None, "The outgoing (SMTP submission) server; required for relay.",
        "--host", check=_check_host,
    ),
    FieldSpec(
        "port", int, None,
        "The server port; unset means the usual one for the security: "
        "465 for tls, 587 for starttls, 25 for none.",
        "--port", check=_check_port,
    ),
    FieldSpec(
        "security", Security, Security.STARTTLS,
        "How the connection is protected: tls (from the start), starttls (required), none.",
        "--security",
    ),
    FieldSpec(
        "auth", AuthMethod, AuthMethod.AUTO,
        "How to log in; auto picks the strongest method both sides offer.", "--auth",
    ),
    FieldSpec(
        "username", str, None, "The login name, when it is not the email address.",
        "--username", check=_check_username,
    ),
    FieldSpec(
        "allow_insecure_auth", bool, False,
        "Allow sending the password over a connection without TLS (test servers only).",
        "--allow-insecure-auth",
    ),
    FieldSpec(
        "tls_fingerprint", str, None,
        "SHA-256 fingerprint of a self-signed server certificate you chose to trust.",
        "--tls-fingerprint", check=_check_fingerprint,
    ),
    FieldSpec(
        "reply_to", str, None, "Where replies should go, when not to the email address.",
        "--reply-to", check=_check_email,
    ),
    FieldSpec(
        "signature", str, None, "Text added below new messages from this address.",
        "--signature",
    ),
    FieldSpec(
        "connection_limit", int, 50,
        "How many messages one connection carries before Mailer reconnects "
        "(some servers allow fewer).",
        "--connection-limit", check=_check_connection_limit,
    ),
    FieldSpec(
        "secret_source", str, "keyring",
        "Where the password comes from: keyring, command (--password-command), "
        "or none (asked when sending, or no login).",
        "--secret-source", choices=SECRET_SOURCES,
    ),
    FieldSpec(
        "password_command", str, None,
        "A shell command that prints the password (secret_source command), "
        "like 'pass show mail/work'.",
        "--password-command", check=_check_password_command,
    ),
)  # fmt: skip

FIELDS_BY_NAME: Final[Mapping[str, FieldSpec]] = {spec.name: spec for spec in ACCOUNT_FIELDS}


@dataclass(frozen=True, kw_only=True)
class Account:
    """A sending account. Construction validates it (raises AccountError).

    The attributes and their defaults mirror ACCOUNT_FIELDS (a test holds them
    together); the table is what readers of settings should iterate.
    """

    name: str
    email: str
    display_name: str | None = None
    kind: AccountKind = "relay"
    host: str | None = None
    port: int | None = None
    security: Security = Security.STARTTLS
    auth: AuthMethod = AuthMethod.AUTO
    username: str | None = None
    allow_insecure_auth: bool = False
    tls_fingerprint: str | None = None
    reply_to: str | None = None
    signature: str | None = None
    connection_limit: int = 50
    secret_source: SecretSource = "keyring"
    password_command: str | None = None
    # Further addresses this account sends as (the first identity is
    # email/display_name/reply_to/signature above).
    identities: tuple[Identity, ...] = ()

    def __post_init__(self) -> None:
        validate_account(self)

    @property
    def all_identities(self) -> tuple[Identity, ...]:
        """Every address this account sends as, the account's own first."""
        own = Identity(self.email, self.display_name, self.reply_to, self.signature)
        return (own, *self.identities)

    @property
    def effective_port(self) -> int:
        """`port`, or the usual one: by security for relay, 25 for direct delivery."""
        if self.port is not None:
            return self.port
        return 25 if self.kind == "direct" else self.security.default_port

    @property
    def login(self) -> str:
        """The name to log in with: `username`, or the email address when unset."""
        return self.username if self.username is not None else self.email

    def server_settings(self, local_hostname: str | None = None) -> ServerSettings:
        """What the SMTP session needs; the password is fetched separately (secrets)."""
        if self.host is None:
            raise AccountError(
                f"The account {self.name!r} delivers directly and has no server.", field="host"
            )
        return ServerSettings(
            host=self.host,
            port=self.effective_port,
            security=self.security,
            auth=self.auth,
            username=None if self.auth is AuthMethod.NONE else self.login,
            allow_insecure_auth=self.allow_insecure_auth,
            tls_fingerprint=self.tls_fingerprint,
            local_hostname=local_hostname,
        )

    def to_json(self) -> dict[str, Any]:
        """The JSON object of this account, in ACCOUNT_FIELDS order."""
        document = {spec.name: spec.to_json(getattr(self, spec.name)) for spec in ACCOUNT_FIELDS}
        if self.identities:
            document["identities"] = [identity.to_json() for identity in self.identities]
        return document

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Account:
        """An account from its JSON object; unknown keys are ignored (the store keeps them)."""
        missing = [spec.name for spec in ACCOUNT_FIELDS if spec.required and spec.name not in raw]
        if missing:
            raise AccountError(f"missing setting(s): {', '.join(missing)}.", field=missing[0])
        values: dict[str, Any] = {
            spec.name: spec.from_json(raw[spec.name]) for spec in ACCOUNT_FIELDS if spec.name in raw
        }
        identities = raw.get("identities", [])
        if not isinstance(identities, list):
            raise AccountError("identities must be a list.", field="identities")
        values["identities"] = tuple(Identity.from_json(item) for item in identities)
        return cls(**values)


@dataclass(frozen=True)
class Identity:
    """An address to send as: shown in the composer's From picker."""

    email: str
    display_name: str | None = None
    reply_to: str | None = None
    signature: str | None = None

    def __post_init__(self) -> None:
        _check_email(self.email)
        if self.display_name is not None:
            _check_display_name(self.display_name)
        if self.reply_to is not None:
            _check_email(self.reply_to)

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if v is not None}

    @classmethod
    def from_json(cls, raw: Any) -> Identity:
        if not isinstance(raw, Mapping) or not isinstance(raw.get("email"), str):
            raise AccountError("each identity needs an email address.", field="identities")
        texts: dict[str, str | None] = {}
        for key in ("display_name", "reply_to", "signature"):
            value = raw.get(key)
            if value is not None and not isinstance(value, str):
                raise AccountError(f"identity {key} must be text.", field="identities")
            texts[key] = value
        return cls(raw["email"], texts["display_name"], texts["reply_to"], texts["signature"])

    def __str__(self) -> str:
        return f"{self.display_name} <{self.email}>" if self.display_name else self.email


def validate_account(account: Account) -> None:
    """Raise AccountError for the first invalid setting of `account`."""
    for spec in ACCOUNT_FIELDS:
        spec.validate(getattr(account, spec.name))
    if account.kind == "relay" and account.host is None:
        raise AccountError(
            f"The account {account.name!r} needs a server (--host) to relay through; "
            "use --kind direct to deliver to the recipients' mail servers instead.",
            field="host",
        )
    if account.secret_source == "command" and account.password_command is None:
        raise AccountError(
            f"The account {account.name!r} takes its password from a command, "
            "but no password command is set.",
            field="password_command",
        )
    if account.secret_source != "command" and account.password_command is not None:
        raise AccountError(
            f"The account {account.name!r} has a password command, but its secret source is "
            f"{account.secret_source!r}; set the secret source to 'command' to use it.",
            field="secret_source",
        )
