"""The command-line front: `mailer-gui send`, `mailer-gui accounts ...`.

The same core as the GUI (accounts, message, smtp), driven from argparse.
Every expected failure ends as one message on stderr (what happened, the
server's words, what to do) and a sysexits code; never a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn, TextIO

from mailer_gui import __version__
from mailer_gui.accounts import secrets
from mailer_gui.accounts.model import ACCOUNT_FIELDS, Account, AccountError
from mailer_gui.accounts.store import AccountStore, AccountStoreError
from mailer_gui.message.addresses import AddressError, MailAddress, parse_address_list
from mailer_gui.message.build import (
    BuiltMessage,
    DraftError,
    build_from_eml,
    build_message,
    parse_header_option,
)
from mailer_gui.message.draft import Draft, InlineImage, Priority
from mailer_gui.message.eml import EmlError, save_eml
from mailer_gui.paths import AppPaths, ensure_private_dir, resolve_paths
from mailer_gui.smtp.auth import Credentials
from mailer_gui.smtp.errors import (
    AuthenticationError,
    Cancelled,
    MessageRefused,
    SecurityPolicyError,
    SmtpError,
    TlsError,
)
from mailer_gui.smtp.session import (
    Envelope,
    MessageResult,
    RecipientResult,
    RecipientStatus,
    Session,
)
from mailer_gui.smtp.settings import AuthMethod
from mailer_gui.smtp.transcript import Transcript, TranscriptRecord

# sysexits.h
EX_OK = 0
EX_USAGE = 64
EX_DATAERR = 65
EX_UNAVAILABLE = 69
EX_TEMPFAIL = 75
EX_NOPERM = 77
EX_CONFIG = 78

COMMANDS = ("send", "accounts")


class CliError(Exception):
    """An expected failure: the message for the person, and the exit code."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class _Parser(argparse.ArgumentParser):
    """argparse that exits with EX_USAGE (64) instead of 2."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EX_USAGE, f"{self.prog}: {message}\n")


# ------------------------------------------------------------------ parsing


def _add_account_field_options(parser: argparse.ArgumentParser) -> None:
    """`accounts add` options, read from the one declaration of the settings."""
    for spec in ACCOUNT_FIELDS:
        if spec.cli_flag is None:
            continue
        if spec.type is bool:
            parser.add_argument(
                spec.cli_flag, dest=spec.name, action="store_true", help=spec.description
            )
            continue
        required = spec.required
        parser.add_argument(
            spec.cli_flag,
            dest=spec.name,
            required=required,
            choices=spec.allowed,
            metavar=None if spec.allowed else spec.name.upper(),
            help=spec.description,
        )  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="mailer-gui",
        description="Mailer: write mail and deliver it over SMTP, showing what the server said.",
    )
    parser.add_argument("--version", action="version", version=f"mailer-gui {__version__}")
    parser.add_argument(
        "--home",
        metavar="DIR",
        help="keep config, data and the outbox under DIR (also MAILER_GUI_HOME)",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    send = commands.add_parser("send", help="send a message now")
    send.add_argument("--account", metavar="NAME", help="the sending account (default: default)")
    send.add_argument(
        "--to",
        action="append",
        default=[],
        metavar="ADDR",
        help="recipient; repeat or separate with commas",
    )
    send.add_argument("--cc", action="append", default=[], metavar="ADDR")
    send.add_argument("--bcc", action="append", default=[], metavar="ADDR")
    send.add_argument("--reply-to", action="append", default=[], metavar="ADDR")
    send.add_argument("--subject", metavar="TEXT", help="required unless --eml is given")
    body = send.add_mutually_exclusive_group()
    body.add_argument("--body", metavar="TEXT")
    body.add_argument("--body-file", metavar="PATH", help="read the body from PATH, or - for stdin")
    body.add_argument(
        "--eml",
        metavar="FILE",
        help="send a prepared RFC 5322 message as it is; recipients from its To/Cc/Bcc "
        "unless given (its Bcc header is removed)",
    )
    send.add_argument(
        "--format",
        choices=("markdown", "plain"),
        default="markdown",
        help="markdown (default) sends text and HTML; plain sends text only",
    )
    send.add_argument("--attach", action="append", default=[], metavar="PATH")
    send.add_argument(
        "--inline",
        action="append",
        default=[],
        metavar="PATH",
        help="an image shown in the body: refer to it by file name, ![chart](chart.png)",
    )
    send.add_argument("--priority", choices=[p.value for p in Priority], default="normal")
    send.add_argument(
        "--save-eml",
        metavar="PATH",
        help="also save the exact bytes sent as an .eml file",
    )
    send.add_argument(
        "--notify",
        metavar="WHEN",
        help="ask for delivery status notifications (DSN): a comma list of success, "
        "failure, delay, or never",
    )
    send.add_argument("--header", action="append", default=[], metavar="'Name: value'")
    send.add_argument(
        "-v",
        "--transcript",
        action="store_true",
        help="print the SMTP conversation to stderr as it happens",
    )
    send.add_argument("--json", action="store_true", help="print the result as JSON")

    accounts = commands.add_parser("accounts", help="add, list, test and remove accounts")
    actions = accounts.add_subparsers(dest="action", metavar="ACTION", parser_class=_Parser)
    actions.required = True
    add = actions.add_parser("add", help="add an account; the password goes to the keyring")
    add.add_argument("name", metavar="NAME")
    _add_account_field_options(add)
    add.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from standard input (one line)",
    )
    add.add_argument("--default", action="store_true", help="make it the default account")
    listing = actions.add_parser("list", help="list the accounts")
    listing.add_argument("--json", action="store_true")
    remove = actions.add_parser("remove", help="remove an account and its keyring entry")
    remove.add_argument("name", metavar="NAME")
    test = actions.add_parser("test", help="connect, start TLS, log in and quit")
    test.add_argument("name", metavar="NAME")
    test.add_argument("-v", "--transcript", action="store_true")
    return parser  # fmt: skip


# --------------------------------------------------------------- accounts


def _store(paths: AppPaths) -> AccountStore:
    return AccountStore(paths.accounts_file)


def _account(paths: AppPaths, name: str | None) -> Account:
    store = _store(paths)
    try:
        if name is not None:
            return store.get(name)
        account = store.default()
    except AccountStoreError as exc:
        raise CliError(str(exc), EX_CONFIG) from exc
    if account is None:
        raise CliError(
            "No account is set up. Add one with: mailer-gui accounts add NAME --email ADDR "
            "--host HOST --password-stdin",
            EX_CONFIG,
        )
    return account


def _read_password_line(stream: TextIO) -> str:
    line = stream.readline()
    return line[:-1] if line.endswith("\n") else line


def cmd_accounts_add(args: argparse.Namespace, paths: AppPaths) -> int:
    values: dict[str, Any] = {"name": args.name}
    try:
        for spec in ACCOUNT_FIELDS:
            if spec.cli_flag is None:
                continue
            raw = getattr(args, spec.name)
            if spec.type is bool:
                if raw:
                    values[spec.name] = True
            elif raw is not None:
                values[spec.name] = spec.parse(raw)
        if values.get("password_command") and "secret_source" not in values:
            values["secret_source"] = "command"
        account = Account(**values)
    except AccountError as exc:
        raise CliError(f"The account settings are not valid: {exc}", EX_USAGE) from exc

    store = _store(paths)
    try:
        existing = {a.name.lower() for a in store.load()}
    except AccountStoreError as exc:
        raise CliError(str(exc), EX_CONFIG) from exc
    if account.name.lower() in existing:
        raise CliError(
            f"An account named {account.name!r} already exists. Remove it first "
            f"(mailer-gui accounts remove {account.name}) or choose another name.",
            EX_USAGE,
        )

    password: str | None = None
    if args.password_stdin:
        password = _read_password_line(sys.stdin)
        if not password:
            raise CliError("No password arrived on standard input.", EX_USAGE)
    elif (
        account.secret_source == "keyring"
        and account.auth is not AuthMethod.NONE
        and sys.stdin.isatty()
    ):
        password = getpass.getpass(f"Password for {account.login}: ") or None
    if password is not None:
        if account.secret_source != "keyring":
            raise CliError(
                "--password-stdin stores the password in the keyring, but this account "
                f"takes it from {account.secret_source}.",
                EX_USAGE,
            )
        try:
            secrets.store_password(account.name, password)
        except secrets.SecretError as exc:
            raise CliError(str(exc), EX_CONFIG) from exc
    try:
        store.add(account, make_default=args.default)
    except AccountStoreError as exc:
        if password is not None:
            with contextlib.suppress(secrets.SecretError):
                secrets.delete_password(account.name)
        raise CliError(str(exc), EX_CONFIG) from exc
    where = "in the keyring" if password is not None else "not stored"
    print(
        f"Added account {account.name}: {account.email} via {account.host} port "
        f"{account.effective_port} ({account.security.value}); password {where}."
    )
    return EX_OK


def cmd_accounts_list(args: argparse.Namespace, paths: AppPaths) -> int:
    store = _store(paths)
    try:
        accounts = store.load()
        default = store.default()
    except AccountStoreError as exc:
        raise CliError(str(exc), EX_CONFIG) from exc
    default_name = default.name if default else None
    if args.json:
        rows = [dict(a.to_json(), default=a.name == default_name) for a in accounts]
        print(json.dumps(rows, indent=2))
        return EX_OK
    if not accounts:
        print("No accounts. Add one with: mailer-gui accounts add NAME --email ADDR --host HOST")
        return EX_OK
    for account in accounts:
        mark = "*" if account.name == default_name else " "
        print(
            f"{mark} {account.name}\t{account.email}\t{account.host}:{account.effective_port}"
            f"\t{account.security.value}\tauth {account.auth.value}"
        )
    return EX_OK


def cmd_accounts_remove(args: argparse.Namespace, paths: AppPaths) -> int:
    store = _store(paths)
    try:
        account = store.remove(args.name)
    except AccountStoreError as exc:
        raise CliError(str(exc), EX_CONFIG) from exc
    note = ""
    try:
        secrets.delete_password(account.name)
    except secrets.SecretError as exc:
        note = f" (its keyring entry could not be removed: {exc})"
    print(f"Removed account {account.name}{note}.")
    return EX_OK


def _credentials_for(account: Account) -> Callable[[], Credentials] | None:
    if account.auth is AuthMethod.NONE:
        return None

    def provide() -> Credentials:
        try:
            password = secrets.get_password(account)
        except secrets.PasswordMissing:
            if not sys.stdin.isatty():
                raise
            password = getpass.getpass(f"Password for {account.login} ({account.host}): ")
        return Credentials(account.login, password)

    if account.secret_source == "none" and not sys.stdin.isatty():
        return None
    return provide


def _transcript(verbose: bool) -> Transcript:
    def show(record: TranscriptRecord) -> None:
        print(record.render(), file=sys.stderr, flush=True)

    return Transcript(show if verbose else None)


def _open_session(account: Account, transcript: Transcript) -> Session:
    session = Session(
        account.server_settings(), transcript=transcript, credentials=_credentials_for(account)
    )
    session.open()
    return session


def cmd_accounts_test(args: argparse.Namespace, paths: AppPaths) -> int:
    account = _account(paths, args.name)
    transcript = _transcript(args.transcript)
    session = _open_session(account, transcript)
    try:
        tls = "TLS" if session.tls_active else "no encryption"
        login = "logged in" if session.authenticated else "no login"
        limit = session.size_limit
        size = f", messages up to {limit / 1e6:.1f} MB" if limit else ""
    finally:
        session.close()
    print(
        f"OK: {account.name} reached {account.host} port {account.effective_port} "
        f"({tls}, {login}{size})."
    )
    return EX_OK


# --------------------------------------------------------------------- send


def _addresses(values: list[str], field: str) -> tuple[MailAddress, ...]:
    try:
        return tuple(parse_address_list(values))
    except AddressError as exc:
        raise CliError(f"The {field} address is not valid: {exc}.", EX_DATAERR) from exc


def _read_body(args: argparse.Namespace) -> str:
    if args.body is not None:
        return str(args.body)
    if args.body_file == "-":
        return sys.stdin.read()
    try:
        return Path(args.body_file).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CliError(
            f"The body file {args.body_file} cannot be read as UTF-8 text ({exc}).", EX_DATAERR
        ) from exc


def _notify(text: str | None) -> tuple[str, ...]:
    if not text:
        return ()
    values = tuple(v.strip().upper() for v in text.split(",") if v.strip())
    allowed = {"SUCCESS", "FAILURE", "DELAY", "NEVER"}
    if not values or not set(values) <= allowed or ("NEVER" in values and len(values) > 1):
        raise CliError(
            f"--notify {text!r}: use a comma list of success, failure, delay, or never alone.",
            EX_USAGE,
        )
    return values


def _sender_text(account: Account) -> str:
    if account.display_name:
        return f"{account.display_name} <{account.email}>"
    return account.email


def _build(args: argparse.Namespace, account: Account, spool: Path) -> BuiltMessage:
    """The message to send: built from the options, or a prepared .eml file."""
    try:
        if args.eml is None:
            return build_message(_draft(args, account), spool_dir=spool)
        sender = _addresses([_sender_text(account)], "sender")[0]
        recipients = _addresses([*args.to, *args.cc, *args.bcc], "recipient")
        smtputf8 = any(a.needs_smtputf8 for a in (sender, *recipients))
        return build_from_eml(
            Path(args.eml),
            envelope_from=sender.envelope(smtputf8=smtputf8),
            recipients=tuple(a.envelope(smtputf8=smtputf8) for a in recipients),
            sender_domain=sender.ascii_domain,
            spool_dir=spool,
        )
    except (DraftError, AddressError) as exc:
        raise CliError(str(exc), EX_DATAERR) from exc


def _draft(args: argparse.Namespace, account: Account) -> Draft:
    sender = _addresses([_sender_text(account)], "sender")[0]
    try:
        headers = tuple(parse_header_option(h) for h in args.header)
    except DraftError as exc:
        raise CliError(str(exc), EX_DATAERR) from exc
    if args.subject is None or (args.body is None and args.body_file is None):
        raise CliError("send needs --subject and --body or --body-file (or --eml FILE).", EX_USAGE)
    draft = Draft(
        sender=sender,
        to=_addresses(args.to, "To"),
        cc=_addresses(args.cc, "Cc"),
        bcc=_addresses(args.bcc, "Bcc"),
        reply_to=_addresses(args.reply_to, "Reply-To"),
        subject=args.subject,
        body=_read_body(args),
        body_format=args.format,
        attachments=tuple(Path(a) for a in args.attach),
        inline_images=tuple(InlineImage(Path(p).name, path=Path(p)) for p in args.inline),
        extra_headers=headers,
        priority=Priority(args.priority),
        dsn_notify=_notify(args.notify),
    )
    if not draft.recipients:
        raise CliError("No recipients: give at least one --to, --cc or --bcc.", EX_USAGE)
    return draft


def _result_code(result: MessageResult) -> int:
    outcome = result.outcome
    if outcome == "sent":
        return EX_OK
    if outcome == "uncertain" or result.with_status(RecipientStatus.DEFERRED):
        return EX_TEMPFAIL
    return EX_UNAVAILABLE


def _recipient_json(r: RecipientResult) -> dict[str, Any]:
    return {
        "address": r.address,
        "status": r.status.value,
        "code": r.reply.code if r.reply else None,
        "enhanced": r.reply.enhanced if r.reply else None,
        "text": r.text,
    }


def _print_result(message_id: str, result: MessageResult, as_json: bool) -> None:
    if as_json:
        document = {
            "message_id": message_id,
            "outcome": result.outcome,
            "recipients": [_recipient_json(r) for r in result.recipients],
        }
        if result.error is not None:
            document["error"] = result.error.message
        print(json.dumps(document, indent=2, ensure_ascii=False))
        return
    for r in result.recipients:
        print(f"{r.status.value:9} {r.address}: {r.text}")
    if result.uncertain:
        print(
            "The connection broke after the whole message was sent and before the server "
            "confirmed it: it may have been delivered. Check with a recipient before "
            "sending again.",
            file=sys.stderr,
        )
    elif result.error is not None:
        print(result.error.message, file=sys.stderr)
    elif result.outcome != "sent" and result.reply is not None:
        print(f"The server said: {result.reply}", file=sys.stderr)


def cmd_send(args: argparse.Namespace, paths: AppPaths) -> int:
    account = _account(paths, args.account)
    built = _build(args, account, ensure_private_dir(paths.spool_dir))
    try:
        if args.save_eml:
            try:
                save_eml(built.path, Path(args.save_eml))
            except EmlError as exc:
                raise CliError(f"{exc} Nothing was sent.", EX_DATAERR) from exc
        envelope = Envelope(
            built.envelope_from,
            built.recipients,
            smtputf8=built.smtputf8,
            eight_bit=built.eight_bit,
            dsn_notify=built.dsn_notify,
        )
        transcript = _transcript(args.transcript)
        try:
            session = _open_session(account, transcript)
        except SmtpError as exc:
            raise _smtp_cli_error(exc, built.message_id, built.recipients, args.json) from exc
        try:
            with built.path.open("rb") as body:
                result = session.send_message(envelope, body, built.size)
        except SmtpError as exc:
            raise _smtp_cli_error(exc, built.message_id, built.recipients, args.json) from exc
        finally:
            session.close()
    finally:
        built.path.unlink(missing_ok=True)
    _print_result(built.message_id, result, args.json)
    return _result_code(result)


def _smtp_cli_error(
    exc: SmtpError, message_id: str, recipients: Sequence[str], as_json: bool
) -> CliError:
    code = _error_code(exc)
    if as_json:
        status = RecipientStatus.DEFERRED if exc.transient else RecipientStatus.REJECTED
        reply = exc.reply
        result = MessageResult(
            tuple(RecipientResult(a, status, reply, exc.message) for a in recipients), error=exc
        )
        _print_result(message_id, result, True)
    return CliError(_describe_error(exc), code)


def _describe_error(exc: SmtpError) -> str:
    """The error for a person; a certificate problem also shows the certificate."""
    text = exc.message
    if isinstance(exc, TlsError) and exc.certificate is not None and exc.unverified:
        cert = exc.certificate
        text += (
            f"\nThe server presented: subject {cert.subject}; issuer {cert.issuer}; "
            f"valid until {cert.not_after}; SHA-256 {cert.sha256_colons}."
            "\nOnly if you have checked that fingerprint with the server's owner, trust it "
            f"with --tls-fingerprint {cert.sha256} in the account."
        )
    return text


def _error_code(exc: SmtpError) -> int:
    if isinstance(exc, AuthenticationError):
        return EX_TEMPFAIL if exc.transient else EX_NOPERM
    if isinstance(exc, SecurityPolicyError):
        return EX_CONFIG
    if isinstance(exc, TlsError | MessageRefused):
        return EX_UNAVAILABLE
    return EX_TEMPFAIL if exc.transient else EX_UNAVAILABLE


# --------------------------------------------------------------------- main

_HANDLERS: dict[tuple[str, str | None], Callable[[argparse.Namespace, AppPaths], int]] = {
    ("send", None): cmd_send,
    ("accounts", "add"): cmd_accounts_add,
    ("accounts", "list"): cmd_accounts_list,
    ("accounts", "remove"): cmd_accounts_remove,
    ("accounts", "test"): cmd_accounts_test,
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EX_USAGE
    handler = _HANDLERS[(args.command, getattr(args, "action", None))]
    paths = resolve_paths(args.home)
    try:
        return handler(args, paths)
    except CliError as exc:
        print(f"mailer-gui: {exc.message}", file=sys.stderr)
        return exc.code
    except secrets.SecretError as exc:
        print(f"mailer-gui: {exc}", file=sys.stderr)
        return EX_CONFIG
    except Cancelled:
        print("mailer-gui: cancelled.", file=sys.stderr)
        return EX_TEMPFAIL
    except SmtpError as exc:
        print(f"mailer-gui: {_describe_error(exc)}", file=sys.stderr)
        return _error_code(exc)
    except KeyboardInterrupt:
        print("mailer-gui: interrupted.", file=sys.stderr)
        return 130
