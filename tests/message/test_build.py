"""Draft -> MIME: every built message parsed back with email.parser (policy
default), golden structures for each combination, and round trips of any text."""

from __future__ import annotations

import email
import os
import re
from email import policy
from email.header import decode_header, make_header
from email.message import EmailMessage
from email.utils import parseaddr
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailer_gui.message.addresses import MailAddress, parse_address, parse_address_list
from mailer_gui.message.build import (
    DraftError,
    build_from_eml,
    build_message,
    parse_header_option,
)
from mailer_gui.message.draft import Draft, InlineImage, Priority
from mailer_gui.message.render import render_plain

PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06"
    b"\x00\x00\x00\x1f\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\x0f\x00\x00\x01\x01\x00"
    b"\x05\x18\xd8N\x00\x00\x00\x00IEND\xaeB`\x82"
)


def draft(**kwargs: object) -> Draft:
    values: dict[str, object] = {
        "sender": parse_address("Jörg Müller <joerg@bücher.example>"),
        "to": tuple(parse_address_list(["Ann <ann@example.org>"])),
        "subject": "Grüße",
        "body": "# Title\n\nSome *text* and ![chart](chart.png).\n\n.leading dot\n",
    }
    values.update(kwargs)
    return Draft(**values)  # type: ignore[arg-type]


def parse(path: Path) -> EmailMessage:
    message = email.message_from_bytes(path.read_bytes(), policy=policy.default)
    assert isinstance(message, EmailMessage)
    return message


def text_of(part: EmailMessage) -> str:
    """A text part's content as a mail client shows it (line ends as \\n)."""
    content = part.get_content()
    assert isinstance(content, str)
    return content.replace("\r\n", "\n")


def display_name(raw: bytes) -> str:
    """The From display name, decoded per RFC 2047 §6.2.

    The whitespace that folds a long name into several encoded-words is not
    part of the name; the stdlib's address parser keeps it (it would read
    "Иван Петров (ООО «Ромашка»)" back with a space inside), so this
    decodes the encoded-words with email.header, which follows the RFC.
    """
    compat = email.message_from_bytes(raw, policy=policy.compat32)
    value = re.sub(r"\r?\n[ \t]", " ", str(compat["From"]))
    if "<" not in value:
        return ""  # a bare address: no name
    phrase = value[: value.rindex("<")].strip()
    if phrase.startswith("=?"):
        return str(make_header(decode_header(phrase)))
    return parseaddr(value)[0]


def structure(part: EmailMessage) -> object:
    """``("multipart/mixed", ["text/plain", "application/pdf"])`` and so on."""
    if part.is_multipart():
        children = [structure(p) for p in part.iter_parts()]  # type: ignore[arg-type]
        return (part.get_content_type(), children)
    return part.get_content_type()


def assert_wire_rules(raw: bytes) -> None:
    """CRLF everywhere, no bare CR or LF, no line over 998 octets, 7-bit clean."""
    assert re.search(rb"\r(?!\n)|(?<!\r)\n", raw) is None
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998
    assert raw.isascii()


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    report = tmp_path / "Bericht März.pdf"
    report.write_bytes(b"%PDF-1.4 \x00\xff binary" * 100)
    chart = tmp_path / "chart.png"
    chart.write_bytes(PNG)
    return {"report": report, "chart": chart}


def combos(files: dict[str, Path]) -> dict[str, tuple[Draft, object]]:
    chart = InlineImage("chart.png", path=files["chart"])
    report = files["report"]
    alternative = ("multipart/alternative", ["text/plain", "text/html"])
    related = (
        "multipart/alternative",
        ["text/plain", ("multipart/related", ["text/html", "image/png"])],
    )
    return {
        "plain": (draft(body_format="plain"), "text/plain"),
        "markdown": (draft(), alternative),
        "markdown+inline": (draft(inline_images=(chart,)), related),
        "plain+attachment": (
            draft(body_format="plain", attachments=(report,)),
            ("multipart/mixed", ["text/plain", "application/pdf"]),
        ),
        "markdown+attachment": (
            draft(attachments=(report,)),
            ("multipart/mixed", [alternative, "application/pdf"]),
        ),
        "all together": (
            draft(attachments=(report, report), inline_images=(chart,)),
            ("multipart/mixed", [related, "application/pdf", "application/pdf"]),
        ),
        "plain+inline image travels as attachment": (
            draft(body_format="plain", inline_images=(chart,)),
            ("multipart/mixed", ["text/plain", "image/png"]),
        ),
    }


