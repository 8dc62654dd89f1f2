"""Account autodiscovery: from an email address to SMTP submission settings.

Five sources race on daemon threads, as Thunderbird's do, and the best-ranked
success wins: the bundled provider list, autoconfig XML over verified HTTPS,
RFC 6186 SRV records, the domain's MX hosts matched against the provider list,
and guessed names probed with the engine's own `smtp.session.Session`. With a
password, the best few candidates are then tried for a real login. Everything
ends within one time budget; threads still running then are abandoned (their
sockets are aborted or close on their own short timeouts). DNS goes through
`outbox.routes.make_resolver`, so MAILER_GUI_NAMESERVER points it elsewhere.
The wizard (ui/wizard) shows the result; accounts/store.py saves the choice.
"""

from __future__ import annotations

import atexit
import concurrent.futures as cf
import enum
import functools
import http.client
import json
import queue
import re
import socket
import ssl
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import weakref
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from importlib import resources
from typing import Any, NamedTuple, TypeVar

import dns.exception
import dns.name
import dns.rdatatype
import dns.resolver

from mailer_gui.outbox.routes import make_resolver
from mailer_gui.smtp.auth import Credentials
from mailer_gui.smtp.errors import AuthenticationError, SmtpError
from mailer_gui.smtp.session import Session
from mailer_gui.smtp.settings import AuthMethod, Security, ServerSettings, Timeouts
from mailer_gui.smtp.transcript import Direction, Transcript, TranscriptRecord

__all__ = [
    "DEFAULT_GUESS_PORTS",
    "RANKS",
    "SOURCE_AUTOCONFIG",
    "SOURCE_GUESS",
    "SOURCE_LOGIN",
    "SOURCE_MX",
    "SOURCE_PROVIDERS",
    "SOURCE_SRV",
    "AutoconfigError",
    "Candidate",
    "DiscoveryResult",
    "LoginFailure",
    "ProbeReport",
    "ProgressEvent",
    "Provider",
    "ProviderList",
    "ProviderServer",
    "Status",
    "auth_method",
    "bundled_providers",
    "default_autoconfig_urls",
    "discover",
    "parse_autoconfig",
    "provider_candidates",
    "resolve_placeholders",
    "split_address",
]

SOURCE_PROVIDERS = "provider list"
SOURCE_AUTOCONFIG = "autoconfig"
SOURCE_SRV = "DNS SRV"
SOURCE_MX = "MX"  # a candidate's source reads "MX → Google"
SOURCE_GUESS = "guessed and probed"
SOURCE_LOGIN = "login"  # progress events only
RANKS: Mapping[str, int] = {
    SOURCE_PROVIDERS: 0,
    SOURCE_AUTOCONFIG: 1,
    SOURCE_SRV: 2,
    SOURCE_MX: 3,
    SOURCE_GUESS: 4,
}

# RFC 8314 prefers implicit TLS, so 465 goes first; 25 last, often blocked at home.
DEFAULT_GUESS_PORTS: Mapping[Security, tuple[int, ...]] = {
    Security.TLS: (465,),
    Security.STARTTLS: (587, 25),
}
PROBE_TIMEOUT = 10.0  # per network step of a probe or login, as Thunderbird's probes
AUTOCONFIG_TIMEOUT = 5.0
AUTOCONFIG_LIMIT = 1_000_000  # bytes; a config file is a few KB
LOGIN_ATTEMPTS = 3
# With a password, discovery may use this share of the budget; login the rest.
DISCOVERY_SHARE = 0.6
POLL = 0.05  # seconds between looks at the cancel event

_T = TypeVar("_T")
_U = TypeVar("_U")


# ------------------------------------------------------------------------ results


class Status(enum.StrEnum):
    """What a `ProgressEvent` reports."""

    STARTED = "started"
    FOUND = "found"
    NOTHING = "nothing"
    FAILED = "failed"
    TIMED_OUT = "timed out"
    CANCELLED = "cancelled"
    NOT_NEEDED = "not needed"  # a better-ranked source answered first
    PROBING = "probing"  # guessing: one server being tried
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    TRYING = "trying"  # login: one candidate being tried
    WORKS = "works"


@dataclass(frozen=True)
class ProgressEvent:
    """Live progress of one source (or of a probe or login within it)."""

    source: str
    status: Status
    detail: str = ""


@dataclass(frozen=True)
class ProbeReport:
    """What connecting to a guessed server showed, or why it was turned down."""

    accepted: bool
    reason: str = ""  # why rejected, in plain words; empty when accepted
    tls_version: str | None = None
    auth_mechanisms: tuple[str, ...] = ()
    size_limit: int | None = None
    extensions: tuple[str, ...] = ()


@dataclass(frozen=True)
class Candidate:
    """One way to reach the submission server, and where that idea came from."""

    host: str
    port: int
    security: Security
    auth: AuthMethod
    username: str | None  # placeholders already resolved
    source: str  # "provider list", "autoconfig", "DNS SRV", "MX → Google", ...
    rank: int  # lower is better: see RANKS
    notes: tuple[str, ...] = ()  # provider advice ("needs an app password")
    warnings: tuple[str, ...] = ()  # things the person must confirm
    probe: ProbeReport | None = None

    def describe(self) -> str:
        """``smtp.gmail.com port 465 (tls)``."""
        return f"{self.host} port {self.port} ({self.security.value})"

    def settings(self, **overrides: Any) -> ServerSettings:
        """The engine settings for this candidate (``overrides`` as for ServerSettings)."""
        values: dict[str, Any] = {
            "host": self.host,
            "port": self.port,
            "security": self.security,
            "auth": self.auth,
            "username": self.username,
        }
        values.update(overrides)
        return ServerSettings(**values)


