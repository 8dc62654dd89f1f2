"""dnsmasq as a private nameserver on 127.0.0.1, one free port each.

``dnsmasq_factory(mx=..., hosts=..., ...)`` starts ``/usr/sbin/dnsmasq`` answering
only from the records given, and returns a :class:`Dnsmasq` (``.host``, ``.port``,
``.nameserver`` — ``"127.0.0.1:PORT"``, the value for MAILER_GUI_NAMESERVER —,
``.pid``, ``.resolver()``, ``.log_text()``, ``.stop()``). Every instance still
running is stopped (SIGTERM, then SIGKILL, by PID) at teardown. Records (all keyword):

- ``mx``: ``{domain: [(preference, target), ...]}`` → ``--mx-host=domain,target,pref``.
  The target ``"."`` gives ``MX 0 .``, a null MX (RFC 7505); dnspython reads it back
  as exchange ``.`` (``--dns-rr=domain,15,000000`` gives the same bytes).
- ``hosts``: ``{name: address or [addresses]}`` → ``--host-record=name,addr,...``
  (A and AAAA; a name with only IPv4 answers AAAA with no data).
- ``srv``: ``{"_submission._tcp.example.test": [(target, port, priority, weight)]}``
  → ``--srv-host=``; ``cname``: ``{alias: target}`` → ``--cname=``;
  ``rr``: ``[(name, rrtype number, hex rdata)]`` → ``--dns-rr=`` (anything else).
- ``local`` (default ``("test",)``): domains dnsmasq alone answers for
  (``--local=/test/``). A name there with no record is NXDOMAIN; a name with other
  records is NOERROR with no data (dnspython: ``NoAnswer``). A name outside every
  ``local`` domain gets REFUSED (no upstream server), which dnspython reports as
  ``NoNameservers``: a DNS failure, not a missing name.
- ``extra_args``: more dnsmasq options.

dnsmasq is told to touch no system file: ``--conf-file=/dev/null`` (not
/etc/dnsmasq.conf), ``--no-resolv --no-poll`` (not /etc/resolv.conf), ``--no-hosts``
(not /etc/hosts), ``--pid-file=`` (no pid file), ``--log-facility=`` a file in its
own temporary directory (not syslog), ``--keep-in-foreground`` (no daemon), and it
listens only on ``127.0.0.1`` (``--listen-address --bind-interfaces``). As root,
``--user=root`` keeps it from switching to ``nobody``, which could not write its log.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import dns.exception
import dns.message
import dns.query
import dns.resolver
import pytest

from tests.servers.availability import unavailable
from tests.servers.processes import stop_process

__all__ = ["DNSMASQ", "Dnsmasq", "DnsmasqFactory", "dnsmasq_factory"]

DNSMASQ = "/usr/sbin/dnsmasq"
HOST = "127.0.0.1"


def _free_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1 (dnsmasq binds both)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind((HOST, 0))
            port: int = udp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind((HOST, port))
                except OSError:
                    continue
                return port


def _answers(port: int) -> bool:
    """Whether something answers DNS on 127.0.0.1:port (any rcode counts)."""
    query = dns.message.make_query("ready.invalid.", "A")
    try:
        dns.query.udp(query, HOST, port=port, timeout=0.2)
    except (dns.exception.DNSException, OSError):
        return False
    return True


@dataclass
class Dnsmasq:
    host: str
    port: int
    pid: int
    args: tuple[str, ...]
    _process: subprocess.Popen[bytes] = field(repr=False)
    _workdir: Path = field(repr=False)

    @property
    def nameserver(self) -> str:
        """``127.0.0.1:PORT``: the value for MAILER_GUI_NAMESERVER."""
        return f"{self.host}:{self.port}"

    def resolver(self, lifetime: float = 5.0) -> dns.resolver.Resolver:
        """A dnspython resolver asking only this server."""
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers = [self.host]
        resolver.port = self.port
        resolver.timeout = min(2.0, lifetime)
        resolver.lifetime = lifetime
        return resolver

    def log_text(self) -> str:
        """dnsmasq's log: start-up, and every query (``--log-queries``)."""
        try:
            return (self._workdir / "dnsmasq.log").read_text("utf-8", "replace")
        except FileNotFoundError:
            return ""

    @property
    def running(self) -> bool:
        return self._process.poll() is None

    def stop(self) -> None:
        stop_process(self._process)
        shutil.rmtree(self._workdir, ignore_errors=True)


