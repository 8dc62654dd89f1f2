"""Where a message goes: a relay account, or straight to each recipient domain's MX.

The relay route is the account's own `Session`; nothing here. This module is the
other route: find a domain's mail servers as RFC 5321 §5.1 and RFC 7505 (null MX)
say, then hand the message to them on port 25 the way a mail server would. DNS
goes through dnspython with a resolver from `make_resolver`, never the system's
getaddrinfo, so MAILER_GUI_NAMESERVER can point tests and odd setups elsewhere.
"""

from __future__ import annotations

import ipaddress
import os
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import BinaryIO

import dns.exception
import dns.name
import dns.rdatatype
import dns.resolver

from mailer_gui.message.addresses import shown_domain
from mailer_gui.smtp.errors import Cancelled, ConnectError, MessageRefused, SmtpError, TlsError
from mailer_gui.smtp.session import (
    Envelope,
    MessageResult,
    Progress,
    RecipientResult,
    RecipientStatus,
    Session,
    refused_as_too_big,
)
from mailer_gui.smtp.settings import AuthMethod, Security, ServerSettings, Timeouts
from mailer_gui.smtp.transcript import Transcript

__all__ = [
    "NAMESERVER_VARIABLE",
    "MxHost",
    "PortBlockedError",
    "RouteError",
    "deliver_direct",
    "make_resolver",
    "mx_hosts",
    "parse_nameserver",
]

NAMESERVER_VARIABLE = "MAILER_GUI_NAMESERVER"
DNS_TIMEOUT = 2.0  # seconds for one query to one nameserver
DNS_LIFETIME = 5.0  # seconds for a whole lookup, retries included
# How long a lookup no DNS server answered keeps the next ones from being made
# (DnsSilence): the messages sent meanwhile are deferred without the wait.
SILENCE_REMEMBERED = 60.0
# Seconds to wait for the DNS server's answer to a question it answers at
# once when it works at all (see `resolver_answers`).
PROBE_LIFETIME = 1.0
# Postfix stops after 5 addresses (smtp_mx_address_limit); a few more cost a
# desktop little, and the bound keeps a domain with 50 MX hosts from taking hours.
ADDRESS_LIMIT = 10
DEFAULT_TIMEOUTS = Timeouts()

SessionHook = Callable[[Session], None]


class RouteError(SmtpError):
    """No way to a recipient domain's mail servers: DNS said so, or could not answer.

    Permanent when DNS gave a definite answer (NXDOMAIN, null MX, no address);
    transient when it gave none (timeout, SERVFAIL, no nameserver).
    """

    def __init__(
        self, message: str, *, domain: str, transient: bool, unanswered: bool = False
    ) -> None:
        super().__init__(message)
        self.domain = domain
        self.transient = transient
        # No DNS server answered at all (a timeout): asking again for another
        # domain moments later would only wait as long again.
        self.unanswered = unanswered


class DnsSilence:
    """A DNS server that answers nothing, remembered for a minute.

    Each lookup of a dead or unreachable nameserver waits DNS_LIFETIME
    seconds. After one, the lookups that would follow (the message's other
    domains, and the messages the same run sends next) are not made for
    SILENCE_REMEMBERED seconds: those recipients are deferred at once, saying
    which lookup went unanswered, instead of a flush of twenty messages taking
    minutes to defer them one wait at a time. The retry schedule tries them
    again, with fresh lookups, after its first delay (a minute by default).

    Only when the server itself is silent (`resolver_answers`): a lookup can
    also go unanswered because the domain's own DNS servers are down, and
    then the other domains are looked up as usual.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._error: RouteError | None = None
        self._at = 0.0

    def recent(self) -> RouteError | None:
        """The unanswered lookup of the last SILENCE_REMEMBERED seconds, if any."""
        if self._error is not None and self._clock() - self._at < SILENCE_REMEMBERED:
            return self._error
        return None

    def unanswered(self, error: RouteError) -> None:
        """``error``'s lookup timed out; the lookups that follow wait for nothing."""
        if self.recent() is None:
            self._error, self._at = error, self._clock()