class LoginFailure(NamedTuple):
    """A candidate whose login failed, and why, in words for the person."""

    candidate: Candidate
    reason: str


@dataclass(frozen=True)
class DiscoveryResult:
    address: str
    candidates: tuple[Candidate, ...]  # best first
    working: Candidate | None = None  # the first whose real login succeeded
    login_errors: tuple[LoginFailure, ...] = ()
    # source -> "found 2" | "nothing" | "nothing: why" | "timed out" | "cancelled"
    #           | "failed: why" | "not needed: why"
    sources: dict[str, str] = field(default_factory=dict)
    rejected: tuple[Candidate, ...] = ()  # guessed servers that failed their probe
    elapsed: float = 0.0  # seconds

    @property
    def best(self) -> Candidate | None:
        return self.working or (self.candidates[0] if self.candidates else None)


# ------------------------------------------------------------------ provider list


@dataclass(frozen=True)
class ProviderServer:
    hostname: str
    port: int
    socket_type: str  # SSL | STARTTLS | plain
    authentication: tuple[str, ...]  # password-cleartext, OAuth2, ...
    username: str  # with placeholders: %EMAILADDRESS%, %EMAILLOCALPART%


@dataclass(frozen=True)
class Provider:
    name: str
    domains: tuple[str, ...]
    servers: tuple[ProviderServer, ...]
    mx_suffixes: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()


def _is_under(host: str, suffix: str) -> bool:
    """``aspmx.l.google.com`` is under ``google.com``; ``notgoogle.com`` is not."""
    return host == suffix or host.endswith("." + suffix)


class ProviderList:
    """The bundled settings of known providers, by mail domain and by MX host."""

    def __init__(self, providers: Iterable[Provider]) -> None:
        self.providers = tuple(providers)
        self._by_domain: dict[str, Provider] = {}
        for provider in self.providers:
            for domain in provider.domains:
                self._by_domain.setdefault(domain.lower(), provider)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ProviderList:
        providers = []
        for item in data["providers"]:
            servers = tuple(
                ProviderServer(
                    hostname=str(server["hostname"]),
                    port=int(server["port"]),
                    socket_type=str(server["socket_type"]),
                    authentication=tuple(str(a) for a in server["authentication"]),
                    username=str(server["username"]),
                )
                for server in item["servers"]
            )
            providers.append(
                Provider(
                    name=str(item["name"]),
                    domains=tuple(str(d).lower() for d in item["domains"]),
                    servers=servers,
                    mx_suffixes=tuple(str(s).lower() for s in item.get("mx_suffixes", ())),
                    notes=tuple(str(n) for n in item.get("notes", ())),
                )
            )
        return cls(providers)

    def for_domain(self, domain: str) -> Provider | None:
        return self._by_domain.get(domain.lower().rstrip("."))

    def for_mx(self, mx_host: str) -> Provider | None:
        """The provider hosting mail at ``mx_host``: the longest matching MX suffix,
        else the longest provider domain the host lies under (Thunderbird looks the
        MX host's base domain up in its database the same way)."""
        host = mx_host.lower().rstrip(".")
        best: tuple[int, Provider] | None = None
        for provider in self.providers:
            for suffix in provider.mx_suffixes:
                if _is_under(host, suffix) and (best is None or len(suffix) > best[0]):
                    best = (len(suffix), provider)
        if best is not None:
            return best[1]
        labels = host.split(".")
        for start in range(len(labels) - 1):  # never a bare TLD
            hosting = self._by_domain.get(".".join(labels[start:]))
            if hosting is not None:
                return hosting
        return None


@functools.cache
def bundled_providers() -> ProviderList:
    """``mailer_gui/resources/providers.json``, inside the package so wheels and
    frozen apps carry it (resources/make_providers.py builds it)."""
    text = (
        resources.files("mailer_gui")
        .joinpath("resources", "providers.json")
        .read_text(encoding="utf-8")
    )
    return ProviderList.from_json(json.loads(text))


# ------------------------------------------------------------ pure helper pieces


def split_address(address: str) -> tuple[str, str, str]:
    """``Alice@Example.ORG`` -> (``Alice``, ``example.org``, A-label domain).

    Raises ValueError with words for the person when it is not an address.
    """
    text = address.strip()
    local, at, domain = text.rpartition("@")
    domain = domain.rstrip(".").lower()
    if not at or not local or not domain or any(c.isspace() for c in text):
        raise ValueError(
            f"“{address}” is not an email address: write it as name@domain, like alice@example.org."
        )
    try:
        try:
            name = dns.name.from_unicode(domain, idna_codec=dns.name.IDNA_2008_Practical)
        except dns.name.NoIDNA2008:
            name = dns.name.from_unicode(domain, idna_codec=dns.name.IDNA_2003_Practical)
    except (dns.exception.DNSException, UnicodeError) as exc:
        raise ValueError(
            f"“{domain}” in “{address}” is not a valid domain name; check the address."
        ) from exc
    return local, domain, name.to_text(omit_final_dot=True).lower()


def resolve_placeholders(template: str, address: str) -> str:
    """``%EMAILLOCALPART%`` -> ``alice``; also %EMAILADDRESS% and %EMAILDOMAIN%."""
    local, _, domain = address.strip().rpartition("@")
    return (
        template.replace("%EMAILADDRESS%", address.strip())
        .replace("%EMAILLOCALPART%", local)
        .replace("%EMAILDOMAIN%", domain.lower())
    )


_SOCKET_TYPES = {
    "ssl": Security.TLS,
    "tls": Security.TLS,
    "starttls": Security.STARTTLS,
    "plain": Security.NONE,
}


