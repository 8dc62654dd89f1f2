"""The delivery loop: claim due messages, send them, record what happened.

A scheduler thread wakes on new work (`wake()`), on the next due time, or to
renew the leases of messages in flight; it never polls in a tight loop. Each
account with due messages gets a worker thread (at most `max_connections` at
once), which reuses one connection for up to `per_connection` messages.
One failing message never blocks the others: its result is recorded and the
worker goes on. Events (frozen dataclasses) report state changes, progress
and transcript lines to whoever listens: the CLI, or the GUI's bridge.
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

from mailer_gui.outbox.policy import Disposition, Verdict, judge
from mailer_gui.outbox.store import MessageRow, OutboxError, OutboxStore, State, WrongState
from mailer_gui.smtp.auth import Credentials
from mailer_gui.smtp.errors import Cancelled, SmtpError
from mailer_gui.smtp.session import Envelope, MessageResult, Session
from mailer_gui.smtp.settings import ServerSettings
from mailer_gui.smtp.transcript import Transcript, TranscriptRecord

CANCEL_HOLD = 60.0  # a cancelled send waits this long before it may go again
CLAIM_BATCH = 10  # messages a worker claims in one transaction


class LeaseLost(SmtpError):
    """This runner's claim on a message ran out and another runner holds it now."""

    transient = True


@dataclass(frozen=True)
class StateChanged:
    message: int
    state: State
    detail: str | None = None


@dataclass(frozen=True)
class Progress:
    message: int
    sent: int
    total: int


@dataclass(frozen=True)
class TranscriptLine:
    message: int
    account: str
    record: TranscriptRecord


Event = StateChanged | Progress | TranscriptLine
Listener = Callable[[Event], None]


class SendingAccount(Protocol):
    """What the runner needs of an account (accounts.model.Account has it)."""

    @property
    def name(self) -> str: ...

    @property
    def kind(self) -> str: ...

    def server_settings(self, local_hostname: str | None = None) -> ServerSettings: ...


AccountLookup = Callable[[str], SendingAccount]
CredentialsLookup = Callable[[SendingAccount], Callable[[], Credentials] | None]
SessionHook = Callable[[Session], None]
DirectDelivery = Callable[
    [SendingAccount, MessageRow, Transcript, Callable[[], None], SessionHook], MessageResult
]


class _Connection:
    """One worker's session to its account's server, opened when first needed."""

    def __init__(self) -> None:
        self.session: Session | None = None
        self.messages = 0
        # A sent message whose result waits for the next commit.
        self.unrecorded: tuple[MessageRow, MessageResult, str] | None = None

    def close(self) -> None:
        if self.session is not None:
            self.session.close()
        self.session = None
        self.messages = 0


