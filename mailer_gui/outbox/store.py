"""The outbox: what must not be lost. SQLite (WAL) plus a spool of frozen .eml files.

A message's bytes reach the spool (temporary file, fsync, rename, fsync of the
folder) before the row that points to them commits, so a crash can leave at
most an orphan file, never a row without its message. Every change is one
transaction (`BEGIN IMMEDIATE`, or a single statement), so the GUI and a CLI
runner on the same store serialise: a claim is a lease taken in one
transaction, and two runners never send one message twice. Commits are
durable against the process being killed at any moment (WAL with
``synchronous=NORMAL``: no fsync per commit; a power cut may lose the last
few commits, never corrupt the database). The log is copied into the database
file on a thread of the store's own (`_Checkpointer`), not by whichever
connection happens to commit.

States (DESIGN.md): scheduled (undo window or send later) -> queued ->
sending -> sent | deferred (due again later) | failed | cancelled |
uncertain (the final "." went out and no reply was recorded: the person
decides). Recipients already accepted are never sent again.
"""

from __future__ import annotations

import atexit
import contextlib
import enum
import os
import shutil
import sqlite3
import threading
import time
import uuid
import weakref
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from mailer_gui.message.addresses import shown_address
from mailer_gui.message.build import BuiltMessage
from mailer_gui.outbox.marks import dead_runners, read_marks_detail, remove_idle
from mailer_gui.outbox.policy import (
    NEEDS_ATTENTION,
    Disposition,
    RetryPolicy,
    Verdict,
    human_duration,
)
from mailer_gui.paths import ensure_private_dir, fsync_directory
from mailer_gui.smtp.protocol import plan_data
from mailer_gui.smtp.replies import without_retry_note
from mailer_gui.smtp.session import (
    CHUNK_SIZE,
    MessageResult,
    RecipientResult,
    RecipientStatus,
    too_big_reason,
)

# The outcome of the attempt after which Mailer gave up on a message that
# was put off again (a 4xx, a server that could not be reached).
GIVEN_UP = "given-up"
# A recipient whose transaction's "." went out with no reply: the message
# may have reached them. Never sent again by itself (resolve_uncertain).
UNKNOWN = "unknown"


class State(enum.StrEnum):
    SCHEDULED = "scheduled"
    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    DEFERRED = "deferred"
    FAILED = "failed"
    CANCELLED = "cancelled"
    UNCERTAIN = "uncertain"


_STATES = {state.value: state for state in State}  # faster than State(value), per claimed row

# May be claimed once due.
WAITING = (State.SCHEDULED, State.QUEUED, State.DEFERRED)
FINISHED = (State.SENT, State.FAILED, State.CANCELLED)


# How far past the highest message number still readable a damaged outbox is
# searched for messages (`OutboxStore.messages` on a damaged file).
SALVAGE_REACH = 1000


class OutboxError(Exception):
    """The outbox cannot do what was asked; the message says why and names the file."""


class OutboxFull(OutboxError):
    """The disk that holds the outbox is full (or nearly): nothing could be written."""


class _NotAllHeld(Exception):
    """A message being recorded is no longer held as it was claimed (see `_record_claimed`)."""


class NotFound(OutboxError):
    pass


class WrongState(OutboxError):
    pass


class RecipientRow(NamedTuple):
    address: str
    kind: str  # to | cc | bcc
    status: str  # pending | accepted | deferred | rejected
    code: int | None
    enhanced: str | None
    text: str | None


@dataclass(frozen=True)
class AttemptRow:
    id: int
    started_at: float
    ended_at: float | None
    outcome: str | None
    error: str | None
    transcript: str


class MessageRow(NamedTuple):
    """One message as stored. A named tuple, like the protocol's records:
    immutable, and made for every message the runner claims, where a frozen
    dataclass of twenty fields costs several times as much to create."""

    id: int
    account: str
    state: State
    created_at: float
    due_at: float
    attempts: int
    last_error: str | None
    message_id: str
    subject: str
    size: int
    # The message file's path as a string: the runner opens it for every
    # message it sends, and a Path costs more to make and to turn back into
    # a string than the rest of the row. `spool_path` gives the Path.
    spool_file_path: str
    envelope_from: str
    smtputf8: bool
    eight_bit: bool
    dsn_notify: tuple[str, ...]
    recipients: tuple[RecipientRow, ...]
    first_attempt_at: float | None
    data_end_at: float | None
    updated_at: float
    attempt: int | None = None  # the attempts row of the current (or last) attempt
    # How the message file goes out in DATA, worked out when it was queued
    # (see `wire_plan`); None for a large message, or one queued before.
    wire_plan: str | None = None
    # The attempts made before the person last asked a failed message to be
    # tried again: the retry schedule counts only those after them.
    schedule_from: int = 0

    @property
    def scheduled_attempts(self) -> int:
        """The attempts the retry schedule counts (`attempts` counts them all)."""
        return self.attempts - self.schedule_from

    @property
    def spool_path(self) -> Path:
        """The message file (an .eml) in the outbox's spool folder."""
        return Path(self.spool_file_path)

    @property
    def pending(self) -> tuple[str, ...]:
        """Recipients still to be delivered (never those already accepted)."""
        return tuple(r.address for r in self.recipients if r.status in ("pending", "deferred"))

    def in_doubt(self, recipient: RecipientRow) -> bool:
        """Whether ``recipient`` may have the message though no server said so:
        unknown (its "." went out unanswered). In a message an older Mailer
        made uncertain, none is kept as unknown: every one still to go is."""
        if recipient.status == UNKNOWN:
            return True
        return (
            self.state is State.UNCERTAIN
            and recipient.status in ("pending", "deferred")
            and not any(r.status == UNKNOWN for r in self.recipients)
        )


_SCHEMA: tuple[str, ...] = (
    # version 1
    """
    CREATE TABLE messages (
        id INTEGER PRIMARY KEY,
        account TEXT NOT NULL,
        state TEXT NOT NULL,
        created_at REAL NOT NULL,
        due_at REAL NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        last_error TEXT,
        message_id TEXT NOT NULL,
        subject TEXT NOT NULL DEFAULT '',
        size INTEGER NOT NULL,
        spool_file TEXT NOT NULL,
        envelope_from TEXT NOT NULL,
        smtputf8 INTEGER NOT NULL DEFAULT 0,
        eight_bit INTEGER NOT NULL DEFAULT 0,
        dsn_notify TEXT NOT NULL DEFAULT '',
        lease_owner TEXT,
        lease_until REAL,
        current_attempt INTEGER,
        first_attempt_at REAL,
        data_end_at REAL,
        updated_at REAL NOT NULL
    );
    CREATE INDEX messages_due ON messages (state, due_at);
    CREATE INDEX messages_account ON messages (account, state);
    CREATE TABLE recipients (
        message INTEGER NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
        position INTEGER NOT NULL,
        address TEXT NOT NULL,
        kind TEXT NOT NULL DEFAULT 'to',
        status TEXT NOT NULL DEFAULT 'pending',
        code INTEGER,
        enhanced TEXT,
        text TEXT,
        PRIMARY KEY (message, position)
    );
    CREATE TABLE attempts (
        id INTEGER PRIMARY KEY,
        message INTEGER NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
        started_at REAL NOT NULL,
        ended_at REAL,
        outcome TEXT,
        error TEXT,
        transcript TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX attempts_message ON attempts (message);
    CREATE TABLE accounts (
        account TEXT PRIMARY KEY,
        paused TEXT,
        reason TEXT,
        since REAL
    );
    """,
    # version 2: claims read only the waiting messages, in due order
    """
    CREATE INDEX messages_waiting ON messages (account, due_at, id)
        WHERE state IN ('scheduled','queued','deferred');
    """,
    # version 3: messages_waiting serves every query by account; an index no
    # query uses only costs time at each claim and each recorded result
    """
    DROP INDEX IF EXISTS messages_account;
    """,
    # version 4: end-of-data marks may also be lines in files beside the
    # database (marks.py). Nothing changes in the tables; the version keeps a
    # Mailer that does not read those files from recovering this outbox (it
    # would queue again a message whose "." had left).
    """
    -- no table changes
    """,
    # version 5: a small message's DATA encoding is worked out once, when it
    # is queued, instead of at every attempt (wire_plan)
    """
    ALTER TABLE messages ADD COLUMN wire_plan TEXT;
    """,
    # version 6: Retry on a failed message starts the retry schedule again
    # without forgetting the attempts already made (attempts counts them all)
    """
    ALTER TABLE messages ADD COLUMN schedule_from INTEGER NOT NULL DEFAULT 0;
    """,
)

# Free bytes under which a failing write is put down to a full disk: SQLite
# says "disk I/O error" when it cannot grow its shared-memory or log file.
NEARLY_FULL = 1024 * 1024

