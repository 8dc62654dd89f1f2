"""The account setup wizard end to end (offscreen, pytest-qt) against real peers:
dnsmasq for SRV/MX/A (through MAILER_GUI_NAMESERVER, as the app itself does),
aiosmtpd on loopback for the login, gnome-keyring or an in-memory keyring.

Guessed servers are probed by name, and only ``localhost`` resolves without
the network, so the tests that let discovery guess use addresses @localhost;
the others turn guessing and autoconfig off through ``discovery_options``.
"""

from __future__ import annotations

import base64
import re
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import keyring
import pytest
from keyring.backends import fail
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QWizard

from mailer_gui.accounts import secrets
from mailer_gui.accounts.model import Account
from mailer_gui.accounts.store import AccountStore
from mailer_gui.paths import AppPaths, ensure_private_dir, resolve_paths
from mailer_gui.smtp.settings import AuthMethod, Security
from mailer_gui.ui.wizard import PageId, SetupWizard
from mailer_gui.ui.wizard.background import THREAD_PREFIX
from mailer_gui.ui.wizard.discovery_page import SOURCE_ROWS
from tests.servers.aiosmtpd_server import AiosmtpdFactory
from tests.servers.dnsmasq import Dnsmasq, DnsmasqFactory
from tests.servers.secret_service import MemoryKeyring, SecretServiceHandle, use_keyring_backend
from tests.servers.tls import ServerCert

# The offscreen platform cannot resize a shown top-level window to its size hints.
pytestmark = pytest.mark.qt_log_ignore(r"This plugin does not support propagateSizeHints\(\)")

ADDRESS = "someone@localhost"
PASSWORD = "correct horse battery staple 7"
NO_AUTOCONFIG: list[str] = []
WAIT_MS = 20_000


def no_autoconfig(domain: str, address: str) -> list[str]:
    return NO_AUTOCONFIG


def worker_threads() -> set[threading.Thread]:
    """The wizard's own workers and the discovery threads they started."""
    return {
        t
        for t in threading.enumerate()
        if t.name.startswith((THREAD_PREFIX, "mailer-discover-")) and t.is_alive()
    }


@pytest.fixture(autouse=True)
def no_thread_left_behind() -> Iterator[None]:
    """Every worker a test started ends (by cancel or its own timeouts) soon after."""
    before = worker_threads()
    yield
    deadline = time.monotonic() + 10
    while worker_threads() - before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert worker_threads() - before == set()


@pytest.fixture
def paths(tmp_path: Path) -> AppPaths:
    return resolve_paths(tmp_path / "home")


def localhost_dns(factory: DnsmasqFactory, **records: object) -> Dnsmasq:
    """dnsmasq answering for .test and localhost (A 127.0.0.1), nothing else."""
    hosts = {"localhost": "127.0.0.1", **records.pop("hosts", {})}  # type: ignore[dict-item]
    return factory(local=("test", "localhost"), hosts=hosts, **records)  # type: ignore[arg-type]


def open_wizard(qtbot, paths: AppPaths, **options: object) -> SetupWizard:
    wizard = SetupWizard(paths, discovery_options={"timeout": 8, **options})
    qtbot.addWidget(wizard)
    wizard.show()
    return wizard


def fill_start(
    wizard: SetupWizard,
    address: str = ADDRESS,
    password: str = PASSWORD,
    *,
    name: str = "Some One",
    manual: bool = False,
) -> None:
    page = wizard.start_page
    page.name_edit.setText(name)
    page.address_edit.setText(address)
    page.password_edit.setText(password)
    page.manual_check.setChecked(manual)


def press_next(qtbot, wizard: SetupWizard) -> None:
    button = wizard.button(QWizard.WizardButton.NextButton)
    assert button.isEnabled()
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)


def discover_then_settings(qtbot, wizard: SetupWizard) -> None:
    """From a filled first page through discovery to the settings page."""
    press_next(qtbot, wizard)
    assert wizard.currentId() == PageId.DISCOVERY
    qtbot.waitUntil(wizard.discovery_page.isComplete, timeout=WAIT_MS)
    press_next(qtbot, wizard)
    assert wizard.currentId() == PageId.SETTINGS