def record_args(
    *,
    mx: Mapping[str, Iterable[tuple[int, str]]] | None = None,
    hosts: Mapping[str, str | Sequence[str]] | None = None,
    srv: Mapping[str, Iterable[tuple[str, int, int, int]]] | None = None,
    cname: Mapping[str, str] | None = None,
    rr: Iterable[tuple[str, int, str]] = (),
    local: Iterable[str] = ("test",),
) -> list[str]:
    """The records as dnsmasq options."""
    args = [f"--local=/{domain.strip('.')}/" for domain in local]
    for domain, records in (mx or {}).items():
        args += [f"--mx-host={domain},{target},{preference}" for preference, target in records]
    for name, addresses in (hosts or {}).items():
        listed = [addresses] if isinstance(addresses, str) else list(addresses)
        args.append(f"--host-record={name},{','.join(listed)}")
    for service, targets in (srv or {}).items():
        args += [
            f"--srv-host={service},{target},{port},{priority},{weight}"
            for target, port, priority, weight in targets
        ]
    args += [f"--cname={alias},{target}" for alias, target in (cname or {}).items()]
    args += [f"--dns-rr={name},{rrtype},{rdata}" for name, rrtype, rdata in rr]
    return args


class DnsmasqFactory:
    def __init__(self, program: str) -> None:
        self.program = program
        self.servers: list[Dnsmasq] = []

    def __call__(
        self,
        *,
        mx: Mapping[str, Iterable[tuple[int, str]]] | None = None,
        hosts: Mapping[str, str | Sequence[str]] | None = None,
        srv: Mapping[str, Iterable[tuple[str, int, int, int]]] | None = None,
        cname: Mapping[str, str] | None = None,
        rr: Iterable[tuple[str, int, str]] = (),
        local: Iterable[str] = ("test",),
        extra_args: Sequence[str] = (),
        ready_timeout: float = 10.0,
    ) -> Dnsmasq:
        workdir = Path(tempfile.mkdtemp(prefix="mailer-dnsmasq-"))
        records = record_args(mx=mx, hosts=hosts, srv=srv, cname=cname, rr=rr, local=local)
        last_error = ""
        for _attempt in range(3):  # a free port can be taken between probe and bind
            port = _free_port()
            args = [
                "--keep-in-foreground",
                "--conf-file=/dev/null",
                "--no-resolv",
                "--no-poll",
                "--no-hosts",
                "--pid-file=",
                f"--port={port}",
                f"--listen-address={HOST}",
                "--bind-interfaces",
                f"--log-facility={workdir / 'dnsmasq.log'}",
                "--log-queries",
                *(["--user=root"] if os.geteuid() == 0 else []),
                *records,
                *extra_args,
            ]
            with open(workdir / "dnsmasq.out", "ab") as out:
                process = subprocess.Popen(
                    [self.program, *args],
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    cwd=workdir,
                )
            server = Dnsmasq(HOST, port, process.pid, tuple(args), process, workdir)
            deadline = time.monotonic() + ready_timeout
            while time.monotonic() < deadline and process.poll() is None:
                if _answers(port):
                    self.servers.append(server)
                    return server
                time.sleep(0.02)
            last_error = (workdir / "dnsmasq.out").read_text("utf-8", "replace")
            last_error += server.log_text()
            if process.poll() is None:
                os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=5)
        shutil.rmtree(workdir, ignore_errors=True)
        raise RuntimeError(f"dnsmasq did not start: {last_error}")

    def stop_all(self) -> None:
        for server in self.servers:
            server.stop()


@pytest.fixture
def dnsmasq_factory() -> Iterator[DnsmasqFactory]:
    if not os.access(DNSMASQ, os.X_OK):
        unavailable("dnsmasq (Debian package dnsmasq-base)")
    factory = DnsmasqFactory(DNSMASQ)
    try:
        yield factory
    finally:
        factory.stop_all()
