"""The command-line front: `mailer-gui send`, `mailer-gui accounts ...`.

The same core as the GUI (accounts, message, smtp), driven from argparse.
Every expected failure ends as one message on stderr (what happened, the
server's words, what to do) and a sysexits code; never a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import errno
import functools
import getpass
import json
import os
import re
import sys
import textwrap
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, NoReturn, TextIO

from mailer_gui import __version__
from mailer_gui.accounts import secrets
from mailer_gui.accounts.discover import Candidate, DiscoveryResult, ProgressEvent, discover
from mailer_gui.accounts.model import ACCOUNT_FIELDS, Account, AccountError, Identity
from mailer_gui.accounts.store import AccountStore, AccountStoreError
from mailer_gui.message.addresses import (
    AddressError,
    MailAddress,
    parse_address,
    parse_address_list,
    shown_address,
)
from mailer_gui.message.build import (
    BuiltMessage,
    DraftError,
    build_from_eml,
    build_message,
    parse_header_option,
)
from mailer_gui.message.draft import Draft, InlineImage, Priority
from mailer_gui.message.eml import EmlError, save_eml
from mailer_gui.message.inspect import recipient_explanation
from mailer_gui.outbox.policy import NEEDS_PASSWORD
from mailer_gui.outbox.runner import Event, Runner, TranscriptLine, deliver_direct_row
from mailer_gui.outbox.store import (
    GIVEN_UP,
    MessageRow,
    OutboxError,
    OutboxFull,
    OutboxStore,
    RecipientRow,
    State,
    existing_outbox,
)
from mailer_gui.outbox.submit import recipient_kinds
from mailer_gui.paths import AppPaths, ensure_private_dir, resolve_paths
from mailer_gui.preferences import load_preferences
from mailer_gui.sandbox import cli as sandbox_cli
from mailer_gui.sandbox.account import is_sandbox_account
from mailer_gui.sizes import human_size
from mailer_gui.smtp.auth import Credentials
from mailer_gui.smtp.errors import (
    AuthenticationError,
    Cancelled,
    MessageRefused,
    SecurityPolicyError,
    SmtpError,
    TlsError,
)
from mailer_gui.smtp.replies import without_retry_note
from mailer_gui.smtp.session import (
    Session,
)
from mailer_gui.smtp.settings import AuthMethod
from mailer_gui.smtp.transcript import Transcript, TranscriptRecord

# sysexits.h
EX_OK = 0
EX_USAGE = 64
EX_DATAERR = 65
EX_UNAVAILABLE = 69
EX_CANTCREAT = 73
EX_TEMPFAIL = 75
EX_BROKEN_PIPE = 141  # 128 + SIGPIPE, what a shell reports for a program a closed pipe ended
EX_NOPERM = 77
EX_CONFIG = 78

COMMANDS = ("send", "accounts", "outbox", "sandbox")


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

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        # An option the command does not know is told with that command's usage
        # (`send --sbject` shows send's options, not the list of commands).
        parsed, extras = super().parse_known_args(args, namespace)
        if extras:
            self.error(f"unrecognized arguments: {' '.join(extras)}")
        return parsed, extras


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
    send.add_argument(
        "--later",
        action="store_true",
        help="only put the message in the outbox (sent by the app or 'outbox flush')",
    )
    send.add_argument(
        "--at", metavar="ISO-8601", help="with --later: not before this time (local unless given)"
    )

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
    add.add_argument(
        "--identity",
        action="append",
        default=[],
        metavar="'Name <addr>'",
        help="another address this account sends as (repeat for several)",
    )
    add.add_argument(
        "--token-command",
        metavar="CMD",
        help="for OAuth2 (XOAUTH2): a command that prints an access token, e.g. an OAuth "
        "helper for Gmail or Microsoft 365; the token is kept in memory only",
    )
    detect = actions.add_parser(
        "detect", help="find the server settings for an email address (nothing is saved)"
    )
    detect.add_argument("address", metavar="ADDR")
    detect.add_argument("--json", action="store_true")
    detect.add_argument(
        "-v",
        "--transcript",
        action="store_true",
        help="show each source's progress and the probes' SMTP lines",
    )
    setup = actions.add_parser(
        "setup",
        help="detect the settings, test the login, save the account and the password",
    )
    setup.add_argument("address", metavar="ADDR")
    setup.add_argument("--name", metavar="NAME", help="the account's name (default: the domain)")
    setup.add_argument("--display-name", metavar="TEXT")
    setup.add_argument("--password-stdin", action="store_true")
    setup.add_argument("--default", action="store_true", help="make it the default account")
    setup.add_argument("-v", "--transcript", action="store_true")
    default = actions.add_parser("default", help="make an account the default one")
    default.add_argument("name", metavar="NAME")
    show_account = actions.add_parser("show", help="one account's settings (never a secret)")
    show_account.add_argument("name", metavar="NAME")
    show_account.add_argument("--json", action="store_true")
    listing = actions.add_parser("list", help="list the accounts")
    listing.add_argument("--json", action="store_true")
    remove = actions.add_parser("remove", help="remove an account and its keyring entry")
    remove.add_argument("name", metavar="NAME")
    test = actions.add_parser("test", help="connect, start TLS, log in and quit")
    test.add_argument("name", metavar="NAME")
    test.add_argument("-v", "--transcript", action="store_true")
    password = actions.add_parser(
        "password", help="store a new password in the keyring and let the account send again"
    )
    password.add_argument("name", metavar="NAME")
    password.add_argument("--password-stdin", action="store_true")

    outbox = commands.add_parser("outbox", help="what is waiting, sent, failed; retry, cancel")
    jobs = outbox.add_subparsers(dest="action", metavar="ACTION", parser_class=_Parser)
    jobs.required = True
    olist = jobs.add_parser("list", help="the messages in the outbox, newest first")
    olist.add_argument("--json", action="store_true")
    olist.add_argument("--state", choices=[state.value for state in State])
    show = jobs.add_parser("show", help="one message: recipients, attempts, server replies")
    show.add_argument("id", metavar="ID")
    show.add_argument("--transcript", action="store_true", help="every line of every attempt")
    flush = jobs.add_parser(
        "flush", help="send everything waiting now (what is scheduled for later keeps its time)"
    )
    flush.add_argument(
        "--wait",
        action="store_true",
        help="also wait for messages another Mailer is sending right now",
    )
    flush.add_argument(
        "--due",
        action="store_true",
        help="only what the retry schedule says is due now (for cron): a deferred "
        "message waits for its next try",
    )
    retry = jobs.add_parser("retry", help="send a deferred or failed message again now")
    retry.add_argument("id", metavar="ID")
    cancel = jobs.add_parser("cancel", help="do not send a waiting message")
    cancel.add_argument("id", metavar="ID")
    resolve = jobs.add_parser(
        "resolve", help="decide about uncertain messages (numbers, or ranges like 21-30)"
    )
    resolve.add_argument("ids", metavar="ID", nargs="+")
    answer = resolve.add_mutually_exclusive_group(required=True)
    answer.add_argument("--sent", action="store_true", help="it arrived: mark it as sent")
    answer.add_argument("--resend", action="store_true", help="send it again")
    sandbox_cli.add_parser(commands)
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
        names = [a.name for a in store.load()]
        if names:
            raise CliError(
                f"No account is marked as the default among {', '.join(names)}. Choose one "
                f"with --account NAME, or mark one with: mailer-gui accounts default NAME",
                EX_CONFIG,
            )
        raise CliError(
            "No account is set up. Add one with: mailer-gui accounts add NAME --email ADDR "
            "--host HOST --password-stdin",
            EX_CONFIG,
        )
    return account


def _ask_password(args: argparse.Namespace, prompt: str, otherwise: str) -> str:
    """From --password-stdin, or asked on the terminal; never from an option."""
    if args.password_stdin:
        password = _read_password_line(sys.stdin)
    elif sys.stdin.isatty():
        password = getpass.getpass(prompt)
    else:
        raise CliError("Give the password on standard input with --password-stdin.", EX_USAGE)
    if not password:
        raise CliError(f"No password was given; {otherwise}.", EX_USAGE)
    return password


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
        if args.token_command:
            if values.get("password_command"):
                raise AccountError("give either --password-command or --token-command.")
            values["password_command"] = args.token_command
            values.setdefault("auth", AuthMethod.XOAUTH2)
        if values.get("password_command") and "secret_source" not in values:
            values["secret_source"] = "command"
        identities = []
        for text in args.identity:
            address = parse_address(text)
            identities.append(Identity(address.addr_spec, address.display_name or None))
        values["identities"] = tuple(identities)
        if values.get("kind") == "direct" and values.get("host"):
            raise AccountError(
                f"--kind direct sends to each recipient's own mail servers (their MX), so "
                f"--host {values['host']} has no use with it: leave it out, or add a relay "
                "account (no --kind) to send through that server."
            )
        if values.get("kind") == "direct":
            # No login to anyone's servers: a password or its source would be ignored.
            login = [
                flag for flag, given in (
                    ("--password-stdin", args.password_stdin),
                    ("--password-command", values.get("password_command")),
                    ("--token-command", args.token_command),
                    ("--username", values.get("username")),
                    ("--auth", "auth" in values),
                    ("--allow-insecure-auth", values.get("allow_insecure_auth")),
                ) if given
            ]  # fmt: skip
            if login:
                raise AccountError(
                    f"--kind direct logs in nowhere (mail servers take mail for their own "
                    f"users without a login), so {', '.join(login)} has no use with it: "
                    "leave it out."
                )
            if "security" in values:
                raise AccountError(
                    "--kind direct uses STARTTLS with each mail server that offers it, and "
                    "plain SMTP with one that does not (port 25 has no other way), so "
                    f"--security {values['security'].value} has no use with it: leave it out."
                )
        account = Account(**values)
    except (AccountError, AddressError) as exc:
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
        and account.kind == "relay"
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
            secrets.store_password(account.name, password, service=paths.keyring_service)
        except secrets.SecretError as exc:
            raise CliError(str(exc), EX_CONFIG) from exc
    try:
        store.add(account, make_default=args.default)
    except AccountStoreError as exc:
        if password is not None:
            with contextlib.suppress(secrets.SecretError):
                secrets.delete_password(account.name, service=paths.keyring_service)
        raise CliError(str(exc), EX_CONFIG) from exc
    # An account of this name paused earlier (one removed, say) starts afresh.
    with (
        existing_outbox(paths.database, paths.spool_dir) as outbox,
        contextlib.suppress(OutboxError),
    ):
        if outbox is not None:
            outbox.resume_account(account.name)
    where = "in the keyring" if password is not None else "not stored"
    if account.kind == "direct":
        print(
            f"Added account {account.name}: {account.email}, delivering directly to the "
            f"recipients' mail servers on port {account.effective_port}."
        )
    else:
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
    paused: dict[str, tuple[str, str]] = {}
    with (
        existing_outbox(paths.database, paths.spool_dir) as outbox,
        contextlib.suppress(OutboxError),
    ):
        if outbox is not None:
            paused = outbox.paused_accounts()
    if args.json:
        rows = [dict(a.to_json(), default=a.name == default_name) for a in accounts]
        for row in rows:
            if row["name"] in paused:
                state, reason = paused[row["name"]]
                row["paused"] = {"state": state, "reason": reason}
        print(json.dumps(rows, indent=2))
        return EX_OK
    if not accounts:
        print("No accounts. Add one with: mailer-gui accounts add NAME --email ADDR --host HOST")
        return EX_OK
    for account in accounts:
        mark = "*" if account.name == default_name else " "
        if account.kind == "direct":
            where = f"direct to MX, port {account.effective_port}"
        else:
            where = (
                f"{account.host}:{account.effective_port}\t{account.security.value}"
                f"\tauth {account.auth.value}"
            )
        pause = f"\tpaused ({paused[account.name][0]})" if account.name in paused else ""
        print(f"{mark} {account.name}\t{account.email}\t{where}{pause}")
    return EX_OK


def cmd_accounts_remove(args: argparse.Namespace, paths: AppPaths) -> int:
    store = _store(paths)
    try:
        default = store.default()
        was_default = default is not None and default.name.casefold() == args.name.casefold()
        account = store.remove(args.name)
    except AccountStoreError as exc:
        raise CliError(str(exc), EX_CONFIG) from exc
    note = ""
    try:
        secrets.delete_password(account.name, service=paths.keyring_service)
    except secrets.SecretError as exc:
        # An account that kept no password in the keyring (it logged in with
        # none, or took it from a command) has nothing there to remove: a
        # keyring that cannot be reached is not worth a word then.
        if account.secret_source == "keyring" and account.auth is not AuthMethod.NONE:
            note = f" (its keyring entry could not be removed: {exc})"
    print(f"Removed account {account.name}{note}.")
    waiting: list[int] = []
    with (
        existing_outbox(paths.database, paths.spool_dir) as outbox,
        contextlib.suppress(OutboxError),
    ):
        if outbox is not None:
            states = [State.SCHEDULED, State.QUEUED, State.DEFERRED]
            waiting = [row.id for row in outbox.messages(states) if row.account == account.name]
    if waiting:
        one = len(waiting) == 1
        print(
            f"mailer-gui: message{'' if one else 's'} {_numbers(waiting)} of {account.name} "
            f"{'waits' if one else 'wait'} in the outbox, and nothing sends "
            f"{'it' if one else 'them'} without the account: add it again (mailer-gui "
            f"accounts add {account.name} …) or cancel {'it' if one else 'them'} "
            f"({_cancel_hint(waiting)}).",
            file=sys.stderr,
        )
    if was_default:
        with contextlib.suppress(AccountStoreError):
            default = store.default()
            if default is not None:
                print(f"The default account is now {default.name}.")
    return EX_OK


def _candidate_json(candidate: Candidate) -> dict[str, Any]:
    probe = candidate.probe
    return {
        "host": candidate.host,
        "port": candidate.port,
        "security": candidate.security.value,
        "auth": candidate.auth.value,
        "username": candidate.username,
        "source": candidate.source,
        "notes": list(candidate.notes),
        "warnings": list(candidate.warnings),
        "probe": None
        if probe is None
        else {
            "accepted": probe.accepted,
            "reason": probe.reason or None,
            "tls": probe.tls_version,
            "auth_mechanisms": list(probe.auth_mechanisms),
            "size_limit": probe.size_limit,
        },
    }


def _print_candidates(result: DiscoveryResult) -> None:
    if not result.candidates:
        print(f"No server settings were found for {result.address}.")
    for number, candidate in enumerate(result.candidates, start=1):
        mark = " (login works)" if candidate == result.working else ""
        print(f"{number}. {candidate.describe()}, auth {candidate.auth.value}, user "
              f"{candidate.username or '(none)'} — from {candidate.source}{mark}")  # fmt: skip
        probe = candidate.probe
        if probe is not None and probe.accepted:
            mechanisms = " ".join(probe.auth_mechanisms) or "none"
            size = f", SIZE {probe.size_limit}" if probe.size_limit else ""
            print(f"   probe: {probe.tls_version or 'no TLS'}, AUTH {mechanisms}{size}")
        for note in candidate.notes:
            print(f"   note: {note}")
        for warning in candidate.warnings:
            print(f"   warning: {warning}")
    for candidate in result.rejected:
        reason = candidate.probe.reason if candidate.probe else ""
        print(f"   rejected {candidate.describe()}: {reason}")
    for failure in result.login_errors:
        print(f"   login failed at {failure.candidate.describe()}: {failure.reason}")
    sources = ", ".join(f"{name}: {status}" for name, status in result.sources.items())
    print(f"({sources}; {result.elapsed:.1f} s)")


def _discover(address: str, password: str | None, verbose: bool) -> DiscoveryResult:
    def progress(event: ProgressEvent) -> None:
        if verbose:
            _progress_line(f"* {event.source}: {event.status} {event.detail}".rstrip())

    try:
        return discover(
            address, password=password, on_progress=progress, transcript=_transcript(verbose)
        )
    except (ValueError, AddressError) as exc:
        raise CliError(f"{address!r} cannot be looked up: {exc}", EX_DATAERR) from exc


def cmd_accounts_detect(args: argparse.Namespace, paths: AppPaths) -> int:
    result = _discover(args.address, None, args.transcript)
    if args.json:
        document = {
            "address": result.address,
            "candidates": [_candidate_json(c) for c in result.candidates],
            "rejected": [_candidate_json(c) for c in result.rejected],
            "sources": result.sources,
        }
        print(json.dumps(document, indent=2, ensure_ascii=False))
    else:
        _print_candidates(result)
    return EX_OK if result.candidates else EX_UNAVAILABLE


def cmd_accounts_setup(args: argparse.Namespace, paths: AppPaths) -> int:
    password = _ask_password(args, f"Password for {args.address}: ", "nothing was saved")
    try:
        address = parse_address(args.address)
    except AddressError as exc:
        raise CliError(f"The address is not valid: {exc}", EX_DATAERR) from exc
    name = args.name or address.ascii_domain
    store = _store(paths)
    try:
        if any(a.name.lower() == name.lower() for a in store.load()):
            raise CliError(
                f"An account named {name!r} already exists; choose another with --name.",
                EX_USAGE,
            )
    except AccountStoreError as exc:
        raise CliError(str(exc), EX_CONFIG) from exc
    result = _discover(address.addr_spec, password, args.transcript)
    working = result.working
    if working is None:
        _print_candidates(result)
        if result.login_errors:
            raise CliError(
                "None of the servers found accepted the login; nothing was saved. "
                f"{result.login_errors[0].reason}",
                EX_NOPERM,
            )
        raise CliError(
            "No working server was found for this address; nothing was saved. Add the "
            "account by hand with 'mailer-gui accounts add' if you know the settings.",
            EX_UNAVAILABLE,
        )
    try:
        account = Account(
            name=name,
            email=address.addr_spec,
            display_name=args.display_name or address.display_name or None,
            host=working.host,
            port=working.port,
            security=working.security,
            auth=working.auth,
            username=working.username if working.username != address.addr_spec else None,
        )
        secrets.store_password(account.name, password, service=paths.keyring_service)
    except AccountError as exc:
        raise CliError(f"The settings found are not usable: {exc}", EX_CONFIG) from exc
    except secrets.SecretError as exc:
        raise CliError(str(exc), EX_CONFIG) from exc
    try:
        store.add(account, make_default=args.default)
    except AccountStoreError as exc:
        with contextlib.suppress(secrets.SecretError):
            secrets.delete_password(account.name, service=paths.keyring_service)
        raise CliError(str(exc), EX_CONFIG) from exc
    print(
        f"Set up {account.name}: {account.email} via {working.describe()} (found by "
        f"{working.source}, login tested); the password is in the keyring."
    )
    for warning in working.warnings:
        print(f"Note: {warning}")
    return EX_OK


def cmd_accounts_default(args: argparse.Namespace, paths: AppPaths) -> int:
    try:
        _store(paths).set_default(args.name)
    except AccountStoreError as exc:
        raise CliError(str(exc), EX_CONFIG) from exc
    print(f"{args.name} is now the default account.")
    return EX_OK


def cmd_accounts_show(args: argparse.Namespace, paths: AppPaths) -> int:
    account = _account(paths, args.name)
    store = _store(paths)
    default = store.default()
    document = dict(account.to_json(), default=default is not None and default.name == account.name)
    if account.kind == "direct":
        # Straight to each recipient's mail servers: no relay, no login, no password.
        for key in _RELAY_ONLY:
            document.pop(key, None)
        document["port"] = account.effective_port
    elif account.secret_source == "keyring":
        usable, _ = secrets.keyring_usable()
        document["password"] = "in the keyring" if usable else "no keyring available"
    elif account.secret_source == "command":
        document["password"] = "printed by the command"
    else:
        document["password"] = "asked when sending"
    paused = _outbox(paths).paused_accounts().get(account.name)
    if paused:
        document["paused"] = {"state": paused[0], "reason": paused[1]}
    if args.json:
        print(json.dumps(document, indent=2, ensure_ascii=False))
        return EX_OK
    width = max(len(key) for key in document)
    for key, value in document.items():
        if key == "identities":
            value = ", ".join(str(Identity.from_json(i)) for i in value)
        elif key == "paused":
            value = f"{value['state']}: {value['reason']}"
        print(f"{key.replace('_', ' '):{width}}  {'' if value is None else value}")
    return EX_OK


# What only an account that relays through a server has (accounts show leaves them
# out for direct delivery, where none of them is used).
_RELAY_ONLY = (
    "host", "security", "auth", "username", "allow_insecure_auth", "tls_fingerprint",
    "secret_source", "password_command",
)  # fmt: skip


def cmd_accounts_password(args: argparse.Namespace, paths: AppPaths) -> int:
    account = _account(paths, args.name)
    if account.secret_source == "command" and args.password_stdin:
        raise CliError(
            f"The account {account.name} takes its password from a command "
            f"({account.password_command!r}), so no password is stored for it: change what "
            f"that command prints, then run 'mailer-gui accounts password {account.name}' "
            "without --password-stdin. Nothing was changed.",
            EX_USAGE,
        )
    if account.secret_source == "command":
        # Nothing to store: the command is run now, and if it gives a password
        # the account sends again (paused, it was waiting for this).
        try:
            secrets.run_password_command(account.password_command or "", account_name=account.name)
        except secrets.SecretError as exc:
            raise CliError(
                f"{exc} The account {account.name} takes its password from that command "
                f"({account.password_command!r}); make it print the password. Nothing was "
                "changed.",
                EX_CONFIG,
            ) from exc
        _outbox(paths).resume_account(account.name)
        print(
            f"The account {account.name} takes its password from a command, which gave one "
            "now; its waiting messages go with 'mailer-gui outbox flush' or when the app "
            "next sends."
        )
        return EX_OK
    password = _ask_password(args, f"New password for {account.login}: ", "nothing changed")
    try:
        secrets.store_password(account.name, password, service=paths.keyring_service)
    except secrets.SecretError as exc:
        raise CliError(str(exc), EX_CONFIG) from exc
    note = ""
    if account.secret_source == "none":
        # It kept no password and asked each time: from now on it reads this one.
        try:
            _store(paths).replace(
                account.name, dataclasses.replace(account, secret_source="keyring")
            )
        except AccountStoreError as exc:
            with contextlib.suppress(secrets.SecretError):
                secrets.delete_password(account.name, service=paths.keyring_service)
            raise CliError(str(exc), EX_CONFIG) from exc
        note = " (the account kept none before; it now reads it from the keyring)"
    _outbox(paths).resume_account(account.name)
    print(
        f"The password for {account.name} is saved{note}; its waiting messages go with "
        "'mailer-gui outbox flush' or when the app next sends."
    )
    return EX_OK


def _credentials_for(
    account: Account, *, service: str, sending: bool = True
) -> Callable[[], Credentials] | None:
    """Credentials for a send, asked for when the server wants a login.

    The keyring or the password command; at a terminal, what the person types
    when nothing is stored (kept in memory for the rest of this command). With
    no password to be had, the login fails as a wrong password would: the
    account is paused as "needs password" and its messages wait in the outbox,
    instead of going out without a login and being refused.
    """
    if account.auth is AuthMethod.NONE:
        return None
    interactive = sys.stdin.isatty()
    if account.auth is AuthMethod.AUTO and account.secret_source == "none" and not interactive:
        return None  # "no login": a server that insists on one pauses the account

    def provide() -> Credentials:
        typed = secrets.session_password(account.name)
        if typed is not None:
            return Credentials(account.login, typed)
        try:
            return Credentials(account.login, secrets.get_secret(account, service=service))
        except secrets.PasswordMissing as exc:
            if not interactive:
                how = _password_advice(
                    account.name,
                    account.secret_source,
                    sandbox=is_sandbox_account(account),
                    waiting=sending,
                )
                raise NoPassword(f"{exc} {how}") from None
        except secrets.SecretError as exc:
            raise AuthenticationError(str(exc)) from None
        password = _type_password(account)
        if not password:
            waits = f" {_WAIT.capitalize()}" if sending else ""
            raise NoPassword(f"No password was typed for {account.name}.{waits}")
        secrets.remember_password(account.name, password)  # the next connection of this run
        return Credentials(account.login, password)

    return provide


def _type_password(account: Account) -> str:
    """The account's password as typed at the terminal; "" for none (Ctrl+D)."""
    try:
        return getpass.getpass(f"Password for {account.login} ({account.host}): ")
    except EOFError:
        return ""