def confirm_and_log_in(qtbot, wizard: SetupWizard) -> None:
    """Tick the box under the settings page's warning, pass a working login, go on."""
    wizard.settings_page.confirm_check.setChecked(True)
    press_next(qtbot, wizard)
    assert wizard.currentId() == PageId.LOGIN
    wait_for_login(qtbot, wizard)
    assert wizard.login_page.report is not None and wizard.login_page.report.ok
    press_next(qtbot, wizard)


def wait_for_login(qtbot, wizard: SetupWizard) -> None:
    page = wizard.login_page
    qtbot.waitUntil(lambda: page.report is not None and not page.testing, timeout=WAIT_MS)


def finish(qtbot, wizard: SetupWizard) -> str:
    """Press Finish and wait for the account to be saved; its name."""
    button = wizard.button(QWizard.WizardButton.FinishButton)
    with qtbot.waitSignal(wizard.accountCreated, timeout=WAIT_MS) as created:
        qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not wizard.isVisible(), timeout=WAIT_MS)
    assert wizard.result() == QWizard.DialogCode.Accepted
    return str(created.args[0])


def secret_forms(password: str) -> list[str]:
    raw = password.encode()
    return [password, base64.b64encode(raw).decode()]


def assert_no_password_in(text: str, password: str = PASSWORD) -> None:
    for form in secret_forms(password):
        assert form not in text


# ------------------------------------------------------------ the whole way


@pytest.mark.needs_server("dnsmasq")
def test_settings_found_by_dns_log_in_and_are_saved_with_the_password_in_the_keyring(
    qtbot,
    paths: AppPaths,
    monkeypatch: pytest.MonkeyPatch,
    dnsmasq_factory: DnsmasqFactory,
    aiosmtpd_factory: AiosmtpdFactory,
    trust_test_ca: Path,
    secret_service: SecretServiceHandle,
) -> None:
    smtp = aiosmtpd_factory(tls="starttls", users={ADDRESS: PASSWORD})
    dns = localhost_dns(
        dnsmasq_factory,
        srv={"_submission._tcp.localhost": [("localhost", smtp.port, 0, 0)]},
        mx={"localhost": [(10, "mx.localhost")]},
    )
    monkeypatch.setenv("MAILER_GUI_NAMESERVER", dns.nameserver)
    wizard = open_wizard(
        qtbot, paths, autoconfig_urls=no_autoconfig, guess_ports={Security.STARTTLS: (smtp.port,)}
    )
    fill_start(wizard)
    discover_then_settings(qtbot, wizard)

    # Discovery showed every source's outcome, and what it tried.
    discovery = wizard.discovery_page
    assert discovery.status_text("provider list") == "nothing found"
    assert discovery.status_text("DNS SRV").startswith("found")
    assert discovery.status_text("autoconfig") == "nothing found"
    assert all(discovery.status_text(source) != "looking…" for source in SOURCE_ROWS)
    assert "* DNS SRV: found" in discovery.log.text()
    assert "found localhost port" in discovery.summary.text().lower()
    # The query went to our dnsmasq, through MAILER_GUI_NAMESERVER.
    assert "_submission._tcp.localhost" in dns.log_text()

    settings = wizard.settings_page
    assert settings.host_edit.text() == "localhost"
    assert settings.port_edit.text() == str(smtp.port)
    assert settings.security_combo.currentData() is Security.STARTTLS
    assert settings.auth_combo.currentData() is AuthMethod.AUTO
    assert settings.username_edit.text() == ADDRESS
    assert settings.source_label.text() == "These settings come from DNS SRV."
    assert settings.confirm_check.isHidden()  # localhost is inside the domain localhost
    press_next(qtbot, wizard)

    assert wizard.currentId() == PageId.LOGIN
    wait_for_login(qtbot, wizard)
    login = wizard.login_page
    assert login.report is not None and login.report.ok, login.result.text()
    assert "logged in" in login.result.text()
    transcript = login.log.text()
    assert "AUTH" in transcript and "235" in transcript
    assert "logged in as someone@localhost" in transcript
    assert_no_password_in(transcript)
    assert login.certificate_box.isHidden()
    # Nothing is written before Finish.
    assert not paths.accounts_file.exists()
    assert keyring.get_password(paths.keyring_service, "localhost") is None
    press_next(qtbot, wizard)

    identity = wizard.identity_page
    assert wizard.currentId() == PageId.IDENTITY
    assert identity.account_name_edit.text() == "localhost"
    assert identity.display_name_edit.text() == "Some One"
    qtbot.waitUntil(lambda: identity.keyring_ok is not None, timeout=WAIT_MS)
    assert identity.keyring_ok is True
    assert identity.default_check.isChecked()  # the first account
    identity.signature_edit.setPlainText("-- \nSome One")
    try:
        name = finish(qtbot, wizard)
        assert name == "localhost"
        store = AccountStore(paths.accounts_file)
        account = store.get("localhost")
        assert (account.host, account.port, account.security) == (
            "localhost",
            smtp.port,
            Security.STARTTLS,
        )
        assert account.email == ADDRESS and account.username is None
        assert account.display_name == "Some One"
        assert account.signature == "-- \nSome One"
        assert account.secret_source == "keyring" and account.tls_fingerprint is None
        assert store.default() == account
        assert secrets.get_password(account, service=paths.keyring_service) == PASSWORD
        assert_no_password_in(paths.accounts_file.read_text("utf-8"))
        assert wizard.saved_account == account
    finally:
        secrets.delete_password("localhost", service=paths.keyring_service)