@pytest.mark.parametrize(
    "name",
    [
        "plain",
        "markdown",
        "markdown+inline",
        "plain+attachment",
        "markdown+attachment",
        "all together",
        "plain+inline image travels as attachment",
    ],
)
def test_golden_structures(name: str, files: dict[str, Path], tmp_path: Path) -> None:
    the_draft, expected = combos(files)[name]
    built = build_message(the_draft, spool_dir=tmp_path / "spool")
    raw = built.path.read_bytes()
    assert built.size == len(raw)
    assert_wire_rules(raw)
    message = parse(built.path)
    assert structure(message) == expected
    assert message["MIME-Version"] == "1.0"
    assert str(message["Subject"]) == "Grüße"
    assert str(message["From"]) == "Jörg Müller <joerg@xn--bcher-kva.example>"
    assert message["Message-ID"] == built.message_id
    assert built.message_id.endswith("@xn--bcher-kva.example>")
    assert message["Date"] is not None and message["User-Agent"].startswith("mailer-gui/")
    for part in message.walk():
        if part.get_content_type() == "application/pdf":
            assert part.get_filename() == "Bericht März.pdf"
            assert part.get_content() == files["report"].read_bytes()
        if part.get_content_type() == "image/png":
            assert part.get_content() == PNG
        if part.get_content_type() == "text/plain":
            assert text_of(part) == render_plain(the_draft.body)


def test_inline_image_is_referenced_by_cid(files: dict[str, Path], tmp_path: Path) -> None:
    chart = InlineImage("chart.png", path=files["chart"])
    built = build_message(draft(inline_images=(chart,)), spool_dir=tmp_path)
    message = parse(built.path)
    parts = {p.get_content_type(): p for p in message.walk()}
    cid = parts["image/png"]["Content-ID"].strip("<>")
    assert f'src="cid:{cid}"' in parts["text/html"].get_content()
    assert parts["image/png"].get_content_disposition() == "inline"


def test_an_inline_image_the_text_never_shows_goes_as_an_attachment(tmp_path: Path) -> None:
    """`send --inline spare.png` with a body that never shows it: hidden in the
    related part nobody would see it; it goes as an ordinary attachment."""
    shown = InlineImage("pasted-1.png", data=PNG, content_type="image/png")
    spare = InlineImage("spare.png", data=PNG, content_type="image/png")
    built = build_message(
        draft(body="Look: ![x](pasted-1.png)", inline_images=(shown, spare)), spool_dir=tmp_path
    )
    message = parse(built.path)
    related = next(p for p in message.walk() if p.get_content_type() == "multipart/related")
    in_related = [p.get_filename() for p in related.iter_parts() if p.get_filename()]
    assert in_related == ["pasted-1.png"]
    (attached,) = [p for p in message.iter_attachments() if p.get_filename() == "spare.png"]
    assert attached.get_content_disposition() == "attachment"
    assert attached.get_content() == PNG


def test_clipboard_image_bytes(tmp_path: Path) -> None:
    pasted = InlineImage("pasted-1.png", data=PNG, content_type="image/png")
    built = build_message(
        draft(body="Look: ![x](pasted-1.png)", inline_images=(pasted,)), spool_dir=tmp_path
    )
    image = next(p for p in parse(built.path).walk() if p.get_content_type() == "image/png")
    assert image.get_content() == PNG


