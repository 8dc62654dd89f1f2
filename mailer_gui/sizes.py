"""File and message sizes as people read them (binary units: 1 KB = 1024 bytes).

One wording for the detail pane, the status bar's send progress and anything
else that shows a size; no Qt, so the core may use it too.
"""

from __future__ import annotations


def human_size(size: float) -> str:
    """``845`` -> ``"845 bytes"``, ``1536`` -> ``"1.5 KB"``, ``3_500_000`` -> ``"3.3 MB"``."""
    if size < 1024:
        return f"{int(size)} bytes" if size != 1 else "1 byte"
    for unit in ("KB", "MB", "GB"):
        size /= 1024
        if size < 1024 or unit == "GB":
            break
    return f"{size:.1f} {unit}"


__all__ = ["human_size"]
