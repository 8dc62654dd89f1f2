"""Round trips: one message to 20 recipients over implicit TLS, through a slow link.

Setup, all on 127.0.0.1:

- aiosmtpd with implicit TLS (a trustme CA and certificate), AUTH PLAIN/LOGIN
  against a user table, and PIPELINING added to its EHLO reply (aiosmtpd handles
  pipelined commands correctly but does not advertise the extension; the handler's
  ``handle_EHLO`` adds the line, which a proxy could not do inside TLS);
- a thread-based TCP proxy in front of it that holds every chunk it reads for
  ``--delay`` (50 ms) before passing it on, in each direction separately, in
  order: a one-way delay of 50 ms, so every exchange that waits for the other
  side costs at least 100 ms.

Mailer's Session (``Security.TLS``, ``AuthMethod.PLAIN``) then sends one message
to 20 recipients through the proxy, and so does smtplib (``SMTP_SSL`` with a
context trusting the CA, ``login``, ``sendmail``, ``quit``).

Round trips, as counted by the proxy. It logs every chunk it reads, with its
direction, in the order it reads them (one lock, so one timeline for both
directions). Then::

    round trips = 1 (the connection itself: TCP connect + the client's first flight)
                + the number of times a client->server chunk follows a
                  server->client chunk in that timeline

i.e. every time the client speaks again after hearing from the server, it has
waited for the server once more. Several chunks in a row in one direction (a
reply split over writes, the message body after the commands) are one burst and
count nothing extra. The TLS handshake costs one flip (the client's Finished
follows the server's flight), the server's greeting is received before EHLO, and
so on; the expectation with PIPELINING is 7 (connect+ClientHello, Finished, EHLO,
AUTH PLAIN with initial response, MAIL+20 RCPT+DATA, body+".", QUIT) and for
smtplib, one command at a time, 28 (the same plus MAIL, 20 RCPT and DATA apart).

Second estimate: the client's wall time from before connecting to after the QUIT
reply, divided by 2 x delay (100 ms). The TCP handshake itself is not delayed (the
kernel completes it), so this estimate leaves it out, exactly as the first
estimate counts it and the client's first TLS flight as one; the two agree to
within the CPU time of the run.

Target: Mailer <= 8 round trips (exit 0), else exit 1; 2 if the bench could not run.
Run:  python3 tests/bench/bench_roundtrips.py [--recipients 20] [--delay 0.05] [-v]
"""

from __future__ import annotations

import argparse
import contextlib
import hmac
import io
import logging
import os
import queue
import smtplib
import socket
import ssl
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

from mailer_gui.smtp.auth import Credentials
from mailer_gui.smtp.errors import SmtpError
from mailer_gui.smtp.session import Envelope, Session
from mailer_gui.smtp.settings import AuthMethod, Security, ServerSettings
from mailer_gui.smtp.transcript import Transcript

HOST = "127.0.0.1"
SERVER_NAME = "localhost"  # the name aiosmtpd gives in its greeting
USER = "bench-user"
PASSWORD = "bench-password"  # ASCII: smtplib cannot send any other
SENDER = "bench-sender@example.test"
TARGET = 8
EXPECTED = {"Mailer": 7, "smtplib": 28}  # with 20 recipients (see the docstring)

C2S = "C>S"
S2C = "S>C"
IO_TIMEOUT = 30.0  # any single read or write in the proxy


class BenchError(Exception):
    """The benchmark could not run (as opposed to: it ran and missed the target)."""


# ------------------------------------------------------------------- the proxy


@dataclass(frozen=True)
class Chunk:
    at: float  # time.monotonic() when the proxy read it
    direction: str  # C2S or S2C
    size: int


@dataclass
class Link:
    """One proxied connection: its chunk timeline and whether both sides ended."""

    chunks: list[Chunk] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    directions_done: int = 0
    done: threading.Event = field(default_factory=threading.Event)

    def record(self, direction: str, size: int) -> None:
        with self.lock:
            self.chunks.append(Chunk(time.monotonic(), direction, size))

    def direction_done(self) -> None:
        with self.lock:
            self.directions_done += 1
            if self.directions_done == 2:
                self.done.set()


