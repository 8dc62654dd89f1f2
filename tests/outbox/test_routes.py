"""Direct delivery to the recipients' MX hosts, against real peers on loopback.

dnsmasq answers for the ``.test`` domains; aiosmtpd servers listen on 127.0.0.2,
127.0.0.3, ... all on one port, which stands in for port 25. An address where
nothing listens (127.0.0.5 and up, unless a test starts a server there) is a
mail server that is down.
"""

from __future__ import annotations

import asyncio
import io
import os
import random
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import dns.resolver
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP
from aiosmtpd.smtp import Envelope as ServerEnvelope
from aiosmtpd.smtp import Session as ServerSession

from mailer_gui.accounts.model import Account
from mailer_gui.message.addresses import parse_address, parse_address_list
from mailer_gui.message.build import build_message
from mailer_gui.message.draft import Draft
from mailer_gui.outbox.routes import (
    DNS_LIFETIME,
    NAMESERVER_VARIABLE,
    DnsSilence,
    MxHost,
    PortBlockedError,
    RouteError,
    deliver_direct,
    make_resolver,
    mx_hosts,
    parse_nameserver,
)
from mailer_gui.outbox.runner import Runner, deliver_direct_row
from mailer_gui.outbox.store import OutboxStore, State
from mailer_gui.smtp.session import Envelope, MessageResult, RecipientStatus, Session
from mailer_gui.smtp.settings import Timeouts
from mailer_gui.smtp.transcript import Transcript
from tests.servers.dnsmasq import Dnsmasq, DnsmasqFactory

MESSAGE = (
    b"From: sender@example.org\r\nTo: someone@example.test\r\nSubject: direct\r\n"
    b"Message-ID: <routes-test@example.org>\r\n\r\n" + b"a line of the body\r\n" * 200
)
TIMEOUTS = Timeouts(connect=5.0, greeting=5.0, command=5.0, data_block=5.0)
ACCEPTED, DEFERRED, REJECTED = (
    RecipientStatus.ACCEPTED,
    RecipientStatus.DEFERRED,
    RecipientStatus.REJECTED,
)


# ----------------------------------------------------------------- mail servers


@dataclass
class Received:
    mail_from: str
    rcpt_tos: tuple[str, ...]
    content: bytes
    tls: bool


@dataclass
class Recorder:
    """aiosmtpd handler: counts the conversations, keeps what it accepted."""

    rcpt_reply: str | None = None  # every RCPT gets this instead of 250
    data_reply: str | None = None  # the final "." gets this instead of 250
    hang_up_at_end: bool = False  # the final "." gets no reply: the line is closed
    rcpt_delay: float = 0.0  # seconds each RCPT waits for its reply
    end_delay: float = 0.0  # seconds the final "." waits for its reply (the message is kept)
    ehlos: int = 0
    messages: list[Received] = field(default_factory=list)

    async def handle_EHLO(
        self,
        server: SMTP,
        session: ServerSession,
        envelope: ServerEnvelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        self.ehlos += 1
        session.host_name = hostname
        return responses

    async def handle_RCPT(
        self,
        server: SMTP,
        session: ServerSession,
        envelope: ServerEnvelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        if self.rcpt_delay:
            await asyncio.sleep(self.rcpt_delay)
        if self.rcpt_reply:
            return self.rcpt_reply
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(
        self, server: SMTP, session: ServerSession, envelope: ServerEnvelope
    ) -> str:
        if self.data_reply:
            return self.data_reply
        if self.hang_up_at_end:
            assert server.transport is not None
            server.transport.close()  # what is written after this goes nowhere
        content = envelope.original_content or b""
        self.messages.append(
            Received(
                envelope.mail_from or "",
                tuple(envelope.rcpt_tos),
                bytes(content),
                session.ssl is not None,
            )
        )
        if self.end_delay:
            await asyncio.sleep(self.end_delay)
        return "250 2.0.0 OK: queued"


@dataclass
class MailServer:
    host: str
    port: int
    recorder: Recorder
    controller: Controller

    @property
    def messages(self) -> list[Received]:
        return self.recorder.messages

    @property
    def untouched(self) -> bool:
        """No client said EHLO here (aiosmtpd's own readiness probe does not)."""
        return self.recorder.ehlos == 0


class Greeter:
    """A server that only greets with ``line`` and hangs up (a 421 at connect)."""

    def __init__(self, host: str, port: int, line: bytes) -> None:
        self.line = line
        self.connections = 0
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, port))
        self._sock.listen(5)
        self._sock.settimeout(0.1)
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stopping.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                self.connections += 1
                conn.sendall(self.line)

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=5)
        self._sock.close()


def _free_shared_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.2", 0))
        port: int = sock.getsockname()[1]
        return port


class MailServers:
    """aiosmtpd servers on 127.0.0.x, all on ``self.port``."""

    def __init__(self) -> None:
        self.port = _free_shared_port()
        self._controllers: list[Controller] = []
        self._greeters: list[Greeter] = []

    def start(
        self,
        host: str,
        *,
        rcpt_reply: str | None = None,
        data_reply: str | None = None,
        hang_up_at_end: bool = False,
        rcpt_delay: float = 0.0,
        end_delay: float = 0.0,
        tls_context: ssl.SSLContext | None = None,
    ) -> MailServer:
        recorder = Recorder(rcpt_reply, data_reply, hang_up_at_end, rcpt_delay, end_delay)
        controller = Controller(
            recorder,
            hostname=host,
            port=self.port,
            server_hostname=f"mx-{host}",
            ready_timeout=10.0,
            tls_context=tls_context,
        )
        controller.start()
        self._controllers.append(controller)
        return MailServer(host, self.port, recorder, controller)

    def greeter(self, host: str, line: bytes) -> Greeter:
        greeter = Greeter(host, self.port, line)
        self._greeters.append(greeter)
        return greeter

    def stop_all(self) -> None:
        controllers, self._controllers = self._controllers, []
        greeters, self._greeters = self._greeters, []
        for controller in controllers:
            controller.stop()
        for greeter in greeters:
            greeter.stop()


@pytest.fixture
def servers() -> Iterator[MailServers]:
    started = MailServers()
    try:
        yield started
    finally:
        started.stop_all()