class Runner:
    """Delivers what the outbox holds, in the background or on demand."""

    def __init__(
        self,
        store: OutboxStore,
        accounts: AccountLookup,
        *,
        credentials: CredentialsLookup,
        on_event: Listener | None = None,
        direct: DirectDelivery | None = None,
        owner: str | None = None,
        max_connections: int = 4,
        per_connection: int = 50,
        lease: float = 120.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self._accounts = accounts
        self._credentials = credentials
        self._on_event = on_event
        self._direct = direct
        self.owner = owner or f"runner-{uuid.uuid4().hex[:12]}"
        self.max_connections = max_connections
        self.per_connection = per_connection
        self.lease = lease
        self._clock = clock
        self._wake = threading.Event()
        self._stopping = threading.Event()
        # Paused by the person ("Pause sending"): no new connection starts;
        # sends already under way finish.
        self._paused = threading.Event()
        self._lock = threading.Lock()
        self._workers: dict[str, threading.Thread] = {}
        self._in_flight: dict[int, Session | None] = {}
        self._held: set[int] = set()  # claimed by a worker, not yet being sent
        self._cancelled: set[int] = set()
        # An account whose server could not be reached waits until this time.
        self._backoff: dict[str, float] = {}
        self._thread: threading.Thread | None = None
        # The error that ended each message's latest attempt, for callers that
        # explain it (the CLI maps it to an exit code).
        self.errors: dict[int, SmtpError] = {}

    # ------------------------------------------------------------ controls

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._schedule, name="outbox-runner", daemon=True
            )
            self._thread.start()

    def wake(self) -> None:
        """New work, or a change the runner should look at now."""
        self._wake.set()

    @property
    def paused(self) -> bool:
        return self._paused.is_set()

    def pause(self) -> None:
        """Start no new delivery until `resume` (what is being sent now finishes)."""
        self._paused.set()

    def resume(self) -> None:
        self._paused.clear()
        self._wake.set()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop taking work; interrupt sends in flight (they return to the queue)."""
        self._stopping.set()
        self._wake.set()
        with self._lock:
            sessions = [s for s in self._in_flight.values() if s is not None]
            workers = list(self._workers.values())
        for session in sessions:
            session.abort()
        if self._thread is not None:
            self._thread.join(timeout)
        for worker in workers:
            worker.join(timeout)

    def cancel(self, message: int) -> State:
        """Cancel: a waiting message at once; one being sent here has its connection
        closed and goes back to the queue (held a minute, to be cancelled for good)."""
        state = self.store.cancel(message)
        if state is State.SENDING:
            with self._lock:
                session = self._in_flight.get(message)
                self._cancelled.add(message)
            if session is not None:
                session.abort()
        else:
            self._emit(StateChanged(message, state))
        return state

    def deliver_now(self, *, account: str | None = None, message: int | None = None) -> None:
        """Deliver what is due, in this thread (the CLI's send and flush)."""
        self.store.recover(now=self._clock(), keep_owner=self.owner)
        with self._heartbeat():
            if message is not None:
                row = self.store.get(message)
                self._work(row.account, only=message)
                return
            accounts = [account] if account else self.store.due_accounts(self._clock())
            for name in accounts:
                self._work(name)

    @contextlib.contextmanager
    def _heartbeat(self) -> Iterator[None]:
        """Renew the leases of messages in flight while the caller's thread sends."""
        done = threading.Event()

        def beat() -> None:
            while not done.wait(self.lease / 3):
                self._renew_leases(self._clock())

        thread = threading.Thread(target=beat, name="outbox-lease", daemon=True)
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join(5)

    # ----------------------------------------------------------- scheduler

    def _emit(self, event: Event) -> None:
        if self._on_event is not None:
            self._on_event(event)

    def _schedule(self) -> None:
        while not self._stopping.is_set():
            now = self._clock()
            self._renew_leases(now)
            with contextlib.suppress(OutboxError):
                for message, state in self.store.recover(now=now, keep_owner=self.owner):
                    self._emit(StateChanged(message, state, "recovered after an interruption"))
            self._start_workers(now)
            self._wake.wait(self._sleep_time(now))
            self._wake.clear()

    def _sleep_time(self, now: float) -> float:
        waits = [self.lease / 3]  # leases of messages in flight need renewing
        with self._lock:
            busy = set(self._workers)
        excluded = busy | {a for a, until in self._backoff.items() if until > now}
        with contextlib.suppress(OutboxError):
            due = self.store.next_due(exclude_accounts=excluded)
            if due is not None:
                waits.append(due - now)
        waits.extend(until - now for until in self._backoff.values() if until > now)
        return max(0.05, min(waits))

    def _renew_leases(self, now: float) -> None:
        with self._lock:
            messages = list(self._in_flight.keys() | self._held)
        if messages:
            with contextlib.suppress(OutboxError):
                self.store.renew_leases(self.owner, messages, now + self.lease)

    def _start_workers(self, now: float) -> None:
        if self._paused.is_set():
            return
        try:
            due = self.store.due_accounts(now)
        except OutboxError:
            return
        with self._lock:
            for account in due:
                if len(self._workers) >= self.max_connections:
                    break
                if account in self._workers or self._backoff.get(account, 0) > now:
                    continue
                worker = threading.Thread(
                    target=self._worker, args=(account,), name=f"outbox-{account}", daemon=True
                )
                self._workers[account] = worker
                worker.start()

    def _worker(self, account: str) -> None:
        try:
            self._work(account)
        finally:
            with self._lock:
                self._workers.pop(account, None)
            self._wake.set()

    # -------------------------------------------------------------- worker

    def _work(self, account_name: str, *, only: int | None = None) -> None:
        connection = _Connection()
        claimed: deque[MessageRow] = deque()
        try:
            while not self._stopping.is_set():
                if not claimed:
                    if self._paused.is_set() and only is None:
                        return  # paused: finish what was claimed, take no more
                    # A few at a time: one transaction for several claims.
                    rows = self.store.claim(
                        self.owner,
                        now=self._clock(),
                        lease=self.lease,
                        account=account_name,
                        message=only,
                        limit=1 if only is not None else CLAIM_BATCH,
                    )
                    if not rows:
                        return
                    claimed.extend(rows)
                    with self._lock:
                        self._held.update(row.id for row in rows)
                row = claimed.popleft()
                self._emit(StateChanged(row.id, State.SENDING))
                try:
                    keep_going = self._deliver(row, connection)
                finally:
                    with self._lock:
                        self._held.discard(row.id)
                if only is not None or not keep_going:
                    return
        finally:
            with contextlib.suppress(OutboxError):
                self._flush(connection)
            connection.close()
            # Claimed but not started: back to the queue, as if never taken.
            for row in claimed:
                with contextlib.suppress(OutboxError):
                    self.store.release(row.id, self.owner, now=self._clock())
                with self._lock:
                    self._held.discard(row.id)

    def _deliver(self, row: MessageRow, connection: _Connection) -> bool:
        """Send one claimed message; False when the account should not be tried further now."""
        transcript = Transcript(self._transcript_listener(row))
        with self._lock:
            self._in_flight[row.id] = None
        try:
            if connection.unrecorded is not None and (
                connection.unrecorded[0].account != row.account or not row.spool_path.exists()
            ):
                self._flush(connection)
            try:
                account = self._accounts(row.account)
            except Exception as exc:  # the account was removed or its file is unreadable
                self._flush(connection)
                return self._fail(
                    row, transcript, Verdict(Disposition.PAUSE_ACCOUNT, str(exc), "needs attention")
                )
            if not row.spool_path.exists():
                return self._fail(
                    row,
                    transcript,
                    Verdict(
                        Disposition.FAIL,
                        f"The message file {row.spool_path} is missing, so this message cannot "
                        "be sent. Nothing else was changed.",
                    ),
                )

            def mark_end() -> None:
                if not self._mark(row, connection):
                    # Another runner took the message over (this one's lease ran
                    # out): it sends it; this one must not send the final ".".
                    raise LeaseLost(
                        "Another Mailer took this message over; this copy was not finished."
                    )

            if account.kind == "direct":
                if self._direct is None:
                    raise OutboxError("direct delivery is not available in this runner")
                result = self._direct(account, row, transcript, mark_end, self._register(row.id))
            else:
                result = self._relay(account, row, transcript, connection, mark_end)
            if result.error is None and account.kind != "direct":
                # A clean result: recorded in the same commit as the next
                # message's end-of-data mark (or when the worker stops). A
                # crash before that leaves it "sending" with its mark set,
                # which recovers as uncertain: never lost, never resent silently.
                self._flush(connection)
                connection.unrecorded = (row, result, transcript.render())
                with self._lock:
                    self._held.add(row.id)
                return True
            self._flush(connection)
            if result.error is not None:
                self.errors[row.id] = result.error
            state = self.store.record_result(
                row.id, self.owner, result, transcript.render(), now=self._clock()
            )
            self._emit(StateChanged(row.id, state, result.error.message if result.error else None))
            if result.error is not None and result.error.transient:
                connection.close()
            return True
        except Cancelled:
            self._flush(connection)
            self.store.release(row.id, self.owner, now=self._clock(), hold=CANCEL_HOLD)
            connection.close()
            self._emit(StateChanged(row.id, State.QUEUED, "the send was interrupted"))
            return not self._stopping.is_set()
        except SmtpError as exc:
            self._flush(connection)
            connection.close()
            self.errors[row.id] = exc
            return self._fail(row, transcript, judge(exc))
        except WrongState:
            self._flush(connection)
            connection.close()
            return True  # someone else holds it now (recovered after a lease ran out)
        finally:
            with self._lock:
                self._in_flight.pop(row.id, None)
                self._cancelled.discard(row.id)

    def _mark(self, row: MessageRow, connection: _Connection) -> bool:
        """Record the previous clean result and mark this message's end of data."""
        now = self._clock()
        if connection.unrecorded is None:
            return self.store.mark_data_end(row.id, self.owner, now=now)
        previous, result, transcript = connection.unrecorded
        connection.unrecorded = None
        try:
            state, marked = self.store.record_and_mark(
                previous.id, self.owner, result, transcript, mark=row.id, now=now
            )
        except WrongState:
            return self.store.mark_data_end(row.id, self.owner, now=now)
        finally:
            with self._lock:
                self._held.discard(previous.id)
        self._emit(StateChanged(previous.id, state))
        return marked

    def _flush(self, connection: _Connection) -> None:
        """Record a clean result still waiting for the next message's commit."""
        if connection.unrecorded is None:
            return
        previous, result, transcript = connection.unrecorded
        connection.unrecorded = None
        try:
            state = self.store.record_result(
                previous.id, self.owner, result, transcript, now=self._clock()
            )
            self._emit(StateChanged(previous.id, state))
        except WrongState:
            pass
        finally:
            with self._lock:
                self._held.discard(previous.id)

    def _transcript_listener(self, row: MessageRow) -> Callable[[TranscriptRecord], None] | None:
        if self._on_event is None:
            return None  # nobody listens: no event objects per line

        def listener(record: TranscriptRecord) -> None:
            self._emit(TranscriptLine(row.id, row.account, record))

        return listener

    def _register(self, message: int) -> SessionHook:
        """Note the session carrying ``message``, so that cancel can close it."""

        def register(session: Session) -> None:
            with self._lock:
                cancelled = message in self._cancelled
                self._in_flight[message] = session
            if cancelled:
                session.abort()

        return register

    def _relay(
        self,
        account: SendingAccount,
        row: MessageRow,
        transcript: Transcript,
        connection: _Connection,
        mark_end: Callable[[], None],
    ) -> MessageResult:
        limit = min(self.per_connection, getattr(account, "connection_limit", self.per_connection))
        if connection.session is not None and (
            connection.messages >= limit or not connection.session.usable
        ):
            connection.close()
        if connection.session is None:
            session = Session(
                account.server_settings(),
                transcript=transcript,
                credentials=self._credentials(account),
            )
            with self._lock:
                self._in_flight[row.id] = session
            session.open()
            connection.session = session
        session = connection.session
        session.transcript = transcript
        with self._lock:
            if row.id in self._cancelled:
                raise Cancelled("The send was cancelled.")
            self._in_flight[row.id] = session
        envelope = Envelope(
            row.envelope_from,
            row.pending,
            smtputf8=row.smtputf8,
            eight_bit=row.eight_bit,
            dsn_notify=row.dsn_notify,
        )
        last_report = [0.0]

        def progress(sent: int, total: int) -> None:
            now = time.monotonic()
            if sent == total or now - last_report[0] > 0.1:  # at most ten events a second
                last_report[0] = now
                self._emit(Progress(row.id, sent, total))

        with row.spool_path.open("rb") as body:
            result = session.send_message(
                envelope, body, row.size, progress=progress, before_end=mark_end
            )
        connection.messages += 1
        return result

    def _fail(self, row: MessageRow, transcript: Transcript, verdict: Verdict) -> bool:
        now = self._clock()
        transcript.note(verdict.reason)  # the session log says why it stopped
        try:
            state = self.store.record_failure(
                row.id, self.owner, verdict, transcript.render(), account=row.account, now=now
            )
        except WrongState:
            return True  # another runner holds it now; its own attempt will be recorded
        self._emit(StateChanged(row.id, state, verdict.reason))
        if verdict.disposition is Disposition.DEFER:
            # The server could not be reached or refused for now: the account's
            # other messages wait for the same retry time instead of hammering it.
            with contextlib.suppress(OutboxError):
                self._backoff[row.account] = self.store.get(row.id).due_at
            return False
        return verdict.disposition is Disposition.FAIL


def deliver_direct_row(
    account: SendingAccount,
    row: MessageRow,
    transcript: Transcript,
    before_end: Callable[[], None],
    on_session: SessionHook,
) -> MessageResult:
    """Direct delivery of an outbox message to its recipients' MX hosts."""
    from mailer_gui.outbox.routes import deliver_direct, make_resolver

    envelope = Envelope(
        row.envelope_from,
        row.pending,
        smtputf8=row.smtputf8,
        eight_bit=row.eight_bit,
        dsn_notify=row.dsn_notify,
    )
    port = getattr(account, "effective_port", 25)
    with row.spool_path.open("rb") as body:
        return deliver_direct(
            envelope,
            body,
            row.size,
            resolver=make_resolver(),
            port=port,
            transcript=transcript,
            before_end=before_end,
            on_session=on_session,
        )