class PortBlockedError(RouteError):
    """Not one mail server could be reached on the port: the network likely blocks it."""

    def __init__(self, message: str, *, domain: str, port: int) -> None:
        super().__init__(message, domain=domain, transient=True)
        self.port = port


@dataclass(frozen=True)
class MxHost:
    """One mail server for a domain, in the order to try it."""

    name: str  # A-labels, no final dot: "mx1.example.test"
    preference: int
    addresses: tuple[str, ...]  # IPv4 first, then IPv6; empty when the name has none
    implicit: bool  # no MX records: the domain's own address (RFC 5321 §5.1)


# ------------------------------------------------------------------------ resolver


def parse_nameserver(value: str) -> tuple[str, int]:
    """``127.0.0.1:5353`` / ``[::1]:5353`` / ``192.0.2.53`` -> (address, port).

    The port defaults to 53. Only IP addresses: a nameserver named by a host
    name would need a resolver to find the resolver.
    """
    text = value.strip()
    host, port_text = text, "53"
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            host = ""
        port_text = rest[1:] or "53"
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    try:
        address = ipaddress.ip_address(host)
        port = int(port_text)
    except ValueError:
        port = 0
    if not 0 < port < 65536:
        raise ValueError(
            f"{NAMESERVER_VARIABLE}={value!r} is not a nameserver address; "
            "write an IP address and port, like 127.0.0.1:5353 or [::1]:5353"
        )
    return str(address), port


def make_resolver(environ: Mapping[str, str] = os.environ) -> dns.resolver.Resolver:
    """The system's resolver, or only ``MAILER_GUI_NAMESERVER=host:port`` when set.

    Lookups are bounded: a dead nameserver costs at most DNS_LIFETIME seconds
    per query, after which the delivery is deferred, not stuck.
    """
    override = environ.get(NAMESERVER_VARIABLE, "").strip()
    if override:
        address, port = parse_nameserver(override)
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers = [address]
        resolver.port = port
    else:
        try:
            resolver = dns.resolver.Resolver()
        except dns.exception.DNSException:
            # No resolv.conf (containers, odd systems): every lookup then fails
            # with "no nameservers", a transient error, instead of crashing here.
            resolver = dns.resolver.Resolver(configure=False)
            resolver.nameservers = []
    resolver.timeout = DNS_TIMEOUT
    resolver.lifetime = DNS_LIFETIME
    return resolver


# ---------------------------------------------------------------------- MX lookup


def _domain_name(domain: str) -> dns.name.Name:
    """The domain in A-labels (IDNA 2008 where dnspython can, else 2003), absolute."""
    text = domain.strip().rstrip(".")
    try:
        if not text:
            raise dns.name.EmptyLabel
        try:
            return dns.name.from_unicode(text, idna_codec=dns.name.IDNA_2008_Practical)
        except dns.name.NoIDNA2008:
            return dns.name.from_unicode(text, idna_codec=dns.name.IDNA_2003_Practical)
    except (dns.exception.DNSException, UnicodeError) as exc:
        raise RouteError(
            f"“{domain}” is not a valid domain name, so there is nowhere to deliver "
            "the message. Check the recipient's address.",
            domain=domain,
            transient=False,
        ) from exc


def _address_literal(domain: str) -> str | None:
    """``[192.0.2.1]`` / ``[IPv6:2001:db8::1]`` -> the address; None for a domain name."""
    if not (domain.startswith("[") and domain.endswith("]")):
        return None
    inner = domain[1:-1]
    if inner[:5].lower() == "ipv6:":
        inner = inner[5:]
    try:
        return str(ipaddress.ip_address(inner))
    except ValueError:
        raise RouteError(
            f"“{domain}” is not a valid address literal. Check the recipient's address.",
            domain=domain,
            transient=False,
        ) from None


def _text(name: dns.name.Name) -> str:
    return name.to_text(omit_final_dot=True).lower()


