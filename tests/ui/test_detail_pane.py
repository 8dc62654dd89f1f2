"""The detail pane against a real outbox, a real bridge and loopback aiosmtpd (offscreen)."""

from __future__ import annotations

import http.server
import re
import threading
import time
from collections.abc import Callable, Iterator
from email import policy
from email.message import EmailMessage
from pathlib import Path

import pytest
from PySide6.QtCore import QBuffer, QByteArray, QIODevice, Qt, QUrl
from PySide6.QtGui import QColor, QImage, QPalette, QTextDocument
from PySide6.QtWidgets import QComboBox, QProgressBar, QPushButton, QTextBrowser, QToolButton

from mailer_gui.accounts.model import Account
from mailer_gui.accounts.store import AccountStore
from mailer_gui.message.addresses import parse_address
from mailer_gui.message.build import build_from_eml
from mailer_gui.message.draft import Draft
from mailer_gui.outbox.store import OutboxStore, State
from mailer_gui.outbox.submit import queue_draft
from mailer_gui.smtp.settings import AuthMethod, Security
from mailer_gui.ui.bridge import OutboxBridge
from mailer_gui.ui.detail_pane import DetailPane

# These accounts log in with no password: nothing is read from it.
KEYRING_SERVICE = "mailer-gui:tests"

# The offscreen platform cannot size or raise real windows; it says so on every show.
pytestmark = pytest.mark.qt_log_ignore(
    r"This plugin does not support (propagateSizeHints|raise)\(\)"
)

ANN = parse_address("Ann <ann@example.org>")


@pytest.fixture
def store(tmp_path: Path) -> OutboxStore:
    return OutboxStore(tmp_path / "data" / "outbox.sqlite3", tmp_path / "data" / "spool")


@pytest.fixture
def make_bridge(store: OutboxStore, tmp_path: Path) -> Iterator[Callable[..., OutboxBridge]]:
    bridges: list[OutboxBridge] = []

    def make(server=None) -> OutboxBridge:
        config = tmp_path / f"config-{len(bridges)}"
        config.mkdir()
        accounts = AccountStore(config / "accounts.json")
        accounts.add(
            Account(
                name="work",
                email="ann@example.org",
                host="localhost",
                port=server.port if server is not None else 2525,
                security=Security.NONE,
                auth=AuthMethod.NONE,
            )
        )
        bridge = OutboxBridge(store, accounts.get, keyring_service=KEYRING_SERVICE)
        bridges.append(bridge)
        return bridge

    yield make
    for bridge in bridges:
        bridge.shutdown()


@pytest.fixture
def make_pane(qtbot) -> Callable[[OutboxBridge], DetailPane]:
    def make(bridge: OutboxBridge) -> DetailPane:
        pane = DetailPane(bridge)
        qtbot.addWidget(pane)
        pane.resize(900, 720)  # wide enough for every action's button
        pane.show()
        return pane

    return make


def queue(
    store: OutboxStore,
    *to: str,
    subject: str = "Quarterly report",
    due_at: float | None = None,
    **fields,
) -> int:
    draft = Draft(
        sender=ANN,
        to=tuple(parse_address(a) for a in (to or ("bob@example.org",))),
        subject=subject,
        body=fields.pop("body", "Hello there."),
        **fields,
    )
    return queue_draft(store, draft, account="work", due_at=due_at)


def loaded(pane: DetailPane) -> bool:
    return pane.row is not None


def click(qtbot, pane: DetailPane, action) -> None:
    button = pane.button(action)
    assert button.isEnabled()
    qtbot.waitUntil(button.isVisible)  # the toolbar lays out again when actions appear
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)


def test_a_refusal_of_the_message_itself_names_the_end_of_the_message(
    qtbot, aiosmtpd_factory, make_bridge, make_pane, store: OutboxStore
) -> None:
    """A 451 to the final ".": the attempt said "The server said: . → 451 ...",
    a lone dot standing for the command."""
    server = aiosmtpd_factory(on_data=lambda message: "451 4.7.1 Try again later")
    bridge = make_bridge(server)
    message = queue(store, "bob@example.org")
    pane = make_pane(bridge)
    pane.show_message(message)
    bridge.start()
    qtbot.waitUntil(lambda: pane.state_text().startswith("Deferred"), timeout=10_000)
    qtbot.waitUntil(lambda: "451" in pane.attempts_text(), timeout=5_000)
    assert (
        "The server said: the end of the message (.) → 451 4.7.1 Try again later"
        in pane.attempts_text()
    )