# In the order of MessageRow's fields. The column spool_file is a name in the
# spool folder; the field spool_file_path is that file's whole path.
_MESSAGE_COLUMNS = (
    "id, account, state, created_at, due_at, attempts, last_error, message_id, subject, "
    "size, spool_file, envelope_from, smtputf8, eight_bit, dsn_notify, first_attempt_at, "
    "data_end_at, updated_at, current_attempt, wire_plan, schedule_from"
)


def wire_plan(data: bytes) -> str | None:
    """How ``data``, a whole message file, goes out in DATA: stored with the message.

    The file's CRC-32, then where a line starts with "." (`protocol.plan_data`).
    None when the message needs more than those dots doubled, or is larger
    than the session's first read (it is encoded as it streams).
    """
    if len(data) >= CHUNK_SIZE:
        return None
    dots = plan_data(data)
    if dots is None:
        return None
    return " ".join([f"{zlib.crc32(data):08x}", *map(str, dots)])


def planned_dots(row: MessageRow, data: bytes) -> tuple[int, ...] | None:
    """``row``'s plan for ``data``, the whole of its file as just read; None when
    it has none, or when the file is no longer what was planned (its CRC-32
    differs): such a file is encoded in full, whatever it now holds."""
    plan = row.wire_plan
    if plan is None:
        return None
    crc, *dots = plan.split(" ")
    if int(crc, 16) != zlib.crc32(data):
        return None
    return tuple(map(int, dots))


# The message, then RecipientRow's fields in order.
_RECIPIENT_COLUMNS = "message, address, kind, status, code, enhanced, text"


@contextlib.contextmanager
def existing_outbox(database: Path, spool_dir: Path) -> Iterator[OutboxStore | None]:
    """The outbox, if one was ever made, for a short job; None when there is none
    or it cannot be opened (the window reports a damaged outbox, where it belongs).

    For what only reads or tidies an outbox (settings, adding an account): it
    never creates one. Closed again afterwards.
    """
    if not database.exists():
        yield None
        return
    try:
        store = OutboxStore(database, spool_dir)
    except OutboxError:
        yield None
        return
    try:
        yield store
    finally:
        store.close()


class _Checkpointer:
    """Copies the outbox's write-ahead log into the database file, on a thread of its own.

    SQLite does this by itself in whichever connection commits once the log
    holds 1,000 pages, and that connection waits for two fsyncs: at full speed
    the sending thread, a few milliseconds about every forty batches. Here a
    commit that changed something wakes this thread instead, which copies at
    most every `INTERVAL` seconds. A PASSIVE checkpoint waits for no reader or
    writer, and SQLite lets go of the GIL while it runs.

    SQLite starts the log over only at a write that finds all of it copied,
    and a commit may land while this thread copies: under commits that never
    pause, the log would grow without end. So the store's connections keep
    SQLite's own checkpoint for a log of `BACKSTOP` pages (``wal_autocheckpoint``),
    which the committing connection runs with the store's write lock held, as
    SQLite did at 1,000: the next write then starts the log over.

    The thread ends after `IDLE` seconds without a change, so an outbox nobody
    writes to holds no thread, and when the store is closed (the next change
    starts it again; one made while it ended is copied then, or by SQLite when
    the last connection closes). SQLite copies the log and removes it when
    the last connection to the database closes: at the end of the process the
    thread is ended for good first (`_stop_all`), so that its connection is
    not the one left open.
    """

    INTERVAL = 0.5
    IDLE = 10.0
    BACKSTOP = 4000  # pages: 16 MB of log

    def __init__(self, database: Path) -> None:
        # A URI that never creates the file: a checkpoint after the outbox
        # was deleted (a test's folder) must not leave an empty database.
        self._uri = Path(database).absolute().as_uri() + "?mode=rw"
        self._changed = threading.Condition(threading.Lock())
        self._dirty = False  # changed since the thread last began to copy
        self._stopping = False
        self._final = False  # the process is ending: no new thread
        self._thread: threading.Thread | None = None

    def committed(self) -> None:
        """A commit changed the database: copy the log soon.

        Never raises: the commit stands whatever happens here.
        """
        with self._changed:
            self._dirty = True
            if self._thread is not None:
                self._changed.notify()
            elif not (self._stopping or self._final):
                thread = threading.Thread(target=self._run, name="outbox-checkpoint", daemon=True)
                try:
                    thread.start()
                except RuntimeError:
                    return  # no new threads now: the backstop and the last close copy the log
                self._thread = thread
                _RUNNING.add(self)

    def stop(self, *, final: bool = False) -> None:
        """End the thread, after the copy it is doing. ``final``: for good (the
        process is ending); otherwise the next change starts a new one."""
        with self._changed:
            self._stopping = True
            self._final = self._final or final
            thread = self._thread
            self._changed.notify_all()
        if thread is not None and thread is not threading.current_thread():
            thread.join()
        with self._changed:
            self._stopping = False

    def _run(self) -> None:
        connection: sqlite3.Connection | None = None
        changed = self._changed
        try:
            while True:
                with changed:
                    # The thread ends under the lock its wait ended with: a
                    # change that finds it still here is seen, or starts another.
                    if (
                        not changed.wait_for(lambda: self._dirty or self._stopping, self.IDLE)
                        or self._stopping
                    ):
                        self._end(connection)
                        return
                    self._dirty = False
                try:
                    if connection is None:
                        connection = sqlite3.connect(self._uri, uri=True, isolation_level=None)
                    connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except sqlite3.Error:
                    pass  # tried again at the next change; the store reports what is wrong
                with changed:
                    if changed.wait_for(lambda: self._stopping, self.INTERVAL):
                        self._end(connection)
                        return
        except BaseException:
            with changed:
                self._end(connection)
            raise

    def _end(self, connection: sqlite3.Connection | None) -> None:
        """The thread ends (the lock held): its connection is closed before
        stop() and the next change see it gone."""
        if connection is not None:
            connection.close()
        self._thread = None


_RUNNING: weakref.WeakSet[_Checkpointer] = weakref.WeakSet()


@atexit.register
def _stop_all() -> None:
    """At the end of the process, end the checkpoint threads (and close their
    connections) for good: a change made after this starts none."""
    for checkpointer in list(_RUNNING):
        checkpointer.stop(final=True)


#: A half-built message file (msg-*.eml) not written to for this long was left
#: by a Mailer that was killed while building it (see remove_stale_builds).
STALE_BUILD_SECONDS = 3600.0


