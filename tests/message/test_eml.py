"""Saving and opening .eml files; the messages are built here with the stdlib email package."""

from __future__ import annotations

import errno
import os
import stat
import tempfile
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailer_gui.message.addresses import parse_address, parse_address_list
from mailer_gui.message.build import build_message
from mailer_gui.message.draft import Draft
from mailer_gui.message.eml import EmlError, load_eml, reply_draft, save_eml

ME = parse_address("Me <me@example.net>")
PDF = b"%PDF-1.4\n\x00\xff\xfe binary \r\n\x00"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256))


def write(tmp_path: Path, message: EmailMessage | bytes, name: str = "in.eml") -> Path:
    path = tmp_path / name
    path.write_bytes(message if isinstance(message, bytes) else message.as_bytes())
    return path


def mixed_message() -> EmailMessage:
    message = EmailMessage(policy=policy.SMTP)
    message["From"] = Address("Jörg Müller", "joerg", "xn--bcher-kva.example")
    message["To"] = [Address("Doe, Jane", "jane", "example.org"), Address("", "bob", "example.org")]
    message["Cc"] = "Chloé <chloe@example.org>"
    message["Bcc"] = "secret@example.org"
    message["Reply-To"] = "replies@example.org"
    message["Subject"] = "Grüße zum Bericht 🎉"
    message["Date"] = "Mon, 03 Jun 2024 10:15:00 +0200"
    message["Message-ID"] = "<orig-1@xn--bcher-kva.example>"
    message["X-Custom"] = "not copied"
    message.set_content("Hallo,\n\nanbei der Bericht.\nGrüße\n")
    message.add_alternative("<p>Hallo, <b>HTML</b> twin</p>", subtype="html")
    message.add_attachment(PDF, maintype="application", subtype="pdf", filename="Bericht März.pdf")
    message.add_attachment("plain notes\n", filename="notes.txt")
    return message


# -- save_eml -----------------------------------------------------------------


def test_save_copies_the_exact_bytes(tmp_path: Path) -> None:
    source = tmp_path / "spool.eml"
    source.write_bytes(os.urandom(3 * 1024 * 1024 + 17))  # several chunks, an odd tail
    out = tmp_path / "out"
    out.mkdir()
    destination = out / "Saved message.eml"
    destination.write_bytes(b"an older file")
    save_eml(source, destination)
    assert destination.read_bytes() == source.read_bytes()
    assert stat.S_IMODE(destination.stat().st_mode) == 0o600
    assert sorted(p.name for p in out.iterdir()) == ["Saved message.eml"]  # no temp file left


def test_save_into_a_missing_folder_names_the_destination(tmp_path: Path) -> None:
    source = write(tmp_path, mixed_message())
    destination = tmp_path / "missing" / "x.eml"
    with pytest.raises(EmlError, match=r"could not be saved as .*missing.*x\.eml") as caught:
        save_eml(source, destination)
    assert caught.value.path == destination
    assert not destination.parent.exists()


def test_save_from_a_missing_source(tmp_path: Path) -> None:
    with pytest.raises(EmlError, match="cannot be read") as caught:
        save_eml(tmp_path / "gone.eml", tmp_path / "x.eml")
    assert caught.value.path == tmp_path / "gone.eml"
    assert list(tmp_path.iterdir()) == []


