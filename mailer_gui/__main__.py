"""`python -m mailer_gui` runs the same entry point as the `mailer-gui` script."""

import sys

from mailer_gui.app import main

sys.exit(main())