def test_a_recipient_given_up_on_is_not_promised_another_try(
    qtbot, aiosmtpd_factory, make_bridge, make_pane, store: OutboxStore
) -> None:
    """Mailer gave up on a recipient the server kept deferring: the pane explains
    the reply without "Mailer will try this recipient again later"."""
    from mailer_gui.outbox.policy import RetryPolicy

    store.policy = RetryPolicy(delays=(1.0,), then_every=1.0, give_up_after=0.5)
    server = aiosmtpd_factory(rcpt_replies={"wait@example.org": "451 4.2.1 Mailbox busy"})
    bridge = make_bridge(server)
    message = queue(store, "wait@example.org")
    pane = make_pane(bridge)
    pane.show_message(message)
    bridge.start()
    qtbot.waitUntil(lambda: pane.state_text() == "Failed", timeout=10_000)
    text = pane.recipients_text()
    assert "Not delivered" in text and "451 4.2.1 Mailbox busy" in text
    assert "try this recipient again" not in text and "try again later" not in text
    qtbot.waitUntil(lambda: "451" in pane.attempts_text(), timeout=5_000)
    attempts = pane.attempts_text()
    assert "try this recipient again" not in attempts and "try again later" not in attempts


def test_a_recipient_no_server_refused_is_not_called_refused(
    qtbot, make_bridge, make_pane, store: OutboxStore
) -> None:
    bridge = make_bridge()
    message = queue(store, "bob@example.org")
    store.get(message).spool_path.unlink()  # nothing to send: failed by Mailer
    pane = make_pane(bridge)
    pane.show_message(message)
    bridge.start()
    qtbot.waitUntil(lambda: pane.state_text() == "Failed", timeout=10_000)
    text = pane.recipients_text()
    assert "Not sent" in text and "Refused" not in text


def test_an_international_domain_is_shown_in_its_own_letters(
    qtbot, make_bridge, make_pane, store: OutboxStore
) -> None:
    """x@bücher.test is kept as x@xn--bcher-kva.test for the envelope; the
    pane shows it as it was typed."""
    message = queue(store, "x@bücher.test")
    assert store.get(message).recipients[0].address == "x@xn--bcher-kva.test"
    pane = make_pane(make_bridge())
    pane.show_message(message)
    qtbot.waitUntil(lambda: "x@bücher.test (To)" in pane.recipients_text())
    assert pane.fields["To"].text() == "x@bücher.test"
    assert "xn--" not in pane.recipients_text()


