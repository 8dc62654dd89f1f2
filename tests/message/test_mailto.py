"""mailto: links (RFC 6068) -> MailtoFields -> Draft."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailer_gui.message.addresses import parse_address
from mailer_gui.message.mailto import (
    MailtoError,
    MailtoFields,
    draft_from_mailto,
    parse_mailto,
)

SENDER = parse_address("Me <me@example.net>")

# RFC 6068 §6 examples, and what each asks for.
RFC_EXAMPLES = [
    ("mailto:chris@example.com", MailtoFields(to=("chris@example.com",))),
    (
        "mailto:infobot@example.com?subject=current-issue",
        MailtoFields(to=("infobot@example.com",), subject="current-issue"),
    ),
    (
        "mailto:infobot@example.com?body=send%20current-issue",
        MailtoFields(to=("infobot@example.com",), body="send current-issue"),
    ),
    (
        "mailto:infobot@example.com?body=send%20current-issue%0D%0Asend%20index",
        MailtoFields(to=("infobot@example.com",), body="send current-issue\nsend index"),
    ),
    (
        "mailto:list@example.org?In-Reply-To=%3C3469A91.D10AF4C@example.com%3E",
        MailtoFields(to=("list@example.org",), in_reply_to="<3469A91.D10AF4C@example.com>"),
    ),
    (
        "mailto:majordomo@example.com?body=subscribe%20bamboo-l",
        MailtoFields(to=("majordomo@example.com",), body="subscribe bamboo-l"),
    ),
    (
        "mailto:joe@example.com?cc=bob@example.com&body=hello",
        MailtoFields(to=("joe@example.com",), cc=("bob@example.com",), body="hello"),
    ),
    (
        "mailto:?to=joe@example.com&cc=bob@example.com&body=hello",
        MailtoFields(to=("joe@example.com",), cc=("bob@example.com",), body="hello"),
    ),
    ("mailto:gorby%25kremvax@example.com", MailtoFields(to=("gorby%kremvax@example.com",))),
    (
        "mailto:unlikely%3Faddress@example.com?blat=foop",
        MailtoFields(to=("unlikely?address@example.com",)),
    ),
    ("mailto:Mike%26family@example.org", MailtoFields(to=("Mike&family@example.org",))),
    ("mailto:%22not%40me%22@example.org", MailtoFields(to=('"not@me"@example.org',))),
    (
        "mailto:%22oh%5C%5Cno%22@example.org",
        MailtoFields(to=('"oh\\\\no"@example.org',)),
    ),
    (
        "mailto:%22%5C%5C%5C%22it's%5C%20ugly%5C%5C%5C%22%22@example.org",
        MailtoFields(to=('"\\\\\\"it\'s\\ ugly\\\\\\""@example.org',)),
    ),
    (
        "mailto:user@example.org?subject=caf%C3%A9",
        MailtoFields(to=("user@example.org",), subject="café"),
    ),
    (
        "mailto:user@example.org?subject=%3D%3Futf-8%3FQ%3Fcaf%3DC3%3DA9%3F%3D&body=caf%C3%A9",
        MailtoFields(to=("user@example.org",), subject="café", body="café"),
    ),
    (
        "mailto:user@%E7%B4%8D%E8%B1%86.example.org?subject=Test&body=NATTO",
        MailtoFields(to=("user@納豆.example.org",), subject="Test", body="NATTO"),
    ),
    (
        "mailto:%D0%BF%D1%80%D0%B8%D0%BC%D0%B5%D1%80@%D0%B4%D0%BE%D0%BC%D0%B5%D0%BD.example",
        MailtoFields(to=("пример@домен.example",)),
    ),
    (
        "mailto:?to=addr1@an.example,addr2@an.example",
        MailtoFields(to=("addr1@an.example", "addr2@an.example")),
    ),
    (
        "mailto:addr1@an.example?to=addr2@an.example",
        MailtoFields(to=("addr1@an.example", "addr2@an.example")),
    ),
]


@pytest.mark.parametrize(("url", "expected"), RFC_EXAMPLES, ids=[u for u, _ in RFC_EXAMPLES])
def test_rfc_6068_examples(url: str, expected: MailtoFields) -> None:
    assert parse_mailto(url) == expected


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        # Scheme and header names are case-insensitive; the URL may come with blanks around it.
        (
            " MAILTO:a@x.org?SUBJECT=Hi&Cc=b@x.org ",
            MailtoFields(to=("a@x.org",), cc=("b@x.org",), subject="Hi"),
        ),
        # "+" is a plus (sub-addresses!), only %20 is a space (RFC 6068 §5).
        (
            "mailto:bill+ietf@example.org?subject=1+1%3D2&body=a+b%2Bc",
            MailtoFields(to=("bill+ietf@example.org",), subject="1+1=2", body="a+b+c"),
        ),
        # The first subject, body and in-reply-to win; address lists accumulate.
        (
            "mailto:a@x.org?subject=one&subject=two&body=first&body=second"
            "&cc=c1@x.org&cc=c2@x.org&bcc=b1@x.org,b2@x.org&to=a2@x.org"
            "&in-reply-to=%3C1@x%3E&in-reply-to=%3C2@x%3E",
            MailtoFields(
                to=("a@x.org", "a2@x.org"),
                cc=("c1@x.org", "c2@x.org"),
                bcc=("b1@x.org", "b2@x.org"),
                subject="one",
                body="first",
                in_reply_to="<1@x>",
            ),
        ),
        # Display names, %2C-separated lists, quoted commas, blank entries.
        (
            "mailto:Ann%20%3Cann@x.org%3E%2C%22Doe,%20J%22%20%3Cj@y.org%3E,,?cc=%20",
            MailtoFields(to=("Ann <ann@x.org>", '"Doe, J" <j@y.org>')),
        ),
        # Percent-encoded header names; hfields without "=" or empty ones are skipped.
        (
            "mailto:a@x.org?%73ubject=encoded%20name&&body&cc",
            MailtoFields(to=("a@x.org",), subject="encoded name"),
        ),
        # A fragment is not part of the mail (RFC 3986).
        ("mailto:a@x.org?subject=Hi#frag", MailtoFields(to=("a@x.org",), subject="Hi")),
        # Invalid UTF-8 becomes U+FFFD; a malformed escape stays as written.
        (
            "mailto:a@x.org?subject=caf%C3%28%ZZ&body=%FF",
            MailtoFields(to=("a@x.org",), subject="caf\ufffd(%ZZ", body="\ufffd"),
        ),
        ("mailto:", MailtoFields()),
        ("mailto:?", MailtoFields()),
    ],
)
def test_parsing_rules(url: str, expected: MailtoFields) -> None:
    assert parse_mailto(url) == expected


@pytest.mark.parametrize(
    "name", ["from", "From", "sender", "reply-to", "references", "x-mailer", "blat", "bodyx"]
)
def test_other_headers_are_ignored(name: str) -> None:
    fields = parse_mailto(f"mailto:a@x.org?{name}=evil@attacker.example&subject=ok")
    assert fields == MailtoFields(to=("a@x.org",), subject="ok")


def test_line_breaks_cannot_reach_a_header() -> None:
    fields = parse_mailto(
        "mailto:a@x.org%0D%0Aboss@x.org%0Dc%20d?subject=Hi%0D%0ABcc:%20spy@x.org%0A%0Dmore"
        "&cc=c@x.org%0D%0Ad@x.org&in-reply-to=%3C1@x%3E%0D%0AX-Evil:%201"
        "&body=line%0D%0Aline%0Aline%0Dline"
    )
    assert fields.subject == "Hi Bcc: spy@x.org  more"
    # Addresses split at a line break: the text stays visible, each part on its own.
    assert fields.to == ("a@x.org", "boss@x.org", "c d")
    assert fields.cc == ("c@x.org", "d@x.org")
    assert fields.in_reply_to == "<1@x> X-Evil: 1"
    assert fields.body == "line\nline\nline\nline"


@pytest.mark.parametrize(
    "url", ["", "   ", "http://example.org/", "mail:a@x.org", "a@x.org", "mailto", "xmailto:a@x"]
)
def test_not_a_mailto_link(url: str) -> None:
    with pytest.raises(MailtoError, match="is not a mailto: link") as caught:
        parse_mailto(url)
    assert caught.value.url == url
    assert isinstance(caught.value, ValueError)


def test_draft_keeps_the_addresses_that_parse_and_returns_the_others() -> None:
    fields = parse_mailto(
        "mailto:Ann%20%3Cann@x.org%3E,not-an-address?cc=bob@y.org,bad@@y.org"
        "&bcc=carol@z.org&subject=Hello&body=Hi%0D%0Athere&in-reply-to=abc@x.org"
    )
    draft, unparsed = draft_from_mailto(fields, SENDER)
    assert draft.sender == SENDER
    assert draft.to == (parse_address("Ann <ann@x.org>"),)
    assert draft.cc == (parse_address("bob@y.org"),)
    assert draft.bcc == (parse_address("carol@z.org"),)
    assert unparsed == ["not-an-address", "bad@@y.org"]
    assert (draft.subject, draft.body, draft.body_format) == ("Hello", "Hi\nthere", "plain")
    assert draft.in_reply_to == "<abc@x.org>"
    assert draft.references == ("<abc@x.org>",)


def test_draft_leaves_out_an_in_reply_to_that_is_not_a_message_id() -> None:
    fields = parse_mailto("mailto:a@x.org?in-reply-to=%3C1@x%3E%20X-Evil:%201")
    draft, unparsed = draft_from_mailto(fields, SENDER)
    assert (draft.in_reply_to, draft.references, unparsed) == (None, (), [])


def test_unicode_addresses_reach_the_draft() -> None:
    url = "mailto:user@%E7%B4%8D%E8%B1%86.example.org?subject=Test&body=NATTO"
    draft, unparsed = draft_from_mailto(parse_mailto(url), SENDER)
    assert unparsed == []
    assert draft.to[0].domain == "納豆.example.org"


@given(st.text())
def test_any_text_gives_fields_or_mailto_error(text: str) -> None:
    for url in (text, "mailto:" + text, "mailto:a@x.org?subject=" + text):
        try:
            fields = parse_mailto(url)
        except MailtoError:
            continue
        assert "\r" not in fields.subject and "\n" not in fields.subject
        assert len(fields.subject.splitlines()) <= 1
        for address in (*fields.to, *fields.cc, *fields.bcc):
            assert "\r" not in address and "\n" not in address
        draft, unparsed = draft_from_mailto(fields, SENDER)
        assert len(draft.to) + len(draft.cc) + len(draft.bcc) + len(unparsed) == (
            len(fields.to) + len(fields.cc) + len(fields.bcc)
        )


_ESCAPES = st.integers(0, 255).map(lambda b: f"%{b:02X}")
_PIECES = st.one_of(
    _ESCAPES,
    st.sampled_from(["?", "&", "=", ",", "subject", "body", "to", "cc", "%0D%0A", "=?", "?="]),
    st.text(max_size=5),
)


@given(st.lists(_PIECES, max_size=30).map("".join))
def test_escaped_junk_never_puts_a_line_break_in_the_subject(tail: str) -> None:
    fields = parse_mailto("mailto:" + tail)
    assert len(fields.subject.splitlines()) <= 1
    assert "\r" not in fields.subject and "\n" not in fields.subject
