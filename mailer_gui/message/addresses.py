"""Addresses as people type them: parsing, validation, IDN and SMTPUTF8 need."""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from email.headerregistry import Address

_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_ATEXT = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+$")


class AddressError(ValueError):
    """An address that cannot be used, with the reason in plain words."""


@dataclass(frozen=True)
class MailAddress:
    display_name: str
    local_part: str
    domain: str  # as typed (may be Unicode)

    @property
    def addr_spec(self) -> str:
        return f"{self.local_part}@{self.domain}"

    @property
    def ascii_domain(self) -> str:
        """The domain as A-labels (``bücher.example`` -> ``xn--bcher-kva.example``)."""
        return _to_ascii(self.domain) if not self.domain.isascii() else self.domain

    @property
    def needs_smtputf8(self) -> bool:
        """A non-ASCII local part can only travel with SMTPUTF8."""
        return not self.local_part.isascii()

    def envelope(self, *, smtputf8: bool) -> str:
        """The address for MAIL FROM / RCPT TO."""
        if smtputf8:
            return self.addr_spec
        return f"{self.local_part}@{self.ascii_domain}"

    def header_address(self, *, smtputf8: bool = False) -> Address:
        """For From/To/Cc: Unicode domains as A-labels unless SMTPUTF8 carries them."""
        domain = self.domain if smtputf8 else self.ascii_domain
        name = self.display_name.strip()
        return Address(display_name=name, username=self.local_part, domain=domain)

    def __str__(self) -> str:
        return f"{self.display_name} <{self.addr_spec}>" if self.display_name else self.addr_spec


def _check_domain(domain: str, original: str) -> None:
    if not domain:
        raise AddressError(f"{original!r} has no domain after the @")
    if domain.startswith(".") or domain.endswith(".") or ".." in domain:
        raise AddressError(f"{original!r}: the part after @ is not a valid domain")
    try:
        ascii_domain = _to_ascii(domain) if not domain.isascii() else domain
    except UnicodeError as exc:
        raise AddressError(f"{original!r}: the domain {domain!r} is not a valid name") from exc
    if domain.startswith("[") and domain.endswith("]"):
        return  # address literal, e.g. [192.0.2.1]
    for label in ascii_domain.lower().split("."):
        if not _LABEL.match(label):
            raise AddressError(f"{original!r}: the domain {domain!r} is not a valid name")


_SEPARATORS = ",;"


def address_spans(value: str) -> list[tuple[int, int]]:
    """Where each address of ``value`` is, as (start, end) offsets, in order.

    Commas and semicolons separate, except inside quotes or angle brackets; a
    group's name (``Team:``) is not an address. The positions let the
    composer underline each part.
    """
    spans: list[tuple[int, int]] = []
    start = 0
    in_quotes = escaped = False
    depth = 0
    seen_at = False

    def close(end: int) -> None:
        left, right = start, end
        while left < right and value[left].isspace():
            left += 1
        while right > left and value[right - 1].isspace():
            right -= 1
        if left < right:
            spans.append((left, right))

    for index, ch in enumerate(value):
        if escaped:
            escaped = False
        elif ch == "\\" and in_quotes:
            escaped = True
        elif ch == '"':
            in_quotes = not in_quotes
        elif not in_quotes and ch == "<":
            depth += 1
        elif not in_quotes and ch == ">":
            depth = max(0, depth - 1)
        elif ch in _SEPARATORS and not in_quotes and depth == 0:
            close(index)
            start, seen_at = index + 1, False
            continue
        elif ch == ":" and not in_quotes and depth == 0 and not seen_at:
            start = index + 1  # "Team:" opens a group: its name is not an address
            continue
        if ch == "@":
            seen_at = True
    close(len(value))
    return spans


def split_address_list(value: str) -> list[str]:
    """``'Ann <a@x.org>; "Doe, J" <j@y.org>'`` -> the two addresses as typed.

    Commas and semicolons separate, except inside quotes or angle brackets.
    A group (``Team: a@x.org, b@x.org;``) gives its members; an empty one
    (``undisclosed-recipients:;``) gives nothing. Unlike
    email.utils.getaddresses, nothing typed is silently dropped.
    """
    return [value[start:end] for start, end in address_spans(value)]