def _shown(domain: str, name: dns.name.Name) -> str:
    """The domain as the person wrote it, with its A-label form when that differs;
    one that reached here in A-labels only (the outbox keeps addresses so) is
    shown in its own letters first: "bücher.test (xn--bcher-kva.test)"."""
    ascii_form = _text(name)
    if domain.lower().rstrip(".") != ascii_form:
        return f"{domain} ({ascii_form})"
    if "xn--" in ascii_form:
        try:
            letters = name.to_unicode(omit_final_dot=True)
        except (dns.exception.DNSException, UnicodeError):
            return domain
        if letters != ascii_form:
            return f"{letters} ({ascii_form})"
    return domain


def resolver_answers(resolver: dns.resolver.Resolver) -> bool:
    """Whether the DNS server answers at all, asked what any server answers at
    once from what it knows, or refuses at once: the root's name servers.

    Told apart this way after a lookup timed out: a silent server (down, or
    the network is) against one domain whose own servers do not answer it.
    Any reply counts, an error code too; only silence for PROBE_LIFETIME does not.
    """
    try:
        resolver.resolve(dns.name.root, dns.rdatatype.NS, lifetime=PROBE_LIFETIME, search=False)
    except dns.exception.Timeout:
        return False
    except dns.exception.DNSException:
        return True  # refused, failed or empty: it answered
    return True


def _lookup_failed(
    domain: str, shown: str, what: str, exc: dns.exception.DNSException
) -> RouteError:
    """A DNS answer that is no answer: worth trying again later."""
    if isinstance(exc, dns.exception.Timeout):
        reason = f"no DNS server answered within {DNS_LIFETIME:g} s"
    elif isinstance(exc, dns.resolver.NoNameservers):
        reason = "the DNS servers failed to answer (SERVFAIL, REFUSED or unreachable)"
    else:
        reason = str(exc) or type(exc).__name__
    return RouteError(
        f"Could not look up {what} for {shown}: {reason}. The network or the DNS server "
        "may be down; Mailer will try again later.",
        domain=domain,
        transient=True,
        unanswered=isinstance(exc, dns.exception.Timeout),
    )


def _addresses(
    name: dns.name.Name, resolver: dns.resolver.Resolver
) -> tuple[tuple[str, ...], dns.exception.DNSException | None]:
    """A then AAAA addresses of a name, and the transient failure if a lookup had one.

    IPv4 first: many home networks have no IPv6 route, and large receivers
    refuse IPv6 senders without reverse DNS, which desktops rarely have.
    """
    found: list[str] = []
    failure: dns.exception.DNSException | None = None
    for rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
        try:
            answer = resolver.resolve(name, rdtype, search=False)
        except dns.resolver.NXDOMAIN:
            break  # no such name: no AAAA either
        except dns.resolver.NoAnswer:
            continue
        except dns.exception.DNSException as exc:
            failure = exc
            if isinstance(exc, dns.exception.Timeout):
                break  # the nameserver is gone; do not wait a second lifetime
            continue
        for rdata in answer:
            address = str(rdata.address)
            if address not in found:
                found.append(address)
    return tuple(found), failure