def send(
    resolver: dns.resolver.Resolver,
    port: int,
    *recipients: str,
    transcript: Transcript | None = None,
    rng: random.Random | None = None,
    prefix: bytes = b"",
) -> MessageResult:
    body = io.BytesIO(prefix + MESSAGE)
    body.seek(len(prefix))
    return deliver_direct(
        Envelope("sender@example.org", recipients),
        body,
        len(MESSAGE),
        resolver=resolver,
        port=port,
        transcript=transcript,
        timeouts=TIMEOUTS,
        rng=rng,
    )


def statuses(result: MessageResult) -> dict[str, RecipientStatus]:
    return {r.address: r.status for r in result.recipients}


def details(result: MessageResult) -> str:
    return " | ".join(r.text for r in result.recipients)


# --------------------------------------------------------------------- MX lookup


def test_lowest_preference_first_and_equal_preferences_shuffled(
    dnsmasq_factory: DnsmasqFactory,
) -> None:
    dns = dnsmasq_factory(
        mx={
            "eq.test": [
                (20, "d.eq.test"),
                (10, "a.eq.test"),
                (30, "e.eq.test"),
                (10, "b.eq.test"),
                (10, "c.eq.test"),
            ]
        },
        hosts={f"{n}.eq.test": f"127.0.0.{i}" for i, n in enumerate("abcde", start=10)},
    )
    resolver = dns.resolver()
    orders = set()
    for seed in range(20):
        hosts = mx_hosts("eq.test", resolver, rng=random.Random(seed))
        assert [h.preference for h in hosts] == [10, 10, 10, 20, 30]
        assert {h.name for h in hosts[:3]} == {"a.eq.test", "b.eq.test", "c.eq.test"}
        assert [h.name for h in hosts[3:]] == ["d.eq.test", "e.eq.test"]
        orders.add(tuple(h.name for h in hosts[:3]))
        again = mx_hosts("eq.test", resolver, rng=random.Random(seed))
        assert again == hosts  # a seed fixes the order: the shuffle is the rng's
    assert len(orders) > 1, "equal preferences must not always come in the same order"


def test_mx_hosts_carry_ipv4_then_ipv6_addresses(dnsmasq_factory: DnsmasqFactory) -> None:
    dns = dnsmasq_factory(
        mx={"dual.test": [(5, "mx.dual.test")]},
        hosts={"mx.dual.test": ["::2", "127.0.0.2"], "dual.test": "127.0.0.9"},
    )
    assert mx_hosts("dual.test", dns.resolver()) == [
        MxHost("mx.dual.test", 5, ("127.0.0.2", "::2"), implicit=False)
    ]


def test_internationalized_domain_is_looked_up_in_a_labels(
    dnsmasq_factory: DnsmasqFactory,
) -> None:
    dns = dnsmasq_factory(
        mx={"xn--bcher-kva.test": [(10, "mx.xn--bcher-kva.test")]},
        hosts={"mx.xn--bcher-kva.test": "127.0.0.2"},
    )
    hosts = mx_hosts("Bücher.test", dns.resolver())
    assert hosts == [MxHost("mx.xn--bcher-kva.test", 10, ("127.0.0.2",), implicit=False)]


def test_an_internationalized_domain_is_named_in_its_own_letters(
    dnsmasq_factory: DnsmasqFactory,
) -> None:
    """The outbox keeps the address in A-labels; the reason names the domain
    as the person wrote it, with that form beside it."""
    dns = dnsmasq_factory()  # knows no bücher.test: NXDOMAIN
    with pytest.raises(RouteError) as caught:
        mx_hosts("xn--bcher-kva.test", dns.resolver())
    assert "bücher.test (xn--bcher-kva.test)" in caught.value.message
    assert not caught.value.transient


# -------------------------------------------------------------- choosing the host


def test_delivers_to_the_lowest_preference_host(
    dnsmasq_factory: DnsmasqFactory, servers: MailServers
) -> None:
    dns = dnsmasq_factory(
        mx={"mx.test": [(20, "mx2.mx.test"), (10, "mx1.mx.test")]},
        hosts={"mx1.mx.test": "127.0.0.2", "mx2.mx.test": "127.0.0.3"},
    )
    first, second = servers.start("127.0.0.2"), servers.start("127.0.0.3")
    transcript = Transcript()
    result = send(dns.resolver(), servers.port, "ann@mx.test", transcript=transcript)

    assert result.outcome == "sent", details(result)
    assert [m.rcpt_tos for m in first.messages] == [("ann@mx.test",)]
    assert first.messages[0].mail_from == "sender@example.org"
    assert first.messages[0].content.endswith(b"a line of the body\r\n")
    assert second.untouched
    log = transcript.render()
    assert "* MX for mx.test: mx1.mx.test (10) 127.0.0.2, mx2.mx.test (20) 127.0.0.3" in log
    assert f"* trying 127.0.0.2 port {servers.port}" in log
    assert "127.0.0.3 port" not in log


def test_next_mx_when_the_first_is_down(
    dnsmasq_factory: DnsmasqFactory, servers: MailServers
) -> None:
    dns = dnsmasq_factory(
        mx={"down.test": [(10, "mx1.down.test"), (20, "mx2.down.test")]},
        hosts={"mx1.down.test": "127.0.0.5", "mx2.down.test": "127.0.0.3"},
    )
    backup = servers.start("127.0.0.3")
    transcript = Transcript()
    result = send(dns.resolver(), servers.port, "bo@down.test", transcript=transcript)

    assert result.outcome == "sent", details(result)
    assert [m.rcpt_tos for m in backup.messages] == [("bo@down.test",)]
    log = transcript.render()
    assert log.index("trying 127.0.0.5") < log.index("trying 127.0.0.3")


def test_next_mx_when_the_first_defers_every_recipient(
    dnsmasq_factory: DnsmasqFactory, servers: MailServers
) -> None:
    dns = dnsmasq_factory(
        mx={"busy.test": [(10, "mx1.busy.test"), (20, "mx2.busy.test")]},
        hosts={"mx1.busy.test": "127.0.0.2", "mx2.busy.test": "127.0.0.3"},
    )
    busy = servers.start("127.0.0.2", rcpt_reply="451 4.7.1 Greylisted, try again later")
    backup = servers.start("127.0.0.3")
    result = send(dns.resolver(), servers.port, "cy@busy.test", "di@busy.test")

    assert statuses(result) == {"cy@busy.test": ACCEPTED, "di@busy.test": ACCEPTED}
    assert busy.recorder.ehlos == 1 and busy.messages == []
    assert [m.rcpt_tos for m in backup.messages] == [("cy@busy.test", "di@busy.test")]


