"""Reading a spool file for display, and pairing a stored transcript's replies with their steps."""

from __future__ import annotations

from email import policy
from email.message import EmailMessage
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailer_gui.message.addresses import parse_address
from mailer_gui.message.build import build_message
from mailer_gui.message.draft import Draft, InlineImage
from mailer_gui.message.inspect import (
    Attachment,
    MessageFileError,
    human_size,
    read_message,
    read_transcript,
    recipient_explanation,
)
from mailer_gui.smtp.replies import Reply, Stage

PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00"
    b"\x1f\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\xcf\xc0\xf0\x1f\x00\x05\x00\x01\xff\x89\x99"
    b"=\x1d\x00\x00\x00\x00IEND\xaeB`\x82"
)

# What the runner stored for a 550 to RCPT (a real aiosmtpd transcript).
REFUSED_RCPT = """\
* connecting to localhost port 35373 (none)
S: 220 localhost Python SMTP 1.4.6
C: EHLO [127.0.0.1]
S: 250-localhost
S: 250-SIZE 33554432
S: 250-8BITMIME
S: 250 HELP
C: MAIL FROM:<ann@example.org> SIZE=1087
S: 250 2.1.0 OK
C: RCPT TO:<nobody@example.org>
S: 550 5.1.1 No such user here"""

# Pipelined: three commands out, then their replies in order; then the message.
PIPELINED = """\
C: MAIL FROM:<ann@example.org>
C: RCPT TO:<gone@example.org>
C: RCPT TO:<bob@example.org>
C: DATA
S: 250 2.1.0 OK
S: 550 5.1.1 Unknown user
S: 250 2.1.5 OK
S: 354 go ahead
* sending the message (1084 bytes)
S: 452 Insufficient system storage
C: RSET
S: 421 4.3.0 closing"""


def test_a_markdown_message_with_an_inline_image_and_an_attachment(tmp_path: Path) -> None:
    report = tmp_path / "report.pdf"
    report.write_bytes(b"%PDF" + bytes(2044))
    draft = Draft(
        sender=parse_address("Ann Example <ann@example.org>"),
        to=(parse_address("bob@example.org"),),
        cc=(parse_address("Carol <carol@example.org>"),),
        subject="Quarterly report",
        body="**Numbers** below.\n\n![chart](chart.png)\n",
        attachments=(report,),
        inline_images=(InlineImage("chart.png", data=PNG, content_type="image/png"),),
    )
    built = build_message(draft, spool_dir=tmp_path)

    view = read_message(built.path)

    assert view.subject == "Quarterly report"
    assert view.sender == "Ann Example <ann@example.org>"
    assert view.to == "bob@example.org"
    assert view.cc == "Carol <carol@example.org>"
    assert view.date
    assert view.html is not None and "<strong>Numbers</strong>" in view.html
    assert "Numbers" in view.text
    [(content_id, image)] = view.inline_parts.items()
    assert f"cid:{content_id}" in view.html
    assert image.data == PNG and image.content_type == "image/png"
    assert view.attachments == (Attachment("report.pdf", "application/pdf", 2048),)
    assert not view.cut


def test_a_plain_text_message(tmp_path: Path) -> None:
    draft = Draft(
        sender=parse_address("ann@example.org"),
        to=(parse_address("bob@example.org"),),
        subject="Plain",
        body="Just text, <b>not markup</b>.\nSecond line.",
        body_format="plain",
    )
    view = read_message(build_message(draft, spool_dir=tmp_path).path)
    assert view.html is None
    assert view.text.rstrip("\n") == "Just text, <b>not markup</b>.\nSecond line."
    assert view.attachments == () and dict(view.inline_parts) == {}


def test_attachments_of_every_kind_are_listed_with_decoded_sizes(tmp_path: Path) -> None:
    message = EmailMessage(policy=policy.SMTP)
    message["From"] = "ann@example.org"
    message["To"] = "bob@example.org"
    message["Subject"] = "Files"
    message.set_content("See the files.\n")
    message.add_attachment(bytes(1000), maintype="application", subtype="octet-stream",
                           filename="../../etc/zeros.bin")  # fmt: skip
    message.add_attachment("notes\n", filename="notes.txt")
    inner = EmailMessage()
    inner["Subject"] = "Forwarded"
    inner.set_content("inner text\n")
    message.add_attachment(inner)
    path = tmp_path / "files.eml"
    path.write_bytes(message.as_bytes())

    view = read_message(path)

    assert view.text == "See the files.\n"
    names = [(a.name, a.size) for a in view.attachments]
    assert names[0] == ("zeros.bin", 1000)  # no folders in a name shown
    assert names[1] == ("notes.txt", len(b"notes\n"))
    assert names[2][0] == "attached message.eml" and names[2][1] > 0


def test_a_long_body_is_cut_and_long_html_falls_back_to_text(tmp_path: Path) -> None:
    draft = Draft(
        sender=parse_address("ann@example.org"),
        to=(parse_address("bob@example.org"),),
        subject="Long",
        body="word " * 5000,
    )
    path = build_message(draft, spool_dir=tmp_path).path
    assert not read_message(path).cut
    view = read_message(path, max_body=1000)
    assert view.cut and view.html is None
    assert len(view.text) == 1000


