"""Account autodiscovery against real loopback peers: dnsmasq for DNS, an HTTPS
server for autoconfig XML, aiosmtpd and Postfix for probes and logins.

No test reaches the real network: DNS goes to dnsmasq (names outside its
domains are REFUSED), autoconfig URLs point at 127.0.0.1, and guessed servers
are probed under the name ``localhost`` (the one name the system resolves;
see discover.py on why probes connect by name).
"""

from __future__ import annotations

import base64
import json
import threading
import time
import urllib.parse
from collections.abc import Callable, Sequence
from importlib import resources
from pathlib import Path

import pytest

from mailer_gui.accounts.discover import (
    DEFAULT_GUESS_PORTS,
    SOURCE_AUTOCONFIG,
    SOURCE_GUESS,
    SOURCE_LOGIN,
    SOURCE_MX,
    SOURCE_PROVIDERS,
    SOURCE_SRV,
    AutoconfigError,
    Candidate,
    DiscoveryResult,
    ProgressEvent,
    Provider,
    ProviderList,
    ProviderServer,
    Status,
    auth_method,
    bundled_providers,
    default_autoconfig_urls,
    discover,
    parse_autoconfig,
    resolve_placeholders,
    split_address,
)
from mailer_gui.smtp.settings import AuthMethod, Security
from mailer_gui.smtp.transcript import Transcript
from tests.servers.aiosmtpd_server import AiosmtpdFactory
from tests.servers.dnsmasq import Dnsmasq, DnsmasqFactory
from tests.servers.https_server import HttpsServer, HttpsServerFactory, Response
from tests.servers.postfix_dovecot import SubmissionServer
from tests.servers.tls import ServerCert

ADDRESS = "someone@localhost"
PASSWORD = "correct horse battery staple 7"
CONFIG_PATH = "/mail/config-v1.1.xml"
NO_AUTOCONFIG: Callable[[str, str], list[str]] = lambda domain, address: []  # noqa: E731
NO_GUESSES: dict[Security, tuple[int, ...]] = {}

AUTOCONFIG_XML = """<?xml version="1.0" encoding="UTF-8"?>
<clientConfig version="1.1">
  <emailProvider id="example.test">
    <domain>example.test</domain>
    <incomingServer type="imap">
      <hostname>imap.example.test</hostname><port>993</port><socketType>SSL</socketType>
      <username>%EMAILADDRESS%</username><authentication>password-cleartext</authentication>
    </incomingServer>
    <outgoingServer type="smtp">
      <hostname>smtp.%EMAILDOMAIN%</hostname>
      <port>465</port>
      <socketType>SSL</socketType>
      <username>%EMAILLOCALPART%</username>
      <authentication>password-cleartext</authentication>
    </outgoingServer>
    <outgoingServer type="smtp">
      <hostname>submit.example.test</hostname>
      <port>587</port>
      <socketType>STARTTLS</socketType>
      <username>%EMAILADDRESS%</username>
      <authentication>password-encrypted</authentication>
    </outgoingServer>
  </emailProvider>
</clientConfig>
"""

BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;">]>
<clientConfig><emailProvider><outgoingServer type="smtp">
<hostname>&lol2;</hostname><port>465</port><socketType>SSL</socketType>
</outgoingServer></emailProvider></clientConfig>
"""


def config_xml(host: str, port: int, socket_type: str = "STARTTLS") -> str:
    return (
        '<clientConfig version="1.1"><emailProvider id="x"><outgoingServer type="smtp">'
        f"<hostname>{host}</hostname><port>{port}</port><socketType>{socket_type}</socketType>"
        "<username>%EMAILADDRESS%</username>"
        "<authentication>password-cleartext</authentication>"
        "</outgoingServer></emailProvider></clientConfig>"
    )


def urls_for(server: HttpsServer) -> Callable[[str, str], list[str]]:
    """The two autoconfig places, both on the loopback HTTPS server."""

    def build(domain: str, address: str) -> list[str]:
        query = urllib.parse.urlencode({"emailaddress": address})
        return [
            server.url(f"{CONFIG_PATH}?{query}"),
            server.url(f"/.well-known/autoconfig{CONFIG_PATH}"),
        ]

    return build


def localhost_dns(factory: DnsmasqFactory, **records: object) -> Dnsmasq:
    """dnsmasq answering for .test and for localhost (127.0.0.1, nothing else)."""
    hosts = {"localhost": "127.0.0.1", **records.pop("hosts", {})}  # type: ignore[dict-item]
    return factory(local=("test", "localhost"), hosts=hosts, **records)  # type: ignore[arg-type]


def secret_forms(password: str, username: str) -> list[str]:
    raw = password.encode()
    return [
        password,
        base64.b64encode(raw).decode(),
        base64.b64encode(b"\0" + username.encode() + b"\0" + raw).decode(),
    ]


def discovery_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name.startswith("mailer-discover-")}


def wait_for_threads_to_end(earlier: set[threading.Thread], limit: float) -> set[threading.Thread]:
    """The discovery threads started since ``earlier`` still alive after ``limit`` s."""
    deadline = time.monotonic() + limit
    while discovery_threads() - earlier and time.monotonic() < deadline:
        time.sleep(0.05)
    return discovery_threads() - earlier


# --------------------------------------------------------------- pure pieces


def test_bundled_provider_list_keeps_every_row_and_lives_in_the_package() -> None:
    data = json.loads(
        resources.files("mailer_gui").joinpath("resources", "providers.json").read_text("utf-8")
    )
    providers = bundled_providers()
    assert sum(len(p.servers) for p in providers.providers) == data["rows"] == 202
    tsv = Path(__file__).parents[3] / "shared" / "reference" / "providers.tsv"
    if tsv.exists():
        assert data["rows"] == len(tsv.read_text("utf-8").splitlines()) - 1
    gmail = providers.for_domain("GMAIL.com")
    assert gmail is not None and gmail.name == "Google"
    assert "app password" in " ".join(gmail.notes)
    outlook = providers.for_domain("hotmail.com")
    assert outlook is not None and "only OAuth2 since September 2024" in outlook.notes[0]


@pytest.mark.parametrize(
    ("mx_host", "provider"),
    [
        ("aspmx.l.google.com", "Google"),
        ("alt2.aspmx.l.google.com", "Google"),
        ("example-org.mail.protection.outlook.com", "Microsoft 365"),
        ("hotmail-com.olc.protection.outlook.com", "Outlook.com"),
        ("mta7.am0.yahoodns.net", "Yahoo"),
        ("mx-aol.mail.gm0.yahoodns.net", "AOL"),
        ("mx01.mail.icloud.com", "iCloud"),
        ("in1-smtp.messagingengine.com", "Fastmail"),
        ("mx.zoho.eu", "Zoho"),
        ("mx.example.org", None),
        ("notgoogle.com", None),
    ],
)
def test_mx_hosts_match_the_big_providers(mx_host: str, provider: str | None) -> None:
    found = bundled_providers().for_mx(mx_host)
    assert (found.name if found else None) == provider


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (["password-cleartext"], AuthMethod.AUTO),
        (["OAuth2", "password-cleartext"], AuthMethod.AUTO),
        (["password-encrypted"], AuthMethod.CRAM_MD5),
        (["OAuth2"], AuthMethod.XOAUTH2),
        (["none"], AuthMethod.NONE),
        (["client-IP-address"], AuthMethod.NONE),
        ([], AuthMethod.AUTO),
    ],
)
def test_authentication_maps_to_engine_methods(values: list[str], expected: AuthMethod) -> None:
    assert auth_method(values) == (expected, ())


def test_unknown_authentication_is_flagged() -> None:
    method, warnings = auth_method(["NTLM"])
    assert method is AuthMethod.AUTO and "NTLM" in warnings[0]


def test_placeholders_and_addresses() -> None:
    address = "Alice.B@Example.ORG"
    assert resolve_placeholders("%EMAILLOCALPART%", address) == "Alice.B"
    assert resolve_placeholders("%EMAILADDRESS%", address) == address
    assert resolve_placeholders("%EMAILLOCALPART%.%EMAILDOMAIN%", address) == (
        "Alice.B.example.org"
    )
    assert split_address(address) == ("Alice.B", "example.org", "example.org")
    assert split_address("ünï@bücher.example")[2] == "xn--bcher-kva.example"
    for bad in ("no-at-sign", "@example.org", "alice@", "al ice@example.org"):
        with pytest.raises(ValueError, match="not an email address"):
            split_address(bad)
    assert default_autoconfig_urls("example.org", "a+b@example.org") == [
        "https://autoconfig.example.org/mail/config-v1.1.xml?emailaddress=a%2Bb%40example.org",
        "https://example.org/.well-known/autoconfig/mail/config-v1.1.xml",
    ]


def test_autoconfig_xml_is_parsed_with_placeholders_resolved() -> None:
    found = parse_autoconfig(AUTOCONFIG_XML.encode(), "bob@example.test")
    assert [(c.host, c.port, c.security, c.auth, c.username) for c in found] == [
        ("smtp.example.test", 465, Security.TLS, AuthMethod.AUTO, "bob"),
        ("submit.example.test", 587, Security.STARTTLS, AuthMethod.CRAM_MD5, "bob@example.test"),
    ]
    assert {c.source for c in found} == {SOURCE_AUTOCONFIG} and {c.rank for c in found} == {1}


@pytest.mark.parametrize(
    "document",
    [
        BILLION_LAUGHS.encode(),
        b'<!doctype x SYSTEM "file:///etc/passwd"><clientConfig/>',
        BILLION_LAUGHS.encode("utf-16"),  # not UTF-8: refused before any parsing
        b"<clientConfig><unclosed></clientConfig>",
    ],
)
def test_autoconfig_refuses_doctype_entities_and_garbage(document: bytes) -> None:
    with pytest.raises(AutoconfigError):
        parse_autoconfig(document, "bob@example.test")


# ------------------------------------------------------------- provider list


@pytest.mark.needs_server("dnsmasq")
def test_provider_list_answers_gmail_without_the_network(
    dnsmasq_factory: DnsmasqFactory,
    https_server_factory: HttpsServerFactory,
    trust_test_ca: Path,
) -> None:
    dns = dnsmasq_factory()  # gmail.com is outside its domains: REFUSED, never forwarded
    web = https_server_factory()  # 404 for everything
    events: list[ProgressEvent] = []
    result = discover(
        "someone@gmail.com",
        resolver=dns.resolver(),
        autoconfig_urls=urls_for(web),
        on_progress=events.append,
        timeout=5,
        exhaustive=True,
    )
    best = result.candidates[0]
    assert (best.host, best.port, best.security) == ("smtp.gmail.com", 465, Security.TLS)
    assert (best.source, best.rank, best.username) == (SOURCE_PROVIDERS, 0, "someone@gmail.com")
    assert best.auth is AuthMethod.AUTO  # "OAuth2/password-cleartext": a password may work
    assert any("app password" in note for note in best.notes)
    assert result.sources[SOURCE_PROVIDERS] == "found 1"
    assert result.sources[SOURCE_AUTOCONFIG] == "nothing"
    assert result.sources[SOURCE_SRV].startswith("failed: ")
    assert result.sources[SOURCE_MX].startswith("failed: ")
    assert result.sources[SOURCE_GUESS].startswith("failed: ")
    assert result.elapsed < 3
    assert {e.source for e in events if e.status is Status.STARTED} == set(result.sources)
    assert len(web.requests) == 2


@pytest.mark.needs_server("dnsmasq")
def test_a_provider_list_hit_returns_at_once(
    dnsmasq_factory: DnsmasqFactory, silent_port: int, trust_test_ca: Path
) -> None:
    dns = localhost_dns(dnsmasq_factory)
    started = time.monotonic()
    result = discover(
        "someone@outlook.com",
        resolver=dns.resolver(),
        autoconfig_urls=lambda d, a: [f"https://localhost:{silent_port}/x"],
        timeout=5,
    )
    assert time.monotonic() - started < 1
    best = result.candidates[0]
    assert (best.host, best.auth) == ("smtp-mail.outlook.com", AuthMethod.XOAUTH2)
    assert result.sources[SOURCE_AUTOCONFIG] == "not needed: a better-ranked source answered first"


# ------------------------------------------------------------------ autoconfig


@pytest.mark.needs_server("dnsmasq")
def test_autoconfig_over_verified_https(
    dnsmasq_factory: DnsmasqFactory,
    https_server_factory: HttpsServerFactory,
    trust_test_ca: Path,
) -> None:
    dns = dnsmasq_factory()
    web = https_server_factory({CONFIG_PATH: AUTOCONFIG_XML})
    result = discover(
        "bob@example.test",
        resolver=dns.resolver(),
        autoconfig_urls=urls_for(web),
        guess_ports=NO_GUESSES,
        timeout=5,
    )
    assert [(c.host, c.username, c.source) for c in result.candidates] == [
        ("smtp.example.test", "bob", SOURCE_AUTOCONFIG),
        ("submit.example.test", "bob@example.test", SOURCE_AUTOCONFIG),
    ]
    assert result.sources[SOURCE_AUTOCONFIG] == "found 2"
    assert f"{CONFIG_PATH}?emailaddress=bob%40example.test" in web.requests


@pytest.mark.needs_server("dnsmasq")
@pytest.mark.parametrize(
    ("files", "why"),
    [
        ({CONFIG_PATH: "x" * 1_100_000}, "larger than 1 MB"),
        ({CONFIG_PATH: Response(302, headers={"Location": "http://localhost/x"})}, "HTTPS"),
        ({CONFIG_PATH: BILLION_LAUGHS}, "DOCTYPE"),
        ({CONFIG_PATH: Response(500)}, "HTTP 500"),
    ],
)
def test_autoconfig_refusals_are_explained(
    dnsmasq_factory: DnsmasqFactory,
    https_server_factory: HttpsServerFactory,
    trust_test_ca: Path,
    files: dict[str, str | Response],
    why: str,
) -> None:
    dns = dnsmasq_factory()
    web = https_server_factory(files)
    result = discover(
        "bob@example.test",
        resolver=dns.resolver(),
        autoconfig_urls=lambda d, a: [web.url(CONFIG_PATH)],
        guess_ports=NO_GUESSES,
        timeout=5,
    )
    assert result.candidates == ()
    assert result.sources[SOURCE_AUTOCONFIG].startswith("failed: ")
    assert why in result.sources[SOURCE_AUTOCONFIG]


@pytest.mark.needs_server("dnsmasq")
def test_autoconfig_from_an_untrusted_certificate_is_ignored(
    dnsmasq_factory: DnsmasqFactory,
    https_server_factory: HttpsServerFactory,
    self_signed_cert: ServerCert,
    trust_test_ca: Path,
) -> None:
    dns = dnsmasq_factory()
    web = https_server_factory({CONFIG_PATH: AUTOCONFIG_XML}, cert=self_signed_cert)
    result = discover(
        "bob@example.test",
        resolver=dns.resolver(),
        autoconfig_urls=lambda d, a: [web.url(CONFIG_PATH)],
        guess_ports=NO_GUESSES,
        timeout=5,
    )
    assert result.candidates == ()
    assert "CERTIFICATE_VERIFY_FAILED" in result.sources[SOURCE_AUTOCONFIG]


# ----------------------------------------------------------------------- SRV


@pytest.mark.needs_server("dnsmasq")
def test_srv_records_with_a_target_outside_the_domain_are_flagged(
    dnsmasq_factory: DnsmasqFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    dns = dnsmasq_factory(
        srv={
            "_submission._tcp.example.test": [("mail.example.test", 587, 0, 0)],
            "_submissions._tcp.example.test": [
                ("smtp.other.example", 465, 10, 0),
                ("backup.other.example", 465, 20, 0),
            ],
        }
    )
    # No resolver passed: make_resolver() follows MAILER_GUI_NAMESERVER.
    monkeypatch.setenv("MAILER_GUI_NAMESERVER", dns.nameserver)
    result = discover(
        "bob@example.test", autoconfig_urls=NO_AUTOCONFIG, guess_ports=NO_GUESSES, timeout=5
    )
    assert [(c.host, c.port, c.security) for c in result.candidates] == [
        ("smtp.other.example", 465, Security.TLS),
        ("backup.other.example", 465, Security.TLS),
        ("mail.example.test", 587, Security.STARTTLS),
    ]
    outside, _, inside = result.candidates
    assert outside.warnings == (
        "the server smtp.other.example is outside your domain example.test; confirm you trust it",
    )
    assert inside.warnings == ()
    assert {c.source for c in result.candidates} == {SOURCE_SRV}
    assert {c.username for c in result.candidates} == {"bob@example.test"}
    assert result.sources[SOURCE_SRV] == "found 3"


@pytest.mark.needs_server("dnsmasq")
def test_srv_dot_means_not_offered(dnsmasq_factory: DnsmasqFactory) -> None:
    dns = dnsmasq_factory(srv={"_submissions._tcp.example.test": [(".", 0, 0, 0)]})
    result = discover(
        "bob@example.test",
        resolver=dns.resolver(),
        autoconfig_urls=NO_AUTOCONFIG,
        guess_ports=NO_GUESSES,
        timeout=5,
    )
    assert result.candidates == ()
    assert result.sources[SOURCE_SRV].startswith("nothing: the domain says it offers no")


# ------------------------------------------------------------------------ MX


@pytest.mark.needs_server("dnsmasq")
@pytest.mark.parametrize(
    ("mx", "host", "source", "auth"),
    [
        (
            [(10, "aspmx.l.google.com"), (20, "alt1.aspmx.l.google.com")],
            "smtp.gmail.com",
            "MX → Google",
            AuthMethod.AUTO,
        ),
        (
            [(0, "example-test.mail.protection.outlook.com")],
            "smtp.office365.com",
            "MX → Microsoft 365",
            AuthMethod.XOAUTH2,
        ),
    ],
)
def test_mx_hosts_lead_to_the_provider(
    dnsmasq_factory: DnsmasqFactory,
    mx: list[tuple[int, str]],
    host: str,
    source: str,
    auth: AuthMethod,
) -> None:
    dns = dnsmasq_factory(mx={"example.test": mx})
    result = discover(
        "bob@example.test",
        resolver=dns.resolver(),
        autoconfig_urls=NO_AUTOCONFIG,
        guess_ports=NO_GUESSES,
        timeout=5,
    )
    best = result.candidates[0]
    assert (best.host, best.source, best.rank, best.auth) == (host, source, 3, auth)
    assert best.username == "bob@example.test" and best.notes
    assert result.sources[SOURCE_MX] == "found 1"


@pytest.mark.needs_server("dnsmasq")
def test_an_unknown_mx_host_gives_nothing(dnsmasq_factory: DnsmasqFactory) -> None:
    dns = dnsmasq_factory(mx={"example.test": [(10, "mx.example.test")]})
    result = discover(
        "bob@example.test",
        resolver=dns.resolver(),
        autoconfig_urls=NO_AUTOCONFIG,
        guess_ports=NO_GUESSES,
        timeout=5,
    )
    assert result.sources[SOURCE_MX] == "nothing"


# ------------------------------------------------------------------ guessing


@pytest.mark.needs_server("dnsmasq")
def test_guessing_probes_in_parallel_and_rejects_what_fails(
    dnsmasq_factory: DnsmasqFactory,
    aiosmtpd_factory: AiosmtpdFactory,
    self_signed_cert: ServerCert,
    trust_test_ca: Path,
) -> None:
    dns = localhost_dns(dnsmasq_factory)
    users = {ADDRESS: PASSWORD}
    implicit = aiosmtpd_factory(tls="implicit", users=users)
    starttls = aiosmtpd_factory(tls="starttls", users=users)
    plain = aiosmtpd_factory(tls="none")
    bad_cert = aiosmtpd_factory(tls="starttls", cert=self_signed_cert)
    result = discover(
        ADDRESS,
        resolver=dns.resolver(),
        autoconfig_urls=NO_AUTOCONFIG,
        guess_ports={
            Security.TLS: (implicit.port,),
            Security.STARTTLS: (starttls.port, plain.port, bad_cert.port),
        },
        timeout=8,
    )
    assert [(c.port, c.security) for c in result.candidates] == [
        (implicit.port, Security.TLS),
        (starttls.port, Security.STARTTLS),
    ]
    for candidate in result.candidates:
        assert (candidate.host, candidate.source, candidate.rank) == ("localhost", SOURCE_GUESS, 4)
        assert candidate.username == ADDRESS
        probe = candidate.probe
        assert probe is not None and probe.accepted
        assert probe.tls_version is not None and probe.tls_version.startswith("TLSv1.")
        assert "PLAIN" in probe.auth_mechanisms
        assert probe.size_limit == 33_554_432
        assert candidate.warnings == ()
    rejected = {c.port: c.probe.reason for c in result.rejected if c.probe}
    assert "does not offer STARTTLS" in rejected[plain.port]
    assert "self-signed" in rejected[bad_cert.port]
    assert result.sources[SOURCE_GUESS] == "found 2"
    # smtp.localhost and mail.localhost do not exist in DNS: never probed.
    assert {c.host for c in result.candidates + result.rejected} == {"localhost"}


@pytest.mark.needs_server("dnsmasq")
def test_guessing_finds_nothing_when_no_name_exists(dnsmasq_factory: DnsmasqFactory) -> None:
    dns = dnsmasq_factory()
    result = discover(
        "bob@example.test", resolver=dns.resolver(), autoconfig_urls=NO_AUTOCONFIG, timeout=5
    )
    assert result.sources[SOURCE_GUESS] == (
        "nothing: none of smtp.example.test, mail.example.test, example.test exists"
    )
    assert DEFAULT_GUESS_PORTS[Security.TLS] == (465,)


# ------------------------------------------------------------------- ranking


def make_provider(host: str = "smtp.provider.test") -> Provider:
    server = ProviderServer(host, 465, "SSL", ("password-cleartext",), "%EMAILLOCALPART%")
    return Provider("Test provider", ("localhost",), (server,), notes=("a test note",))


@pytest.mark.needs_server("dnsmasq")
def test_every_source_ranks_in_order(
    dnsmasq_factory: DnsmasqFactory,
    https_server_factory: HttpsServerFactory,
    aiosmtpd_factory: AiosmtpdFactory,
    trust_test_ca: Path,
) -> None:
    smtp = aiosmtpd_factory(tls="starttls")
    dns = localhost_dns(
        dnsmasq_factory,
        srv={"_submission._tcp.localhost": [("localhost", 2587, 0, 0)]},
        mx={"localhost": [(10, "aspmx.l.google.com")]},
    )
    web = https_server_factory({CONFIG_PATH: config_xml("localhost", 2525)})
    providers = ProviderList([make_provider(), *bundled_providers().providers])
    kwargs: dict[str, object] = {
        "resolver": dns.resolver(),
        "autoconfig_urls": urls_for(web),
        "guess_ports": {Security.STARTTLS: (smtp.port,)},
        "providers": providers,
        "timeout": 8,
    }
    result = discover(ADDRESS, exhaustive=True, **kwargs)  # type: ignore[arg-type]
    assert [(c.source, c.rank, c.host, c.port) for c in result.candidates] == [
        (SOURCE_PROVIDERS, 0, "smtp.provider.test", 465),
        (SOURCE_AUTOCONFIG, 1, "localhost", 2525),
        (SOURCE_SRV, 2, "localhost", 2587),
        ("MX → Google", 3, "smtp.gmail.com", 465),
        (SOURCE_GUESS, 4, "localhost", smtp.port),
    ]
    assert result.candidates[0].username == "someone"
    assert result.candidates[0].notes == ("a test note",)
    assert all(text == "found 1" for text in result.sources.values())
    assert result.best == result.candidates[0]

    # Without exhaustive, the provider list's answer ends the race; sources that
    # finished by then are listed too, the others are "not needed".
    quick = discover(ADDRESS, **kwargs)  # type: ignore[arg-type]
    assert quick.candidates[0].source == SOURCE_PROVIDERS
    assert [c.rank for c in quick.candidates] == sorted(c.rank for c in quick.candidates)
    assert set(quick.sources.values()) <= {
        "found 1",
        "not needed: a better-ranked source answered first",
    }
    assert quick.elapsed < 1


@pytest.mark.needs_server("dnsmasq")
def test_one_server_from_two_sources_is_listed_once_at_its_best_rank(
    dnsmasq_factory: DnsmasqFactory, aiosmtpd_factory: AiosmtpdFactory, trust_test_ca: Path
) -> None:
    smtp = aiosmtpd_factory(tls="starttls")
    dns = localhost_dns(
        dnsmasq_factory, srv={"_submission._tcp.localhost": [("localhost", smtp.port, 0, 0)]}
    )
    result = discover(
        ADDRESS,
        resolver=dns.resolver(),
        autoconfig_urls=NO_AUTOCONFIG,
        guess_ports={Security.STARTTLS: (smtp.port,)},
        exhaustive=True,
        timeout=8,
    )
    assert [(c.source, c.port) for c in result.candidates] == [(SOURCE_SRV, smtp.port)]
    assert result.sources[SOURCE_GUESS] == "found 1"


# ------------------------------------------------------------- time and cancel


@pytest.mark.needs_server("dnsmasq")
@pytest.mark.parametrize("password", [None, PASSWORD])
def test_a_silent_server_cannot_stretch_the_budget(
    dnsmasq_factory: DnsmasqFactory, silent_port: int, password: str | None
) -> None:
    dns = localhost_dns(dnsmasq_factory)
    earlier = discovery_threads()
    started = time.monotonic()
    result = discover(
        ADDRESS,
        password=password,
        resolver=dns.resolver(),
        autoconfig_urls=lambda d, a: [f"https://localhost:{silent_port}{CONFIG_PATH}"],
        guess_ports={Security.TLS: (silent_port,), Security.STARTTLS: (silent_port,)},
        timeout=3,
    )
    elapsed = time.monotonic() - started
    print(f"silent server, timeout=3, password={bool(password)}: {elapsed:.2f} s")
    assert elapsed < 4
    assert result.candidates == ()
    assert result.sources[SOURCE_AUTOCONFIG].startswith(("failed: ", "timed out"))
    assert result.sources[SOURCE_GUESS].startswith(("nothing: ", "timed out"))
    # Abandoned or not, every discovery thread ends by its own timeouts.
    assert wait_for_threads_to_end(earlier, 5) == set()


@pytest.mark.needs_server("dnsmasq")
def test_a_silent_server_cannot_stretch_the_login(
    dnsmasq_factory: DnsmasqFactory, silent_port: int
) -> None:
    dns = dnsmasq_factory(srv={"_submission._tcp.example.test": [("localhost", silent_port, 0, 0)]})
    earlier = discovery_threads()
    started = time.monotonic()
    result = discover(
        "bob@example.test",
        password=PASSWORD,
        resolver=dns.resolver(),
        autoconfig_urls=NO_AUTOCONFIG,
        guess_ports=NO_GUESSES,
        timeout=3,
    )
    elapsed = time.monotonic() - started
    print(f"silent server at login, timeout=3: {elapsed:.2f} s")
    assert elapsed < 4
    assert result.working is None
    [(candidate, reason)] = result.login_errors
    assert candidate.port == silent_port
    assert "stopped answering" in reason or "no answer in time" in reason
    assert wait_for_threads_to_end(earlier, 5) == set()


@pytest.mark.needs_server("dnsmasq")
def test_cancel_returns_promptly(dnsmasq_factory: DnsmasqFactory, silent_port: int) -> None:
    dns = localhost_dns(dnsmasq_factory)
    cancel = threading.Event()
    earlier = discovery_threads()
    timer = threading.Timer(0.3, cancel.set)
    timer.start()
    try:
        started = time.monotonic()
        result = discover(
            ADDRESS,
            resolver=dns.resolver(),
            autoconfig_urls=lambda d, a: [f"https://localhost:{silent_port}{CONFIG_PATH}"],
            guess_ports={Security.STARTTLS: (silent_port,)},
            cancel=cancel,
            timeout=10,
        )
        elapsed = time.monotonic() - started
    finally:
        timer.cancel()
        timer.join()
    print(f"cancelled after 0.3 s: returned at {elapsed:.2f} s")
    assert elapsed < 1
    assert result.sources[SOURCE_GUESS] == "cancelled"
    assert result.sources[SOURCE_PROVIDERS] == "nothing"
    assert wait_for_threads_to_end(earlier, 5) == set()


# --------------------------------------------------------------------- login


def assert_no_secret(
    result: DiscoveryResult,
    transcript: Transcript,
    events: Sequence[ProgressEvent],
    password: str,
    username: str,
) -> None:
    texts = [repr(result), transcript.render(), repr(events)]
    texts += [reason for _, reason in result.login_errors]
    for text in texts:
        for form in secret_forms(password, username):
            assert form not in text


@pytest.mark.needs_server("dnsmasq")
def test_login_against_aiosmtpd(
    dnsmasq_factory: DnsmasqFactory, aiosmtpd_factory: AiosmtpdFactory, trust_test_ca: Path
) -> None:
    smtp = aiosmtpd_factory(tls="starttls", users={ADDRESS: PASSWORD})
    dns = localhost_dns(dnsmasq_factory)
    events: list[ProgressEvent] = []
    transcript = Transcript()
    common: dict[str, object] = {
        "resolver": dns.resolver(),
        "autoconfig_urls": NO_AUTOCONFIG,
        "guess_ports": {Security.STARTTLS: (smtp.port,)},
        "on_progress": events.append,
        "transcript": transcript,
        "timeout": 8,
    }
    result = discover(ADDRESS, password=PASSWORD, **common)  # type: ignore[arg-type]
    assert result.working == result.candidates[0]
    assert result.login_errors == ()
    assert ProgressEvent(SOURCE_LOGIN, Status.WORKS, result.working.describe()) in events
    assert "logged in as someone@localhost" in transcript.render()
    assert "AUTH" in transcript.render()
    assert_no_secret(result, transcript, events, PASSWORD, ADDRESS)

    wrong = "not the password 99"
    result = discover(ADDRESS, password=wrong, **common)  # type: ignore[arg-type]
    assert result.working is None
    [(candidate, reason)] = result.login_errors
    assert candidate == result.candidates[0]
    assert "535" in reason and "password" in reason.lower()
    assert_no_secret(result, transcript, events, wrong, ADDRESS)


@pytest.mark.needs_server("postfix")
def test_login_against_postfix_found_by_srv(
    dnsmasq_factory: DnsmasqFactory,
    submission_server: SubmissionServer,
    trust_test_ca: Path,
) -> None:
    server = submission_server
    dns = dnsmasq_factory(
        srv={
            "_submissions._tcp.example.test": [("localhost", server.tls_port, 0, 0)],
            "_submission._tcp.example.test": [("localhost", server.starttls_port, 0, 0)],
        }
    )
    events: list[ProgressEvent] = []
    transcript = Transcript()
    common: dict[str, object] = {
        "resolver": dns.resolver(),
        "autoconfig_urls": NO_AUTOCONFIG,
        "guess_ports": NO_GUESSES,
        "on_progress": events.append,
        "transcript": transcript,
        "timeout": 10,
    }
    result = discover(server.username, password=server.password, **common)  # type: ignore[arg-type]
    working = result.working
    assert working is not None
    assert (working.port, working.security, working.source) == (
        server.tls_port,
        Security.TLS,
        SOURCE_SRV,
    )
    assert "outside your domain example.test" in working.warnings[0]
    assert_no_secret(result, transcript, events, server.password, server.username)

    wrong = server.password + "-wrong"
    result = discover(server.username, password=wrong, **common)  # type: ignore[arg-type]
    assert result.working is None
    # Refused once: the same password is not tried on the second server.
    [(candidate, reason)] = result.login_errors
    assert candidate.port == server.tls_port
    assert "535" in reason
    assert_no_secret(result, transcript, events, wrong, server.username)


def test_oauth_only_candidates_are_not_tried_with_a_password(
    dnsmasq_factory: DnsmasqFactory,
) -> None:
    dns = dnsmasq_factory()
    result = discover(
        "someone@outlook.com",
        password=PASSWORD,
        resolver=dns.resolver(),
        autoconfig_urls=NO_AUTOCONFIG,
        timeout=5,
    )
    assert result.working is None
    [(candidate, reason)] = result.login_errors
    assert candidate.host == "smtp-mail.outlook.com"
    assert "OAuth2" in reason and PASSWORD not in reason
    assert isinstance(candidate, Candidate)


def test_a_source_that_fails_after_a_cancel_is_cancelled_and_one_before_keeps_its_reason() -> None:
    """Decided when the source fails, not when its result is read: a failure
    that came before the person cancelled keeps its words."""
    from mailer_gui.accounts import discover as discovery

    cancel = threading.Event()

    def failing() -> discovery._Outcome:
        raise discovery._SourceFailed("the DNS server failed (SERVFAIL)")

    with pytest.raises(discovery._SourceFailed, match="SERVFAIL"):
        discovery._unless_cancelled(failing, cancel)
    cancel.set()
    with pytest.raises(discovery._Cancelled):
        discovery._unless_cancelled(failing, cancel)

    def nothing() -> discovery._Outcome:
        raise discovery._NothingHere("no SRV record")

    with pytest.raises(discovery._NothingHere):  # found nothing: that stays what it is
        discovery._unless_cancelled(nothing, cancel)
