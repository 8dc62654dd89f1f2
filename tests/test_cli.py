"""`mailer-gui accounts ...` and `mailer-gui send ...` against real loopback
servers, with the real Secret Service for the password."""

from __future__ import annotations

import base64
import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from mailer_gui import cli
from mailer_gui.accounts import secrets
from mailer_gui.accounts.store import AccountStore
from mailer_gui.outbox.store import OutboxStore, State
from mailer_gui.paths import resolve_paths
from tests.servers.aiosmtpd_server import HeldReply

PASSWORD = "cli-Pässw0rd-xyz"
USER = "ann@example.org"


def run(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    home: Path,
    *args: str,
    stdin: str = "",
) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    code = cli.main(["--home", str(home), *args])
    out, err = capsys.readouterr()
    return code, out, err


def secret_forms(password: str = PASSWORD) -> list[str]:
    raw = password.encode()
    return [
        password,
        base64.b64encode(raw).decode(),
        base64.b64encode(b"\0" + USER.encode() + b"\0" + raw).decode(),
    ]


def tree_text(home: Path) -> str:
    return "\n".join(
        p.read_bytes().decode("utf-8", "replace") for p in home.rglob("*") if p.is_file()
    )


@pytest.fixture
def tls_server(aiosmtpd_factory, trust_test_ca):
    return aiosmtpd_factory(tls="implicit", users={USER: PASSWORD}, auth_required=True)


def add_account(capsys, monkeypatch, home, server, *extra: str, password: str = PASSWORD):
    return run(
        capsys,
        monkeypatch,
        home,
        "accounts",
        "add",
        "work",
        "--email",
        USER,
        "--display-name",
        "Ann Example",
        "--host",
        "localhost",
        "--port",
        str(server.port),
        "--security",
        "tls",
        "--password-stdin",
        *extra,
        stdin=password + "\n",
    )


def test_account_lifecycle_with_real_keyring(
    secret_service, tls_server, tmp_path, capsys, monkeypatch
) -> None:
    code, out, err = add_account(capsys, monkeypatch, tmp_path, tls_server)
    assert code == 0, err
    assert "password in the keyring" in out
    # A profile kept with --home has a keyring service of its own.
    service = f"mailer-gui:{tmp_path}"
    assert resolve_paths(tmp_path).keyring_service == service
    import keyring

    assert keyring.get_password(service, "work") == PASSWORD
    assert keyring.get_password("mailer-gui", "work") is None
    accounts_file = tmp_path / "config" / "accounts.json"
    assert oct(accounts_file.stat().st_mode & 0o777) == "0o600"
    assert oct((tmp_path / "config").stat().st_mode & 0o777) == "0o700"

    code, out, _ = run(capsys, monkeypatch, tmp_path, "accounts", "list", "--json")
    (row,) = json.loads(out)
    assert row["name"] == "work" and row["default"] is True and row["port"] == tls_server.port

    code, out, err = run(capsys, monkeypatch, tmp_path, "accounts", "test", "work", "-v")
    assert code == 0, err
    assert "OK: work reached localhost" in out and "logged in" in out
    assert "C: AUTH" in err and "*****" in err

    code, out, err = run(
        capsys,
        monkeypatch,
        tmp_path,
        "send",
        "--to",
        "bob@example.org, carol@example.org",
        "--bcc",
        "dan@example.org",
        "--subject",
        "Grüße aus Köln",
        "--body",
        "# Minutes\n\n* one\n* two",
        "-v",
        "--json",
    )
    assert code == 0, err
    result = json.loads(out)
    assert result["outcome"] == "sent"
    assert [r["address"] for r in result["recipients"]] == [
        "bob@example.org",
        "carol@example.org",
        "dan@example.org",
    ]
    assert all(r["status"] == "accepted" and r["code"] == 250 for r in result["recipients"])
    (received,) = tls_server.wait_for_messages(1)
    assert received.auth_login == USER
    assert b"dan@example.org" not in received.content  # Bcc stays out of the headers
    assert b"text/html" in received.content and b"<li>one</li>" in received.content
    assert result["message_id"].encode() in received.content
    for form in secret_forms():
        assert form not in err and form not in out
        assert form not in tree_text(tmp_path)

    code, out, _ = run(capsys, monkeypatch, tmp_path, "accounts", "remove", "work")
    assert code == 0 and "Removed account work" in out
    assert keyring.get_password(service, "work") is None
    # The outbox keeps the sent message (for "save as .eml" and "send again").
    code, out, _ = run(capsys, monkeypatch, tmp_path, "outbox", "list", "--json")
    (row,) = json.loads(out)
    assert row["state"] == "sent" and row["message_id"] == result["message_id"]
    (spooled,) = tmp_path.rglob("*.eml")
    assert spooled.read_bytes() == received.content


def test_two_profiles_with_an_account_of_the_same_name_keep_their_own_passwords(
    secret_service, tls_server, tmp_path, capsys, monkeypatch
) -> None:
    mine, other = tmp_path / "mine", tmp_path / "other"
    code, _, err = add_account(capsys, monkeypatch, mine, tls_server)
    assert code == 0, err
    code, _, err = add_account(capsys, monkeypatch, other, tls_server, password="not-" + PASSWORD)
    assert code == 0, err
    # The second profile's password did not replace the first's: "work" still logs in there.
    code, out, err = run(capsys, monkeypatch, mine, "accounts", "test", "work")
    assert code == 0 and "logged in" in out, err
    code, _, err = run(capsys, monkeypatch, other, "accounts", "test", "work")
    assert code == cli.EX_NOPERM, err
    # Removing the other profile's "work" takes its own password only.
    code, out, _ = run(capsys, monkeypatch, other, "accounts", "remove", "work")
    assert code == 0 and "Removed account work" in out
    code, out, err = run(capsys, monkeypatch, mine, "accounts", "test", "work")
    assert code == 0 and "logged in" in out, err
    code, out, _ = run(capsys, monkeypatch, mine, "accounts", "remove", "work")
    assert code == 0


@pytest.fixture
def command_account(tmp_path, capsys, monkeypatch):
    """An account whose password comes from a command, for tests not about the keyring."""

    def make(server, security: str = "tls", password: str = PASSWORD, *extra: str) -> Path:
        secret_file = tmp_path / "pw"
        secret_file.write_text(password + "\n")
        code, _, err = run(
            capsys,
            monkeypatch,
            tmp_path / "home",
            "accounts",
            "add",
            "work",
            "--email",
            USER,
            "--host",
            "localhost",
            "--port",
            str(server.port),
            "--security",
            security,
            "--password-command",
            f"cat {secret_file}",
            *extra,
        )
        assert code == 0, err
        return tmp_path / "home"

    return make


def add_plain_account(capsys, monkeypatch, home: Path, name: str, port: int) -> None:
    """An account with no TLS and no login, for a server on 127.0.0.1:``port``."""
    code, _, err = run(
        capsys, monkeypatch, home, "accounts", "add", name, "--email", USER,
        "--host", "127.0.0.1", "--port", str(port), "--security", "none", "--auth", "none",
    )  # fmt: skip
    assert code == 0, err


def queue_numbered(capsys, monkeypatch, home: Path, count: int) -> None:
    """``send --later`` of messages 1 to ``count``, to r1@example.org and so on."""
    for number in range(1, count + 1):
        code, _, err = run(
            capsys, monkeypatch, home, "send", "--later", "--to", f"r{number}@example.org",
            "--subject", f"Number {number}", "--body", "Hello",
        )  # fmt: skip
        assert code == 0, err


def send_args(*extra: str) -> list[str]:
    return ["send", "--to", "bob@example.org", "--subject", "Hi", "--body", "Hello", *extra]


def test_wrong_password_exits_77(tls_server, command_account, capsys, monkeypatch) -> None:
    home = command_account(tls_server, password="not-the-password")
    code, out, err = run(capsys, monkeypatch, home, *send_args())
    assert code == cli.EX_NOPERM
    assert "535" in err and "password" in err.lower()
    # The way out fits an account that runs a command: no password to type or store.
    assert "Make the password command of work print the right one, then run " in err
    assert "'mailer-gui accounts password work' (it runs the command)" in err
    assert "Traceback" not in err
    assert "not-the-password" not in err + out


def test_a_command_account_paused_for_its_password_sends_again_once_fixed(
    tls_server, command_account, tmp_path, capsys, monkeypatch
) -> None:
    """No terminal needed (a cron job's account): `accounts password NAME` runs
    the command and lets the account send again; so does a login that works
    in `accounts test NAME`. Before, only typing the password at a terminal did."""
    home = command_account(tls_server, password="not-the-password")
    assert run(capsys, monkeypatch, home, *send_args())[0] == cli.EX_NOPERM
    (tmp_path / "pw").write_text("")  # a command that prints nothing: still paused
    code, _, err = run(capsys, monkeypatch, home, "accounts", "password", "work")
    assert code == cli.EX_CONFIG and "printed nothing" in err and "Nothing was changed" in err
    assert run(capsys, monkeypatch, home, "outbox", "flush")[0] == cli.EX_CONFIG
    (tmp_path / "pw").write_text(PASSWORD + "\n")
    code, out, err = run(capsys, monkeypatch, home, "accounts", "password", "work")
    assert code == 0, err
    assert "takes its password from a command, which gave one now" in out
    code, out, _ = run(capsys, monkeypatch, home, "outbox", "flush")
    assert code == 0 and "This run: 1 sent." in out
    assert len(tls_server.wait_for_messages(1)) == 1

    (tmp_path / "pw").write_text("not-the-password\n")
    assert run(capsys, monkeypatch, home, *send_args())[0] == cli.EX_NOPERM
    (tmp_path / "pw").write_text(PASSWORD + "\n")
    code, out, _ = run(capsys, monkeypatch, home, "accounts", "test", "work")
    assert code == 0 and "logged in" in out
    assert "It was paused (needs password); it sends again" in out
    code, out, _ = run(capsys, monkeypatch, home, "outbox", "flush")
    assert code == 0 and "This run: 1 sent." in out
    code, out, _ = run(capsys, monkeypatch, home, "accounts", "test", "work")
    assert code == 0 and "paused" not in out  # nothing to say when it was not
    assert PASSWORD not in tree_text(home)