def test_a_refused_recipient_fails_and_the_pane_explains_it(
    qtbot, aiosmtpd_factory, make_bridge, make_pane, store: OutboxStore
) -> None:
    server = aiosmtpd_factory(rcpt_replies={"nobody@example.org": "550 5.1.1 No such user here"})
    bridge = make_bridge(server)
    message = queue(store, "nobody@example.org")
    pane = make_pane(bridge)
    pane.show_message(message)
    qtbot.waitUntil(lambda: pane.state_text() == "Queued — waiting to be sent")
    assert pane.subject_label.text() == "Quarterly report"
    assert pane.fields["To"].text() == "nobody@example.org"
    assert pane.fields["Account"].text() == "work"
    assert pane.fields["Message-ID"].text() == store.get(message).message_id

    bridge.start()
    qtbot.waitUntil(lambda: pane.state_text() == "Failed", timeout=10_000)
    explanation = (
        "The server localhost says the recipient address does not exist (550 5.1.1). "
        "Check the spelling of the address"
    )
    # The row and its attempts are read at one moment: the recipients are
    # explained with the server's name, from the attempt's transcript.
    qtbot.waitUntil(lambda: explanation in pane.recipients_text())
    recipients = pane.recipients_text()
    assert "nobody@example.org (To)" in recipients
    assert "Refused" in recipients
    assert "Server: 550 5.1.1 No such user here" in recipients
    assert explanation in recipients
    attempts = pane.attempts_text()
    assert "Refused" in attempts
    assert "RCPT TO:<nobody@example.org> → 550 5.1.1 No such user here" in attempts
    assert explanation in attempts
    # Its only recipient: neither section speaks of others.
    assert "other recipients" not in recipients and "other recipients" not in attempts
    assert pane.state_detail.text() == "nobody@example.org: No such user here"

    # A failed message can be retried, not cancelled; uncertain choices are not offered.
    assert pane.retry_action.isEnabled() and not pane.cancel_action.isEnabled()
    assert not pane.send_again_action.isVisible() and not pane.mark_sent_action.isVisible()

    # The transcript: a window beside the main one, client and server lines told apart.
    pane.transcript_action.trigger()
    dialog = pane.transcript_dialog
    assert dialog is not None and dialog.isVisible() and not dialog.isModal()
    lines = dialog.text().splitlines()
    assert "C: RCPT TO:<nobody@example.org>" in lines
    assert "S: 550 5.1.1 No such user here" in lines
    kinds = dict(zip(lines, dialog.line_kinds(), strict=True))
    assert kinds["C: RCPT TO:<nobody@example.org>"] == "client"
    assert kinds["S: 550 5.1.1 No such user here"] == "error"
    assert kinds["S: 250 2.1.0 OK"] == "server"
    assert kinds[lines[0]] == "note"

    # Every control of the pane and of the transcript window has an accessible name.
    controls = [
        w
        for parent in (pane, dialog)
        for kind in (QToolButton, QPushButton, QComboBox, QProgressBar, QTextBrowser)
        for w in parent.findChildren(kind)
        if not w.objectName().startswith("qt_")  # Qt's own toolbar overflow button
    ]
    assert controls and all(w.accessibleName() for w in controls)
    assert all(not a.shortcut().isEmpty() for a in pane.toolbar.actions())

    # The colours follow the palette: a dark one gets the light red.
    dark = QPalette(pane.palette())
    dark.setColor(QPalette.ColorRole.Window, QColor("#202020"))
    dark.setColor(QPalette.ColorRole.WindowText, QColor("#eeeeee"))
    light_red = pane.state_label.palette().color(QPalette.ColorRole.WindowText).name()
    pane.setPalette(dark)
    dark_red = pane.state_label.palette().color(QPalette.ColorRole.WindowText).name()
    assert (light_red, dark_red) == ("#c62828", "#ff7b72")


def test_a_temporary_refusal_defers_and_retry_now_follows_to_sent(
    qtbot, aiosmtpd_factory, make_bridge, make_pane, store: OutboxStore
) -> None:
    accept = threading.Event()
    release = threading.Event()

    def greylist(address: str, options: list[str]) -> str | None:
        return None if accept.is_set() else "451 4.7.1 Greylisted, try again later"

    def hold_the_reply(message) -> None:
        release.wait(30)  # the server has the whole message; its reply waits for the test

    server = aiosmtpd_factory(on_rcpt=greylist, on_data=hold_the_reply)
    bridge = make_bridge(server)
    message = queue(store)
    pane = make_pane(bridge)
    pane.show_message(message)
    bridge.start()
    qtbot.waitUntil(lambda: pane.state_text().startswith("Deferred"), timeout=30_000)
    row = store.get(message)
    assert row.state is State.DEFERRED
    next_attempt = time.strftime("%H:%M", time.localtime(row.due_at))
    assert pane.state_text().startswith("Deferred — next attempt at ")
    assert pane.state_text().endswith(next_attempt)
    qtbot.waitUntil(lambda: "Attempt 1" in pane.attempts_text(), timeout=10_000)
    recipients = pane.recipients_text()
    assert "Deferred: Mailer will try again" in recipients
    assert "Server: 451 4.7.1 Greylisted, try again later" in recipients
    assert "greylisting" in recipients
    assert pane.cancel_action.isEnabled() and pane.retry_action.isEnabled()
    assert pane.retry_action.text() == "&Retry now"  # tried once already
    assert pane.button(pane.retry_action).accessibleName() == "Retry now"

    accept.set()
    click(qtbot, pane, pane.retry_action)
    # The whole message went out; the progress bar shows it while the reply is awaited.
    qtbot.waitUntil(
        lambda: pane.progress_bar.isVisible() and pane.progress_bar.value() == 1000,
        timeout=30_000,
    )
    assert pane.state_text() == "Sending…"
    assert pane.cancel_action.isEnabled() and not pane.retry_action.isEnabled()
    release.set()
    qtbot.waitUntil(lambda: pane.state_text().startswith("Sent at"), timeout=30_000)
    qtbot.waitUntil(lambda: "Attempt 2" in pane.attempts_text(), timeout=10_000)
    assert not pane.progress_bar.isVisible()
    assert "Accepted" in pane.recipients_text()
    assert len(server.messages) == 1
    assert not pane.retry_action.isEnabled() and not pane.cancel_action.isEnabled()


