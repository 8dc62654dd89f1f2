"""A delaying TCP proxy in a process of its own, for the benchmarks.

    python3 tests/bench/delay_proxy.py HOST:PORT SECONDS

Listens on 127.0.0.1 (a free port, printed on the first line of standard
output) and forwards every connection to HOST:PORT, holding each chunk
SECONDS in each direction (bench_roundtrips.DelayProxy). It runs until its
standard input closes, so it ends with the benchmark that started it. In a
process of its own, its threads take no time from the client being measured.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_roundtrips import DelayProxy


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    host, _, port = argv[0].rpartition(":")
    with DelayProxy((host, int(port)), float(argv[1])) as proxy:
        print(proxy.port, flush=True)
        sys.stdin.read()  # until the benchmark closes the pipe or ends
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