def test_messages_of_a_paused_or_removed_account_say_what_they_wait_for(
    tls_server, command_account, capsys, monkeypatch
) -> None:
    """A wrong password pauses the account: `send --json` carries the pause,
    `outbox list` says for each waiting message that it waits for the account
    (not only beside the one that met the 535), and `outbox show` says so for
    its next try and names the attempt's end in words. Once the account is
    removed, they say that instead; once cancelled, no "will try again"."""
    home = command_account(tls_server, password="not-the-password")
    assert run(capsys, monkeypatch, home, *send_args())[0] == cli.EX_NOPERM
    code, out, _ = run(capsys, monkeypatch, home, *send_args("--json"))
    assert code == cli.EX_CONFIG
    document = json.loads(out)
    assert document["paused"]["account"] == "work"
    assert document["paused"]["state"] == "needs password"
    assert "535" in document["error"]
    code, out, _ = run(capsys, monkeypatch, home, "outbox", "list")
    waits = [line for line in out.splitlines() if "Waits for the account work, paused" in line]
    assert code == 0 and len(waits) == 2, out
    code, out, _ = run(capsys, monkeypatch, home, "outbox", "show", "1")
    assert "Next try:   Waits for the account work, paused (needs password)" in out
    assert re.search(r"Attempt 1 at \S+: account paused", out), out
    assert "pause-account" not in out
    code, out, _ = run(capsys, monkeypatch, home, "accounts", "list")
    assert "\tpaused (needs password)" in out
    code, out, _ = run(capsys, monkeypatch, home, "accounts", "list", "--json")
    assert json.loads(out)[0]["paused"]["state"] == "needs password"

    code, _, err = run(capsys, monkeypatch, home, "accounts", "remove", "work")
    assert code == 0
    assert "messages 1–2 of work wait in the outbox, and nothing sends them" in err, err
    assert "mailer-gui outbox cancel ID, for each" in err
    code, out, _ = run(capsys, monkeypatch, home, "outbox", "list")
    assert out.count("Waits for the account work, which is not set up any more") == 2, out
    assert "paused" not in out
    code, out, err = run(capsys, monkeypatch, home, "outbox", "flush")
    assert "messages 1–2 wait for the account work, which is not set up any more" in err, err
    assert "paused" not in err and "accounts password" not in err
    assert run(capsys, monkeypatch, home, "outbox", "cancel", "1")[0] == 0
    code, out, _ = run(capsys, monkeypatch, home, "outbox", "list", "--state", "cancelled")
    assert "535" in out and "try again" not in out and "retry" not in out, out
    code, out, _ = run(capsys, monkeypatch, home, "outbox", "list", "--json")
    (cancelled,) = [m for m in json.loads(out) if m["state"] == "cancelled"]
    assert "535" in cancelled["last_error"] and "retry" not in cancelled["last_error"]


def test_rejected_and_deferred_recipients(
    aiosmtpd_factory, trust_test_ca, command_account, capsys, monkeypatch
) -> None:
    server = aiosmtpd_factory(
        tls="implicit",
        users={USER: PASSWORD},
        rcpt_replies={
            "gone@example.org": "550 5.1.1 No such user",
            "gone2@example.org": "550 5.1.1 No such user",
            "later@example.org": "450 4.2.1 Mailbox busy",
        },
    )
    home = command_account(server)
    code, out, _ = run(
        capsys,
        monkeypatch,
        home,
        "send",
        "--to",
        "gone@example.org",
        "--subject",
        "x",
        "--body",
        "y",
        "--json",
    )
    assert code == cli.EX_UNAVAILABLE
    (r,) = json.loads(out)["recipients"]
    assert (r["status"], r["code"], r["enhanced"]) == ("rejected", 550, "5.1.1")
    assert r["text"] == "No such user"

    # In words: the reply with its code, then once what it means and what to do.
    code, out, err = run(
        capsys, monkeypatch, home, "send", "--to", "gone@example.org, ok@example.org",
        "--subject", "x", "--body", "y",
    )  # fmt: skip
    assert code == cli.EX_UNAVAILABLE
    assert "rejected  gone@example.org: 550 5.1.1 No such user" in out
    assert "accepted  ok@example.org: 250" in out
    assert err.count("the recipient address does not exist (550 5.1.1)") == 1, err
    assert "Check the spelling of the address" in err
    assert "No such user" not in err  # not the reason again

    code, out, _ = run(
        capsys,
        monkeypatch,
        home,
        "send",
        "--to",
        "later@example.org,ok@example.org",
        "--subject",
        "x",
        "--body",
        "y",
    )
    assert code == cli.EX_TEMPFAIL
    assert "deferred  later@example.org" in out
    assert "accepted  ok@example.org" in out
    # The 450 in plain words too, once, and not the server's words again.
    code, out, err = run(
        capsys, monkeypatch, home, "send", "--to", "later@example.org, ok@example.org",
        "--subject", "x", "--body", "y",
    )  # fmt: skip
    assert "deferred  later@example.org: 450 4.2.1 Mailbox busy" in out
    assert err.count("(450 4.2.1)") == 1, err
    assert "later@example.org: Mailbox busy" not in err

    # One recipient: nothing said about "the other recipients".
    code, out, err = run(
        capsys, monkeypatch, home, "send", "--to", "gone@example.org", "--subject", "x",
        "--body", "y",
    )  # fmt: skip
    assert code == cli.EX_UNAVAILABLE
    assert "does not exist (550 5.1.1)" in err and "other recipients" not in err
    # Nor when every recipient was refused: none took it.
    code, out, err = run(
        capsys, monkeypatch, home, "send", "--to", "gone@example.org, gone2@example.org",
        "--subject", "x", "--body", "y",
    )  # fmt: skip
    assert code == cli.EX_UNAVAILABLE
    assert "does not exist (550 5.1.1)" in err and "other recipients" not in err
    # Some took it: the refused one does not keep them from getting it.
    code, out, err = run(
        capsys, monkeypatch, home, "send", "--to", "gone@example.org, ok@example.org",
        "--subject", "x", "--body", "y",
    )  # fmt: skip
    assert "The other recipients are not affected." in err


def test_server_down_exits_75(tmp_path, capsys, monkeypatch) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    home = tmp_path
    code, _, err = run(
        capsys,
        monkeypatch,
        home,
        "accounts",
        "add",
        "down",
        "--email",
        USER,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--security",
        "none",
        "--auth",
        "none",
    )
    assert code == 0, err
    code, out, err = run(capsys, monkeypatch, home, *send_args())
    assert code == cli.EX_TEMPFAIL
    assert "refused the connection" in out and "stays in the outbox" in err


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--to", "not-an-address"], "not an email address"),
        (["--to", "a@b..c"], "not a valid domain"),
        (["--to", "a@example.org", "--subject", "x\r\nBcc: evil@example.org"], "line break"),
        (["--to", "a@example.org", "--attach", "/nonexistent/file.pdf"], "/nonexistent/file.pdf"),
        (["--to", "a@example.org", "--header", "Bad Header"], "Name: value"),
    ],
)
def test_bad_input_exits_65(
    tls_server, command_account, capsys, monkeypatch, args: list[str], words: str
) -> None:
    home = command_account(tls_server)
    base = ["send", "--subject", "Hi", "--body", "Hello"]
    code, _, err = run(capsys, monkeypatch, home, *base, *args)
    assert code == cli.EX_DATAERR, err
    assert words in err
    assert "Traceback" not in err
    assert tls_server.messages == []


def test_usage_errors_exit_64(tls_server, command_account, capsys, monkeypatch) -> None:
    home = command_account(tls_server)
    with pytest.raises(SystemExit) as info:
        run(capsys, monkeypatch, home, "send", "--bogus")
    assert info.value.code == cli.EX_USAGE
    code, _, err = run(capsys, monkeypatch, home, "send", "--to", "a@example.org")
    assert code == cli.EX_USAGE and "--subject" in err
    code, _, err = run(capsys, monkeypatch, home, *send_args("--notify", "always"))
    assert code == cli.EX_USAGE and "--notify" in err
    assert tls_server.messages == []