def test_cancel_a_scheduled_message(make_bridge, make_pane, qtbot, store: OutboxStore) -> None:
    bridge = make_bridge()
    soon = queue(store, due_at=time.time() + 30)
    later = queue(store, subject="Later", due_at=time.time() + 3 * 3600)
    pane = make_pane(bridge)

    pane.show_message(later)
    qtbot.waitUntil(lambda: pane.state_text().startswith("Scheduled to send at"))
    # Never tried: the person sends it now; nothing is tried "again".
    assert pane.retry_action.isEnabled() and pane.retry_action.text() == "Send &now"
    assert pane.button(pane.retry_action).accessibleName() == "Send now"
    assert "instead of waiting" in pane.retry_action.toolTip()

    pane.show_message(soon)
    qtbot.waitUntil(lambda: re.fullmatch(r"Sending in \d+ s", pane.state_text()) is not None)
    assert pane.cancel_action.isEnabled()
    click(qtbot, pane, pane.cancel_action)
    qtbot.waitUntil(lambda: pane.state_text() == "Cancelled")
    assert store.get(soon).state is State.CANCELLED
    assert "Not sent (cancelled)" in pane.recipients_text()
    assert not pane.cancel_action.isEnabled() and not pane.retry_action.isEnabled()
    assert pane.banner_text() == ""


def test_a_cancelled_message_does_not_say_it_will_be_tried_again(
    make_bridge, make_pane, qtbot, store: OutboxStore
) -> None:
    """Deferred ("Mailer will try again later"), then cancelled: the pane
    keeps what happened and drops the promise, which no longer holds."""
    from mailer_gui.outbox.policy import Disposition, Verdict

    message = queue(store)
    store.claim_next("runner", now=time.time(), lease=60)
    silent = "127.0.0.1 stopped answering (nothing for 60 s). Mailer will try again later."
    store.record_failure(message, "runner", Verdict(Disposition.DEFER, silent), account="work")
    assert store.cancel(message) is State.CANCELLED
    pane = make_pane(make_bridge())
    pane.show_message(message)
    qtbot.waitUntil(lambda: pane.state_text() == "Cancelled")
    text = pane.recipients_text()
    assert "Not sent (cancelled)" in text and "stopped answering" in text
    assert "try again" not in text


def sending_held(
    qtbot, aiosmtpd_factory, make_bridge, make_pane, store: OutboxStore, hook: str
) -> tuple[DetailPane, int, threading.Event, object]:
    """A message being sent, shown, while the server sits on its answer to
    ``hook`` ("on_rcpt" or "on_data") until the event returned is set; the
    pane, the message, that event and the server."""
    reached = threading.Event()
    release = threading.Event()

    def slow(*_args) -> None:
        reached.set()
        release.wait(10)

    server = aiosmtpd_factory(**{hook: slow})
    bridge = make_bridge(server)
    message = queue(store)
    pane = make_pane(bridge)
    pane.show_message(message)
    bridge.start()
    try:
        qtbot.waitUntil(
            lambda: reached.is_set() and pane.state_text() == "Sending…", timeout=10_000
        )
    except BaseException:
        release.set()
        raise
    return pane, message, release, server


