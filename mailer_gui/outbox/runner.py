"""The delivery loop: claim due messages, send them, record what happened.

A scheduler thread wakes on new work (`wake()`), on the next due time, to
renew the leases of messages in flight, and every `LOOK_AGAIN` seconds for
work another process queued (the command line); it never polls in a tight
loop. Each
account with due messages gets a worker thread (at most `max_connections` at
once), which reuses one connection for up to `per_connection` messages.
One failing message never blocks the others: its result is recorded and the
worker goes on. When the account's server itself puts a message off (it
cannot be reached, or closes with 421 before taking any message), or for a
direct account the DNS server answers nothing, the account's other messages
wait for that message's next try, in the store too
(`OutboxStore.hold_queued`), rather than each asking again at once. A 421
after other messages went through on the connection is taken for the
server's limit per connection: that message goes again at once on a new one,
its attempt not counted. A relay worker claims `CLAIM_BATCH` messages at a
time; a direct one claims one, since each of its messages takes lookups and
connections of its own. Events (frozen dataclasses) report state changes,
progress and transcript lines to whoever listens: the CLI, or the GUI's bridge.

What a worker writes, and when (crash safety):

- Just before a message's final "." leaves, the worker leaves its
  end-of-data mark: a line in this runner's marks file (marks.py; one
  write, no transaction) while its lease is known to run for a good while
  yet, else `OutboxStore.mark_data_end`, one statement that also checks the
  lease (if another runner holds the message now, the "." is never sent).
  A message whose "." may have reached the server therefore always has a
  durable record that it may have been delivered: after a crash, recovery
  finds it `sending` with a mark and makes it `uncertain` (the person
  decides), never queued again silently. A message interrupted before its
  mark goes back to `queued`.
- With PIPELINING, the next claimed message's MAIL, RCPT and DATA go in the
  same write as the final "." (`Session.send_message(following=...)`): one
  wait for the server per message instead of two. While the server takes a
  message, the worker reads the next one's file (whole, when small; checked
  against the DATA plan made when it was queued) and builds the commands
  that will go with that next message's "." (`Session.prepare_next`).
- The server's reply to a message that needs no decision (a clean result)
  is kept in memory and written later, together with others, in one
  transaction (`OutboxStore.record_and_claim`), which also claims the next
  messages when the worker runs low. Until it is written the message stays
  `sending` with its mark set and its lease renewed, so a crash in between
  makes it `uncertain` as above: nothing is lost or sent twice.
- When: just after the next final "." left (the session reports its last
  bytes after writing them, through the `progress` callback), while the
  server takes that message and the worker would only wait. At full speed
  results gather for up to `RECORD_BATCH` messages or `RECORD_AGE`
  seconds, so a crash then may leave that many messages that did arrive
  `uncertain`. At a slower pace (a message every `RECORD_DELAY` or more)
  each result is written at the next ".", as when nothing was batched: one
  message at most. Results kept are also written before a large transfer
  and when the worker stops; a run is over only when all are written.
  Errors, failures and cancellations are written at once.
- SQLite runs in WAL mode with ``synchronous=NORMAL`` (see store.py): a
  commit survives the process being killed at any moment; a power cut can
  lose the last few commits, never corrupt the file.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO, NamedTuple, Protocol

from mailer_gui.message.addresses import shown_address
from mailer_gui.outbox.marks import EndMarks, RunnerLock
from mailer_gui.outbox.policy import (
    NEEDS_ATTENTION,
    NEEDS_PASSWORD,
    Disposition,
    Verdict,
    judge,
)
from mailer_gui.outbox.store import (
    MessageRow,
    OutboxError,
    OutboxStore,
    State,
    WrongState,
    planned_dots,
)
from mailer_gui.smtp.auth import Credentials
from mailer_gui.smtp.errors import AuthenticationError, Cancelled, ConnectError, SmtpError
from mailer_gui.smtp.replies import TLS_FIRST_WORDS, Reply, Stage, explain, without_retry_note
from mailer_gui.smtp.session import (
    CHUNK_SIZE,
    Envelope,
    MessageResult,
    RecipientResult,
    RecipientStatus,
    Session,
    too_big_reason,
)
from mailer_gui.smtp.settings import AuthMethod, ServerSettings
from mailer_gui.smtp.transcript import Transcript, TranscriptRecord, render_records

if TYPE_CHECKING:  # routes loads dnspython: only direct delivery needs it
    from mailer_gui.outbox.routes import DnsSilence

_log = logging.getLogger(__name__)

CANCEL_HOLD = 60.0  # a cancelled send waits this long before it may go again
CLAIM_BATCH = 25  # messages a worker claims in one transaction
CLAIM_AHEAD = 5  # claim the next ones while the server works when fewer are left
# Results written together, in one transaction. As many as a claim takes, so
# that one commit carries both: the claim comes due as the results do.
RECORD_BATCH = CLAIM_BATCH
# A message every RECORD_DELAY seconds or more is a slow pace: each result is
# written at the next final ".", as when nothing was batched.
RECORD_DELAY = 0.01
# At a faster pace, the seconds a result may wait for others. A batch fills in
# 5 to 15 ms (10 KB messages to a local server): at 10 ms, as long as the
# slow pace above, a slow run of the machine cut most batches in two.
RECORD_AGE = 0.05
LARGE_MESSAGE = 256 * 1024  # bytes; results kept are written before such a transfer
# Message files are read as bytes, never changed: no "\r\n" conversion on Windows.
_BINARY = getattr(os, "O_BINARY", 0)
# Seconds between looks at the outbox when nothing is due: what another Mailer
# (the command line's `send --later`) queued is noticed within this.
LOOK_AGAIN = 5.0
# An account whose worker stopped because the outbox could not be written (a
# full disk) waits this long before its worker starts again.
STORE_TROUBLE_WAIT = 30.0
# A trouble told already is told again after this long, if it is still there.
TROUBLE_AGAIN = 600.0


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


@dataclass(frozen=True)
class Trouble:
    """The background runner could not do its own work (take back interrupted
    messages, look for due ones): what it met, for the person to see. Each
    different one is told once."""

    text: str


Event = StateChanged | Progress | TranscriptLine | Trouble
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
# (account, message, its bytes at their start, transcript, mark_end, session
# hook, the run's DNS silence: one per worker, kept from message to message;
# and what to call with a domain's answers while other domains follow)
DirectDelivery = Callable[
    [SendingAccount, MessageRow, BinaryIO, Transcript, Callable[[], None], SessionHook,
     "DnsSilence", Callable[[tuple[RecipientResult, ...]], None]],
    MessageResult,
]  # fmt: skip


class _Connection:
    """One worker's session to its account's server, opened when first needed."""

    def __init__(self) -> None:
        self.session: Session | None = None
        self.messages = 0
        # The account (by the name its messages give) as read for this
        # connection; read again once it closes. Reading the accounts file for
        # every message would cost more than sending a small message.
        self.account: tuple[str, SendingAccount] | None = None
        # The envelopes of the message going out and the next two, by message.
        self._envelopes: dict[int, tuple[MessageRow, Envelope]] = {}
        # The next message's spool file (and its plan), opened and its start
        # read while the server worked on the message before (see prepare).
        self._upcoming: tuple[MessageRow, _Spooled] | None = None
        # Direct delivery: a DNS lookup nobody answered, for the next messages.
        self._silence: DnsSilence | None = None

    @property
    def silence(self) -> DnsSilence:
        if self._silence is None:
            from mailer_gui.outbox.routes import DnsSilence

            self._silence = DnsSilence()
        return self._silence

    def envelope_of(self, row: MessageRow) -> Envelope:
        """The envelope of ``row``, made once while it was one of the next messages.

        The same object each time: the session knows what it built and sent
        ahead for an envelope by its identity.
        """
        envelopes = self._envelopes
        cached = envelopes.get(row.id)
        if cached is not None and cached[0] is row:
            return cached[1]
        envelope = _envelope(row)
        if len(envelopes) >= 4:
            del envelopes[next(iter(envelopes))]  # the oldest
        envelopes[row.id] = (row, envelope)
        return envelope

    def prepare(self, row: MessageRow, after: MessageRow | None = None) -> None:
        """Open ``row``'s spool file and have the session read and encode its start.

        ``row`` is the message whose commands went with the final "." that
        just left: this runs while the server works on that message, so the
        next one's first bytes are ready when its 354 comes. ``after``, the
        message to follow ``row`` on this connection, has the commands that
        will go with ``row``'s final "." built now as well. A file that
        cannot be read is left alone here; `body` opens it again and the
        message fails there, with its reason.
        """
        if self.session is None or self.session.sent_ahead is None:
            return
        self._drop_upcoming()
        try:
            spooled = _open_spool(row)  # closed by body or close
        except OSError:
            return
        following = (self.envelope_of(after), after.size) if after is not None else None
        try:
            self.session.prepare_next(*spooled, following)
        except OSError:
            spooled.body.close()
            return
        self._upcoming = (row, spooled)

    def body(self, row: MessageRow) -> _Spooled:
        """``row``'s spool file: the one `prepare` opened, or opened now."""
        upcoming, self._upcoming = self._upcoming, None
        if upcoming is not None:
            if upcoming[0] is row:
                return upcoming[1]
            upcoming[1].body.close()
        return _open_spool(row)  # the caller closes it

    def _drop_upcoming(self) -> None:
        upcoming, self._upcoming = self._upcoming, None
        if upcoming is not None:
            upcoming[1].body.close()

    def close(self) -> None:
        self._drop_upcoming()
        if self.session is not None:
            self.session.close()
        self.session = None
        self.messages = 0
        self.account = None
        self._envelopes.clear()