@pytest.mark.needs_server("dnsmasq")
def test_a_wrong_password_is_explained_and_the_page_does_not_advance(
    qtbot,
    paths: AppPaths,
    monkeypatch: pytest.MonkeyPatch,
    dnsmasq_factory: DnsmasqFactory,
    aiosmtpd_factory: AiosmtpdFactory,
    trust_test_ca: Path,
    memory_keyring: MemoryKeyring,
) -> None:
    smtp = aiosmtpd_factory(tls="starttls", users={ADDRESS: PASSWORD})
    dns = localhost_dns(
        dnsmasq_factory, srv={"_submission._tcp.localhost": [("localhost", smtp.port, 0, 0)]}
    )
    monkeypatch.setenv("MAILER_GUI_NAMESERVER", dns.nameserver)
    wizard = open_wizard(qtbot, paths, autoconfig_urls=no_autoconfig, guess_ports={})
    wrong = "not the password 99"
    fill_start(wizard, password=wrong)
    discover_then_settings(qtbot, wizard)
    press_next(qtbot, wizard)
    wait_for_login(qtbot, wizard)

    login = wizard.login_page
    message = login.result.text()
    assert login.result.kind == "error"
    assert "535" in message
    assert "rejected the user name or password" in message
    assert re.search(r"The server said: “[^”]*”\. ", message)  # a full stop after the quote
    assert "Mailer will" not in message  # a test: nothing is retried, nothing to promise
    assert_no_password_in(message + login.log.text(), wrong)
    assert not login.isComplete()
    assert not wizard.button(QWizard.WizardButton.NextButton).isEnabled()
    wizard.next()  # even asked directly, the page holds
    assert wizard.currentId() == PageId.LOGIN

    # Back to the first page, the right password, and the login works.
    for _page in (PageId.LOGIN, PageId.SETTINGS, PageId.DISCOVERY):
        wizard.back()
    assert wizard.currentId() == PageId.START
    wizard.start_page.password_edit.setText(PASSWORD)
    discover_then_settings(qtbot, wizard)
    press_next(qtbot, wizard)
    wait_for_login(qtbot, wizard)
    assert login.report is not None and login.report.ok
    assert wizard.button(QWizard.WizardButton.NextButton).isEnabled()
    assert not paths.accounts_file.exists()
    assert memory_keyring.passwords == {}
    wizard.reject()