def auth_method(values: Sequence[str]) -> tuple[AuthMethod, tuple[str, ...]]:
    """config-v1.1 ``authentication`` values -> the engine's method, and warnings.

    password-cleartext -> AUTO (PLAIN/LOGIN, or CRAM-MD5 when offered too),
    password-encrypted -> CRAM-MD5, OAuth2 -> XOAUTH2, none and client-IP-address
    -> NONE. Password methods win when several are listed: Mailer logs in with
    passwords unless the account is set up for tokens.
    """
    names = {value.strip().lower() for value in values if value.strip()}
    if not names or "password-cleartext" in names:
        return AuthMethod.AUTO, ()
    if "password-encrypted" in names:
        return AuthMethod.CRAM_MD5, ()
    if "oauth2" in names:
        return AuthMethod.XOAUTH2, ()
    if names & {"none", "client-ip-address"}:
        return AuthMethod.NONE, ()
    listed = ", ".join(sorted(values))
    return AuthMethod.AUTO, (
        f"the provider asks for a login method Mailer does not support ({listed}); "
        "Mailer will try the usual ones",
    )


def _candidate(
    *,
    host: str,
    port: int,
    socket_type: str,
    authentication: Sequence[str],
    username: str,
    address: str,
    source: str,
    rank: int,
    notes: tuple[str, ...] = (),
) -> Candidate | None:
    security = _SOCKET_TYPES.get(socket_type.strip().lower())
    host = resolve_placeholders(host, address).strip().lower().rstrip(".")
    if security is None or not 0 < port < 65536 or not _HOST_NAME.fullmatch(host):
        return None
    auth, warnings = auth_method(authentication)
    user: str | None = resolve_placeholders(username, address).strip() or None
    if user is None and auth is not AuthMethod.NONE:
        user = address.strip()
    if security is Security.NONE and auth is not AuthMethod.NONE:
        warnings += ("this server setting uses no encryption; prefer a TLS or STARTTLS one",)
    return Candidate(host, port, security, auth, user, source, rank, notes, warnings)


_HOST_NAME = re.compile(r"(?=.{1,253}\Z)[a-z0-9_](?:[a-z0-9_.-]*[a-z0-9])?")


def provider_candidates(
    provider: Provider, address: str, *, source: str, rank: int
) -> list[Candidate]:
    found = []
    for server in provider.servers:
        candidate = _candidate(
            host=server.hostname,
            port=server.port,
            socket_type=server.socket_type,
            authentication=server.authentication,
            username=server.username,
            address=address,
            source=source,
            rank=rank,
            notes=provider.notes,
        )
        if candidate is not None:
            found.append(candidate)
    return found


class AutoconfigError(ValueError):
    """An autoconfig document that is refused or not understood."""


_XML_DECLARATION = re.compile(r"\A\s*<\?xml[^>]*\?>")


def parse_autoconfig(data: bytes, address: str) -> list[Candidate]:
    """The ``outgoingServer type="smtp"`` entries of a config-v1.1.xml document.

    ``<outgoingServer type="smtp"><hostname>smtp.%EMAILDOMAIN%</hostname>
    <port>587</port><socketType>STARTTLS</socketType><username>%EMAILADDRESS%
    </username><authentication>password-cleartext</authentication></outgoingServer>``
    -> a STARTTLS candidate on 587 with the address as user name.

    Documents with a DOCTYPE or entity declarations are refused (no entity
    expansion, no external entities); only UTF-8 is read, so no declared
    encoding can hide a DOCTYPE from that check.
    """
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise AutoconfigError("the document is not UTF-8") from exc
    lowered = text.lower()
    if "<!doctype" in lowered or "<!entity" in lowered:
        raise AutoconfigError("the document declares a DOCTYPE or entities; refused")
    try:
        root = ET.fromstring(_XML_DECLARATION.sub("", text, count=1))
    except ET.ParseError as exc:
        raise AutoconfigError(f"the document is not well-formed XML ({exc})") from exc

    def local_name(element: ET.Element) -> str:
        return element.tag.rpartition("}")[2] if isinstance(element.tag, str) else ""

    found: list[Candidate] = []
    for server in root.iter():
        if local_name(server) != "outgoingServer" or server.get("type", "").lower() != "smtp":
            continue
        values: dict[str, list[str]] = {}
        for child in server:
            values.setdefault(local_name(child), []).append((child.text or "").strip())

        def first(name: str, values: dict[str, list[str]] = values) -> str:
            return values.get(name, [""])[0]

        try:
            port = int(first("port"))
        except ValueError:
            continue
        candidate = _candidate(
            host=first("hostname"),
            port=port,
            socket_type=first("socketType"),
            authentication=values.get("authentication", []),
            username=first("username"),
            address=address,
            source=SOURCE_AUTOCONFIG,
            rank=RANKS[SOURCE_AUTOCONFIG],
        )
        if candidate is not None:
            found.append(candidate)
    return found


def default_autoconfig_urls(domain: str, address: str) -> list[str]:
    """The two places a domain publishes its config-v1.1.xml (HTTPS only)."""
    query = urllib.parse.urlencode({"emailaddress": address})
    return [
        f"https://autoconfig.{domain}/mail/config-v1.1.xml?{query}",
        f"https://{domain}/.well-known/autoconfig/mail/config-v1.1.xml",
    ]


# ------------------------------------------------------------------- the machinery