def test_cancel_while_sending_stops_the_send(
    qtbot, aiosmtpd_factory, make_bridge, make_pane, store: OutboxStore
) -> None:
    pane, _, release, server = sending_held(
        qtbot, aiosmtpd_factory, make_bridge, make_pane, store, "on_rcpt"
    )
    try:
        click(qtbot, pane, pane.cancel_action)
        qtbot.waitUntil(lambda: pane.state_text().startswith("Queued — sending at"), timeout=10_000)
        assert "press Cancel again to cancel it for good" in pane.banner_text()
        assert "other messages" not in pane.state_detail.text()  # it waits for Cancel
    finally:
        release.set()
    click(qtbot, pane, pane.cancel_action)
    qtbot.waitUntil(lambda: pane.state_text() == "Cancelled")
    assert server.messages == []


def test_cancel_after_all_of_the_message_went_out_says_it_is_too_late(
    qtbot, aiosmtpd_factory, make_bridge, make_pane, store: OutboxStore
) -> None:
    """The server sits on its answer to the final ".": Cancel cannot unsend
    it, and closing the line would only leave it uncertain. The pane says so,
    and the message ends as the server says: sent."""
    pane, message, release, server = sending_held(
        qtbot, aiosmtpd_factory, make_bridge, make_pane, store, "on_data"
    )
    try:
        click(qtbot, pane, pane.cancel_action)
        qtbot.waitUntil(lambda: "could not be cancelled" in pane.banner_text(), timeout=10_000)
        assert "All of the message has gone to the server already" in pane.banner_text()
    finally:
        release.set()
    qtbot.waitUntil(lambda: pane.state_text().startswith("Sent"), timeout=10_000)
    assert store.get(message).state is State.SENT and len(server.messages) == 1
    qtbot.waitUntil(lambda: pane.banner_text() == "", timeout=5_000)  # that moment is over


def test_a_message_held_with_its_accounts_others_says_why(
    qtbot, make_bridge, make_pane, store: OutboxStore
) -> None:
    """Queued for later because the account's server put another message off
    (what the runner does after a 421): the pane says why it waits."""
    message = queue(store)
    pane = make_pane(make_bridge())
    pane.show_message(message)
    qtbot.waitUntil(lambda: pane.state_text() == "Queued — waiting to be sent", timeout=5_000)
    store.hold_queued("work", time.time() + 300)
    pane.refresh()  # the window does this when its table shows the change
    qtbot.waitUntil(lambda: pane.state_text().startswith("Queued — sending at"), timeout=5_000)
    assert "It waits with its account's other messages" in pane.state_detail.text()
    # One tried before (its problem kept) says both.
    with store._write() as db:
        db.execute("UPDATE messages SET last_error = 'bob@example.org: Mailbox busy'")
    pane.refresh()
    qtbot.waitUntil(lambda: "Its last try: bob@example.org: Mailbox busy" in (
        pane.state_detail.text()
    ), timeout=5_000)  # fmt: skip


def make_uncertain(store: OutboxStore, message: int) -> None:
    with store._write() as db:  # the state a crash after the final "." leaves
        db.execute("UPDATE messages SET state = 'uncertain' WHERE id = ?", (message,))


