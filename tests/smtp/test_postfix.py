"""`mailer-gui send` through a real Postfix submission server with Dovecot SASL:
STARTTLS and implicit TLS, each with PLAIN, LOGIN and CRAM-MD5, the password
kept in the real Secret Service, the message checked in the Maildir."""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from mailer_gui import cli

MECHANISMS = ["plain", "login", "cram-md5"]


def run_cli(monkeypatch, capsys, home: Path, *args: str, stdin: str = "") -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    code = cli.main(["--home", str(home), *args])
    out, err = capsys.readouterr()
    return code, out, err


def add_account(monkeypatch, capsys, home, server, name, security, mechanism, password):
    port = server.tls_port if security == "tls" else server.starttls_port
    return run_cli(
        monkeypatch,
        capsys,
        home,
        "accounts",
        "add",
        name,
        "--email",
        server.username,
        "--display-name",
        "Alice Test",
        "--host",
        server.host,
        "--port",
        str(port),
        "--security",
        security,
        "--auth",
        mechanism,
        "--password-stdin",
        stdin=password + "\n",
    )


def tls_plain_home(monkeypatch, capsys, tmp_path: Path, server) -> Path:
    """A home with account "pf": implicit TLS, PLAIN, the right password."""
    home = tmp_path / "home"
    code, _, err = add_account(
        monkeypatch, capsys, home, server, "pf", "tls", "plain", server.password
    )
    assert code == 0, err
    return home


def secret_forms(username: str, password: str) -> list[str]:
    raw = password.encode()
    return [
        password,
        base64.b64encode(raw).decode(),
        base64.b64encode(b"\0" + username.encode() + b"\0" + raw).decode(),
    ]


@pytest.mark.parametrize("mechanism", MECHANISMS)
@pytest.mark.parametrize("security", ["starttls", "tls"])
def test_send_through_postfix(
    submission_server, secret_service, trust_test_ca, tmp_path, monkeypatch, capsys,
    security: str, mechanism: str,
) -> None:  # fmt: skip
    server = submission_server
    home = tmp_path / "home"
    code, _, err = add_account(
        monkeypatch, capsys, home, server, "postfix", security, mechanism, server.password
    )
    assert code == 0, err
    token = f"postfix-{security}-{mechanism}-{uuid.uuid4().hex}"
    code, out, err = run_cli(
        monkeypatch,
        capsys,
        home,
        "send",
        "--to",
        "bob@example.test",
        "--cc",
        "carol@example.org",
        "--subject",
        f"Test {token} — Grüße",
        "--body",
        f"Hello **Bob**,\n\n{token}\n\n.a line starting with a dot\n",
        "--transcript",
        "--json",
    )
    assert code == 0, err + server.log_text()[-3000:]
    result = json.loads(out)
    assert result["outcome"] == "sent"
    assert {r["address"]: r["status"] for r in result["recipients"]} == {
        "bob@example.test": "accepted",
        "carol@example.org": "accepted",
    }
    assert f"C: AUTH {mechanism.upper()}" in err
    assert "TLS established: TLSv1." in err
    if security == "starttls":
        assert "C: STARTTLS" in err
    for form in secret_forms(server.username, server.password):
        assert form not in err
        assert form not in out
    delivered = server.wait_for_message(token)
    assert result["message_id"].encode() in delivered
    assert b"<strong>Bob</strong>" in delivered
    assert b"\n.a line starting with a dot" in delivered.replace(b"\r\n", b"\n")
    assert b"sasl_username=" not in delivered  # the message is the one we sent
    log = server.log_text()
    assert f"sasl_method={mechanism.upper()}" in log


def test_wrong_password_through_dovecot(
    submission_server, secret_service, trust_test_ca, tmp_path, monkeypatch, capsys
) -> None:
    server = submission_server
    home = tmp_path / "home"
    wrong = "Wrong-" + uuid.uuid4().hex
    code, _, err = add_account(monkeypatch, capsys, home, server, "bad", "starttls", "plain", wrong)
    assert code == 0, err
    code, out, err = run_cli(
        monkeypatch, capsys, home, "send", "--to", "bob@example.test", "--subject", "x",
        "--body", "y", "-v",
    )  # fmt: skip
    assert code == cli.EX_NOPERM
    assert "535" in err
    assert "Traceback" not in err
    for form in secret_forms(server.username, wrong):
        assert form not in err + out


def test_unknown_recipient_and_relay_denied(
    submission_server, secret_service, trust_test_ca, tmp_path, monkeypatch, capsys
) -> None:
    server = submission_server
    home = tls_plain_home(monkeypatch, capsys, tmp_path, server)
    token = uuid.uuid4().hex
    code, out, err = run_cli(
        monkeypatch, capsys, home, "send",
        "--to", f"{server.unknown_recipient}, bob@example.test",
        "--subject", f"partial {token}", "--body", "hi", "--json",
    )  # fmt: skip
    assert code == cli.EX_UNAVAILABLE, err
    by_address = {r["address"]: r for r in json.loads(out)["recipients"]}
    unknown = by_address[server.unknown_recipient]
    assert (unknown["status"], unknown["code"], unknown["enhanced"]) == ("rejected", 550, "5.1.1")
    assert by_address["bob@example.test"]["status"] == "accepted"
    server.wait_for_message(token)


