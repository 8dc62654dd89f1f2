"""The outbox table model: folders, in-place updates, and 10,000 rows (offscreen)."""

from __future__ import annotations

import time
from datetime import datetime

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, Qt

from mailer_gui.outbox.store import MessageRow, RecipientRow, State
from mailer_gui.ui.outbox_model import (
    COLUMNS,
    LAST_REPLY,
    MESSAGE_ID_ROLE,
    NEXT_ATTEMPT,
    STATE,
    Folder,
    OutboxTableModel,
    prepare_rows,
)

NOW = time.time()


def message_row(
    message: int,
    state: State = State.QUEUED,
    *,
    due_at: float = NOW - 10,
    last_error: str | None = None,
    attempts: int = 0,
) -> MessageRow:
    return MessageRow(
        id=message,
        account="work",
        state=state,
        created_at=NOW - 60,
        due_at=due_at,
        attempts=attempts,
        last_error=last_error,
        message_id=f"<{message}@example.org>",
        subject=f"Report {message}",
        size=1234,
        spool_file_path=f"/nonexistent/{message}.eml",
        envelope_from="ann@example.org",
        smtputf8=False,
        eight_bit=False,
        dsn_notify=(),
        recipients=(RecipientRow(f"bob{message}@example.org", "to", "pending", None, None, None),),
        first_attempt_at=None,
        data_end_at=None,
        updated_at=NOW - 60,
    )


def cell(model: OutboxTableModel, row: int, column: int, role=Qt.ItemDataRole.DisplayRole):
    return model.data(model.index(row, column), role)


def test_qtmodeltester_small_model(qtmodeltester) -> None:
    model = OutboxTableModel(Folder.OUTBOX)
    model.set_rows(
        [
            message_row(1),
            message_row(2, State.DEFERRED, due_at=NOW + 600, last_error="451 4.7.1 Try later"),
            message_row(3, State.SENDING, attempts=1),
        ]
    )
    qtmodeltester.check(model, force_py=True)
    qtmodeltester.check(model.make_proxy(), force_py=True)


def test_folder_keeps_only_its_states() -> None:
    rows = [message_row(1, State.SENT), message_row(2, State.FAILED), message_row(3)]
    for folder, ids in ((Folder.OUTBOX, [3]), (Folder.SENT, [1]), (Folder.FAILED, [2])):
        model = OutboxTableModel(folder)
        model.set_rows(rows)
        shown = [cell(model, r, 0, MESSAGE_ID_ROLE) for r in range(model.rowCount())]
        assert shown == ids


def test_state_words_and_server_reply() -> None:
    retry = NOW + 600
    model = OutboxTableModel(Folder.OUTBOX)
    model.set_rows(
        [
            message_row(1, State.SCHEDULED, due_at=NOW + 5),
            message_row(2, State.SENDING),
            message_row(
                3, State.DEFERRED, due_at=retry, last_error="451 4.7.1 Greylisted\nsee the docs"
            ),
            message_row(4, State.UNCERTAIN),
            message_row(5, State.SCHEDULED, due_at=NOW + 86400),  # send later, tomorrow
        ],
        now=NOW,
    )
    tomorrow = datetime.fromtimestamp(NOW + 86400).strftime("%Y-%m-%d %H:%M")
    assert cell(model, 4, STATE) == f"Send later: {tomorrow}"
    assert [cell(model, r, STATE) for r in range(4)] == [
        "Sending soon (undo possible)",
        "Sending…",
        f"Waiting to retry at {datetime.fromtimestamp(retry).strftime('%H:%M')}"
        if datetime.fromtimestamp(retry).date() == datetime.fromtimestamp(NOW).date()
        else f"Waiting to retry at {datetime.fromtimestamp(retry).strftime('%Y-%m-%d %H:%M')}",
        "Uncertain — check",
    ]
    assert cell(model, 2, LAST_REPLY) == "451 4.7.1 Greylisted"
    assert cell(model, 2, LAST_REPLY, Qt.ItemDataRole.ToolTipRole) == (
        "451 4.7.1 Greylisted\nsee the docs"
    )
    assert cell(model, 1, NEXT_ATTEMPT) == ""
    # A cell cut short by a narrow column shows whole in its tooltip.
    assert cell(model, 2, STATE, Qt.ItemDataRole.ToolTipRole) == cell(model, 2, STATE)
    assert cell(model, 1, NEXT_ATTEMPT, Qt.ItemDataRole.ToolTipRole) is None  # empty: no reply
    assert model.headerData(STATE, Qt.Orientation.Horizontal) == "State"


def test_a_message_sent_to_only_some_of_its_recipients_says_so() -> None:
    refused = RecipientRow("x@null.test", "to", "rejected", 550, "5.1.10", "null MX")
    accepted = RecipientRow("bob@example.org", "to", "accepted", 250, None, "Ok")
    partly = message_row(1, State.SENT)._replace(recipients=(accepted, refused, accepted))
    model = OutboxTableModel(Folder.SENT)
    model.set_rows([partly, message_row(2, State.SENT)._replace(recipients=(accepted,))])
    assert [cell(model, r, STATE) for r in range(2)] == ["Sent, 1 of 3 refused", "Sent"]