def _spawn(work: Callable[[], _T], name: str) -> cf.Future[_T]:
    """Run ``work`` on a daemon thread: one abandoned past the deadline never
    holds up the program's exit, and whatever it raises lands in its future."""
    future: cf.Future[_T] = cf.Future()

    def run() -> None:
        if not future.set_running_or_notify_cancel():
            return
        try:
            result = work()
        except BaseException as exc:  # a worker never raises into its thread
            future.set_exception(exc)
        else:
            future.set_result(result)

    thread = threading.Thread(target=run, name=f"mailer-discover-{name}", daemon=True)
    with _threads_lock:
        _threads.add(thread)
    thread.start()
    return future


# Threads left running past a deadline finish on their own timeouts; the
# interpreter must not be torn down under them (a thread inside ssl or the
# resolver when Python finalises can crash the process), so exit waits for
# them, bounded.
_threads: weakref.WeakSet[threading.Thread] = weakref.WeakSet()
_threads_lock = threading.Lock()
_EXIT_WAIT = 12.0


@atexit.register
def _join_leftover_threads() -> None:
    deadline = time.monotonic() + _EXIT_WAIT
    with _threads_lock:
        leftovers = [t for t in _threads if t.is_alive()]
    for thread in leftovers:
        thread.join(max(0.0, deadline - time.monotonic()))


class _NothingHere(Exception):
    """A source looked and found nothing (with the reason, when worth telling)."""


class _SourceFailed(Exception):
    """A source could not look (DNS failure, TLS error, ...)."""


class _Cancelled(Exception):
    """A source gave up because the person cancelled (its waits end then)."""


def _unless_cancelled(work: Callable[[], _Outcome], cancel: threading.Event) -> _Outcome:
    """``work()``; a failure it ends in once the person has cancelled is that
    cancel, not a fault of its servers (decided when it fails, not when read)."""
    try:
        return work()
    except _NothingHere:
        raise
    except Exception as error:
        if cancel.is_set():
            raise _Cancelled() from error
        raise


@dataclass(frozen=True)
class _Outcome:
    candidates: tuple[Candidate, ...] = ()
    rejected: tuple[Candidate, ...] = ()
    detail: str = ""


class _Run:
    """One phase's shared state: its deadline, the stop flag, open sessions."""

    def __init__(
        self,
        deadline: float,
        cancel: threading.Event,
        events: queue.SimpleQueue[ProgressEvent],
        transcript: Transcript | None,
        password: str | None,
    ) -> None:
        self.deadline = deadline
        self.cancel = cancel
        self.stop = threading.Event()
        self.events = events
        self.transcript = transcript
        self.password = password
        self._sessions: set[Session] = set()
        self._lock = threading.Lock()

    def remaining(self) -> float:
        return max(0.0, self.deadline - time.monotonic())

    @property
    def over(self) -> bool:
        return self.stop.is_set() or self.cancel.is_set() or time.monotonic() >= self.deadline

    def emit(self, source: str, status: Status, detail: str = "") -> None:
        if not self.stop.is_set():
            self.events.put(ProgressEvent(source, status, detail))

    def step_timeout(self, share: float = 0.8, cap: float = PROBE_TIMEOUT) -> float:
        """A per-step network timeout that ends before the phase does."""
        return max(0.2, min(cap, self.remaining() * share))

    def wait(
        self,
        futures: Iterable[cf.Future[Any]],
        *,
        any_done: bool = False,
        until: Callable[[], bool] | None = None,
    ) -> None:
        """Wait for the futures (or the first of them) until the phase is over, or
        until ``until()`` is true (checked every POLL seconds)."""
        pending = set(futures)
        while pending and not self.over:
            done, pending = cf.wait(
                pending, timeout=min(POLL, self.remaining()), return_when=cf.FIRST_COMPLETED
            )
            if done and any_done:
                return
            if until is not None and until():
                return

    def session(self, settings: ServerSettings, tag: str, **kwargs: Any) -> Session | None:
        """A Session whose transcript feeds the caller's, aborted when the phase ends."""
        transcript = Transcript(listener=functools.partial(self._forward, tag))
        if self.password:
            transcript.add_secret(self.password)
        session = Session(settings, transcript=transcript, **kwargs)
        with self._lock:
            if self.stop.is_set():
                return None
            self._sessions.add(session)
        return session

    def release(self, session: Session) -> None:
        with self._lock:
            self._sessions.discard(session)

    def _forward(self, tag: str, record: TranscriptRecord) -> None:
        if self.transcript is None or self.stop.is_set():
            return
        text = f"[{tag}] {record.text}"
        if record.direction is Direction.CLIENT:
            self.transcript.client(text)
        elif record.direction is Direction.SERVER:
            self.transcript.server(text)
        else:
            self.transcript.note(text)

    def finish(self) -> None:
        """End the phase: nothing more is reported, open connections are cut."""
        with self._lock:
            self.stop.set()
            sessions = list(self._sessions)
        for session in sessions:
            session.abort()  # a blocked read returns; the thread then closes its socket

    def lifetime(self, resolver: dns.resolver.Resolver) -> float:
        return max(0.1, min(float(resolver.lifetime), self.remaining()))


def _dns_failure(exc: dns.exception.DNSException) -> str:
    if isinstance(exc, dns.exception.Timeout):
        return "no DNS server answered in time"
    if isinstance(exc, dns.resolver.NoNameservers):
        return "the DNS servers failed to answer (SERVFAIL, REFUSED or unreachable)"
    return str(exc) or type(exc).__name__


# ----------------------------------------------------------------------- sources


def _from_provider_list(providers: ProviderList, domain: str, address: str) -> _Outcome:
    provider = providers.for_domain(domain)
    if provider is None:
        raise _NothingHere()
    found = provider_candidates(
        provider, address, source=SOURCE_PROVIDERS, rank=RANKS[SOURCE_PROVIDERS]
    )
    return _Outcome(tuple(found), detail=provider.name)