def test_headers_addresses_and_bcc(tmp_path: Path) -> None:
    built = build_message(
        draft(
            to=tuple(parse_address_list(["Ann <ann@example.org>, bob@example.org"])),
            cc=tuple(parse_address_list(['"Doe, Jane" <jane@example.org>'])),
            bcc=tuple(parse_address_list(["secret@example.org"])),
            reply_to=tuple(parse_address_list(["list@example.org"])),
            priority=Priority.HIGH,
            in_reply_to="<orig@example.org>",
            references=("<first@example.org>", "<orig@example.org>"),
            extra_headers=(("X-Ticket", "42"),),
            dsn_notify=("SUCCESS", "FAILURE"),
        ),
        spool_dir=tmp_path,
    )
    raw = built.path.read_bytes()
    message = parse(built.path)
    assert [a.addr_spec for a in message["To"].addresses] == ["ann@example.org", "bob@example.org"]
    assert message["Cc"].addresses[0].display_name == "Doe, Jane"
    assert "Bcc" not in message and b"secret@example.org" not in raw
    assert message["Reply-To"] == "list@example.org"
    assert message["X-Priority"] == "1 (Highest)" and message["Importance"] == "high"
    assert message["In-Reply-To"] == "<orig@example.org>"
    assert message["References"] == "<first@example.org> <orig@example.org>"
    assert message["X-Ticket"] == "42"
    assert built.recipients == (
        "ann@example.org",
        "bob@example.org",
        "jane@example.org",
        "secret@example.org",
    )
    assert built.dsn_notify == ("SUCCESS", "FAILURE")
    assert oct(built.path.stat().st_mode & 0o777) == "0o600"


def test_unreadable_attachment_names_the_file(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    spool.mkdir()
    missing = tmp_path / "gone.txt"
    with pytest.raises(DraftError, match=r"gone\.txt"):
        build_message(draft(attachments=(missing,)), spool_dir=spool)
    with pytest.raises(DraftError, match="is a folder"):
        build_message(draft(attachments=(tmp_path,)), spool_dir=spool)
    assert list(spool.iterdir()) == []  # nothing half-written


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="POSIX devices and pipes")
def test_a_device_or_a_pipe_is_not_attached(tmp_path: Path) -> None:
    """/dev/zero filled the disk; a pipe waited for a writer forever."""
    spool = tmp_path / "spool"
    spool.mkdir()
    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    for odd in (Path("/dev/zero"), pipe):
        with pytest.raises(DraftError, match="is not an ordinary file"):
            build_message(draft(attachments=(odd,)), spool_dir=spool)
    assert list(spool.iterdir()) == []


@pytest.mark.parametrize("field", ["subject", "header", "in_reply_to", "separator"])
def test_line_breaks_in_headers_refused(field: str, tmp_path: Path) -> None:
    values: dict[str, object] = {
        "subject": {"subject": "hi\r\nBcc: x@example.org"},
        "header": {"extra_headers": (("X-A", "a\nb"),)},
        "in_reply_to": {"in_reply_to": "<a@b>\r\nX-Evil: 1"},
        "separator": {"subject": "one\u2028two"},
    }[field]
    with pytest.raises(DraftError, match="line break"):
        build_message(draft(**values), spool_dir=tmp_path)


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
    # A UTF-8 header block is read as text (BytesParser would leave it undecoded).
    message = email.message_from_string(built.path.read_text("utf-8"), policy=policy.default)
    assert message["To"].addresses[0].username == "zoë"


# ----------------------------------------------------------- round trips

header_text = st.text(
    alphabet=st.characters(
        blacklist_categories=("Cs",),
        blacklist_characters="\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029",
    ),
    max_size=300,
)
file_name = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="/\\"),
    min_size=1,
    max_size=80,
).filter(lambda n: n.strip() not in ("", ".", "..") and n == n.strip())


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(subject=header_text, name=header_text, body=st.text(max_size=2000), filename=file_name)
def test_any_text_round_trips(
    tmp_path: Path, subject: str, name: str, body: str, filename: str
) -> None:
    attachment = tmp_path / "payload.bin"
    attachment.write_bytes(b"\x00\x01attachment")
    renamed = tmp_path / "named"
    renamed.mkdir(exist_ok=True)
    target = renamed / filename
    target.write_bytes(attachment.read_bytes())
    sender = MailAddress(name, "sender", "example.org")
    built = build_message(
        draft(sender=sender, subject=subject, body=body, attachments=(target,)),
        spool_dir=tmp_path / "spool",
    )
    raw = built.path.read_bytes()
    assert_wire_rules(raw)
    message = parse(built.path)
    # Outer whitespace of a header is not part of its text (readers drop it).
    assert str(message["Subject"]) == subject.strip()
    assert display_name(raw) == name.strip()
    plain = next(p for p in message.walk() if p.get_content_type() == "text/plain")
    assert text_of(plain) == render_plain(body)
    attached = next(p for p in message.walk() if p.get_content_disposition() == "attachment")
    assert attached.get_filename() == filename
    assert attached.get_content() == attachment.read_bytes()
    built.path.unlink()
    target.unlink()


