"""The Settings dialog and its pages (Accounts, Sending, Composer, Privacy)."""

from mailer_gui.ui.settings.dialog import SettingsDialog

__all__ = ["SettingsDialog"]