def test_an_uncertain_message_can_be_marked_as_sent_or_sent_again(
    qtbot, aiosmtpd_factory, make_bridge, make_pane, store: OutboxStore
) -> None:
    server = aiosmtpd_factory()
    bridge = make_bridge(server)
    arrived = queue(store, subject="Arrived", due_at=time.time() + 3600)
    lost = queue(store, subject="Lost", due_at=time.time() + 3600)
    make_uncertain(store, arrived)
    make_uncertain(store, lost)
    bridge.start()
    pane = make_pane(bridge)

    pane.show_message(arrived)
    qtbot.waitUntil(lambda: pane.state_text().startswith("Uncertain"))
    assert pane.state_text() == ("Uncertain: the whole message went out, but no confirmation came")
    assert pane.send_again_action.isVisible() and pane.mark_sent_action.isVisible()
    assert not pane.retry_action.isEnabled() and not pane.cancel_action.isEnabled()
    assert "Unknown: it may have arrived" in pane.recipients_text()
    assert "choose Mark as sent, or Send again" in pane.state_detail.text()
    click(qtbot, pane, pane.mark_sent_action)
    qtbot.waitUntil(lambda: pane.state_text().startswith("Sent at"))
    assert "Marked as sent" in pane.recipients_text()
    assert not pane.send_again_action.isVisible()
    assert store.get(arrived).state is State.SENT

    pane.show_message(lost)
    qtbot.waitUntil(lambda: loaded(pane) and pane.send_again_action.isVisible())
    click(qtbot, pane, pane.send_again_action)
    qtbot.waitUntil(lambda: pane.state_text().startswith("Sent at"), timeout=10_000)
    [received] = server.wait_for_messages(1)
    assert b"Subject: Lost" in received.content  # only the one that did not arrive went again


def test_save_as_eml_writes_the_identical_file(
    qtbot, make_bridge, make_pane, store: OutboxStore, tmp_path: Path
) -> None:
    message = queue(store, body="Keep **this** exactly.")
    pane = make_pane(make_bridge())
    pane.show_message(message)
    qtbot.waitUntil(lambda: loaded(pane))
    (tmp_path / "out").mkdir()
    target = tmp_path / "out" / "copy.eml"

    pane.save_eml_to(target)
    qtbot.waitUntil(lambda: pane.banner_text() == f"Saved as {target}.")
    assert target.read_bytes() == store.get(message).spool_path.read_bytes()

    nowhere = tmp_path / "no-such-folder" / "copy.eml"
    pane.save_eml_to(nowhere)
    qtbot.waitUntil(lambda: pane.banner_text().startswith("The message was not saved"))
    assert "no-such-folder" in pane.banner_text()
    assert not nowhere.parent.exists()


def edit_a_copy(qtbot, pane: DetailPane) -> None:
    """Answer Edit as new's question for a message not sent yet: edit a copy."""
    box = pane.edit_question
    assert box is not None
    qtbot.waitUntil(box.isVisible)
    (copy,) = [b for b in box.buttons() if b.text() == "Edit a &copy"]
    copy.click()


def test_edit_as_new_emits_a_draft_with_everything(
    qtbot, make_bridge, make_pane, store: OutboxStore, tmp_path: Path
) -> None:
    report = tmp_path / "report.pdf"
    report.write_bytes(b"%PDF-1.4\n" + bytes(range(256)) * 8)
    message = queue(
        store,
        "Bob <bob@example.org>",
        subject="Numbers for Q3",
        body="Hello Bob,\n\nthe numbers are attached.",
        cc=(parse_address("carol@example.org"),),
        bcc=(parse_address("dave@example.org"),),
        attachments=(report,),
    )
    pane = make_pane(make_bridge())
    pane.show_message(message)
    qtbot.waitUntil(lambda: loaded(pane) and pane.edit_action.isEnabled())

    click(qtbot, pane, pane.edit_action)
    with qtbot.waitSignal(pane.editAsNew, timeout=5_000) as emitted:
        edit_a_copy(qtbot, pane)
    draft, account = emitted.args
    assert isinstance(draft, Draft)
    assert account == "work"  # sent from it: the new one goes from it too
    assert draft.sender.addr_spec == "ann@example.org"
    assert draft.subject == "Numbers for Q3"
    assert [a.addr_spec for a in draft.to] == ["bob@example.org"]
    assert [a.addr_spec for a in draft.cc] == ["carol@example.org"]
    assert [a.addr_spec for a in draft.bcc] == ["dave@example.org"]
    assert "the numbers are attached." in draft.body
    [attachment] = draft.attachments
    assert attachment.name == "report.pdf"
    assert attachment.read_bytes() == report.read_bytes()
    assert attachment.is_relative_to(tmp_path / "data" / "edit-as-new")
    assert pane.banner_text() == ""


