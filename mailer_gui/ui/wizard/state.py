"""What the wizard's pages know together, held in memory until the wizard is accepted.

Nothing here is written anywhere: the account and its password are saved only
by `SetupWizard.accept` (wizard.py). The password lives in this object and in
the page's line edit, never in a repr, a log line or a file.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mailer_gui.accounts.discover import Candidate, DiscoveryResult
from mailer_gui.paths import AppPaths
from mailer_gui.smtp.certinfo import CertificateInfo
from mailer_gui.smtp.settings import AuthMethod, Security, ServerSettings, Timeouts
from mailer_gui.ui.wizard.background import TaskGroup
from mailer_gui.ui.wizard.login_check import LOGIN_CONNECT_TIMEOUT, LOGIN_STEP_TIMEOUT

__all__ = ["ExistingAccounts", "PageId", "Pin", "ServerChoice", "WizardState"]


class PageId(enum.IntEnum):
    """The wizard's pages, in order."""

    START = 0
    DISCOVERY = 1
    SETTINGS = 2
    LOGIN = 3
    IDENTITY = 4


@dataclass(frozen=True)
class ServerChoice:
    """The submission server as the settings page has it (found, then maybe edited)."""

    host: str
    port: int
    security: Security
    auth: AuthMethod
    username: str | None  # None: log in with the email address
    candidate: Candidate | None = None  # what discovery proposed, if it came from there
    # The person confirmed the warning that the password would travel in clear.
    allow_insecure_auth: bool = False

    def settings(self, address: str, fingerprint: str | None) -> ServerSettings:
        """Engine settings for the login test (bounded timeouts, the pin when there is one)."""
        login = None if self.auth is AuthMethod.NONE else (self.username or address)
        return ServerSettings(
            host=self.host,
            port=self.port,
            security=self.security,
            auth=self.auth,
            username=login,
            allow_insecure_auth=self.allow_insecure_auth,
            tls_fingerprint=fingerprint,
            timeouts=Timeouts(
                connect=LOGIN_CONNECT_TIMEOUT,
                greeting=LOGIN_STEP_TIMEOUT,
                command=LOGIN_STEP_TIMEOUT,
            ),
        )

    def describe(self) -> str:
        return f"{self.host} port {self.port} ({self.security.value})"


@dataclass(frozen=True)
class Pin:
    """A certificate the person chose to trust, for one server."""

    host: str
    port: int
    sha256: str  # lower-case hex, no colons
    certificate: CertificateInfo | None = None  # what the person saw when trusting it

    def applies_to(self, choice: ServerChoice) -> bool:
        return (self.host.lower(), self.port) == (choice.host.lower(), choice.port)


@dataclass(frozen=True)
class ExistingAccounts:
    """The accounts already there, read once when the wizard opens."""

    names: frozenset[str] = frozenset()  # casefolded
    error: str = ""  # the accounts file cannot be read: why

    def taken(self, name: str) -> bool:
        return name.casefold() in self.names


@dataclass
class WizardState:
    paths: AppPaths
    discovery_options: Mapping[str, Any] = field(default_factory=dict)
    your_name: str = ""
    address: str = ""
    password: str = field(default="", repr=False)
    manual: bool = False
    discovery: DiscoveryResult | None = None
    choice: ServerChoice | None = None
    pin: Pin | None = None
    tested: tuple[ServerChoice, str | None] | None = None  # what logged in, with its pin
    existing: ExistingAccounts | None = None  # None until read
    tasks: TaskGroup = field(default_factory=lambda: TaskGroup())

    def pin_for(self, choice: ServerChoice) -> str | None:
        return self.pin.sha256 if self.pin is not None and self.pin.applies_to(choice) else None