class _Spooled(NamedTuple):
    """A message file opened to be sent, and its DATA plan when it has one."""

    body: BinaryIO
    plan: tuple[int, ...] | None = None


def _open_spool(row: MessageRow) -> _Spooled:
    """``row``'s message file, to be read from its start.

    A message no larger than the session's first read is read whole now (open,
    read to the end, close) and given as bytes in memory: the session would
    hold all of it at once anyway, and a file object costs several more system
    calls (the checks when it opens, a seek for every tell and seek). A larger
    one is opened unbuffered: the session reads it in large chunks itself.
    A small message goes with its plan (`planned_dots`) when it has one and
    the file is still what was planned.
    """
    if row.size > CHUNK_SIZE:
        body = open(row.spool_file_path, "rb", buffering=0)  # noqa: SIM115 (the caller closes it)
        size = os.fstat(body.fileno()).st_size
        if size != row.size:
            body.close()
            raise SpoolChanged(row, f"{size} bytes now, {row.size} when it was queued")
        return _Spooled(body)
    fd = os.open(row.spool_file_path, os.O_RDONLY | _BINARY)
    try:
        # Read to the end (a read returns less than asked only there), or to
        # one byte past what the session's first read takes. A first read
        # that returned the size the message was queued with was the end.
        data = os.read(fd, CHUNK_SIZE + 1)
        while (
            len(data) != row.size
            and len(data) <= CHUNK_SIZE
            and (chunk := os.read(fd, CHUNK_SIZE + 1 - len(data)))
        ):
            data += chunk
    finally:
        os.close(fd)
    if len(data) != row.size:  # cut short, emptied, or grown
        more = "more than " if len(data) > CHUNK_SIZE else ""
        raise SpoolChanged(row, f"{more}{len(data)} bytes now, {row.size} when it was queued")
    plan = planned_dots(row, data)
    if plan is None and row.wire_plan is not None:  # the same size, other bytes
        raise SpoolChanged(row, "its bytes are not those that were queued")
    return _Spooled(io.BytesIO(data), plan)


# Why an account waits (_Wait.why): a trouble of Mailer's own (its worker
# failed, a full disk); its server put a message off (could not be reached);
# its server asked for the wait (a 421). Messages that come due while a server
# waits wait in the store too (`OutboxStore.hold_queued`), so that every view
# shows when they go; a message the person sends meanwhile is tried unless
# the server asked (`clear_backoff(asked=False)`).
_TROUBLE, _PUT_OFF, _ASKED = "trouble", "put off", "asked"


