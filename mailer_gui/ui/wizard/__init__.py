"""The account setup wizard (QWizard): from an address and a password to a
tested, saved account. See wizard.py for the flow and what is written when."""

from mailer_gui.ui.wizard.wizard import PageId, SetupWizard

__all__ = ["PageId", "SetupWizard"]