@pytest.mark.needs_server("dnsmasq")
def test_an_untrusted_certificate_is_shown_and_pinned_only_when_trusted(
    qtbot,
    paths: AppPaths,
    monkeypatch: pytest.MonkeyPatch,
    dnsmasq_factory: DnsmasqFactory,
    aiosmtpd_factory: AiosmtpdFactory,
    self_signed_cert: ServerCert,
    memory_keyring: MemoryKeyring,
) -> None:
    smtp = aiosmtpd_factory(tls="starttls", cert=self_signed_cert, users={ADDRESS: PASSWORD})
    dns = localhost_dns(
        dnsmasq_factory, srv={"_submission._tcp.localhost": [("localhost", smtp.port, 0, 0)]}
    )
    monkeypatch.setenv("MAILER_GUI_NAMESERVER", dns.nameserver)
    wizard = open_wizard(qtbot, paths, autoconfig_urls=no_autoconfig, guess_ports={})
    fill_start(wizard)
    discover_then_settings(qtbot, wizard)
    press_next(qtbot, wizard)
    wait_for_login(qtbot, wizard)

    login = wizard.login_page
    assert login.result.kind == "error"
    assert "self-signed" in login.result.text()
    assert not login.certificate_box.isHidden()
    fields = {key: label.text().replace("\n", ":") for key, label in login._cert_fields.items()}
    colons = ":".join(self_signed_cert.sha256[i : i + 2] for i in range(0, 64, 2)).upper()
    assert fields["sha256"] == colons
    assert "Mailer tests, self-signed" in fields["subject"]
    assert "Mailer tests, self-signed" in fields["issuer"]
    assert fields["valid"].startswith("from ") and " until " in fields["valid"]
    assert not login.trust_check.isChecked()
    assert login.certificate_box.title() == "The server's certificate is not trusted"
    assert not login.isComplete()
    assert not wizard.button(QWizard.WizardButton.NextButton).isEnabled()
    assert "AUTH" not in login.log.text()  # nothing was sent over an untrusted connection

    # "Test again" without trusting: still refused.
    qtbot.mouseClick(login.retry_button, Qt.MouseButton.LeftButton)
    wait_for_login(qtbot, wizard)
    assert not login.isComplete()

    login.trust_check.click()
    wait_for_login(qtbot, wizard)
    assert login.report is not None and login.report.ok, login.result.text()
    assert login.trust_check.isChecked() and not login.certificate_box.isHidden()
    assert login.certificate_box.title().startswith("You trust this certificate")  # not "not"
    assert "logged in as someone@localhost" in login.log.text()

    # Untrusting takes it back; Back and Next again keep (and show) what was trusted.
    login.trust_check.click()
    wait_for_login(qtbot, wizard)
    assert not login.isComplete() and "self-signed" in login.result.text()
    login.trust_check.click()
    wait_for_login(qtbot, wizard)
    assert login.isComplete()
    wizard.back()
    press_next(qtbot, wizard)
    wait_for_login(qtbot, wizard)
    assert login.isComplete() and login.trust_check.isChecked()
    assert login._cert_fields["sha256"].accessibleDescription() == colons
    press_next(qtbot, wizard)
    assert wizard.currentId() == PageId.IDENTITY
    qtbot.waitUntil(lambda: wizard.identity_page.keyring_ok is not None, timeout=WAIT_MS)
    finish(qtbot, wizard)

    account = AccountStore(paths.accounts_file).get("localhost")
    assert account.tls_fingerprint == self_signed_cert.sha256
    assert memory_keyring.passwords == {(paths.keyring_service, "localhost"): PASSWORD}