class NoPassword(AuthenticationError):
    """No password to be had for the account: nothing stored, and no terminal to ask."""


_WAIT = "the messages wait in the outbox."


def _password_advice(name: str, source: str, *, sandbox: bool = False, waiting: bool = True) -> str:
    """How to give a paused account its password, by where the account takes it
    from; ``waiting``: messages wait for it (not so for `accounts test`)."""
    if source == "command":
        advice = (
            f"Make the password command of {name} print the right one, then run "
            f"'mailer-gui accounts password {name}' (it runs the command) to let the account "
            "send again"
        )
    elif sandbox:
        # No keyring: only the sandbox process holds its password (it prints it).
        advice = (
            "Mailer's window sends the sandbox's messages itself while it runs the sandbox; "
            "otherwise run this command in a terminal and type the password the sandbox "
            "printed when it started (it changes at each start: with no keyring, it is kept "
            "nowhere)"
        )
    elif source == "none":
        advice = f"Run this command in a terminal to type it (the account {name} keeps none)"
    else:
        advice = (
            f"Store it with 'mailer-gui accounts password {name}', or run this command in a "
            "terminal to type it"
        )
    return f"{advice}; {_WAIT}" if waiting else f"{advice}."


def _source_of(paths: AppPaths, name: str) -> str:
    """Where the account ``name`` takes its password from (keyring when unknown)."""
    with contextlib.suppress(CliError):
        return _account(paths, name).secret_source
    return "keyring"