def test_an_international_domain_is_shown_in_its_own_letters() -> None:
    """Kept as A-labels for the envelope, shown as the person typed it."""
    row = message_row(1)._replace(
        recipients=(
            RecipientRow("x@xn--bcher-kva.test", "to", "pending", None, None, None),
            RecipientRow("jörg@münchen.test", "cc", "pending", None, None, None),
        )
    )
    model = OutboxTableModel(Folder.OUTBOX)
    model.set_rows([row])
    assert cell(model, 0, COLUMNS.index("Recipients")) == "x@bücher.test, jörg@münchen.test"


def test_ten_thousand_rows(qtbot) -> None:
    states = list(State)
    rows = [message_row(i, states[i % len(states)], attempts=i % 5) for i in range(10_000, 0, -1)]
    model = OutboxTableModel(Folder.OUTBOX)
    model.set_rows(rows)
    count = model.rowCount()
    assert count == sum(1 for r in rows if r.state in Folder.OUTBOX.states)
    # Every visible cell reads back (its speed is for a benchmark, not a test).
    for r in range(count):
        for c in range(len(COLUMNS)):
            assert isinstance(model.data(model.index(r, c)), str)

    # A queued message becomes sent: it leaves the Outbox, and only that row goes.
    message = next(r.id for r in rows if r.state is State.QUEUED)
    position = model.row_of(message)
    assert position is not None
    after = cell(model, position + 1, 0, MESSAGE_ID_ROLE)
    with qtbot.waitSignal(model.rowsRemoved) as removed:
        assert model.update_state(message, "sent", "") is False
    assert removed.args[1:] == [position, position]
    assert model.rowCount() == count - 1
    assert model.row_of(message) is None
    assert cell(model, position, 0, MESSAGE_ID_ROLE) == after
    assert model.row_of(after) == position


def test_update_in_place_changes_one_row(qtbot) -> None:
    model = OutboxTableModel(Folder.OUTBOX)
    model.set_rows([message_row(1), message_row(2), message_row(3)])
    with qtbot.waitSignal(model.dataChanged) as changed:
        assert model.update_state(2, State.SENDING) is False
    top_left, bottom_right = changed.args[:2]
    assert (top_left.row(), bottom_right.row()) == (1, 1)
    assert (top_left.column(), bottom_right.column()) == (0, len(COLUMNS) - 1)
    assert cell(model, 1, STATE) == "Sending…"

    model.update_state(2, State.DEFERRED, "421 4.3.2 Shutting down")
    assert cell(model, 1, LAST_REPLY) == "421 4.3.2 Shutting down"
    assert model.rowCount(QModelIndex()) == 3


def test_entering_the_folder_asks_for_a_reload() -> None:
    model = OutboxTableModel(Folder.FAILED)
    model.set_rows([message_row(1, State.FAILED)])
    assert model.update_state(7, "cancelled") is True  # not shown yet: reload
    assert model.update_state(8, "sent") is False  # not this folder's business
    model.update_row(message_row(7, State.CANCELLED))
    assert model.rowCount() == 2 and cell(model, 0, 0, MESSAGE_ID_ROLE) == 7


def test_proxy_sorts_attempts_as_numbers() -> None:
    model = OutboxTableModel(Folder.OUTBOX)
    model.set_rows([message_row(i, attempts=a) for i, a in ((1, 10), (2, 9), (3, 100))])
    proxy = model.make_proxy()
    proxy.sort(4, Qt.SortOrder.AscendingOrder)
    assert [proxy.index(r, 4).data() for r in range(3)] == ["9", "10", "100"]


def test_model_sorts_itself_and_selections_follow_their_rows() -> None:
    model = OutboxTableModel(Folder.OUTBOX)
    model.set_rows([message_row(i, attempts=a) for i, a in ((1, 10), (2, 9), (3, 100))])
    selected = QPersistentModelIndex(model.index(0, 0))  # message 1
    model.sort(4, Qt.SortOrder.AscendingOrder)
    assert [model.index(r, 4).data() for r in range(3)] == ["9", "10", "100"]
    assert selected.row() == 1 and selected.data(MESSAGE_ID_ROLE) == 1
    assert model.row_of(3) == 2
    model.sort(4, Qt.SortOrder.DescendingOrder)
    assert [model.index(r, 4).data() for r in range(3)] == ["100", "10", "9"]

    # Rows loaded later come in the chosen order; prepared off the GUI thread.
    prepared = prepare_rows([message_row(i, attempts=i) for i in (5, 50, 7)], model.states)
    model.set_prepared(prepared)
    assert [model.index(r, 4).data() for r in range(3)] == ["50", "7", "5"]
    assert model.row_of(50) == 0