@pytest.mark.needs_server("dnsmasq")
def test_cancel_after_discovery_and_a_working_login_leaves_no_trace(
    qtbot,
    paths: AppPaths,
    monkeypatch: pytest.MonkeyPatch,
    dnsmasq_factory: DnsmasqFactory,
    aiosmtpd_factory: AiosmtpdFactory,
    trust_test_ca: Path,
    memory_keyring: MemoryKeyring,
) -> None:
    address = "bob@example.test"
    tls = aiosmtpd_factory(tls="implicit", users={address: PASSWORD})
    starttls = aiosmtpd_factory(tls="starttls", users={address: PASSWORD})
    dns = dnsmasq_factory(
        srv={
            "_submissions._tcp.example.test": [("localhost", tls.port, 0, 0)],
            "_submission._tcp.example.test": [("localhost", starttls.port, 0, 0)],
        },
        mx={"example.test": [(10, "mx.example.test")]},
        hosts={"mx.example.test": "127.0.0.1"},
    )
    monkeypatch.setenv("MAILER_GUI_NAMESERVER", dns.nameserver)
    ensure_private_dir(paths.config_dir)
    AccountStore(paths.accounts_file).add(
        Account(name="example.test", email="old@example.test", host="smtp.example.test")
    )
    before = paths.accounts_file.read_bytes()

    wizard = open_wizard(qtbot, paths, autoconfig_urls=no_autoconfig, guess_ports={})
    fill_start(wizard, address)
    discover_then_settings(qtbot, wizard)

    # Two candidates from SRV, implicit TLS first (RFC 8314); both outside the domain.
    settings = wizard.settings_page
    assert settings.candidate_combo.count() == 2 and not settings.candidate_combo.isHidden()
    assert settings.port_edit.text() == str(tls.port)
    assert settings.security_combo.currentData() is Security.TLS
    assert "outside your domain example.test" in settings.notes.text()
    assert not settings.confirm_check.isHidden()
    press_next(qtbot, wizard)
    assert wizard.currentId() == PageId.SETTINGS
    assert "tick the box" in settings.banner.text()

    settings.candidate_combo.setCurrentIndex(1)
    assert settings.port_edit.text() == str(starttls.port)
    assert settings.security_combo.currentData() is Security.STARTTLS
    assert settings.source_label.text() == "These settings come from DNS SRV."
    settings.username_edit.clear()
    qtbot.keyClicks(settings.username_edit, "bob")
    assert settings.source_label.text() == "Changed by you (first found from DNS SRV)."
    settings.username_edit.selectAll()
    qtbot.keyClicks(settings.username_edit, address)
    assert settings.source_label.text() == "These settings come from DNS SRV."
    confirm_and_log_in(qtbot, wizard)
    identity = wizard.identity_page
    # The domain's name is taken by the account already there.
    qtbot.waitUntil(lambda: identity.account_name_edit.text() == "example.test-2", timeout=WAIT_MS)
    assert not identity.default_check.isChecked()

    qtbot.mouseClick(wizard.button(QWizard.WizardButton.CancelButton), Qt.MouseButton.LeftButton)
    assert not wizard.isVisible()
    assert wizard.result() == QWizard.DialogCode.Rejected
    assert paths.accounts_file.read_bytes() == before
    assert memory_keyring.passwords == {}


# ----------------------------------------------------------------- by hand