def _progress_line(text: str) -> None:
    """One line of ``-v`` output on stderr, printed from wherever the work is.

    A closed stderr (``mailer-gui send -v 2>&1 | head``) drops the line: a
    delivery under way must not stop half-way because nobody reads any more.
    """
    with contextlib.suppress(OSError, ValueError):  # BrokenPipeError; a closed file
        print(text, file=sys.stderr, flush=True)


def _transcript(verbose: bool) -> Transcript:
    def show(record: TranscriptRecord) -> None:
        _progress_line(record.render())

    return Transcript(show if verbose else None)


def _open_session(account: Account, transcript: Transcript, paths: AppPaths) -> Session:
    """A session logged in to ``account``'s server, to test it (no message waits on it)."""
    session = Session(
        account.server_settings(),
        transcript=transcript,
        credentials=_credentials_for(account, service=paths.keyring_service, sending=False),
    )
    session.open()
    return session


def cmd_accounts_test(args: argparse.Namespace, paths: AppPaths) -> int:
    account = _account(paths, args.name)
    if account.kind == "direct":
        print(
            f"{account.name} delivers directly to each recipient's mail servers (port "
            f"{account.effective_port}); there is no single server to test. Send a message "
            "with -v to see each connection."
        )
        return EX_OK
    transcript = _transcript(args.transcript)
    session = _open_session(account, transcript, paths)
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
    # A paused account that now works sends again: for a refused password,
    # only once a login went through.
    with (
        existing_outbox(paths.database, paths.spool_dir) as store,
        contextlib.suppress(OutboxError),
    ):
        paused = store.paused_accounts().get(account.name) if store is not None else None
        if (
            store is not None
            and paused is not None
            and (paused[0] != NEEDS_PASSWORD or session.authenticated)
        ):
            store.resume_account(account.name)
            print(
                f"It was paused ({paused[0]}); it sends again: its waiting messages go with "
                "'mailer-gui outbox flush' or when the app next sends."
            )
    return EX_OK