class _HttpsOnlyRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: Any,
        code: int,
        msg: str,
        headers: Any,
        newurl: str,
    ) -> urllib.request.Request | None:
        if urllib.parse.urlsplit(newurl).scheme.lower() != "https":
            raise urllib.error.HTTPError(
                newurl, code, "redirect away from HTTPS refused", headers, fp
            )
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _fetch(url: str, run: _Run) -> bytes:
    """GET over verified HTTPS, bounded in time and size. Raises _NothingHere
    when nothing is published there, _SourceFailed for anything else."""
    if urllib.parse.urlsplit(url).scheme.lower() != "https":
        raise _SourceFailed(f"{url}: not HTTPS; refused")
    if run.over:
        raise _SourceFailed(f"{url}: not fetched, discovery had ended")
    context = ssl.create_default_context()  # verifies chain and name; SSL_CERT_FILE works
    opener = urllib.request.build_opener(
        urllib.request.HTTPSHandler(context=context), _HttpsOnlyRedirects()
    )
    request = urllib.request.Request(
        url, headers={"Accept": "application/xml, text/xml", "User-Agent": "Mailer"}
    )
    timeout = run.step_timeout(cap=AUTOCONFIG_TIMEOUT)
    try:
        with opener.open(request, timeout=timeout) as response:
            length = response.headers.get("Content-Length")
            if length and length.isdigit() and int(length) > AUTOCONFIG_LIMIT:
                raise _SourceFailed(f"{url}: the document is larger than 1 MB; refused")
            body = bytearray()
            while chunk := response.read(65536):
                body += chunk
                if len(body) > AUTOCONFIG_LIMIT:
                    raise _SourceFailed(f"{url}: the document is larger than 1 MB; refused")
                if run.over:
                    raise _SourceFailed(f"{url}: too slow")
            return bytes(body)
    except urllib.error.HTTPError as exc:
        if exc.code in (404, 410):
            raise _NothingHere() from exc
        raise _SourceFailed(f"{url}: HTTP {exc.code} {exc.reason}") from exc
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, socket.gaierror):
            raise _NothingHere() from exc  # no such host: nothing published
        raise _SourceFailed(f"{url}: {exc.reason}") from exc
    except (OSError, http.client.HTTPException, ValueError) as exc:
        raise _SourceFailed(f"{url}: {exc or type(exc).__name__}") from exc


def _from_autoconfig(urls: Sequence[str], address: str, run: _Run) -> _Outcome:
    def one(url: str) -> list[Candidate]:
        try:
            found = parse_autoconfig(_fetch(url, run), address)
        except AutoconfigError as exc:
            raise _SourceFailed(f"{url}: {exc}") from exc
        if not found:
            raise _NothingHere()
        return found

    futures = [_spawn(functools.partial(one, url), "autoconfig-fetch") for url in urls]
    if not futures:
        raise _NothingHere()
    # Both places are the domain's own, over verified HTTPS: the first to answer wins.
    pending = set(futures)
    while pending and not run.over:
        run.wait(pending, any_done=True)
        for future in [f for f in pending if f.done()]:
            pending.discard(future)
            if future.exception() is None:
                return _Outcome(tuple(future.result()), detail=urls[futures.index(future)])
    failures = [
        str(f.exception()) for f in futures if f.done() and isinstance(f.exception(), _SourceFailed)
    ]
    if pending:
        failures.append("no answer in time")
    if failures:
        raise _SourceFailed("; ".join(failures))
    raise _NothingHere()


def _outside_warning(host: str, domain: str, shown_domain: str) -> tuple[str, ...]:
    if _is_under(host, domain):
        return ()
    return (f"the server {host} is outside your domain {shown_domain}; confirm you trust it",)


def _from_srv(
    domain: str, shown_domain: str, address: str, resolver: dns.resolver.Resolver, run: _Run
) -> _Outcome:
    """RFC 6186 §3.1 / RFC 8314 §5.1: _submissions (implicit TLS) before _submission."""
    found: list[Candidate] = []
    failures: list[str] = []
    refused: list[str] = []
    for service, security in (
        ("_submissions._tcp", Security.TLS),
        ("_submission._tcp", Security.STARTTLS),
    ):
        name = f"{service}.{domain}"
        try:
            answer = resolver.resolve(
                name, dns.rdatatype.SRV, search=False, lifetime=run.lifetime(resolver)
            )
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            continue
        except dns.exception.DNSException as exc:
            failures.append(f"{name}: {_dns_failure(exc)}")
            continue
        records = sorted(answer, key=lambda r: (int(r.priority), -int(r.weight)))
        for record in records:
            target = record.target.to_text(omit_final_dot=True).lower()
            if record.target == dns.name.root or not target or int(record.port) == 0:
                # "." alone: the service is decidedly not offered (RFC 2782).
                refused.append(name)
                continue
            found.append(
                Candidate(
                    host=target,
                    port=int(record.port),
                    security=security,
                    auth=AuthMethod.AUTO,
                    username=address.strip(),
                    source=SOURCE_SRV,
                    rank=RANKS[SOURCE_SRV],
                    warnings=_outside_warning(target, domain, shown_domain),
                )
            )
    if found:
        return _Outcome(tuple(found))
    if failures:
        raise _SourceFailed("; ".join(failures))
    if refused:
        raise _NothingHere(
            f"the domain says it offers no submission service ({refused[0]} points to “.”)"
        )
    raise _NothingHere()