def test_the_manual_path_skips_discovery_and_saves_what_was_typed(
    qtbot,
    paths: AppPaths,
    aiosmtpd_factory: AiosmtpdFactory,
    trust_test_ca: Path,
    memory_keyring: MemoryKeyring,
) -> None:
    smtp = aiosmtpd_factory(tls="implicit", users={"ann-login": PASSWORD})
    wizard = open_wizard(qtbot, paths)
    fill_start(wizard, "ann@example.org", name="Ann Example", manual=True)
    press_next(qtbot, wizard)
    assert wizard.currentId() == PageId.SETTINGS
    assert wizard.discovery_page.task is None  # nothing was looked up
    settings = wizard.settings_page
    assert settings.source_label.text() == "Entered by hand."
    assert settings.candidate_combo.isHidden()
    assert settings.port_edit.text() == "587"

    settings.host_edit.setText("localhost")
    settings.security_combo.setCurrentIndex(settings.security_combo.findData(Security.TLS))
    assert settings.port_edit.text() == "465"  # the usual port follows the security
    settings.port_edit.setText(str(smtp.port))
    settings.auth_combo.setCurrentIndex(settings.auth_combo.findData(AuthMethod.PLAIN))
    settings.username_edit.setText("ann-login")
    press_next(qtbot, wizard)
    assert wizard.currentId() == PageId.LOGIN
    wait_for_login(qtbot, wizard)
    assert wizard.login_page.report is not None and wizard.login_page.report.ok
    assert "with PLAIN" in wizard.login_page.log.text()
    press_next(qtbot, wizard)

    identity = wizard.identity_page
    qtbot.waitUntil(lambda: wizard.state.existing is not None, timeout=WAIT_MS)
    identity.account_name_edit.setText("work")
    identity.display_name_edit.setText("Ann E.")
    qtbot.waitUntil(lambda: identity.keyring_ok is not None, timeout=WAIT_MS)
    assert finish(qtbot, wizard) == "work"

    account = AccountStore(paths.accounts_file).get("work")
    assert account == Account(
        name="work",
        email="ann@example.org",
        display_name="Ann E.",
        host="localhost",
        port=smtp.port,
        security=Security.TLS,
        auth=AuthMethod.PLAIN,
        username="ann-login",
    )
    assert memory_keyring.passwords == {(paths.keyring_service, "work"): PASSWORD}


def test_a_server_without_encryption_can_take_the_password_once_the_warning_is_confirmed(
    qtbot, paths: AppPaths, aiosmtpd_factory: AiosmtpdFactory, memory_keyring: MemoryKeyring
) -> None:
    """A login over no encryption: the box under the warning was ticked, and
    the login test still refused to send the password, so such an account
    could not be set up in the window at all."""
    smtp = aiosmtpd_factory(users={"ann@example.org": PASSWORD}, auth_require_tls=False)
    wizard = open_wizard(qtbot, paths)
    fill_start(wizard, "ann@example.org", manual=True)
    press_next(qtbot, wizard)
    settings = wizard.settings_page
    settings.host_edit.setText("127.0.0.1")
    settings.security_combo.setCurrentIndex(settings.security_combo.findData(Security.NONE))
    settings.port_edit.setText(str(smtp.port))
    settings.auth_combo.setCurrentIndex(settings.auth_combo.findData(AuthMethod.PLAIN))
    assert "the password travels in clear" in settings.notes.text()
    press_next(qtbot, wizard)
    assert wizard.currentId() == PageId.SETTINGS  # not without the box ticked
    confirm_and_log_in(qtbot, wizard)
    identity = wizard.identity_page
    qtbot.waitUntil(lambda: wizard.state.existing is not None, timeout=WAIT_MS)
    identity.account_name_edit.setText("plain")
    qtbot.waitUntil(lambda: identity.keyring_ok is not None, timeout=WAIT_MS)
    assert finish(qtbot, wizard) == "plain"
    account = AccountStore(paths.accounts_file).get("plain")
    assert account.security is Security.NONE and account.allow_insecure_auth


def test_without_a_keyring_the_account_is_saved_only_when_asked_and_without_the_password(
    qtbot, paths: AppPaths, aiosmtpd_factory: AiosmtpdFactory, trust_test_ca: Path
) -> None:
    smtp = aiosmtpd_factory(tls="starttls", users={"ann@example.org": PASSWORD})
    with use_keyring_backend(fail.Keyring()):
        wizard = open_wizard(qtbot, paths)
        fill_start(wizard, "ann@example.org", manual=True)
        press_next(qtbot, wizard)
        wizard.settings_page.host_edit.setText("localhost")
        wizard.settings_page.port_edit.setText(str(smtp.port))
        press_next(qtbot, wizard)
        wait_for_login(qtbot, wizard)
        press_next(qtbot, wizard)

        identity = wizard.identity_page
        qtbot.waitUntil(lambda: identity.keyring_ok is not None, timeout=WAIT_MS)
        assert identity.keyring_ok is False
        assert "No usable system keyring" in identity.keyring_banner.text()
        assert not identity.no_keyring_check.isHidden()
        qtbot.waitUntil(lambda: wizard.state.existing is not None, timeout=WAIT_MS)
        qtbot.mouseClick(
            wizard.button(QWizard.WizardButton.FinishButton), Qt.MouseButton.LeftButton
        )
        assert wizard.isVisible()
        assert "Continue without storing the password" in identity.banner.text()
        assert not paths.accounts_file.exists()

        identity.no_keyring_check.setChecked(True)
        finish(qtbot, wizard)
    account = AccountStore(paths.accounts_file).get("example.org")
    assert account.secret_source == "none"
    assert_no_password_in(paths.accounts_file.read_text("utf-8"))


