"""The outbox folders (Outbox, Sent, Failed) as a Qt table model.

Rows are MessageRows loaded off the GUI thread (`OutboxBridge.load_messages`),
and every cell's text and sort key is worked out there too (`prepare_rows`),
so `data()` is a list lookup and sorting is one list sort in the model itself
(no proxy calling `data()` a million times): ten thousand messages open, sort
and scroll without a stall (tests/bench/bench_outbox_view.py).
"""

from __future__ import annotations

import dataclasses
import enum
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QSortFilterProxyModel,
    Qt,
)

from mailer_gui.message.addresses import shown_address
from mailer_gui.outbox.policy import UNDO_WINDOW_MAX
from mailer_gui.outbox.store import MessageRow, State

COLUMNS = (
    "Subject",
    "Recipients",
    "Account",
    "State",
    "Attempts",
    "Next attempt",
    "Last server reply",
)
SUBJECT, RECIPIENTS, ACCOUNT, STATE, ATTEMPTS, NEXT_ATTEMPT, LAST_REPLY = range(len(COLUMNS))

# Plain ints: role comparisons in data() stay cheap.
_DISPLAY = Qt.ItemDataRole.DisplayRole.value
_TOOLTIP = Qt.ItemDataRole.ToolTipRole.value
MESSAGE_ID_ROLE = Qt.ItemDataRole.UserRole.value
SORT_ROLE = Qt.ItemDataRole.UserRole.value + 1  # numbers and times sort as such

_WAITING = (State.SCHEDULED, State.QUEUED, State.DEFERRED)
_STATE_ORDER = {state: i for i, state in enumerate(State)}


class Folder(enum.Enum):
    """Which messages a view shows."""

    OUTBOX = (State.SCHEDULED, State.QUEUED, State.SENDING, State.DEFERRED, State.UNCERTAIN)
    SENT = (State.SENT,)
    FAILED = (State.FAILED, State.CANCELLED)

    @property
    def states(self) -> frozenset[State]:
        return frozenset(self.value)


def clock_time(when: float, now: float) -> str:
    moment = datetime.fromtimestamp(when)
    if moment.date() == datetime.fromtimestamp(now).date():
        return moment.strftime("%H:%M")
    return moment.strftime("%Y-%m-%d %H:%M")


#: Accounts not being tried: account -> (short state, reason) (OutboxStore.paused_accounts).
Paused = Mapping[str, tuple[str, str]]


#: The key of a Paused mapping that stands for sending as a whole being paused
#: (Pause sending), not one account: no account is named "".
ALL_ACCOUNTS = ""
SENDING_PAUSED = "sending is paused"


def with_sending_paused(paused: Paused, sending_paused: bool) -> Paused:
    """``paused``, and sending as a whole too when Pause sending is on."""
    return {**paused, ALL_ACCOUNTS: (SENDING_PAUSED, "")} if sending_paused else paused


def held_by(row: MessageRow, paused: Paused | None, now: float | None = None) -> str | None:
    """Why a waiting message is not going: its account's pause ("needs password"),
    SENDING_PAUSED while Pause sending is on (`with_sending_paused`), or None."""
    if paused is None:
        return None
    if row.state in (State.QUEUED, State.DEFERRED):
        pause = paused.get(row.account)
        if pause is not None:
            return pause[0]
    if ALL_ACCOUNTS in paused and (
        row.state in (State.QUEUED, State.DEFERRED)
        # In its undo window it would go in seconds; sent later, it keeps its time.
        or (
            row.state is State.SCHEDULED
            and row.due_at - (time.time() if now is None else now) <= UNDO_WINDOW_MAX
        )
    ):
        return SENDING_PAUSED
    return None


def state_text(row: MessageRow, now: float, paused: Paused | None = None) -> str:
    """The state in plain words, as the State column shows it."""
    held = held_by(row, paused, now)
    if held == SENDING_PAUSED:
        return "Waiting: sending is paused"
    if held is not None:
        return f"Waiting: account {held}"
    state = row.state
    if state is State.SCHEDULED:
        if row.due_at - now > UNDO_WINDOW_MAX:
            return f"Send later: {clock_time(row.due_at, now)}"
        return "Sending soon (undo possible)"
    if state is State.QUEUED:
        return "Queued" if row.due_at <= now else f"Queued for {clock_time(row.due_at, now)}"
    if state is State.SENDING:
        return "Sending…"
    if state is State.DEFERRED:
        return f"Waiting to retry at {clock_time(row.due_at, now)}"
    if state is State.UNCERTAIN:
        return "Uncertain — check"
    if state is State.SENT:
        refused = sum(1 for r in row.recipients if r.status == "rejected")
        return f"Sent, {refused} of {len(row.recipients)} refused" if refused else "Sent"
    return {State.FAILED: "Failed", State.CANCELLED: "Cancelled"}[state]


