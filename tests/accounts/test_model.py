"""Account validation, the settings table, and what the session is handed."""

from __future__ import annotations

import dataclasses
import enum
from typing import Any

import pytest

from mailer_gui.accounts.model import (
    ACCOUNT_FIELDS,
    FIELDS_BY_NAME,
    REQUIRED,
    Account,
    AccountError,
)
from mailer_gui.smtp.settings import AuthMethod, Security, ServerSettings


def make(**changes: Any) -> Account:
    values: dict[str, Any] = {
        "name": "work",
        "email": "ana@example.org",
        "host": "smtp.example.org",
    }
    values.update(changes)
    return Account(**values)


FINGERPRINT = "ab" * 32


def test_defaults_log_in_with_the_address_over_starttls() -> None:
    account = make()
    assert account.login == "ana@example.org"
    assert account.secret_source == "keyring"
    assert account.server_settings() == ServerSettings(
        host="smtp.example.org",
        port=587,
        security=Security.STARTTLS,
        auth=AuthMethod.AUTO,
        username="ana@example.org",
        allow_insecure_auth=False,
        tls_fingerprint=None,
        local_hostname=None,
    )


@pytest.mark.parametrize(
    ("security", "port"), [(Security.TLS, 465), (Security.STARTTLS, 587), (Security.NONE, 25)]
)
def test_unset_port_follows_the_security(security: Security, port: int) -> None:
    assert make(security=security).server_settings().port == port


def test_server_settings_carry_every_connection_setting() -> None:
    account = make(
        port=2465,
        security=Security.TLS,
        auth=AuthMethod.CRAM_MD5,
        username="ana",
        allow_insecure_auth=True,
        tls_fingerprint=FINGERPRINT.upper(),
    )
    settings = account.server_settings(local_hostname="laptop.example.org")
    assert (settings.port, settings.security, settings.auth) == (
        2465,
        Security.TLS,
        AuthMethod.CRAM_MD5,
    )
    assert settings.username == "ana"
    assert settings.allow_insecure_auth is True
    assert settings.normalized_fingerprint == FINGERPRINT
    assert settings.local_hostname == "laptop.example.org"


def test_no_login_means_no_username() -> None:
    assert make(auth=AuthMethod.NONE).server_settings().username is None


def test_fingerprint_with_colons_is_accepted() -> None:
    with_colons = ":".join(FINGERPRINT[i : i + 2] for i in range(0, 64, 2))
    assert make(tls_fingerprint=with_colons).server_settings().normalized_fingerprint == FINGERPRINT


@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        ({"name": ""}, "name", "must not be empty"),
        ({"name": "   "}, "name", "must not be empty"),
        ({"name": " work"}, "name", "spaces"),
        ({"name": "wo\nrk"}, "name", "control characters"),
        ({"name": "wo\x00rk"}, "name", "control characters"),
        ({"name": "w" * 101}, "name", "longer than 100"),
        ({"email": "ana.example.org"}, "email", "exactly one @"),
        ({"email": "ana@@example.org"}, "email", "exactly one @"),
        ({"email": "a@b@example.org"}, "email", "exactly one @"),
        ({"email": "@example.org"}, "email", "exactly one @"),
        ({"email": "ana@"}, "email", "exactly one @"),
        ({"email": "ana @example.org"}, "email", "spaces"),
        ({"display_name": "Ana\r\nBcc: all@example.org"}, "display_name", "line breaks"),
        ({"host": ""}, "host", "host name"),
        ({"host": "smtp example.org"}, "host", "host name"),
        ({"port": 0}, "port", "between 1 and 65535"),
        ({"port": 65536}, "port", "between 1 and 65535"),
        ({"port": True}, "port", "must be int"),
        ({"port": "587"}, "port", "must be int"),
        ({"security": "tls"}, "security", "Security"),
        ({"auth": "plain"}, "auth", "AuthMethod"),
        ({"username": ""}, "username", "must not be empty"),
        ({"username": "ana\r\n"}, "username", "control characters"),
        ({"allow_insecure_auth": 1}, "allow_insecure_auth", "must be bool"),
        ({"tls_fingerprint": "ab" * 31}, "tls_fingerprint", "64 hexadecimal digits"),
        ({"tls_fingerprint": "zz" * 32}, "tls_fingerprint", "64 hexadecimal digits"),
        ({"secret_source": "file"}, "secret_source", "keyring, command, none"),
        ({"secret_source": "command"}, "password_command", "no password command"),
        ({"password_command": "pass show work"}, "secret_source", "set the secret source"),
        ({"secret_source": "command", "password_command": "  "}, "password_command", "prints"),
    ],
)
def test_invalid_settings_are_refused_with_a_clear_error(
    changes: dict[str, Any], field: str, words: str
) -> None:
    with pytest.raises(AccountError, match=words) as caught:
        make(**changes)
    assert caught.value.field == field
    assert isinstance(caught.value, ValueError)


def test_unicode_names_and_addresses_are_fine() -> None:
    account = make(name="Büro", email="zoë@bücher.example", display_name="Zoë Ölund")
    assert account.login == "zoë@bücher.example"