# --------------------------------------------------------------------- send


def _addresses(values: list[str], field: str) -> tuple[MailAddress, ...]:
    try:
        return tuple(parse_address_list(values))
    except AddressError as exc:
        raise CliError(f"The {field} address is not valid: {exc}.", EX_DATAERR) from exc


# A body is text a person wrote or a program printed; anything larger goes
# better as an attachment, and reading without a limit (--body-file /dev/zero)
# would only end when memory does.
MAX_BODY_BYTES = 32 * 1024 * 1024


def _read_body(args: argparse.Namespace) -> str:
    if args.body is not None:
        return str(args.body)
    name = "The body read from standard input" if args.body_file == "-" else (
        f"The body file {args.body_file}"
    )  # fmt: skip
    try:
        if args.body_file == "-":
            stream = getattr(sys.stdin, "buffer", None)
            if stream is None:  # a text stream (Mailer embedded, or its tests)
                data = sys.stdin.read(MAX_BODY_BYTES + 1).encode("utf-8", "surrogateescape")
            else:
                data = stream.read(MAX_BODY_BYTES + 1)
        else:
            with open(args.body_file, "rb") as file:
                data = file.read(MAX_BODY_BYTES + 1)
        if len(data) > MAX_BODY_BYTES:
            raise CliError(
                f"{name} is larger than {human_size(MAX_BODY_BYTES)}; send that much as an "
                "attachment (--attach). Nothing was sent.",
                EX_DATAERR,
            )
        # Line ends as a text file reads them (\r\n and \r become \n).
        return data.decode("utf-8").replace("\r\n", "\n").replace("\r", "\n")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise CliError(f"{name} cannot be read as UTF-8 text ({reason}).", EX_DATAERR) from exc


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


def _build(
    args: argparse.Namespace, account: Account, spool: Path
) -> tuple[BuiltMessage, dict[str, str], str]:
    """The message to send (built from the options, or a prepared .eml file),
    each recipient's kind (to, cc, bcc) and the subject for the outbox list."""
    try:
        if args.eml is None:
            draft = _draft(args, account)
            built = build_message(draft, spool_dir=spool)
            return built, recipient_kinds(draft, built), draft.subject
        ignored = [
            option
            for option, given in (
                ("--subject", args.subject is not None),
                ("--reply-to", bool(args.reply_to)),
                ("--attach", bool(args.attach)),
                ("--inline", bool(args.inline)),
                ("--header", bool(args.header)),
                ("--format", args.format != "markdown"),
                ("--priority", args.priority != "normal"),
            )
            if given
        ]
        if ignored:
            raise CliError(
                f"--eml sends the file as it is, so {', '.join(ignored)} cannot go with it: "
                "put that in the file, or leave out --eml. Nothing was sent.",
                EX_USAGE,
            )
        sender = _addresses([_sender_text(account)], "sender")[0]
        recipients = _addresses([*args.to, *args.cc, *args.bcc], "recipient")
        smtputf8 = any(a.needs_smtputf8 for a in (sender, *recipients))
        built = build_from_eml(
            Path(args.eml),
            envelope_from=sender.envelope(smtputf8=smtputf8),
            recipients=tuple(a.envelope(smtputf8=smtputf8) for a in recipients),
            sender_domain=sender.ascii_domain,
            spool_dir=spool,
            dsn_notify=_notify(args.notify),
        )
        return built, {}, Path(args.eml).name
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
    if draft.body_format == "markdown":
        given = {image.name for image in draft.inline_images}
        for name in _local_images(draft.body):
            if name not in given:
                _progress_line(
                    f"mailer-gui: the text shows the image {name!r}, which was not given with "
                    f"--inline {name}: only its description goes."
                )
    return draft


# Markdown images, ![description](source "title"): the source, up to a space.
_IMAGE = re.compile(r"!\[[^\]]*\]\(\s*<?([^)\s>]+)")


def _local_images(body: str) -> list[str]:
    """The images the Markdown ``body`` shows from files (not from the web, cid: or data:)."""
    from urllib.parse import unquote

    names = []
    for source in _IMAGE.findall(body):
        if ":" in source.split("/", 1)[0]:
            continue  # a scheme: https://, cid:, data:
        names.append(unquote(source))
    return list(dict.fromkeys(names))


# ------------------------------------------------------------------ outbox


def _outbox(paths: AppPaths, *, recover: bool = False) -> OutboxStore:
    """The outbox; with ``recover``, messages a Mailer that is gone left
    `sending` are taken back first, so that they are shown and acted on as
    what they are now (queued, or uncertain)."""
    try:
        store = OutboxStore(paths.database, paths.spool_dir)
    except OutboxError as exc:
        raise CliError(
            str(exc), EX_CANTCREAT if isinstance(exc, OutboxFull) else EX_CONFIG
        ) from exc
    if recover:
        with contextlib.suppress(OutboxError):  # what cannot be written is shown as it is
            store.recover()
    return store


def _runner(paths: AppPaths, store: OutboxStore, verbose: bool) -> Runner:
    accounts = _store(paths)
    # The retry schedule set in Settings holds for what the command line sends too.
    preferences = load_preferences(
        paths.preferences_file, warn=lambda text: _progress_line(f"mailer-gui: {text}")
    )
    store.policy = preferences.retry_policy()
    with contextlib.suppress(OutboxError):
        store.reschedule()  # what waits follows the schedule as it is set now

    def show(event: Event) -> None:
        if verbose and isinstance(event, TranscriptLine):
            _progress_line(event.record.render())

    return Runner(
        store,
        accounts.get,
        credentials=functools.partial(_credentials_for, service=paths.keyring_service),
        on_event=show if verbose else None,
        direct=deliver_direct_row,
    )


def _ask_paused_passwords(paths: AppPaths, store: OutboxStore, names: set[str] | None) -> None:
    """At a terminal, before a command sends: each account among ``names`` (all
    when None) paused for its password asks for it, and goes on for this run
    with what was typed (in memory only). A runner never takes a paused
    account's messages; `_paused_note` says what to do about the others.
    """
    if not sys.stdin.isatty():
        return
    try:
        paused = store.paused_accounts()
    except OutboxError:
        return  # the command itself reports an outbox that cannot be read
    for name, (state, _reason) in sorted(paused.items()):
        if state != NEEDS_PASSWORD or (names is not None and name not in names):
            continue
        with contextlib.suppress(CliError):  # an account removed since: noted later
            account = _account(paths, name)
            _progress_line(f"mailer-gui: the account {name} waits for its password.")
            typed = _type_password(account)
            if typed:  # none (Ctrl+D, say): it stays paused
                secrets.remember_password(name, typed)
                with contextlib.suppress(OutboxError):
                    store.resume_account(name)


def _paused_note(name: str, state: str, reason: str, source: str = "keyring") -> str:
    """Why an account's messages wait, and what to do: one line for the terminal.
    ``source``: where the account takes its password from."""
    if state == NEEDS_PASSWORD:
        fix = _password_advice(name, source)
    else:
        fix = (
            "Fix the account (Settings in the app, or remove and add it again with "
            "mailer-gui accounts); the messages wait in the outbox."
        )
    text = f"The account {name} is paused ({state}): {reason}"
    return text if _WAIT in reason else f"{text} {fix}"


_OUTCOME = {
    State.SENT: "sent",
    State.FAILED: "rejected",
    State.UNCERTAIN: "uncertain",
    State.CANCELLED: "cancelled",
}


def _outcome(row: MessageRow) -> str:
    statuses = {r.status for r in row.recipients}
    if row.state is State.SENT and statuses != {"accepted"}:
        return "partial"
    return _OUTCOME.get(row.state, "deferred")