# -------------------------------------------------------------- validation


def test_each_page_refuses_bad_input_with_a_message_on_the_page(
    qtbot, paths: AppPaths, memory_keyring: MemoryKeyring
) -> None:
    wizard = open_wizard(qtbot, paths)
    start = wizard.start_page
    fill_start(wizard, "not an address")
    press_next(qtbot, wizard)
    assert wizard.currentId() == PageId.START
    assert start.banner.kind == "error"
    assert "The email address is not valid" in start.banner.text()

    fill_start(wizard, "ann@example.org", "")
    press_next(qtbot, wizard)
    assert wizard.currentId() == PageId.START
    assert "Enter your password" in start.banner.text()

    fill_start(wizard, "ann@example.org", "", manual=True)
    press_next(qtbot, wizard)
    assert wizard.currentId() == PageId.SETTINGS
    settings = wizard.settings_page
    for host, port, expected in [
        ("", "587", "Enter the outgoing server's name"),
        ("smtp example.org", "587", "must be a host name"),
        ("smtp.example.org", "70000", "not between 1 and 65535"),
        ("smtp.example.org", "0", "not between 1 and 65535"),
        ("smtp.example.org", "abc", "must be a number between 1 and 65535"),
        ("smtp.example.org", "587", "needs a password, and none was entered"),
    ]:
        settings.host_edit.setText(host)
        settings.port_edit.setText(port)
        press_next(qtbot, wizard)
        assert wizard.currentId() == PageId.SETTINGS, expected
        assert expected in settings.banner.text()

    # With no login, no password is needed: on to the test (which finds no server).
    assert settings.username_edit.isEnabled()
    settings.auth_combo.setCurrentIndex(settings.auth_combo.findData(AuthMethod.NONE))
    assert not settings.username_edit.isEnabled()  # no login, no user name to offer
    settings.host_edit.setText("localhost")
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    settings.port_edit.setText(str(port))
    press_next(qtbot, wizard)
    assert wizard.currentId() == PageId.LOGIN
    wait_for_login(qtbot, wizard)
    assert "refused the connection" in wizard.login_page.result.text()
    assert not wizard.login_page.isComplete()
    wizard.reject()
    assert not paths.accounts_file.exists()
    assert memory_keyring.passwords == {}


@pytest.mark.needs_server("dnsmasq")
@pytest.mark.parametrize(
    ("address", "note", "oauth_only"),
    [
        ("someone@gmail.com", "Gmail needs an app password", False),
        ("someone@outlook.com", "Outlook.com accepts only OAuth2", True),
    ],
)
def test_provider_notes_are_shown_with_the_settings(
    qtbot,
    paths: AppPaths,
    monkeypatch: pytest.MonkeyPatch,
    dnsmasq_factory: DnsmasqFactory,
    address: str,
    note: str,
    oauth_only: bool,
) -> None:
    # dnsmasq answers nothing but .test: no lookup leaves this machine.
    monkeypatch.setenv("MAILER_GUI_NAMESERVER", dnsmasq_factory().nameserver)
    wizard = open_wizard(qtbot, paths, autoconfig_urls=no_autoconfig, guess_ports={})
    fill_start(wizard, address)
    discover_then_settings(qtbot, wizard)
    assert wizard.discovery_page.status_text("provider list").startswith("found")
    settings = wizard.settings_page
    assert settings.source_label.text() == "These settings come from the provider list."
    assert note in settings.notes.text()
    if oauth_only:
        assert settings.auth_combo.currentData() is AuthMethod.XOAUTH2
        press_next(qtbot, wizard)
        assert wizard.currentId() == PageId.SETTINGS
        assert "takes an OAuth2 token, not a password" in settings.banner.text()
    wizard.reject()