def test_a_failed_save_leaves_the_old_file_and_no_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = write(tmp_path, mixed_message(), "spool.eml")
    out = tmp_path / "out"
    out.mkdir()
    destination = out / "x.eml"
    destination.write_bytes(b"the older file")

    def disk_full(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(EmlError, match="No space left") as caught:
        save_eml(source, destination)
    assert isinstance(caught.value.__cause__, OSError)
    assert destination.read_bytes() == b"the older file"
    assert [p.name for p in out.iterdir()] == ["x.eml"]


# -- load_eml -----------------------------------------------------------------


def test_load_mixed_message_with_attachments(tmp_path: Path) -> None:
    path = write(tmp_path, mixed_message())
    attachments_dir = tmp_path / "drafts" / "1"
    draft, unparsed = load_eml(path, attachments_dir)

    assert unparsed == []
    assert draft.sender == parse_address("Jörg Müller <joerg@xn--bcher-kva.example>")
    assert draft.to == (
        parse_address('"Doe, Jane" <jane@example.org>'),
        parse_address("bob@example.org"),
    )
    assert draft.cc == (parse_address("Chloé <chloe@example.org>"),)
    assert draft.bcc == (parse_address("secret@example.org"),)
    assert draft.reply_to == (parse_address("replies@example.org"),)
    assert draft.subject == "Grüße zum Bericht 🎉"
    assert draft.body == "Hallo,\n\nanbei der Bericht.\nGrüße\n"
    assert draft.body_format == "plain"
    assert (draft.extra_headers, draft.in_reply_to, draft.references) == ((), None, ())
    assert draft.inline_images == ()

    assert [p.name for p in draft.attachments] == ["Bericht März.pdf", "notes.txt"]
    assert draft.attachments[0].read_bytes() == PDF
    assert draft.attachments[1].read_bytes() == b"plain notes\n"
    assert all(p.parent == attachments_dir for p in draft.attachments)
    assert stat.S_IMODE(attachments_dir.stat().st_mode) == 0o700
    assert {stat.S_IMODE(p.stat().st_mode) for p in draft.attachments} == {0o600}


def test_load_reports_addresses_that_do_not_parse(tmp_path: Path) -> None:
    # The stdlib would turn the first into "ann@ex" and crash (IndexError) on "x@".
    raw = (
        b"From: ann@example.org\r\n"
        b"To: Ann <ann@ex ample.org>, bob@example.org, x@\r\n"
        b"Cc: =?utf-8?q?Zo=C3=AB?= <zoe@example.org>,\r\n not-an-address\r\n"
        b"Subject: =?utf-8?b?w5xiZXI=?= folded\r\n subject\r\n"
        b"\r\n"
        b"body\r\n"
    )
    draft, unparsed = load_eml(write(tmp_path, raw), tmp_path / "att")
    assert draft.to == (parse_address("bob@example.org"),)
    assert draft.cc == (parse_address("Zoë <zoe@example.org>"),)
    assert unparsed == ["Ann <ann@ex ample.org>", "x@", "not-an-address"]
    assert draft.subject == "Über folded subject"
    assert draft.body == "body\n"
    assert not (tmp_path / "att").exists()  # nothing to attach, no folder


def test_load_utf8_headers_rfc_6532(tmp_path: Path) -> None:
    raw = "From: Jörg <jörg@bücher.example>\nTo: zoë@example.org\nSubject: Ünïcode\n\nhi\n"
    draft, unparsed = load_eml(write(tmp_path, raw.encode()), tmp_path / "att")
    assert unparsed == []
    assert draft.sender == parse_address("Jörg <jörg@bücher.example>")
    assert draft.to == (parse_address("zoë@example.org"),)
    assert draft.subject == "Ünïcode"


@pytest.mark.parametrize(
    ("charset", "payload", "body"),
    [
        ("iso-8859-1", "Gr\xfc\xdfe\n".encode("latin-1"), "Grüße\n"),
        ("us-ascii", "Grüße\n".encode(), "Grüße\n"),  # mislabelled UTF-8 still reads
        ("x-unknown", b"caf\xc3\xa9\n", "café\n"),
        ("idna", b"..\n", "..\n"),  # a codec that raises whatever errors= says
        ("utf-8", b"bad \xff byte\r\n", "bad \ufffd byte\n"),
    ],
)
def test_body_charsets(tmp_path: Path, charset: str, payload: bytes, body: str) -> None:
    raw = (
        b"From: ann@example.org\r\nContent-Type: text/plain; charset="
        + charset.encode()
        + b"\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
        + payload
    )
    draft, _ = load_eml(write(tmp_path, raw), tmp_path / "att")
    assert draft.body == body


def test_the_first_from_address_is_the_sender(tmp_path: Path) -> None:
    raw = b"From: ann@example.org, bob@example.org\r\n\r\nx"
    draft, _ = load_eml(write(tmp_path, raw), tmp_path / "att")
    assert draft.sender == parse_address("ann@example.org")
    raw = b"From: broken@, bob@example.org\r\n\r\nx"
    with pytest.raises(EmlError, match="no usable From address: 'broken@'"):
        load_eml(write(tmp_path, raw), tmp_path / "att")


def test_load_html_only_becomes_plain_text(tmp_path: Path) -> None:
    message = EmailMessage(policy=policy.SMTP)
    message["From"] = "ann@example.org"
    message["Subject"] = "News"
    message.set_content(
        "<html><head><title>T</title><style>p {color: red}</style></head><body>"
        "<h1>Big&nbsp;news</h1><p>Fish &amp; chips<br>are   <i>back</i>.</p>"
        "<script>alert('x')</script><ul><li>one</li><li>two</li></ul>"
        '<img src="cid:logo" alt="[logo]"><pre>  keep\n  spacing</pre></body></html>',
        subtype="html",
    )
    draft, _ = load_eml(write(tmp_path, message), tmp_path / "att")
    assert draft.body_format == "plain"
    assert draft.body == (
        "Big news\n\nFish & chips\nare back.\n\none\ntwo\n\n[logo]\n\n  keep\n  spacing"
    )
    assert draft.attachments == ()


def test_load_related_message_gives_inline_images(tmp_path: Path) -> None:
    message = EmailMessage(policy=policy.SMTP)
    message["From"] = "ann@example.org"
    message["To"] = "bob@example.org"
    message["Subject"] = "Chart"
    message.set_content("See the chart.\n")
    message.add_alternative(
        '<p>See <img src="cid:chart@x"> and <img src="cid:logo.1@x"></p>', subtype="html"
    )
    _, html_part = message.iter_parts()
    html_part.add_related(PNG, "image", "png", cid="<chart@x>", filename="chart.png")
    html_part.add_related(b"GIF89a", "image", "gif", cid="<logo.1@x>")
    message.add_attachment(PDF, maintype="application", subtype="pdf", filename="chart.png")
    draft, _ = load_eml(write(tmp_path, message), tmp_path / "att")

    assert draft.body == "See the chart.\n"
    assert [(i.name, i.data, i.content_type, i.path) for i in draft.inline_images] == [
        ("chart.png", PNG, "image/png", None),
        ("logo.1@x", b"GIF89a", "image/gif", None),
    ]
    # The HTML twin is not an attachment; the attachment of the same name is.
    assert [p.name for p in draft.attachments] == ["chart.png"]
    assert draft.attachments[0].read_bytes() == PDF


def test_attached_message_and_nameless_parts_are_not_lost(tmp_path: Path) -> None:
    inner = EmailMessage()
    inner["From"] = "old@example.org"
    inner["Subject"] = "Forwarded"
    inner.set_content("old text\n")
    message = EmailMessage(policy=policy.SMTP)
    message["From"] = "ann@example.org"
    message.set_content("see below\n")
    message.add_attachment(inner)
    message.add_attachment(b"\x00\x01", maintype="application", subtype="octet-stream")
    draft, _ = load_eml(write(tmp_path, message), tmp_path / "att")
    names = [p.name for p in draft.attachments]
    assert names == ["attached message.eml", "attachment.bin"]
    assert b"Subject: Forwarded" in draft.attachments[0].read_bytes()
    assert draft.attachments[1].read_bytes() == b"\x00\x01"


@pytest.mark.parametrize(
    ("filename", "saved_as"),
    [
        ("../../etc/passwd", "passwd"),
        ("..\\..\\x.exe", "x.exe"),
        ("/etc/shadow", "shadow"),
        ("C:\\Windows\\evil.dll", "evil.dll"),
        (".bashrc", "bashrc"),
        ("..", "attachment.pdf"),
        ("../", "attachment.pdf"),
        ("   ", "attachment.pdf"),
        ("a\x01b\x7fc\td.txt", "a_b_c_d.txt"),
        ("evil\u202etxt.exe", "evil_txt.exe"),
        ('what?<>:"|*.txt', "what_______.txt"),
        ("name. . .", "name"),
        ("CON.txt", "_CON.txt"),
        ("con.tar.gz", "_con.tar.gz"),
        ("x" * 400 + ".pdf", "x" * 146 + ".pdf"),
        ("ü" * 200, "ü" * 75),
    ],
)
def test_attachment_names_are_sanitised(tmp_path: Path, filename: str, saved_as: str) -> None:
    message = EmailMessage(policy=policy.default)
    message["From"] = "ann@example.org"
    message.set_content("x")
    message.add_attachment(PDF, maintype="application", subtype="pdf", filename=filename)
    attachments_dir = tmp_path / "att"
    draft, _ = load_eml(write(tmp_path, message), attachments_dir)
    (saved,) = draft.attachments
    assert saved.name == saved_as
    assert saved.resolve().parent == attachments_dir.resolve()
    assert saved.read_bytes() == PDF
    assert sorted(p.name for p in tmp_path.iterdir()) == ["att", "in.eml"]


def test_attachment_names_are_made_unique(tmp_path: Path) -> None:
    message = EmailMessage(policy=policy.SMTP)
    message["From"] = "ann@example.org"
    message.set_content("x")
    for n, name in enumerate(["report.pdf", "Report.pdf", "../report.pdf", "README", "README"]):
        message.add_attachment(
            bytes([n]), maintype="application", subtype="octet-stream", filename=name
        )
    attachments_dir = tmp_path / "att"
    attachments_dir.mkdir()
    (attachments_dir / "report (2).pdf").write_bytes(b"an earlier draft's file")
    os.symlink(tmp_path / "target", attachments_dir / "README")  # planted: never written through
    draft, _ = load_eml(write(tmp_path, message), attachments_dir)
    assert [p.name for p in draft.attachments] == [
        "report.pdf",
        "Report (3).pdf",
        "report (4).pdf",
        "README (2)",
        "README (3)",
    ]
    assert [p.read_bytes() for p in draft.attachments] == [bytes([n]) for n in range(5)]
    assert (attachments_dir / "report (2).pdf").read_bytes() == b"an earlier draft's file"
    assert not (tmp_path / "target").exists()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "not an email message"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00garbage\xff\xfe", "not an email message"),
        (b"just some text\nwithout headers\n", "not an email message"),
        (b"Subject: hi\nTo: bob@example.org\n\nbody\n", "has no From address"),
        (b"From: not an address\n\nbody\n", "'not an address' is not an email address"),
    ],
)
def test_not_a_usable_message(tmp_path: Path, content: bytes, message: str) -> None:
    path = write(tmp_path, content, "odd.eml")
    with pytest.raises(EmlError, match=message) as caught:
        load_eml(path, tmp_path / "att")
    assert caught.value.path == path
    assert str(caught.value).startswith("odd.eml ")
    assert not (tmp_path / "att").exists()


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(EmlError, match=r"gone\.eml cannot be opened"):
        load_eml(tmp_path / "gone.eml", tmp_path / "att")
    with pytest.raises(EmlError, match=r"gone\.eml cannot be opened"):
        reply_draft(tmp_path / "gone.eml", ME)