class _Wait(NamedTuple):
    until: float  # the runner's clock
    why: str  # _TROUBLE, _PUT_OFF or _ASKED


class TooLateToCancel(WrongState):
    """Cancel asked for a message whose final "." has gone out."""


class SpoolChanged(OSError):
    """A message's file is no longer what was queued (cut short, emptied,
    overwritten): it is not sent as it now is."""

    def __init__(self, row: MessageRow, how: str) -> None:
        super().__init__(
            f"The message file {row.spool_path} has changed since the message was queued "
            f"({how}), so Mailer does not send it: the recipients would get a damaged "
            "message. Nothing else was changed (in the window, Edit as new makes a new "
            "message from what is left)."
        )


# A sent message, its result and its transcript (its records, or their text
# once `_Ledger.idle` rendered them), waiting to be written.
_Result = tuple[MessageRow, MessageResult, tuple[TranscriptRecord, ...] | str]


def _transcript_text(transcript: tuple[TranscriptRecord, ...] | str) -> str:
    if isinstance(transcript, str):
        return transcript
    return render_records(transcript)


class _Ledger:
    """A worker's claimed messages, and the results it has not written yet.

    Writes happen while the server works: `idle()` runs just after a final "."
    left, when the server has the message and the worker would only wait for
    its reply. Each write is one transaction with every result kept so far and,
    when the worker runs low, the next claims (see the module docstring).
    """

    def __init__(
        self, runner: Runner, account: str, *, only: int | None, batch: int = CLAIM_BATCH
    ) -> None:
        self._runner = runner
        self._account = account
        self._only = only
        self._batch = batch  # messages claimed at a time
        self._claimed: deque[MessageRow] = deque()
        self._results: list[_Result] = []
        self._since = 0.0  # when the oldest result kept was added (monotonic)
        self._last_idle = 0.0  # when the last final "." left (monotonic)
        self._exhausted = False  # a claim found nothing while nothing was left

    def next(self) -> MessageRow | None:
        """The next claimed message to send; None when there is none."""
        if not self._claimed and not self._exhausted:
            if self._runner._paused.is_set() and self._only is None:
                self.write()
                return None  # paused: finish what was claimed, take no more
            self.write(claim=1 if self._only is not None else self._batch)
            if not self._claimed:
                self._exhausted = True
                return None
        if self._only is not None and self._exhausted:
            return None
        row = self._claimed.popleft() if self._claimed else None
        if self._results and (
            row is None or row.size > LARGE_MESSAGE or time.monotonic() - self._since > RECORD_AGE
        ):
            try:
                self.write()  # do not leave results waiting behind a long transfer
            except BaseException:
                if row is not None:
                    self._claimed.appendleft(row)  # given back by close(), not lost
                raise
        if self._only is not None:
            self._exhausted = True  # one message only
        return row

    def peek(self, later: int = 0) -> MessageRow | None:
        """The message `next()` will give (or the one ``later`` after it), if
        claimed already."""
        claimed = self._claimed
        return claimed[later] if len(claimed) > later and self._only is None else None

    def record(self, row: MessageRow, result: MessageResult, transcript: Transcript) -> None:
        """Keep ``result`` for the next write (a result that needs no decision)."""
        with self._runner._lock:  # still leased by this runner: the heartbeat renews it
            self._runner._held.add(row.id)
        if not self._results:
            self._since = time.monotonic()
        self._results.append((row, result, transcript.records))

    def idle(self) -> None:
        """A final "." just left: write now if it is time, while the server works.

        Otherwise the transcripts kept since the last time are rendered now,
        so that the write that takes them has less to do.
        """
        now = time.monotonic()
        # At a slow pace (a slow server, large messages) a batch saves nothing
        # worth a result kept unwritten for longer: write each one at once.
        slow = now - self._last_idle > RECORD_DELAY
        self._last_idle = now
        claim = 0
        if (
            self._only is None
            and not self._exhausted
            and len(self._claimed) < CLAIM_AHEAD
            and not self._runner._paused.is_set()
        ):
            claim = self._batch
        if claim or (
            self._results
            and (len(self._results) >= RECORD_BATCH or slow or now - self._since > RECORD_AGE)
        ):
            # A message's "." just left: its reply must still be read, so a
            # write that fails now (the database busy or unwritable) is tried
            # again at the next write, which raises if it fails too.
            with contextlib.suppress(OutboxError):
                self.write(claim=claim)
            return
        results = self._results
        for index in range(len(results) - 1, -1, -1):
            row, result, transcript = results[index]
            if isinstance(transcript, str):
                break  # those before were rendered at an earlier idle()
            results[index] = (row, result, _transcript_text(transcript))

    def write(self, *, claim: int = 0) -> None:
        """Write the results kept so far, and claim up to ``claim`` more, in one commit.

        If the write fails, the results are kept (and their leases renewed)
        for the next one, and the error is raised.
        """
        if not self._results and not claim:
            return
        batch, self._results = self._results, []
        runner = self._runner
        now = runner._clock()
        try:
            states, rows = runner.store.record_and_claim(
                runner.owner,
                [(row, result, _transcript_text(text)) for row, result, text in batch],
                now=now,
                lease=runner.lease,
                account=self._account,
                message=self._only,
                limit=claim,
            )
        except BaseException:
            self._results = batch + self._results
            raise
        if batch:
            with runner._lock:
                runner._held.difference_update(row.id for row, _, _ in batch)
            runner._settled(row.id for row, _, _ in batch)
        if rows:
            with runner._lock:
                runner._held.update(row.id for row in rows)
                seen = (now + runner.lease, now, time.monotonic())
                runner._leases.update((row.id, seen) for row in rows)
            self._claimed.extend(rows)
        for (row, result, _), state in zip(batch, states, strict=True):
            if state is not None and runner._on_event is not None:  # None: not this runner's now
                detail = runner._detail(row, result, state)
                runner._emit(StateChanged(row.id, state, detail))

    def close(self) -> None:
        """Write what is left, and give back what was claimed and not sent.

        Results that cannot be written stay `sending` with their marks, and
        so do claimed messages that cannot be given back: the runner gives
        them back as soon as the outbox can be written again (`uncertain`
        where the mark says the "." left), or recovery does once their
        leases run out.
        """
        runner = self._runner
        try:
            self.write()
        except BaseException:
            unwritten = [row.id for row, _, _ in self._results]
            with runner._lock:
                runner._held.difference_update(unwritten)
                runner._unwritten.update(unwritten)
            raise
        finally:
            while self._claimed:
                row = self._claimed.popleft()
                now = runner._clock()
                # Held back with the rest, when the account's server put one off.
                wait = runner._backoff.get(row.account)
                hold = max(0.0, wait.until - now) if wait is not None else 0.0
                try:
                    runner.store.release(row.id, runner.owner, now=now, hold=hold, started=False)
                except OutboxError:
                    with runner._lock:
                        runner._unwritten.add(row.id)
                with runner._lock:
                    runner._held.discard(row.id)
                runner._settled([row.id])