def _final_reply(row: MessageRow) -> str:
    """A sent message's last word from the server: the reply to its final "."
    (kept with each accepted recipient), e.g. "250 2.0.0 Ok: queued as 4B1C2"."""
    if row.state is not State.SENT:
        return ""
    for recipient in row.recipients:
        if recipient.status == "accepted" and recipient.code is not None:
            words = " ".join(w for w in (recipient.enhanced, recipient.text) if w)
            return _first_line(f"{recipient.code} {words}")
    return ""


def _first_line(text: str | None) -> str:
    return text.strip().splitlines()[0] if text and text.strip() else ""


def _cells(
    row: MessageRow, now: float, paused: Paused | None = None
) -> tuple[tuple[str, ...], tuple[Any, ...]]:
    """(display texts, sort keys) of one message, one entry per column."""
    recipients = ", ".join([shown_address(r.address) for r in row.recipients])
    why = held_by(row, paused, now)
    held = why is not None
    waiting = row.state in _WAITING and not held
    next_attempt = clock_time(row.due_at, now) if waiting and row.due_at > now else ""
    if waiting and not next_attempt:
        next_attempt = "Now"
    if held:
        next_attempt = "When resumed" if why == SENDING_PAUSED else "Once fixed"
    reply = _first_line(row.last_error) or _final_reply(row)
    display = (
        row.subject or "(no subject)",
        recipients,
        row.account,
        state_text(row, now, paused),
        str(row.attempts),
        next_attempt,
        reply,
    )
    keys = (
        row.subject.casefold(),
        recipients.casefold(),
        row.account.casefold(),
        _STATE_ORDER[row.state],
        row.attempts,
        row.due_at if waiting else float("inf"),
        reply.casefold(),
    )
    return display, keys


@dataclasses.dataclass(frozen=True)
class PreparedRows:
    """A folder's rows with every cell's text and sort key worked out."""

    rows: list[MessageRow]
    display: list[tuple[str, ...]]
    keys: list[tuple[Any, ...]]


def prepare_rows(
    rows: Sequence[MessageRow],
    states: Iterable[State],
    *,
    now: float | None = None,
    paused: Paused | None = None,
) -> PreparedRows:
    """The cells of ``rows`` in ``states``: plain Python, so a worker thread can do it
    for ten thousand rows while the GUI thread goes on painting. A waiting message
    of a ``paused`` account says so instead of when it goes."""
    now = time.time() if now is None else now
    wanted = frozenset(states)
    shown = [row for row in rows if row.state in wanted]
    cells = [_cells(row, now, paused) for row in shown]
    return PreparedRows(shown, [d for d, _ in cells], [k for _, k in cells])


