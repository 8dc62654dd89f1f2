"""The only door from widgets to the outbox: Qt signals in, plain calls out.

The runner reports from its own threads through plain callbacks; the bridge
hops each event onto the GUI thread with a queued signal before re-emitting it,
so every public signal is delivered on the GUI thread whatever its receiver is.
Blocking core calls (SQLite, keyring) go through `run_in_background`, which
posts the result back the way Picard's util/thread.py does.
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, Qt, QThreadPool, QTimer, Signal, Slot

from mailer_gui.accounts.secrets import forget_password, remember_password, session_password
from mailer_gui.accounts.store import AccountStore
from mailer_gui.outbox.policy import NEEDS_PASSWORD, UNDO_WINDOW_MAX
from mailer_gui.outbox.runner import (
    AccountLookup,
    CredentialsLookup,
    Event,
    Progress,
    Runner,
    StateChanged,
    TranscriptLine,
    Trouble,
    deliver_direct_row,
)
from mailer_gui.outbox.store import MessageRow, OutboxStore, State
from mailer_gui.paths import AppPaths
from mailer_gui.smtp.auth import Credentials
from mailer_gui.smtp.errors import AuthenticationError
from mailer_gui.smtp.settings import AuthMethod, ServerSettings

if TYPE_CHECKING:
    from mailer_gui.accounts.model import Account
    from mailer_gui.message.draft import Draft

COUNTS_DELAY_MS = 200  # state changes within this window share one count query

Done = Callable[[Any, BaseException | None], None]


def stored_credentials(account: Account, *, service: str) -> Callable[[], Credentials] | None:
    """Credentials for a send, read on the runner's thread when the server asks.

    ``service`` is the profile's keyring service (`AppPaths.keyring_service`).

    A password typed into the prompt this session wins; then the keyring or
    the password command. When there is none (no keyring, nothing stored, the
    command failed) the login fails as a wrong password would: the account is
    paused as "needs password" and the window asks for it, instead of sending
    without logging in.
    """
    if account.auth is AuthMethod.NONE:
        return None

    def provide() -> Credentials:
        typed = session_password(account.name)
        if typed is not None:
            return Credentials(account.login, typed)
        if account.secret_source == "none":
            raise AuthenticationError(
                f"No password is stored for the account {account.name!r}; "
                "Mailer needs it to log in to send."
            )
        # The keyring is loaded by the first send that needs it (on the runner's
        # thread), not while the window starts.
        from mailer_gui.accounts import secrets

        try:
            return Credentials(account.login, secrets.get_secret(account, service=service))
        except secrets.SecretError as exc:
            raise AuthenticationError(str(exc)) from exc

    return provide


class PasswordRefused(AuthenticationError):
    """A password typed for a paused account, refused by its server when tried."""


def _try_login(settings: ServerSettings, password: str) -> None:
    """Log in to ``settings``' server with ``password`` and leave; PasswordRefused
    when the server refuses it for good. Any other failure (the server cannot be
    reached, a certificate) is left to the send that follows to report."""
    from mailer_gui.smtp.errors import SmtpError
    from mailer_gui.smtp.session import Session

    login = settings.username or ""
    session = Session(settings, credentials=lambda: Credentials(login, password))
    try:
        session.open()
    except AuthenticationError as exc:
        if not exc.transient:
            raise PasswordRefused(exc.message, reply=exc.reply) from None
    except SmtpError:
        pass
    finally:
        session.close()


class OutboxBridge(QObject):
    """Owns the outbox runner and turns its events into Qt signals on the GUI thread."""

    #: message id, State value, detail ("" when none)
    stateChanged = Signal(int, str, str)
    #: message id, bytes sent, bytes total
    progress = Signal(int, int, int)
    #: message id, account name, TranscriptRecord (frozen)
    transcriptLine = Signal(int, str, object)
    #: {State value: number of messages}, every state present
    countsChanged = Signal(dict)
    #: message id, what went wrong (an action started without its own on_done)
    actionFailed = Signal(int, str)
    #: what the background runner could not do (runner.Trouble), once each
    trouble = Signal(str)

    # Private hops onto the GUI thread, connected queued to slots of this object.
    _runnerEvent = Signal(object)
    _taskDone = Signal(object, object, object)

    def __init__(
        self,
        store: OutboxStore,
        accounts: AccountLookup,
        *,
        keyring_service: str,
        credentials: CredentialsLookup | None = None,
        parent: QObject | None = None,
    ) -> None:
        """``keyring_service`` names where the profile keeps its passwords
        (`AppPaths.keyring_service`); ``credentials`` defaults to reading them there."""
        super().__init__(parent)
        self.store = store
        self.keyring_service = keyring_service
        if credentials is None:
            credentials = functools.partial(stored_credentials, service=keyring_service)
        self._closed = False
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(2)
        self._runnerEvent.connect(self._on_runner_event, Qt.ConnectionType.QueuedConnection)
        self._taskDone.connect(self._on_task_done, Qt.ConnectionType.QueuedConnection)
        self._counts_timer = QTimer(self)
        self._counts_timer.setSingleShot(True)
        self._counts_timer.setInterval(COUNTS_DELAY_MS)
        self._counts_timer.timeout.connect(self._load_counts)
        self._counts_loading = False
        self._counts_again = False
        self.runner = Runner(
            store,
            accounts,
            credentials=credentials,
            on_event=self._from_runner,
            direct=deliver_direct_row,
        )

    @classmethod
    def for_paths(
        cls,
        paths: AppPaths,
        parent: QObject | None = None,
        *,
        credentials: CredentialsLookup | None = None,
        store: OutboxStore | None = None,
    ) -> OutboxBridge:
        """The bridge for this data folder; ``store`` is its outbox if opened already."""
        if store is None:
            store = OutboxStore(paths.database, paths.spool_dir)
        accounts = AccountStore(paths.accounts_file).get
        return cls(
            store,
            accounts,
            keyring_service=paths.keyring_service,
            credentials=credentials,
            parent=parent,
        )

    # ------------------------------------------------------------ controls

    def start(self) -> None:
        """Start delivering in the background, and report the counts once."""
        self.runner.start()
        self.refresh_counts()

    @Slot()
    def wake(self) -> None:
        """New work in the outbox (a message queued, a retry asked for)."""
        self.runner.wake()

    def cancel(self, message: int, on_done: Done | None = None) -> None:
        """Cancel a message off the GUI thread (the store write may wait for a lock).

        ``on_done(state, error)`` gets the State the message is in now, or the
        error; without ``on_done`` an error is reported through `actionFailed`.
        """

        def finished(state: State | None, error: BaseException | None) -> None:
            if on_done is not None:
                on_done(state, error)
            elif error is not None:
                self.actionFailed.emit(message, str(error))

        self.run_in_background(lambda: self.runner.cancel(message), finished)
        self.refresh_counts()

    def send_draft(
        self,
        draft: Draft,
        account: str,
        on_done: Done,
        *,
        due_at: float | None = None,
    ) -> None:
        """Build and queue ``draft`` off the GUI thread, then wake the runner.

        ``on_done(message number | None, error)``; a DraftError names the field
        or file that stopped it, and nothing is queued then.
        """

        def queue() -> int:
            # Imported here, on the worker: its first import reads modules from disk.
            from mailer_gui.outbox.submit import queue_draft

            return queue_draft(self.store, draft, account=account, due_at=due_at)

        def queued(message: int | None, error: BaseException | None) -> None:
            if error is None:
                if due_at is None or due_at <= time.time() + UNDO_WINDOW_MAX:
                    # Send pressed (not Send later): this message is tried when
                    # its undo window ends, not after a wait for a server that
                    # could not be reached (the person may have fixed that).
                    # A wait the server asked for (a 421) holds this message
                    # too, shown with its time: a try now would meet the same.
                    self.runner.clear_backoff(account, asked=False)
                self.runner.wake()
                self.refresh_counts()
            on_done(message, error)

        self.run_in_background(queue, queued)

    def retry_now(self, message: int, on_done: Done | None = None) -> None:
        """Send a waiting, deferred or failed message as soon as possible (even when
        its server could not be reached a moment ago)."""

        def retry() -> None:
            self.store.retry_now(message)  # an account needing attention is tried too
            self.runner.clear_backoff(self.store.get(message).account)

        self._act(message, retry, on_done)

    def resolve_uncertain(self, message: int, *, sent: bool, on_done: Done | None = None) -> None:
        """The person's answer for an uncertain message: "mark as sent" or "send again"."""
        self._act(message, lambda: self.store.resolve_uncertain(message, sent=sent), on_done)

    def load_details(self, message: int, on_done: Done) -> None:
        """``on_done((MessageRow, list[AttemptRow]) | None, error)``: a message and
        every attempt with its transcript, as they were at one moment."""
        self.run_in_background(lambda: self.store.details(message), on_done)

    def load_paused_accounts(self, on_done: Done) -> None:
        """``on_done({account: (state, reason)} | None, error)``: accounts not being tried."""
        self.run_in_background(self.store.paused_accounts, on_done)

    def resume_account(self, account: str, *, retry: bool = False) -> None:
        """Try a paused account again (it has what it was waiting for); with
        ``retry``, its deferred messages go now as well, not at their retry
        times. Errors go to `trouble`."""

        def work() -> None:
            if retry:
                for row in self.store.messages([State.DEFERRED]):
                    if row.account == account:
                        self.store.retry_now(row.id)
            self._resume(account)

        def finished(_result: Any, error: BaseException | None) -> None:
            if error is not None:
                self.trouble.emit(str(error))
            self.runner.wake()
            self.refresh_counts()

        self.run_in_background(work, finished)

    def _resume(self, account: str) -> None:
        """(Worker thread.) The account is tried again, at once."""
        self.store.resume_account(account)
        self.runner.clear_backoff(account)

    def provide_password(
        self, account: str, password: str, *, keep: bool, on_done: Done | None = None,
        check: ServerSettings | None = None,
    ) -> None:  # fmt: skip
        """The person typed the password of a paused account: use it and try again.

        With ``check`` (the account's server), it is first tried there (off the
        GUI thread): one the server refuses is neither used nor kept, and the
        account stays paused; ``on_done(None, PasswordRefused)``. A server that
        cannot be reached now cannot say: the password is used as given.
        With ``keep`` it also goes to the keyring; otherwise it lives in memory
        until Mailer quits. ``on_done(None, error)``: error is a keyring failure
        (the password is still used for this session).
        """

        def work() -> None:
            if check is not None:
                _try_login(check, password)  # PasswordRefused: nothing changes
            remember_password(account, password)
            self._resume(account)
            if keep:
                from mailer_gui.accounts import secrets

                secrets.store_password(account, password, service=self.keyring_service)

        def finished(result: Any, error: BaseException | None) -> None:
            self.runner.wake()
            self.refresh_counts()
            if on_done is not None:
                on_done(result, error)

        self.run_in_background(work, finished)

    def pause_sending(self, paused: bool) -> None:
        """Start no new delivery while paused (sends under way finish)."""
        if paused:
            self.runner.pause()
        else:
            self.runner.resume()

    def _act(self, message: int, fn: Callable[[], Any], on_done: Done | None) -> None:
        def finished(result: Any, error: BaseException | None) -> None:
            if error is None:
                self.runner.wake()
                self.refresh_counts()
                with contextlib.suppress(Exception):  # the state as it is now, for views
                    self.load_message(message, self._announce_state)
            if on_done is not None:
                on_done(result, error)
            elif error is not None:
                self.actionFailed.emit(message, str(error))

        self.run_in_background(fn, finished)

    def _announce_state(self, row: MessageRow | None, error: BaseException | None) -> None:
        if row is not None and error is None:
            self.stateChanged.emit(row.id, row.state.value, row.last_error or "")

    def load_messages(self, states: Iterable[State] | None, on_done: Done) -> None:
        """``on_done(list[MessageRow] | None, error)`` with the messages in ``states``."""
        wanted = None if states is None else tuple(states)
        self.run_in_background(lambda: self.store.messages(wanted), on_done)

    def load_message(self, message: int, on_done: Done) -> None:
        """``on_done(MessageRow | None, error)`` with one message as stored now."""
        self.run_in_background(lambda: self.store.get(message), on_done)

    @Slot()
    def refresh_counts(self) -> None:
        """Recount soon; changes arriving together share one query."""
        if not self._closed and not self._counts_timer.isActive():
            self._counts_timer.start()

    def shutdown(self, timeout: float = 5.0) -> None:
        """Stop the runner (sends in flight go back to the queue) and the workers.

        Blocks for at most about ``timeout`` seconds per thread: meant for quit.
        """
        if self._closed:
            return
        self._closed = True
        self._counts_timer.stop()
        self.runner.stop(timeout)
        self._pool.clear()  # not yet started: dropped
        self._pool.waitForDone(int(timeout * 1000))

    # ------------------------------------------------------------ threads

    def run_in_background(self, fn: Callable[[], Any], on_done: Done) -> None:
        """Run blocking ``fn()`` on a worker thread; ``on_done(result, error)`` on this thread.

        Exactly one of ``result`` / ``error`` is meaningful: ``error`` is the
        exception ``fn`` raised, or None.
        """
        if self._closed:
            return

        def task() -> None:
            result: Any = None
            error: BaseException | None = None
            try:
                result = fn()
            except Exception as exc:  # handed to on_done, which decides what to tell
                error = exc
            with contextlib.suppress(RuntimeError):  # the bridge was deleted meanwhile
                self._taskDone.emit(on_done, result, error)

        self._pool.start(task)

    @Slot(object, object, object)
    def _on_task_done(self, on_done: Done, result: Any, error: BaseException | None) -> None:
        if not self._closed:
            on_done(result, error)

    def _from_runner(self, event: Event) -> None:
        """Called on the runner's threads: only hop, never touch anything else."""
        with contextlib.suppress(RuntimeError):  # the bridge was deleted at quit
            self._runnerEvent.emit(event)

    @Slot(object)
    def _on_runner_event(self, event: Event) -> None:
        if self._closed:
            return
        if isinstance(event, StateChanged):
            self.stateChanged.emit(event.message, event.state.value, event.detail or "")
            self.refresh_counts()
        elif isinstance(event, Progress):
            self.progress.emit(event.message, event.sent, event.total)
        elif isinstance(event, TranscriptLine):
            self.transcriptLine.emit(event.message, event.account, event.record)
        elif isinstance(event, Trouble):
            self.trouble.emit(event.text)

    @Slot()
    def _load_counts(self) -> None:
        if self._counts_loading:
            self._counts_again = True  # one more query when this one is back
            return
        self._counts_loading = True
        self.run_in_background(self.store.counts, self._counts_loaded)

    def _counts_loaded(self, counts: dict[State, int] | None, error: BaseException | None) -> None:
        self._counts_loading = False
        if error is None and counts is not None:
            self.countsChanged.emit({state.value: counts.get(state, 0) for state in State})
        if self._counts_again:
            self._counts_again = False
            self.refresh_counts()


__all__ = [
    "NEEDS_PASSWORD",
    "OutboxBridge",
    "forget_password",
    "remember_password",
    "stored_credentials",
]