def mx_hosts(
    domain: str, resolver: dns.resolver.Resolver, *, rng: random.Random | None = None
) -> list[MxHost]:
    """The mail servers for ``domain``, in the order to try them (RFC 5321 §5.1).

    Lowest preference first, equal preferences in random order. No MX records:
    the domain itself is the mail server (implicit MX 0). MX records present:
    never the domain's own address. ``MX 0 .`` alone is a null MX (RFC 7505):
    the domain takes no mail. Raises RouteError: permanent for NXDOMAIN, a null
    MX or no address at all; transient when DNS did not answer.
    """
    literal = _address_literal(domain)
    if literal is not None:
        return [MxHost(domain, 0, (literal,), implicit=True)]
    name = _domain_name(domain)
    shown = _shown(domain, name)
    try:
        answer = resolver.resolve(name, dns.rdatatype.MX, search=False)
    except dns.resolver.NXDOMAIN:
        raise RouteError(
            f"The domain {shown} does not exist, so no mail can be delivered to it. "
            "Check the spelling of the recipient's address.",
            domain=domain,
            transient=False,
        ) from None
    except dns.resolver.NoAnswer:
        return [_implicit_mx(domain, name, shown, resolver)]
    except dns.exception.DNSException as exc:
        raise _lookup_failed(domain, shown, "the mail servers", exc) from exc

    records = sorted(
        ((int(rdata.preference), rdata.exchange) for rdata in answer),
        key=lambda record: (record[0], _text(record[1])),
    )
    real = [(preference, exchange) for preference, exchange in records if exchange != dns.name.root]
    if not real:
        raise RouteError(
            f"The domain {shown} says it accepts no mail at all (it publishes a “null MX”, "
            "RFC 7505; a mail server would answer 556 5.1.10). The address cannot receive "
            "mail: check it, or reach the person another way.",
            domain=domain,
            transient=False,
        )
    # A "." among real MX hosts (RFC 7505 forbids it) leads nowhere; it is skipped.
    rng = rng or random.Random()
    groups: dict[int, list[dns.name.Name]] = {}
    seen: set[dns.name.Name] = set()
    for preference, exchange in real:
        if exchange not in seen:  # a name listed twice is tried at its best preference
            seen.add(exchange)
            groups.setdefault(preference, []).append(exchange)
    hosts: list[MxHost] = []
    failure: dns.exception.DNSException | None = None
    for preference in sorted(groups):
        group = groups[preference]
        rng.shuffle(group)  # spread load over equal hosts, as RFC 5321 §5.1 asks
        for exchange in group:
            addresses, problem = _addresses(exchange, resolver)
            failure = failure or problem
            hosts.append(MxHost(_text(exchange), preference, addresses, implicit=False))
    if not any(host.addresses for host in hosts):
        names = ", ".join(host.name for host in hosts)
        if failure is not None:
            raise _lookup_failed(
                domain, shown, f"the addresses of the mail servers ({names})", failure
            )
        raise RouteError(
            f"The mail servers that {shown} names ({names}) have no address in DNS, so "
            "mail cannot be delivered there. The domain's DNS is broken; tell its owner "
            "another way.",
            domain=domain,
            transient=False,
        )
    return hosts


def _implicit_mx(
    domain: str, name: dns.name.Name, shown: str, resolver: dns.resolver.Resolver
) -> MxHost:
    addresses, failure = _addresses(name, resolver)
    if addresses:
        return MxHost(_text(name), 0, addresses, implicit=True)
    if failure is not None:
        raise _lookup_failed(domain, shown, "the address", failure)
    raise RouteError(
        f"The domain {shown} has no mail server: it publishes neither MX records nor an "
        "address. Check the spelling of the recipient's address.",
        domain=domain,
        transient=False,
    )


def _describe(hosts: list[MxHost]) -> str:
    """``mx1.example.test (10) 192.0.2.1, mx2.example.test (20) no address``."""
    parts = []
    for host in hosts:
        where = " ".join(host.addresses) or "no address"
        kind = "implicit MX, the domain's own address" if host.implicit else str(host.preference)
        parts.append(f"{host.name} ({kind}) {where}")
    return ", ".join(parts)


# ------------------------------------------------------------------ direct delivery


@dataclass(frozen=True)
class _DomainOutcome:
    domain: str
    result: MessageResult
    attempted: bool  # some connection was tried
    connected: bool  # some TCP connection was made
    unreachable: tuple[str, ...] = ()  # "127.0.0.2 (connection refused)" per failed connect
    refused: bool = False  # every address tried refused the connection outright


@dataclass(frozen=True)
class _Delivery:
    """What stays the same for every attempt of one message."""

    envelope: Envelope
    body: BinaryIO
    start: int
    size: int
    resolver: dns.resolver.Resolver
    port: int
    transcript: Transcript
    timeouts: Timeouts
    local_hostname: str | None
    progress: Progress | None
    before_end: Callable[[], None] | None
    rng: random.Random | None
    on_session: SessionHook | None
    after_end: Callable[[tuple[RecipientResult, ...]], None] | None

    def settings(self, address: str, *, opportunistic_tls: bool) -> ServerSettings:
        return ServerSettings(
            host=address,
            port=self.port,
            security=Security.NONE,
            auth=AuthMethod.NONE,
            opportunistic_tls=opportunistic_tls,
            local_hostname=self.local_hostname,
            timeouts=self.timeouts,
        )