def test_round_trip_through_the_builder(tmp_path: Path) -> None:
    attachment = tmp_path / "Bericht März.pdf"
    attachment.write_bytes(PDF)
    original = Draft(
        sender=parse_address("Jörg Müller <joerg@example.de>"),
        to=tuple(parse_address_list(["Ann <ann@example.org>", '"Doe, J" <j@example.org>'])),
        cc=(parse_address("chloe@example.org"),),
        reply_to=(parse_address("replies@example.de"),),
        subject="Grüße",
        body="Hallo Ann,\n\nanbei.\n",
        body_format="plain",
        attachments=(attachment,),
    )
    built = build_message(original, spool_dir=tmp_path / "spool")
    saved = tmp_path / "saved.eml"
    save_eml(built.path, saved)
    assert saved.read_bytes() == built.path.read_bytes()

    draft, unparsed = load_eml(saved, tmp_path / "att")
    assert unparsed == []
    for name in ("sender", "to", "cc", "reply_to", "subject", "body", "body_format"):
        assert getattr(draft, name) == getattr(original, name), name
    assert [p.read_bytes() for p in draft.attachments] == [PDF]
    assert [p.name for p in draft.attachments] == ["Bericht März.pdf"]


# -- reply_draft ----------------------------------------------------------------


def test_reply_goes_to_reply_to_with_threading_and_quote(tmp_path: Path) -> None:
    message = mixed_message()
    message["References"] = "<root@x> <mid@x>"
    draft = reply_draft(write(tmp_path, message), ME)
    assert draft.sender == ME
    assert draft.to == (parse_address("replies@example.org"),)
    assert draft.cc == draft.bcc == draft.reply_to == ()
    assert draft.subject == "Re: Grüße zum Bericht 🎉"
    assert draft.in_reply_to == "<orig-1@xn--bcher-kva.example>"
    assert draft.references == ("<root@x>", "<mid@x>", "<orig-1@xn--bcher-kva.example>")
    assert draft.body_format == "markdown"
    assert draft.body == (
        "On Mon, 03 Jun 2024 10:15:00 +0200, Jörg Müller wrote:\n"
        "> Hallo,\n"
        ">\n"
        "> anbei der Bericht.\n"
        "> Grüße\n"
    )
    assert draft.attachments == () and draft.inline_images == ()