def test_installed_entry_point_end_to_end(
    submission_server, secret_service, ca_bundle, tmp_path
) -> None:
    """The console script in a fresh process, as a person would run it."""
    server = submission_server
    home = tmp_path / "home"
    env = dict(os.environ, SSL_CERT_FILE=str(ca_bundle))
    add = subprocess.run(
        [
            sys.executable, "-m", "mailer_gui", "--home", str(home), "accounts", "add", "me",
            "--email", server.username, "--host", server.host,
            "--port", str(server.starttls_port), "--password-stdin",
        ],
        input=server.password + "\n", capture_output=True, text=True, timeout=60, env=env,
        check=False,
    )  # fmt: skip
    assert add.returncode == 0, add.stderr
    token = uuid.uuid4().hex
    send = subprocess.run(
        [
            sys.executable, "-m", "mailer_gui", "--home", str(home), "send",
            "--to", "bob@example.test", "--subject", f"subprocess {token}",
            "--body", "From a separate process.",
        ],
        capture_output=True, text=True, timeout=60, env=env, check=False,
    )  # fmt: skip
    assert send.returncode == 0, send.stderr
    server.wait_for_message(token)
    assert server.password not in (home / "config" / "accounts.json").read_text()


def test_rich_message_read_back_from_the_maildir(
    submission_server, trust_test_ca, tmp_path
) -> None:
    """A Markdown message with an inline image and attachments, through Postfix,
    parsed back from the delivered file: structure, headers and bytes intact."""
    import email
    from email import policy

    from mailer_gui.message.addresses import parse_address, parse_address_list
    from mailer_gui.message.build import build_message
    from mailer_gui.message.draft import Draft, InlineImage
    from mailer_gui.smtp.auth import Credentials
    from mailer_gui.smtp.session import Envelope, Session
    from mailer_gui.smtp.settings import Security, ServerSettings

    server = submission_server
    image = tmp_path / "chart.png"
    image.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40)
    report = tmp_path / "Übersicht 2026.pdf"
    report.write_bytes(bytes(range(256)) * 4000)  # 1 MB, every byte value
    token = uuid.uuid4().hex
    draft = Draft(
        sender=parse_address(f"Alice Tëst <{server.username}>"),
        to=tuple(parse_address_list(["Bob <bob@example.test>"])),
        subject=f"Bericht {token} — 報告",
        body=f"# Hallo\n\nSee ![chart](chart.png) and the **report**.\n\n{token}\n",
        attachments=(report,),
        inline_images=(InlineImage("chart.png", path=image),),
    )
    built = build_message(draft, spool_dir=tmp_path / "spool")
    settings = ServerSettings(server.host, server.tls_port, Security.TLS)
    credentials = lambda: Credentials(server.username, server.password)  # noqa: E731
    with Session(settings, credentials=credentials) as session, built.path.open("rb") as body:
        result = session.send_message(
            Envelope(built.envelope_from, built.recipients), body, built.size
        )
    assert result.outcome == "sent"
    delivered = email.message_from_bytes(server.wait_for_message(token), policy=policy.default)
    assert str(delivered["Subject"]) == f"Bericht {token} — 報告"
    assert delivered["Message-ID"] == built.message_id
    types = [part.get_content_type() for part in delivered.walk()]
    assert types == [
        "multipart/mixed",
        "multipart/alternative",
        "text/plain",
        "multipart/related",
        "text/html",
        "image/png",
        "application/pdf",
    ]
    parts = {part.get_content_type(): part for part in delivered.walk()}
    assert parts["application/pdf"].get_filename() == "Übersicht 2026.pdf"
    assert parts["application/pdf"].get_content() == report.read_bytes()
    assert parts["image/png"].get_content() == image.read_bytes()
    cid = parts["image/png"]["Content-ID"].strip("<>")
    assert f"cid:{cid}" in parts["text/html"].get_content()


def test_a_message_after_one_whose_recipients_were_all_refused(
    submission_server, secret_service, trust_test_ca, tmp_path, monkeypatch, capsys
) -> None:
    """Postfix pipelines: the first message's MAIL, RCPT and DATA go together,
    its only recipient is refused, so is its DATA, and Postfix keeps the MAIL.
    The next message on the connection must RSET first, or Postfix answers its
    MAIL with 503 5.5.1 "nested MAIL command" and it fails for nothing."""
    server = submission_server
    home = tls_plain_home(monkeypatch, capsys, tmp_path, server)
    token = uuid.uuid4().hex
    for to, subject in ((server.unknown_recipient, "nobody"), ("bob@example.test", token)):
        code, _, err = run_cli(
            monkeypatch, capsys, home, "send", "--later",
            "--to", to, "--subject", subject, "--body", "hi",
        )  # fmt: skip
        assert code == 0, err
    code, out, err = run_cli(monkeypatch, capsys, home, "outbox", "flush")
    code, out, _ = run_cli(monkeypatch, capsys, home, "outbox", "list", "--json")
    states = {row["subject"]: row["state"] for row in json.loads(out)}
    assert states == {"nobody": "failed", token: "sent"}
    server.wait_for_message(token)
    code, out, _ = run_cli(monkeypatch, capsys, home, "outbox", "show", "2", "--transcript")
    assert "C: RSET" in out and "nested MAIL" not in out
