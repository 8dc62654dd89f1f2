"""The sandbox in the GUI: a real outbox sends to the in-process sandbox, the inbox view shows it.

Everything is real: the SandboxServer on loopback (STARTTLS with its pinned
certificate, AUTH), the outbox store and runner behind an OutboxBridge, the
Maildir, and the keyring (an in-memory backend, or keyring's "fail" backend
for a machine without one).
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path

import pytest
from keyring.backends import fail
from PySide6.QtCore import QBuffer, QByteArray, QIODevice, QPoint, Qt
from PySide6.QtGui import QColor, QImage
from PySide6.QtWidgets import QCheckBox, QWidget

from mailer_gui.accounts.model import Account
from mailer_gui.accounts.store import AccountStore
from mailer_gui.message.addresses import parse_address
from mailer_gui.message.draft import Draft, InlineImage
from mailer_gui.outbox.store import OutboxStore
from mailer_gui.paths import AppPaths, resolve_paths
from mailer_gui.sandbox.account import SANDBOX_ACCOUNT
from mailer_gui.sandbox.server import SandboxServer
from mailer_gui.smtp.auth import Credentials
from mailer_gui.smtp.errors import AuthenticationError
from mailer_gui.smtp.settings import AuthMethod, Security
from mailer_gui.smtp.transcript import Direction, TranscriptRecord
from mailer_gui.ui.bridge import OutboxBridge, stored_credentials
from mailer_gui.ui.sandbox_view import (
    TRIAL_SUBJECT,
    SandboxController,
    SandboxInboxView,
    SandboxTrial,
)
from tests.servers.secret_service import use_keyring_backend

WAIT = 20_000  # ms; loopback, but a loaded CI machine may be slow

# The offscreen plugin says this about every shown window with a layout.
pytestmark = pytest.mark.qt_log_ignore(r"This plugin does not support propagateSizeHints\(\)")


@pytest.fixture(params=["keyring", "no keyring"])
def keyring_mode(request: pytest.FixtureRequest) -> Iterator[str]:
    """The two machines: a keyring that keeps the sandbox password, or none at all."""
    if request.param == "keyring":
        request.getfixturevalue("memory_keyring")
        yield request.param
    else:
        with use_keyring_backend(fail.Keyring()):  # type: ignore[no-untyped-call]
            yield request.param


@pytest.fixture
def no_keyring() -> Iterator[None]:
    with use_keyring_backend(fail.Keyring()):  # type: ignore[no-untyped-call]
        yield


@dataclass
class Sandbox:
    paths: AppPaths
    controller: SandboxController
    store: OutboxStore
    bridge: OutboxBridge
    view: SandboxInboxView
    states: dict[int, list[tuple[str, str]]] = field(default_factory=dict)
    lines: list[TranscriptRecord] = field(default_factory=list)

    @property
    def server(self) -> SandboxServer:
        server = self.controller.server
        assert server is not None
        return server

    def state(self, message: int) -> str | None:
        seen = self.states.get(message)
        return seen[-1][0] if seen else None

    def detail(self, message: int) -> str:
        return self.states[message][-1][1]


@pytest.fixture
def new_controller(qtbot) -> Iterator[Callable[[AppPaths], SandboxController]]:
    """Controllers owned by a widget, as the main window owns its own: deleted on the GUI thread."""
    owners: list[QWidget] = []
    made: list[SandboxController] = []

    def make(paths: AppPaths) -> SandboxController:
        owner = QWidget()
        qtbot.addWidget(owner)
        owners.append(owner)
        made.append(SandboxController(paths, parent=owner))
        return made[-1]

    yield make
    for controller in made:
        controller.shutdown()


def start_controller(qtbot, controller: SandboxController) -> SandboxController:
    with qtbot.waitSignal(controller.started, timeout=WAIT):
        controller.start()
    return controller


@pytest.fixture
def make_sandbox(qtbot, tmp_path: Path, new_controller) -> Iterator[Callable[..., Sandbox]]:
    made: list[Sandbox] = []

    def make(paths: AppPaths | None = None, *, start: bool = True) -> Sandbox:
        paths = paths or resolve_paths(tmp_path / "home")
        controller = new_controller(paths)
        if start:
            start_controller(qtbot, controller)
        store = OutboxStore(paths.database, paths.spool_dir)
        bridge = OutboxBridge(
            store,
            AccountStore(paths.accounts_file).get,
            keyring_service=paths.keyring_service,
            credentials=controller.credentials_lookup(),
        )
        view = SandboxInboxView(controller)
        qtbot.addWidget(view)
        view.show()  # on screen: clicks land, and documents lay out (and load images)
        qtbot.waitExposed(view)
        sandbox = Sandbox(paths, controller, store, bridge, view)
        bridge.stateChanged.connect(lambda m, s, d: sandbox.states.setdefault(m, []).append((s, d)))
        bridge.transcriptLine.connect(lambda m, a, record: sandbox.lines.append(record))
        bridge.start()
        made.append(sandbox)
        return sandbox

    yield make
    for sandbox in made:
        sandbox.bridge.shutdown()
        sandbox.controller.shutdown()
        sandbox.store.close()


@pytest.fixture
def sandbox(make_sandbox, no_keyring) -> Sandbox:
    """The harder machine (no keyring), for the tests that are not about the keyring."""
    return make_sandbox()


def png(colour: str = "#3366cc") -> bytes:
    image = QImage(4, 4, QImage.Format.Format_RGB32)
    image.fill(QColor(colour))
    data = QByteArray()
    buffer = QBuffer(data)
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    assert image.save(buffer, "PNG")
    buffer.close()
    return bytes(data.data())


def draft(
    subject: str = "Hello from the test",
    body: str = "Hello **sandbox**, this is *Markdown*.",
    attachments: tuple[Path, ...] = (),
    inline_images: tuple[InlineImage, ...] = (),
) -> Draft:
    return Draft(
        sender=parse_address("You <you@sandbox.test>"),
        to=(parse_address("friend@sandbox.test"),),
        subject=subject,
        body=body,
        attachments=attachments,
        inline_images=inline_images,
    )


def send(qtbot, sandbox: Sandbox, message_draft: Draft, *, until: set[str]) -> int:
    """Queue through the bridge (as the composer does) and wait for one of the states."""
    queued: list[tuple[int | None, BaseException | None]] = []
    sandbox.bridge.send_draft(message_draft, SANDBOX_ACCOUNT, lambda m, e: queued.append((m, e)))
    qtbot.waitUntil(lambda: bool(queued), timeout=WAIT)
    message, error = queued[0]
    assert error is None and message is not None
    qtbot.waitUntil(lambda: sandbox.state(message) in until, timeout=WAIT)
    return message


def toggle(qtbot, box: QCheckBox) -> None:
    """Click a check box where its box is drawn (its row may be wider than its text)."""
    qtbot.mouseClick(box, Qt.MouseButton.LeftButton, pos=QPoint(8, box.height() // 2))


def list_rows(view: SandboxInboxView) -> list[list[str]]:
    rows = []
    for index in range(view.list.topLevelItemCount()):
        item = view.list.topLevelItem(index)
        assert item is not None
        rows.append([item.text(column) for column in range(view.list.columnCount())])
    return rows


# ----------------------------------------------------------------- sending


def test_a_gui_send_arrives_with_its_html_and_attachment(
    qtbot, make_sandbox, keyring_mode: str, tmp_path: Path
) -> None:
    sandbox = make_sandbox()
    account = AccountStore(sandbox.paths.accounts_file).get(SANDBOX_ACCOUNT)
    password = sandbox.server.password
    if keyring_mode == "keyring":
        assert account.secret_source == "keyring"
    else:
        # Without a keyring the account keeps no password: the bridge's usual
        # lookup has nothing to log in with (the window would ask for a password).
        # The sandbox's lookup knows it.
        assert account.secret_source == "none"
        usual = stored_credentials(account, service=sandbox.paths.keyring_service)
        assert usual is not None
        with pytest.raises(AuthenticationError, match="No password is stored"):
            usual()
    provider = sandbox.controller.credentials_lookup()(account)
    assert provider is not None and provider() == Credentials("sandbox", password)

    notes = tmp_path / "notes.txt"
    notes.write_bytes(b"Attached notes.\n" * 40)
    picture = png()
    message = send(
        qtbot,
        sandbox,
        draft(
            body="Hello **sandbox**, this is *Markdown*.\n\n![chart](chart.png)",
            attachments=(notes,),
            inline_images=(InlineImage("chart.png", data=picture),),
        ),
        until={"sent", "failed", "deferred"},
    )
    assert sandbox.state(message) == "sent", sandbox.detail(message)

    # It logged in, after STARTTLS, and the password appears nowhere.
    client = [r.text for r in sandbox.lines if r.direction is Direction.CLIENT]
    server = [r.text for r in sandbox.lines if r.direction is Direction.SERVER]
    assert "STARTTLS" in client
    assert any(text.startswith("AUTH PLAIN") for text in client)
    assert any(text.startswith("235") for text in server)
    assert not any(password in record.render() for record in sandbox.lines)
    assert password not in sandbox.paths.accounts_file.read_text(encoding="utf-8")
    assert password.encode() not in sandbox.paths.database.read_bytes()

    view = sandbox.view
    qtbot.waitUntil(lambda: view.list.topLevelItemCount() == 1, timeout=WAIT)
    sender, rcpts, subject, _received, size = list_rows(view)[0]
    assert (sender, rcpts, subject) == (
        "you@sandbox.test",
        "friend@sandbox.test",
        "Hello from the test",
    )
    assert size.endswith("KB")
    assert view.count_label.text() == "1 captured message"

    view.select_message(view.messages[0].id)
    qtbot.waitUntil(lambda: view.content is not None, timeout=WAIT)
    content = view.content
    assert content is not None and content.html is not None
    assert "<strong>sandbox</strong>" in content.html
    assert "Hello sandbox, this is Markdown." in view.browser.toPlainText()
    qtbot.waitUntil(lambda: len(view.browser.shown_images) == 1, timeout=WAIT)  # when laid out
    assert not view.browser.blocked
    assert "Subject: Hello from the test" in view.headers.toPlainText()
    assert "X-Sandbox-Envelope-To: <friend@sandbox.test>" in view.headers.toPlainText()
    assert 'filename="notes.txt"' in view.source.toPlainText()
    assert view.tabs.tabText(3) == "Attachme&nts (1)"
    attachment = view.attachments.topLevelItem(0)
    assert attachment is not None
    assert [attachment.text(0), attachment.text(1), attachment.text(2)] == [
        "notes.txt",
        "text/plain",
        "640 bytes",
    ]

    saved = tmp_path / "saved.txt"
    results: list[tuple[object, object]] = []
    assert view.save_button.isEnabled()
    view.save_attachment_to(saved, lambda size, error: results.append((size, error)))
    qtbot.waitUntil(lambda: bool(results), timeout=WAIT)
    assert results == [(640, None)]
    assert saved.read_bytes() == notes.read_bytes()
    assert "Saved notes.txt" in view.notice.text()


# ----------------------------------------------------------------- fault switches


@pytest.mark.parametrize(
    ("switch", "state", "reason"),
    [
        ("reject_4xx", "deferred", "mailbox busy"),
        ("reject_5xx", "failed", "no such user"),
        ("drop_data", "deferred", "closed the connection"),
        ("small_size", "failed", "SIZE 2048"),
        ("slow", "sent", ""),
    ],
)
def test_each_fault_switch_shows_in_the_outbox(
    qtbot, sandbox: Sandbox, tmp_path: Path, switch: str, state: str, reason: str
) -> None:
    view = sandbox.view
    faults = sandbox.server.faults
    view.size_kb.setValue(2)
    view.slow_seconds.setValue(0.2)
    assert view.faults_box.isEnabled()
    toggle(qtbot, getattr(view, switch))
    assert getattr(view, switch).isChecked()
    expected_faults = {
        "reject_4xx": lambda: faults.reject_next_rcpt == "4xx",
        "reject_5xx": lambda: faults.reject_next_rcpt == "5xx",
        "drop_data": lambda: faults.drop_during_data,
        "small_size": lambda: faults.size_limit == 2048,
        "slow": lambda: faults.slow_replies == pytest.approx(0.2),
    }
    assert expected_faults[switch]()

    big = tmp_path / "big.bin"
    big.write_bytes(bytes(range(256)) * 16)  # 4 KB: over the small limit
    message = send(
        qtbot, sandbox, draft(attachments=(big,)), until={"sent", "failed", "deferred", "uncertain"}
    )
    assert sandbox.state(message) == state
    row = sandbox.store.get(message)
    assert row.state.value == state
    assert reason in (row.last_error or "")
    if state == "sent":
        qtbot.waitUntil(lambda: view.list.topLevelItemCount() == 1, timeout=WAIT)
    else:
        assert sandbox.server.messages() == []
    if switch.startswith("reject"):
        # One shot: the server used it, and the box follows.
        assert faults.reject_next_rcpt is None
        qtbot.waitUntil(lambda: not getattr(view, switch).isChecked(), timeout=WAIT)
    else:
        toggle(qtbot, getattr(view, switch))
        assert not expected_faults[switch]()


def test_greylisting_defers_and_the_retry_is_sent(qtbot, sandbox: Sandbox) -> None:
    toggle(qtbot, sandbox.view.greylist)
    assert sandbox.server.faults.greylist
    message = send(qtbot, sandbox, draft(), until={"sent", "failed", "deferred"})
    assert sandbox.state(message) == "deferred"
    assert "greylisted" in (sandbox.store.get(message).last_error or "")
    assert any(r.text.startswith("451 4.7.1") for r in sandbox.lines)  # in the session log
    assert sandbox.server.messages() == []

    done: list[tuple[object, object]] = []
    sandbox.bridge.retry_now(message, lambda result, error: done.append((result, error)))
    qtbot.waitUntil(lambda: bool(done), timeout=WAIT)
    assert done[0][1] is None
    qtbot.waitUntil(lambda: sandbox.state(message) in {"sent", "failed"}, timeout=WAIT)
    assert sandbox.state(message) == "sent"
    qtbot.waitUntil(lambda: sandbox.view.list.topLevelItemCount() == 1, timeout=WAIT)


def test_the_4xx_and_5xx_switches_are_one_choice(sandbox: Sandbox) -> None:
    view = sandbox.view
    view.reject_4xx.setChecked(True)
    view.reject_5xx.setChecked(True)
    assert not view.reject_4xx.isChecked()
    assert sandbox.server.faults.reject_next_rcpt == "5xx"
    view.reject_5xx.setChecked(False)
    assert sandbox.server.faults.reject_next_rcpt is None


# ----------------------------------------------------------------- the inbox


def deliver(server: SandboxServer, subject: str, body: bytes = b"Hello.\r\n") -> None:
    """Another program writing into the same Maildir (as `mailer-gui sandbox` would)."""
    content = (
        b"From: a@example.test\r\nTo: b@example.test\r\nSubject: "
        + subject.encode()
        + b"\r\n\r\n"
        + body
    )
    server.inbox.deliver("a@example.test", ["b@example.test"], content)


def test_delete_and_clear(qtbot, sandbox: Sandbox) -> None:
    view = sandbox.view
    for subject in ("First", "Second", "Third"):
        deliver(sandbox.server, subject)
    # Seen through the folder watcher: nothing told the view.
    qtbot.waitUntil(lambda: view.list.topLevelItemCount() == 3, timeout=WAIT)
    assert [row[2] for row in list_rows(view)] == ["Third", "Second", "First"]  # newest first
    assert not view.delete_button.isEnabled()

    second = next(m for m in view.messages if m.subject == "Second")
    view.select_message(second.id)
    assert view.delete_button.isEnabled()
    qtbot.mouseClick(view.delete_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: view.list.topLevelItemCount() == 2, timeout=WAIT)
    assert [row[2] for row in list_rows(view)] == ["Third", "First"]
    assert not second.path.exists()
    assert view.content is None and view.headers.toPlainText() == ""

    assert view.clear_button.isEnabled()
    qtbot.mouseClick(view.clear_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: view.list.topLevelItemCount() == 0, timeout=WAIT)
    assert sandbox.server.messages() == []
    assert view.count_label.text() == "No captured mail yet."
    assert not view.clear_button.isEnabled()


def test_remote_resources_are_never_loaded(qtbot, sandbox: Sandbox) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.setblocking(False)
    port = listener.getsockname()[1]
    try:
        message = EmailMessage()
        message["From"] = "a@example.test"
        message["To"] = "b@example.test"
        message["Subject"] = "Tracking pixel"
        message.set_content("The plain part.")
        message.add_alternative(
            f'<p>Look <img src="http://127.0.0.1:{port}/pixel.png">'
            '<img src="file:///etc/hostname"><img src="cid:logo@test"></p>',
            subtype="html",
        )
        message.get_payload()[1].add_related(
            png("#cc3333"), "image", "png", cid="<logo@test>", filename="logo.png"
        )
        sandbox.server.inbox.deliver("a@example.test", ["b@example.test"], bytes(message))
        view = sandbox.view
        qtbot.waitUntil(lambda: view.list.topLevelItemCount() == 1, timeout=WAIT)
        view.select_message(view.messages[0].id)
        qtbot.waitUntil(lambda: view.content is not None, timeout=WAIT)
        qtbot.waitUntil(lambda: view.browser.shown_images == {"logo@test"}, timeout=WAIT)
        assert view.browser.blocked == {
            f"http://127.0.0.1:{port}/pixel.png",
            "file:///etc/hostname",
        }
        with pytest.raises(BlockingIOError):
            listener.accept()  # nobody came for the pixel
        assert view.attachments.topLevelItemCount() == 0  # the inline image is in the body
    finally:
        listener.close()


# ----------------------------------------------------------------- the server


def test_keeps_its_port_when_free_and_moves_when_taken(
    qtbot, tmp_path: Path, new_controller, no_keyring
) -> None:
    paths = resolve_paths(tmp_path / "home")
    first = start_controller(qtbot, new_controller(paths))
    port = first.server.port
    first.shutdown()
    assert first.server is None

    again = start_controller(qtbot, new_controller(paths))
    assert again.server.port == port
    again.shutdown()

    blocker = socket.socket()
    blocker.bind(("127.0.0.1", port))
    blocker.listen()
    try:
        moved = start_controller(qtbot, new_controller(paths))
        assert moved.server.port != port
        account = AccountStore(paths.accounts_file).get(SANDBOX_ACCOUNT)
        assert account.port == moved.server.port
    finally:
        blocker.close()


def test_stop_and_start_from_the_view(qtbot, sandbox: Sandbox) -> None:
    view = sandbox.view
    port = sandbox.server.port
    fingerprint = sandbox.server.fingerprint
    assert f"port {port}" in view.status.text()
    assert "login “sandbox”" in view.status.text()
    assert fingerprint[:2].upper() + ":" + fingerprint[2:4].upper() in view.status.text()

    with qtbot.waitSignal(sandbox.controller.stopped, timeout=WAIT):
        qtbot.mouseClick(view.start_button, Qt.MouseButton.LeftButton)
        # Until it has stopped the button is greyed out, and says why.
        assert view.start_button.text() == "Stopping…" and not view.start_button.isEnabled()
    assert sandbox.controller.server is None
    assert "stopped" in view.status.text()
    assert view.start_button.isEnabled() and view.start_button.text() == "St&art server"
    assert not view.faults_box.isEnabled()
    account = AccountStore(sandbox.paths.accounts_file).get(SANDBOX_ACCOUNT)
    # Stopped: the sandbox account gets the usual lookup, which has no password
    # here (no keyring) and says so, so the window would ask.
    usual = sandbox.controller.credentials_lookup()(account)
    assert usual is not None
    with pytest.raises(AuthenticationError, match="No password is stored"):
        usual()

    with qtbot.waitSignal(sandbox.controller.started, timeout=WAIT) as started:
        qtbot.mouseClick(view.start_button, Qt.MouseButton.LeftButton)
    assert started.args == [port]
    assert f"port {port}" in view.status.text() and view.faults_box.isEnabled()


def test_a_sandbox_that_cannot_start_says_why(qtbot, make_sandbox, tmp_path: Path) -> None:
    paths = resolve_paths(tmp_path / "home")
    paths.data_dir.mkdir(parents=True)
    paths.sandbox_dir.write_text("not a folder")  # where the sandbox keeps its files
    sandbox = make_sandbox(paths, start=False)
    view = sandbox.view
    with qtbot.waitSignal(sandbox.controller.error, timeout=WAIT) as error:
        qtbot.mouseClick(view.start_button, Qt.MouseButton.LeftButton)
    assert str(paths.sandbox_dir) in error.args[0]
    assert sandbox.controller.server is None
    qtbot.waitUntil(lambda: "cannot keep its certificate" in view.notice.text(), timeout=WAIT)
    assert view.notice.isVisible()
    assert view.start_button.isEnabled() and "stopped" in view.status.text()


def test_only_the_running_sandbox_gets_its_password(sandbox: Sandbox) -> None:
    lookup = sandbox.controller.credentials_lookup(
        fallback=lambda account: lambda: Credentials("fallback", "fallback-secret")
    )
    account = AccountStore(sandbox.paths.accounts_file).get(SANDBOX_ACCOUNT)
    provider = lookup(account)
    assert provider is not None and provider().username == "sandbox"
    assert provider().secret == sandbox.server.password

    work = Account(
        name="work",
        email="ann@example.org",
        host="127.0.0.1",
        port=sandbox.server.port,
        security=Security.STARTTLS,
        auth=AuthMethod.PLAIN,
        username="sandbox",
        tls_fingerprint="ab" * 32,  # not the sandbox's certificate
    )
    other = lookup(work)
    assert other is not None and other().username == "fallback"


def test_a_persons_own_sandbox_account_is_left_alone(
    qtbot, make_sandbox, tmp_path: Path, no_keyring
) -> None:
    paths = resolve_paths(tmp_path / "home")
    mine = Account(name="sandbox", email="me@example.org", host="smtp.example.org")
    AccountStore(paths.accounts_file).add(mine)
    sandbox = make_sandbox(paths, start=False)
    with (
        qtbot.waitSignal(sandbox.controller.started, timeout=WAIT),
        qtbot.waitSignal(sandbox.controller.error, timeout=WAIT) as error,
    ):
        sandbox.controller.start()
    assert "leaves it alone" in error.args[0]
    assert "leaves it alone" in sandbox.view.notice.text()
    assert AccountStore(paths.accounts_file).load() == [mine]

    failures: list[tuple[object, object]] = []
    sandbox.controller.start_trial(lambda trial, e: failures.append((trial, e)))
    qtbot.waitUntil(lambda: bool(failures), timeout=WAIT)
    trial, failure = failures[0]
    assert trial is None and "leaves it alone" in str(failure)


# ----------------------------------------------------------------- first start


def test_the_trial_makes_the_account_and_the_first_send_works(
    qtbot, make_sandbox, keyring_mode: str
) -> None:
    sandbox = make_sandbox(start=False)
    assert AccountStore(sandbox.paths.accounts_file).load() == []
    trials: list[tuple[SandboxTrial | None, BaseException | None]] = []
    with qtbot.waitSignal(sandbox.controller.started, timeout=WAIT):
        sandbox.controller.start_trial(lambda trial, error: trials.append((trial, error)))
    qtbot.waitUntil(lambda: bool(trials), timeout=WAIT)
    trial, error = trials[0]
    assert error is None and trial is not None
    assert trial.port == sandbox.server.port
    default = AccountStore(sandbox.paths.accounts_file).default()
    assert default is not None and default.name == trial.account.name == SANDBOX_ACCOUNT
    assert [a.addr_spec for a in trial.draft.to] == ["friend@sandbox.test"]
    assert trial.draft.sender.addr_spec == trial.account.email
    assert trial.draft.subject == TRIAL_SUBJECT and "**" in trial.draft.body

    message = send(qtbot, sandbox, trial.draft, until={"sent", "failed", "deferred"})
    assert sandbox.state(message) == "sent", sandbox.detail(message)
    qtbot.waitUntil(lambda: sandbox.view.list.topLevelItemCount() == 1, timeout=WAIT)
    assert list_rows(sandbox.view)[0][2] == TRIAL_SUBJECT

    # A second trial reuses the running server.
    trials.clear()
    sandbox.controller.start_trial(lambda trial, error: trials.append((trial, error)))
    qtbot.waitUntil(lambda: bool(trials), timeout=WAIT)
    assert trials[0][0] is not None and trials[0][0].port == trial.port
