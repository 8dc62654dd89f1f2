"""The main window against a real outbox and a loopback server (offscreen, pytest-qt)."""

from __future__ import annotations

from pathlib import Path

from mailer_gui.accounts.model import Account
from mailer_gui.accounts.store import AccountStore
from mailer_gui.message.addresses import parse_address
from mailer_gui.message.build import build_message
from mailer_gui.message.draft import Draft
from mailer_gui.outbox.store import OutboxStore
from mailer_gui.paths import ensure_private_dir, resolve_paths
from mailer_gui.smtp.settings import AuthMethod, Security
from mailer_gui.ui.main_window import MainWindow


def test_first_start_explains_what_to_do(qtbot, tmp_path: Path) -> None:
    window = MainWindow(resolve_paths(tmp_path))
    qtbot.addWidget(window)
    assert "accounts setup" in window.status.text()
    assert window.model.rowCount() == 0
    window.close()


def test_a_queued_message_goes_to_sent_live(qtbot, tmp_path: Path, aiosmtpd_factory) -> None:
    server = aiosmtpd_factory()
    paths = resolve_paths(tmp_path)
    ensure_private_dir(paths.config_dir)
    AccountStore(paths.accounts_file).add(
        Account(
            name="work",
            email="ann@example.org",
            host="localhost",
            port=server.port,
            security=Security.NONE,
            auth=AuthMethod.NONE,
        )
    )
    store = OutboxStore(paths.database, paths.spool_dir)
    draft = Draft(
        sender=parse_address("ann@example.org"),
        to=(parse_address("bob@example.org"),),
        subject="From the window",
        body="Hello.",
    )
    store.enqueue(
        build_message(draft, spool_dir=tmp_path), account="work", subject="From the window"
    )
    store.close()

    window = MainWindow(paths)
    qtbot.addWidget(window)
    qtbot.waitUntil(lambda: window.folders.item(1).text() == "Sent (1)", timeout=10_000)
    assert window.folders.item(0).text() == "Outbox"
    window.folders.setCurrentRow(1)
    qtbot.waitUntil(lambda: window.model.rowCount() == 1, timeout=5_000)
    assert window.model.index(0, 0).data() == "From the window"
    window.log.flush()
    assert "S: 250" in window.log.text()
    assert len(server.wait_for_messages(1)) == 1
    window.close()