def test_next_mx_gets_the_whole_body_after_a_4xx_at_the_end_of_data(
    dnsmasq_factory: DnsmasqFactory, servers: MailServers
) -> None:
    dns = dnsmasq_factory(
        mx={"late.test": [(10, "mx1.late.test"), (20, "mx2.late.test")]},
        hosts={"mx1.late.test": "127.0.0.2", "mx2.late.test": "127.0.0.3"},
    )
    servers.start("127.0.0.2", data_reply="452 4.3.1 Insufficient system storage")
    backup = servers.start("127.0.0.3")
    # The body starts after unrelated bytes: each attempt reads from that start again.
    result = send(dns.resolver(), servers.port, "ed@late.test", prefix=b"NOT PART OF IT")

    assert result.outcome == "sent", details(result)
    assert len(backup.messages) == 1
    assert backup.messages[0].content.replace(b"\r\n", b"\n") == MESSAGE.replace(b"\r\n", b"\n")


def test_next_mx_after_a_421_greeting(
    dnsmasq_factory: DnsmasqFactory, servers: MailServers
) -> None:
    dns = dnsmasq_factory(
        mx={"greet.test": [(10, "mx1.greet.test"), (20, "mx2.greet.test")]},
        hosts={"mx1.greet.test": "127.0.0.2", "mx2.greet.test": "127.0.0.3"},
    )
    refusing = servers.greeter("127.0.0.2", b"421 4.3.2 Too busy, come back later\r\n")
    backup = servers.start("127.0.0.3")
    result = send(dns.resolver(), servers.port, "fi@greet.test")

    assert result.outcome == "sent", details(result)
    assert refusing.connections == 1
    assert [m.rcpt_tos for m in backup.messages] == [("fi@greet.test",)]


def test_a_definite_answer_ends_the_search(
    dnsmasq_factory: DnsmasqFactory, servers: MailServers
) -> None:
    dns = dnsmasq_factory(
        mx={"strict.test": [(10, "mx1.strict.test"), (20, "mx2.strict.test")]},
        hosts={"mx1.strict.test": "127.0.0.2", "mx2.strict.test": "127.0.0.3"},
    )
    servers.start("127.0.0.2", rcpt_reply="550 5.1.1 No such user here")
    backup = servers.start("127.0.0.3")
    result = send(dns.resolver(), servers.port, "gus@strict.test")

    assert statuses(result) == {"gus@strict.test": REJECTED}
    assert "No such user here" in details(result)
    assert backup.untouched


def test_broken_starttls_falls_back_to_plain_text_on_the_same_host(
    dnsmasq_factory: DnsmasqFactory, servers: MailServers
) -> None:
    dns = dnsmasq_factory(
        mx={"tls.test": [(10, "mx.tls.test")]}, hosts={"mx.tls.test": "127.0.0.2"}
    )
    # A server context without a certificate: STARTTLS is offered, every handshake fails.
    server = servers.start("127.0.0.2", tls_context=ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER))
    transcript = Transcript()
    result = send(dns.resolver(), servers.port, "hal@tls.test", transcript=transcript)

    assert result.outcome == "sent", details(result)
    assert [(m.rcpt_tos, m.tls) for m in server.messages] == [(("hal@tls.test",), False)]
    assert "trying again without TLS" in transcript.render()


# -------------------------------------------------------------- implicit MX, A


def test_no_mx_records_means_the_domain_itself(
    dnsmasq_factory: DnsmasqFactory, servers: MailServers
) -> None:
    dns = dnsmasq_factory(hosts={"plain.test": "127.0.0.4"})
    server = servers.start("127.0.0.4")
    resolver = dns.resolver()

    assert mx_hosts("plain.test", resolver) == [
        MxHost("plain.test", 0, ("127.0.0.4",), implicit=True)
    ]
    result = send(resolver, servers.port, "ivy@plain.test")
    assert result.outcome == "sent", details(result)
    assert [m.rcpt_tos for m in server.messages] == [("ivy@plain.test",)]


def test_never_the_domains_address_when_an_mx_exists(
    dnsmasq_factory: DnsmasqFactory, servers: MailServers
) -> None:
    dns = dnsmasq_factory(
        mx={"mxonly.test": [(10, "mx.mxonly.test")]},
        hosts={"mx.mxonly.test": "127.0.0.5", "mxonly.test": "127.0.0.4"},
    )
    decoy = servers.start("127.0.0.4")  # the domain's A: must see nothing
    result = send(dns.resolver(), servers.port, "jo@mxonly.test")

    assert statuses(result) == {"jo@mxonly.test": DEFERRED}
    assert decoy.untouched and decoy.messages == []


def test_mx_without_address_fails_and_still_ignores_the_domains_address(
    dnsmasq_factory: DnsmasqFactory, servers: MailServers
) -> None:
    dns = dnsmasq_factory(
        mx={"broken.test": [(10, "gone.broken.test")]}, hosts={"broken.test": "127.0.0.4"}
    )
    decoy = servers.start("127.0.0.4")
    result = send(dns.resolver(), servers.port, "kim@broken.test")

    assert statuses(result) == {"kim@broken.test": REJECTED}
    assert "gone.broken.test" in details(result) and "no address" in details(result)
    assert decoy.untouched


@pytest.mark.parametrize(
    "records",
    [
        {"mx": {"null.test": [(0, ".")]}},  # --mx-host=null.test,.,0
        {"rr": [("null.test", 15, "000000")]},  # --dns-rr: preference 0, root name
    ],
    ids=["mx-host", "dns-rr"],
)
def test_null_mx_fails_permanently_without_connecting(
    dnsmasq_factory: DnsmasqFactory, servers: MailServers, records: dict[str, object]
) -> None:
    dns = dnsmasq_factory(hosts={"null.test": "127.0.0.4"}, **records)  # type: ignore[arg-type]
    decoy = servers.start("127.0.0.4")
    resolver = dns.resolver()

    with pytest.raises(RouteError) as caught:
        mx_hosts("null.test", resolver)
    assert caught.value.permanent and caught.value.domain == "null.test"
    result = send(resolver, servers.port, "lou@null.test")
    assert statuses(result) == {"lou@null.test": REJECTED}
    assert "null.test says it accepts no mail" in details(result)
    assert "556 5.1.10" in details(result)
    assert isinstance(result.error, RouteError) and result.error.permanent
    assert decoy.untouched