def _domain_of(address: str) -> str:
    return address.rpartition("@")[2].strip().lower() if "@" in address else ""


def _failed(recipients: list[str], error: SmtpError) -> MessageResult:
    status = RecipientStatus.DEFERRED if error.transient else RecipientStatus.REJECTED
    return MessageResult(
        tuple(RecipientResult(address, status, None, error.message) for address in recipients),
        error=error,
    )


def _short_reason(error: ConnectError) -> str:
    cause = error.__cause__
    if isinstance(cause, TimeoutError):
        return "no answer"
    if isinstance(cause, OSError) and cause.strerror:
        return cause.strerror.lower()
    return error.message


def _open(job: _Delivery, address: str) -> Session:
    """A session to one MX address, with STARTTLS when offered.

    When the offered STARTTLS breaks, the same host is tried again in plain
    text, as Postfix does at its "may" level: unencrypted beats undelivered
    between mail servers, and the certificate was never checked anyway.
    """
    session = Session(job.settings(address, opportunistic_tls=True), transcript=job.transcript)
    if job.on_session:
        job.on_session(session)
    try:
        session.open()
    except TlsError:
        job.transcript.note(f"TLS with {address} failed; trying again without TLS")
        session = Session(job.settings(address, opportunistic_tls=False), transcript=job.transcript)
        if job.on_session:
            job.on_session(session)
        session.open()
    return session


