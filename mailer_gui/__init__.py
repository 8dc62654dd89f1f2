"""Mailer: a desktop mail composer that delivers over SMTP and shows what happened."""

__version__ = "0.1.0"
APP_NAME = "mailer-gui"
