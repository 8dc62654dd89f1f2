"""The session log's stored text."""

from __future__ import annotations

from mailer_gui.smtp.transcript import Transcript, render_records


def test_stored_text_has_one_prefixed_line_per_record_with_secrets_scrubbed() -> None:
    transcript = Transcript()
    transcript.add_secret("hunter22")
    transcript.client("EHLO laptop.example.org")
    transcript.server("250 mail.example.org")
    transcript.note("logged in with hunter22")
    records = transcript.records
    expected = "C: EHLO laptop.example.org\nS: 250 mail.example.org\n* logged in with *****"
    assert render_records(records) == expected
    assert transcript.render() == expected
    assert render_records(records) == "\n".join(record.render() for record in records)
    assert render_records(()) == ""