# ------------------------------------------------------------ closing early


@pytest.mark.needs_server("dnsmasq")
def test_closing_during_discovery_stops_it_without_waiting(
    qtbot,
    paths: AppPaths,
    monkeypatch: pytest.MonkeyPatch,
    dnsmasq_factory: DnsmasqFactory,
    silent_port: int,
) -> None:
    dns = localhost_dns(dnsmasq_factory)
    monkeypatch.setenv("MAILER_GUI_NAMESERVER", dns.nameserver)
    wizard = open_wizard(
        qtbot,
        paths,
        autoconfig_urls=lambda d, a: [f"https://localhost:{silent_port}/mail/config-v1.1.xml"],
        guess_ports={Security.STARTTLS: (silent_port,)},
        timeout=30,
    )
    fill_start(wizard)
    press_next(qtbot, wizard)
    page = wizard.discovery_page
    qtbot.waitUntil(lambda: "trying localhost" in page.status_text("guessed and probed"))
    assert page.searching and not page.isComplete()
    assert not wizard.button(QWizard.WizardButton.NextButton).isEnabled()

    # Back stops it; the next visit starts afresh.
    task = page.task
    wizard.back()
    assert wizard.currentId() == PageId.START
    assert task is not None and task.stopping.is_set()
    qtbot.waitUntil(lambda: not task.running, timeout=5_000)
    press_next(qtbot, wizard)
    qtbot.waitUntil(lambda: "trying localhost" in page.status_text("guessed and probed"))

    task = page.task
    wizard.close()
    assert not wizard.isVisible()
    assert task is not None and task.stopping.is_set()
    qtbot.waitUntil(lambda: not task.running, timeout=5_000)
    assert not paths.accounts_file.exists()


@pytest.mark.needs_server("dnsmasq")
def test_stop_keeps_what_was_found_and_a_silent_login_can_be_closed(
    qtbot,
    paths: AppPaths,
    monkeypatch: pytest.MonkeyPatch,
    dnsmasq_factory: DnsmasqFactory,
    silent_port: int,
) -> None:
    dns = localhost_dns(
        dnsmasq_factory, srv={"_submission._tcp.localhost": [("localhost", silent_port, 0, 0)]}
    )
    monkeypatch.setenv("MAILER_GUI_NAMESERVER", dns.nameserver)
    wizard = open_wizard(
        qtbot,
        paths,
        autoconfig_urls=lambda d, a: [f"https://localhost:{silent_port}/mail/config-v1.1.xml"],
        guess_ports={},
        timeout=30,
    )
    fill_start(wizard)
    press_next(qtbot, wizard)
    page = wizard.discovery_page
    # SRV answers at once; autoconfig (better ranked) hangs on the silent server.
    qtbot.waitUntil(lambda: page.status_text("DNS SRV").startswith("found"), timeout=WAIT_MS)
    assert page.searching
    qtbot.mouseClick(page.stop_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(page.isComplete, timeout=5_000)
    # Cut off mid-fetch, autoconfig ends as stopped or as having had no answer.
    assert page.status_text("autoconfig") in {"stopped", "failed: no answer in time"}
    assert "stopping at your request" in page.log.text()
    press_next(qtbot, wizard)
    assert wizard.settings_page.port_edit.text() == str(silent_port)

    press_next(qtbot, wizard)
    login = wizard.login_page
    qtbot.waitUntil(lambda: "C: EHLO" not in login.log.text() and login.testing)
    qtbot.waitUntil(lambda: "connecting to localhost" in login.log.text(), timeout=5_000)
    task = login.task
    assert task is not None
    wizard.close()
    assert not wizard.isVisible()
    qtbot.waitUntil(lambda: not task.running, timeout=5_000)
    assert not paths.accounts_file.exists()