def _row_code(
    row: MessageRow, error: SmtpError | None, paused: tuple[str, str] | None = None
) -> int:
    statuses = {r.status for r in row.recipients}
    if row.state is State.SENT and statuses == {"accepted"}:
        return EX_OK
    if error is not None and row.state not in (State.SENT, State.FAILED):
        return _error_code(error)
    if paused is not None and row.state in (State.QUEUED, State.DEFERRED):
        return EX_CONFIG  # it waits until the person fixes the account
    if row.state is State.UNCERTAIN or statuses & {"pending", "deferred"}:
        return EX_TEMPFAIL
    return EX_UNAVAILABLE


def _recipient_json(r: RecipientRow) -> dict[str, Any]:
    return {
        "address": r.address,
        "status": r.status,
        "code": r.code,
        "enhanced": r.enhanced,
        "text": r.text,
    }


def _paused(store: OutboxStore) -> dict[str, tuple[str, str]]:
    try:
        return store.paused_accounts()
    except OutboxError:
        return {}


def _print_row(
    row: MessageRow,
    as_json: bool,
    error: SmtpError | None = None,
    *,
    paused: tuple[str, str] | None = None,
    source: str = "keyring",
) -> None:
    """What became of one message; ``paused``: its account's (state, reason) if
    paused, ``source`` where that account takes its password from."""
    if as_json:
        document: dict[str, Any] = {
            "id": row.id,
            "message_id": row.message_id,
            "state": row.state.value,
            "outcome": _outcome(row),
            "recipients": [_recipient_json(r) for r in row.recipients],
        }
        if row.last_error:
            document["error"] = row.last_error
        if paused is not None and row.state in (State.DEFERRED, State.QUEUED):
            state, reason = paused
            document["paused"] = {"account": row.account, "state": state, "reason": reason}
            document.setdefault("error", reason)
        print(json.dumps(document, indent=2, ensure_ascii=False))
        return
    for r in row.recipients:
        code = " ".join(str(part) for part in (r.code, r.enhanced) if part)
        said = f"{code} {r.text or ''}".strip() if code else r.text or ""
        line = f"{_status_word(r, row):9} {shown_address(r.address)}"
        print(f"{line}: {said}" if said else line)
    refused = _refusals_explained(row)
    for text in refused:
        print(text, file=sys.stderr)
    if row.state is State.UNCERTAIN:
        print(
            "The connection broke after the whole message was sent and before the server "
            "confirmed it: it may have been delivered. Check with a recipient, then run "
            f"mailer-gui outbox resolve {row.id} --sent (or --resend).",
            file=sys.stderr,
        )
    elif row.state is not State.SENT:
        text = _describe_error(error) if error is not None else (row.last_error or "")
        held = paused if row.state in (State.DEFERRED, State.QUEUED) else None
        # Not the refusals again ("bob@…: No such user"), shown above.
        shown = {r.text for r in row.recipients} | {
            f"{shown_address(r.address)}: {r.text}" for r in row.recipients
        }
        already_shown = bool(refused) or text in shown
        if text and not already_shown and not (held and text in held[1]):
            print(text, file=sys.stderr)
        if held:
            print(_paused_note(row.account, *held, source), file=sys.stderr)
            print(
                f"The message stays in the outbox as number {row.id} until then "
                f"(mailer-gui outbox cancel {row.id} drops it).",
                file=sys.stderr,
            )
        elif row.state in (State.DEFERRED, State.QUEUED):
            # Nothing runs in the background for the command line: say who
            # makes the next try, and when.
            when = _clock_time(row.due_at) if row.due_at > time.time() else "now"
            print(
                f"The message stays in the outbox as number {row.id}; its next try is due "
                f"{when}. Mailer's window makes it then while it is open; without it, run "
                "mailer-gui outbox flush --due (for example every few minutes from cron). "
                f"mailer-gui outbox flush sends it at once; mailer-gui outbox cancel {row.id} "
                "drops it.",
                file=sys.stderr,
            )


# What an attempt ended in, in the words `outbox show` uses (as stored: the
# outcome of a result, or what a failure before any answer meant).
_ATTEMPT_WORDS = {
    "defer": "deferred",
    "fail": "failed",
    "pause-account": "account paused",
    "given-up": "deferred again, and Mailer gave up",
}


def _refusals_explained(row: MessageRow) -> list[str]:
    """What each server refusal means and what to do, in plain words, once for
    each different one ("The server says the recipient address does not
    exist (550 5.1.1). Check the address …"): those refused for good, and
    those the server asked to try again later (greylisting, a full mailbox)."""
    texts: dict[str, None] = {}
    # No other recipient took it: "the others are not affected" would be untrue.
    alone = not any(r.status == "accepted" for r in row.recipients)
    for r in row.recipients:
        if r.status not in ("rejected", "deferred") or r.code is None:
            continue
        explanation = recipient_explanation(
            r.address, r.code, r.enhanced, r.text, None, alone=alone
        )
        if explanation is not None:
            texts[f"{explanation.summary} {explanation.advice}".strip()] = None
    return list(texts)


def _status_word(recipient: RecipientRow, row: MessageRow) -> str:
    """A recipient's status as the terminal shows it: "unknown" when its
    transaction's "." had no reply (nothing retries it by itself). In a
    message an older Mailer made uncertain, every recipient still to go is."""
    if row.in_doubt(recipient):
        return "unknown"
    if row.state is State.FAILED and recipient.status in ("pending", "deferred"):
        return "given up"  # put off each time until Mailer gave up
    if recipient.status == "rejected" and recipient.code is None:
        return "failed"  # by Mailer (a missing message file, say), not refused by a server
    return recipient.status


def _clock_time(timestamp: float) -> str:
    """``"at 14:05"`` today, ``"on 2026-12-24 at 09:00"`` on another day (local time)."""
    when = datetime.fromtimestamp(timestamp).astimezone()
    if when.date() == datetime.now().astimezone().date():
        return f"at {when:%H:%M}"
    return f"on {when:%Y-%m-%d} at {when:%H:%M}"


def _local_time(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp).astimezone().isoformat(timespec="seconds")


def _parse_when(text: str) -> float:
    try:
        when = datetime.fromisoformat(text)
    except ValueError as exc:
        raise CliError(
            f"--at {text!r} is not a date and time like 2026-12-24T09:00 or "
            "2026-12-24T09:00+01:00.",
            EX_USAGE,
        ) from exc
    if when.tzinfo is None:
        when = when.astimezone()  # local time, as people write it
    return when.timestamp()


def cmd_send(args: argparse.Namespace, paths: AppPaths) -> int:
    account = _account(paths, args.account)
    due = _parse_when(args.at) if args.at else None
    if args.at and not args.later:
        raise CliError("--at goes with --later.", EX_USAGE)
    try:
        built, kinds, subject = _build(args, account, ensure_private_dir(paths.spool_dir))
    except OSError as exc:  # the outbox's folder, not the person's files (_build says those)
        raise CliError(_cannot_keep(paths, exc), EX_CANTCREAT) from None
    try:
        if args.save_eml:
            try:
                save_eml(built.path, Path(args.save_eml))
            except EmlError as exc:
                raise CliError(f"{exc} Nothing was sent.", EX_DATAERR) from exc
        store = _outbox(paths)
        message = store.enqueue(
            built, account=account.name, subject=subject, due_at=due, kinds=kinds
        )
    except OutboxError as exc:
        raise CliError(f"{exc} Nothing was queued.", EX_CANTCREAT) from None
    except OSError as exc:
        raise CliError(_cannot_keep(paths, exc), EX_CANTCREAT) from None
    finally:
        built.path.unlink(missing_ok=True)  # gone already when it reached the spool
    if args.later:
        row = store.get(message)
        if args.json:
            document = {"id": row.id, "message_id": row.message_id, "state": row.state.value}
            print(json.dumps(document))
        else:
            when = _local_time(row.due_at)
            print(f"Queued as number {row.id} ({row.state.value}), due {when}.")
        return EX_OK
    _ask_paused_passwords(paths, store, {account.name})
    runner = _runner(paths, store, args.transcript)
    try:
        runner.deliver_now(message=message)
    except KeyboardInterrupt:
        _say_interrupted(store, message)
        raise
    row = store.get(message)
    error = runner.errors.get(message)
    paused = _paused(store).get(row.account)
    _print_row(row, args.json, error, paused=paused, source=account.secret_source)
    return _row_code(row, error, paused)


def _cannot_keep(paths: AppPaths, error: OSError) -> str:
    """Why a message could not be written into the outbox, for a person."""
    where = error.filename or paths.spool_dir
    why = error.strerror or str(error)
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return (
            f"The disk that holds Mailer's outbox ({paths.data_dir}) is full, so the message "
            "could not be kept. Free some space and send it again. Nothing was queued."
        )
    return (
        f"Mailer cannot keep the message in its outbox: {where} cannot be written ({why}). "
        f"Check that {paths.data_dir} and the folders in it are folders you can write to. "
        "Nothing was queued."
    )


