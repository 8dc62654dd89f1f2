"""How long the Markdown renderer takes for the composer's live preview.

The preview re-renders a debounced moment after each keystroke with the very
function that builds the sent HTML, so a letter must render well inside a
frame budget. Target: a 20 KB letter in under 50 ms (median of 20 runs).
Exit status 0 met, 1 missed.

    python3 tests/bench/bench_render.py
"""

from __future__ import annotations

import statistics
import sys
import time

from mailer_gui.message.render import render_html

TARGET_MS = 50.0

PROSE = (
    "Thanks for the *notes*; I agree with most of them and moved the table to the "
    "[end](https://example.org/budget).\nCan you look again before `Friday`? The "
    "numbers for **March** are in, and they look better than we feared.\n\n"
    "- first point\n- second point\n\n> quoted from the last mail\n\n"
)
EXTRAS = (
    "| item | cost |\n|---|---:|\n| paper | 12 |\n| ink | 30 |\n\n"
    "```python\nfor row in rows:\n    print(row)\n```\n\n"
)


def letter(size: int = 20_000) -> str:
    """A long letter: mostly prose, with a table and a code block."""
    return EXTRAS + (PROSE * (size // len(PROSE) + 1))[: size - len(EXTRAS)]


def main() -> int:
    text = letter()
    render_html(text)  # warm the caches as a live preview would be
    times = []
    for _ in range(20):
        started = time.perf_counter()
        render_html(text)
        times.append((time.perf_counter() - started) * 1000)
    median = statistics.median(times)
    print(f"20 KB letter: median {median:.1f} ms, min {min(times):.1f}, max {max(times):.1f}")
    met = median < TARGET_MS
    print(f"target < {TARGET_MS:.0f} ms: {'MET' if met else 'MISSED'}")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