def test_a_domain_that_does_not_exist_fails_permanently(
    dnsmasq_factory: DnsmasqFactory, servers: MailServers
) -> None:
    dns = dnsmasq_factory(hosts={"real.test": "127.0.0.4"})
    with pytest.raises(RouteError) as caught:
        mx_hosts("nosuch.test", dns.resolver())
    assert caught.value.permanent
    assert "nosuch.test does not exist" in caught.value.message

    result = send(dns.resolver(), servers.port, "max@nosuch.test")
    assert statuses(result) == {"max@nosuch.test": REJECTED}
    assert "does not exist" in details(result)


# -------------------------------------------------------------- DNS not answering


@pytest.fixture
def silent_nameserver() -> Iterator[int]:
    """A UDP port that takes queries and never answers."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


@pytest.mark.parametrize("where", ["silent", "closed"])
def test_dns_timeout_defers(silent_nameserver: int, servers: MailServers, where: str) -> None:
    if where == "silent":
        port = silent_nameserver
    else:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]  # closed again: nothing listens there
    resolver = make_resolver({NAMESERVER_VARIABLE: f"127.0.0.1:{port}"})
    resolver.timeout, resolver.lifetime = 0.3, 0.6

    started = time.monotonic()
    with pytest.raises(RouteError) as caught:
        mx_hosts("slow.test", resolver)
    assert caught.value.transient
    transcript = Transcript()
    result = send(resolver, servers.port, "ned@slow.test", transcript=transcript)
    assert time.monotonic() - started < 5
    assert statuses(result) == {"ned@slow.test": DEFERRED}
    # The session log says what it waited for, before the wait.
    notes = [r.text for r in transcript.records]
    assert notes[0] == "looking up the mail servers (MX) of slow.test"
    assert notes[1].startswith("no mail route to slow.test")
    assert "try again later" in details(result)
    assert isinstance(result.error, RouteError) and result.error.transient


def test_a_nameserver_that_does_not_answer_is_waited_for_once_a_message(
    silent_nameserver: int, servers: MailServers
) -> None:
    """Three domains, no answer for the first: the others are not looked up
    (each would wait as long again); all three are deferred."""
    resolver = make_resolver({NAMESERVER_VARIABLE: f"127.0.0.1:{silent_nameserver}"})
    resolver.timeout, resolver.lifetime = 0.3, 0.6
    transcript = Transcript()
    result = send(
        resolver, servers.port, "a@one.test", "b@two.test", "c@three.test", transcript=transcript
    )
    assert set(statuses(result).values()) == {DEFERRED}
    notes = [r.text for r in transcript.records]
    assert [n for n in notes if n.startswith("looking up")] == [
        "looking up the mail servers (MX) of one.test"
    ]
    assert "not looking up two.test: no DNS server answered for one.test" in notes
    assert "not looking up three.test: no DNS server answered for one.test" in notes
    two = next(r for r in result.recipients if r.address == "b@two.test")
    assert "no DNS server answered for one.test just before" in two.detail

    # Domains in A-labels (as the outbox keeps them) are named in their own letters.
    result = send(resolver, servers.port, "a@xn--bcher-kva.test", "b@xn--mnchen-3ya.test")
    later = next(r for r in result.recipients if r.address == "b@xn--mnchen-3ya.test")
    assert later.detail.startswith(
        "Could not look up the mail servers for münchen.test: no DNS server answered for "
        "bücher.test just before"
    ), later.detail


def runner(store: OutboxStore, account: Account) -> Runner:
    """A runner that delivers direct, as the command line's does."""
    return Runner(
        store, lambda name: account, credentials=lambda a: None, direct=deliver_direct_row
    )


def test_an_uncertain_domain_leaves_the_answers_of_the_others_standing(
    dnsmasq_factory: DnsmasqFactory, servers: MailServers, tmp_path, monkeypatch
) -> None:
    """good.test takes the message; drop.test's server hangs up after the final
    ".": the message is uncertain, for drop.test's recipient only. Sent again
    on the person's word, it goes to that recipient alone, never to good.test's."""
    dns = dnsmasq_factory(
        mx={"good.test": [(10, "mx.good.test")], "drop.test": [(10, "mx.drop.test")]},
        hosts={"mx.good.test": "127.0.0.2", "mx.drop.test": "127.0.0.3"},
    )
    monkeypatch.setenv(NAMESERVER_VARIABLE, dns.nameserver)
    good = servers.start("127.0.0.2")
    dropping = servers.start("127.0.0.3", hang_up_at_end=True)
    store = OutboxStore(tmp_path / "outbox.sqlite3", tmp_path / "spool")
    account = Account(name="mx", email="ann@example.org", kind="direct", port=servers.port)
    draft = Draft(
        sender=parse_address("ann@example.org"),
        to=tuple(parse_address_list(["a@good.test", "b@drop.test"])),
        subject="two domains",
        body="text",
    )
    built = build_message(draft, spool_dir=tmp_path)
    message = store.enqueue(built, account="mx", subject=draft.subject)
    try:
        runner(store, account).deliver_now()
        row = store.get(message)
        assert row.state is State.UNCERTAIN
        assert {r.address: r.status for r in row.recipients} == {
            "a@good.test": "accepted",
            "b@drop.test": "unknown",  # in doubt: never sent again by itself
        }
        assert [m.rcpt_tos for m in good.messages] == [("a@good.test",)]
        assert store.resolve_uncertain(message, sent=False) is State.QUEUED
        assert store.get(message).pending == ("b@drop.test",)
        dropping.recorder.hang_up_at_end = False
        runner(store, account).deliver_now()
        assert store.get(message).state is State.SENT
        assert [m.rcpt_tos for m in good.messages] == [("a@good.test",)]  # not sent twice
        assert dropping.messages[-1].rcpt_tos == ("b@drop.test",)
    finally:
        store.close()


def direct_home(tmp_path, servers: MailServers, *to: str) -> tuple[Path, OutboxStore, Account, int]:
    """A home with a direct-delivery account (MX hosts on ``servers.port``) and
    one message to ``to`` queued in its outbox: (home, outbox, account, message)."""
    from mailer_gui.accounts.store import AccountStore
    from mailer_gui.paths import resolve_paths

    home = tmp_path / "home"
    paths = resolve_paths(home)
    account = Account(name="mx", email="ann@example.org", kind="direct", port=servers.port)
    AccountStore(paths.accounts_file).add(account)
    store = OutboxStore(paths.database, paths.spool_dir)
    draft = Draft(
        sender=parse_address("ann@example.org"), to=tuple(parse_address_list(list(to))),
        subject="several domains", body="text",
    )  # fmt: skip
    message = store.enqueue(build_message(draft, spool_dir=tmp_path), account="mx", subject="x")
    return home, store, account, message