def reply_all_message() -> EmailMessage:
    message = EmailMessage(policy=policy.SMTP)
    message["From"] = "Ann <ann@example.org>"
    message["To"] = "Me <ME@Example.NET>, bob@example.org, Ann <ann@example.org>"
    message["Cc"] = "carol@example.org, me@example.net, bob@example.org"
    message["Subject"] = "RE: plans"
    message["Message-ID"] = "<2@x>"
    message["In-Reply-To"] = "<1@x>"
    message.set_content("ok\n")
    return message


def test_reply_all_adds_to_and_cc_without_me_or_repeats(tmp_path: Path) -> None:
    path = write(tmp_path, reply_all_message())
    draft = reply_draft(path, ME, reply_all=True)
    assert draft.to == tuple(parse_address_list(["Ann <ann@example.org>", "bob@example.org"]))
    assert draft.cc == (parse_address("carol@example.org"),)
    assert draft.subject == "RE: plans"  # not doubled, whatever its case
    assert draft.in_reply_to == "<2@x>"
    # No References: the parent's single In-Reply-To, then its Message-ID (RFC 5322 §3.6.4).
    assert draft.references == ("<1@x>", "<2@x>")
    assert draft.body == "Ann wrote:\n> ok\n"

    plain = reply_draft(path, ME)
    assert (plain.to, plain.cc) == ((parse_address("Ann <ann@example.org>"),), ())


