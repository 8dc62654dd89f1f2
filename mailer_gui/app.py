"""Start-up: decide between the command line and the desktop window.

`mailer-gui send ...` and the other commands run the CLI without loading Qt;
no arguments, a mailto: URL or `compose [mailto:...]` open the window (or hand
the URL to the window already open).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence


def _wants_cli(argv: Sequence[str]) -> bool:
    """True when the first word that is not an option names a CLI command."""
    args = iter(argv)
    for arg in args:
        if arg in ("-h", "--help", "--version"):
            return True
        if arg == "--home":
            next(args, None)  # its value is a folder, not a command
            continue
        if arg.startswith("-"):
            continue
        # A mailto: link (or `compose`) opens the composer; any other word is
        # a command, and a mistyped one gets the CLI's usage message, not a window.
        return not (arg.lower().startswith("mailto:") or arg == "compose")
    return False


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args == ["--self-test"]:
        from mailer_gui.ui.self_test import run_self_test

        return run_self_test()
    if _wants_cli(args):
        # Imported here: the CLI pulls in the outbox, SMTP and email modules,
        # which the window loads only after its first paint.
        from mailer_gui import cli

        return cli.main(args)
    from mailer_gui.ui.main_window import run_gui

    return run_gui(args)


if __name__ == "__main__":
    sys.exit(main())