def flush_killed_once(home: Path, reached: Callable[[], bool]) -> None:
    """`outbox flush` in a process of its own, SIGKILLed half a second after
    ``reached()`` (at most 30 s)."""
    flush = subprocess.Popen(
        [sys.executable, "-m", "mailer_gui", "--home", str(home), "outbox", "flush"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while not reached() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert reached(), "the flush never got there"
        time.sleep(0.5)  # what came before is written; the flush waits on a server
    finally:
        os.kill(flush.pid, signal.SIGKILL)
        flush.wait(timeout=10)


def test_a_flush_killed_between_two_domains_sends_neither_again(
    dnsmasq_factory: DnsmasqFactory, servers: MailServers, tmp_path, monkeypatch
) -> None:
    """good.test took the message; Mailer is killed (SIGKILL) while it waits
    on slow.test's server, before that domain's ".": the message is queued
    again for slow.test's recipient alone, not uncertain, and good.test's
    recipient never gets it twice."""
    dns = dnsmasq_factory(
        mx={"good.test": [(10, "mx.good.test")], "slow.test": [(10, "mx.slow.test")]},
        hosts={"mx.good.test": "127.0.0.2", "mx.slow.test": "127.0.0.3"},
    )
    monkeypatch.setenv(NAMESERVER_VARIABLE, dns.nameserver)
    good = servers.start("127.0.0.2")
    slow = servers.start("127.0.0.3", rcpt_delay=30.0)
    home, store, account, message = direct_home(tmp_path, servers, "a@good.test", "b@slow.test")
    flush_killed_once(home, lambda: bool(good.messages and slow.recorder.ehlos))
    try:
        assert dict(store.recover()) == {message: State.QUEUED}
        row = store.get(message)
        assert {r.address: r.status for r in row.recipients} == {
            "a@good.test": "accepted",
            "b@slow.test": "pending",
        }
        slow.recorder.rcpt_delay = 0.0
        runner(store, account).deliver_now()
        assert [r.status for r in store.get(message).recipients] == ["accepted"] * 2
        assert [m.rcpt_tos for m in good.messages] == [("a@good.test",)]  # never twice
        assert [m.rcpt_tos for m in slow.messages] == [("b@slow.test",)]
    finally:
        store.close()


@pytest.mark.parametrize("answer", ["sent", "resend"])
def test_killed_while_one_domain_holds_its_reply_only_that_domain_is_in_doubt(
    dnsmasq_factory: DnsmasqFactory, servers: MailServers, tmp_path, monkeypatch, answer: str
) -> None:
    """good.test took it; hold.test's server holds its reply to the "." when
    Mailer is killed; third.test was never begun. Only hold.test's recipient
    is unknown: "it arrived" (--sent) still sends to third.test, "send again"
    (--resend) sends to both, and good.test never gets it twice."""
    dns = dnsmasq_factory(
        mx={f"{d}.test": [(10, f"mx.{d}.test")] for d in ("good", "hold", "third")},
        hosts={"mx.good.test": "127.0.0.2", "mx.hold.test": "127.0.0.3",
               "mx.third.test": "127.0.0.4"},
    )  # fmt: skip
    monkeypatch.setenv(NAMESERVER_VARIABLE, dns.nameserver)
    good = servers.start("127.0.0.2")
    hold = servers.start("127.0.0.3", end_delay=30.0)
    third = servers.start("127.0.0.4")
    home, store, account, message = direct_home(
        tmp_path, servers, "a@good.test", "b@hold.test", "c@third.test"
    )
    flush_killed_once(home, lambda: bool(good.messages and hold.messages))
    try:
        assert dict(store.recover()) == {message: State.UNCERTAIN}
        row = store.get(message)
        assert {r.address: r.status for r in row.recipients} == {
            "a@good.test": "accepted",
            "b@hold.test": "unknown",
            "c@third.test": "pending",  # never sent it: not in doubt
        }
        assert store.resolve_uncertain(message, sent=answer == "sent") is State.QUEUED
        hold.recorder.end_delay = 0.0
        runner(store, account).deliver_now()
        row = store.get(message)
        assert row.state is State.SENT
        assert [r.text for r in row.recipients][1] == (
            "marked as sent" if answer == "sent" else "OK: queued"
        )
        assert [m.rcpt_tos for m in good.messages] == [("a@good.test",)]  # never twice
        assert [m.rcpt_tos for m in third.messages] == [("c@third.test",)]
        assert len(hold.messages) == (1 if answer == "sent" else 2)
    finally:
        store.close()


@pytest.fixture
def silent_cli(silent_nameserver: int, tmp_path, monkeypatch, capsys):
    """(home, run): the command line in-process, on its own home, asking a
    nameserver that never answers (lookups given up after 0.6 s)."""
    import sys

    from mailer_gui import cli
    from mailer_gui.outbox import routes

    monkeypatch.setattr(routes, "DNS_TIMEOUT", 0.3)
    monkeypatch.setattr(routes, "DNS_LIFETIME", 0.6)
    monkeypatch.setenv(NAMESERVER_VARIABLE, f"127.0.0.1:{silent_nameserver}")
    home = tmp_path / "home"

    def run(*args: str) -> tuple[int, str]:
        monkeypatch.setattr(sys, "stdin", io.StringIO(""))
        code = cli.main(["--home", str(home), *args])
        out, err = capsys.readouterr()
        return code, out + err

    return home, run


def test_a_flush_waits_for_a_nameserver_that_does_not_answer_once(silent_cli) -> None:
    """Three messages queued for a direct account, the nameserver silent: the
    first message waits for its lookup and is deferred; the two after it are
    not tried (each would wait as long) but wait for its next try, untried,
    as behind a busy server; the flush says why. None is lost."""
    from mailer_gui import cli

    home, run = silent_cli

    assert run("accounts", "add", "mx", "--kind", "direct", "--email", "ann@example.org")[0] == 0
    for number, domain in enumerate(("one.test", "two.test", "three.test")):
        code, said = run(
            "send", "--later", "--to", f"bob@{domain}", "--subject", f"m{number}", "--body", "hi"
        )
        assert code == 0, said
    code, said = run("outbox", "flush")
    assert code == cli.EX_TEMPFAIL, said
    assert "This run: 1 deferred, 2 queued." in said
    assert "messages 2, 3 were not tried: message 1 of mx was put off just before" in said

    store = OutboxStore(home / "data" / "outbox.sqlite3", home / "data" / "spool")
    try:
        first, *others = sorted(store.messages(), key=lambda row: row.id)
        (attempt,) = store.attempts(first.id)
        assert first.state is State.DEFERRED
        assert "no DNS server answered" in (first.last_error or "")
        for row in others:
            assert (row.state, row.attempts, row.due_at) == (State.QUEUED, 0, first.due_at)
            assert store.attempts(row.id) == []
    finally:
        store.close()
    assert "looking up the mail servers (MX) of one.test" in attempt.transcript


def test_a_message_to_an_address_literal_is_not_held_by_a_silent_dns_server(
    silent_cli, servers: MailServers
) -> None:
    """The DNS server answers nothing: messages that need a lookup wait; one to
    an address literal needs none and goes in the same flush."""
    from mailer_gui import cli

    home, run = silent_cli
    literal = servers.start("127.0.0.4")

    code, said = run(
        "accounts", "add", "mx", "--kind", "direct", "--email", "ann@example.org",
        "--port", str(servers.port),
    )  # fmt: skip
    assert code == 0, said
    for to in ("bob@one.test", "c@[127.0.0.4]", "d@two.test"):
        code, said = run("send", "--later", "--to", to, "--subject", "s", "--body", "hi")
        assert code == 0, said
    code, said = run("outbox", "flush")
    assert code == cli.EX_TEMPFAIL, said
    assert [m.rcpt_tos for m in literal.messages] == [("c@[127.0.0.4]",)]
    store = OutboxStore(home / "data" / "outbox.sqlite3", home / "data" / "spool")
    try:
        states = [row.state for row in sorted(store.messages(), key=lambda row: row.id)]
    finally:
        store.close()
    assert states == [State.DEFERRED, State.SENT, State.QUEUED]


def test_one_domain_whose_own_dns_does_not_answer_keeps_no_other_domain_waiting(
    dnsmasq_factory: DnsmasqFactory, silent_nameserver: int, servers: MailServers
) -> None:
    """The DNS server answers, but gets no answer for slow.test (its own DNS
    servers are down: dnsmasq passes it to a silent one). That domain waits;
    good.test, after it in the same message, and the next message, are
    delivered as usual. So is an address literal after a silent nameserver."""
    dns = dnsmasq_factory(
        mx={"good.test": [(10, "mx.good.test")]},
        hosts={"mx.good.test": "127.0.0.2"},
        extra_args=[f"--server=/slow.test/127.0.0.1#{silent_nameserver}"],
    )
    server = servers.start("127.0.0.2")
    resolver = dns.resolver(lifetime=0.6)
    resolver.timeout = 0.3
    silence = DnsSilence()
    transcript = Transcript()
    first = deliver_direct(
        Envelope("sender@example.org", ("a@slow.test", "b@good.test")),
        io.BytesIO(MESSAGE), len(MESSAGE), resolver=resolver, port=servers.port,
        transcript=transcript, timeouts=TIMEOUTS, silence=silence,
    )  # fmt: skip
    assert statuses(first) == {"a@slow.test": DEFERRED, "b@good.test": ACCEPTED}
    slow = next(r for r in first.recipients if r.address == "a@slow.test")
    assert "the DNS server got no answer for it" in slow.detail
    assert "its own DNS servers may be down" in slow.detail
    assert silence.recent() is None  # nothing kept from the next message
    second = deliver_direct(
        Envelope("sender@example.org", ("c@good.test",)), io.BytesIO(MESSAGE), len(MESSAGE),
        resolver=resolver, port=servers.port, timeouts=TIMEOUTS, silence=silence,
    )  # fmt: skip
    assert statuses(second) == {"c@good.test": ACCEPTED}
    assert [m.rcpt_tos for m in server.messages] == [("b@good.test",), ("c@good.test",)]

    # A silent server: the next domain is not looked up, but a literal needs no lookup.
    literal = servers.start("127.0.0.3")
    dead = make_resolver({NAMESERVER_VARIABLE: f"127.0.0.1:{silent_nameserver}"})
    dead.timeout, dead.lifetime = 0.3, 0.6
    result = send(dead, servers.port, "a@dead.test", "b@[127.0.0.3]")
    assert statuses(result) == {"a@dead.test": DEFERRED, "b@[127.0.0.3]": ACCEPTED}
    assert [m.rcpt_tos for m in literal.messages] == [("b@[127.0.0.3]",)]


def test_refused_lookup_defers(dnsmasq_factory: DnsmasqFactory, servers: MailServers) -> None:
    # dnsmasq knows only .test; it REFUSES other names (no upstream): not a "no".
    dns = dnsmasq_factory()
    result = send(dns.resolver(), servers.port, "olga@example.org")
    assert statuses(result) == {"olga@example.org": DEFERRED}
    assert "DNS servers failed to answer" in details(result)


# ---------------------------------------------------------------- several domains


def test_each_domain_goes_to_its_own_servers(
    dnsmasq_factory: DnsmasqFactory, servers: MailServers
) -> None:
    dns = dnsmasq_factory(
        mx={"a.test": [(10, "mx.a.test")], "b.test": [(10, "mx.b.test")]},
        hosts={"mx.a.test": "127.0.0.2", "mx.b.test": "127.0.0.3"},
    )
    server_a, server_b = servers.start("127.0.0.2"), servers.start("127.0.0.3")
    result = send(
        dns.resolver(),
        servers.port,
        "alice@a.test",
        "bob@B.Test",
        "carol@A.TEST",
        "dan@nosuch.test",
    )

    assert [r.address for r in result.recipients] == [
        "alice@a.test",
        "bob@B.Test",
        "carol@A.TEST",
        "dan@nosuch.test",
    ]
    assert statuses(result) == {
        "alice@a.test": ACCEPTED,
        "bob@B.Test": ACCEPTED,
        "carol@A.TEST": ACCEPTED,
        "dan@nosuch.test": REJECTED,
    }
    assert result.outcome == "partial" and result.error is None
    assert [m.rcpt_tos for m in server_a.messages] == [("alice@a.test", "carol@A.TEST")]
    assert [m.rcpt_tos for m in server_b.messages] == [("bob@B.Test",)]


def test_says_port_25_is_probably_blocked_when_nothing_answers_anywhere(
    dnsmasq_factory: DnsmasqFactory, servers: MailServers
) -> None:
    dns = dnsmasq_factory(
        mx={"a.test": [(10, "mx.a.test")], "b.test": [(10, "mx.b.test")]},
        hosts={"mx.a.test": "127.0.0.5", "mx.b.test": "127.0.0.6"},
    )
    result = send(dns.resolver(), servers.port, "pia@a.test", "quinn@b.test")

    assert statuses(result) == {"pia@a.test": DEFERRED, "quinn@b.test": DEFERRED}
    for recipient in result.recipients:
        assert f"probably blocks outgoing port {servers.port}" in recipient.detail
        assert "relay account" in recipient.detail
        assert "submission server" in recipient.detail
    assert "a.test: 127.0.0.5: connection refused; nor for b.test" in result.recipients[0].detail
    assert "b.test: 127.0.0.6: connection refused; nor for a.test" in result.recipients[1].detail
    assert isinstance(result.error, PortBlockedError) and result.error.transient
    assert result.error.port == servers.port


def test_one_domain_whose_servers_refuse_the_connection_is_not_blamed_on_the_port(
    dnsmasq_factory: DnsmasqFactory, servers: MailServers
) -> None:
    """Its servers answered (with a refusal): that is the domain's trouble. The
    port-blocked advice would send the person to set up a relay for nothing."""
    dns = dnsmasq_factory(
        mx={"a.test": [(10, "mx1.a.test"), (20, "mx2.a.test")]},
        hosts={"mx1.a.test": "127.0.0.5", "mx2.a.test": "127.0.0.6"},
    )
    result = send(dns.resolver(), servers.port, "pia@a.test")
    (pia,) = result.recipients
    assert pia.status is DEFERRED
    assert pia.detail.startswith(
        f"Could not connect to any mail server for a.test on port {servers.port}"
    )
    assert "127.0.0.5: connection refused; 127.0.0.6: connection refused" in pia.detail
    assert "blocks" not in pia.detail and not isinstance(result.error, PortBlockedError)


def test_every_session_is_shown_to_the_caller_before_it_opens(
    dnsmasq_factory: DnsmasqFactory, servers: MailServers
) -> None:
    # The runner keeps the session it is shown, so that Cancel can abort() it.
    dns = dnsmasq_factory(
        mx={"seen.test": [(10, "mx1.seen.test"), (20, "mx2.seen.test")]},
        hosts={"mx1.seen.test": "127.0.0.5", "mx2.seen.test": "127.0.0.3"},
    )
    servers.start("127.0.0.3")
    sessions: list[Session] = []
    result = deliver_direct(
        Envelope("sender@example.org", ("vic@seen.test",)),
        io.BytesIO(MESSAGE),
        len(MESSAGE),
        resolver=dns.resolver(),
        port=servers.port,
        timeouts=TIMEOUTS,
        on_session=sessions.append,
    )
    assert result.outcome == "sent", details(result)
    assert [s.settings.host for s in sessions] == ["127.0.0.5", "127.0.0.3"]
    assert all(s.settings.opportunistic_tls for s in sessions)


def test_an_unreachable_domain_is_not_blamed_on_the_port_when_another_got_through(
    dnsmasq_factory: DnsmasqFactory, servers: MailServers
) -> None:
    dns = dnsmasq_factory(
        mx={"a.test": [(10, "mx.a.test")], "b.test": [(10, "mx.b.test")]},
        hosts={"mx.a.test": "127.0.0.5", "mx.b.test": "127.0.0.3"},
    )
    server_b = servers.start("127.0.0.3")
    result = send(dns.resolver(), servers.port, "rae@a.test", "sam@b.test")

    assert statuses(result) == {"rae@a.test": DEFERRED, "sam@b.test": ACCEPTED}
    rae = result.recipients[0]
    assert "Could not connect to any mail server for a.test" in rae.detail
    assert "blocks" not in rae.detail
    assert [m.rcpt_tos for m in server_b.messages] == [("sam@b.test",)]


def test_each_refusal_is_explained_with_the_server_that_gave_it(
    dnsmasq_factory: DnsmasqFactory, servers: MailServers
) -> None:
    """Several domains, several servers in one attempt: the explanation of a
    refusal names the server it came from, not the last one connected to."""
    from mailer_gui.message.inspect import read_transcript, recipient_explanation

    dns = dnsmasq_factory(
        mx={"a.test": [(10, "mx.a.test")], "b.test": [(10, "mx.b.test")]},
        hosts={"mx.a.test": "127.0.0.6", "mx.b.test": "127.0.0.7"},
    )
    servers.start("127.0.0.6", rcpt_reply="550 5.1.1 No such user here")
    servers.start("127.0.0.7")
    transcript = Transcript()
    result = send(
        dns.resolver(), servers.port, "nobody@a.test", "bob@b.test", transcript=transcript
    )
    assert statuses(result) == {"nobody@a.test": REJECTED, "bob@b.test": ACCEPTED}
    conversation = read_transcript(transcript.render())
    assert conversation.hosts == ("127.0.0.6", "127.0.0.7")
    assert conversation.host == "127.0.0.7"  # the last one
    explanation = recipient_explanation(
        "nobody@a.test", 550, "5.1.1", "No such user here", conversation
    )
    assert explanation is not None
    assert "127.0.0.6" in explanation.summary and "127.0.0.7" not in explanation.summary
    (refusal,) = conversation.problems
    assert refusal.host == "127.0.0.6"
    assert "127.0.0.6" in conversation.explain(refusal).summary


def test_an_address_literal_needs_no_dns(servers: MailServers) -> None:
    server = servers.start("127.0.0.2")
    resolver = make_resolver({NAMESERVER_VARIABLE: "127.0.0.1:9"})
    result = send(resolver, servers.port, "tess@[127.0.0.2]")
    assert result.outcome == "sent", details(result)
    assert [m.rcpt_tos for m in server.messages] == [("tess@[127.0.0.2]",)]


# ------------------------------------------------------------------- the resolver


def test_make_resolver_uses_mailer_gui_nameserver(
    dnsmasq_factory: DnsmasqFactory, servers: MailServers
) -> None:
    dns: Dnsmasq = dnsmasq_factory(
        mx={"env.test": [(10, "mx.env.test")]}, hosts={"mx.env.test": "127.0.0.2"}
    )
    server = servers.start("127.0.0.2")
    resolver = make_resolver({NAMESERVER_VARIABLE: dns.nameserver})

    assert resolver.nameservers == ["127.0.0.1"]
    assert resolver.port == dns.port
    assert resolver.lifetime <= DNS_LIFETIME
    result = send(resolver, servers.port, "uma@env.test")
    assert result.outcome == "sent", details(result)
    assert len(server.messages) == 1
    assert "env.test" in dns.log_text()  # the query really went to dnsmasq


def test_make_resolver_without_the_variable_is_the_systems_bounded() -> None:
    resolver = make_resolver({})
    assert resolver.lifetime <= DNS_LIFETIME
    assert resolver.timeout <= resolver.lifetime


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("127.0.0.1:5353", ("127.0.0.1", 5353)),
        (" 192.0.2.53 ", ("192.0.2.53", 53)),
        ("[::1]:5353", ("::1", 5353)),
        ("[::1]", ("::1", 53)),
        ("2001:db8::53", ("2001:db8::53", 53)),
    ],
)
def test_parse_nameserver(value: str, expected: tuple[str, int]) -> None:
    assert parse_nameserver(value) == expected