class OutboxStore:
    """The outbox database and spool. Safe to use from several threads and processes."""

    def __init__(self, database: Path, spool_dir: Path, *, policy: RetryPolicy | None = None):
        self.database = Path(database)
        self.spool_dir = Path(spool_dir)
        self._spool_prefix = os.path.join(self.spool_dir, "")  # for MessageRow.spool_file_path
        self.policy = policy or RetryPolicy()
        # Set when a listing found the file damaged (the error, naming the
        # file): what it gave is what could still be read.
        self.damaged: str | None = None
        self._local = threading.local()
        # Writers in this process take turns here before SQLite's own lock:
        # SQLite's busy handler sleeps a millisecond or more when it finds the
        # database locked, while this lock hands over as soon as it is free (a
        # runner's workers, one per account, its lease heartbeat and its
        # scheduler share one store). Other processes still meet SQLite's lock
        # and its 30-second busy timeout.
        self._write_lock = threading.RLock()
        self._checkpointer = _Checkpointer(self.database)
        # Each runner's end-of-data marks (marks.py), read by recover().
        self.marks_dir = self.database.with_name(self.database.name + ".marks")
        for folder in (self.database.parent, self.spool_dir):
            try:
                ensure_private_dir(folder)
            except OSError as exc:  # a file where the folder should be, no permission
                raise OutboxError(
                    f"The outbox folder {folder} cannot be made or used "
                    f"({exc.strerror or exc}). Nothing was changed."
                ) from exc
        self._migrate()

    # ------------------------------------------------------------ plumbing

    def _connection(self) -> sqlite3.Connection:
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is None:
            new = not self.database.exists()
            try:
                connection = sqlite3.connect(
                    self.database, timeout=30.0, isolation_level=None, check_same_thread=True
                )
                if new:
                    os.chmod(self.database, 0o600)
                connection.execute("PRAGMA journal_mode=WAL")
                # NORMAL in WAL mode: a committed change survives the process
                # being killed at any moment (only a power cut can lose the
                # last few, never corrupt); FULL would fsync every commit.
                connection.execute("PRAGMA synchronous=NORMAL")
                connection.execute("PRAGMA foreign_keys=ON")
                # Copied by the store's thread; SQLite only past a long log.
                connection.execute(f"PRAGMA wal_autocheckpoint={_Checkpointer.BACKSTOP}")
            except sqlite3.DatabaseError as exc:
                raise self._corrupt(exc) from exc
            self._local.connection = connection
        return connection

    def _corrupt(self, exc: sqlite3.DatabaseError) -> OutboxError:
        """The error a person reads for a database failure: what it is, not
        always "cannot be read" (a full disk or a read-only file are not damage)."""
        said = str(exc)
        if isinstance(exc, sqlite3.OperationalError) and "locked" in said:
            return OutboxError(
                f"The outbox {self.database} is busy: another Mailer has held it for more "
                "than 30 seconds. Try again; nothing was changed."
            )
        if isinstance(exc, sqlite3.OperationalError) and (
            "disk is full" in said or self._free_space() < NEARLY_FULL
        ):
            return OutboxFull(
                f"The disk that holds the outbox {self.database} is full, so Mailer could "
                "not write to it. Free some space and try again; no message was lost."
            )
        if isinstance(exc, sqlite3.OperationalError) and "readonly" in said:
            return OutboxError(
                f"The outbox {self.database} cannot be written ({said}), so nothing was "
                "changed in it. Make the file and its folder writable, then try again."
            )
        return OutboxError(
            f"The outbox database {self.database} cannot be read ({exc}). Nothing was "
            "deleted. Keep a copy of the file; the messages themselves are .eml files in "
            f"{self.spool_dir}."
        )

    def _free_space(self) -> int:
        """Free bytes on the database's disk (a lot when that cannot be told)."""
        try:
            return shutil.disk_usage(self.database.parent).free
        except OSError:
            return NEARLY_FULL

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on error)."""
        connection = self._connection()
        with self._write_lock:
            try:
                connection.execute("BEGIN IMMEDIATE")
            except sqlite3.DatabaseError as exc:
                raise self._corrupt(exc) from exc
            changes = connection.total_changes
            try:
                yield connection
                connection.execute("COMMIT")
            except BaseException as exc:
                if connection.in_transaction:  # a failed COMMIT (a full disk) as well
                    with contextlib.suppress(sqlite3.Error):
                        connection.execute("ROLLBACK")
                if isinstance(exc, sqlite3.DatabaseError):
                    raise self._corrupt(exc) from exc
                raise
            if connection.total_changes != changes:  # not a look that changed nothing
                self._checkpointer.committed()

    @contextlib.contextmanager
    def _snapshot(self) -> Iterator[None]:
        """The reads inside see the outbox as it was at one moment.

        Each statement alone is its own read; a message's row, its recipients
        and its attempts read one after the other could otherwise straddle a
        runner's write (the row "sent", its last attempt not yet ended). In
        WAL mode the read transaction holds up no writer.
        """
        connection = self._connection()
        if connection.in_transaction:  # inside a snapshot already
            yield
            return
        try:
            connection.execute("BEGIN")
        except sqlite3.DatabaseError as exc:
            raise self._corrupt(exc) from exc
        try:
            yield
        finally:
            with contextlib.suppress(sqlite3.Error):
                connection.execute("COMMIT")  # it only read: nothing to keep or lose

    def _read(self, sql: str, params: Iterable[object] = ()) -> list[sqlite3.Row]:
        connection = self._connection()
        connection.row_factory = sqlite3.Row
        try:
            return connection.execute(sql, tuple(params)).fetchall()
        except sqlite3.DatabaseError as exc:
            raise self._corrupt(exc) from exc

    def _migrate(self) -> None:
        # Read first: an outbox already at this schema needs no write, so
        # opening it never waits for another Mailer's write (in WAL mode a
        # reader does not wait for a writer). A migration does wait; the
        # window opens the outbox on a worker thread.
        try:
            version = self._connection().execute("PRAGMA user_version").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            raise self._corrupt(exc) from exc
        self._check_version(version)
        if version == len(_SCHEMA):
            return
        try:
            with self._write() as db:
                version = db.execute("PRAGMA user_version").fetchone()[0]
                self._check_version(version)
                for number, script in enumerate(_SCHEMA[version:], start=version + 1):
                    for statement in script.split(";"):
                        if statement.strip():
                            db.execute(statement)
                    db.execute(f"PRAGMA user_version = {number}")
        except sqlite3.DatabaseError as exc:  # a full disk, a file that cannot be written
            raise self._corrupt(exc) from exc

    def _check_version(self, version: int) -> None:
        if version > len(_SCHEMA):
            raise OutboxError(
                f"The outbox {self.database} was written by a newer Mailer "
                f"(schema {version}); update Mailer to use it."
            )

    def close(self) -> None:
        """Close this thread's connection, and end the checkpoint thread (the
        next commit starts it again)."""
        self._checkpointer.stop()
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
            self._local.connection = None

    # ------------------------------------------------------------- reading

    def _message(self, row: Sequence[Any], recipients: Iterable[Sequence[Any]]) -> MessageRow:
        """A row of _MESSAGE_COLUMNS and its rows of _RECIPIENT_COLUMNS, as a MessageRow."""
        (
            id_, account, state, created_at, due_at, attempts, last_error, message_id, subject,
            size, spool_file, envelope_from, smtputf8, eight_bit, dsn_notify, first_attempt_at,
            data_end_at, updated_at, attempt, plan, schedule_from,
        ) = row  # fmt: skip
        return MessageRow(
            id_, account, _STATES[state], created_at, due_at, attempts, last_error, message_id,
            subject, size, self._spool_prefix + spool_file, envelope_from, bool(smtputf8),
            bool(eight_bit), tuple(filter(None, dsn_notify.split(","))),
            tuple([RecipientRow(r[1], r[2], r[3], r[4], r[5], r[6]) for r in recipients]),
            first_attempt_at, data_end_at, updated_at, attempt, plan, schedule_from,
        )  # fmt: skip

    def get(self, message: int) -> MessageRow:
        with self._snapshot():
            rows = self._read(f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE id = ?", (message,))
            if not rows:
                raise NotFound(f"There is no message {message} in the outbox.")
            try:
                recipients = self._read(
                    f"SELECT {_RECIPIENT_COLUMNS} FROM recipients WHERE message = ? "
                    "ORDER BY position",
                    (message,),
                )
            except OutboxError as exc:
                # A damaged file: perhaps only the index is (see _list_salvage).
                try:
                    recipients = self._read(
                        f"SELECT {_RECIPIENT_COLUMNS} FROM recipients NOT INDEXED "
                        "WHERE message = ? ORDER BY position",
                        (message,),
                    )
                except OutboxError:
                    raise exc from None
                self.damaged = str(exc)
        return self._message(rows[0], recipients)

    def details(self, message: int) -> tuple[MessageRow, list[AttemptRow]]:
        """A message and its attempts as they were at one moment (what a view shows)."""
        with self._snapshot():
            return self.get(message), self.attempts(message)

    def messages(
        self, states: Iterable[State] | None = None, *, limit: int | None = None
    ) -> list[MessageRow]:
        """Messages, newest first. A damaged database yields what can still be read."""
        where, params = "", []
        if states is not None:
            wanted = [State(s).value for s in states]
            where = f"WHERE state IN ({','.join('?' * len(wanted))})"
            params = list(wanted)
        sql = f"SELECT {_MESSAGE_COLUMNS} FROM messages {where} ORDER BY id DESC"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        try:
            with self._snapshot():
                rows = self._read(sql, params)
                recipients = self._read(
                    f"SELECT {_RECIPIENT_COLUMNS} FROM recipients ORDER BY message, position"
                )
        except OutboxError as exc:
            self.damaged = str(exc)
            return self._list_salvage(states)
        by_message: dict[int, list[sqlite3.Row]] = {}
        for r in recipients:
            by_message.setdefault(r["message"], []).append(r)
        return [self._message(row, by_message.get(row["id"], [])) for row in rows]

    def _list_salvage(self, states: Iterable[State] | None) -> list[MessageRow]:
        """Row by row, skipping what cannot be read, for a damaged file.

        The numbers to try come from whatever still reads (the messages, their
        recipients, their attempts), and every number up to the highest of
        those and a little past it: a damaged page can hold any number at all
        (6100498040124418730 was seen), which must not be counted down from.
        """
        wanted = {State(s) for s in states} if states is not None else None
        known: set[int] = set()
        for sql in (
            "SELECT id FROM messages",
            "SELECT DISTINCT message FROM recipients",
            "SELECT DISTINCT message FROM attempts",
        ):
            with contextlib.suppress(OutboxError):
                known.update(row[0] for row in self._read(sql) if isinstance(row[0], int))
        try:
            top = self._read("SELECT max(id) FROM messages")[0][0] or 0
        except OutboxError:
            top = 0
        reach = max(known, default=0) + SALVAGE_REACH
        top = min(top, reach) if isinstance(top, int) else reach
        candidates = known | set(range(1, top + 1))
        scanned: dict[int, list[sqlite3.Row]] | None = None
        found: list[MessageRow] = []
        for message in sorted((m for m in candidates if 0 < m <= reach), reverse=True):
            try:
                row = self.get(message)
            except NotFound:
                continue
            except OutboxError:
                # Its recipients are looked up through an index: that page may
                # be the damaged one. The table itself, read whole, may not be.
                if scanned is None:
                    scanned = self._scan_recipients()
                try:
                    (kept,) = self._read(
                        f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE id = ?", (message,)
                    )
                except (OutboxError, ValueError):
                    continue
                row = self._message(kept, scanned.get(message, []))
            if wanted is None or row.state in wanted:
                found.append(row)
        return found

    def _scan_recipients(self) -> dict[int, list[sqlite3.Row]]:
        """Every recipient that still reads, by message, read without an index."""
        by_message: dict[int, list[sqlite3.Row]] = {}
        with contextlib.suppress(OutboxError):
            sql = f"SELECT {_RECIPIENT_COLUMNS} FROM recipients NOT INDEXED"
            for r in self._read(sql + " ORDER BY message, position"):
                by_message.setdefault(r[0], []).append(r)
        return by_message

    def attempts(self, message: int) -> list[AttemptRow]:
        return [
            AttemptRow(
                r["id"], r["started_at"], r["ended_at"], r["outcome"], r["error"], r["transcript"]
            )
            for r in self._read("SELECT * FROM attempts WHERE message = ? ORDER BY id", (message,))
        ]

    def states(self, messages: Iterable[int]) -> dict[int, State]:
        """The state of each of ``messages`` still in the outbox, by number."""
        ids = list(messages)
        found: dict[int, State] = {}
        for start in range(0, len(ids), 500):  # SQLite limits the parameters of one query
            part = ids[start : start + 500]
            marks = ",".join("?" * len(part))
            for row in self._read(f"SELECT id, state FROM messages WHERE id IN ({marks})", part):
                found[row[0]] = State(row[1])
        return found

    def change_mark(self) -> tuple[object, ...]:
        """Something that differs whenever a message was added, removed or
        changed, or an account paused or resumed, by any Mailer: a window
        compares it now and then to show what a command line did."""
        with self._snapshot():
            messages = self._read("SELECT count(*), max(id), max(updated_at) FROM messages")
            paused = self._read("SELECT count(*), group_concat(account) FROM accounts")
        return (*messages[0], *paused[0])

    def counts(self) -> dict[State, int]:
        rows = self._read("SELECT state, count(*) FROM messages GROUP BY state")
        return {State(r[0]): r[1] for r in rows}

    def paused_accounts(self) -> dict[str, tuple[str, str]]:
        """Account -> (short state, reason) for accounts that must not be tried."""
        rows = self._read("SELECT account, paused, reason FROM accounts WHERE paused IS NOT NULL")
        return {r["account"]: (r["paused"], r["reason"] or "") for r in rows}

    def next_due(self, *, exclude_accounts: Iterable[str] = ()) -> float | None:
        """The earliest due time of a waiting message on an account that is not paused."""
        excluded = list(exclude_accounts)
        sql = (
            "SELECT min(due_at) FROM messages WHERE state IN ('scheduled','queued','deferred') "
            "AND account NOT IN (SELECT account FROM accounts WHERE paused IS NOT NULL)"
        )
        if excluded:
            sql += f" AND account NOT IN ({','.join('?' * len(excluded))})"
        value = self._read(sql, excluded)[0][0]
        return float(value) if value is not None else None

    def due_accounts(self, now: float) -> list[str]:
        rows = self._read(
            "SELECT DISTINCT account FROM messages "
            "WHERE state IN ('scheduled','queued','deferred') AND due_at <= ? AND account NOT IN "
            "(SELECT account FROM accounts WHERE paused IS NOT NULL) ORDER BY account",
            (now,),
        )
        return [r[0] for r in rows]

    # ------------------------------------------------------------- writing

    def enqueue(
        self,
        built: BuiltMessage,
        *,
        account: str,
        subject: str = "",
        due_at: float | None = None,
        kinds: Mapping[str, str] | None = None,
        now: float | None = None,
    ) -> int:
        """Freeze a built message into the spool and queue it.

        ``due_at`` in the future makes it ``scheduled`` (undo window, send
        later). The spool file is renamed into place and the folder fsynced
        before the row commits.
        """
        now = time.time() if now is None else now
        due = now if due_at is None else due_at
        name = f"{uuid.uuid4().hex}.eml"
        target = self.spool_dir / name
        plan = None
        if built.size < CHUNK_SIZE:
            with open(built.path, "rb") as file:
                plan = wire_plan(file.read(CHUNK_SIZE))
        os.replace(built.path, target)
        fsync_directory(self.spool_dir)
        state = State.SCHEDULED if due > now else State.QUEUED
        kinds = kinds or {}
        try:
            with self._write() as db:
                cursor = db.execute(
                    "INSERT INTO messages (account, state, created_at, due_at, message_id, "
                    "subject, size, spool_file, envelope_from, smtputf8, eight_bit, dsn_notify, "
                    "updated_at, wire_plan) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    (
                        account, state.value, now, due, built.message_id, subject, built.size,
                        name, built.envelope_from, int(built.smtputf8), int(built.eight_bit),
                        ",".join(built.dsn_notify), now, plan,
                    ),
                )  # fmt: skip
                message = cursor.lastrowid
                assert message is not None
                db.executemany(
                    "INSERT INTO recipients (message, position, address, kind) VALUES (?,?,?,?)",
                    [
                        (message, i, address, kinds.get(address, "to"))
                        for i, address in enumerate(built.recipients)
                    ],
                )
        except BaseException:
            # The row did not commit: put the file back where the caller had it.
            with contextlib.suppress(OSError):
                os.replace(target, built.path)
            raise
        return message

    def claim_next(
        self,
        owner: str,
        *,
        now: float,
        lease: float,
        account: str | None = None,
        message: int | None = None,
    ) -> MessageRow | None:
        """Lease the next due message (of ``account``, or that ``message``) for sending."""
        rows = self.claim(owner, now=now, lease=lease, account=account, message=message, limit=1)
        return rows[0] if rows else None

    def claim(
        self,
        owner: str,
        *,
        now: float,
        lease: float,
        account: str | None = None,
        message: int | None = None,
        limit: int = 1,
    ) -> list[MessageRow]:
        """Lease up to ``limit`` due messages, oldest due first, in one transaction.

        A runner that claims several at once sends them over one connection;
        what it does not get to, it gives back with `release()`.
        """
        with self._write() as db:
            return self._claim(db, owner, now, lease, account, message, limit)

    def _claim(
        self, db: sqlite3.Connection, owner: str, now: float, lease: float,
        account: str | None, message: int | None, limit: int,
    ) -> list[MessageRow]:  # fmt: skip
        db.row_factory = sqlite3.Row
        # The conditions match the partial index messages_waiting.
        sql = (
            "SELECT id FROM messages WHERE state IN ('scheduled','queued','deferred') "
            "AND due_at <= ? AND account NOT IN "
            "(SELECT account FROM accounts WHERE paused IS NOT NULL)"
        )
        params: list[object] = [now]
        if account is not None:
            sql += " AND account = ?"
            params.append(account)
        if message is not None:
            sql += " AND id = ?"
            params.append(message)
        params.append(int(limit))
        ids = [int(r["id"]) for r in db.execute(sql + " ORDER BY due_at, id LIMIT ?", params)]
        if not ids:
            return []
        marks = ",".join("?" * len(ids))
        db.executemany(
            "INSERT INTO attempts (message, started_at) VALUES (?, ?)",
            [(claimed, now) for claimed in ids],
        )
        # A new row's id is above every id in the table, so each message's
        # newest attempt is the one just added.
        db.execute(
            "UPDATE messages SET state = 'sending', lease_owner = ?, lease_until = ?, "
            "attempts = attempts + 1, current_attempt = "
            "(SELECT max(a.id) FROM attempts a WHERE a.message = messages.id), "
            "data_end_at = NULL, first_attempt_at = coalesce(first_attempt_at, ?), "
            f"updated_at = ? WHERE id IN ({marks})",
            (owner, now + lease, now, now, *ids),
        )
        found = self._rows(db, ids)
        return [found[i] for i in ids]

    def _rows(
        self, db: sqlite3.Connection, ids: Sequence[int], held_by: str | None = None
    ) -> dict[int, MessageRow]:
        """The messages ``ids`` by id (only those ``held_by`` is sending, if given)."""
        marks = ",".join("?" * len(ids))
        sql = f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE id IN ({marks})"
        params: list[object] = list(ids)
        if held_by is not None:
            sql += " AND state = 'sending' AND lease_owner = ?"
            params.append(held_by)
        rows = db.execute(sql, params).fetchall()
        if not rows:
            return {}
        found = [row[0] for row in rows]
        recipients = db.execute(
            f"SELECT {_RECIPIENT_COLUMNS} FROM recipients "
            f"WHERE message IN ({','.join('?' * len(found))}) ORDER BY message, position",
            found,
        ).fetchall()
        by_message: dict[int, list[sqlite3.Row]] = {}
        for r in recipients:
            by_message.setdefault(r[0], []).append(r)
        return {row[0]: self._message(row, by_message.get(row[0], [])) for row in rows}

    def renew_leases(self, owner: str, messages: Iterable[int], until: float) -> set[int]:
        """Extend ``owner``'s leases to ``until``; the messages it still held, now renewed."""
        ids = list(messages)
        if not ids:
            return set()
        held = f"lease_owner = ? AND state = 'sending' AND id IN ({','.join('?' * len(ids))})"
        try:
            with self._write() as db:
                # Read, then update, in one transaction (UPDATE ... RETURNING
                # needs SQLite 3.35, newer than some systems have).
                rows = db.execute(f"SELECT id FROM messages WHERE {held}", (owner, *ids))
                kept = {row[0] for row in rows}
                db.execute(
                    f"UPDATE messages SET lease_until = ? WHERE {held}", (until, owner, *ids)
                )
        except sqlite3.DatabaseError as exc:
            raise self._corrupt(exc) from exc
        return kept

    def mark_data_end(self, message: int, owner: str, *, now: float | None = None) -> bool:
        """The final "." is about to leave: from here a crash means "uncertain".

        False when this runner no longer holds the message (its lease ran out
        and another runner took it): the caller must not send the ".".
        """
        now = time.time() if now is None else now
        connection = self._connection()
        with self._write_lock:
            try:
                # One statement, so its own transaction: committed (in the WAL)
                # when execute() returns, with no BEGIN and COMMIT round trips.
                marked = self._mark(connection, message, owner, now)
            except sqlite3.DatabaseError as exc:
                raise self._corrupt(exc) from exc
        if marked:
            self._checkpointer.committed()
        return marked

    def _mark(self, db: sqlite3.Connection, message: int, owner: str, now: float) -> bool:
        cursor = db.execute(
            "UPDATE messages SET data_end_at = ? WHERE id = ? AND lease_owner = ? "
            "AND state = 'sending'",
            (now, message, owner),
        )
        return cursor.rowcount == 1

    def _finish_attempt(
        self, db: sqlite3.Connection, message: int, outcome: str, error: str | None,
        transcript: str, now: float,
    ) -> None:  # fmt: skip
        db.execute(
            "UPDATE attempts SET ended_at = ?, outcome = ?, error = ?, transcript = ? "
            "WHERE id = (SELECT current_attempt FROM messages WHERE id = ?)",
            (now, outcome, error, transcript, message),
        )

    def _owned(self, db: sqlite3.Connection, message: int, owner: str) -> sqlite3.Row:
        db.row_factory = sqlite3.Row
        row = db.execute(
            "SELECT * FROM messages WHERE id = ? AND state = 'sending' AND lease_owner = ?",
            (message, owner),
        ).fetchone()
        if row is None:
            raise WrongState(f"Message {message} is not being sent by this runner any more.")
        found: sqlite3.Row = row
        return found

    def _settle(
        self, db: sqlite3.Connection, row: sqlite3.Row, last_error: str | None, now: float
    ) -> State:
        """The message's state from its recipients, after an attempt."""
        statuses = [
            r[0]
            for r in db.execute("SELECT status FROM recipients WHERE message = ?", (row["id"],))
        ]
        state, due, last_error = self._next_state(
            statuses,
            row["due_at"],
            row["attempts"] - row["schedule_from"],
            row["first_attempt_at"],
            last_error,
            now,
            earlier=row["schedule_from"],
        )
        db.execute(
            "UPDATE messages SET state = ?, due_at = ?, last_error = ?, lease_owner = NULL, "
            "lease_until = NULL, updated_at = ? WHERE id = ?",
            (state.value, due, last_error, now, row["id"]),
        )
        return state

    def _next_state(
        self, statuses: list[str], due_at: float, attempts: int, first_attempt_at: float | None,
        last_error: str | None, now: float, *, earlier: int = 0,
    ) -> tuple[State, float, str | None]:  # fmt: skip
        """State, due time and last error of a message whose attempt ended.

        ``attempts``: those the retry schedule counts; ``earlier``: those made
        before the person last asked for a retry (`MessageRow.schedule_from`).
        """
        if not any(s in ("pending", "deferred") for s in statuses):
            return (State.SENT if "accepted" in statuses else State.FAILED), due_at, last_error
        when = self.policy.next_attempt(attempts, first_attempt_at or now, now)
        if when is None:
            age = now - (first_attempt_at or now)
            waited = human_duration(age)
            limit = human_duration(self.policy.give_up_after)
            tries = "1 attempt" if attempts == 1 else f"{attempts} attempts"
            if earlier:
                tries += f" since it was retried ({attempts + earlier} in all)"
            # Before the limit itself when the next try would come after it.
            why = (
                f"the retry schedule stops trying after {limit}"
                if age >= self.policy.give_up_after
                else f"its next try would have come after the {limit} the retry schedule allows"
            )
            return (
                State.FAILED,
                due_at,
                f"Mailer gave up after {tries} over {waited} ({why}). "
                f"The last problem: {without_retry_note(last_error or '') or 'unknown'}",
            )
        return State.DEFERRED, when, last_error

    def record_result(
        self, message: int, owner: str, result: MessageResult, transcript: str = "",
        *, now: float | None = None,
    ) -> State:  # fmt: skip
        """Store what the server said for each recipient and move the message on."""
        now = time.time() if now is None else now
        with self._write() as db:
            return self._record(db, message, owner, result, transcript, now)

    def record_and_claim(
        self, owner: str, results: Iterable[tuple[MessageRow, MessageResult, str]],
        *, now: float | None = None, lease: float = 0.0, account: str | None = None,
        message: int | None = None, limit: int = 0,
    ) -> tuple[list[State | None], list[MessageRow]]:  # fmt: skip
        """`record_result` for several messages (the row `claim` gave, result,
        transcript), then `claim` up to ``limit`` more, in one transaction.

        The states of the recorded messages come back in order; None for one this
        runner no longer holds (its lease ran out and another runner recovered it):
        that one is left as it is, the others are recorded.
        """
        now = time.time() if now is None else now
        results = list(results)
        try:
            with self._write() as db:
                states = self._record_claimed(db, owner, results, now) if results else []
                rows = self._claim(db, owner, now, lease, account, message, limit) if limit else []
        except _NotAllHeld:
            # Rolled back: some message was taken from this runner meanwhile.
            # Record what it still holds, reading each one's row again.
            by_id = [(row.id, result, transcript) for row, result, transcript in results]
            with self._write() as db:
                states = self._record_many(db, owner, by_id, now)
                rows = self._claim(db, owner, now, lease, account, message, limit) if limit else []
        return states, rows

    def _record(
        self, db: sqlite3.Connection, message: int, owner: str, result: MessageResult,
        transcript: str, now: float,
    ) -> State:  # fmt: skip
        state = self._record_many(db, owner, [(message, result, transcript)], now)[0]
        if state is None:
            raise WrongState(f"Message {message} is not being sent by this runner any more.")
        return state

    def _record_claimed(
        self, db: sqlite3.Connection, owner: str,
        results: list[tuple[MessageRow, MessageResult, str]], now: float,
    ) -> list[State | None]:  # fmt: skip
        """Record results with a handful of statements, however many there are,
        for messages still held as their rows say (the rows `claim` gave, not
        read again): what a message's next state depends on (its recipients'
        statuses, due time, attempts) is in its row, and nothing but the
        holder changes those while the lease is held.

        The messages' rows are written first, each only where this runner still
        holds it in the attempt its row names. If one is missing from what was
        written (its lease ran out, and recovery or another runner took it,
        this one perhaps claiming it again since), `_NotAllHeld` is raised: the
        caller rolls back and records with `_record_many`.
        """
        recipients: list[tuple[object, ...]] = []
        attempts: list[tuple[object, ...]] = []
        states: list[State | None] = []
        updates: list[tuple[object, ...]] = []
        # Messages whose due time stays (sent, failed, uncertain), by their new
        # state and error: at full speed a batch is one group, one statement.
        alike: dict[tuple[str, str | None], list[tuple[int, int]]] = {}
        for row, result, transcript in results:
            if row.attempt is None:
                raise _NotAllHeld  # not a row `claim` gave
            error = result.error_text or too_big_reason(result, row.size)
            # The recipients' statuses after this attempt, as the UPDATE of
            # recipients below leaves them: one already accepted stays so.
            statuses = [[r.address, r.status] for r in row.recipients]
            taken = True  # every recipient of this attempt accepted
            for r in result.recipients:
                # In an uncertain result, those whose "." had no reply are
                # unknown; one accepted or refused in a transaction that ended
                # before (452, another domain) keeps that answer.
                status = UNKNOWN if r.unconfirmed else r.status.value
                taken = taken and status == "accepted"
                recipients.append(
                    (
                        status,
                        r.reply.code if r.reply else None,
                        r.reply.enhanced if r.reply else None,
                        r.text,
                        row.id,
                        r.address,
                    )
                )
                for stored in statuses:
                    if stored[0] == r.address and stored[1] != "accepted":
                        stored[1] = status
            if error is None and not taken:
                # What the message waits for, if it waits: a recipient to be
                # tried again, before one refused for good.
                waiting = result.with_status(RecipientStatus.DEFERRED)
                first = next(iter(waiting or result.with_status(RecipientStatus.REJECTED)), None)
                if first is not None:
                    error = f"{shown_address(first.address)}: {first.text}"
            said = error  # what this attempt ended in, kept with it
            if result.uncertain:
                state, due = State.UNCERTAIN, row.due_at
            else:
                state, due, error = self._next_state(
                    [status for _, status in statuses], row.due_at, row.scheduled_attempts,
                    row.first_attempt_at, error, now, earlier=row.schedule_from,
                )  # fmt: skip
            outcome = result.outcome
            if state is State.FAILED and outcome == "deferred":
                outcome = GIVEN_UP  # put off again, and that was the last try
            attempts.append((now, outcome, said, transcript, row.attempt))
            states.append(state)
            if due == row.due_at:
                alike.setdefault((state.value, error), []).append((row.id, row.attempt))
            else:
                updates.append((state.value, due, error, now, row.id, row.attempt, owner))
        finished = "lease_owner = NULL, lease_until = NULL, updated_at = ?"
        held = "state = 'sending' AND lease_owner = ?"
        written = 0
        for (state_value, error), messages in alike.items():
            # Each message in the attempt its row names: an attempt belongs to
            # one message, so a message taken and claimed again is not matched.
            marks = ",".join("?" * len(messages))
            written += db.execute(
                f"UPDATE messages SET state = ?, last_error = ?, {finished} "
                f"WHERE id IN ({marks}) AND current_attempt IN ({marks}) AND {held}",
                (state_value, error, now, *(m for m, _ in messages),
                 *(a for _, a in messages), owner),
            ).rowcount  # fmt: skip
        if updates:
            written += db.executemany(
                f"UPDATE messages SET state = ?, due_at = ?, last_error = ?, {finished} "
                f"WHERE id = ? AND current_attempt = ? AND {held}",
                updates,
            ).rowcount
        if written != len(results):
            raise _NotAllHeld
        db.executemany(
            "UPDATE recipients SET status = ?, code = ?, enhanced = ?, text = ? "
            "WHERE message = ? AND address = ? AND status != 'accepted'",
            recipients,
        )
        db.executemany(
            "UPDATE attempts SET ended_at = ?, outcome = ?, error = ?, transcript = ? WHERE id = ?",
            attempts,
        )
        return states

    def _record_many(
        self, db: sqlite3.Connection, owner: str, results: list[tuple[int, MessageResult, str]],
        now: float,
    ) -> list[State | None]:  # fmt: skip
        """`_record_claimed` for messages named by id, their rows read again.

        None for a message ``owner`` does not hold any more; nothing of it is written.
        """
        held = self._rows(db, list(dict.fromkeys(m for m, _, _ in results)), held_by=owner)
        mine = [(held[m], result, text) for m, result, text in results if m in held]
        states = iter(self._record_claimed(db, owner, mine, now) if mine else [])
        return [next(states) if m in held else None for m, _, _ in results]

    def record_progress(
        self, message: int, owner: str, answers: Iterable[RecipientResult], *,
        now: float | None = None,
    ) -> None:  # fmt: skip
        """The answers of one transaction of a message that goes on in another
        (after a 452, or to another domain's server), written at once: should
        Mailer stop before the message ends, the recipients who took it are
        never sent it again, and those who refused it for good are not asked
        again. Its "." was answered, so the end-of-data mark in the database
        goes too (the runner clears its line in the marks file after this).

        WrongState when ``owner`` no longer holds the message.
        """
        now = time.time() if now is None else now
        kept = [
            (r.status.value, r.reply.code if r.reply else None,
             r.reply.enhanced if r.reply else None, r.text, message, r.address)
            for r in answers
            if r.status is not RecipientStatus.DEFERRED
        ]  # fmt: skip
        with self._write() as db:
            self._owned(db, message, owner)
            db.executemany(
                "UPDATE recipients SET status = ?, code = ?, enhanced = ?, text = ? "
                "WHERE message = ? AND address = ? AND status != 'accepted'",
                kept,
            )
            db.execute(
                "UPDATE messages SET data_end_at = NULL, updated_at = ? WHERE id = ?",
                (now, message),
            )

    def record_failure(
        self, message: int, owner: str, verdict: Verdict, transcript: str = "",
        *, account: str, now: float | None = None,
    ) -> State:  # fmt: skip
        """An attempt ended before any recipient got an answer (connect, TLS, login ...)."""
        now = time.time() if now is None else now
        with self._write() as db:
            row = self._owned(db, message, owner)
            if verdict.disposition is Disposition.PAUSE_ACCOUNT:
                self._finish_attempt(
                    db, message, verdict.disposition.value, verdict.reason, transcript, now
                )
                db.execute(
                    "INSERT INTO accounts (account, paused, reason, since) VALUES (?,?,?,?) "
                    "ON CONFLICT (account) DO UPDATE SET paused = excluded.paused, "
                    "reason = excluded.reason, since = excluded.since",
                    (account, verdict.account_state, verdict.reason, now),
                )
                # Not the message's fault: it waits, as queued, for the account.
                db.execute(
                    "UPDATE messages SET state = 'queued', attempts = attempts - 1, "
                    "last_error = ?, lease_owner = NULL, lease_until = NULL, updated_at = ? "
                    "WHERE id = ?",
                    (verdict.reason, now, message),
                )
                return State.QUEUED
            status = "rejected" if verdict.disposition is Disposition.FAIL else "deferred"
            # No reply to go with the reason (the connection failed, say): an
            # earlier attempt's code must not stand beside it.
            db.execute(
                "UPDATE recipients SET status = ?, code = NULL, enhanced = NULL, text = ? "
                "WHERE message = ? AND status IN ('pending', 'deferred')",
                (status, verdict.reason, message),
            )
            state = self._settle(db, row, verdict.reason, now)
            outcome = verdict.disposition.value
            if state is State.FAILED and verdict.disposition is Disposition.DEFER:
                outcome = GIVEN_UP  # put off again, and that was the last try
            self._finish_attempt(db, message, outcome, verdict.reason, transcript, now)
            return state

    def release(
        self, message: int, owner: str, *, now: float | None = None, hold: float = 0.0,
        started: bool = True, reason: str | None = None, transcript: str = "",
    ) -> None:  # fmt: skip
        """A send was interrupted before the final "." (cancel, shutdown), or the
        server closed the connection without taking it: queue it again, its
        attempt not counted by the retry schedule.

        ``hold`` keeps it from being taken again at once (after a cancel, the
        person may want to cancel it for good). ``started=False``: claimed
        with others and given back before its turn came; its attempt never
        began, so no attempt is kept ("Attempt 1: interrupted" would be untrue).
        Otherwise the attempt is kept as interrupted, with ``reason`` and
        ``transcript``.
        """
        now = time.time() if now is None else now
        with self._write() as db:
            cursor = db.execute(
                "UPDATE messages SET state = 'queued', due_at = ?, "
                "attempts = max(attempts - 1, 0), lease_owner = NULL, lease_until = NULL, "
                "updated_at = ? "
                "WHERE id = ? AND lease_owner = ? AND state = 'sending'",
                (now + hold, now, message, owner),
            )
            if started:
                self._finish_attempt(db, message, "interrupted", reason, transcript, now)
            elif cursor.rowcount == 1:
                db.execute(
                    "DELETE FROM attempts WHERE id = "
                    "(SELECT current_attempt FROM messages WHERE id = ?) AND ended_at IS NULL",
                    (message,),
                )
                last = "(SELECT max(a.id) FROM attempts a WHERE a.message = messages.id)"
                db.execute(
                    f"UPDATE messages SET current_attempt = {last}, first_attempt_at = "
                    f"CASE WHEN {last} IS NULL THEN NULL ELSE first_attempt_at END WHERE id = ?",
                    (message,),
                )

    def recover(
        self, *, now: float | None = None, keep_owner: str | None = None,
        holding: Iterable[int] | None = None,
    ) -> list[tuple[int, State]]:  # fmt: skip
        """Messages left in `sending` by a runner that died: its lease ran out,
        or its process ended (its lock file is free, see marks.py).

        ``keep_owner``: the calling runner's own messages are not taken back
        from it (after a suspend its leases look expired, but it still holds
        them); with ``holding``, only those it still has in hand are kept, and
        any it gave up on (a result it could not write) are recovered too.
        """
        now = time.time() if now is None else now
        sql = (
            "SELECT id, data_end_at, current_attempt, lease_owner FROM messages "
            "WHERE state = 'sending' "
            "AND (lease_until < ? AND (lease_owner IS NOT ?"
        )
        params: list[object] = [now, keep_owner]
        if holding is not None:
            kept = list(holding)
            sql += f" OR id NOT IN ({','.join('?' * len(kept))})"
            params += kept
        sql += ")"
        try:
            # A runner whose process is gone lets go of nothing, and never will:
            # its messages need not wait for their leases to run out.
            owners = self._read(
                "SELECT DISTINCT lease_owner FROM messages WHERE state = 'sending' "
                "AND lease_until >= ? AND lease_owner IS NOT ?",
                (now, keep_owner),
            )
            dead = sorted(dead_runners(self.marks_dir, [row[0] for row in owners if row[0]]))
            if dead:
                sql += f" OR lease_owner IN ({','.join('?' * len(dead))})"
                params += dead
            return self._recover(sql + ")", params, keep_owner, now)
        except sqlite3.DatabaseError as exc:
            raise self._corrupt(exc) from exc
        except OSError as exc:  # a marks file there but unreadable: decide nothing
            raise OutboxError(
                f"A file in {self.marks_dir} cannot be read ({exc.strerror or exc}), so "
                "messages interrupted mid-send cannot be told apart yet; they wait."
            ) from exc

    def give_back(
        self, owner: str, *, now: float | None = None, messages: Iterable[int] | None = None
    ) -> list[tuple[int, State]]:
        """Everything ``owner`` still has `sending` (of ``messages``, if given),
        given back as recovery would (`uncertain` where the end-of-data mark
        says the "." left, `queued` otherwise): a runner that ends with a send
        cut short (Ctrl+C) does this itself, and one whose results could not
        be written, so its messages need not wait for their leases to run out."""
        now = time.time() if now is None else now
        sql = (
            "SELECT id, data_end_at, current_attempt, lease_owner FROM messages "
            "WHERE state = 'sending' AND lease_owner = ?"
        )
        params: list[object] = [owner]
        if messages is not None:
            ids = list(messages)
            sql += f" AND id IN ({','.join('?' * len(ids))})"
            params += ids
        try:
            return self._recover(sql, params, None, now)
        except sqlite3.DatabaseError as exc:
            raise self._corrupt(exc) from exc
        except OSError as exc:
            raise OutboxError(
                f"A file in {self.marks_dir} cannot be read ({exc.strerror or exc}), so the "
                "messages this Mailer was sending wait until their leases run out."
            ) from exc

    def _recover(
        self, sql: str, params: list[object], keep_owner: str | None, now: float
    ) -> list[tuple[int, State]]:
        changed: list[tuple[int, State]] = []
        with self._write() as db:
            db.row_factory = sqlite3.Row
            rows = db.execute(sql, params).fetchall()
            # Read inside the transaction: a runner claims before it marks, so
            # no mark that matters can be added or removed meanwhile.
            ended = read_marks_detail(self.marks_dir) if rows else {}
            for row in rows:
                self._finish_attempt(db, row["id"], "interrupted", None, "", now)
                key = (row["id"], row["current_attempt"])
                if row["data_end_at"] is not None or key in ended:
                    state = State.UNCERTAIN
                    error = (
                        "Mailer stopped after sending the whole message, before the server's "
                        "answer to it was recorded: it may have been delivered."
                    )
                    db.execute(
                        "UPDATE messages SET state = 'uncertain', last_error = ?, "
                        "lease_owner = NULL, lease_until = NULL, updated_at = ? WHERE id = ?",
                        (error, now, row["id"]),
                    )
                    # In doubt: those its last "." went to (all still to go, if
                    # the mark does not say); the others were never sent it.
                    self._in_doubt(db, row["id"], ended.get(key), error)
                else:
                    # Cut short before its "." (perhaps before it began): as
                    # with release(), the attempt is kept but not counted.
                    state = State.QUEUED
                    db.execute(
                        "UPDATE messages SET state = 'queued', due_at = ?, "
                        "attempts = max(attempts - 1, 0), lease_owner = NULL, "
                        "lease_until = NULL, updated_at = ? WHERE id = ?",
                        (now, now, row["id"]),
                    )
                changed.append((row["id"], state))
            holders = db.execute(
                "SELECT DISTINCT lease_owner FROM messages WHERE state = 'sending'"
            ).fetchall()
            # Not the files just read either: should this commit fail (a full
            # disk), their marks are all that tells the messages taken back
            # here were perhaps delivered. A later recovery removes them.
            recovered = [row["lease_owner"] for row in rows]
            remove_idle(self.marks_dir, keep=[keep_owner, *(h[0] for h in holders), *recovered])
        return changed

    @staticmethod
    def _state_of(db: sqlite3.Connection, message: int) -> State:
        row = db.execute("SELECT state FROM messages WHERE id = ?", (message,)).fetchone()
        if row is None:
            raise NotFound(f"There is no message {message} in the outbox.")
        return State(row[0])

    def cancel(self, message: int, *, now: float | None = None) -> State:
        """Cancel a waiting message at once; a message being sent is left to its runner."""
        now = time.time() if now is None else now
        with self._write() as db:
            state = self._state_of(db, message)
            if state in (*WAITING, State.UNCERTAIN):
                db.execute(
                    "UPDATE messages SET state = 'cancelled', updated_at = ? WHERE id = ?",
                    (now, message),
                )
                return State.CANCELLED
            return state

    def remove_stale_builds(self, *, now: float | None = None) -> list[Path]:
        """Remove the half-built message files (``msg-*.eml``) that a Mailer killed
        while building a message left in the spool. One not written to for
        STALE_BUILD_SECONDS is no longer being built by anyone; the messages the
        outbox holds are named otherwise and never touched. The removed paths."""
        cutoff = (time.time() if now is None else now) - STALE_BUILD_SECONDS
        removed: list[Path] = []
        try:
            entries = list(os.scandir(self.spool_dir))
        except OSError:
            return removed
        for entry in entries:
            if not (entry.name.startswith("msg-") and entry.name.endswith(".eml")):
                continue
            try:
                if entry.is_file(follow_symlinks=False) and entry.stat().st_mtime < cutoff:
                    os.unlink(entry.path)
                    removed.append(Path(entry.path))
            except OSError:
                continue  # gone meanwhile, or not ours to remove: left alone
        return removed

    def orphan_files(self, *, now: float | None = None) -> list[Path]:
        """Message files in the spool that no message in the outbox names: left
        by a database that lost rows (damaged, replaced by an older copy, or its
        -wal log removed by hand). Never removed here: each is a whole message.
        A file written in the last minute may be a message being queued, and
        half-built ones (``msg-*.eml``) are not messages: neither counts."""
        cutoff = (time.time() if now is None else now) - 60
        try:
            named = {row[0] for row in self._read("SELECT spool_file FROM messages")}
        except OutboxError:
            return []  # what a damaged database names is not known
        try:
            entries = list(os.scandir(self.spool_dir))
        except OSError:
            return []
        found: list[Path] = []
        for entry in entries:
            name = entry.name
            if not name.endswith(".eml") or name.startswith("msg-") or name in named:
                continue
            try:
                if entry.is_file(follow_symlinks=False) and entry.stat().st_mtime < cutoff:
                    found.append(Path(entry.path))
            except OSError:
                continue
        return sorted(found)

    def withdraw(self, message: int) -> bool:
        """Remove a message cancelled before any attempt, and its file: what Undo
        send does once the message is back in a composer and saved in Drafts
        (it never left, so no trace of it belongs among failed ones).
        False, and nothing changed, for any other message."""
        try:
            with self._write() as db:
                row = db.execute(
                    "SELECT state, spool_file FROM messages WHERE id = ?", (message,)
                ).fetchone()
                tried = db.execute(
                    "SELECT 1 FROM attempts WHERE message = ? LIMIT 1", (message,)
                ).fetchone()
                if row is None or row[0] != State.CANCELLED.value or tried is not None:
                    return False
                db.execute("DELETE FROM messages WHERE id = ?", (message,))  # and its recipients
        except sqlite3.DatabaseError as exc:
            raise self._corrupt(exc) from exc
        with contextlib.suppress(OSError):  # left behind, it is only a file
            os.unlink(self._spool_prefix + row[1])
        return True

    def hold_queued(
        self, account: str, until: float, *, now: float | None = None, needing_dns: bool = False
    ) -> list[int]:
        """The account's waiting messages due before ``until`` wait until then.

        What a runner does when the account's server could not be reached, or
        closed with a 421, for one message: the others go with that message's
        next try instead of each asking the server again at once. Kept here,
        not only in the runner, so that every view (the window, outbox list)
        and every runner (a cron ``flush --due``) sees when they go. Queued
        and deferred messages due before then, and scheduled ones whose time
        has come (an undo window over: queued now), are moved; one scheduled
        for later keeps its time. Their order is kept (claims go by due time,
        then number). Send now, or a flush, makes them due again. Their numbers.
        ``needing_dns``: only messages with a recipient to look up (one to
        address literals only, ``x@[192.0.2.1]``, needs no DNS server).
        """
        now = time.time() if now is None else now
        dns = (
            " AND EXISTS (SELECT 1 FROM recipients r WHERE r.message = messages.id "
            "AND r.status IN ('pending','deferred') AND r.address NOT LIKE '%@[%]')"
            if needing_dns
            else ""
        )
        try:
            with self._write() as db:
                rows = db.execute(
                    "SELECT id FROM messages WHERE account = ? AND due_at < ? AND "
                    "(state IN ('queued','deferred') OR (state = 'scheduled' AND due_at <= ?))"
                    + dns,
                    (account, until, now),
                ).fetchall()
                held = [row[0] for row in rows]
                db.executemany(
                    "UPDATE messages SET due_at = ?, updated_at = ?, state = CASE state "
                    "WHEN 'scheduled' THEN 'queued' ELSE state END WHERE id = ?",
                    [(until, now, message) for message in held],
                )
        except sqlite3.DatabaseError as exc:
            raise self._corrupt(exc) from exc
        return held

    def retry_now(self, message: int, *, now: float | None = None) -> None:
        """Send again as soon as possible: a deferred or failed message, or a scheduled one.

        A message due already keeps its due time, so it keeps its place among
        the others waiting: messages go in the order they became due. When its
        account is paused as needing attention, the account is tried again too:
        the person asking is the sign that something was fixed (the server, its
        settings). An account waiting for its password stays paused: retrying a
        refused password is what locks accounts.
        """
        now = time.time() if now is None else now
        with self._write() as db:
            db.execute(
                "DELETE FROM accounts WHERE paused = ? AND account = "
                "(SELECT account FROM messages WHERE id = ?)",
                (NEEDS_ATTENTION, message),
            )
            state = self._state_of(db, message)
            if state not in (State.DEFERRED, State.FAILED, State.SCHEDULED, State.QUEUED):
                raise WrongState(
                    f"Message {message} is {state.value}; only a waiting or failed one "
                    "can be retried."
                )
            if state is State.FAILED:
                db.execute(
                    "UPDATE recipients SET status = 'pending' WHERE message = ? "
                    "AND status != 'accepted'",
                    (message,),
                )
                db.execute(
                    "UPDATE messages SET first_attempt_at = NULL, schedule_from = attempts "
                    "WHERE id = ?",
                    (message,),
                )
            db.execute(
                "UPDATE messages SET state = 'queued', due_at = min(due_at, ?), updated_at = ? "
                "WHERE id = ?",
                (now, now, message),
            )

    def reschedule(self, *, now: float | None = None) -> list[int]:
        """Deferred messages wait by the current retry schedule (`policy`), not
        the one in force when they were deferred: after the person changes it,
        each one's next try is its last attempt plus the delay the schedule now
        gives, never later than the schedule's give-up age allows (then it has
        one last try), never in the past. Their numbers, for those that moved.
        """
        now = time.time() if now is None else now
        policy = self.policy
        moved: list[int] = []
        try:
            with self._write() as db:
                rows = db.execute(
                    "SELECT id, due_at, attempts - schedule_from, first_attempt_at, "
                    "(SELECT max(ended_at) FROM attempts WHERE message = messages.id) "
                    "FROM messages WHERE state = 'deferred'"
                ).fetchall()
                for message, due_at, attempts, first_attempt_at, last_ended in rows:
                    if first_attempt_at is None or last_ended is None:
                        continue
                    wanted = last_ended + policy.delay(attempts)
                    wanted = min(wanted, first_attempt_at + policy.give_up_after)
                    if wanted <= now and due_at <= now:
                        continue  # due either way: it keeps its place among the others
                    wanted = max(now, wanted)
                    if abs(wanted - due_at) >= 1.0:
                        db.execute(
                            "UPDATE messages SET due_at = ? WHERE id = ? AND state = 'deferred'",
                            (wanted, message),
                        )
                        moved.append(message)
        except sqlite3.DatabaseError as exc:
            raise self._corrupt(exc) from exc
        return moved

    def all_due_now(self, states: Iterable[State], *, now: float | None = None) -> list[int]:
        """Every message in ``states`` (waiting ones) is due now; their numbers.

        One transaction. They all get the same due time (now, or the earliest
        of theirs if that is earlier), so among them they go in the order they
        were queued (the claim's order is due time, then number): "send
        everything now" never lets a later one overtake an earlier one.
        Scheduled messages whose time has come already (an undo window just
        over, not yet picked up) always join in, since they may go now as
        well; the others keep their time.
        """
        now = time.time() if now is None else now
        waiting = [s.value for s in states if s in (State.DEFERRED, State.SCHEDULED, State.QUEUED)]
        if not waiting:
            return []
        where = (
            f"state IN ({','.join('?' * len(waiting))}) OR (state = 'scheduled' AND due_at <= ?)"
        )
        params = (*waiting, now)
        try:
            with self._write() as db:
                ids = [
                    row[0]
                    for row in db.execute(
                        f"SELECT id FROM messages WHERE {where} ORDER BY id", params
                    )
                ]
                (earliest,) = db.execute(
                    f"SELECT min(due_at) FROM messages WHERE {where}", params
                ).fetchone()
                db.execute(
                    "UPDATE messages SET state = 'queued', due_at = ?, updated_at = ? "
                    f"WHERE {where}",
                    (min(now, earliest if earliest is not None else now), now, *params),
                )
        except sqlite3.DatabaseError as exc:
            raise self._corrupt(exc) from exc
        return ids

    @staticmethod
    def _in_doubt(
        db: sqlite3.Connection, message: int, places: frozenset[int] | None, text: str
    ) -> None:
        """Recipients of ``message`` still to go whose "." went out unanswered
        (``places``: their places among its recipients; None: all) are unknown."""
        rows = db.execute(
            "SELECT rowid, status FROM recipients WHERE message = ? ORDER BY position",
            (message,),
        ).fetchall()
        doubt = [
            (text, rowid)
            for place, (rowid, status) in enumerate(rows)
            if status in ("pending", "deferred") and (places is None or place in places)
        ]
        db.executemany(
            f"UPDATE recipients SET status = '{UNKNOWN}', code = NULL, enhanced = NULL, "
            "text = ? WHERE rowid = ?",
            doubt,
        )

    def resolve_uncertain(self, message: int, *, sent: bool, now: float | None = None) -> State:
        """The person's answer for an uncertain message: it arrived, or send it again.

        Only the recipients in doubt (unknown) are concerned: one whose
        transaction never began goes in any case, one accepted stays so. (A
        message made uncertain by an older Mailer has none unknown: all it
        still had to go to are.)
        """
        now = time.time() if now is None else now
        with self._write() as db:
            state = self._state_of(db, message)
            if state is not State.UNCERTAIN:
                raise WrongState(f"Message {message} is {state.value}, not uncertain.")
            doubt = f"status = '{UNKNOWN}'"
            if (
                db.execute(
                    f"SELECT 1 FROM recipients WHERE message = ? AND {doubt}", (message,)
                ).fetchone()
                is None
            ):
                doubt = "status IN ('pending', 'deferred')"
            if sent:
                db.execute(
                    "UPDATE recipients SET status = 'accepted', code = NULL, enhanced = NULL, "
                    f"text = 'marked as sent' WHERE message = ? AND {doubt}",
                    (message,),
                )
                still = db.execute(
                    "SELECT 1 FROM recipients WHERE message = ? "
                    "AND status IN ('pending', 'deferred')",
                    (message,),
                ).fetchone()
                state = State.SENT if still is None else State.QUEUED
            else:
                db.execute(
                    f"UPDATE recipients SET status = 'pending' WHERE message = ? AND {doubt}",
                    (message,),
                )
                state = State.QUEUED
            db.execute(
                "UPDATE messages SET state = ?, due_at = ?, data_end_at = NULL, updated_at = ? "
                "WHERE id = ?",
                (state.value, now, now, message),
            )
        return state

    def resume_account(self, account: str) -> None:
        """The person fixed the account (new password, settings): try it again."""
        with self._write() as db:
            db.execute("DELETE FROM accounts WHERE account = ?", (account,))