def _deliver_to_domain(
    job: _Delivery, domain: str, recipients: list[str], silence: DnsSilence
) -> _DomainOutcome:
    """``silence``: a lookup no DNS server answered just before (this
    message's, or an earlier one's); while it lasts, no domain is looked up."""
    transcript = job.transcript
    first = silence.recent() if domain and _address_literal(domain) is None else None
    if first is not None:
        silent = RouteError(
            f"Could not look up the mail servers for {shown_domain(domain)}: no DNS server "
            f"answered for {shown_domain(first.domain)} just before, so Mailer did not wait "
            "for another answer. The "
            "network or the DNS server may be down; Mailer will try again later.",
            domain=domain,
            transient=True,
            unanswered=True,
        )
        transcript.note(f"not looking up {domain}: no DNS server answered for {first.domain}")
        return _DomainOutcome(domain, _failed(recipients, silent), attempted=False, connected=False)
    try:
        if not domain:
            raise RouteError(
                f"The address {recipients[0]} has no domain after an @, so there is nowhere "
                "to deliver it. Check the recipient's address.",
                domain=domain,
                transient=False,
            )
        # Said before the lookup: a nameserver that does not answer takes
        # seconds, and the session log shows what is being waited for.
        transcript.note(f"looking up the mail servers (MX) of {domain}")
        hosts = mx_hosts(domain, job.resolver, rng=job.rng)
    except RouteError as exc:
        if exc.unanswered:
            if resolver_answers(job.resolver):
                # The server answers: only this domain's own servers did not.
                exc = RouteError(
                    f"Could not look up the mail servers for {shown_domain(domain)}: the DNS "
                    f"server got no answer for it within {DNS_LIFETIME:g} s (its own DNS "
                    "servers may be down, or slow). Mailer will try again later.",
                    domain=domain,
                    transient=True,
                )
            else:
                silence.unanswered(exc)
        transcript.note(f"no mail route to {domain or recipients[0]}: {exc.message}")
        return _DomainOutcome(domain, _failed(recipients, exc), attempted=False, connected=False)
    transcript.note(f"MX for {domain}: {_describe(hosts)}")

    envelope = job.envelope._replace(recipients=tuple(recipients))
    deferred: MessageResult | None = None  # the last host that answered 4xx to everyone
    errors: list[SmtpError] = []
    unreachable: list[str] = []
    tried: list[str] = []
    connected = False
    addresses = [address for host in hosts for address in host.addresses]
    for address in dict.fromkeys(addresses):
        if len(tried) == ADDRESS_LIMIT:
            transcript.note(f"tried {ADDRESS_LIMIT} addresses for {domain}; stopping there")
            break
        tried.append(address)
        transcript.note(f"trying {address} port {job.port}")
        try:
            session = _open(job, address)
        except Cancelled:
            raise
        except ConnectError as exc:
            transcript.note(f"could not connect to {address}: {_short_reason(exc)}")
            unreachable.append(f"{address}: {_short_reason(exc)}")
            errors.append(exc)
            continue
        except SmtpError as exc:
            # A 4xx greeting or EHLO, a dropped connection, and (like Postfix's
            # smtp_skip_5xx_greeting) a 5xx greeting: the next host may do better.
            connected = True
            errors.append(exc)
            transcript.note(f"{address} did not take the connection; trying the next host")
            continue
        connected = True
        try:
            job.body.seek(job.start)
            result = session.send_message(
                envelope, job.body, job.size, progress=job.progress,
                before_end=job.before_end, after_end=job.after_end,
            )  # fmt: skip
        except Cancelled:
            raise
        except SmtpError as exc:
            if exc.transient:
                errors.append(exc)
                continue
            # MessageRefused (too big, needs SMTPUTF8): the answer for this domain.
            return _DomainOutcome(domain, _failed(recipients, exc), True, True)
        finally:
            session.close()
        if result.uncertain:
            return _DomainOutcome(domain, result, True, True)
        if all(r.status is RecipientStatus.DEFERRED for r in result.recipients):
            deferred = result
            if result.error is not None:
                errors.append(result.error)
            transcript.note(f"{address} deferred every recipient; trying the next host")
            continue
        return _DomainOutcome(domain, result, True, True)

    if deferred is not None:
        # A host that answered 4xx says more than one that could not be reached.
        return _DomainOutcome(domain, deferred, True, True, tuple(unreachable))
    return _DomainOutcome(
        domain,
        _failed(recipients, _no_host_took_it(domain, job.port, errors, unreachable)),
        attempted=True,
        connected=connected,
        unreachable=tuple(unreachable),
        refused=bool(errors)
        and all(isinstance(error.__cause__, ConnectionRefusedError) for error in errors),
    )


def _no_host_took_it(
    domain: str, port: int, errors: list[SmtpError], unreachable: list[str]
) -> RouteError:
    transient = any(error.transient for error in errors)
    spoken = [error for error in errors if not isinstance(error, ConnectError)]
    if spoken:
        message = f"No mail server for {domain} took the message. {spoken[-1].message}"
    else:
        message = (
            f"Could not connect to any mail server for {domain} on port {port} "
            f"({'; '.join(unreachable)}). Mailer will try again later."
        )
    return RouteError(message, domain=domain, transient=transient)


def _blocked(outcome: _DomainOutcome, port: int, domains: list[str]) -> _DomainOutcome:
    """Reword a domain's failure when no mail server anywhere could be reached."""
    others = [domain for domain in domains if domain != outcome.domain]
    tried = f"{outcome.domain}: {'; '.join(outcome.unreachable)}"
    if others:
        tried += f"; nor for {', '.join(others)}"
    message = (
        f"Mailer could not connect to any mail server on port {port} ({tried}). The "
        f"network this computer is on probably blocks outgoing port {port}, as most home, "
        "office and cloud networks do against spam. To send this message, set up a relay "
        "account: your email provider's submission server (port 587 or 465) with your "
        "address and password."
    )
    error = PortBlockedError(message, domain=outcome.domain, port=port)
    return replace(outcome, result=_failed([r.address for r in outcome.result.recipients], error))