@pytest.mark.parametrize("value", ["localhost:53", "127.0.0.1:0", "127.0.0.1:x", "[::1", ":53"])
def test_parse_nameserver_refuses_what_is_not_an_address(value: str) -> None:
    with pytest.raises(ValueError, match=NAMESERVER_VARIABLE):
        parse_nameserver(value)


def test_cli_direct_account_delivers_through_the_outbox(
    dnsmasq_factory, servers: MailServers, tmp_path, monkeypatch, capsys
) -> None:
    """`accounts add --kind direct` then `send`: MX lookup, fallback, delivery."""
    import json
    import sys

    from mailer_gui import cli

    dns_server = dnsmasq_factory(
        mx={"direct.test": [(10, "mx1.direct.test"), (20, "mx2.direct.test")]},
        hosts={"mx1.direct.test": "127.0.0.5", "mx2.direct.test": "127.0.0.3"},
    )
    backup = servers.start("127.0.0.3")  # the first MX (127.0.0.5) is down
    monkeypatch.setenv("MAILER_GUI_NAMESERVER", dns_server.nameserver)
    home = tmp_path / "home"

    def run(*args: str) -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "stdin", io.StringIO(""))
        code = cli.main(["--home", str(home), *args])
        out, err = capsys.readouterr()
        return code, out, err

    code, out, err = run(
        "accounts", "add", "mx", "--kind", "direct", "--email", "ann@example.org",
        "--port", str(servers.port),
    )  # fmt: skip
    assert code == 0, err
    assert "directly" in out
    code, out, err = run(
        "send", "--to", "bob@direct.test", "--subject", "direct", "--body", "hi", "--json", "-v"
    )
    assert code == 0, err
    assert json.loads(out)["state"] == "sent"
    assert "* MX for direct.test" in err and "could not connect to 127.0.0.5" in err
    assert backup.recorder.messages  # delivered to the second MX

    code, out, err = run("send", "--to", "x@null-domain.test", "--subject", "s", "--body", "b")
    assert code == cli.EX_UNAVAILABLE
    assert "does not exist" in (out + err)