@pytest.mark.needs_server("smtp-sink")
def test_what_eml_cannot_carry_is_refused_and_its_notify_goes(
    smtp_sink_factory, tmp_path, capsys, monkeypatch
) -> None:
    """`send --eml` sends the file as it is: an option that would change the
    message is refused (before, it was dropped without a word and the exit was
    0); --notify, which is the envelope's, goes with it (smtp-sink offers DSN)."""
    sink = smtp_sink_factory(dump=True)
    home = tmp_path / "home"
    add_plain_account(capsys, monkeypatch, home, "plain", sink.port)
    eml = tmp_path / "ready.eml"
    eml.write_bytes(b"From: ann@example.org\r\nTo: bob@example.org\r\nSubject: ready\r\n\r\nHi\r\n")
    for extra in (["--subject", "other"], ["--attach", str(eml)], ["--priority", "high"]):
        code, _, err = run(capsys, monkeypatch, home, "send", "--eml", str(eml), *extra)
        assert code == cli.EX_USAGE, err
        assert f"so {extra[0]} cannot go with it" in err and "Nothing was sent" in err
    assert b"Subject" not in sink.read_dump()
    code, _, err = run(capsys, monkeypatch, home, "send", "--eml", str(eml), "--notify", "failure")
    assert code == 0, err
    deadline = time.monotonic() + 10
    while b"Subject: ready" not in sink.read_dump() and time.monotonic() < deadline:
        time.sleep(0.05)
    dump = sink.read_dump()
    assert b"X-Rcpt-Args: <bob@example.org> NOTIFY=FAILURE" in dump
    assert dump.count(b"Subject: ready") == 1


def test_an_image_the_text_shows_but_was_not_given_is_named(tmp_path, capsys, monkeypatch) -> None:
    """`![chart](chart.png)` without `--inline chart.png` went without a word:
    the recipient saw only "chart"."""
    home = tmp_path / "home"
    add_plain_account(capsys, monkeypatch, home, "plain", 9)  # queued only
    chart = tmp_path / "chart.png"
    chart.write_bytes(b"\x89PNG\r\n\x1a\n")
    body = "![chart](chart.png) and ![logo](https://example.org/logo.png)"
    base = ["send", "--to", "bob@example.org", "--subject", "Hi", "--body", body, "--later"]
    code, _, err = run(capsys, monkeypatch, home, *base)
    assert code == 0
    assert "shows the image 'chart.png', which was not given with --inline chart.png" in err
    assert "logo" not in err  # from the web: not a file to give
    code, _, err = run(capsys, monkeypatch, home, *base, "--inline", str(chart))
    assert code == 0 and "not given" not in err


def test_a_body_too_large_to_be_text_is_refused(tmp_path, capsys, monkeypatch) -> None:
    """`--body-file /dev/zero` ended in MemoryError; a body is read up to a limit."""
    home = tmp_path / "home"
    add_plain_account(capsys, monkeypatch, home, "plain", 9)  # never reached
    monkeypatch.setattr(cli, "MAX_BODY_BYTES", 1000)
    big = tmp_path / "big.txt"
    big.write_text("x" * 1001)
    for body in (["--body-file", str(big)], ["--body-file", "-"]):
        code, _, err = run(
            capsys, monkeypatch, home, "send", "--to", "bob@example.org", "--subject", "Hi",
            *body, stdin="y" * 1001,
        )  # fmt: skip
        assert code == cli.EX_DATAERR, err
        assert "is larger than 1000 bytes; send that much as an attachment" in err
    big.write_text("x" * 1000)
    code, _, err = run(
        capsys, monkeypatch, home, "send", "--to", "bob@example.org", "--subject", "Hi",
        "--body-file", str(big), "--later",
    )  # fmt: skip
    assert code == 0, err


def test_outbox_commands_with_an_unusable_home_or_number_say_so(
    tmp_path, capsys, monkeypatch
) -> None:
    home = tmp_path / "a-file"
    home.write_text("")
    code, _, err = run(capsys, monkeypatch, home, "outbox", "list")
    assert code == cli.EX_CONFIG
    assert f"The outbox folder {home / 'data'} cannot be made or used (Not a directory)" in err
    for number in ("99999999999999999999999", "0", "-3"):
        code, _, err = run(capsys, monkeypatch, tmp_path / "home", "outbox", "show", number)
        assert code == cli.EX_USAGE and "is not a message number" in err, err


def test_account_options_that_cannot_work_say_what_is_wrong(tmp_path, capsys, monkeypatch) -> None:
    base = ["accounts", "add", "x", "--email", USER]
    code, _, err = run(capsys, monkeypatch, tmp_path, *base, "--host", "h", "--port", "99999")
    assert code == cli.EX_USAGE and "The port 99999 is not between 1 and 65535" in err
    code, _, err = run(capsys, monkeypatch, tmp_path, *base, "--host", "h", "--port", "five")
    assert code == cli.EX_USAGE and "'five' is not a whole number" in err
    code, _, err = run(
        capsys, monkeypatch, tmp_path, *base, "--kind", "direct", "--host", "127.0.0.1"
    )
    assert code == cli.EX_USAGE and "--host 127.0.0.1 has no use with it" in err
    code, _, err = run(
        capsys, monkeypatch, tmp_path, *base, "--kind", "direct", "--password-stdin",
        stdin="secret\n",
    )  # fmt: skip
    assert code == cli.EX_USAGE and "--password-stdin has no use with it" in err
    for extra in (["--auth", "plain"], ["--security", "tls"], ["--allow-insecure-auth"]):
        code, _, err = run(capsys, monkeypatch, tmp_path, *base, "--kind", "direct", *extra)
        assert code == cli.EX_USAGE and f"{extra[0]} " in err and "has no use with it" in err
    code, _, err = run(capsys, monkeypatch, tmp_path, *base, "--kind", "direct", "--port", "0")
    assert code == cli.EX_USAGE and "delivering directly, mail servers listen on 25" in err

    # A direct account shows what it uses: no server, login or password of a relay.
    code, _, err = run(capsys, monkeypatch, tmp_path, *base, "--kind", "direct")
    assert code == 0, err
    code, out, _ = run(capsys, monkeypatch, tmp_path, "accounts", "show", "x", "--json")
    shown = json.loads(out)
    assert shown["kind"] == "direct" and shown["port"] == 25
    assert not {"host", "security", "auth", "secret_source", "password"} & set(shown)
    assert run(capsys, monkeypatch, tmp_path, "accounts", "remove", "x")[0] == 0
    assert json.loads(run(capsys, monkeypatch, tmp_path, "accounts", "list", "--json")[1]) == []


def test_an_unknown_option_is_told_with_its_command_usage(tmp_path, capsys, monkeypatch) -> None:
    with pytest.raises(SystemExit) as info:
        run(capsys, monkeypatch, tmp_path, "send", "--sbject", "x")
    assert info.value.code == cli.EX_USAGE
    err = capsys.readouterr().err
    assert err.startswith("usage: mailer-gui send ") and "unrecognized arguments: --sbject x" in err
    with pytest.raises(SystemExit):
        run(capsys, monkeypatch, tmp_path, "outbox", "list", "--bogus")
    assert capsys.readouterr().err.startswith("usage: mailer-gui outbox list ")


def test_unknown_account_exits_78(tmp_path, capsys, monkeypatch) -> None:
    code, _, err = run(capsys, monkeypatch, tmp_path, *send_args("--account", "nope"))
    assert code == cli.EX_CONFIG
    code, _, err = run(capsys, monkeypatch, tmp_path, *send_args())
    assert code == cli.EX_CONFIG and "No account is set up" in err


def test_the_default_account_is_kept_when_accounts_come_and_go(
    tmp_path, capsys, monkeypatch
) -> None:
    """Three accounts added without --default, the first one removed: `send`
    without --account still has a default (before: "No account is set up")."""
    home = tmp_path / "home"
    for name in ("first", "second", "third"):
        add_plain_account(capsys, monkeypatch, home, name, 9)
    code, out, _ = run(capsys, monkeypatch, home, "accounts", "list")
    assert out.splitlines()[0].startswith("* first")
    code, out, _ = run(capsys, monkeypatch, home, "accounts", "remove", "first")
    assert code == 0 and "The default account is now second." in out
    assert "keyring" not in out  # it kept no password there: nothing to say about it
    code, out, err = run(capsys, monkeypatch, home, *send_args("--later"))
    assert code == 0, err
    assert "second" in run(capsys, monkeypatch, home, "outbox", "list")[1]
    # No default on purpose (the file edited by hand): the accounts are named.
    AccountStore(resolve_paths(home).accounts_file).set_default(None)
    code, _, err = run(capsys, monkeypatch, home, *send_args())
    assert code == cli.EX_CONFIG
    assert "No account is marked as the default among second, third" in err


def test_no_password_available_exits_78(
    secret_service, tls_server, tmp_path, capsys, monkeypatch
) -> None:
    code, _, err = run(
        capsys,
        monkeypatch,
        tmp_path,
        "accounts",
        "add",
        "work",
        "--email",
        USER,
        "--host",
        "localhost",
        "--port",
        str(tls_server.port),
        "--security",
        "tls",
    )
    assert code == 0, err
    code, _, err = run(capsys, monkeypatch, tmp_path, *send_args())
    assert code == cli.EX_CONFIG
    assert "No password is stored" in err


def test_a_missing_password_is_explained_for_what_was_asked(
    tls_server, tmp_path, capsys, monkeypatch
) -> None:
    """With no terminal and no password kept: `send` says its message waits,
    `accounts test` (which queues nothing) does not."""
    add_asked_account(capsys, monkeypatch, tmp_path, tls_server)
    code, _, err = run(capsys, monkeypatch, tmp_path, "accounts", "test", "work")
    assert code == cli.EX_CONFIG
    assert "Run this command in a terminal to type it (the account work keeps none)." in err
    assert "outbox" not in err
    code, _, err = run(capsys, monkeypatch, tmp_path, *send_args())
    assert code == cli.EX_CONFIG
    assert "(the account work keeps none); the messages wait in the outbox." in err


