"""Postfix's ``smtp-sink`` on 127.0.0.1, one free port per server.

``smtp_sink_factory(*extra_args, dump=False, ready_timeout=10.0)`` starts
``smtp-sink [extra_args] 127.0.0.1:PORT 100`` and returns an :class:`SmtpSink`
(``.host``, ``.port``, ``.pid``, ``.args``, ``.stop()``, ``.log_text()`` and, with
``dump=True``, ``.dump_file`` / ``.read_dump()``). Every sink still running is
stopped (SIGTERM, then SIGKILL, by PID) at teardown. Run as root, ``-u nobody`` is
added (smtp-sink refuses to run as root without ``-u``).

What it offers by default (Postfix 3.7): ESMTP with PIPELINING, 8BITMIME,
``AUTH PLAIN LOGIN`` (any credentials are accepted), XCLIENT, XFORWARD,
ENHANCEDSTATUSCODES and DSN; every command gets a 2xx. It does NOT offer CHUNKING
(BDAT is "500 5.5.1 unknown command"), SMTPUTF8, SIZE or STARTTLS. Its last EHLO
line is an empty ``"250 "``.

Fault switches (``COMMANDS`` is a comma list of CONNECT, HELO, EHLO, MAIL, RCPT,
DATA, ".", RSET, NOOP, QUIT, ...; case does not matter):

- ``-r COMMANDS``: reply with a soft (4xx) error, by default
  ``450 4.3.0 Error: command failed`` (``-b REPLY`` sets it). ``-r RCPT`` makes every
  RCPT fail with 4xx. Implies ``-p``.
- ``-f COMMANDS``: reply with a hard (5xx) error, by default
  ``500 5.3.0 Error: command failed`` (``-B REPLY`` sets it). ``-f RCPT`` makes
  every RCPT fail with 5xx; ``-f .`` rejects the message after its data. Implies ``-p``.
- ``-q COMMANDS``: disconnect without replying after the command (e.g. ``-q DATA``,
  ``-q .`` drops the connection after the data has been sent, ``-q CONNECT`` before
  the greeting).
- ``-Q COMMANDS``: reply ``421`` and disconnect after the command.
- ``-w DELAY``: wait DELAY seconds before replying to DATA.
- ``-W COMMAND:DELAY[:ODDS]``: wait DELAY seconds before replying to COMMAND
  (e.g. ``-W RCPT:2``; ``-W CONNECT:3`` delays the greeting).
- ``-A DELAY``: DELAY seconds after replying to DATA, abort with 550 without reading
  the message. ``-H DELAY``: delay the first read after DATA.
- ``-t TIMEOUT``: command/response time limit (default 100 s).
- ``-n COUNT`` / ``-M COUNT``: exit after COUNT sessions / messages.
- Capability switches: ``-p`` no PIPELINING, ``-e`` no ESMTP (HELO only), ``-E`` no
  ENHANCEDSTATUSCODES, ``-N`` no DSN, ``-8`` no 8BITMIME, ``-a`` no AUTH.
- ``-c`` prints counters, ``-v`` the conversations (both to :meth:`SmtpSink.log_text`).

The readiness check reads ``/proc/net/tcp`` for the listening socket rather than
connecting, so ``-n``/``-q CONNECT`` counts are not disturbed by the fixture itself.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.servers.availability import require_program
from tests.servers.processes import stop_process

__all__ = ["SmtpSink", "SmtpSinkFactory", "smtp_sink_factory"]

HOST = "127.0.0.1"
BACKLOG = "100"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _listening(port: int) -> bool:
    """Whether something listens on 127.0.0.1:port (from /proc, without connecting)."""
    wanted = f"0100007F:{port:04X}"
    try:
        with open("/proc/net/tcp", encoding="ascii") as table:
            next(table)
            for line in table:
                fields = line.split()
                if fields[1] == wanted and fields[3] == "0A":  # 0A: LISTEN
                    return True
        return False
    except OSError:  # no /proc: fall back to a probe connection
        try:
            with socket.create_connection((HOST, port), timeout=0.5):
                return True
        except OSError:
            return False


@dataclass
class SmtpSink:
    host: str
    port: int
    pid: int
    args: tuple[str, ...]
    dump_file: Path | None
    _process: subprocess.Popen[bytes] = field(repr=False)
    _workdir: Path = field(repr=False)

    def log_text(self) -> str:
        """What smtp-sink printed (stdout and stderr), e.g. with ``-c`` or ``-v``."""
        try:
            return (self._workdir / "smtp-sink.log").read_text("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def read_dump(self) -> bytes:
        """The ``-D`` dump (only with ``dump=True``): every transaction so far."""
        if self.dump_file is None:
            raise RuntimeError("start the sink with dump=True to read its dump")
        try:
            return self.dump_file.read_bytes()
        except FileNotFoundError:
            return b""

    @property
    def running(self) -> bool:
        return self._process.poll() is None

    def stop(self) -> None:
        stop_process(self._process)
        shutil.rmtree(self._workdir, ignore_errors=True)


class SmtpSinkFactory:
    def __init__(self, program: str) -> None:
        self.program = program
        self.sinks: list[SmtpSink] = []

    def __call__(
        self, *extra_args: str, dump: bool = False, ready_timeout: float = 10.0
    ) -> SmtpSink:
        workdir = Path(tempfile.mkdtemp(prefix="mailer-smtp-sink-"))
        privileged = os.geteuid() == 0
        args: list[str] = []
        if privileged and "-u" not in extra_args:
            args += ["-u", "nobody"]
        dump_file: Path | None = None
        if dump:
            dump_file = workdir / "dump"
            args += ["-D", str(dump_file)]
            if privileged:  # the dump is opened after the switch to nobody
                nobody = pwd.getpwnam("nobody")
                os.chown(workdir, nobody.pw_uid, nobody.pw_gid)
        args += list(extra_args)
        last_error = ""
        for _attempt in range(3):  # a free port can be taken between probe and bind
            port = _free_port()
            with open(workdir / "smtp-sink.log", "ab") as log:
                process = subprocess.Popen(
                    [self.program, *args, f"{HOST}:{port}", BACKLOG],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=workdir,
                )
            sink = SmtpSink(
                host=HOST,
                port=port,
                pid=process.pid,
                args=tuple(args),
                dump_file=dump_file,
                _process=process,
                _workdir=workdir,
            )
            deadline = time.monotonic() + ready_timeout
            while time.monotonic() < deadline and process.poll() is None:
                if _listening(port):
                    self.sinks.append(sink)
                    return sink
                time.sleep(0.02)
            last_error = sink.log_text()
            if process.poll() is None:
                os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=5)
        shutil.rmtree(workdir, ignore_errors=True)
        raise RuntimeError(f"smtp-sink {' '.join(args)} did not start: {last_error}")

    def stop_all(self) -> None:
        for sink in self.sinks:
            sink.stop()


@pytest.fixture
def smtp_sink_factory() -> Iterator[SmtpSinkFactory]:
    factory = SmtpSinkFactory(require_program("smtp-sink", "/usr/sbin/smtp-sink"))
    try:
        yield factory
    finally:
        factory.stop_all()