def _from_mx(
    providers: ProviderList,
    domain: str,
    address: str,
    resolver: dns.resolver.Resolver,
    run: _Run,
) -> _Outcome:
    try:
        answer = resolver.resolve(
            domain, dns.rdatatype.MX, search=False, lifetime=run.lifetime(resolver)
        )
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer) as exc:
        raise _NothingHere() from exc
    except dns.exception.DNSException as exc:
        raise _SourceFailed(_dns_failure(exc)) from exc
    for record in sorted(answer, key=lambda r: int(r.preference)):
        if record.exchange == dns.name.root:
            continue
        exchange = record.exchange.to_text(omit_final_dot=True).lower()
        provider = providers.for_mx(exchange)
        if provider is not None:
            found = provider_candidates(
                provider, address, source=f"MX → {provider.name}", rank=RANKS[SOURCE_MX]
            )
            return _Outcome(tuple(found), detail=f"{exchange} is {provider.name}'s")
    raise _NothingHere()


def _addresses(
    name: str, resolver: dns.resolver.Resolver, run: _Run
) -> tuple[tuple[str, ...], str]:
    """A and AAAA of a guessed name through our resolver, and a failure, if any."""
    found: list[str] = []
    failure = ""
    for rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
        if run.over:
            return tuple(found), failure or "no DNS answer in time"
        try:
            answer = resolver.resolve(name, rdtype, search=False, lifetime=run.lifetime(resolver))
        except dns.resolver.NXDOMAIN:
            break
        except dns.resolver.NoAnswer:
            continue
        except dns.exception.DNSException as exc:
            failure = _dns_failure(exc)
            continue
        found += [str(rdata.address) for rdata in answer]
    return tuple(found), failure


_TLS_NOTE = re.compile(r"TLS established: ([^,;]+)")


def _probe(host: str, port: int, security: Security, address: str, run: _Run) -> Candidate:
    """EHLO (and STARTTLS) against a guessed server with the engine's Session.

    The candidate comes back either way; ``probe.accepted`` says whether it passed.
    """
    tag = f"{host}:{port}"
    step = run.step_timeout()
    settings = ServerSettings(
        host,
        port,
        security,
        auth=AuthMethod.NONE,
        timeouts=Timeouts(connect=step, greeting=step, command=step),
    )
    base = Candidate(
        host, port, security, AuthMethod.AUTO, address.strip(), SOURCE_GUESS, RANKS[SOURCE_GUESS]
    )
    session = run.session(settings, tag)
    if session is None:
        return replace(base, probe=ProbeReport(False, "not tried: discovery had ended"))
    run.emit(SOURCE_GUESS, Status.PROBING, base.describe())
    try:
        session.open()
    except SmtpError as exc:
        run.release(session)
        run.emit(SOURCE_GUESS, Status.REJECTED, f"{base.describe()}: {exc.message}")
        return replace(base, probe=ProbeReport(False, exc.message))
    try:
        extensions = session.extensions
        tls_version = None
        for record in session.transcript.records:
            match = _TLS_NOTE.match(record.text)
            if record.direction is Direction.NOTE and match:
                tls_version = match.group(1).strip()
        report = ProbeReport(
            True,
            tls_version=tls_version if session.tls_active else None,
            auth_mechanisms=tuple(extensions.get("AUTH", "").upper().split()),
            size_limit=session.size_limit,
            extensions=tuple(sorted(extensions)),
        )
    finally:
        session.close()  # still registered: an abort cuts a QUIT nobody answers
        run.release(session)
    warnings: tuple[str, ...] = ()
    if security is Security.NONE:
        warnings += ("this server offers no encryption; the password would travel in clear",)
    if not report.auth_mechanisms:
        warnings += (f"{host} port {port} did not offer to log in (no AUTH)",)
    run.emit(SOURCE_GUESS, Status.ACCEPTED, base.describe())
    return replace(base, probe=report, warnings=warnings)


def _from_guesses(
    domain: str,
    address: str,
    ports: Mapping[Security, Sequence[int]],
    resolver: dns.resolver.Resolver,
    run: _Run,
) -> _Outcome:
    hosts = list(dict.fromkeys([f"smtp.{domain}", f"mail.{domain}", domain]))
    lookups = [
        _spawn(functools.partial(_addresses, host, resolver, run), "guess-dns") for host in hosts
    ]
    run.wait(lookups)
    resolved = [_result_or(f, ((), "no DNS answer in time")) for f in lookups]
    # Probes go by name: the system resolves it for the connection and the
    # certificate is checked against it. Our resolver only decides which
    # names exist, so a missing name costs no connection attempt.
    existing = [host for host, (found, _) in zip(hosts, resolved, strict=True) if found]
    dns_failures = [failure for _, failure in resolved if failure]
    plan = [
        (host, port, security)
        for security, port_list in ports.items()
        for host in existing
        for port in port_list
    ]
    if run.over:
        plan = []  # discovery ended while DNS answered: connect to nothing more
    probes = [
        _spawn(functools.partial(_probe, host, port, security, address, run), "probe")
        for host, port, security in plan
    ]
    run.wait(probes)
    results = [c for c in (_result_or(f, None) for f in probes) if c is not None]
    accepted = [c for c in results if c.probe is not None and c.probe.accepted]
    rejected = [c for c in results if c.probe is not None and not c.probe.accepted]
    order = {security: index for index, security in enumerate(ports)}

    def preference(candidate: Candidate) -> tuple[int, int, int, int]:
        offers_auth = candidate.probe is not None and bool(candidate.probe.auth_mechanisms)
        return (
            0 if offers_auth else 1,
            order[candidate.security],
            hosts.index(candidate.host),
            list(ports[candidate.security]).index(candidate.port),
        )

    accepted.sort(key=preference)
    unfinished = len(probes) - len(results)
    if accepted:
        return _Outcome(tuple(accepted), tuple(rejected))
    if not existing and dns_failures:
        raise _SourceFailed(dns_failures[0])
    if unfinished and not rejected:
        raise _SourceFailed("no server answered in time")
    if not existing:
        raise _NothingHere(f"none of {', '.join(hosts)} exists")
    why = f"{len(rejected)} server(s) turned down" if rejected else ""
    return _Outcome((), tuple(rejected), detail=why)