class OutboxTableModel(QAbstractTableModel):
    """The messages of one folder, newest first as loaded; sort through `make_proxy()`."""

    def __init__(self, folder: Folder | Iterable[State], parent: QObject | None = None) -> None:
        super().__init__(parent)
        states = folder.states if isinstance(folder, Folder) else frozenset(folder)
        self.states: frozenset[State] = states
        self._rows: list[MessageRow] = []
        self._display: list[tuple[str, ...]] = []
        self._keys: list[tuple[Any, ...]] = []
        self._tooltips: list[str | None] = []
        self._ids: list[int] = []
        self._row_of: dict[int, int] = {}
        self._sort_column: int | None = None
        self._sort_order = Qt.SortOrder.AscendingOrder

    # ------------------------------------------------------------ updates

    def set_rows(self, rows: Sequence[MessageRow], *, now: float | None = None) -> None:
        """Show ``rows`` (those outside this folder are left out)."""
        self.set_prepared(prepare_rows(rows, self.states, now=now))

    def set_prepared(self, prepared: PreparedRows) -> None:
        """Show rows whose cells were worked out on a worker thread (`prepare_rows`)."""
        order = self._sorted_order(prepared.keys)
        self.beginResetModel()
        self._rows = [prepared.rows[i] for i in order]
        self._display = [prepared.display[i] for i in order]
        self._keys = [prepared.keys[i] for i in order]
        self._tooltips = [prepared.rows[i].last_error or None for i in order]
        self._ids = [prepared.rows[i].id for i in order]
        self._row_of = {message: i for i, message in enumerate(self._ids)}
        self.endResetModel()

    # ------------------------------------------------------------ sorting

    def _sorted_order(self, keys: Sequence[tuple[Any, ...]]) -> list[int]:
        order = list(range(len(keys)))
        if self._sort_column is not None:
            column = self._sort_column
            order.sort(
                key=lambda i: keys[i][column],
                reverse=self._sort_order == Qt.SortOrder.DescendingOrder,
            )
        return order

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        """Sort by ``column`` on the keys worked out when the rows came in (times and
        counts as numbers). Selections and other persistent indexes follow their rows."""
        if not 0 <= column < len(COLUMNS):
            return
        self._sort_column, self._sort_order = column, order
        self.layoutAboutToBeChanged.emit()
        new_order = self._sorted_order(self._keys)
        moved_to = {old: new for new, old in enumerate(new_order)}
        persistent = self.persistentIndexList()
        self._rows = [self._rows[i] for i in new_order]
        self._display = [self._display[i] for i in new_order]
        self._keys = [self._keys[i] for i in new_order]
        self._tooltips = [self._tooltips[i] for i in new_order]
        self._ids = [self._ids[i] for i in new_order]
        self._row_of = {message: i for i, message in enumerate(self._ids)}
        self.changePersistentIndexList(
            persistent,
            [self.index(moved_to[index.row()], index.column()) for index in persistent],
        )
        self.layoutChanged.emit()

    def update_state(
        self, message: int, state: str | State, detail: str = "", *, now: float | None = None
    ) -> bool:
        """Apply a state change reported by the bridge.

        The row is updated in place, or removed when the message leaves this
        folder. Returns True when the message entered the folder and is not
        shown yet: the caller reloads (this model does not know its row).
        """
        state = State(state)
        i = self._row_of.get(message)
        if i is None:
            return state in self.states
        if state not in self.states:
            self._remove(i)
            return False
        old = self._rows[i]
        row = old._replace(state=state, last_error=detail or old.last_error)
        self._replace(i, row, now)
        return False

    def update_row(self, row: MessageRow, *, now: float | None = None) -> None:
        """Show ``row`` as freshly loaded: replaced, removed, or added at the top."""
        i = self._row_of.get(row.id)
        if i is None:
            if row.state in self.states:
                self._insert(0, row, now)
        elif row.state not in self.states:
            self._remove(i)
        else:
            self._replace(i, row, now)

    def message_row(self, row: int) -> MessageRow:
        return self._rows[row]

    def row_of(self, message: int) -> int | None:
        return self._row_of.get(message)

    def _replace(self, i: int, row: MessageRow, now: float | None) -> None:
        self._rows[i] = row
        self._display[i], self._keys[i] = _cells(row, time.time() if now is None else now)
        self._tooltips[i] = row.last_error or None
        self.dataChanged.emit(self.index(i, 0), self.index(i, len(COLUMNS) - 1))

    def _insert(self, i: int, row: MessageRow, now: float | None) -> None:
        display, keys = _cells(row, time.time() if now is None else now)
        self.beginInsertRows(QModelIndex(), i, i)
        self._rows.insert(i, row)
        self._display.insert(i, display)
        self._keys.insert(i, keys)
        self._tooltips.insert(i, row.last_error or None)
        self._ids.insert(i, row.id)
        self._reindex(i)
        self.endInsertRows()

    def _remove(self, i: int) -> None:
        self.beginRemoveRows(QModelIndex(), i, i)
        del self._rows[i], self._display[i], self._keys[i], self._tooltips[i]
        self._row_of.pop(self._ids.pop(i))
        self._reindex(i)
        self.endRemoveRows()

    def _reindex(self, start: int) -> None:
        for j in range(start, len(self._ids)):
            self._row_of[self._ids[j]] = j

    # ------------------------------------------------------------ Qt model

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex | None = None) -> int:
        return 0 if parent is not None and parent.isValid() else len(self._ids)

    def columnCount(self, parent: QModelIndex | QPersistentModelIndex | None = None) -> int:
        return 0 if parent is not None and parent.isValid() else len(COLUMNS)

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = _DISPLAY) -> Any:
        if not index.isValid():
            return None
        role = int(role)
        if role == _DISPLAY:
            return self._display[index.row()][index.column()]
        if role == _TOOLTIP:
            # A cell too narrow for its text shows it whole here; the server's
            # reply, whole, on its own column and wherever a cell is empty.
            row, column = index.row(), index.column()
            reply = self._tooltips[row]
            text = self._display[row][column]
            if column == LAST_REPLY:
                return reply or text or None
            return text or reply
        if role == MESSAGE_ID_ROLE:
            return self._ids[index.row()]
        if role == SORT_ROLE:
            return self._keys[index.row()][index.column()]
        return None

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = _DISPLAY) -> Any:
        if (
            int(role) == _DISPLAY
            and orientation == Qt.Orientation.Horizontal
            and 0 <= section < len(COLUMNS)
        ):
            return COLUMNS[section]
        return None

    def make_proxy(self, parent: QObject | None = None) -> QSortFilterProxyModel:
        """A sorting proxy over this model (times and attempt counts sort as numbers).

        Give it the view or widget as parent (or keep a reference): parented to this
        model, PySide 6.12 crashed when the model was garbage-collected.
        """
        proxy = QSortFilterProxyModel(parent)
        proxy.setSortRole(SORT_ROLE)
        proxy.setSourceModel(self)
        return proxy
