"""Outbox throughput: 1,000 queued 10 KB messages flushed by the Runner, beside smtplib.

Starts Postfix's ``smtp-sink`` on 127.0.0.1 (as bench_throughput.py does) and,
per round:

- **outbox**: a fresh OutboxStore (SQLite WAL + spool) gets N messages of S
  bytes queued for one relay account (``enqueue``: spool file fsynced, renamed,
  folder fsynced, row committed), timed apart and not part of the ratio. The
  account lives in an accounts file, read by the runner as the command line's
  runner reads it. Then ``Runner.deliver_now(account=...)`` is timed,
  durability included: it claims the messages 25 at a time (row leases, one
  transaction), reads each from the spool (whole: a 10 KB message fits in one
  read) and checks it against the DATA plan made when it was queued (its
  CRC-32; only its dots are doubled then), writes its end-of-data mark before
  the final "." (a line in the runner's marks file), sends the next message's
  MAIL, RCPT and DATA with that "." (PIPELINING), reads that next message and
  builds the commands that will go with its own "." while the server works,
  and writes the server's replies with their transcripts in batches (one
  transaction per 25, together with the next claim) just after a final "."
  left, over connections reused for 50 messages each; the store's own thread
  copies SQLite's log into the database meanwhile. The flush returns only
  when every result is in SQLite, and every message must end ``sent``.
- **session**: Mailer's SMTP session alone on one connection, the same bytes
  (bench_throughput.send_with_mailer): no outbox, no database. It shows what
  the outbox adds to the session, and what the session costs beside smtplib.
- **smtplib**: one ``smtplib.SMTP`` connection, N ``sendmail()`` calls, ``quit()``,
  the same bytes (bench_throughput.send_with_smtplib).

The three take turns for ``--rounds`` rounds (who goes first rotates) after an
untimed warm-up. Result: median messages/second of each and the ratio
outbox / smtplib (session / smtplib shown beside it). Target (DESIGN.md,
"Numbers that matter"): the outbox flush at least as fast as the smtplib loop,
durability included. When it is missed (or with ``--profile``), one more
flush runs under cProfile and the time spent in mailer_gui is printed per file
and per function, SQLite calls shown apart.

``--delay MS`` runs the same through a proxy (delay_proxy.py, a process of its
own) that holds every chunk MS milliseconds each way; the target is set for no
delay.

Run:  python3 tests/bench/bench_outbox.py [--messages 1000] [--size 10240] [--rounds 3]
Exit: 0 target met, 1 target missed, 2 could not run.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import os
import pstats
import smtplib
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_throughput import (
    HOST,
    RECIPIENT,
    SENDER,
    BenchError,
    find_smtp_sink,
    make_message,
    running_sink,
    send_with_mailer,
    send_with_smtplib,
)

from mailer_gui.accounts.model import Account
from mailer_gui.accounts.store import AccountStore
from mailer_gui.message.build import BuiltMessage
from mailer_gui.outbox.runner import Runner
from mailer_gui.outbox.store import OutboxStore, State
from mailer_gui.smtp.errors import SmtpError
from mailer_gui.smtp.settings import AuthMethod, Security

ACCOUNT = "bench"
_MESSAGE_ID = b"Message-ID: <bench@example.test>\r\n"


@dataclass(frozen=True)
class Timing:
    wall: float
    cpu: float


@dataclass
class Outbox:
    store: OutboxStore
    accounts: AccountStore
    enqueue: Timing


def fill_outbox(workdir: Path, port: int, message: bytes, count: int) -> Outbox:
    """A fresh outbox with ``count`` copies of ``message``, each with its own Message-ID.

    The bytes are written as build_message writes them (a 0600 file in the
    spool folder, fsynced) and queued with ``enqueue``; only the Message-ID
    differs (about 20 bytes longer), so the server gets the bytes smtplib sends.
    """
    if _MESSAGE_ID not in message:
        raise BenchError("the benchmark message has no Message-ID line to vary")
    store = OutboxStore(workdir / "outbox.sqlite3", workdir / "spool")
    accounts = AccountStore(workdir / "accounts.json")
    accounts.add(
        Account(
            name=ACCOUNT,
            email=SENDER,
            host=HOST,
            port=port,
            security=Security.NONE,
            auth=AuthMethod.NONE,
            secret_source="none",
        )
    )
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for number in range(count):
        message_id = f"<bench-{number:06d}-{os.getpid()}@example.test>"
        data = message.replace(_MESSAGE_ID, f"Message-ID: {message_id}\r\n".encode())
        path = store.spool_dir / f"msg-{number:06d}.eml"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        built = BuiltMessage(
            path=path,
            size=len(data),
            message_id=message_id,
            envelope_from=SENDER,
            recipients=(RECIPIENT,),
            smtputf8=False,
        )
        store.enqueue(built, account=ACCOUNT, subject=f"bench {number}")
    timing = Timing(time.perf_counter() - wall0, time.process_time() - cpu0)
    return Outbox(store, accounts, timing)


def make_runner(outbox: Outbox) -> Runner:
    """A runner as the command line makes one: accounts read from their file."""
    return Runner(
        outbox.store,
        outbox.accounts.get,
        credentials=lambda account: None,
        owner="bench",
    )


def check_sent(outbox: Outbox, count: int) -> None:
    counts = outbox.store.counts()
    if counts != {State.SENT: count}:
        rows = outbox.store.messages([s for s in State if s is not State.SENT], limit=1)
        why = f": {rows[0].last_error}" if rows else ""
        raise BenchError(f"outbox: after the flush {dict(counts)}{why}")


def flush(outbox: Outbox, count: int) -> Timing:
    runner = make_runner(outbox)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    runner.deliver_now(account=ACCOUNT)
    timing = Timing(time.perf_counter() - wall0, time.process_time() - cpu0)
    check_sent(outbox, count)
    return timing


def session_loop(port: int, message: bytes, count: int) -> Timing:
    cpu0, wall0 = time.process_time(), time.perf_counter()
    send_with_mailer(port, message, count)
    return Timing(time.perf_counter() - wall0, time.process_time() - cpu0)


def smtplib_loop(port: int, message: bytes, count: int) -> Timing:
    cpu0, wall0 = time.process_time(), time.perf_counter()
    send_with_smtplib(port, message, count)
    return Timing(time.perf_counter() - wall0, time.process_time() - cpu0)


# ------------------------------------------------------------------ profiling

Key = tuple[str, int, str]


def _short(key: Key) -> str:
    filename, line, name = key
    if "mailer_gui" in filename:
        return f"{filename[filename.rindex('mailer_gui') :]}:{name} (L{line})"
    return name if filename == "~" else f"{os.path.basename(filename)}:{name}"


def profile_flush(outbox: Outbox, count: int, top: int) -> None:
    """One flush under cProfile: where the time goes, per mailer_gui file and function.

    "self" is a function's own time plus the C built-ins it calls directly;
    the SQLite share (execute, fetch, commit in C) is also shown per calling
    function, since that is where durability costs.
    """
    runner = make_runner(outbox)
    profiler = cProfile.Profile()
    wall0 = time.perf_counter()
    profiler.enable()
    try:
        runner.deliver_now(account=ACCOUNT)
    finally:
        profiler.disable()
    wall = time.perf_counter() - wall0
    check_sent(outbox, count)
    raw = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    total = sum(entry[2] for entry in raw.values())
    per = 1e6 / count
    own: defaultdict[Key, float] = defaultdict(float)
    sqlite: defaultdict[Key, float] = defaultdict(float)
    sqlite_calls: Counter[Key] = Counter()
    cum: dict[Key, float] = {}
    calls: dict[Key, int] = {}
    sockets = 0.0
    sqlite_total = 0.0
    by_area: defaultdict[str, float] = defaultdict(float)
    for key, (_cc, ncalls, tottime, cumtime, callers) in raw.items():
        filename, _line, name = key
        if "mailer_gui" in filename:
            own[key] += tottime
            cum[key] = cumtime
            calls[key] = ncalls
            continue
        is_sqlite = filename == "~" and "sqlite3" in name
        is_socket = filename == "~" and any(
            f"'{s}'" in name for s in ("sendall", "send", "recv", "recv_into", "poll", "select")
        )
        if is_sqlite:
            sqlite_total += tottime
        elif is_socket:
            sockets += tottime
        else:
            by_area["other Python and C outside mailer_gui"] += tottime
        for caller, caller_stats in callers.items():
            if "mailer_gui" not in caller[0] or filename != "~":
                continue
            if is_sqlite:
                sqlite[caller] += caller_stats[2]
                sqlite_calls[caller] += caller_stats[0]
            elif not is_socket:
                own[caller] += caller_stats[2]
                by_area["other Python and C outside mailer_gui"] -= caller_stats[2]
    for key, seconds in own.items():
        path = _short(key).split(":")[0]
        by_area[path] += seconds

    print()
    print(f"Profile of one outbox flush ({count} messages) under cProfile:")
    print(
        f"  profiled wall {wall:.3f} s ({count / wall:.0f} msg/s); cProfile inflates each "
        "Python call, so read the shares"
    )
    print()
    print(f"  {'where the time goes':58} {'us/msg':>8} {'share':>6}")
    rows = [
        ("SQLite (sqlite3 C calls: execute, fetch, connect)", sqlite_total),
        ("socket calls (kernel, waiting for smtp-sink)", sockets),
    ]
    rows += sorted(by_area.items(), key=lambda item: item[1], reverse=True)
    for name, seconds in rows:
        if seconds * per >= 0.5:
            print(f"  {name:58} {seconds * per:8.1f} {seconds / total:6.1%}")
    print(f"  {'total':58} {total * per:8.1f}")
    print()
    header = (
        f"  {'mailer_gui function':58} {'calls':>6} {'self':>7} {'sqlite':>7} "
        f"{'(calls)':>7} {'cum':>7}"
    )
    print(header + "  (us/msg; calls per flush)")
    print("  " + "-" * (len(header) - 2))
    ranked = sorted(own, key=lambda k: own[k] + sqlite[k], reverse=True)
    for key in ranked[:top]:
        print(
            f"  {_short(key):58} {calls.get(key, 0):6d} {own[key] * per:7.1f}"
            f" {sqlite[key] * per:7.1f} {sqlite_calls[key]:7d} {cum.get(key, 0.0) * per:7.1f}"
        )
    outbox_rows = [k for k in own if "mailer_gui/outbox/" in k[0]]
    print()
    print("  mailer_gui/outbox only, by cumulative time (us/msg):")
    for key in sorted(outbox_rows, key=lambda k: cum.get(k, 0.0), reverse=True)[:top]:
        print(f"    {cum.get(key, 0.0) * per:8.1f}  {_short(key)}  ({calls.get(key, 0)} calls)")


# ----------------------------------------------------------------------- main


@contextlib.contextmanager
def delayed(port: int, delay_ms: float) -> Iterator[int]:
    """The port the clients use: smtp-sink's, or a delaying proxy's in front of it."""
    if not delay_ms:
        yield port
        return
    proxy = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("delay_proxy.py")),
         f"{HOST}:{port}", str(delay_ms / 1000)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proxy.stdout is not None
        line = proxy.stdout.readline().strip()
        if not line.isdigit():
            raise BenchError(f"the delay proxy did not start (it said {line!r})")
        yield int(line)
    finally:
        assert proxy.stdin is not None
        proxy.stdin.close()  # it stops when its standard input closes
        try:
            proxy.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proxy.kill()
            proxy.wait(timeout=10)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=1000, help="messages per run")
    parser.add_argument("--size", type=int, default=10 * 1024, help="bytes per message")
    parser.add_argument("--rounds", type=int, default=3, help="rotating rounds")
    parser.add_argument("--warmup", type=int, default=50, help="untimed messages per client")
    parser.add_argument("--profile", action="store_true", help="profile even if the target is met")
    parser.add_argument("--top", type=int, default=20, help="functions in the profile tables")
    parser.add_argument("--smtp-sink", metavar="PATH", help="the smtp-sink program")
    parser.add_argument(
        "--delay",
        type=float,
        default=0.0,
        metavar="MS",
        help="one-way delay in milliseconds, through a proxy in its own process "
        "(the target is for no delay; this shows what round trips cost)",
    )
    args = parser.parse_args(argv)
    if args.messages < 1 or args.rounds < 1 or args.size < 512:
        parser.error("--messages and --rounds must be >= 1 and --size >= 512")

    try:
        program = find_smtp_sink(args.smtp_sink)
        message = make_message(args.size)
        with tempfile.TemporaryDirectory(prefix="mailer-bench-outbox-") as tmp:
            root = Path(tmp)
            with running_sink(program, root) as sink, delayed(sink.port, args.delay) as port:
                if args.delay:
                    print(f"a {args.delay:g} ms one-way delay on each direction (delay_proxy.py)")
                print(
                    f"smtp-sink pid {sink.process.pid} on {HOST}:{sink.port}; {args.messages} "
                    f"messages x {args.size} bytes per run, {args.rounds} rounds; outbox: one "
                    "relay account, Runner.deliver_now(); session and smtplib: one connection"
                )
                serial = iter(range(10**6))

                def fresh(count: int) -> Outbox:
                    return fill_outbox(root / f"outbox-{next(serial)}", port, message, count)

                flush(fresh(args.warmup), args.warmup)
                session_loop(port, message, args.warmup)
                smtplib_loop(port, message, args.warmup)
                enqueues: list[Timing] = []
                runs: dict[str, list[Timing]] = {"outbox": [], "session": [], "smtplib": []}
                steps = list(runs)
                for number in range(args.rounds):
                    outbox = fresh(args.messages)  # untimed for the ratio
                    enqueues.append(outbox.enqueue)
                    for step in steps[number % 3 :] + steps[: number % 3]:
                        if step == "outbox":
                            timing = flush(outbox, args.messages)
                        elif step == "session":
                            timing = session_loop(port, message, args.messages)
                        else:
                            timing = smtplib_loop(port, message, args.messages)
                        runs[step].append(timing)
                        print(
                            f"  round {number + 1} {step:8} {args.messages / timing.wall:8.0f} "
                            f"msg/s  ({timing.wall:.3f} s, CPU "
                            f"{timing.cpu * 1e6 / args.messages:.0f} us/msg)",
                            flush=True,
                        )
                    outbox.store.close()

                def rate(timings: list[Timing]) -> float:
                    return float(statistics.median(args.messages / t.wall for t in timings))

                def cpu(timings: list[Timing]) -> float:
                    return float(statistics.median(t.cpu * 1e6 / args.messages for t in timings))

                print()
                print(f"{'':24} {'median msg/s':>13} {'min':>8} {'max':>8} {'CPU us/msg':>11}")
                for name, timings in (
                    ("enqueue (not in ratio)", enqueues),
                    ("outbox flush", runs["outbox"]),
                    ("session alone", runs["session"]),
                    ("smtplib loop", runs["smtplib"]),
                ):
                    each = [args.messages / t.wall for t in timings]
                    print(
                        f"{name:24} {rate(timings):13.0f} {min(each):8.0f} {max(each):8.0f}"
                        f" {cpu(timings):11.0f}"
                    )
                ratio = rate(runs["outbox"]) / rate(runs["smtplib"])
                met = ratio >= 1.0
                print()
                print(
                    f"ratio session alone / smtplib loop = "
                    f"{rate(runs['session']) / rate(runs['smtplib']):.2f}"
                )
                print(
                    f"ratio outbox flush / smtplib loop = {ratio:.2f}  (target >= 1.00"
                    + (", set for no delay): " if args.delay else "): ")
                    + ("MET" if met else "MISSED")
                )
                if not met or args.profile:
                    outbox = fresh(args.messages)
                    profile_flush(outbox, args.messages, args.top)
                    outbox.store.close()
                if sink.process.poll() is not None:
                    raise BenchError(f"smtp-sink exited early: {sink.log_text()}")
    except BenchError as exc:
        print(f"bench_outbox: {exc}", file=sys.stderr)
        return 2
    except (OSError, smtplib.SMTPException, SmtpError) as exc:
        print(f"bench_outbox: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