def test_the_table_and_the_dataclass_declare_the_same_settings() -> None:
    # Identities beyond the first are a list of records, declared apart.
    attributes = {f.name: f for f in dataclasses.fields(Account) if f.name != "identities"}
    assert [spec.name for spec in ACCOUNT_FIELDS] == list(attributes)
    for spec in ACCOUNT_FIELDS:
        default = attributes[spec.name].default
        if spec.required:
            assert default is dataclasses.MISSING, spec.name
        else:
            assert default == spec.default, spec.name
            spec.validate(spec.default)  # every default is itself valid


def test_the_table_is_usable_for_a_command_line() -> None:
    flags = [spec.cli_flag for spec in ACCOUNT_FIELDS if spec.cli_flag is not None]
    assert len(flags) == len(set(flags))
    for spec in ACCOUNT_FIELDS:
        assert spec.description.strip()
        if spec.cli_flag is not None:
            assert spec.cli_flag == "--" + spec.name.replace("_", "-")
        if issubclass(spec.type, enum.Enum):
            assert spec.allowed == tuple(member.value for member in spec.type)
    assert FIELDS_BY_NAME["secret_source"].allowed == ("keyring", "command", "none")
    assert FIELDS_BY_NAME["name"].default is REQUIRED


def test_no_setting_can_hold_a_secret() -> None:
    names = {spec.name for spec in ACCOUNT_FIELDS}
    assert not {"password", "secret", "token"} & names
    assert {name for name in names if "password" in name} == {"password_command"}


@pytest.mark.parametrize(
    ("name", "text", "value"),
    [
        ("port", "465", 465),
        ("security", "tls", Security.TLS),
        ("auth", "cram-md5", AuthMethod.CRAM_MD5),
        ("allow_insecure_auth", "yes", True),
        ("allow_insecure_auth", "off", False),
        ("secret_source", "command", "command"),
        ("host", "smtp.example.org", "smtp.example.org"),
    ],
)
def test_command_line_text_is_parsed(name: str, text: str, value: object) -> None:
    assert FIELDS_BY_NAME[name].parse(text) == value


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("port", "five"),
        ("port", "0"),
        ("security", "ssl"),
        ("allow_insecure_auth", "maybe"),
        ("secret_source", "file"),
        ("tls_fingerprint", "abc"),
    ],
)
def test_bad_command_line_text_is_an_account_error(name: str, text: str) -> None:
    with pytest.raises(AccountError) as caught:
        FIELDS_BY_NAME[name].parse(text)
    assert caught.value.field == name


def test_json_round_trip() -> None:
    account = make(
        display_name="Ana",
        security=Security.TLS,
        auth=AuthMethod.LOGIN,
        secret_source="command",
        password_command="pass show mail/work",
        tls_fingerprint=FINGERPRINT,
    )
    raw = account.to_json()
    assert raw["security"] == "tls"
    assert raw["auth"] == "login"
    assert list(raw) == [spec.name for spec in ACCOUNT_FIELDS]
    assert Account.from_json(raw) == account


def test_direct_account_needs_no_server() -> None:
    account = Account.from_json({"name": "mx", "email": "ana@example.org", "kind": "direct"})
    assert account.host is None and account.effective_port == 25
    with pytest.raises(AccountError, match="delivers directly"):
        account.server_settings()


def test_json_may_leave_out_optional_settings_and_carry_unknown_ones() -> None:
    account = Account.from_json(
        {"name": "work", "email": "ana@example.org", "host": "smtp.example.org", "color": "teal"}
    )
    assert account == make()


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        ({"email": "ana@example.org", "host": "h"}, "missing setting"),
        ({"name": "work", "email": "ana@example.org"}, "needs a server"),
        ({"name": "work", "email": "ana@example.org", "host": None}, "needs a server"),
        ({"name": "work", "email": "ana@example.org", "host": "h", "port": "25"}, "must be int"),
        ({"name": "work", "email": "ana@example.org", "host": "h", "security": "ssl"}, "one of"),
        ({"name": "work", "email": "ana@example.org", "host": "h", "auth": ["plain"]}, "one of"),
    ],
)
def test_bad_json_is_an_account_error(raw: dict[str, Any], words: str) -> None:
    with pytest.raises(AccountError, match=words):
        Account.from_json(raw)


def test_accounts_are_immutable_and_comparable() -> None:
    account = make()
    with pytest.raises(dataclasses.FrozenInstanceError):
        account.port = 25  # type: ignore[misc]
    assert make() == account
    assert hash(make()) == hash(account)


def test_identities_round_trip_through_json() -> None:
    from mailer_gui.accounts.model import Identity

    account = Account(
        name="work",
        email="ana@example.org",
        host="smtp.example.org",
        signature="-- \nAna",
        identities=(Identity("sales@example.org", "Sales", reply_to="crm@example.org"),),
    )
    raw = account.to_json()
    assert raw["identities"] == [
        {"email": "sales@example.org", "display_name": "Sales", "reply_to": "crm@example.org"}
    ]
    again = Account.from_json(raw)
    assert again == account
    assert [str(i) for i in again.all_identities] == [
        "ana@example.org",
        "Sales <sales@example.org>",
    ]
    with pytest.raises(AccountError, match="identity"):
        Account.from_json({**raw, "identities": [{"display_name": "no address"}]})
