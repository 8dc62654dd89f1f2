"""The composer window and its parts: address fields, Markdown editor, preview, attachments."""

from mailer_gui.ui.composer.attachments import SizeLimits, probe_size_limit
from mailer_gui.ui.composer.window import ComposerWindow, SendLaterDialog

__all__ = ["ComposerWindow", "SendLaterDialog", "SizeLimits", "probe_size_limit"]