def _result_or(future: cf.Future[_T], default: _U) -> _T | _U:
    """The result of a finished, successful future; ``default`` otherwise."""
    if future.done() and not future.cancelled() and future.exception() is None:
        return future.result()
    return default


# -------------------------------------------------------------------------- login


def _redact(text: str, password: str) -> str:
    """Scrub the password (plain or base64) from text, the way transcripts do."""
    scratch = Transcript()
    scratch.add_secret(password)
    scratch.note(text)
    return scratch.records[-1].text


class _LoginError(Exception):
    """Why a login did not work, in words for the person (never with the password)."""

    def __init__(self, reason: str, *, refused: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.refused = refused  # the server itself turned the credentials down


def _login(candidate: Candidate, address: str, password: str, step: float, run: _Run) -> None:
    """Log in for real; raise _LoginError when that does not work."""
    username = candidate.username or address.strip()
    settings = candidate.settings(
        auth=AuthMethod.AUTO if candidate.auth is AuthMethod.NONE else candidate.auth,
        username=username,
        timeouts=Timeouts(connect=step, greeting=step, command=step),
    )
    session = run.session(
        settings,
        f"login {candidate.host}:{candidate.port}",
        credentials=lambda: Credentials(username, password),
    )
    if session is None:
        raise _LoginError(f"{candidate.describe()}: not tried, discovery had ended.")
    try:
        session.open()
    except SmtpError as exc:
        run.release(session)
        refused = (
            isinstance(exc, AuthenticationError) and exc.reply is not None and not exc.transient
        )
        raise _LoginError(_redact(exc.message, password), refused=refused) from None
    try:
        if not session.authenticated:
            raise _LoginError(
                f"{candidate.describe()} did not offer to log in (no AUTH), so the password "
                "could not be checked there."
            )
    finally:
        session.close()
        run.release(session)


def _try_logins(
    candidates: Sequence[Candidate],
    address: str,
    password: str,
    run: _Run,
) -> tuple[Candidate | None, list[LoginFailure]]:
    failures: list[LoginFailure] = []
    tried: list[Candidate] = []
    seen: set[tuple[str, int]] = set()
    for candidate in candidates:
        key = (candidate.host, candidate.port)
        if key not in seen:
            seen.add(key)
            tried.append(candidate)
    tried = tried[:LOGIN_ATTEMPTS]
    for index, candidate in enumerate(tried):
        if candidate.auth is AuthMethod.XOAUTH2:
            reason = (
                f"{candidate.describe()} accepts only OAuth2 sign-in, which needs a token "
                "from the provider, not a password."
            )
            failures.append(LoginFailure(candidate, " ".join((reason, *candidate.notes))))
            continue
        if run.over:
            break
        run.emit(SOURCE_LOGIN, Status.TRYING, candidate.describe())
        step = run.step_timeout(share=0.8 / (len(tried) - index))
        future = _spawn(functools.partial(_login, candidate, address, password, step, run), "login")
        run.wait([future])
        if not future.done():
            why = "cancelled" if run.cancel.is_set() else "no answer in time"
            failures.append(LoginFailure(candidate, f"{candidate.describe()}: {why}."))
            run.emit(SOURCE_LOGIN, Status.FAILED, f"{candidate.describe()}: {why}")
            break
        error = future.exception()
        if error is None:
            run.emit(SOURCE_LOGIN, Status.WORKS, candidate.describe())
            return candidate, failures
        if isinstance(error, _LoginError):
            reason = error.reason
        else:  # a bug, not a server's answer; still explained, still redacted
            reason = _redact(f"{candidate.describe()}: {error}", password)
        failures.append(LoginFailure(candidate, reason))
        run.emit(SOURCE_LOGIN, Status.FAILED, candidate.describe())
        if isinstance(error, _LoginError) and error.refused:
            # The server said the password is wrong: trying it elsewhere only
            # adds failed attempts (Yahoo and others lock accounts for that).
            break
    return None, failures


# ---------------------------------------------------------------------- discover


def discover(
    address: str,
    *,
    password: str | None = None,
    resolver: dns.resolver.Resolver | None = None,
    timeout: float = 10.0,
    cancel: threading.Event | None = None,
    on_progress: Callable[[ProgressEvent], None] | None = None,
    autoconfig_urls: Callable[[str, str], Sequence[str]] = default_autoconfig_urls,
    guess_ports: Mapping[Security, Sequence[int]] = DEFAULT_GUESS_PORTS,
    transcript: Transcript | None = None,
    providers: ProviderList | None = None,
    exhaustive: bool = False,
) -> DiscoveryResult:
    """Find the submission settings for ``address``, within ``timeout`` seconds.

    All sources start at once. Unless ``exhaustive``, discovery stops as soon as
    the best-ranked source that found something has no better-ranked source
    still running (a provider-list hit returns at once). ``on_progress`` is
    called on the calling thread only, within POLL seconds of each event while
    sources run. With ``password``, up to three distinct candidates are tried
    for a real login; the password appears in no result,
    event, transcript or error text. ``cancel`` ends everything promptly, with
    what was found so far. ``autoconfig_urls(domain, address)`` and
    ``guess_ports`` exist so tests can point at loopback servers.
    """
    if timeout <= 0:
        raise ValueError("timeout must be positive")
    started = time.monotonic()
    address = address.strip()
    _local, shown_domain, domain = split_address(address)
    cancel = cancel or threading.Event()
    events: queue.SimpleQueue[ProgressEvent] = queue.SimpleQueue()
    if transcript is not None and password:
        transcript.add_secret(password)
    share = DISCOVERY_SHARE if password else 1.0
    run = _Run(started + timeout * share, cancel, events, transcript, password)
    the_resolver = resolver if resolver is not None else make_resolver()
    the_providers = providers if providers is not None else bundled_providers()

    def report() -> None:
        """Hand queued events to on_progress, on this (the caller's) thread."""
        if on_progress is None:
            return
        while True:
            try:
                event = events.get_nowait()
            except queue.Empty:
                return
            on_progress(event)

    works: dict[str, Callable[[], _Outcome]] = {
        SOURCE_PROVIDERS: functools.partial(_from_provider_list, the_providers, domain, address),
        SOURCE_AUTOCONFIG: lambda: _from_autoconfig(
            list(autoconfig_urls(domain, address)), address, run
        ),
        SOURCE_SRV: functools.partial(_from_srv, domain, shown_domain, address, the_resolver, run),
        SOURCE_MX: functools.partial(_from_mx, the_providers, domain, address, the_resolver, run),
        SOURCE_GUESS: functools.partial(
            _from_guesses, domain, address, guess_ports, the_resolver, run
        ),
    }
    sources: dict[str, str] = {}
    outcomes: dict[str, _Outcome] = {}
    futures: dict[str, cf.Future[_Outcome]] = {}
    login_run: _Run | None = None
    try:
        for name, work in works.items():
            run.emit(name, Status.STARTED)
            futures[name] = _spawn(
                functools.partial(_unless_cancelled, work, cancel), name.replace(" ", "-")
            )
        while True:
            for name, future in futures.items():
                if name not in sources and future.done():
                    sources[name] = _settle(name, future, outcomes, run)
            report()
            if len(sources) == len(futures) or run.over:
                break
            if not exhaustive and _settled(outcomes, sources):
                break
            # Events waiting (a probe started, say) are reported while sources still run.
            run.wait(
                [f for n, f in futures.items() if n not in sources],
                any_done=True,
                until=lambda: on_progress is not None and not events.empty(),
            )
        for name, future in futures.items():  # what finished in the last instant counts
            if name not in sources and future.done():
                sources[name] = _settle(name, future, outcomes, run)
        for name in futures:
            if name not in sources:
                if cancel.is_set():
                    status, text = Status.CANCELLED, "cancelled"
                elif time.monotonic() >= run.deadline:
                    status, text = Status.TIMED_OUT, "timed out"
                else:
                    status = Status.NOT_NEEDED
                    text = "not needed: a better-ranked source answered first"
                sources[name] = text
                run.emit(name, status)
        run.finish()

        candidates = _ranked(outcomes)
        rejected = tuple(c for outcome in outcomes.values() for c in outcome.rejected)
        working: Candidate | None = None
        failures: list[LoginFailure] = []
        if password and candidates and not cancel.is_set():
            login_run = _Run(started + timeout, cancel, events, transcript, password)
            working, failures = _try_logins(candidates, address, password, login_run)
            login_run.finish()
        report()
        return DiscoveryResult(
            address=address,
            candidates=candidates,
            working=working,
            login_errors=tuple(failures),
            sources=sources,
            rejected=rejected,
            elapsed=time.monotonic() - started,
        )
    finally:
        run.finish()
        if login_run is not None:
            login_run.finish()


def _settle(
    name: str, future: cf.Future[_Outcome], outcomes: dict[str, _Outcome], run: _Run
) -> str:
    """The sources-dict text for a finished source, and its progress event."""
    error = future.exception()
    if error is None:
        outcome = future.result()
        outcomes[name] = outcome
        if outcome.candidates:
            run.emit(name, Status.FOUND, outcome.detail or f"{len(outcome.candidates)}")
            return f"found {len(outcome.candidates)}"
        run.emit(name, Status.NOTHING, outcome.detail)
        return f"nothing: {outcome.detail}" if outcome.detail else "nothing"
    if isinstance(error, _NothingHere):
        detail = str(error)
        run.emit(name, Status.NOTHING, detail)
        return f"nothing: {detail}" if detail else "nothing"
    if isinstance(error, _Cancelled):
        run.emit(name, Status.CANCELLED)
        return "cancelled"
    detail = str(error) or type(error).__name__
    run.emit(name, Status.FAILED, detail)
    return f"failed: {detail}"


def _settled(outcomes: Mapping[str, _Outcome], sources: Mapping[str, str]) -> bool:
    """Whether no source still running could beat the best one that found something."""
    found = [RANKS[name] for name, outcome in outcomes.items() if outcome.candidates]
    if not found:
        return False
    best = min(found)
    return all(name in sources for name, rank in RANKS.items() if rank < best)


def _ranked(outcomes: Mapping[str, _Outcome]) -> tuple[Candidate, ...]:
    """Every candidate, best rank first (source order kept within a rank), each
    host/port/security once at its best rank."""
    ordered = sorted(
        (c for name in RANKS if name in outcomes for c in outcomes[name].candidates),
        key=lambda c: c.rank,
    )
    seen: set[tuple[str, int, Security]] = set()
    unique = []
    for candidate in ordered:
        key = (candidate.host.lower(), candidate.port, candidate.security)
        if key not in seen:
            seen.add(key)
            unique.append(candidate)
    return tuple(unique)