def test_reply_to_my_own_message_goes_to_its_recipients(tmp_path: Path) -> None:
    message = EmailMessage(policy=policy.SMTP)
    message["From"] = "me@example.net"
    message["To"] = "bob@example.org"
    message["Subject"] = ""
    message.set_content("")
    draft = reply_draft(write(tmp_path, message), ME)
    assert draft.to == (parse_address("bob@example.org"),)
    assert draft.subject == "Re:"
    assert (draft.in_reply_to, draft.references) == (None, ())
    assert draft.body == "me@example.net wrote:\n"


def test_reply_to_html_only_quotes_its_text(tmp_path: Path) -> None:
    message = EmailMessage(policy=policy.SMTP)
    message["From"] = "ann@example.org"
    message["Subject"] = "re:  already"
    message["Message-ID"] = "bare-id@x"
    message.set_content("<p>one</p><p>two</p>", subtype="html")
    draft = reply_draft(write(tmp_path, message), ME)
    assert draft.subject == "re:  already"
    assert draft.in_reply_to == "<bare-id@x>"
    assert draft.body == "ann@example.org wrote:\n> one\n>\n> two\n"


def test_reply_to_a_non_message(tmp_path: Path) -> None:
    with pytest.raises(EmlError, match="not an email message"):
        reply_draft(write(tmp_path, b"\x00\x01\x02"), ME)


