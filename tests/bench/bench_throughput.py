"""Throughput: Mailer's pipelining Session against a plain smtplib loop.

Starts Postfix's ``smtp-sink`` on 127.0.0.1 (it advertises PIPELINING and takes
every message), then sends the same N messages of S bytes over ONE connection:

- Mailer: one ``Session.open()``, N ``send_message()`` calls, ``close()``;
- smtplib: one ``smtplib.SMTP(host, port)``, N ``sendmail()`` calls, ``quit()``.

Each timing covers the whole connection (connect, greeting, EHLO, the N
messages, QUIT). The two clients alternate for ``--rounds`` rounds (the one that
goes first alternates too), after an untimed warm-up. The result is the median
rate of each client and the ratio Mailer / smtplib.

Target: Mailer's median rate >= smtplib's (ratio >= 1.0). When the target is
missed (or with ``--profile``), one more Mailer pass runs under cProfile and the
time spent in ``mailer_gui`` is printed per function (file:function).

Run:  python3 tests/bench/bench_throughput.py [--messages 1000] [--size 10240]
Exit: 0 target met, 1 target missed, 2 could not run (no smtp-sink, a send failed).
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import os
import pstats
import shutil
import smtplib
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

# The smtp-sink helpers of the test suite (run from a checkout: its root on the path).
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from mailer_gui.smtp.errors import SmtpError
from mailer_gui.smtp.session import Envelope, Session
from mailer_gui.smtp.settings import AuthMethod, Security, ServerSettings
from mailer_gui.smtp.transcript import Transcript
from tests.servers.processes import stop_process
from tests.servers.smtp_sink import _free_port, _listening

HOST = "127.0.0.1"
SENDER = "bench-sender@example.test"
RECIPIENT = "bench-rcpt@example.test"
# smtplib would otherwise use socket.getfqdn() (a DNS lookup inside the timing);
# this is the name Mailer sends too (an address literal, no DNS).
EHLO_NAME = "[127.0.0.1]"


class BenchError(Exception):
    """The benchmark could not run (as opposed to: it ran and missed the target)."""


# ------------------------------------------------------------------ smtp-sink


@dataclass
class Sink:
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    def log_text(self) -> str:
        try:
            return self.log.read_text("utf-8", "replace")
        except OSError:
            return ""


def find_smtp_sink(explicit: str | None) -> str:
    candidates = [explicit] if explicit else [shutil.which("smtp-sink"), "/usr/sbin/smtp-sink"]
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise BenchError(
        "smtp-sink (Postfix) was not found; install postfix (Debian: apt-get install "
        "postfix) or pass --smtp-sink PATH"
    )


@contextlib.contextmanager
def running_sink(program: str, workdir: Path, ready_timeout: float = 10.0) -> Iterator[Sink]:
    """``smtp-sink [-u nobody] 127.0.0.1:PORT 1000``, stopped by PID on the way out."""
    args = ["-u", "nobody"] if os.geteuid() == 0 else []
    log = workdir / "smtp-sink.log"
    sink: Sink | None = None
    for _attempt in range(3):  # the free port can be taken between probe and bind
        port = _free_port()
        with open(log, "ab") as log_file:
            process = subprocess.Popen(
                [program, *args, f"{HOST}:{port}", "1000"],
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                cwd=workdir,
            )
        candidate = Sink(process, port, log)
        deadline = time.monotonic() + ready_timeout
        while time.monotonic() < deadline and process.poll() is None:
            if _listening(port):
                sink = candidate
                break
            time.sleep(0.02)
        if sink is not None:
            break
        stop_process(process)
    if sink is None:
        raise BenchError(f"smtp-sink did not start: {(log.read_text('utf-8', 'replace'))}")
    try:
        yield sink
    finally:
        stop_process(sink.process)


# ------------------------------------------------------------------- messages


def make_message(size: int) -> bytes:
    """A plain RFC 5322 message of exactly ``size`` bytes, CRLF line ends.

    Body lines are 76 bytes of text; the first starts with a dot, so both
    clients do some dot-stuffing, as real text sometimes needs.
    """
    header = (
        f"From: Bench Sender <{SENDER}>\r\n"
        f"To: Bench Recipient <{RECIPIENT}>\r\n"
        "Subject: Mailer throughput benchmark\r\n"
        "Date: Mon, 01 Jan 2024 00:00:00 +0000\r\n"
        "Message-ID: <bench@example.test>\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=us-ascii\r\n"
        "\r\n"
    ).encode("ascii")
    words = b"lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor "
    lines = [b"." + words[1:74] + b"\r\n"]  # one line to dot-stuff
    lines += [(words[n % 7 :] + words)[:74] + b"\r\n" for n in range(size // 76 + 1)]
    message = (header + b"".join(lines))[: size - 2]
    if message.endswith(b"\r"):  # never leave a bare CR before the final CRLF
        message = message[:-1] + b"x"
    message += b"\r\n"
    if len(message) != size:
        raise BenchError(f"could not build a {size}-byte message (got {len(message)})")
    return message


# -------------------------------------------------------------------- clients


def send_with_mailer(port: int, message: bytes, count: int) -> None:
    settings = ServerSettings(HOST, port, Security.NONE, auth=AuthMethod.NONE)
    session = Session(settings, transcript=Transcript())
    envelope = Envelope(SENDER, (RECIPIENT,))
    session.open()
    try:
        for number in range(count):
            result = session.send_message(envelope, io.BytesIO(message), len(message))
            if result.outcome != "sent":
                raise BenchError(
                    f"Mailer: message {number + 1} was {result.outcome}: "
                    f"{result.error or result.recipients}"
                )
    finally:
        session.close()


def send_with_smtplib(port: int, message: bytes, count: int) -> None:
    with smtplib.SMTP(HOST, port, local_hostname=EHLO_NAME, timeout=60) as client:
        for number in range(count):
            refused = client.sendmail(SENDER, [RECIPIENT], message)
            if refused:
                raise BenchError(f"smtplib: message {number + 1} refused: {refused}")
        client.quit()


Client = Callable[[int, bytes, int], None]
CLIENTS: dict[str, Client] = {"Mailer": send_with_mailer, "smtplib": send_with_smtplib}


@dataclass(frozen=True)
class Timing:
    wall: float  # seconds
    cpu: float  # seconds of this process's CPU (user + system)


def timed(client: Client, port: int, message: bytes, count: int) -> Timing:
    cpu0, wall0 = time.process_time(), time.perf_counter()
    client(port, message, count)
    return Timing(time.perf_counter() - wall0, time.process_time() - cpu0)


# ------------------------------------------------------------------ profiling

_SOCKET_CALLS = ("sendall", "send", "recv", "recv_into", "poll", "select")
Key = tuple[str, int, str]  # pstats: (file, line, function)


def _in_mailer(key: Key) -> bool:
    return "mailer_gui" in key[0]


def _path(key: Key) -> str:
    filename = key[0]
    if _in_mailer(key):
        return filename[filename.rindex("mailer_gui") :]
    return "~" if filename == "~" else os.path.basename(filename)


def _label(key: Key) -> str:
    """``mailer_gui/smtp/session.py:_send (L164)``; C built-ins by name."""
    if key[0] == "~":
        return key[2]
    return f"{_path(key)}:{key[2]} (L{key[1]})"


def profile_mailer(port: int, message: bytes, count: int, top: int) -> None:
    """One Mailer pass under cProfile; print where the time goes in mailer_gui.

    A function's "self" time is its own time plus the C built-ins it calls
    directly (bytes.replace, str.join, settimeout, ...), except socket calls,
    which are shown apart as "socket": time in the kernel or waiting for
    smtp-sink. Python code outside mailer_gui (dataclass __init__, enum
    __hash__, ...) is listed apart with the mailer_gui function calling it most.
    """
    profiler = cProfile.Profile()
    wall0 = time.perf_counter()
    profiler.enable()
    try:
        send_with_mailer(port, message, count)
    finally:
        profiler.disable()
    wall = time.perf_counter() - wall0
    raw = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    own: dict[Key, float] = {}
    sock: dict[Key, float] = {}
    cum: dict[Key, float] = {}
    calls: dict[Key, int] = {}
    other: dict[Key, tuple[float, Key | None]] = {}
    total_socket = 0.0
    for key, (_cc, ncalls, tottime, cumtime, callers) in raw.items():
        if _in_mailer(key):
            own[key] = own.get(key, 0.0) + tottime
            cum[key] = cumtime
            calls[key] = ncalls
            continue
        is_builtin = key[0] == "~"
        is_socket = is_builtin and any(f"'{name}'" in key[2] for name in _SOCKET_CALLS)
        if is_socket:
            total_socket += tottime
        attributed = 0.0
        main_caller: Key | None = None
        for caller, caller_stats in callers.items():
            if not _in_mailer(caller):
                continue
            if main_caller is None or caller_stats[2] > callers[main_caller][2]:
                main_caller = caller
            if is_builtin:
                attributed += caller_stats[2]
                target = sock if is_socket else own
                target[caller] = target.get(caller, 0.0) + caller_stats[2]
        if not is_socket and tottime - attributed > 1e-9:
            other[key] = (tottime - attributed, main_caller)
    total = sum(entry[2] for entry in raw.values())
    per = 1e6 / count
    by_file: dict[str, float] = {}
    for key, seconds in own.items():
        by_file[_path(key)] = by_file.get(_path(key), 0.0) + seconds
    other_total = sum(seconds for seconds, _ in other.values())

    print()
    print(f"Profile of one Mailer pass ({count} messages) under cProfile:")
    print(
        f"  profiled wall {wall:.3f} s ({count / wall:.0f} msg/s); cProfile inflates every "
        "Python call, so read the shares, not the absolute numbers"
    )
    print()
    print(f"  {'where the time goes':62} {'us/msg':>8} {'share':>6}")
    rows = [("socket calls (kernel, waiting for smtp-sink)", total_socket)]
    rows += sorted(
        ((name, seconds) for name, seconds in by_file.items() if seconds * per >= 0.05),
        key=lambda item: item[1],
        reverse=True,
    )
    rows.append(("other Python (dataclass __init__, enum, io, ...)", other_total))
    for name, seconds in rows:
        print(f"  {name:62} {seconds * per:8.1f} {seconds / total:6.1%}")
    print(f"  {'total':62} {total * per:8.1f}")
    print()
    header = f"  {'mailer_gui function':62} {'calls':>7} {'self':>8} {'socket':>8} {'cum':>8}"
    print(header + "  (us/msg)")
    print("  " + "-" * (len(header) - 2))
    ranked = sorted(own, key=lambda k: own[k] + sock.get(k, 0.0), reverse=True)
    for key in ranked[:top]:
        print(
            f"  {_label(key):62} {calls.get(key, 0):7d} {own[key] * per:8.1f}"
            f" {sock.get(key, 0.0) * per:8.1f} {cum.get(key, 0.0) * per:8.1f}"
        )
    print()
    print("  Python outside mailer_gui (top 6, us/msg), with its main mailer_gui caller:")
    for key, (seconds, caller) in sorted(other.items(), key=lambda i: i[1][0], reverse=True)[:6]:
        called_from = f"  <- {_label(caller)}" if caller else ""
        print(f"    {seconds * per:7.1f}  {_label(key)}{called_from}")


# ----------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=1000, help="messages per run")
    parser.add_argument("--size", type=int, default=10 * 1024, help="bytes per message")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds")
    parser.add_argument("--warmup", type=int, default=50, help="untimed messages per client")
    parser.add_argument("--profile", action="store_true", help="profile even if the target is met")
    parser.add_argument("--top", type=int, default=20, help="functions in the profile table")
    parser.add_argument("--smtp-sink", metavar="PATH", help="the smtp-sink program")
    args = parser.parse_args(argv)
    if args.messages < 1 or args.rounds < 1 or args.size < 512:
        parser.error("--messages and --rounds must be >= 1 and --size >= 512")

    try:
        program = find_smtp_sink(args.smtp_sink)
        message = make_message(args.size)
        with (
            tempfile.TemporaryDirectory(prefix="mailer-bench-") as tmp,
            running_sink(program, Path(tmp)) as sink,
        ):
            print(
                f"smtp-sink pid {sink.process.pid} on {HOST}:{sink.port}; {args.messages} "
                f"messages x {args.size} bytes per run, one connection per run, "
                f"{args.rounds} rounds"
            )
            for client in CLIENTS.values():
                client(sink.port, message, args.warmup)
            timings: dict[str, list[Timing]] = {name: [] for name in CLIENTS}
            order = list(CLIENTS)
            for number in range(args.rounds):
                for name in order if number % 2 == 0 else reversed(order):
                    timing = timed(CLIENTS[name], sink.port, message, args.messages)
                    timings[name].append(timing)
                    print(
                        f"  round {number + 1} {name:8} {args.messages / timing.wall:8.0f} msg/s"
                        f"  ({timing.wall:.3f} s, CPU {timing.cpu * 1e6 / args.messages:.0f}"
                        " us/msg)",
                        flush=True,
                    )
            rates = {
                name: statistics.median(args.messages / t.wall for t in runs)
                for name, runs in timings.items()
            }
            cpus = {
                name: statistics.median(t.cpu * 1e6 / args.messages for t in runs)
                for name, runs in timings.items()
            }
            ratio = rates["Mailer"] / rates["smtplib"]
            met = ratio >= 1.0
            print()
            print(f"{'client':10} {'median msg/s':>13} {'min':>8} {'max':>8} {'CPU us/msg':>11}")
            for name, runs in timings.items():
                each = [args.messages / t.wall for t in runs]
                print(
                    f"{name:10} {rates[name]:13.0f} {min(each):8.0f} {max(each):8.0f}"
                    f" {cpus[name]:11.0f}"
                )
            print()
            print(
                f"ratio Mailer / smtplib = {ratio:.2f}  (target >= 1.00): "
                + ("MET" if met else "MISSED")
            )
            if not met or args.profile:
                profile_mailer(sink.port, message, args.messages, args.top)
            if sink.process.poll() is not None:
                raise BenchError(f"smtp-sink exited early: {sink.log_text()}")
    except BenchError as exc:
        print(f"bench_throughput: {exc}", file=sys.stderr)
        return 2
    except (OSError, smtplib.SMTPException, SmtpError) as exc:
        print(f"bench_throughput: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