class _Recorder(http.server.BaseHTTPRequestHandler):
    requests: list[str]

    def do_GET(self) -> None:
        self.requests.append(self.path)
        self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def web_server() -> Iterator[tuple[str, list[str]]]:
    """A plain HTTP server on loopback that records every request it gets."""
    requests: list[str] = []
    handler = type("Handler", (_Recorder,), {"requests": requests})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", requests
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def png(width: int, height: int) -> bytes:
    image = QImage(width, height, QImage.Format.Format_ARGB32)
    image.fill(QColor("#3366cc"))
    data = QByteArray()
    buffer = QBuffer(data)
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    image.save(buffer, "PNG")
    return bytes(data.data())


def test_html_renders_with_its_own_images_and_fetches_nothing(
    qtbot, make_bridge, make_pane, store: OutboxStore, tmp_path: Path, web_server
) -> None:
    base, requests = web_server
    local = tmp_path / "local.png"
    local.write_bytes(png(5, 5))
    message = EmailMessage(policy=policy.SMTP)
    message["From"] = "Ann <ann@example.org>"
    message["To"] = "bob@example.org"
    message["Subject"] = "Newsletter"
    message.set_content("Hello in text.\n")
    message.add_alternative(
        f"""<html><head><link rel="stylesheet" href="{base}/style.css"></head><body>
        <p>Hello in <b>HTML</b>.</p>
        <img src="cid:logo@example.org" alt="logo">
        <img src="{base}/track.png?who=bob" alt="tracker">
        <img src="{local.as_uri()}" alt="local file">
        </body></html>""",
        subtype="html",
    )
    message.get_payload()[1].add_related(png(3, 2), "image", "png", cid="<logo@example.org>")
    message.add_attachment(bytes(2048), maintype="application", subtype="pdf", filename="a.pdf")
    source = tmp_path / "newsletter.eml"
    source.write_bytes(message.as_bytes())
    built = build_from_eml(
        source, envelope_from="ann@example.org", sender_domain="example.org", spool_dir=tmp_path
    )
    number = store.enqueue(built, account="work", subject="Newsletter")

    pane = make_pane(make_bridge())
    pane.show_message(number)
    browser = pane.browser
    qtbot.waitUntil(lambda: "Hello in HTML." in browser.toPlainText())
    tracker = f"{base}/track.png?who=bob"
    qtbot.waitUntil(
        lambda: tracker in browser.blocked_urls and local.as_uri() in browser.blocked_urls
    )
    qtbot.waitUntil(lambda: pane.body_note.isVisible())

    assert requests == []  # nothing reached the web server
    assert set(browser.loaded_images) == {"cid:logo@example.org"}
    logo = browser.document().resource(
        QTextDocument.ResourceType.ImageResource.value, QUrl("cid:logo@example.org")
    )
    assert isinstance(logo, QImage) and (logo.width(), logo.height()) == (3, 2)
    local_image = browser.document().resource(
        QTextDocument.ResourceType.ImageResource.value, QUrl(local.as_uri())
    )
    assert local_image.width() == 1  # the blank stand-in, not the 5x5 file
    assert pane.body_note.text().startswith("Remote content blocked:")
    assert "a.pdf — 2.0 KB" in pane.attachments_label.text()
    assert pane.fields["From"].text() == "Ann <ann@example.org>"


def test_a_missing_spool_file_is_explained_in_the_pane(
    qtbot, make_bridge, make_pane, store: OutboxStore, tmp_path: Path
) -> None:
    message = queue(store, subject="Gone")
    spool = store.get(message).spool_path
    spool.unlink()
    pane = make_pane(make_bridge())
    pane.show_message(message)
    qtbot.waitUntil(lambda: "missing" in pane.banner_text())
    assert pane.banner_text() == (
        f"The message file {spool} is missing, so the message itself cannot be shown. "
        "The details below come from the outbox."
    )
    assert "cannot be shown" in pane.browser.toPlainText()
    assert pane.subject_label.text() == "Gone"  # what the outbox knows is still there

    pane.save_eml_to(tmp_path / "copy.eml")
    qtbot.waitUntil(lambda: pane.banner_text().startswith("The message was not saved"))
    assert spool.name in pane.banner_text()
    assert not (tmp_path / "copy.eml").exists()

    with qtbot.assertNotEmitted(pane.editAsNew):
        pane.edit_action.trigger()
        edit_a_copy(qtbot, pane)
        qtbot.waitUntil(lambda: pane.banner_text().startswith("The message could not be opened"))
    assert not any((tmp_path / "data" / "edit-as-new").iterdir())  # no folder left behind