# -- hostile input ----------------------------------------------------------------

_HEADER_NAMES = st.sampled_from(
    [
        "From",
        "To",
        "Cc",
        "Subject",
        "Content-Type",
        "Content-Disposition",
        "Content-Transfer-Encoding",
        "Content-ID",
        "MIME-Version",
        "Message-ID",
        "References",
    ]
)
_HEADER_VALUES = st.one_of(
    st.text(max_size=30),
    st.sampled_from(
        [
            "multipart/mixed; boundary=b",
            "multipart/related; boundary=b",
            "text/html; charset=x-unknown",
            "attachment; filename*=x-bogus''%FF",
            "attachment; filename=../../x",
            "base64",
            "quoted-printable",
            "x@",
            "<>",
            "a@b.org",
            "=?utf-8?b?!!?=",
        ]
    ),
)
_LINES = st.one_of(
    st.tuples(_HEADER_NAMES, _HEADER_VALUES).map(lambda h: f"{h[0]}: {h[1]}"),
    st.sampled_from(["", "--b", "--b--", " folded", "<p>x</p>"]),
    st.text(max_size=20),
)


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.one_of(
        st.binary(max_size=300),
        st.lists(_LINES, max_size=25).map(
            lambda lines: ("From: a@b.org\n" + "\n".join(lines)).encode("utf-8", "surrogatepass")
        ),
    )
)
def test_any_file_gives_a_draft_or_eml_error(content: bytes) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "in.eml"
        path.write_bytes(content)
        attachments_dir = Path(scratch) / "att"
        try:
            draft, _ = load_eml(path, attachments_dir)
        except EmlError:
            assert not attachments_dir.exists() or not any(attachments_dir.iterdir())
        else:
            assert "\n" not in draft.subject and "\r" not in draft.subject
            for attachment in draft.attachments:
                assert attachment.parent == attachments_dir
        try:
            reply = reply_draft(path, ME, reply_all=True)
        except EmlError:
            pass
        else:
            assert len(reply.subject.splitlines()) <= 1


@pytest.mark.parametrize(("body_format", "html"), [("markdown", True), ("plain", False)])
def test_a_message_mailer_wrote_comes_back_in_its_format(
    tmp_path: Path, body_format: str, html: bool
) -> None:
    source = "Hello **Bob**,\n\n- one\n- two\n"
    draft = Draft(
        sender=parse_address("Ann <ann@example.org>"),
        to=(parse_address("bob@example.org"),),
        subject="Formats",
        body=source,
        body_format=body_format,  # type: ignore[arg-type]
    )
    built = build_message(draft, spool_dir=tmp_path)
    assert (b"text/html" in built.path.read_bytes()) is html
    loaded, _notes = load_eml(built.path, tmp_path / "attachments")
    assert loaded.body_format == body_format
    assert loaded.body == source


def test_another_programs_html_message_comes_back_as_plain_text(tmp_path: Path) -> None:
    message = EmailMessage()
    message["From"] = "carol@example.org"
    message["To"] = "ann@example.org"
    message["Subject"] = "From elsewhere"
    message["User-Agent"] = "Thunderbird"
    message.set_content("Hi **there**")
    message.add_alternative("<p>Hi <b>there</b></p>", subtype="html")
    path = tmp_path / "other.eml"
    path.write_bytes(message.as_bytes(policy=policy.SMTP))
    loaded, _notes = load_eml(path, tmp_path / "attachments")
    assert loaded.body_format == "plain"
