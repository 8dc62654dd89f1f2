"""Draft -> MIME as the send command builds it (the message issue extends this)."""

from __future__ import annotations

import email
from email import policy
from pathlib import Path

import pytest

from mailer_gui.message.addresses import parse_address, parse_address_list
from mailer_gui.message.build import DraftError, build_message, parse_header_option
from mailer_gui.message.draft import Draft


def draft(**kwargs: object) -> Draft:
    values: dict[str, object] = {
        "sender": parse_address("Jörg Müller <joerg@bücher.example>"),
        "to": tuple(parse_address_list(["Ann <ann@example.org>"])),
        "subject": "Grüße",
        "body": "# Title\n\nSome *text*.\n\n.leading dot\n",
    }
    values.update(kwargs)
    return Draft(**values)  # type: ignore[arg-type]


def parse(path: Path) -> email.message.EmailMessage:
    return email.message_from_bytes(path.read_bytes(), policy=policy.default)  # type: ignore[return-value]


def test_markdown_becomes_alternative_with_encoded_headers(tmp_path: Path) -> None:
    built = build_message(
        draft(bcc=tuple(parse_address_list(["secret@example.org"]))), spool_dir=tmp_path
    )
    raw = built.path.read_bytes()
    assert raw.isascii()  # 7-bit clean: no 8BITMIME needed
    message = parse(built.path)
    assert message.get_content_type() == "multipart/alternative"
    assert str(message["Subject"]) == "Grüße"
    assert str(message["From"]) == "Jörg Müller <joerg@xn--bcher-kva.example>"
    assert "Bcc" not in message and b"secret@example.org" not in raw
    assert built.recipients == ("ann@example.org", "secret@example.org")
    plain, html = message.iter_parts()
    assert "# Title" in plain.get_content()
    assert "<h1>Title</h1>" in html.get_content() and "<em>text</em>" in html.get_content()
    assert built.message_id.endswith("@xn--bcher-kva.example>")
    assert oct(built.path.stat().st_mode & 0o777) == "0o600"


def test_plain_and_attachment(tmp_path: Path) -> None:
    attachment = tmp_path / "Bericht März.pdf"
    attachment.write_bytes(b"%PDF-1.4 \x00\xff binary")
    built = build_message(draft(body_format="plain", attachments=(attachment,)), spool_dir=tmp_path)
    message = parse(built.path)
    assert message.get_content_type() == "multipart/mixed"
    body, part = message.iter_parts()
    assert body.get_content_type() == "text/plain"
    assert part.get_content_type() == "application/pdf"
    assert part.get_filename() == "Bericht März.pdf"
    assert part.get_content() == attachment.read_bytes()


def test_unreadable_attachment_names_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "gone.txt"
    with pytest.raises(DraftError, match=r"gone\.txt"):
        build_message(draft(attachments=(missing,)), spool_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []  # nothing half-written


def test_line_break_in_subject_refused(tmp_path: Path) -> None:
    with pytest.raises(DraftError, match="subject"):
        build_message(draft(subject="hi\r\nBcc: x@example.org"), spool_dir=tmp_path)


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        ("X-Ticket: 42", True),
        ("X-Ticket 42", False),
        ("From: evil@example.org", False),
        ("Bad Name: x", False),
    ],
)
def test_header_option(text: str, ok: bool) -> None:
    if ok:
        assert parse_header_option(text) == ("X-Ticket", "42")
    else:
        with pytest.raises(DraftError):
            parse_header_option(text)


def test_smtputf8_local_part(tmp_path: Path) -> None:
    built = build_message(
        draft(to=tuple(parse_address_list(["zoë@example.org"]))), spool_dir=tmp_path
    )
    assert built.smtputf8
    assert "zoë@example.org" in built.path.read_bytes().decode("utf-8")