def test_the_limit_named_for_a_message_too_big_is_that_of_the_server_that_refused_it() -> None:
    """Direct delivery to two domains whose servers state different limits: the
    combined result names the limit of a server that refused the message as too big."""
    from mailer_gui.outbox.routes import _combine, _DomainOutcome
    from mailer_gui.smtp.replies import Reply
    from mailer_gui.smtp.session import RecipientResult, too_big_reason

    def outcome(domain: str, limit: int, reply: Reply) -> _DomainOutcome:
        status = RecipientStatus.REJECTED if reply.code >= 500 else RecipientStatus.ACCEPTED
        result = MessageResult(
            (RecipientResult(f"someone@{domain}", status, reply),), size_limit=limit
        )
        return _DomainOutcome(domain, result, attempted=True, connected=True)

    too_big = Reply(552, "5.3.4", ("Message size exceeds fixed limit",))
    unknown = Reply(550, "5.1.1", ("No such user",))
    envelope = Envelope("ann@example.org", ("someone@a.example", "someone@b.example"))
    combined = _combine(
        envelope,
        [outcome("a.example", 50_000_000, unknown), outcome("b.example", 10_000_000, too_big)],
    )
    assert combined.size_limit == 10_000_000
    # One recipient was refused for another reason: each keeps its own words.
    assert too_big_reason(combined, 20_000_000) is None
    accepted = Reply(250, "2.0.0", ("Ok",))
    both = _combine(
        envelope,
        [outcome("a.example", 50_000_000, accepted), outcome("b.example", 10_000_000, too_big)],
    )
    assert both.size_limit == 10_000_000
    assert too_big_reason(both, 20_000_000) is None  # it went to a.example
    refused = _combine(
        envelope,
        [outcome("a.example", 50_000_000, too_big), outcome("b.example", 0, too_big)],
    )
    assert "stated limit is 47.7 MB (SIZE 50000000)" in (too_big_reason(refused, 60_000_000) or "")


def test_a_nameserver_setting_that_is_no_address_defers_with_its_reason(
    tmp_path, monkeypatch, capsys
) -> None:
    """MAILER_GUI_NAMESERVER=localhost:5391 (a name, not an address): the send
    says so in one message, and the message waits in the outbox."""
    import json
    import sys

    from mailer_gui import cli

    monkeypatch.setenv("MAILER_GUI_NAMESERVER", "localhost:5391")
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    home = str(tmp_path / "home")
    assert cli.main(["--home", home, "accounts", "add", "mx", "--kind", "direct",
                     "--email", "ann@example.org"]) == 0  # fmt: skip
    capsys.readouterr()
    code = cli.main(["--home", home, "send", "--to", "bob@direct.test", "--subject", "s",
                     "--body", "b"])  # fmt: skip
    out, err = capsys.readouterr()
    assert code == cli.EX_TEMPFAIL, err
    assert "Traceback" not in err
    assert "MAILER_GUI_NAMESERVER='localhost:5391' is not a nameserver address" in out + err
    cli.main(["--home", home, "outbox", "list", "--json"])
    (row,) = json.loads(capsys.readouterr().out)
    assert row["state"] == "deferred"