def _say_interrupted(store: OutboxStore, message: int) -> None:
    """Ctrl+C stopped a send: say where the message stands (the runner gave it back)."""
    try:
        state = store.get(message).state
    except OutboxError:
        return
    if state is State.UNCERTAIN:
        text = (
            f"Message {message} went out whole but the server had not confirmed it, so it may "
            f"have arrived. It waits in the outbox as uncertain: mailer-gui outbox resolve "
            f"{message} --sent if it did, or --resend to send it again."
        )
    elif state in (State.QUEUED, State.SCHEDULED, State.DEFERRED):
        text = (
            f"Message {message} was not sent; it waits in the outbox and goes with the next "
            f"mailer-gui outbox flush or when the app sends (mailer-gui outbox cancel {message} "
            "drops it)."
        )
    else:
        return  # sent, failed or cancelled already: the interruption changed nothing
    print(f"mailer-gui: {text}", file=sys.stderr)


def _message_number(text: str) -> int:
    try:
        number = int(text)
    except ValueError:
        number = 0
    if not 0 < number < 2**63:  # what SQLite can hold; numbers start at 1
        raise CliError(f"{text!r} is not a message number (see mailer-gui outbox list).", EX_USAGE)
    return number


def cmd_outbox_list(args: argparse.Namespace, paths: AppPaths) -> int:
    store = _outbox(paths, recover=True)
    states = [State(args.state)] if args.state else None
    rows = store.messages(states)
    if store.damaged:
        print(
            f"mailer-gui: {store.damaged} Only the messages that could still be read are listed.",
            file=sys.stderr,
        )
    orphans = store.orphan_files()
    if orphans and states is None:
        files = "A file" if len(orphans) == 1 else f"{len(orphans)} files"
        belong = "belongs" if len(orphans) == 1 else "belong"
        print(
            f"mailer-gui: {files} in {paths.spool_dir} {belong} to no message in the outbox "
            "(its database lost them: a damaged or older copy, or its -wal log removed). "
            "Each is a whole message; mailer-gui send --eml FILE sends one again: "
            f"{', '.join(str(path) for path in orphans[:3])}"
            f"{' …' if len(orphans) > 3 else ''}",
            file=sys.stderr,
        )
    if args.json:
        print(
            json.dumps(
                [
                    {
                        "id": r.id,
                        "state": r.state.value,
                        "account": r.account,
                        "subject": r.subject,
                        "message_id": r.message_id,
                        "created": r.created_at,
                        "due": r.due_at,
                        "attempts": r.attempts,
                        "last_error": _last_error(r),
                        "recipients": [_recipient_json(x) for x in r.recipients],
                    }
                    for r in rows
                ],
                indent=2,
                ensure_ascii=False,
            )
        )
        return EX_OK
    if not rows:
        print("The outbox is empty." if states is None else "No message in that state.")
        return EX_OK
    paused = _paused(store)
    known = _account_names(paths)
    for r in rows:
        due = datetime.fromtimestamp(r.due_at).astimezone().strftime("%Y-%m-%d %H:%M")
        # A queued one due later waits with another of its account (hold_queued).
        later = r.state in (State.DEFERRED, State.SCHEDULED) or (
            r.state is State.QUEUED and r.due_at > time.time()
        )
        waiting = f" next {due}" if later else ""
        print(
            f"{r.id:>5}  {r.state.value:10} {r.account:12} {len(r.recipients)} rcpt  "
            f"tries {r.attempts}{waiting}  {r.subject}"
        )
        refused = _refused(r)
        waits = _waits_for_account(r, paused, known)
        said = _last_error(r)
        if refused:  # sent, but not to everyone: who was refused and why
            print(f"       {textwrap.shorten(refused, width=160, placeholder=' …')}")
        elif waits:
            print(f"       {textwrap.shorten(waits, width=160, placeholder=' …')}")
        elif said and r.state is not State.SENT:
            # One line per message: a longer reason is cut at a word, marked
            # as cut; `outbox show` gives it whole.
            print(f"       {textwrap.shorten(said, width=160, placeholder=' …')}")
    return EX_OK


def _cancel_hint(messages: Sequence[int]) -> str:
    """How to cancel ``messages``: `outbox cancel` takes one number."""
    if len(messages) == 1:
        return f"mailer-gui outbox cancel {messages[0]}"
    return "mailer-gui outbox cancel ID, for each"


def _account_names(paths: AppPaths) -> set[str] | None:
    """The accounts set up now; None when the file cannot be read."""
    try:
        return {account.name for account in AccountStore(paths.accounts_file).load()}
    except AccountStoreError:
        return None


def _waits_for_account(
    row: MessageRow, paused: Mapping[str, tuple[str, str]], known: set[str] | None
) -> str | None:
    """Why a waiting message is not tried by itself: its account is paused, or gone."""
    if row.state not in (State.QUEUED, State.DEFERRED):
        return None
    if known is not None and row.account not in known:
        return (
            f"Waits for the account {row.account}, which is not set up any more: add it "
            f"again with mailer-gui accounts add {row.account} …, or mailer-gui outbox "
            f"cancel {row.id}."
        )
    if row.account in paused:
        state, reason = paused[row.account]
        return f"Waits for the account {row.account}, paused ({state}): {reason}"
    return None


def _last_error(row: MessageRow) -> str | None:
    """The reason kept for ``row``; for one cancelled, without what Mailer
    would have done next ("Mailer will try again later"): it will not."""
    if row.last_error and row.state is State.CANCELLED:
        return without_retry_note(row.last_error) or None
    return row.last_error


def cmd_outbox_show(args: argparse.Namespace, paths: AppPaths) -> int:
    store = _outbox(paths, recover=True)
    try:
        row, attempts = store.details(_message_number(args.id))
    except OutboxError as exc:
        raise CliError(str(exc), EX_USAGE) from exc
    if store.damaged:
        print(f"mailer-gui: {store.damaged} This message could still be read.", file=sys.stderr)
    print(f"Message {row.id}: {row.state.value}")
    print(f"  Subject:    {row.subject}")
    print(f"  Message-ID: {row.message_id}")
    print(f"  Account:    {row.account}")
    print(f"  Size:       {row.size} bytes ({row.spool_path})")
    # The count the retry schedule and outbox list use; attempts given back
    # unfinished (interrupted, an account paused) are listed, not counted.
    extra = len(attempts) - row.attempts
    uncounted = f" (and {extra} not counted: interrupted or held)" if extra > 0 else ""
    print(f"  Attempts:   {row.attempts}{uncounted}")
    waits = _waits_for_account(row, _paused(store), _account_names(paths))
    if waits:
        print(f"  Next try:   {waits}")
    elif row.state in (State.DEFERRED, State.SCHEDULED, State.QUEUED):
        when = _local_time(row.due_at)
        print(f"  Next try:   {when}")
    if said := _last_error(row):
        print(f"  Last error: {said}")
    print("  Recipients:")
    for r in row.recipients:
        code = f" {r.code}" if r.code else ""
        enhanced = f" {r.enhanced}" if r.enhanced else ""
        status = _status_word(r, row)
        address = shown_address(r.address)
        text = r.text or ""
        if r.code is None and row.state in (State.FAILED, State.CANCELLED, State.UNCERTAIN):
            text = without_retry_note(text)  # Mailer's own words: nothing is tried again
        print(f"    {status:9} {r.kind:3} {address}{code}{enhanced} {text}".rstrip())
    for number, attempt in enumerate(attempts, start=1):
        started = _local_time(attempt.started_at)
        outcome = _ATTEMPT_WORDS.get(attempt.outcome or "", attempt.outcome or "in progress")
        print(f"  Attempt {number} at {started}: {outcome}")
        if attempt.error:
            # After the last try, what Mailer would have done next is untrue.
            last = attempt.outcome == GIVEN_UP
            print(f"    {without_retry_note(attempt.error) if last else attempt.error}")
        if args.transcript and attempt.transcript:
            for line in attempt.transcript.splitlines():
                print(f"    {line}")
    return EX_OK


def _refused(row: MessageRow) -> str:
    """For a message sent to some recipients only: who refused it for good and
    why ("Sent to 2 of 3; refused for good: x@example.org (550 5.1.1 …)");
    "" otherwise."""
    if row.state is not State.SENT:
        return ""
    refused = [r for r in row.recipients if r.status == "rejected"]
    if not refused:
        return ""
    named = []
    for r in refused:
        said = " ".join(str(part) for part in (r.code, r.enhanced, r.text) if part)
        address = shown_address(r.address)
        named.append(f"{address} ({said})" if said else address)
    total = len(row.recipients)
    return f"Sent to {total - len(refused)} of {total}; refused for good: {'; '.join(named)}"


def _state_counts(counts: Mapping[State, int]) -> str:
    """``{SENT: 2, FAILED: 1}`` -> ``"1 failed, 2 sent"``."""
    return ", ".join(f"{n} {state.value}" for state, n in sorted(counts.items()))