class DelayProxy:
    """127.0.0.1:port -> upstream, each chunk held ``delay`` seconds per direction.

    Per connection and direction: a reader thread that stamps each chunk with
    its release time (read time + delay) and queues it, and a writer thread that
    waits for the release time and sends, so order is kept and the delay does
    not add up along a burst. An end of stream is passed on (shutdown of the
    write side) after the same delay.
    """

    def __init__(self, upstream: tuple[str, int], delay: float) -> None:
        self.upstream = upstream
        self.delay = delay
        self.links: list[Link] = []
        self._listener = socket.create_server((HOST, 0))
        self._listener.settimeout(0.2)
        self.port: int = self._listener.getsockname()[1]
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._sockets: list[socket.socket] = []
        self._accepter = threading.Thread(target=self._accept_loop, name="proxy-accept")

    def __enter__(self) -> DelayProxy:
        self._accepter.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._accepter.join(timeout=5)
        self._listener.close()
        for sock in self._sockets:  # shutdown wakes a reader blocked in recv()
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        for thread in self._threads:
            thread.join(timeout=5)

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                server = socket.create_connection(self.upstream, timeout=IO_TIMEOUT)
            except OSError:
                client.close()
                continue
            link = Link()
            self.links.append(link)
            for sock in (client, server):
                sock.settimeout(IO_TIMEOUT)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                self._sockets.append(sock)
            self._pump(client, server, C2S, link)
            self._pump(server, client, S2C, link)

    def _pump(self, source: socket.socket, sink: socket.socket, direction: str, link: Link) -> None:
        held: queue.Queue[tuple[float, bytes | None]] = queue.Queue()

        def read() -> None:
            while True:
                try:
                    data = source.recv(65536)
                except OSError:
                    data = b""
                if data:
                    link.record(direction, len(data))
                held.put((time.monotonic() + self.delay, data or None))
                if not data:
                    return

        def write() -> None:
            try:
                while not self._stop.is_set():
                    try:
                        release, data = held.get(timeout=IO_TIMEOUT)
                    except queue.Empty:
                        return
                    pause = release - time.monotonic()
                    if pause > 0:
                        time.sleep(pause)
                    if data is None:
                        with contextlib.suppress(OSError):
                            sink.shutdown(socket.SHUT_WR)
                        return
                    sink.sendall(data)
            except OSError:
                with contextlib.suppress(OSError):
                    source.shutdown(socket.SHUT_RDWR)
            finally:
                link.direction_done()

        for target, name in ((read, "read"), (write, "write")):
            thread = threading.Thread(target=target, name=f"proxy-{direction}-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)


@dataclass(frozen=True)
class Burst:
    start: float
    direction: str
    size: int
    chunks: int


def bursts(chunks: list[Chunk]) -> list[Burst]:
    """Consecutive chunks in one direction, merged."""
    merged: list[Burst] = []
    for chunk in chunks:
        if merged and merged[-1].direction == chunk.direction:
            last = merged[-1]
            merged[-1] = Burst(last.start, last.direction, last.size + chunk.size, last.chunks + 1)
        else:
            merged.append(Burst(chunk.at, chunk.direction, chunk.size, 1))
    return merged


def count_round_trips(chunks: list[Chunk]) -> int:
    """1 for the connection, plus each client->server chunk that follows server->client data."""
    trips = 1
    previous: str | None = None
    for chunk in chunks:
        if chunk.direction == C2S and previous == S2C:
            trips += 1
        previous = chunk.direction
    return trips


# ------------------------------------------------------------------ the server


@dataclass(frozen=True)
class Received:
    mail_from: str
    rcpt_tos: tuple[str, ...]
    size: int
    login: str | None


class PipeliningHandler:
    """aiosmtpd handler: advertises PIPELINING and records what it accepts."""

    def __init__(self) -> None:
        self.messages: list[Received] = []
        self._lock = threading.Lock()

    async def handle_EHLO(
        self, server: SMTP, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        # aiosmtpd's "new" EHLO hook: ``responses`` ends with its last line
        # ("250 HELP"); PIPELINING goes in before it, as a continuation line.
        session.host_name = hostname
        return [*responses[:-1], "250-PIPELINING", responses[-1]]

    async def handle_DATA(self, server: SMTP, session: Any, envelope: Any) -> str:
        auth = session.auth_data
        login = auth.login.decode("utf-8", "replace") if isinstance(auth, LoginPassword) else None
        content = envelope.original_content or b""
        with self._lock:
            self.messages.append(
                Received(envelope.mail_from, tuple(envelope.rcpt_tos), len(content), login)
            )
        return "250 2.0.0 OK: queued"

    def take(self) -> list[Received]:
        with self._lock:
            taken, self.messages = self.messages, []
            return taken


def authenticate(
    server: SMTP, session: Any, envelope: Any, mechanism: str, auth_data: Any
) -> AuthResult:
    if isinstance(auth_data, LoginPassword):
        login = auth_data.login.decode("utf-8", "replace")
        password = auth_data.password.decode("utf-8", "replace")
        if login == USER and hmac.compare_digest(password.encode(), PASSWORD.encode()):
            return AuthResult(success=True, auth_data=auth_data)
    return AuthResult(success=False, handled=False)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def running_server(context: ssl.SSLContext) -> Iterator[tuple[Controller, PipeliningHandler]]:
    """aiosmtpd with implicit TLS; AUTH needs no STARTTLS since TLS is there from the start."""
    # aiosmtpd's own AUTH code warns that Session.login_data is deprecated.
    logging.getLogger("mail.log").setLevel(logging.ERROR)
    handler = PipeliningHandler()
    controller: Controller | None = None
    error: Exception | None = None
    for _attempt in range(3):  # the free port can be taken between probe and bind
        candidate = Controller(
            handler,
            hostname=HOST,
            port=_free_port(),
            ssl_context=context,
            server_hostname=SERVER_NAME,
            ready_timeout=10.0,
            authenticator=authenticate,
            auth_require_tls=False,  # aiosmtpd only knows STARTTLS as "TLS"
            timeout=60,
        )
        try:
            candidate.start()
        except Exception as exc:  # aiosmtpd raises what the loop raised
            error = exc
            continue
        controller = candidate
        break
    if controller is None:
        raise BenchError(f"aiosmtpd did not start: {error}")
    try:
        yield controller, handler
    finally:
        controller.stop()


# ----------------------------------------------------------------- the clients


def make_message(recipients: list[str]) -> bytes:
    body = "".join(
        f"Line {n:02d} of a short message sent to {len(recipients)} recipients at once.\r\n"
        for n in range(20)
    )
    return (
        f"From: Bench Sender <{SENDER}>\r\n"
        "To: undisclosed-recipients:;\r\n"
        "Subject: Mailer round-trip benchmark\r\n"
        "Date: Mon, 01 Jan 2024 00:00:00 +0000\r\n"
        "Message-ID: <roundtrips@example.test>\r\n"
        "\r\n" + body
    ).encode("ascii")


def send_with_mailer(port: int, recipients: list[str], message: bytes, ca: Path) -> None:
    settings = ServerSettings(HOST, port, Security.TLS, auth=AuthMethod.PLAIN, username=USER)
    session = Session(
        settings, transcript=Transcript(), credentials=lambda: Credentials(USER, PASSWORD)
    )
    session.open()
    try:
        result = session.send_message(
            Envelope(SENDER, tuple(recipients)), io.BytesIO(message), len(message)
        )
    finally:
        session.close()
    if result.outcome != "sent":
        raise BenchError(f"Mailer: the message was {result.outcome}: {result.error}")


def send_with_smtplib(port: int, recipients: list[str], message: bytes, ca: Path) -> None:
    context = ssl.create_default_context(cafile=str(ca))
    # local_hostname: without it smtplib does a DNS lookup (socket.getfqdn) first.
    with smtplib.SMTP_SSL(
        HOST, port, local_hostname="[127.0.0.1]", context=context, timeout=IO_TIMEOUT
    ) as client:
        client.login(USER, PASSWORD)
        refused = client.sendmail(SENDER, recipients, message)
        client.quit()
    if refused:
        raise BenchError(f"smtplib: recipients refused: {refused}")


Client = Callable[[int, list[str], bytes, Path], None]
CLIENTS: dict[str, Client] = {"Mailer": send_with_mailer, "smtplib": send_with_smtplib}


@dataclass(frozen=True)
class Measurement:
    name: str
    round_trips: int
    wall: float
    bursts: list[Burst]
    bytes_c2s: int
    bytes_s2c: int
    delivered: int


def measure(
    name: str,
    upstream: tuple[str, int],
    handler: PipeliningHandler,
    recipients: list[str],
    ca: Path,
    delay: float,
) -> Measurement:
    message = make_message(recipients)
    handler.take()
    with DelayProxy(upstream, delay) as proxy:
        start = time.perf_counter()
        CLIENTS[name](proxy.port, recipients, message, ca)
        wall = time.perf_counter() - start
        if not proxy.links:
            raise BenchError(f"{name}: no connection went through the proxy")
        link = proxy.links[-1]
        if not link.done.wait(timeout=10):
            raise BenchError(f"{name}: the proxied connection did not end")
    if len(proxy.links) != 1:
        raise BenchError(f"{name}: {len(proxy.links)} connections instead of one")
    received = handler.take()
    delivered = sum(len(m.rcpt_tos) for m in received)
    if len(received) != 1 or set(received[0].rcpt_tos) != set(recipients):
        raise BenchError(f"{name}: the server got {received}, not one message to all")
    if received[0].login != USER:
        raise BenchError(f"{name}: the message was not sent logged in ({received[0].login})")
    chunks = list(link.chunks)
    return Measurement(
        name=name,
        round_trips=count_round_trips(chunks),
        wall=wall,
        bursts=bursts(chunks),
        bytes_c2s=sum(c.size for c in chunks if c.direction == C2S),
        bytes_s2c=sum(c.size for c in chunks if c.direction == S2C),
        delivered=delivered,
    )


def print_timeline(result: Measurement) -> None:
    print(f"\n{result.name}: bursts as the proxy read them (round trip number at each C>S)")
    origin = result.bursts[0].start if result.bursts else 0.0
    trip = 1
    previous: str | None = None
    for burst in result.bursts:
        if burst.direction == C2S and previous == S2C:
            trip += 1
        mark = f"#{trip:<3d}" if burst.direction == C2S else "    "
        print(
            f"  {mark} +{(burst.start - origin) * 1000:7.1f} ms  {burst.direction}"
            f" {burst.size:6d} bytes in {burst.chunks} chunk(s)"
        )
        previous = burst.direction


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipients", type=int, default=20)
    parser.add_argument("--delay", type=float, default=0.05, help="one-way delay, seconds")
    parser.add_argument("-v", "--verbose", action="store_true", help="print each burst")
    args = parser.parse_args(argv)
    if not 1 <= args.recipients <= 500 or not 0.005 <= args.delay <= 1.0:
        parser.error("--recipients must be 1..500 and --delay 0.005..1.0")
    recipients = [f"rcpt{n:02d}@example.test" for n in range(1, args.recipients + 1)]

    results: list[Measurement] = []
    try:
        with tempfile.TemporaryDirectory(prefix="mailer-bench-") as tmp:
            ca = trustme.CA(organization_name="Mailer bench CA")
            ca_file = Path(tmp) / "ca.pem"
            ca.cert_pem.write_to_path(str(ca_file))
            # Mailer verifies with the default trust store: make it this CA only.
            os.environ["SSL_CERT_FILE"] = str(ca_file)
            os.environ["SSL_CERT_DIR"] = tmp
            server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ca.issue_cert(HOST, SERVER_NAME).configure_cert(server_context)
            with running_server(server_context) as (controller, handler):
                upstream = (HOST, int(controller.port))
                print(
                    f"aiosmtpd (implicit TLS, AUTH PLAIN, PIPELINING added) on "
                    f"{upstream[0]}:{upstream[1]}; proxy delay {args.delay * 1000:.0f} ms "
                    f"each way; one message to {args.recipients} recipients"
                )
                for name in CLIENTS:
                    results.append(
                        measure(name, upstream, handler, recipients, ca_file, args.delay)
                    )
    except BenchError as exc:
        print(f"bench_roundtrips: {exc}", file=sys.stderr)
        return 2
    except (OSError, smtplib.SMTPException, SmtpError, ssl.SSLError) as exc:
        print(f"bench_roundtrips: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2

    if args.verbose:
        for result in results:
            print_timeline(result)
    rtt = 2 * args.delay
    print()
    print(
        f"{'client':9} {'round trips':>11} {'wall s':>7} {'wall/RTT':>9} {'C>S bursts':>10}"
        f" {'bytes C>S':>9} {'bytes S>C':>9} {'delivered':>9}"
    )
    for result in results:
        c2s_bursts = sum(1 for b in result.bursts if b.direction == C2S)
        print(
            f"{result.name:9} {result.round_trips:11d} {result.wall:7.3f}"
            f" {result.wall / rtt:9.1f} {c2s_bursts:10d} {result.bytes_c2s:9d}"
            f" {result.bytes_s2c:9d} {result.delivered:9d}"
        )
    print(f"(RTT = 2 x {args.delay * 1000:.0f} ms; round trips = 1 + S>C-to-C>S flips)")
    mailer = next(r for r in results if r.name == "Mailer")
    if args.recipients == 20:
        for result in results:
            if result.round_trips != EXPECTED[result.name]:
                print(
                    f"note: {result.name} took {result.round_trips} round trips; "
                    f"{EXPECTED[result.name]} were expected (run with -v to see the bursts)"
                )
    met = mailer.round_trips <= TARGET
    print(
        f"\nMailer: {mailer.round_trips} round trips (target <= {TARGET}): "
        + ("MET" if met else "MISSED")
    )
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
