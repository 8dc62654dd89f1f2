"""Peak memory and time for a message with a 50 MB attachment, Mailer beside the stdlib.

Each client runs in its own fresh Python process so their peaks do not mix:

- **Mailer**: ``build_message`` (the attachment streamed base64 into a spool
  file) and ``Session.send_message`` (the spool file streamed to the server).
- **stdlib**: ``EmailMessage.add_attachment`` + ``smtplib.SMTP.send_message``.

Both send to Postfix's ``smtp-sink`` on 127.0.0.1. A child measures its RSS
after its imports (the baseline) and its high-water mark (``VmHWM`` from
/proc/self/status) after sending. Target: Mailer's peak <= baseline + 64 MB,
and Mailer faster than the stdlib path. Exit status 0 met, 1 missed, 2 could
not run.

    python3 tests/bench/bench_memory.py [--size-mb 50] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_throughput import BenchError, find_smtp_sink, running_sink

TARGET_MB = 64.0
HOST = "127.0.0.1"


def _status_kb(field: str) -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise BenchError(f"/proc/self/status has no {field}")


def child(client: str, port: int, attachment: Path, workdir: Path) -> None:
    """Runs in a fresh process: import, note the baseline, send once, report."""
    import smtplib
    from email.message import EmailMessage

    from mailer_gui.message.addresses import parse_address
    from mailer_gui.message.build import build_message
    from mailer_gui.message.draft import Draft
    from mailer_gui.smtp.session import Envelope, Session
    from mailer_gui.smtp.settings import AuthMethod, Security, ServerSettings

    baseline_kb = _status_kb("VmRSS")
    started = time.perf_counter()
    if client == "mailer":
        draft = Draft(
            sender=parse_address("Ann <ann@example.org>"),
            to=(parse_address("bob@example.org"),),
            subject="A large attachment",
            body="The file is attached.",
            attachments=(attachment,),
        )
        built = build_message(draft, spool_dir=workdir)
        settings = ServerSettings(HOST, port, Security.NONE, auth=AuthMethod.NONE)
        with Session(settings) as session, built.path.open("rb") as body:
            result = session.send_message(
                Envelope(built.envelope_from, built.recipients), body, built.size
            )
        built.path.unlink()
        if result.outcome != "sent":
            raise BenchError(f"Mailer: {result.outcome}")
    else:
        message = EmailMessage()
        message["From"] = "Ann <ann@example.org>"
        message["To"] = "bob@example.org"
        message["Subject"] = "A large attachment"
        message.set_content("The file is attached.")
        message.add_attachment(
            attachment.read_bytes(),
            maintype="application",
            subtype="octet-stream",
            filename=attachment.name,
        )
        with smtplib.SMTP(HOST, port, local_hostname="[127.0.0.1]") as smtp:
            refused = smtp.send_message(message)
        if refused:
            raise BenchError(f"stdlib: refused {refused}")
    elapsed = time.perf_counter() - started
    print(
        json.dumps(
            {
                "baseline_mb": baseline_kb / 1024,
                "peak_mb": _status_kb("VmHWM") / 1024,
                "seconds": elapsed,
            }
        )
    )


def run_child(client: str, port: int, attachment: Path, workdir: Path) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, __file__, "--child", client, "--port", str(port),
         "--attachment", str(attachment), "--workdir", str(workdir)],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise BenchError(f"{client} child failed:\n{done.stderr[-2000:]}")
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def make_attachment(path: Path, size_mb: int) -> None:
    with path.open("wb") as out:
        for _ in range(size_mb):
            out.write(os.urandom(1024 * 1024))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--smtp-sink", metavar="PATH")
    parser.add_argument("--child", choices=("mailer", "stdlib"), help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--attachment", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child, args.port, args.attachment, args.workdir)
        return 0
    try:
        program = find_smtp_sink(args.smtp_sink)
        with tempfile.TemporaryDirectory(prefix="mailer-bench-mem-") as tmp:
            workdir = Path(tmp)
            attachment = workdir / "large.bin"
            make_attachment(attachment, args.size_mb)
            runs: dict[str, list[dict[str, float]]] = {"mailer": [], "stdlib": []}
            with running_sink(program, workdir) as sink:
                for round_number in range(args.rounds):
                    order = ("mailer", "stdlib") if round_number % 2 == 0 else ("stdlib", "mailer")
                    for client in order:
                        runs[client].append(run_child(client, sink.port, attachment, workdir))
    except BenchError as exc:
        print(f"bench_memory: {exc}", file=sys.stderr)
        return 2

    print(f"{args.size_mb} MB attachment to smtp-sink, {args.rounds} rounds, fresh process each\n")
    print(f"{'client':8} {'baseline MB':>12} {'peak MB':>9} {'above base':>11} {'seconds':>8}")
    summary: dict[str, tuple[float, float]] = {}
    for client, results in runs.items():
        above = statistics.median(r["peak_mb"] - r["baseline_mb"] for r in results)
        seconds = statistics.median(r["seconds"] for r in results)
        baseline = statistics.median(r["baseline_mb"] for r in results)
        peak = statistics.median(r["peak_mb"] for r in results)
        summary[client] = (above, seconds)
        print(f"{client:8} {baseline:12.1f} {peak:9.1f} {above:11.1f} {seconds:8.2f}")
    mailer_above, mailer_seconds = summary["mailer"]
    stdlib_seconds = summary["stdlib"][1]
    memory_ok = mailer_above <= TARGET_MB
    speed_ok = mailer_seconds < stdlib_seconds
    print(
        f"\nMailer above baseline: {mailer_above:.1f} MB (target <= {TARGET_MB:.0f}): "
        f"{'MET' if memory_ok else 'MISSED'}"
    )
    print(
        f"Mailer {mailer_seconds:.2f} s vs stdlib {stdlib_seconds:.2f} s (target: faster): "
        f"{'MET' if speed_ok else 'MISSED'}"
    )
    return 0 if memory_ok and speed_ok else 1


if __name__ == "__main__":
    sys.exit(main())