def cmd_outbox_flush(args: argparse.Namespace, paths: AppPaths) -> int:
    store = _outbox(paths, recover=True)
    store.remove_stale_builds()  # half-built files of a Mailer killed while building
    try:
        if args.due:
            # What the schedule says is due: run from cron, this makes the
            # retries the window would make, and no more.
            now = time.time()
            states = [State.DEFERRED, State.QUEUED, State.SCHEDULED]
            due = [row.id for row in store.messages(states) if row.due_at <= now]
        else:
            # Deferred ones too, at once; not those scheduled for later (send
            # --later --at), whose time is the person's: `outbox retry ID`
            # sends one now.
            due = store.all_due_now([State.DEFERRED, State.QUEUED])
    except OutboxError as exc:
        raise CliError(str(exc), EX_TEMPFAIL) from exc
    _ask_paused_passwords(paths, store, None)
    runner = _runner(paths, store, False)
    try:
        runner.deliver_now()
    except OutboxError as exc:
        # The outbox could not be written any more (a full disk): what this
        # run did before is still told, then why it stopped.
        return _flush_stopped(store, due, exc)
    if args.wait:
        # Messages another Mailer (the desktop app) is sending right now.
        deadline = time.monotonic() + 600
        while store.messages([State.SENDING]) and time.monotonic() < deadline:
            time.sleep(0.2)
    # What became of the messages this run was for, then the whole outbox.
    now_in = store.states(due)
    failed = sorted(message for message, state in now_in.items() if state is State.FAILED)
    # Sent, but refused for good by some recipients: the person must act on those too.
    partly: dict[int, str] = {}
    for message in sorted(m for m, state in now_in.items() if state is State.SENT):
        with contextlib.suppress(OutboxError):
            if refused := _refused(store.get(message)):
                partly[message] = refused
    if due:
        some = f" ({len(partly)} to only some of its recipients)" if partly else ""
        print(f"This run: {_state_counts(Counter(now_in.values()))}{some}.")
    for message in failed:
        with contextlib.suppress(OutboxError):
            row = store.get(message)
            to = [shown_address(r.address) for r in row.recipients]
            named = ", ".join(to[:3]) + (f" and {len(to) - 3} more" if len(to) > 3 else "")
            print(
                f"mailer-gui: message {message} to {named} failed: "
                f"{row.last_error or 'no reason was kept'}",
                file=sys.stderr,
            )
    for message, refused in partly.items():
        print(f"mailer-gui: message {message}: {refused}", file=sys.stderr)
    for line in _deferred_lines(store, now_in):
        print(line, file=sys.stderr)
    for line in _held_back(store, now_in):
        print(line, file=sys.stderr)
    # This run leaves none of its own "sending": these are another Mailer's
    # (the window, a second flush), perhaps claimed before this run got to them.
    elsewhere = sorted(row.id for row in store.messages([State.SENDING]))
    if elsewhere:
        one = len(elsewhere) == 1
        print(
            f"mailer-gui: message{'' if one else 's'} {_numbers(elsewhere)} "
            f"{'is' if one else 'are'} being sent by another Mailer (the window, or "
            "another flush) and "
            + (
                "did not end within 10 minutes."
                if args.wait
                else f"{'was' if one else 'were'} left to it. mailer-gui outbox flush "
                f"--wait waits for {'it' if one else 'them'}."
            ),
            file=sys.stderr,
        )
    counts = store.counts()
    print(f"Outbox: {_state_counts(counts) or 'empty'}.")
    paused = _paused(store)
    known = _account_names(paths)
    for name, (state, reason) in sorted(paused.items()):
        if known is not None and name not in known:
            continue  # its messages say so below: a pause of an account gone is no news
        print(_paused_note(name, state, reason, _source_of(paths, name)), file=sys.stderr)
    if known is not None:
        orphans: dict[str, list[int]] = {}
        for row in store.messages([State.QUEUED, State.DEFERRED, State.SCHEDULED]):
            if row.account not in known:
                orphans.setdefault(row.account, []).append(row.id)
        for name, numbers in sorted(orphans.items()):
            one = len(numbers) == 1
            print(
                f"mailer-gui: message{'' if one else 's'} {_numbers(numbers)} "
                f"{'waits' if one else 'wait'} for the account {name}, which is not set up "
                f"any more: add it again (mailer-gui accounts add {name} …) or cancel "
                f"{'it' if one else 'them'} ({_cancel_hint(numbers)}).",
                file=sys.stderr,
            )
    uncertain = counts.get(State.UNCERTAIN, 0)
    if uncertain:
        ids = ""
        with contextlib.suppress(OutboxError):
            ids = _numbers((row.id for row in store.messages([State.UNCERTAIN])), sep=" ", dash="-")
        print(
            f"{uncertain} uncertain: all of each went out but no confirmation came, so it "
            f"may have arrived. Decide with mailer-gui outbox resolve {ids or 'ID'} --sent or "
            "--resend (mailer-gui outbox list --state uncertain shows them).",
            file=sys.stderr,
        )
    if failed or partly:
        return EX_UNAVAILABLE  # refused for good in this run: the person must act
    waiting = store.messages([State.DEFERRED, State.QUEUED, State.SENDING])
    if args.due and not uncertain:
        # Run from cron: a message waiting for its next try is no news; an
        # account that waits for the person (a password) is.
        return EX_CONFIG if any(row.account in paused for row in waiting) else EX_OK
    if uncertain or any(row.account not in paused for row in waiting):
        return EX_TEMPFAIL  # they go later by themselves, or wait for a decision
    return EX_CONFIG if waiting else EX_OK  # only paused accounts' messages wait


def _numbers(messages: Iterable[int], *, sep: str = ", ", dash: str = "–") -> str:
    """``[1, 2, 3, 7, 9, 10]`` -> ``"1–3, 7, 9–10"``: message numbers, runs joined
    (with ``sep=" ", dash="-"``: as `outbox resolve` takes them, ``1-3 7 9-10``)."""
    runs: list[list[int]] = []
    for message in sorted(messages):
        if runs and message == runs[-1][-1] + 1:
            runs[-1].append(message)
        else:
            runs.append([message])
    return sep.join(f"{run[0]}{dash}{run[-1]}" if len(run) > 1 else str(run[0]) for run in runs)


def _flush_stopped(store: OutboxStore, due: list[int], error: OutboxError) -> int:
    """A flush that stopped because the outbox could not be written: what
    became of its messages (as far as the database can still be read), then why."""
    with contextlib.suppress(OutboxError):
        now_in = store.states(due)
        if now_in:
            print(f"This run, before it stopped: {_state_counts(Counter(now_in.values()))}.")
        sending = [m for m, state in now_in.items() if state is State.SENDING]
        if sending:
            print(
                f"mailer-gui: what became of message {_numbers(sending)} could not be written "
                "down. Once there is space, the next Mailer to open the outbox sorts it out: "
                "queued again if it had not gone, uncertain if all of it may have reached "
                "the server. Nothing is sent twice by itself.",
                file=sys.stderr,
            )
        uncertain = [m for m, state in now_in.items() if state is State.UNCERTAIN]
        if uncertain:
            print(
                f"mailer-gui: message {_numbers(uncertain)} went out whole, but the server's "
                "answer could not be written down: it may have arrived. Decide with "
                f"mailer-gui outbox resolve {_numbers(uncertain, sep=' ', dash='-')} --sent "
                "or --resend once there is space.",
                file=sys.stderr,
            )
    print(f"mailer-gui: sending stopped. {error}", file=sys.stderr)
    return EX_CANTCREAT if isinstance(error, OutboxFull) else EX_CONFIG


DEFERRED_NAMED = 5  # deferred messages a flush names with their reason; the rest are counted


def _deferred_lines(store: OutboxStore, now_in: Mapping[int, State]) -> list[str]:
    """Why each message this run deferred waits, and when it goes next."""
    deferred = sorted(message for message, state in now_in.items() if state is State.DEFERRED)
    lines = []
    for message in deferred[:DEFERRED_NAMED]:
        try:
            row = store.get(message)
        except OutboxError:
            continue
        reason = textwrap.shorten(
            without_retry_note(row.last_error or "") or "no reason was kept",
            width=200,
            placeholder=" …",
        )
        lines.append(
            f"mailer-gui: message {message} deferred, next try {_clock_time(row.due_at)}: {reason}"
        )
    if len(deferred) > DEFERRED_NAMED:
        lines.append(
            f"mailer-gui: and {len(deferred) - DEFERRED_NAMED} more deferred (mailer-gui outbox "
            "list --state deferred shows them)."
        )
    return lines


