"""The frozen app's entry point: the same start-up as the installed mailer-gui script."""

import sys

from mailer_gui.app import main

if __name__ == "__main__":
    sys.exit(main())