def _sandbox_down(error: SmtpError, account: SendingAccount | None) -> SmtpError:
    """A refused connection to Mailer's own sandbox means it is not running, not
    that the port or security settings are wrong: say that instead."""
    from mailer_gui.accounts.model import Account
    from mailer_gui.sandbox.account import is_sandbox_account

    if (
        not isinstance(error, ConnectError)
        or not isinstance(error.__cause__, ConnectionRefusedError)
        or not isinstance(account, Account)
        or not is_sandbox_account(account)
    ):
        return error
    down = ConnectError(
        f"Mailer's test server (the sandbox, port {account.effective_port}) is not running, "
        "so the message could not go to it. Start it in Sandbox inbox (Start server), or "
        "with mailer-gui sandbox; Mailer will try again later."
    )
    down.__cause__ = error.__cause__
    return down


def refusals(result: MessageResult) -> str | None:
    """The recipients a server refused, with its words, those refused for good
    apart from those to be tried again: what a state change says why."""
    parts = []
    for status, heading in (
        (RecipientStatus.REJECTED, "Refused for good"),
        (RecipientStatus.DEFERRED, "To be tried again"),
    ):
        said = [
            f"{shown_address(r.address)}: {r.text}" if r.text else shown_address(r.address)
            for r in result.recipients
            if r.status is status
        ]
        if said:
            parts.append(f"{heading}: {'; '.join(said)}.")
    return " ".join(parts) or None


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
        # Each claimed message's lease as last committed: (until, the clock then,
        # time.monotonic() then). A mark well before `until` needs no database check.
        self._leases: dict[int, tuple[float, float, float]] = {}
        self._marks = EndMarks(store.marks_dir, self.owner)
        # Held while this runner may hold messages: if its process ends, however
        # it ends, the next recovery takes them back at once (marks.py).
        self._alive = RunnerLock(store.marks_dir, self.owner)
        self._cancelled: set[int] = set()
        # Accounts whose worker does not start before a time, and why (_Wait).
        self._backoff: dict[str, _Wait] = {}
        # Each Trouble text told, and when (time.monotonic()).
        self._told: dict[str, float] = {}
        # Messages whose final "." is going or gone (their mark is set): too
        # late to cancel.
        self._ending: set[int] = set()
        # Messages left `sending` because the outbox could not be written (a
        # result, or a claim given back): given back once it can be.
        self._unwritten: set[int] = set()
        self._thread: threading.Thread | None = None
        # The error that ended each message's latest attempt, for callers that
        # explain it (the CLI maps it to an exit code).
        self.errors: dict[int, SmtpError] = {}

    # ------------------------------------------------------------ controls

    def start(self) -> None:
        if self._thread is None:
            self._alive.acquire()
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

    def in_flight(self) -> list[int]:
        """The messages being sent right now."""
        with self._lock:
            return list(self._in_flight)

    def pause(self) -> None:
        """Start no new delivery until `resume` (what is being sent now finishes)."""
        self._paused.set()

    def resume(self) -> None:
        self._paused.clear()
        self._wake.set()

    def clear_backoff(self, account: str | None = None, *, asked: bool = True) -> None:
        """The person asked to try now: forget that ``account`` (or every account)
        could not be reached, so its messages go at the next look. With
        ``asked=False``, not a wait the account's server asked for (a 421,
        see `_hold`)."""
        with self._lock:
            names = list(self._backoff) if account is None else [account]
            for name in names:
                wait = self._backoff.get(name)
                if wait is not None and (asked or wait.why != _ASKED):
                    del self._backoff[name]
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
        if not any(t.is_alive() for t in (self._thread, *workers) if t is not None):
            self._let_go()
        else:
            self._marks.close()  # the process's end lets go of the lock

    def cancel(self, message: int) -> State:
        """Cancel: a waiting message at once; one being sent here has its connection
        closed and goes back to the queue (held a minute, to be cancelled for good).

        Raises TooLateToCancel once all of the message has gone out: closing
        the connection then would not unsend it, only leave it uncertain.
        """
        with self._lock:
            if message in self._ending:
                raise TooLateToCancel(
                    "All of the message has gone to the server already: Mailer is waiting "
                    "for its answer, and cancelling now would not stop the message."
                )
            # From here its "." is not sent (mark_end looks), whatever follows.
            self._cancelled.add(message)
        try:
            state = self.store.cancel(message)
        except BaseException:
            with self._lock:
                self._cancelled.discard(message)
            raise
        with self._lock:
            session = self._in_flight.get(message)
            if state is not State.SENDING:
                self._cancelled.discard(message)
        if state is State.SENDING:
            if session is not None:
                session.abort()
        else:
            self._emit(StateChanged(message, state))
        return state

    def deliver_now(self, *, account: str | None = None, message: int | None = None) -> None:
        """Deliver what is due, in this thread (the CLI's send and flush)."""
        self._recover(self._clock())
        self._alive.acquire()
        try:
            with self._heartbeat():
                if message is not None:
                    row = self.store.get(message)
                    self._work(row.account, only=message)
                    return
                accounts = [account] if account else self.store.due_accounts(self._clock())
                for name in accounts:
                    self._work(name)
        finally:
            if self._thread is None:  # not running in the background as well
                self._let_go()
            else:
                self._marks.close()

    def _let_go(self) -> None:
        """This runner holds nothing from now on. A send cut short (Ctrl+C in
        the command line) left its message `sending`: it is given back now,
        as recovery would give it back (uncertain if its "." may have left,
        queued otherwise), instead of waiting for its lease to run out. Then
        the runner's lock is let go."""
        self._marks.close()
        holding = False
        try:
            given = self.store.give_back(self.owner, now=self._clock())
        except OutboxError:
            given = []  # taken back by the next recovery (the lock file stays)
            holding = True
        self._settled(message for message, _ in given)
        self._alive.release(holding=holding)
        for message, state in given:
            self._emit(StateChanged(message, state, "the send was interrupted"))

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

    def _trouble(self, text: str) -> None:
        """Tell ``text`` (a Trouble), unless it was told in the last TROUBLE_AGAIN seconds."""
        now = time.monotonic()
        with self._lock:
            told = self._told.get(text)
            if told is not None and now - told < TROUBLE_AGAIN:
                return
            self._told[text] = now
        self._emit(Trouble(text))

    def _schedule(self) -> None:
        while not self._stopping.is_set():
            now = self._clock()
            self._renew_leases(now)
            try:
                for message, state in self._recover(now):
                    self._emit(StateChanged(message, state, "recovered after an interruption"))
                self._give_back_unwritten(now)
            except OutboxError as exc:
                # Tried again at every turn; said once (a message stays
                # "sending" meanwhile, and the person should know why).
                self._trouble(str(exc))
            self._start_workers(now)
            self._wake.wait(self._sleep_time(now))
            self._wake.clear()

    def _sleep_time(self, now: float) -> float:
        # Leases of messages in flight need renewing; another process may queue.
        waits = [self.lease / 3, LOOK_AGAIN]
        with self._lock:
            busy = set(self._workers)
        excluded = busy | {a for a, wait in self._backoff.items() if wait.until > now}
        with contextlib.suppress(OutboxError):
            due = self.store.next_due(exclude_accounts=excluded)
            if due is not None:
                waits.append(due - now)
        waits.extend(w.until - now for w in self._backoff.values() if w.until > now)
        return max(0.05, min(waits))

    def _give_back_unwritten(self, now: float) -> None:
        """Give back what a worker could not write (see `_Ledger.close`)."""
        with self._lock:
            messages = self._unwritten - self._in_flight.keys() - self._held
        if not messages:
            return
        given = self.store.give_back(self.owner, now=now, messages=messages)
        with self._lock:
            self._unwritten -= messages
        self._settled(message for message, _ in given)
        for message, state in given:
            self._emit(StateChanged(message, state, "its result could not be written before"))

    def _recover(self, now: float) -> list[tuple[int, State]]:
        """Take back messages whose runner died or gave up on them (this one's too)."""
        recovered = self.store.recover(now=now, keep_owner=self.owner, holding=self._holding())
        self._settled(message for message, _ in recovered)
        return recovered

    def _holding(self) -> set[int]:
        """The messages this runner has in hand: being sent, claimed, or with a result to write."""
        with self._lock:
            return self._in_flight.keys() | self._held

    def _renew_leases(self, now: float) -> None:
        with self._lock:
            messages = list(self._in_flight.keys() | self._held)
        if messages:
            with contextlib.suppress(OutboxError):
                renewed = self.store.renew_leases(self.owner, messages, now + self.lease)
                seen = (now + self.lease, now, time.monotonic())
                with self._lock:
                    for message in renewed:
                        if message in self._leases:
                            self._leases[message] = seen

    def _mark_end(self, row: MessageRow, ending: Sequence[str] = ()) -> None:
        """Leave the end-of-data mark of ``row``: its final "." may leave after this.

        The mark is a line in this runner's marks file (marks.py). While the
        lease is known to run for a good while yet, no other runner can have
        taken the message, and none will before the line is written: checked
        after writing it, so a pause in between (a suspend) is caught. Both
        clocks must agree: the wall clock (leases are in its time) may not have
        gone back since the lease was committed, and neither it nor the
        monotonic clock (which a suspend does not advance) may have run past
        the margin. Otherwise, or when the file cannot be written, the database
        decides, in one statement that checks the lease.
        """
        with self._lock:
            seen = self._leases.get(row.id)
        if row.attempt is not None and seen is not None:
            until, wall_at, steady_at = seen
            try:
                self._marks.add(row.id, row.attempt, _places(row, ending))
            except OSError:
                pass  # a full disk, say: the database statement below marks it
            else:
                margin = until - wall_at - self.lease / 3
                wall = self._clock() - wall_at
                if 0 <= wall < margin and time.monotonic() - steady_at < margin:
                    return
        if not self.store.mark_data_end(row.id, self.owner, now=self._clock()):
            # Another runner took the message over (this one's lease ran
            # out): it sends it; this one must not send the final ".".
            raise LeaseLost("Another Mailer took this message over; this copy was not finished.")

    def _settled(self, messages: Iterable[int]) -> None:
        """The results of ``messages`` are written (or no longer this runner's)."""
        messages = list(messages)
        with self._lock:
            for message in messages:
                self._leases.pop(message, None)
        # Emptying the file is tidying: if it fails, the stale lines name
        # attempts that are over, which recovery never looks for.
        with contextlib.suppress(OSError):
            self._marks.settled(messages)

    def _start_workers(self, now: float) -> None:
        if self._paused.is_set():
            return
        try:
            due = self.store.due_accounts(now)
        except OutboxError:
            return
        held: list[tuple[str, float]] = []
        with self._lock:
            for account in due:
                wait = self._backoff.get(account)
                until = wait.until if wait is not None else 0.0
                if until > now and wait is not None and wait.why != _TROUBLE:
                    held.append((account, until))  # came due while its server is put off
                if len(self._workers) >= self.max_connections:
                    continue
                if account in self._workers or until > now:
                    continue
                worker = threading.Thread(
                    target=self._worker, args=(account,), name=f"outbox-{account}", daemon=True
                )
                self._workers[account] = worker
                worker.start()
        for account, until in held:
            with contextlib.suppress(OutboxError):
                self.store.hold_queued(account, until, now=now)

    def _worker(self, account: str) -> None:
        try:
            self._work(account)
        except Exception as exc:
            # Not a message's failure (each is caught in _deliver) but the
            # worker's own: the outbox could not be written (a full disk), or
            # a fault of Mailer's. Told once, and the account waits a while:
            # started again at once, the worker would fail in a loop.
            with self._lock:
                self._backoff[account] = _Wait(self._clock() + STORE_TROUBLE_WAIT, _TROUBLE)
            if isinstance(exc, OutboxError):
                self._trouble(str(exc))  # as recovery would tell it: once
            else:
                _log.exception("the worker of account %s failed", account)
                self._trouble(
                    f"Sending from {account} stopped for now: Mailer failed "
                    f"({type(exc).__name__}: {exc}). It tries again in a while."
                )
        finally:
            with self._lock:
                self._workers.pop(account, None)
            self._wake.set()

    # -------------------------------------------------------------- worker

    def _work(self, account_name: str, *, only: int | None = None) -> None:
        connection = _Connection()
        ledger = _Ledger(self, account_name, only=only, batch=self._claim_batch(account_name))
        try:
            while not self._stopping.is_set():
                row = ledger.next()
                if row is None:
                    return
                if self._on_event is not None:
                    self._emit(StateChanged(row.id, State.SENDING))
                keep_going = self._deliver(row, connection, ledger)
                if only is not None or not keep_going:
                    return
        finally:
            try:
                connection.close()
            finally:
                ledger.close()

    def _claim_batch(self, account_name: str) -> int:
        """How many messages a worker claims at a time: a batch for a relay,
        where a message takes milliseconds, one for direct delivery, where each
        takes its own lookups and connections (seconds, or a minute to a slow
        server): the others show "Sending…" only once their turn comes."""
        try:
            kind = getattr(self._accounts(account_name), "kind", None)
        except Exception:  # removed or unreadable: _deliver says so for each message
            return CLAIM_BATCH
        return 1 if kind == "direct" else CLAIM_BATCH

    def _deliver(self, row: MessageRow, connection: _Connection, ledger: _Ledger) -> bool:
        """Send one claimed message; False when the account should not be tried further now."""
        transcript = Transcript(self._transcript_listener(row))
        with self._lock:
            self._in_flight[row.id] = None
            self._held.discard(row.id)
        # Set once this attempt's outcome is in the database (or the message
        # is another runner's): its end-of-data mark no longer matters then.
        settled = False
        ended: list[bool] = []  # not empty once the final "." may have left
        try:
            try:
                if connection.account is None or connection.account[0] != row.account:
                    connection.account = (row.account, self._accounts(row.account))
                account = connection.account[1]
            except Exception as exc:  # the account was removed or its file is unreadable
                settled = True  # (_fail writes the outcome, or finds it is not this runner's)
                return self._fail(
                    row, transcript, Verdict(Disposition.PAUSE_ACCOUNT, str(exc), NEEDS_ATTENTION)
                )
            try:
                body, plan = connection.body(row)  # closed by the with below
            except SpoolChanged as exc:
                settled = True
                return self._fail(row, transcript, Verdict(Disposition.FAIL, str(exc)))
            except FileNotFoundError:
                settled = True
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
                with self._lock:
                    if row.id in self._cancelled:  # cancelled just now: the "." stays
                        raise Cancelled("The send was cancelled.")
                    self._ending.add(row.id)
                    session = self._in_flight.get(row.id)
                ended.append(True)
                self._mark_end(row, session.ending if session is not None else ())

            def answered(answers: tuple[RecipientResult, ...]) -> None:
                # One transaction of several ended with its "." answered: its
                # answers are written now, then its mark cleared.
                self.store.record_progress(row.id, self.owner, answers, now=self._clock())
                if row.attempt is not None:
                    with contextlib.suppress(OSError):  # the mark stands: uncertain at worst
                        self._marks.clear(row.id, row.attempt)

            with body:
                if account.kind == "direct":
                    if self._direct is None:
                        raise OutboxError("direct delivery is not available in this runner")
                    result = self._direct(
                        account, row, body, transcript, mark_end, self._register(row.id),
                        connection.silence, answered,
                    )  # fmt: skip
                    with self._lock:
                        cancelled = row.id in self._cancelled
                    if cancelled and not ended:
                        # Cancelled while no session was open to close (a DNS
                        # lookup): no "." left for any domain, so nothing was
                        # taken; it goes back to the queue as a cancel says.
                        raise Cancelled("The send was cancelled.")
                else:
                    result = self._relay(
                        account, row, body, plan, transcript, connection, ledger, mark_end,
                        answered,
                    )  # fmt: skip
            login = _login_wanted(result) if account.kind != "direct" else None
            if login is not None:
                # 530 to MAIL (or DATA): the server takes no mail from this
                # session before a login or STARTTLS. That is the account's
                # doing, not the recipients': every message would be refused
                # alike, so they wait for the person to fix the account.
                wanted = _fix_for_login(account, connection.session, login)
                connection.close()
                reason = explain(login, Stage.MAIL, host=account.server_settings().host).text
                self.errors[row.id] = AuthenticationError(reason, reply=login)
                settled = True
                return self._fail(
                    row, transcript, Verdict(Disposition.PAUSE_ACCOUNT, reason, wanted)
                )
            if result.error is None and account.kind != "direct":
                # A clean result: written by the ledger while the next message
                # goes out. Until then the message is "sending" with its mark
                # set, which a crash turns into uncertain: never lost, never
                # resent silently.
                ledger.record(row, result, transcript)
                return True
            if _closed_after_others(result, connection.messages, account.kind):
                # The server ended, with a 421, a connection that had carried
                # other messages, and took nothing of this one: most often its
                # limit of messages per connection. It goes again at once, on
                # a new connection, without a deferral or a counted attempt.
                connection.close()
                said = without_retry_note(result.error_text or "")
                reason = f"{said} Mailer sends it again at once on a new connection.".strip()
                transcript.note(reason)
                self.store.release(
                    row.id, self.owner, now=self._clock(), reason=reason,
                    transcript=transcript.render(),
                )  # fmt: skip
                settled = True
                self._emit(StateChanged(row.id, State.QUEUED, "the server closed the connection"))
                return True
            if result.error is not None:
                self.errors[row.id] = result.error
            state = self.store.record_result(
                row.id, self.owner, result, transcript.render(), now=self._clock()
            )
            settled = True
            given_up = state is State.FAILED and result.error is not None and result.error.transient
            detail = (
                (self._detail(row, result, state) if given_up else None)
                or result.error_text
                or self._detail(row, result, state)
            )
            self._emit(StateChanged(row.id, state, detail))
            if (
                account.kind == "direct"
                and state is State.DEFERRED
                and connection.silence.recent() is not None
            ):
                # The DNS server itself answers nothing (DnsSilence): no
                # message of this account that needs a lookup can go before
                # it does. Those wait for this one's retry, untried, as behind
                # a server's 421; one to address literals only goes on.
                with contextlib.suppress(OutboxError):
                    until = self.store.get(row.id).due_at
                    self.store.hold_queued(row.account, until, now=self._clock(), needing_dns=True)
                return True  # on to what is still due: messages to literals
            if result.error is not None and result.error.transient:
                first = connection.messages <= 1  # the connection carried no other
                connection.close()
                if first and _closing(result.error) and account.kind != "direct":
                    # The server closed a connection before it took any
                    # message on it: busy, or limiting this sender. The
                    # account's other messages wait for this one's retry
                    # instead of opening one connection after another. (After
                    # messages went through, a 421 is often the server's
                    # limit per connection: the next goes on a new one.)
                    self._hold(row, asked=True)
                    return False
            return True
        except Cancelled:
            self.store.release(row.id, self.owner, now=self._clock(), hold=CANCEL_HOLD)
            settled = True
            connection.close()
            self._emit(StateChanged(row.id, State.QUEUED, "the send was interrupted"))
            return not self._stopping.is_set()
        except SmtpError as exc:
            exc = _sandbox_down(exc, connection.account[1] if connection.account else None)
            connection.close()
            self.errors[row.id] = exc
            # A 421 asks for the wait (a busy server's greeting, say).
            keep_going = self._fail(row, transcript, judge(exc), asked=_closing(exc))
            settled = True
            return keep_going
        except WrongState:
            settled = True
            connection.close()
            return True  # someone else holds it now (recovered after a lease ran out)
        except OutboxError:
            raise  # the store cannot be written: recovery gives the message back
        except Exception as exc:
            # A fault of Mailer's own: this message is not left "sending" for
            # good, and the account's other messages go on.
            _log.exception("sending message %s failed in Mailer itself", row.id)
            connection.close()
            self.errors[row.id] = error = _internal_error(exc, bool(ended))
            if ended:  # the server may have taken it: the person decides
                settle = [
                    RecipientResult(address, RecipientStatus.DEFERRED, None, error.message, True)
                    for address in row.pending
                ]
                result = MessageResult(tuple(settle), error=error, uncertain=True)
                with contextlib.suppress(WrongState):
                    state = self.store.record_result(
                        row.id, self.owner, result, transcript.render(), now=self._clock()
                    )
                    self._emit(StateChanged(row.id, state, error.message))
                settled = True
                return True
            # Not the server's doing: the account's other messages need not wait.
            self._fail(row, transcript, judge(error), hold=False)
            settled = True
            return True
        finally:
            with self._lock:
                self._in_flight.pop(row.id, None)
                self._cancelled.discard(row.id)
                self._ending.discard(row.id)
            if settled:
                self._settled([row.id])

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
        body: BinaryIO,
        plan: tuple[int, ...] | None,
        transcript: Transcript,
        connection: _Connection,
        ledger: _Ledger,
        mark_end: Callable[[], None],
        answered: Callable[[tuple[RecipientResult, ...]], None],
    ) -> MessageResult:
        limit = min(self.per_connection, getattr(account, "connection_limit", self.per_connection))
        envelope = connection.envelope_of(row)
        if connection.session is not None and (
            connection.messages >= limit
            or not connection.session.usable
            or connection.session.sent_ahead not in (None, envelope)
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
        # The next claimed message's MAIL, RCPT and DATA go with this one's
        # final "." when it will use this connection too.
        upcoming = ledger.peek()
        following = (
            (connection.envelope_of(upcoming), upcoming.size)
            if upcoming is not None and connection.messages + 1 < limit
            else None
        )
        last_report = [0.0]
        listening = self._on_event is not None

        def progress(sent: int, total: int) -> None:
            if sent == total:
                # The final "." is out (the session reports the last bytes after
                # writing them): write what is waiting while the server works,
                # and make the next message ready to go.
                ledger.idle()
                if following is not None and upcoming is not None:
                    after = ledger.peek(1) if connection.messages + 2 < limit else None
                    connection.prepare(upcoming, after)
            if not listening:
                return
            now = time.monotonic()
            if sent == total or now - last_report[0] > 0.1:  # at most ten events a second
                last_report[0] = now
                self._emit(Progress(row.id, sent, total))

        result = session.send_message(
            envelope,
            body,
            row.size,
            progress=progress,
            before_end=mark_end,
            following=following,
            plan=plan,
            after_end=answered,
        )
        connection.messages += 1
        return result

    def _detail(self, row: MessageRow, result: MessageResult, state: State) -> str | None:
        """What a state change after ``result`` says why: the refusals, or the
        store's reason when it gave up on recipients still to be tried again
        (they are not "to be tried again" any more)."""
        if state is State.FAILED and any(
            r.status is RecipientStatus.DEFERRED for r in result.recipients
        ):
            with contextlib.suppress(OutboxError):
                return self.store.get(row.id).last_error
        return too_big_reason(result, row.size) or refusals(result)

    def _fail(
        self, row: MessageRow, transcript: Transcript, verdict: Verdict, *, hold: bool = True,
        asked: bool = False,
    ) -> bool:  # fmt: skip
        now = self._clock()
        transcript.note(verdict.reason)  # the session log says why it stopped
        try:
            state = self.store.record_failure(
                row.id, self.owner, verdict, transcript.render(), account=row.account, now=now
            )
        except WrongState:
            return True  # another runner holds it now; its own attempt will be recorded
        detail = verdict.reason
        if state is State.FAILED and verdict.disposition is Disposition.DEFER:
            with contextlib.suppress(OutboxError):  # given up: say so, not only why
                detail = self.store.get(row.id).last_error or detail
        self._emit(StateChanged(row.id, state, detail))
        if verdict.disposition is Disposition.DEFER:
            # The server could not be reached or refused for now: the account's
            # other messages wait for the same retry time instead of hammering it.
            if hold:
                self._hold(row, asked=asked)
            return False
        return verdict.disposition is Disposition.FAIL

    def _hold(self, row: MessageRow, *, asked: bool = False) -> None:
        """``row`` was put off by its account's server: the account's other
        messages wait for its next try (in this runner, and in the store for
        everyone to see), and the worker stops. ``asked``: the server said so
        (a 421); a message the person sends meanwhile waits too, where after a
        server that could not be reached it is tried (something may be fixed)."""
        with contextlib.suppress(OutboxError):
            until = self.store.get(row.id).due_at
            with self._lock:
                self._backoff[row.account] = _Wait(until, _ASKED if asked else _PUT_OFF)
            self.store.hold_queued(row.account, until, now=self._clock())


def _closing(error: SmtpError | None) -> bool:
    """``error`` is the server's 421: it closed the connection, asking for a wait."""
    reply = getattr(error, "reply", None)
    return reply is not None and reply.code == 421


def _closed_after_others(result: MessageResult, carried: int, kind: str) -> bool:
    """``result`` is a 421 on a relay connection that had carried other messages
    (``carried`` counts this one), and no recipient of it was taken."""
    return (
        kind != "direct"
        and carried > 1
        and _closing(result.error)
        and not result.uncertain
        and not any(r.status is RecipientStatus.ACCEPTED for r in result.recipients)
    )


def _internal_error(exc: Exception, ended: bool) -> SmtpError:
    """What a person reads when sending failed in Mailer itself (a bug)."""
    what = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    if ended:
        return SmtpError(
            f"Mailer failed while finishing this message ({what}), after all of it had "
            "gone out: the server may have taken it. Send it again or mark it as sent."
        )
    return SmtpError(
        f"Mailer failed while sending this message ({what}); nothing of it was "
        "confirmed. It will try again later."
    )


def _login_wanted(result: MessageResult) -> Reply | None:
    """The server's 530 when its refusal of MAIL or DATA ended the transaction:
    it wants a login, or STARTTLS, first (RFC 4954 §6, RFC 3207 §4). A 530 to
    one RCPT (relaying to that recipient needs a login) is that recipient's."""
    if result.refused_at is None or not result.recipients:
        return None
    replies = [r.reply for r in result.recipients]
    if all(reply is not None and reply.code == 530 for reply in replies):
        return replies[0]
    return None


def _fix_for_login(account: SendingAccount, session: Session | None, reply: Reply) -> str:
    """What an account refused with 530 needs: its password, when the session
    could have logged in with one and did not; otherwise the person's attention
    (the account sends without a login, the server wants STARTTLS first, it
    offered no way to log in, or the login it took was not enough)."""
    if getattr(account, "auth", None) is AuthMethod.NONE or session is None:
        return NEEDS_ATTENTION
    if session.authenticated or not session.auth_offered:
        return NEEDS_ATTENTION
    if not session.tls_active and any(word in reply.text.lower() for word in TLS_FIRST_WORDS):
        return NEEDS_ATTENTION
    return NEEDS_PASSWORD


def _envelope(row: MessageRow) -> Envelope:
    return Envelope(
        row.envelope_from,
        row.pending,
        smtputf8=row.smtputf8,
        eight_bit=row.eight_bit,
        dsn_notify=row.dsn_notify,
    )


def _places(row: MessageRow, ending: Sequence[str]) -> list[int] | None:
    """The places in ``row``'s recipients of those a "." goes to (``ending``),
    when they are not all it still has to go to: after a crash only they are
    in doubt. None when they are all (a message in one transaction) or unknown."""
    if not ending or len(ending) >= len(row.pending):
        return None
    going = set(ending)
    return [place for place, r in enumerate(row.recipients) if r.address in going]


def deliver_direct_row(
    account: SendingAccount,
    row: MessageRow,
    body: BinaryIO,
    transcript: Transcript,
    before_end: Callable[[], None],
    on_session: SessionHook,
    silence: DnsSilence,
    after_end: Callable[[tuple[RecipientResult, ...]], None] | None = None,
) -> MessageResult:
    """Direct delivery of an outbox message (``body``, the runner's reading of its
    file, at its start) to its recipients' MX hosts."""
    from mailer_gui.outbox.routes import NAMESERVER_VARIABLE, deliver_direct, make_resolver

    try:
        resolver = make_resolver()
    except ValueError as exc:  # MAILER_GUI_NAMESERVER is not an address
        raise SmtpError(
            f"Mailer cannot look up the recipients' mail servers: {exc}. Fix or unset "
            f"{NAMESERVER_VARIABLE}; the message waits in the outbox meanwhile."
        ) from None
    return deliver_direct(
        _envelope(row),
        body,
        row.size,
        resolver=resolver,
        port=getattr(account, "effective_port", 25),
        transcript=transcript,
        before_end=before_end,
        on_session=on_session,
        silence=silence,
        after_end=after_end,
    )