def _held_back(store: OutboxStore, now_in: Mapping[int, State]) -> list[str]:
    """Why messages of this run are still queued, untried: their account's
    server put off one of them just before (it could not be reached, or said
    421), so the others wait for its next try rather than asking it again at
    once. One line per account."""
    queued: dict[str, list[int]] = {}
    put_off: dict[str, MessageRow] = {}
    for message, state in sorted(now_in.items()):
        if state not in (State.QUEUED, State.DEFERRED):
            continue
        try:
            row = store.get(message)
        except OutboxError:
            continue
        if state is State.DEFERRED:
            put_off.setdefault(row.account, row)
        elif row.attempts == 0 or row.attempts == row.schedule_from:
            queued.setdefault(row.account, []).append(message)
    lines = []
    for account, messages in sorted(queued.items()):
        first = put_off.get(account)
        if first is None:
            continue
        numbers = ", ".join(str(m) for m in messages)
        them = f"message {numbers} was" if len(messages) == 1 else f"messages {numbers} were"
        lines.append(
            f"mailer-gui: {them} not tried: message {first.id} of {account} was put off just "
            "before (its server, or the DNS server, did not take it), and "
            f"{'it' if len(messages) == 1 else 'they'} would meet the same, so "
            f"{'it waits' if len(messages) == 1 else 'they wait'} for its next try "
            f"({_clock_time(first.due_at)}) instead of asking again at once. "
            "mailer-gui outbox flush tries again now."
        )
    return lines


def cmd_outbox_retry(args: argparse.Namespace, paths: AppPaths) -> int:
    store = _outbox(paths, recover=True)
    message = _message_number(args.id)
    try:
        store.retry_now(message)
    except OutboxError as exc:
        with contextlib.suppress(OutboxError):
            if store.get(message).state is State.UNCERTAIN:
                raise CliError(
                    f"Message {message} is uncertain: all of it went out but the server never "
                    "confirmed it, so it may have arrived. Run mailer-gui outbox resolve "
                    f"{message} --sent if it did, or --resend to send it again.",
                    EX_USAGE,
                ) from exc
        raise CliError(str(exc), EX_USAGE) from exc
    with contextlib.suppress(OutboxError):
        _ask_paused_passwords(paths, store, {store.get(message).account})
    runner = _runner(paths, store, False)
    runner.deliver_now(message=message)
    row = store.get(message)
    error = runner.errors.get(message)
    paused = _paused(store).get(row.account)
    _print_row(row, False, error, paused=paused, source=_source_of(paths, row.account))
    return _row_code(row, error, paused)


def cmd_outbox_cancel(args: argparse.Namespace, paths: AppPaths) -> int:
    store = _outbox(paths, recover=True)
    try:
        state = store.cancel(_message_number(args.id))
    except OutboxError as exc:
        raise CliError(str(exc), EX_USAGE) from exc
    if state is State.CANCELLED:
        print(f"Message {args.id} is cancelled; it will not be sent.")
        return EX_OK
    if state is State.SENDING:
        raise CliError(
            f"Message {args.id} is being sent right now by another Mailer: cancel it in the "
            "window, or stop that outbox flush with Ctrl+C (it gives its messages back to the "
            "queue), then cancel it here.",
            EX_TEMPFAIL,
        )
    raise CliError(f"Message {args.id} is {state.value} and can no longer be cancelled.", EX_USAGE)


def _message_numbers(texts: Sequence[str]) -> list[int]:
    """``["3", "21-25"]`` -> ``[3, 21, 22, 23, 24, 25]``: numbers and ranges, in order."""
    numbers: dict[int, None] = {}
    for text in texts:
        first, dash, last = text.replace("–", "-").partition("-")
        if not dash:
            numbers[_message_number(text)] = None
            continue
        low, high = _message_number(first), _message_number(last)
        if high < low or high - low >= 10_000:
            raise CliError(f"{text!r} is not a range of message numbers like 21-30.", EX_USAGE)
        numbers.update(dict.fromkeys(range(low, high + 1)))
    return list(numbers)


def cmd_outbox_resolve(args: argparse.Namespace, paths: AppPaths) -> int:
    store = _outbox(paths, recover=True)
    messages = _message_numbers(args.ids)
    decided: list[int] = []
    refused: list[str] = []
    rest: list[int] = []  # marked as sent, with recipients never sent it still to go
    for message in messages:
        try:
            state = store.resolve_uncertain(message, sent=args.sent)
        except OutboxError as exc:
            refused.append(str(exc))
        else:
            decided.append(message)
            if args.sent and state is State.QUEUED:
                rest.append(message)
    for text in refused:
        print(f"mailer-gui: {text}", file=sys.stderr)
    code = EX_USAGE if refused else EX_OK
    if args.sent:
        if decided:
            them = "Message" if len(decided) == 1 else "Messages"
            verb = "is" if len(decided) == 1 else "are"
            print(f"{them} {_numbers(decided)} {verb} marked as sent.")
        if rest:
            print(
                f"{'Message' if len(rest) == 1 else 'Messages'} {_numbers(rest)} still "
                f"{'has' if len(rest) == 1 else 'have'} recipients it never went to: "
                "queued for them (mailer-gui outbox flush sends them now)."
            )
        return code
    runner = _runner(paths, store, False) if decided else None
    codes = [code]
    for message in decided:
        assert runner is not None
        runner.deliver_now(message=message)
        row = store.get(message)
        error = runner.errors.get(message)
        _print_row(row, False, error)
        codes.append(_row_code(row, error))
    return next((c for c in codes if c != EX_OK), EX_OK)  # the first trouble's


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
    if isinstance(exc, NoPassword):
        return EX_CONFIG
    if isinstance(exc, AuthenticationError):
        return EX_TEMPFAIL if exc.transient else EX_NOPERM
    if isinstance(exc, SecurityPolicyError):
        return EX_CONFIG
    if isinstance(exc, TlsError | MessageRefused):
        return EX_UNAVAILABLE
    return EX_TEMPFAIL if exc.transient else EX_UNAVAILABLE


# --------------------------------------------------------------------- main

Handler = Callable[[argparse.Namespace, AppPaths], int]
_HANDLERS: dict[tuple[str, str | None], Handler] = {
    ("send", None): cmd_send,
    ("accounts", "password"): cmd_accounts_password,
    ("accounts", "default"): cmd_accounts_default,
    ("accounts", "detect"): cmd_accounts_detect,
    ("accounts", "setup"): cmd_accounts_setup,
    ("accounts", "show"): cmd_accounts_show,
    ("outbox", "list"): cmd_outbox_list,
    ("outbox", "show"): cmd_outbox_show,
    ("outbox", "flush"): cmd_outbox_flush,
    ("outbox", "retry"): cmd_outbox_retry,
    ("outbox", "cancel"): cmd_outbox_cancel,
    ("outbox", "resolve"): cmd_outbox_resolve,
    ("sandbox", None): sandbox_cli.run,
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
        with _terminate_as_interrupt():
            code = _run(handler, args, paths)
        sys.stdout.flush()  # a reader that went away shows here, not at exit
        return code
    except OSError as exc:
        if not _reader_gone(exc):
            raise
        # The reader went away (``mailer-gui outbox list | head``): what was
        # to be done is done; the rest of the output has nowhere to go.
        with contextlib.suppress(OSError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())  # nor when Python flushes it at exit
        return EX_BROKEN_PIPE


class Terminated(KeyboardInterrupt):
    """SIGTERM (`kill`, `timeout`), met as Ctrl+C is."""


@contextlib.contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM stops a command as Ctrl+C does, not where it stands: a message
    being built leaves no half-written file in the spool, one being sent goes
    back to the outbox at once and the command says so. A SIGTERM ignored
    when the command started stays ignored."""
    import signal

    if sys.platform == "win32" or threading.current_thread() is not threading.main_thread():
        yield
        return

    def terminate(_number: int, _frame: object) -> None:
        raise Terminated

    before = signal.getsignal(signal.SIGTERM)
    if before is signal.SIG_IGN:
        yield
        return
    signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, before if before is not None else signal.SIG_DFL)


def _reader_gone(exc: OSError) -> bool:
    """A write to a pipe whose reader closed it (Windows says EINVAL)."""
    return isinstance(exc, BrokenPipeError) or (os.name == "nt" and exc.errno == errno.EINVAL)


def _run(handler: Handler, args: argparse.Namespace, paths: AppPaths) -> int:
    """``handler``, with each expected failure as one line on stderr and its exit code."""
    try:
        return handler(args, paths)
    except CliError as exc:
        print(f"mailer-gui: {exc.message}", file=sys.stderr)
        return exc.code
    except secrets.SecretError as exc:
        print(f"mailer-gui: {exc}", file=sys.stderr)
        return EX_CONFIG
    except OutboxError as exc:
        # The outbox's files in the middle of a job (a damaged page, a full
        # disk): the error names the file and says what was kept.
        print(f"mailer-gui: {exc}", file=sys.stderr)
        return EX_CANTCREAT if isinstance(exc, OutboxFull) else EX_CONFIG
    except Cancelled:
        print("mailer-gui: cancelled.", file=sys.stderr)
        return EX_TEMPFAIL
    except SmtpError as exc:
        print(f"mailer-gui: {_describe_error(exc)}", file=sys.stderr)
        return _error_code(exc)
    except Terminated:
        print("mailer-gui: stopped (SIGTERM).", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        print("mailer-gui: interrupted.", file=sys.stderr)
        return 130