def test_a_missing_file_says_so(tmp_path: Path) -> None:
    missing = tmp_path / "spool" / "gone.eml"
    with pytest.raises(MessageFileError) as caught:
        read_message(missing)
    assert "missing" in str(caught.value) and str(missing) in str(caught.value)
    assert caught.value.path == missing


def test_a_file_that_is_not_a_message(tmp_path: Path) -> None:
    empty = tmp_path / "empty.eml"
    empty.write_bytes(b"")
    with pytest.raises(MessageFileError, match="not an email message"):
        read_message(empty)


@pytest.mark.parametrize(
    ("size", "text"),
    [(0, "0 bytes"), (1, "1 byte"), (845, "845 bytes"), (1536, "1.5 KB"),
     (3_500_000, "3.3 MB"), (5 * 1024**4, "5120.0 GB")],
)  # fmt: skip
def test_human_size(size: int, text: str) -> None:
    assert human_size(size) == text


# -- transcripts ---------------------------------------------------------------------


def test_a_refused_recipient_is_paired_with_its_rcpt() -> None:
    conversation = read_transcript(REFUSED_RCPT)
    assert conversation.host == "localhost"
    assert [(e.stage, e.command, e.reply.code) for e in conversation.exchanges] == [
        (Stage.GREETING, "", 220),
        (Stage.EHLO, "EHLO [127.0.0.1]", 250),
        (Stage.MAIL, "MAIL FROM:<ann@example.org> SIZE=1087", 250),
        (Stage.RCPT, "RCPT TO:<nobody@example.org>", 550),
    ]
    ehlo = conversation.exchanges[1].reply
    assert ehlo.lines == ("localhost", "SIZE 33554432", "8BITMIME", "HELP")
    [problem] = conversation.problems
    assert problem.reply == Reply(550, "5.1.1", ("No such user here",))
    explanation = conversation.explain(problem)
    assert explanation.summary == (
        "The server localhost says the recipient address does not exist (550 5.1.1)."
    )
    assert conversation.rcpt_reply("NOBODY@example.org") is problem


def test_pipelined_replies_answer_the_commands_in_order() -> None:
    conversation = read_transcript(PIPELINED)
    assert conversation.host is None  # a connection reused: no greeting in this transcript
    assert [(e.stage, e.reply.code) for e in conversation.exchanges] == [
        (Stage.MAIL, 250),
        (Stage.RCPT, 550),
        (Stage.RCPT, 250),
        (Stage.DATA, 354),
        (Stage.DATA_END, 452),
        (Stage.RSET, 421),
    ]
    # The 421 answers RSET: housekeeping, not a problem of this message.
    assert [(e.stage, e.reply.code) for e in conversation.problems] == [
        (Stage.RCPT, 550),
        (Stage.DATA_END, 452),
    ]
    assert conversation.exchanges[4].command == "."


def test_a_recipient_is_explained_at_the_step_that_refused_it() -> None:
    conversation = read_transcript(PIPELINED)
    # bob's RCPT was accepted; his stored 452 came after the message: storage, not "too many".
    bob = recipient_explanation(
        "bob@example.org", 452, None, "Insufficient system storage", conversation
    )
    assert bob is not None and "short of storage" in bob.summary
    at_rcpt = recipient_explanation("carol@example.org", 452, None, "Too many", None)
    assert at_rcpt is not None and "no more recipients" in at_rcpt.summary
    gone = recipient_explanation("gone@example.org", 550, "5.1.1", "Unknown user", conversation)
    assert gone is not None and "does not exist" in gone.summary
    assert recipient_explanation("bob@example.org", 250, "2.1.5", "OK", conversation) is None
    assert recipient_explanation("bob@example.org", None, None, "gave up", conversation) is None


def test_auth_exchanges_and_a_reply_nobody_asked_for() -> None:
    conversation = read_transcript(
        "* connecting to smtp.example.org port 587 (starttls)\n"
        "S: 220 ready\n"
        "C: AUTH LOGIN\n"
        "S: 334 VXNlcm5hbWU6\n"
        "C: *****\n"
        "S: 334 UGFzc3dvcmQ6\n"
        "C: *****\n"
        "S: 535 5.7.8 Authentication credentials invalid\n"
        "S: 421 4.4.2 idle too long\n"
        "* the connection closed\n"
        "this line is not part of any transcript\n"
        "S: not a reply\n"
    )
    assert [(e.stage, e.reply.code) for e in conversation.exchanges] == [
        (Stage.GREETING, 220),
        (Stage.AUTH, 334),
        (Stage.AUTH, 334),
        (Stage.AUTH, 535),
        (Stage.CONNECTION, 421),
    ]
    assert conversation.host == "smtp.example.org"
    assert "the connection closed" in conversation.notes


@given(st.text())
def test_any_text_reads_without_raising(text: str) -> None:
    conversation = read_transcript(text)
    assert all(e.reply.code >= 200 for e in conversation.exchanges)