# ------------------------------------------------------ prepared messages


def test_prepared_eml_keeps_body_strips_bcc(tmp_path: Path) -> None:
    source = tmp_path / "prepared.eml"
    source.write_bytes(
        b"From: Ann <ann@example.org>\n"
        b"To: bob@example.org\n"
        b"Bcc: hidden@example.org,\n  other@example.org\n"
        b"Subject: prepared\n"
        b"\n"
        b"Line one\nLine two\r\n.dot\n"
    )
    built = build_from_eml(
        source, envelope_from="ann@example.org", sender_domain="example.org", spool_dir=tmp_path
    )
    raw = built.path.read_bytes()
    assert built.recipients == ("bob@example.org", "hidden@example.org", "other@example.org")
    assert b"hidden@example.org" not in raw and b"Bcc" not in raw
    assert raw.endswith(b"\r\n\r\nLine one\r\nLine two\r\n.dot\r\n")
    message = parse(built.path)
    assert message["Message-ID"] == built.message_id and message["Date"] is not None
    assert_wire_rules(raw)


def test_prepared_eml_recipients_given(tmp_path: Path) -> None:
    source = tmp_path / "prepared.eml"
    source.write_bytes(
        b"From: a@example.org\r\nTo: b@example.org\r\nMessage-ID: <x@y>\r\n\r\nhi\r\n"
    )
    built = build_from_eml(
        source,
        envelope_from="a@example.org",
        recipients=("c@example.org",),
        sender_domain="example.org",
        spool_dir=tmp_path,
    )
    assert built.recipients == ("c@example.org",)
    assert built.message_id == "<x@y>"


@pytest.mark.parametrize(
    ("content", "words"),
    [(b"", "no From header"), (b"\x00\xff\x10garbage", "no From header"),
     (b"From: a@example.org\n\nno recipients\n", "names no recipients")],
)  # fmt: skip
def test_prepared_eml_refused(tmp_path: Path, content: bytes, words: str) -> None:
    source = tmp_path / "bad.eml"
    source.write_bytes(content)
    spool = tmp_path / "spool"
    with pytest.raises(DraftError, match=words):
        build_from_eml(
            source, envelope_from="a@example.org", sender_domain="example.org", spool_dir=spool
        )
    assert not spool.exists() or list(spool.iterdir()) == []


@pytest.mark.parametrize(
    "name", ["Иван Петров (ООО «Ромашка»)", "a" * 70 + "é", "Doe, Jane", "Ann (work)", ""]
)
def test_long_and_special_display_names(tmp_path: Path, name: str) -> None:
    sender = MailAddress(name, "sender", "example.org")
    built = build_message(draft(sender=sender), spool_dir=tmp_path)
    raw = built.path.read_bytes()
    assert_wire_rules(raw)
    assert display_name(raw) == name


def test_a_long_paragraph_keeps_every_line_within_998_octets(tmp_path: Path) -> None:
    # One Markdown paragraph of about 1,500 characters renders to one long HTML line.
    paragraph = " ".join(["word"] * 300)
    draft = Draft(
        sender=parse_address("ann@example.org"),
        to=(parse_address("bob@example.org"),),
        subject="Long",
        body=paragraph,
    )
    built = build_message(draft, spool_dir=tmp_path)
    raw = built.path.read_bytes()
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998
    parsed = email.message_from_bytes(raw, policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    for part in parsed.walk():
        if part.get_content_maintype() == "text":
            assert part["Content-Transfer-Encoding"] == "quoted-printable"
            assert paragraph in part.get_content().replace("\n", " ")