def test_no_keyring_backend_adds_nothing(tls_server, tmp_path, capsys, monkeypatch) -> None:
    import keyring
    from keyring.backends import fail

    previous = keyring.get_keyring()
    keyring.set_keyring(fail.Keyring())
    try:
        code, _, err = add_account(capsys, monkeypatch, tmp_path, tls_server)
    finally:
        keyring.set_keyring(previous)
    assert code == cli.EX_CONFIG
    assert "--password-command" in err
    assert PASSWORD not in tree_text(tmp_path) if tmp_path.exists() else True
    code, out, _ = run(capsys, monkeypatch, tmp_path, "accounts", "list", "--json")
    assert json.loads(out) == []


def test_python_m_entry_point(tls_server, command_account, tmp_path, ca_bundle) -> None:
    home = command_account(tls_server)
    env = dict(os.environ, SSL_CERT_FILE=str(ca_bundle))
    done = subprocess.run(
        [sys.executable, "-m", "mailer_gui", "--home", str(home), *send_args("--format", "plain")],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "accepted  bob@example.org" in done.stdout
    (received,) = tls_server.wait_for_messages(1)
    assert b"text/html" not in received.content


def test_a_reader_that_goes_away_stops_nothing(aiosmtpd_factory, tmp_path) -> None:
    """``mailer-gui send -v 2>&1 | head -1``: the pipe closes while the message
    is on its way. The message is still delivered and recorded, and listing the
    outbox into a closed pipe ends quietly, with no traceback."""
    server = aiosmtpd_factory()
    home = tmp_path / "home"
    base = [sys.executable, "-m", "mailer_gui", "--home", str(home)]
    subprocess.run(
        [*base, "accounts", "add", "plain", "--email", USER, "--host", "127.0.0.1",
         "--port", str(server.port), "--security", "none", "--auth", "none"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    read, write = os.pipe()
    os.close(read)  # nobody will read: every line written fails with EPIPE
    try:
        done = subprocess.run(
            [*base, *send_args("-v")], stdout=write, stderr=write, timeout=60, check=False
        )
    finally:
        os.close(write)
    assert done.returncode == cli.EX_BROKEN_PIPE  # the result could not be printed
    (received,) = server.wait_for_messages(1)
    assert received.rcpt_tos == ["bob@example.org"]
    store = OutboxStore(resolve_paths(home).database, resolve_paths(home).spool_dir)
    assert store.counts() == {State.SENT: 1}  # not left "sending" half-way
    store.close()

    listing = subprocess.Popen(
        [*base, "outbox", "list"], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert listing.stdout is not None and listing.stderr is not None
    listing.stdout.close()
    error = listing.stderr.read()
    assert listing.wait(timeout=60) == cli.EX_BROKEN_PIPE
    assert b"Traceback" not in error and error == b""

    # An error whose one line cannot reach a closed stderr either (an uncaught
    # exception would end with exit 1 instead).
    read, write = os.pipe()
    os.close(read)
    try:
        done = subprocess.run(
            [*base, "outbox", "show", "9999"], stderr=write, timeout=60, check=False
        )
    finally:
        os.close(write)
    assert done.returncode == cli.EX_BROKEN_PIPE


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
@pytest.mark.parametrize(
    ("where", "stop", "code"),
    [
        ("before any reply", signal.SIGINT, 130),
        ("waiting for the final reply", signal.SIGINT, 130),
        ("before any reply", signal.SIGTERM, 143),
    ],
)
def test_ctrl_c_during_send_gives_the_message_back_at_once(
    aiosmtpd_factory, tmp_path, where: str, stop: signal.Signals, code: int
) -> None:
    """Ctrl+C (or SIGTERM) while `send` waits on the server: the command says
    where the message stands, and it is queued (nothing went out) or uncertain
    (the "." had left) at once, not `sending` until its lease runs out; it can
    be cancelled or resolved straight away."""
    held = HeldReply()
    if where == "before any reply":
        listener = socket.create_server(("127.0.0.1", 0))  # accepts, never greets
        port = listener.getsockname()[1]
        accepted: list[socket.socket] = []

        def accept() -> None:
            accepted.append(listener.accept()[0])
            held.reached.set()

        threading.Thread(target=accept, daemon=True).start()
    else:
        port = aiosmtpd_factory(on_data=held).port
    home = tmp_path / "home"
    base = [sys.executable, "-m", "mailer_gui", "--home", str(home)]
    subprocess.run(
        [*base, "accounts", "add", "plain", "--email", USER, "--host", "127.0.0.1",
         "--port", str(port), "--security", "none", "--auth", "none"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    sending = subprocess.Popen(
        [*base, *send_args()], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    try:
        assert held.reached.wait(30), "the send never reached the server"
        sending.send_signal(stop)
        _, err = sending.communicate(timeout=30)
    finally:
        if sending.poll() is None:
            sending.kill()
            sending.wait(10)
        held.release()
        if where == "before any reply":
            listener.close()
            for connection in accepted:
                connection.close()
    assert sending.returncode == code
    assert "Traceback" not in err
    listed = subprocess.run(
        [*base, "outbox", "list", "--json"], capture_output=True, text=True, timeout=60
    )
    (row,) = json.loads(listed.stdout)
    if where == "before any reply":
        assert "Message 1 was not sent; it waits in the outbox" in err
        assert "outbox cancel 1 drops it" in err
        assert row["state"] == "queued"
        done = subprocess.run(
            [*base, "outbox", "cancel", "1"], capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0 and "cancelled" in done.stdout
    else:
        assert "Message 1 went out whole but the server had not confirmed it" in err
        assert "outbox resolve 1 --sent" in err
        assert row["state"] == "uncertain"
    # The runner's files went with it.
    assert not list(resolve_paths(home).database.parent.glob("*.marks/*"))


def test_untrusted_certificate_is_shown_with_its_fingerprint(
    aiosmtpd_factory, self_signed_cert, tmp_path, capsys, monkeypatch
) -> None:
    server = aiosmtpd_factory(tls="implicit", cert=self_signed_cert, users={USER: PASSWORD})
    home = tmp_path / "home"
    secret_file = tmp_path / "pw"
    secret_file.write_text(PASSWORD)
    common = ["--email", USER, "--host", "localhost", "--port", str(server.port)]
    command = ["--security", "tls", "--password-command", f"cat {secret_file}"]
    code, _, err = run(capsys, monkeypatch, home, "accounts", "add", "self", *common, *command)
    assert code == 0, err
    code, _, err = run(capsys, monkeypatch, home, "accounts", "test", "self")
    assert code == cli.EX_UNAVAILABLE
    assert "self-signed" in err
    assert f"--tls-fingerprint {self_signed_cert.sha256}" in err
    # Pinning the fingerprint shown makes it work.
    pin = ["--tls-fingerprint", self_signed_cert.sha256]
    code, _, err = run(
        capsys, monkeypatch, home, "accounts", "add", "pinned", *common, *command, *pin
    )
    assert code == 0, err
    code, out, err = run(capsys, monkeypatch, home, "accounts", "test", "pinned")
    assert code == 0, err
    assert "logged in" in out


def test_send_rich_options_and_save_eml(
    tls_server, command_account, tmp_path, capsys, monkeypatch
) -> None:
    home = command_account(tls_server)
    image = tmp_path / "logo.png"
    image.write_bytes(b"\x89PNG\r\n\x1a\nfake")
    saved = tmp_path / "out" / "sent.eml"
    saved.parent.mkdir()
    code, _out, err = run(
        capsys, monkeypatch, home, "send",
        "--to", "bob@example.org", "--reply-to", "list@example.org",
        "--subject", "Logo", "--body", "Here: ![logo](logo.png)",
        "--inline", str(image), "--priority", "high", "--notify", "success,failure",
        "--save-eml", str(saved), "-v",
    )  # fmt: skip
    assert code == 0, err
    (received,) = tls_server.wait_for_messages(1)
    assert received.content.replace(b"\r\n", b"\n") == saved.read_bytes().replace(b"\r\n", b"\n")
    assert b"multipart/related" in received.content
    assert b"X-Priority: 1 (Highest)" in received.content
    assert b"Reply-To: list@example.org" in received.content
    # aiosmtpd offers no DSN, so NOTIFY is left out rather than refused.
    assert "NOTIFY" not in err


def test_send_prepared_eml(tls_server, command_account, tmp_path, capsys, monkeypatch) -> None:
    home = command_account(tls_server)
    prepared = tmp_path / "prepared.eml"
    prepared.write_bytes(
        b"From: Ann <ann@example.org>\nTo: bob@example.org\nBcc: hidden@example.org\n"
        b"Subject: prepared\n\nBody text.\n"
    )
    code, out, err = run(capsys, monkeypatch, home, "send", "--eml", str(prepared), "--json")
    assert code == 0, err
    result = json.loads(out)
    assert [r["address"] for r in result["recipients"]] == ["bob@example.org", "hidden@example.org"]
    (received,) = tls_server.wait_for_messages(1)
    assert received.rcpt_tos == ["bob@example.org", "hidden@example.org"]
    assert b"hidden@example.org" not in received.content
    assert received.content.endswith(b"Body text.\r\n")
    code, _, err = run(capsys, monkeypatch, home, "send", "--eml", str(tmp_path / "none.eml"))
    assert code == cli.EX_DATAERR and "none.eml" in err


def test_outbox_list_cuts_a_long_reason_at_a_word_and_shows_it_cut(
    aiosmtpd_factory, tmp_path, capsys, monkeypatch
) -> None:
    words = "Mailbox unavailable: the quota of this recipient is used up, ask them to " * 4
    server = aiosmtpd_factory(on_rcpt=lambda address, options: f"550 5.2.2 {words.strip()}")
    home = tmp_path / "home"
    add_plain_account(capsys, monkeypatch, home, "plain", server.port)
    code, out, _ = run(capsys, monkeypatch, home, *send_args("--json"))
    assert code == cli.EX_UNAVAILABLE
    message = json.loads(out)["id"]
    code, out, _ = run(capsys, monkeypatch, home, "outbox", "list")
    reason = out.splitlines()[1].strip()
    assert reason.startswith("bob@example.org: ") and reason.endswith(" …")
    assert len(reason) <= 160
    assert words.strip().startswith(reason.removeprefix("bob@example.org: ").removesuffix(" …"))
    code, out, _ = run(capsys, monkeypatch, home, "outbox", "show", str(message))
    assert words.strip() in " ".join(out.split())  # the whole reason, where it is asked for


def test_an_international_domain_is_shown_in_its_own_letters(
    aiosmtpd_factory, tmp_path, capsys, monkeypatch
) -> None:
    """x@bücher.test goes out as x@xn--bcher-kva.test (no SMTPUTF8 needed), and
    the person reads it back as typed: in send, outbox show and outbox list."""
    asked: list[str] = []

    def refuse_the_idn(address: str, options: list[str]) -> str | None:
        asked.append(address)
        return "550 5.1.1 No such user" if "xn--" in address else None

    server = aiosmtpd_factory(on_rcpt=refuse_the_idn)
    home = tmp_path / "home"
    add_plain_account(capsys, monkeypatch, home, "plain", server.port)
    code, out, err = run(
        capsys, monkeypatch, home, "send", "--to", "x@bücher.test", "--to", "bob@example.org",
        "--subject", "IDN", "--body", "hi", "--json",
    )  # fmt: skip
    assert code == cli.EX_UNAVAILABLE, err
    message = json.loads(out)["id"]
    assert asked == ["x@xn--bcher-kva.test", "bob@example.org"]
    assert server.messages[0].rcpt_tos == ["bob@example.org"]
    code, out, err = run(capsys, monkeypatch, home, "outbox", "show", str(message))
    assert "rejected  to  x@bücher.test 550 5.1.1 No such user" in out
    assert "xn--" not in out  # the attempt's reason too
    code, out, err = run(capsys, monkeypatch, home, "outbox", "list")
    assert "refused for good: x@bücher.test (550 5.1.1 No such user)" in out


def test_outbox_commands(aiosmtpd_factory, tmp_path, capsys, monkeypatch) -> None:
    tries: dict[str, int] = {}

    def greylist(address: str, options: list[str]) -> str | None:
        tries[address] = tries.get(address, 0) + 1
        return "451 4.7.1 Greylisted" if tries[address] == 1 else None

    server = aiosmtpd_factory(on_rcpt=greylist)
    home = tmp_path / "home"
    common = ["--email", USER, "--host", "127.0.0.1", "--port", str(server.port)]
    code, _, err = run(
        capsys, monkeypatch, home, "accounts", "add", "plain", *common,
        "--security", "none", "--auth", "none",
    )  # fmt: skip
    assert code == 0, err

    # Deferred: exit 75, and the message stays in the outbox.
    code, out, err = run(capsys, monkeypatch, home, *send_args("--json"))
    assert code == cli.EX_TEMPFAIL
    first = json.loads(out)
    assert first["state"] == "deferred" and first["recipients"][0]["code"] == 451
    assert "stays in the outbox" not in err  # JSON mode prints the document only

    # Queued for later: nothing is sent.
    code, out, _ = run(capsys, monkeypatch, home, *send_args("--later", "--json"))
    later = json.loads(out)
    assert code == 0 and later["state"] == "queued"
    code, out, _ = run(
        capsys, monkeypatch, home, *send_args("--later", "--at", "2099-01-01T09:00", "--json")
    )
    scheduled = json.loads(out)
    assert scheduled["state"] == "scheduled"

    code, out, _ = run(capsys, monkeypatch, home, "outbox", "list", "--json")
    states = {row["id"]: row["state"] for row in json.loads(out)}
    assert states == {first["id"]: "deferred", later["id"]: "queued", scheduled["id"]: "scheduled"}

    # flush sends what waits, the deferred one included, and leaves the one
    # scheduled for later to its time.
    code, out, _ = run(capsys, monkeypatch, home, "outbox", "flush")
    assert code == 0, out
    assert "This run: 2 sent." in out and "1 scheduled" in out
    assert len(server.wait_for_messages(2)) == 2 and len(server.messages) == 2
    code, out, _ = run(capsys, monkeypatch, home, "outbox", "list", "--state", "scheduled")
    assert f"{scheduled['id']}" in out and "2099-01-01" in out

    code, out, _ = run(capsys, monkeypatch, home, "outbox", "cancel", str(scheduled["id"]))
    assert code == 0 and "cancelled" in out

    code, out, _ = run(
        capsys, monkeypatch, home, "outbox", "show", str(first["id"]), "--transcript"
    )
    assert "Message" in out and "sent" in out
    assert "451 4.7.1 Greylisted" in out  # the first attempt's server words
    # Numbered for this message, as the window numbers them, and counted as listed.
    assert "  Attempt 1 at " in out and "  Attempt 2 at " in out
    assert "  Attempts:   2\n" in out
    assert "C: MAIL FROM:<ann@example.org>" in out

    code, _, err = run(capsys, monkeypatch, home, "outbox", "resolve", str(first["id"]), "--sent")
    assert code == cli.EX_USAGE and "not uncertain" in err
    code, _, err = run(capsys, monkeypatch, home, "outbox", "show", "nope")
    assert code == cli.EX_USAGE


def test_resolve_takes_several_messages_and_ranges(
    aiosmtpd_factory, tmp_path, capsys, monkeypatch
) -> None:
    """After a crash or a full disk, uncertain messages come in numbers: one
    command decides them all (numbers, ranges); a number that is not
    uncertain is named, and the others are still decided."""
    server = aiosmtpd_factory()
    home = tmp_path / "home"
    add_plain_account(capsys, monkeypatch, home, "plain", server.port)
    queue_numbered(capsys, monkeypatch, home, 4)
    paths = resolve_paths(home)
    store = OutboxStore(paths.database, paths.spool_dir)
    try:
        with store._write() as db:  # what a crash after the final "." leaves
            db.execute("UPDATE messages SET state = 'uncertain' WHERE id <= 3")
    finally:
        store.close()
    code, out, err = run(capsys, monkeypatch, home, "outbox", "resolve", "1-2", "4", "--sent")
    assert code == cli.EX_USAGE
    assert "Messages 1–2 are marked as sent." in out
    assert "Message 4 is queued" in err or "not uncertain" in err, err
    code, out, err = run(capsys, monkeypatch, home, "outbox", "resolve", "3", "--resend")
    assert code == cli.EX_OK, err
    assert len(server.wait_for_messages(1)) == 1
    code, _, err = run(capsys, monkeypatch, home, "outbox", "resolve", "5-2", "--sent")
    assert code == cli.EX_USAGE and "not a range of message numbers" in err


def test_the_retry_schedule_from_settings_holds_for_the_command_line(
    aiosmtpd_factory, tmp_path, capsys, monkeypatch
) -> None:
    from mailer_gui.preferences import Preferences, save_preferences

    server = aiosmtpd_factory(on_rcpt=lambda address, options: "451 4.7.1 Greylisted")
    home = tmp_path / "home"
    add_plain_account(capsys, monkeypatch, home, "plain", server.port)
    paths = resolve_paths(home)
    save_preferences(paths.preferences_file, Preferences(retry_delays=(7200,)))
    before = time.time()
    code, out, _ = run(capsys, monkeypatch, home, *send_args("--json"))
    assert code == cli.EX_TEMPFAIL and json.loads(out)["state"] == "deferred"
    store = OutboxStore(paths.database, paths.spool_dir)
    (row,) = store.messages()
    assert before + 7200 <= row.due_at <= time.time() + 7200  # not the default minute
    store.close()


def test_flush_sends_in_the_order_messages_were_queued(
    aiosmtpd_factory, tmp_path, capsys, monkeypatch
) -> None:
    server = aiosmtpd_factory()
    home = tmp_path / "home"
    add_plain_account(capsys, monkeypatch, home, "plain", server.port)
    queue_numbered(capsys, monkeypatch, home, 4)
    code, out, _ = run(capsys, monkeypatch, home, "outbox", "flush")
    assert code == 0 and "4 sent" in out
    received = server.wait_for_messages(4)
    assert [m.rcpt_tos for m in received] == [[f"r{n}@example.org"] for n in range(1, 5)]


def test_flush_says_what_this_run_did_and_exits_69_when_one_was_refused_for_good(
    aiosmtpd_factory, tmp_path, capsys, monkeypatch
) -> None:
    """A flush reports the messages it was for (not the whole history), names each
    one refused for good with the server's words, and exits 69 as `send` does."""

    def refuse_one(address: str, options: object) -> str | None:
        return "550 5.1.1 <nobody@example.org>: no such user here" if "nobody" in address else None

    server = aiosmtpd_factory(on_rcpt=refuse_one)
    home = tmp_path / "home"
    add_plain_account(capsys, monkeypatch, home, "plain", server.port)
    code, _, err = run(capsys, monkeypatch, home, *send_args())  # sent before: history
    assert code == 0, err
    for to in ("r1@example.org", "nobody@example.org", "r2@example.org"):
        code, _, err = run(
            capsys, monkeypatch, home, "send", "--later", "--to", to, "--subject", "Hi",
            "--body", "Hello",
        )  # fmt: skip
        assert code == 0, err
    code, out, err = run(capsys, monkeypatch, home, "outbox", "flush")
    assert code == cli.EX_UNAVAILABLE
    assert "This run: 1 failed, 2 sent." in out
    assert "Outbox: 1 failed, 3 sent." in out  # the whole outbox, the earlier one included
    assert re.search(r"message 3 to nobody@example.org failed: .*no such user here", err), err
    assert len(server.wait_for_messages(3)) == 3

    # Nothing waits now: a second flush has nothing to do, and says so by exiting 0.
    code, out, err = run(capsys, monkeypatch, home, "outbox", "flush")
    assert code == 0, err
    assert "This run" not in out and "failed:" not in err
    assert "Outbox: 1 failed, 3 sent." in out


def test_flush_says_why_messages_behind_a_server_that_put_one_off_were_not_tried(
    aiosmtpd_factory, tmp_path, capsys, monkeypatch
) -> None:
    """A 421 to the first message: the others are not sent to that server at
    once, one connection after another; the flush says they wait, and until when."""
    mails: list[str] = []

    def busy(address: str, options: object) -> str:
        mails.append(address)
        return "421 4.7.0 Too many connections from your address"

    server = aiosmtpd_factory(on_mail=busy)
    home = tmp_path / "home"
    add_plain_account(capsys, monkeypatch, home, "plain", server.port)
    queue_numbered(capsys, monkeypatch, home, 3)
    code, out, err = run(capsys, monkeypatch, home, "outbox", "flush")
    assert code == cli.EX_TEMPFAIL
    assert len(mails) == 1
    assert "This run: 1 deferred, 2 queued." in out
    assert re.search(r"message 1 deferred, next try (on \S+ )?at \d\d:\d\d: .*421", err), err
    assert re.search(
        r"messages 2, 3 were not tried: message 1 of plain was put off just before .*, so "
        r"they wait for its next try \((on \S+ )?at \d\d:\d\d\)",
        " ".join(err.split()),
    ), err
    code, out, _ = run(capsys, monkeypatch, home, "outbox", "list")
    lines = {line.split()[0]: line for line in out.splitlines() if line.split()[0].isdigit()}
    next_try = lines["1"].split(" next ")[1][:16]
    assert lines["2"].split(" next ")[1][:16] == lines["3"].split(" next ")[1][:16] == next_try


def test_show_tells_a_recipient_in_doubt_from_one_never_sent_it(
    aiosmtpd_factory, tmp_path, capsys, monkeypatch
) -> None:
    server = aiosmtpd_factory()
    home = tmp_path / "home"
    add_plain_account(capsys, monkeypatch, home, "plain", server.port)
    code, _, err = run(
        capsys, monkeypatch, home, "send", "--later", "--to", "doubt@example.org",
        "--to", "later@example.org", "--subject", "Hi", "--body", "Hello",
    )  # fmt: skip
    assert code == 0, err
    paths = resolve_paths(home)
    store = OutboxStore(paths.database, paths.spool_dir)
    try:  # what recovery leaves after a kill during the first one's "."
        with store._write() as db:
            db.execute("UPDATE messages SET state = 'uncertain'")
            db.execute(
                "UPDATE recipients SET status = 'unknown' WHERE address = 'doubt@example.org'"
            )
    finally:
        store.close()
    code, out, _ = run(capsys, monkeypatch, home, "outbox", "show", "1")
    assert re.search(r"unknown\s+to\s+doubt@example.org", out), out
    assert re.search(r"pending\s+to\s+later@example.org", out), out
    code, out, _ = run(capsys, monkeypatch, home, "outbox", "list", "--json")
    assert [r["status"] for r in json.loads(out)[0]["recipients"]] == ["unknown", "pending"]
    code, out, err = run(capsys, monkeypatch, home, "outbox", "resolve", "1", "--sent")
    assert code == 0, err
    assert "Message 1 still has recipients it never went to: queued for them" in out
    code, out, _ = run(capsys, monkeypatch, home, "outbox", "flush")
    assert code == 0 and "This run: 1 sent." in out
    assert [m.rcpt_tos for m in server.wait_for_messages(1)] == [["later@example.org"]]


def test_list_and_show_read_past_a_damaged_index_and_say_so(tmp_path, capsys, monkeypatch) -> None:
    import contextlib
    import sqlite3

    home = tmp_path / "home"
    add_plain_account(capsys, monkeypatch, home, "plain", 2525)
    queue_numbered(capsys, monkeypatch, home, 3)
    database = resolve_paths(home).database
    with contextlib.closing(sqlite3.connect(database)) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        (page,) = db.execute(
            "SELECT rootpage FROM sqlite_master WHERE type = 'index' AND tbl_name = 'recipients'"
        ).fetchone()
    with open(database, "r+b") as file:
        file.seek(4096 * (page - 1))
        file.write(b"\xde\xad" * 2048)
    code, out, err = run(capsys, monkeypatch, home, "outbox", "list")
    assert code == 0 and "cannot be read" in err
    assert [line.split()[0] for line in out.splitlines() if "rcpt" in line] == ["3", "2", "1"]
    code, out, err = run(capsys, monkeypatch, home, "outbox", "show", "2")
    assert code == 0 and "cannot be read" in err and "This message could still be read." in err
    assert "r2@example.org" in out


def test_show_of_a_message_given_up_on_promises_nothing_more(tmp_path, capsys, monkeypatch) -> None:
    """Deferred twice, the second time past the give-up time: `outbox show`
    says that Mailer gave up, labels the last attempt so, and nowhere says
    that Mailer will try again."""
    from mailer_gui.outbox.policy import Disposition, Verdict

    home = tmp_path / "home"
    add_plain_account(capsys, monkeypatch, home, "plain", 2525)
    queue_numbered(capsys, monkeypatch, home, 1)
    paths = resolve_paths(home)
    store = OutboxStore(paths.database, paths.spool_dir)
    refused = Verdict(
        Disposition.DEFER, "127.0.0.1 refused the connection. Mailer will try again later."
    )
    start = time.time() + 1
    try:
        for when in (start, start + 2.5 * 86400):  # past the 2 days allowed
            assert store.claim_next("runner", now=when, lease=60) is not None
            store.record_failure(1, "runner", refused, account="plain", now=when)
    finally:
        store.close()
    code, out, _ = run(capsys, monkeypatch, home, "outbox", "show", "1")
    assert code == 0 and "Message 1: failed" in out
    assert "Mailer gave up after 2 attempts" in out
    assert re.search(r"Attempt 2 at \S+: deferred again, and Mailer gave up", out), out
    assert re.search(r"given up\s+to\s+r1@example.org", out), out
    # Only the first attempt's own words said so (true then: there was a second).
    assert out.count("try again") == 1, out
    assert "try again" in out.split("Attempt 1")[1].split("Attempt 2")[0]


def test_flush_names_a_message_another_mailer_is_sending(
    aiosmtpd_factory, tmp_path, capsys, monkeypatch
) -> None:
    """A message that another Mailer claimed before this flush got to it is left
    to that Mailer, and the flush says so instead of only counting it "sending"."""
    server = aiosmtpd_factory()
    home = tmp_path / "home"
    add_plain_account(capsys, monkeypatch, home, "plain", server.port)
    queue_numbered(capsys, monkeypatch, home, 3)
    paths = resolve_paths(home)
    store = OutboxStore(paths.database, paths.spool_dir)
    try:  # the window, alive (its lease runs), has message 2 in hand
        taken = store.claim_next("window", now=time.time(), lease=600, message=2)
        assert taken is not None
    finally:
        store.close()
    code, out, err = run(capsys, monkeypatch, home, "outbox", "flush")
    assert code == cli.EX_TEMPFAIL
    assert "This run: 2 sent." in out and "Outbox: 1 sending, 2 sent." in out
    assert (
        "message 2 is being sent by another Mailer (the window, or another flush) and was "
        "left to it. mailer-gui outbox flush --wait waits for it." in " ".join(err.split())
    ), err
    assert sorted(m.rcpt_tos[0] for m in server.wait_for_messages(2)) == [
        "r1@example.org",
        "r3@example.org",
    ]


def test_flush_and_list_name_a_message_sent_to_only_some_of_its_recipients(
    aiosmtpd_factory, tmp_path, capsys, monkeypatch
) -> None:
    """Sent to two, refused for good by the third: not told as a plain "sent"."""

    def refuse_one(address: str, options: object) -> str | None:
        return "550 5.1.1 <nobody@example.org>: no such user here" if "nobody" in address else None

    server = aiosmtpd_factory(on_rcpt=refuse_one)
    home = tmp_path / "home"
    add_plain_account(capsys, monkeypatch, home, "plain", server.port)
    code, _, err = run(
        capsys, monkeypatch, home, "send", "--later", "--to",
        "r1@example.org, nobody@example.org, r2@example.org", "--subject", "Hi", "--body", "Hi",
    )  # fmt: skip
    assert code == 0, err
    code, out, err = run(capsys, monkeypatch, home, "outbox", "flush")
    assert code == cli.EX_UNAVAILABLE, err
    assert "This run: 1 sent (1 to only some of its recipients)." in out
    assert re.search(
        r"message 1: Sent to 2 of 3; refused for good: nobody@example.org "
        r"\(550 5\.1\.1 .*no such user here\)",
        err,
    ), err
    code, out, _ = run(capsys, monkeypatch, home, "outbox", "list")
    assert "refused for good: nobody@example.org (550 5.1.1" in out
    (received,) = server.wait_for_messages(1)
    assert sorted(received.rcpt_tos) == ["r1@example.org", "r2@example.org"]


def test_a_deferred_send_says_when_and_by_whom_it_is_tried_again(
    aiosmtpd_factory, tmp_path, capsys, monkeypatch
) -> None:
    """Nothing runs in the background for the command line: `send` says when
    the next try is due and what makes it, and `outbox flush --due` (for cron)
    makes the tries the schedule says are due, and no others."""
    import contextlib
    import sqlite3

    tries: list[str] = []

    def greylist(address: str, options: object) -> str | None:
        tries.append(address)
        return "451 4.7.1 Greylisted, try again later" if len(tries) == 1 else None

    server = aiosmtpd_factory(on_rcpt=greylist)
    home = tmp_path / "home"
    add_plain_account(capsys, monkeypatch, home, "plain", server.port)
    code, _, err = run(capsys, monkeypatch, home, *send_args())
    assert code == cli.EX_TEMPFAIL
    assert re.search(r"as number 1; its next try is due at \d\d:\d\d\.", err), err
    assert "mailer-gui outbox flush --due (for example every few minutes from cron)" in err

    code, out, _ = run(capsys, monkeypatch, home, "outbox", "flush", "--due")
    assert code == 0  # for cron: a message waiting for its time is no news
    assert "This run" not in out and len(tries) == 1  # not tried before its time

    with contextlib.closing(sqlite3.connect(home / "data" / "outbox.sqlite3")) as db, db:
        # An hour later: its time has come.
        db.execute(
            "UPDATE messages SET due_at = due_at - 3600, first_attempt_at = first_attempt_at - 3600"
        )
        db.execute("UPDATE attempts SET started_at = started_at - 3600, ended_at = ended_at - 3600")
    code, out, err = run(capsys, monkeypatch, home, "outbox", "flush", "--due")
    assert code == 0, err
    assert "This run: 1 sent." in out and len(tries) == 2
    assert len(server.wait_for_messages(1)) == 1


def test_an_outbox_folder_that_cannot_be_written_is_one_message_not_a_traceback(
    aiosmtpd_factory, tmp_path, capsys, monkeypatch
) -> None:
    server = aiosmtpd_factory()
    home = tmp_path / "home"
    add_plain_account(capsys, monkeypatch, home, "plain", server.port)
    (home / "data").mkdir(parents=True, exist_ok=True)
    (home / "data" / "spool").write_text("a file where the spool folder goes")
    code, _, err = run(capsys, monkeypatch, home, *send_args())
    assert code == cli.EX_CANTCREAT, err
    assert "Traceback" not in err
    assert f"Mailer cannot keep the message in its outbox: {home / 'data' / 'spool'}" in err
    assert "Nothing was queued." in err
    assert server.messages == []


def test_a_message_whose_file_is_gone_is_failed_not_refused(
    aiosmtpd_factory, tmp_path, capsys, monkeypatch
) -> None:
    """No server refused it: its recipients read "failed", with the reason
    naming the file, not "rejected"."""
    server = aiosmtpd_factory()
    home = tmp_path / "home"
    add_plain_account(capsys, monkeypatch, home, "plain", server.port)
    code, _, err = run(capsys, monkeypatch, home, *send_args("--later"))
    assert code == 0, err
    (spooled,) = (home / "data" / "spool").glob("*.eml")
    spooled.unlink()
    code, _, err = run(capsys, monkeypatch, home, "outbox", "flush")
    assert code == cli.EX_UNAVAILABLE, err
    code, out, _ = run(capsys, monkeypatch, home, "outbox", "show", "1")
    assert "failed    to  bob@example.org" in out and "rejected" not in out
    assert f"The message file {spooled} is missing" in out
    assert server.messages == []


def test_message_files_the_database_lost_are_named_not_removed(
    aiosmtpd_factory, tmp_path, capsys, monkeypatch
) -> None:
    """The database lost a row (an older copy put back, its -wal removed): the
    message's file stays in the spool, and outbox list names it."""
    import contextlib
    import sqlite3

    server = aiosmtpd_factory()
    home = tmp_path / "home"
    add_plain_account(capsys, monkeypatch, home, "plain", server.port)
    for _ in range(2):
        code, _, err = run(capsys, monkeypatch, home, *send_args("--later"))
        assert code == 0, err
    code, out, _ = run(capsys, monkeypatch, home, "outbox", "show", "2")
    (lost,) = [
        home / "data" / "spool" / Path(line.split("(", 1)[1].rstrip(")")).name
        for line in out.splitlines()
        if line.strip().startswith("Size:")
    ]
    with contextlib.closing(sqlite3.connect(home / "data" / "outbox.sqlite3")) as db, db:
        db.execute("DELETE FROM recipients WHERE message = 2")
        db.execute("DELETE FROM messages WHERE id = 2")
    hour_ago = time.time() - 3600
    os.utime(lost, (hour_ago, hour_ago))
    code, out, err = run(capsys, monkeypatch, home, "outbox", "list")
    assert code == 0
    assert f"A file in {home / 'data' / 'spool'} belongs to no message in the outbox" in err
    assert str(lost) in err and "mailer-gui send --eml FILE" in err
    assert lost.exists()  # never removed


def test_uncertain_resolved_by_resending(smtp_sink_factory, tmp_path, capsys, monkeypatch) -> None:
    sink = smtp_sink_factory("-q", ".")  # drops the line after the final dot
    home = tmp_path / "home"
    add_plain_account(capsys, monkeypatch, home, "sink", sink.port)
    code, out, err = run(capsys, monkeypatch, home, *send_args("--json"))
    result = json.loads(out)
    assert code == cli.EX_TEMPFAIL and result["state"] == "uncertain"
    code, _, err = run(capsys, monkeypatch, home, "outbox", "flush")
    assert code == cli.EX_TEMPFAIL  # it waits for the person's decision
    assert "1 uncertain" in err
    assert f"outbox resolve {result['id']} --sent or --resend" in err  # its own number
    code, out, _ = run(capsys, monkeypatch, home, "outbox", "list", "--json")
    assert json.loads(out)[0]["state"] == "uncertain"  # never resent by itself
    code, _, err = run(capsys, monkeypatch, home, "outbox", "retry", str(result["id"]))
    assert code == cli.EX_USAGE
    assert f"mailer-gui outbox resolve {result['id']} --sent" in err and "--resend" in err
    code, out, _ = run(capsys, monkeypatch, home, "outbox", "show", str(result["id"]))
    assert "unknown   to  bob@example.org The whole message was sent but no confirmation" in out
    assert "try again" not in out
    code, out, _ = run(capsys, monkeypatch, home, "outbox", "resolve", str(result["id"]), "--sent")
    assert code == 0 and "marked as sent" in out
    code, _, err = run(capsys, monkeypatch, home, "outbox", "flush")
    assert code == 0 and "uncertain" not in err


def test_password_change_resumes_a_paused_account(
    secret_service, aiosmtpd_factory, trust_test_ca, tmp_path, capsys, monkeypatch
) -> None:
    server = aiosmtpd_factory(tls="implicit", users={USER: PASSWORD}, auth_required=True)
    home = tmp_path / "home"
    code, _, err = add_account(capsys, monkeypatch, home, server, password="wrong-one")
    assert code == 0, err
    code, _, err = run(capsys, monkeypatch, home, *send_args())
    assert code == cli.EX_NOPERM and "stays in the outbox" in err
    code, out, _ = run(capsys, monkeypatch, home, "outbox", "flush")
    assert server.messages == []  # paused: no second try with the wrong password
    code, out, err = run(
        capsys, monkeypatch, home, "accounts", "password", "work", "--password-stdin",
        stdin=PASSWORD + "\n",
    )  # fmt: skip
    assert code == 0, err
    code, out, _ = run(capsys, monkeypatch, home, "outbox", "flush")
    assert code == 0 and "1 sent" in out
    assert len(server.wait_for_messages(1)) == 1


def add_asked_account(capsys, monkeypatch, home: Path, server) -> None:
    """An account that logs in with PLAIN and keeps no password: asked when sending."""
    code, _, err = run(
        capsys, monkeypatch, home, "accounts", "add", "work", "--email", USER,
        "--host", "localhost", "--port", str(server.port), "--security", "tls",
        "--auth", "plain", "--secret-source", "none",
    )  # fmt: skip
    assert code == 0, err


def test_no_password_to_type_pauses_the_account_and_fails_nothing(
    secret_service, tls_server, tmp_path, capsys, monkeypatch
) -> None:
    """No terminal to type the password in: the messages wait for it, instead of
    going out without a login and being refused (530) one by one."""
    home = tmp_path / "home"
    add_asked_account(capsys, monkeypatch, home, tls_server)
    for _ in range(3):
        code, _, err = run(capsys, monkeypatch, home, *send_args("--later"))
        assert code == 0, err
    code, out, err = run(capsys, monkeypatch, home, "outbox", "flush")
    assert code == cli.EX_CONFIG  # nothing waits that would go by itself
    assert "3 queued" in out and "failed" not in out
    assert "The account work is paused (needs password)" in err
    assert "in a terminal to type it" in err
    store = OutboxStore(*_outbox_paths(home))
    assert {row.state for row in store.messages()} == {State.QUEUED}
    assert tls_server.messages == []

    # A send now says why it waits, once, and exits 78 (no password available).
    code, _, err = run(capsys, monkeypatch, home, *send_args())
    assert code == cli.EX_CONFIG
    assert "paused (needs password)" in err and "stays in the outbox as number 4" in err
    assert err.count("keeps no password") == 1
    assert tls_server.messages == []

    # The way out the note gives: the password stored, which the account now reads.
    code, out, err = run(
        capsys, monkeypatch, home, "accounts", "password", "work", "--password-stdin",
        stdin=PASSWORD + "\n",
    )  # fmt: skip
    assert code == 0, err
    assert "now reads it from the keyring" in out
    assert store.paused_accounts() == {}
    code, out, err = run(capsys, monkeypatch, home, "outbox", "flush")
    assert code == 0, err
    assert "4 sent" in out
    assert len(tls_server.wait_for_messages(4)) == 4


def test_a_password_for_an_account_that_runs_a_command_is_refused(
    command_account, tls_server, capsys, monkeypatch
) -> None:
    home = command_account(tls_server)
    code, _, err = run(
        capsys, monkeypatch, home, "accounts", "password", "work", "--password-stdin",
        stdin=PASSWORD + "\n",
    )  # fmt: skip
    assert code == cli.EX_USAGE
    assert "takes its password from a command" in err and "Nothing was changed" in err


def test_an_account_added_again_is_not_paused_any_more(
    secret_service, tls_server, tmp_path, capsys, monkeypatch
) -> None:
    home = tmp_path / "home"
    add_asked_account(capsys, monkeypatch, home, tls_server)
    code, _, err = run(capsys, monkeypatch, home, *send_args())
    assert code == cli.EX_CONFIG, err
    store = OutboxStore(*_outbox_paths(home))
    assert store.paused_accounts() != {}
    code, _, err = run(capsys, monkeypatch, home, "accounts", "remove", "work")
    assert code == 0, err
    code, _, err = add_account(capsys, monkeypatch, home, tls_server)
    assert code == 0, err
    assert store.paused_accounts() == {}


TYPE_PASSWORD_AT_A_TERMINAL = """
import os, pty, select, sys, time
home, password = sys.argv[1], sys.argv[2]
pid, fd = pty.fork()
if pid == 0:
    os.execv(sys.executable, [sys.executable, "-m", "mailer_gui", "--home", home,
                              "outbox", "flush"])
out, typed, end = b"", False, time.monotonic() + 60
while time.monotonic() < end:
    ready, _, _ = select.select([fd], [], [], 0.5)
    if not ready:
        continue
    try:
        data = os.read(fd, 4096)
    except OSError:
        break  # the command ended
    if not data:
        break
    out += data
    if b"Password for" in out and not typed:
        os.write(fd, password.encode() + b"\\n")
        typed = True
_, status = os.waitpid(pid, 0)
sys.stdout.write(out.decode("utf-8", "replace"))
sys.exit(os.waitstatus_to_exitcode(status))
"""


@pytest.mark.skipif(sys.platform == "win32", reason="a pseudo-terminal (pty) is POSIX only")
def test_at_a_terminal_a_paused_account_asks_for_its_password(
    tls_server, tmp_path, ca_bundle, capsys, monkeypatch
) -> None:
    home = tmp_path / "home"
    add_asked_account(capsys, monkeypatch, home, tls_server)
    code, _, err = run(capsys, monkeypatch, home, *send_args("--later"))
    assert code == 0, err
    run(capsys, monkeypatch, home, "outbox", "flush")  # no terminal: paused
    store = OutboxStore(*_outbox_paths(home))
    assert store.paused_accounts()["work"][0] == "needs password"

    done = subprocess.run(
        [sys.executable, "-c", TYPE_PASSWORD_AT_A_TERMINAL, str(home), PASSWORD],
        capture_output=True,
        text=True,
        timeout=90,
        env=dict(os.environ, SSL_CERT_FILE=str(ca_bundle)),
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "waits for its password" in done.stdout and "1 sent" in done.stdout
    assert PASSWORD not in done.stdout  # typed without echo
    assert store.paused_accounts() == {}
    assert len(tls_server.wait_for_messages(1)) == 1


def _outbox_paths(home: Path) -> tuple[Path, Path]:
    paths = resolve_paths(home)
    return paths.database, paths.spool_dir


def test_identities_default_and_show_never_a_secret(
    secret_service, tls_server, tmp_path, capsys, monkeypatch
) -> None:
    code, _, err = add_account(
        capsys, monkeypatch, tmp_path, tls_server,
        "--identity", "Sales <sales@example.org>", "--signature", "-- Ann",
        "--connection-limit", "10",
    )  # fmt: skip
    assert code == 0, err
    code, _, err = run(
        capsys, monkeypatch, tmp_path, "accounts", "add", "other", "--email", "o@example.org",
        "--host", "smtp.example.org", "--token-command", "printf %s token-xyz",
    )  # fmt: skip
    assert code == 0, err
    code, out, _ = run(capsys, monkeypatch, tmp_path, "accounts", "default", "other")
    assert code == 0
    code, out, _ = run(capsys, monkeypatch, tmp_path, "accounts", "show", "work", "--json")
    shown = json.loads(out)
    assert shown["identities"] == [{"email": "sales@example.org", "display_name": "Sales"}]
    assert shown["signature"] == "-- Ann" and shown["connection_limit"] == 10
    assert shown["password"] == "in the keyring" and shown["default"] is False
    assert PASSWORD not in out
    code, out, _ = run(capsys, monkeypatch, tmp_path, "accounts", "show", "other")
    assert "auth" in out and "xoauth2" in out and "printed by the command" in out
    assert "printf %s token-xyz" in out  # the command is shown, never run for show
    code, out, _ = run(capsys, monkeypatch, tmp_path, "accounts", "list")
    assert out.splitlines()[1].startswith("* other")


def test_token_command_is_cached_in_memory(tmp_path) -> None:
    from mailer_gui.accounts.model import Account
    from mailer_gui.smtp.settings import AuthMethod

    counter = tmp_path / "count"
    account = Account(
        name="oauth",
        email="a@example.org",
        host="smtp.example.org",
        auth=AuthMethod.XOAUTH2,
        secret_source="command",
        password_command=f"echo x >> {counter}; echo token-{{}}",
    )
    service = resolve_paths(tmp_path).keyring_service
    first = secrets.get_secret(account, service=service, now=1000.0)
    assert secrets.get_secret(account, service=service, now=1100.0) == first
    assert counter.read_text().count("x") == 1  # the command ran once
    secrets.get_secret(account, service=service, now=1000.0 + secrets.TOKEN_CACHE_SECONDS + 1)
    assert counter.read_text().count("x") == 2
    # Another profile's account of the same name has a token of its own.
    secrets.get_secret(account, service=secrets.SERVICE, now=2000.0)
    assert counter.read_text().count("x") == 3
    secrets.forget_token("oauth", service=service)
    secrets.get_secret(account, service=service, now=2000.0)
    assert counter.read_text().count("x") == 4
    assert not any(tmp_path.glob("*token*"))  # nothing written but the test's own counter


def test_accounts_setup_from_the_address_alone(
    dnsmasq_factory, submission_server, secret_service, trust_test_ca, tmp_path, capsys,
    monkeypatch,
) -> None:  # fmt: skip
    server = submission_server
    dns = dnsmasq_factory(
        srv={
            "_submissions._tcp.example.test": [("localhost", server.tls_port, 0, 0)],
            "_submission._tcp.example.test": [("localhost", server.starttls_port, 0, 0)],
        }
    )
    monkeypatch.setenv("MAILER_GUI_NAMESERVER", dns.nameserver)
    code, out, err = run(capsys, monkeypatch, tmp_path, "accounts", "detect", server.username)
    assert code == 0, err
    assert f"localhost port {server.tls_port} (tls)" in out and "DNS SRV" in out

    code, out, err = run(
        capsys, monkeypatch, tmp_path, "accounts", "setup", server.username,
        "--name", "pf", "--password-stdin", stdin="not-" + server.password + "\n",
    )  # fmt: skip
    assert code == cli.EX_NOPERM and "nothing was saved" in err
    code, out, _ = run(capsys, monkeypatch, tmp_path, "accounts", "list", "--json")
    assert json.loads(out) == []

    code, out, err = run(
        capsys, monkeypatch, tmp_path, "accounts", "setup", server.username,
        "--name", "pf", "--password-stdin", stdin=server.password + "\n",
    )  # fmt: skip
    assert code == 0, err
    assert "login tested" in out and "outside your domain" in out
    import keyring

    assert keyring.get_password(f"mailer-gui:{tmp_path}", "pf") == server.password
    code, out, _ = run(capsys, monkeypatch, tmp_path, "accounts", "show", "pf", "--json")
    shown = json.loads(out)
    assert (shown["host"], shown["port"], shown["security"]) == (
        "localhost",
        server.tls_port,
        "tls",
    )
    assert server.password not in out + tree_text(tmp_path)


def test_detect_exits_cleanly_while_other_sources_still_run(dnsmasq_factory, tmp_path) -> None:
    """The provider list answers at once while slower sources are still looking;
    the process must still end normally (it once crashed at exit)."""
    dns = dnsmasq_factory()
    env = dict(os.environ, MAILER_GUI_NAMESERVER=dns.nameserver)
    for _ in range(3):
        done = subprocess.run(
            [sys.executable, "-m", "mailer_gui", "--home", str(tmp_path), "accounts", "detect",
             "ann@gmail.com"],
            capture_output=True, text=True, timeout=60, env=env, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert "smtp.gmail.com port 465 (tls)" in done.stdout
        assert "app password" in done.stdout