def test_nothing_selected_empties_the_pane(
    qtbot, make_bridge, make_pane, store: OutboxStore
) -> None:
    message = queue(store)
    pane = make_pane(make_bridge())
    pane.show_message(message)
    qtbot.waitUntil(lambda: loaded(pane) and pane.retry_action.isEnabled())
    pane.show_message(None)
    assert pane.placeholder.isVisible() and not pane.scroll_area.isVisible()
    assert pane.row is None and pane.message_id is None
    assert not any(a.isEnabled() for a in pane.toolbar.actions())

    pane.show_message(message + 100)
    qtbot.waitUntil(lambda: "There is no message" in pane.banner_text())


def test_the_pane_fits_a_narrow_column(qtbot, make_bridge, make_pane, store: OutboxStore) -> None:
    message = queue(store, "someone.with.a.long.address@example.org", subject="word " * 40)
    make_uncertain(store, message)  # every action offered
    pane = make_pane(make_bridge())
    pane.show_message(message)
    qtbot.waitUntil(lambda: loaded(pane) and pane.send_again_action.isVisible())
    # Scrolling content and an overflowing toolbar: the pane never forces the window wide.
    assert pane.minimumSizeHint().width() <= 240
    pane.resize(240, 400)
    qtbot.waitUntil(lambda: not pane.button(pane.transcript_action).isVisible())
    assert pane.transcript_action in pane.toolbar.actions()  # still there, under ">>"


def test_the_bytes_sent_stay_on_one_line_beside_the_bar(
    qtbot, make_bridge, make_pane, store: OutboxStore
) -> None:
    message = queue(store)
    pane = make_pane(make_bridge())
    pane.resize(420, 600)
    pane.show_message(message)
    qtbot.waitUntil(lambda: loaded(pane))
    pane._on_progress(message, 1126, 1126)
    qtbot.waitUntil(pane.progress_label.isVisible)
    label = pane.progress_label
    assert label.text() == "1.1 KB of 1.1 KB"
    qtbot.waitUntil(lambda: label.width() >= label.fontMetrics().horizontalAdvance(label.text()))
    assert label.height() < 2 * label.fontMetrics().lineSpacing()


def test_a_message_of_an_account_waiting_for_its_password_says_so_in_words(
    store: OutboxStore,
) -> None:
    from mailer_gui.ui.detail_pane import describe_state

    row = store.get(queue(store))
    paused = {"work": ("needs password", "The server rejected the password (535 5.7.8).")}
    assert describe_state(row, time.time(), paused) == (
        "Waiting — the account work needs its password; the message goes once that is "
        "fixed (see below)"
    )


def test_an_uncertain_message_tells_the_recipient_in_doubt_from_one_never_sent_it(
    qtbot, make_bridge, make_pane, store: OutboxStore
) -> None:
    """Killed while one transaction's "." waited for its reply: that recipient
    may have it; another, whose transaction never began, certainly has not."""
    message = queue(store, "doubt@example.org", "later@example.org")
    with store._write() as db:  # what recovery leaves (see test_routes)
        db.execute("UPDATE messages SET state = 'uncertain' WHERE id = ?", (message,))
        db.execute("UPDATE recipients SET status = 'unknown' WHERE address = 'doubt@example.org'")
    pane = make_pane(make_bridge())
    pane.show_message(message)
    qtbot.waitUntil(lambda: loaded(pane) and pane.send_again_action.isVisible())
    text = pane.recipients_text()
    assert "Unknown: it may have arrived" in text
    assert "Not sent yet: it goes once you decide" in text
