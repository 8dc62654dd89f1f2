"""Addresses as people type them."""

from __future__ import annotations

import pytest

from mailer_gui.message.addresses import (
    AddressError,
    check_address_list,
    parse_address,
    parse_address_list,
    shown_address,
    split_address_list,
)


@pytest.mark.parametrize(
    ("text", "name", "spec"),
    [
        ("ann@example.org", "", "ann@example.org"),
        ("  ann@example.org ", "", "ann@example.org"),
        ("Ann Example <ann@example.org>", "Ann Example", "ann@example.org"),
        ('"Doe, Jane" <jane@example.org>', "Doe, Jane", "jane@example.org"),
        ("Jörg <jörg@bücher.example>", "Jörg", "jörg@bücher.example"),
        ("first.last+tag@sub.example.org", "", "first.last+tag@sub.example.org"),
        ("x@[192.0.2.1]", "", "x@[192.0.2.1]"),
    ],
)
def test_valid(text: str, name: str, spec: str) -> None:
    address = parse_address(text)
    assert (address.display_name, address.addr_spec) == (name, spec)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("bad address", "not an email address"),
        ("ann@example.org bob@example.org", "not one email address"),
        ("@example.org", "has nothing before the @"),
        ("bob@", "has no domain"),
        ("ann@example..org", "not a valid domain"),
        ("ann@-example.org", "not a valid name"),
        (".ann@example.org", "dots cannot"),
        ("ann@example.org\r\nBcc: x@y.z", "line breaks"),
        ("ann(x)@example.org", "not one email address"),
    ],
)
def test_invalid_names_the_input(text: str, words: str) -> None:
    with pytest.raises(AddressError) as info:
        parse_address(text)
    assert words in str(info.value)
    assert repr(text.strip())[:10] in str(info.value) or "line breaks" in words


def test_split_respects_quotes_and_brackets() -> None:
    assert split_address_list('"Doe, J" <j@x.org>, b@y.org,, <c,d@z.org>') == [
        '"Doe, J" <j@x.org>',
        "b@y.org",
        "<c,d@z.org>",
    ]


def test_semicolons_and_groups() -> None:
    assert split_address_list("a@x.org; b@x.org") == ["a@x.org", "b@x.org"]
    assert split_address_list("Team: a@x.org, B <b@x.org>;, c@x.org") == [
        "a@x.org",
        "B <b@x.org>",
        "c@x.org",
    ]
    assert split_address_list("undisclosed-recipients:;") == []
    assert split_address_list('"Re: us" <r@x.org>') == ['"Re: us" <r@x.org>']


def test_each_bad_address_reported_by_itself() -> None:
    checks = check_address_list("ann@example.org, bob@, Carol <carol@example.org>; dave")
    assert [c.text for c in checks] == [
        "ann@example.org",
        "bob@",
        "Carol <carol@example.org>",
        "dave",
    ]
    assert [c.error is None for c in checks] == [True, False, True, False]
    assert checks[1].error == "'bob@' has no domain after the @"
    assert checks[2].address is not None and checks[2].address.display_name == "Carol"


def test_list_from_repeated_options() -> None:
    addresses = parse_address_list(["a@x.org, b@x.org", "C <c@x.org>"])
    assert [a.addr_spec for a in addresses] == ["a@x.org", "b@x.org", "c@x.org"]


def test_idn_and_smtputf8() -> None:
    idn = parse_address("ann@bücher.example")
    assert idn.ascii_domain == "xn--bcher-kva.example"
    assert not idn.needs_smtputf8
    assert idn.envelope(smtputf8=False) == "ann@xn--bcher-kva.example"
    utf8 = parse_address("jörg@example.org")
    assert utf8.needs_smtputf8
    assert utf8.envelope(smtputf8=True) == "jörg@example.org"


@pytest.mark.parametrize(
    ("stored", "shown"),
    [
        ("x@xn--bcher-kva.test", "x@bücher.test"),
        ("x@mail.XN--BCHER-KVA.test", "x@mail.bücher.test"),
        ("jörg@bücher.test", "jörg@bücher.test"),
        ("x@example.org", "x@example.org"),
        ("x@xn--zz.test", "x@xn--zz.test"),  # not real punycode: kept
        ("no-at-sign", "no-at-sign"),
        ('"a@b"@xn--mnchen-3ya.test', '"a@b"@münchen.test'),
        ("y@xn--gre-6ka8l.test", "y@grüße.test"),  # an IDNA 2008 label
    ],
)
def test_shown_address_gives_a_domain_in_its_own_letters(stored: str, shown: str) -> None:
    assert shown_address(stored) == shown


def test_a_domain_goes_out_by_idna_2008_so_sharp_s_stays_itself() -> None:
    """IDNA 2003 turned "grüße" into "grüsse", another domain; 2008 keeps ß.
    Upper case letters are mapped (UTS #46), as browsers do."""
    address = parse_address("y@Grüße.test")
    assert address.ascii_domain == "xn--gre-6ka8l.test"
    assert address.envelope(smtputf8=False) == "y@xn--gre-6ka8l.test"
    assert shown_address(address.envelope(smtputf8=False)) == "y@grüße.test"
    assert parse_address("x@BÜCHER.test").ascii_domain == "xn--bcher-kva.test"