def deliver_direct(
    envelope: Envelope,
    body: BinaryIO,
    size: int,
    *,
    resolver: dns.resolver.Resolver,
    port: int = 25,
    transcript: Transcript | None = None,
    timeouts: Timeouts = DEFAULT_TIMEOUTS,
    local_hostname: str | None = None,
    progress: Progress | None = None,
    before_end: Callable[[], None] | None = None,
    rng: random.Random | None = None,
    on_session: SessionHook | None = None,
    silence: DnsSilence | None = None,
    after_end: Callable[[tuple[RecipientResult, ...]], None] | None = None,
) -> MessageResult:
    """Deliver to each recipient domain's own mail servers, without a relay account.

    Recipients are grouped by domain; each group goes to the first of its MX
    hosts that gives definite answers (2xx or 5xx). A host that cannot be
    reached, or answers 4xx to every recipient, hands over to the next
    (RFC 5321 §5.1). The body is read from its current position again for
    each attempt. ``on_session`` sees every Session before it opens, so a
    caller can ``abort()`` it from another thread. ``silence`` carries a DNS
    lookup nobody answered from one message to the next ones (see DnsSilence);
    without it, only this message's other domains are spared the wait.
    ``after_end`` gets each domain's answers while other domains follow, as
    `Session.send_message` gives a transaction's.
    """
    if not envelope.recipients:
        raise MessageRefused("The message has no recipients.")
    transcript = transcript or Transcript()
    # Once a domain's "." went unanswered, its end-of-data mark must stand:
    # answers are no longer passed on, since the caller clears the mark then.
    doubtful: list[str] = []

    def answered(answers: tuple[RecipientResult, ...]) -> None:
        if after_end is not None and not doubtful:
            after_end(answers)

    job = _Delivery(
        envelope,
        body,
        body.tell(),
        size,
        resolver,
        port,
        transcript,
        timeouts,
        local_hostname,
        progress,
        before_end,
        rng,
        on_session,
        answered,
    )
    by_domain: dict[str, list[str]] = {}
    for address in dict.fromkeys(envelope.recipients):
        by_domain.setdefault(_domain_of(address), []).append(address)
    silence = silence or DnsSilence()
    outcomes: list[_DomainOutcome] = []
    for number, (domain, group) in enumerate(by_domain.items(), start=1):
        outcome = _deliver_to_domain(job, domain, group, silence)
        outcomes.append(outcome)
        if outcome.result.uncertain:
            doubtful.append(domain)
        elif number < len(by_domain):
            answered(outcome.result.recipients)

    tried = [outcome for outcome in outcomes if outcome.attempted]
    # Nothing reached on the port, for any domain: most likely the network
    # blocks it (port 25 usually is). Not when the one domain tried had its
    # servers refuse the connection outright: they answered, and they are
    # that domain's trouble, not the network's.
    lone_refusal = len(tried) == 1 and tried[0].refused
    if tried and not lone_refusal and not any(outcome.connected for outcome in outcomes):
        domains = [outcome.domain for outcome in tried]
        transcript.note(f"no mail server could be reached on port {port}: it may be blocked")
        outcomes = [_blocked(o, port, domains) if o.attempted else o for o in outcomes]
    return _combine(envelope, outcomes)


def _combine(envelope: Envelope, outcomes: list[_DomainOutcome]) -> MessageResult:
    by_address = {r.address: r for outcome in outcomes for r in outcome.result.recipients}
    recipients = tuple(by_address[address] for address in dict.fromkeys(envelope.recipients))
    results = [outcome.result for outcome in outcomes]
    uncertain = [result for result in results if result.uncertain]
    error: SmtpError | None = None
    if uncertain:
        error = uncertain[-1].error
    elif not any(r.status is RecipientStatus.ACCEPTED for r in recipients):
        errors = [result.error for result in results if result.error is not None]
        error = errors[-1] if errors else None
    replies = [result.reply for result in results if result.reply is not None]
    return MessageResult(
        recipients,
        reply=replies[-1] if replies else None,
        error=error,
        uncertain=bool(uncertain),
        sizes=(sum(r.sizes[0] for r in results), sum(r.sizes[1] for r in results)),
        # The limit of a server that refused the message as too big, if one did.
        size_limit=next((r.size_limit for r in results if refused_as_too_big(r)), None),
    )