@dataclass(frozen=True)
class AddressCheck:
    """One address of a field as typed, and what is wrong with it (if anything)."""

    text: str
    address: MailAddress | None
    error: str | None


def check_address_list(value: str) -> list[AddressCheck]:
    """Every address in a field, each with its own verdict (for underlining)."""
    checks: list[AddressCheck] = []
    for part in split_address_list(value):
        try:
            checks.append(AddressCheck(part, parse_address(part), None))
        except AddressError as exc:
            checks.append(AddressCheck(part, None, str(exc)))
    return checks


def _unquote_name(name: str) -> str:
    name = name.strip()
    if len(name) >= 2 and name[0] == name[-1] == '"':
        name = name[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    return name


def parse_address(text: str) -> MailAddress:
    """One address as typed: ``Ann <ann@example.org>`` or ``ann@example.org``."""
    original = text
    text = text.strip()
    if any(ch in text for ch in "\r\n\0"):
        raise AddressError(f"{original!r}: an address cannot contain line breaks")
    if text.endswith(">") and "<" in text:
        cut = text.rindex("<")
        name, spec = _unquote_name(text[:cut]), text[cut + 1 : -1].strip()
    else:
        name, spec = "", text
    if not spec or "@" not in spec:
        raise AddressError(f"{original!r} is not an email address (it needs a @ and a domain)")
    quoted_or_literal = spec.startswith('"') or spec.rpartition("@")[2].startswith("[")
    if not quoted_or_literal and (
        any(ch.isspace() for ch in spec) or any(ch in spec for ch in "<>(),;[]\\")
    ):
        raise AddressError(
            f"{original!r} is not one email address (spaces or punctuation where an "
            "address cannot have them; separate several addresses with commas)"
        )
    local, _, domain = spec.rpartition("@")
    if not local:
        raise AddressError(f"{original!r} has nothing before the @")
    if not (_ATEXT.match(local) or not local.isascii() or local.startswith('"')):
        raise AddressError(f"{original!r}: the part before the @ has characters not allowed there")
    if local.startswith(".") or local.endswith(".") or ".." in local:
        raise AddressError(f"{original!r}: dots cannot start, end or repeat in the part before @")
    _check_domain(domain, original)
    return MailAddress(name, local, domain)


def shown_address(address: str) -> str:
    """An envelope address as people read it: a domain's A-labels in their own letters.

    ``x@xn--bcher-kva.test`` -> ``x@bücher.test``. The outbox keeps an ASCII
    local part's domain as A-labels (no SMTPUTF8 needed to send it), and
    people did not type those. A label that does not decode stays as it is.
    """
    local, at, domain = address.rpartition("@")
    if not at or "xn--" not in domain.lower():
        return address
    return f"{local}@{shown_domain(domain)}"


def shown_domain(domain: str) -> str:
    """A domain's A-labels in their own letters: ``xn--bcher-kva.test`` -> ``bücher.test``."""
    if "xn--" not in domain.lower():
        return domain
    labels = domain.split(".")
    for index, label in enumerate(labels):
        if label[:4].lower() == "xn--":
            # One that is not a real A-label is shown as it is.
            with contextlib.suppress(UnicodeError):
                labels[index] = _to_unicode(label.lower())
    return ".".join(labels)


def _to_ascii(domain: str) -> str:
    """A domain's A-labels by IDNA 2008 with UTS #46 mapping (what browsers and
    dnspython's practical codec use: "grüße" stays "grüße", not "grüsse"),
    else by IDNA 2003 (labels 2008 refuses, such as some symbols).
    Raises UnicodeError for a name neither takes."""
    import idna  # only for a domain that is not ASCII

    try:
        return idna.encode(domain, uts46=True, transitional=False).decode("ascii")
    except idna.IDNAError:
        return domain.encode("idna").decode("ascii")


def _to_unicode(label: str) -> str:
    """One A-label in its own letters (IDNA 2008, else 2003); UnicodeError if neither."""
    import idna

    try:
        return str(idna.decode(label))
    except idna.IDNAError:
        return label.encode("ascii").decode("idna")


def parse_address_list(values: list[str] | tuple[str, ...]) -> list[MailAddress]:
    """Addresses from repeated options, each of which may hold a comma-separated list."""
    return [parse_address(part) for value in values for part in split_address_list(value)]
