"""The retry schedule and the outbox's states, as tables; the store on real SQLite."""

from __future__ import annotations

import contextlib
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from mailer_gui.message.addresses import parse_address, parse_address_list
from mailer_gui.message.build import build_message
from mailer_gui.message.draft import Draft
from mailer_gui.outbox.policy import HOUR, MINUTE, Disposition, RetryPolicy, Verdict, judge
from mailer_gui.outbox.store import (
    AttemptRow,
    NotFound,
    OutboxError,
    OutboxStore,
    State,
    WrongState,
    _Checkpointer,
)
from mailer_gui.smtp.errors import (
    AuthenticationError,
    ConnectError,
    MessageRefused,
    ReplyError,
    SecurityPolicyError,
    TlsError,
)
from mailer_gui.smtp.replies import Reply, Stage
from mailer_gui.smtp.session import MessageResult, RecipientResult, RecipientStatus

T0 = 1_800_000_000.0

# ------------------------------------------------------------------ policy


@pytest.mark.parametrize(
    ("failures", "delay"),
    [(1, 1 * MINUTE), (2, 5 * MINUTE), (3, 15 * MINUTE), (4, 30 * MINUTE), (5, 1 * HOUR),
     (6, 2 * HOUR), (20, 2 * HOUR)],
)  # fmt: skip
def test_default_schedule(failures: int, delay: float) -> None:
    assert RetryPolicy().delay(failures) == delay


def test_gives_up_after_two_days() -> None:
    policy = RetryPolicy()
    assert policy.next_attempt(3, first_attempt_at=T0, now=T0 + HOUR) == T0 + HOUR + 15 * MINUTE
    assert policy.next_attempt(30, first_attempt_at=T0, now=T0 + 47 * HOUR) is None


def test_configurable() -> None:
    policy = RetryPolicy(delays=(10.0,), then_every=20.0, give_up_after=100.0)
    assert [policy.delay(n) for n in (1, 2, 3)] == [10.0, 20.0, 20.0]
    with pytest.raises(ValueError):
        RetryPolicy(delays=(0.0,))


def reply(code: int, enhanced: str, text: str) -> Reply:
    return Reply(code, enhanced, (text,))


@pytest.mark.parametrize(
    ("error", "disposition", "account_state"),
    [
        (AuthenticationError("bad", reply=reply(535, "5.7.8", "no")), Disposition.PAUSE_ACCOUNT,
         "needs password"),
        (AuthenticationError("later", reply=reply(454, "4.7.0", "t"), transient=True),
         Disposition.DEFER, None),
        (TlsError("cert"), Disposition.PAUSE_ACCOUNT, "needs attention"),
        (SecurityPolicyError("no starttls"), Disposition.PAUSE_ACCOUNT, "needs attention"),
        (ConnectError("refused"), Disposition.DEFER, None),
        (MessageRefused("too big"), Disposition.FAIL, None),
        (ReplyError("greylist", reply=reply(451, "4.7.1", "later"), stage=Stage.MAIL),
         Disposition.DEFER, None),
        (ReplyError("no", reply=reply(554, "5.7.1", "no"), stage=Stage.GREETING),
         Disposition.FAIL, None),
    ],
)  # fmt: skip
def test_judge(error: Exception, disposition: Disposition, account_state: str | None) -> None:
    verdict = judge(error)  # type: ignore[arg-type]
    assert verdict.disposition is disposition
    assert verdict.account_state == account_state


# ------------------------------------------------------------------- store


@pytest.fixture
def store(tmp_path: Path) -> OutboxStore:
    return OutboxStore(tmp_path / "data" / "outbox.sqlite3", tmp_path / "data" / "spool")


def enqueue(store: OutboxStore, tmp_path: Path, *rcpts: str, due: float | None = None) -> int:
    draft = Draft(
        sender=parse_address("ann@example.org"),
        to=tuple(parse_address_list(list(rcpts or ("bob@example.org",)))),
        subject="hello",
        body="text",
    )
    built = build_message(draft, spool_dir=tmp_path)
    return store.enqueue(built, account="work", subject=draft.subject, due_at=due, now=T0)


def result(*pairs: tuple[str, int], uncertain: bool = False) -> MessageResult:
    recipients = []
    for address, code in pairs:
        r = Reply(code, None, ("ok" if code < 300 else "no",))
        status = (
            RecipientStatus.ACCEPTED
            if code < 300
            else RecipientStatus.DEFERRED
            if code < 500
            else RecipientStatus.REJECTED
        )
        recipients.append(RecipientResult(address, status, r))
    return MessageResult(tuple(recipients), uncertain=uncertain)


def unconfirmed(*addresses: str) -> MessageResult:
    """The final "." went out to ``addresses`` and no reply came, as the session tells it."""
    recipients = [
        RecipientResult(a, RecipientStatus.DEFERRED, None, "it may have arrived") for a in addresses
    ]
    return MessageResult(tuple(recipients), uncertain=True)


def test_files_are_private_and_spooled_before_the_row(store: OutboxStore, tmp_path: Path) -> None:
    message = enqueue(store, tmp_path)
    row = store.get(message)
    assert row.state is State.QUEUED
    assert row.spool_path.parent == store.spool_dir and row.spool_path.exists()
    assert oct(store.database.stat().st_mode & 0o777) == "0o600"
    assert oct(store.spool_dir.stat().st_mode & 0o777) == "0o700"
    assert not list(tmp_path.glob("msg-*.eml"))  # moved, not copied


def test_scheduled_is_not_due_before_its_time(store: OutboxStore, tmp_path: Path) -> None:
    message = enqueue(store, tmp_path, due=T0 + 10)
    assert store.get(message).state is State.SCHEDULED
    assert store.claim_next("a", now=T0 + 5, lease=60) is None
    claimed = store.claim_next("a", now=T0 + 10, lease=60)
    assert claimed is not None and claimed.state is State.SENDING and claimed.attempts == 1


@pytest.mark.parametrize(
    ("replies", "state", "statuses"),
    [
        ([("b@x.org", 250), ("c@x.org", 250)], State.SENT, ["accepted", "accepted"]),
        ([("b@x.org", 250), ("c@x.org", 550)], State.SENT, ["accepted", "rejected"]),
        ([("b@x.org", 550), ("c@x.org", 550)], State.FAILED, ["rejected", "rejected"]),
        ([("b@x.org", 250), ("c@x.org", 451)], State.DEFERRED, ["accepted", "deferred"]),
        ([("b@x.org", 451), ("c@x.org", 451)], State.DEFERRED, ["deferred", "deferred"]),
    ],
)
def test_result_moves_the_state(
    store: OutboxStore, tmp_path: Path, replies, state: State, statuses: list[str]
) -> None:
    message = enqueue(store, tmp_path, "b@x.org", "c@x.org")
    store.claim_next("a", now=T0, lease=60)
    assert store.record_result(message, "a", result(*replies), "C: QUIT", now=T0 + 1) is state
    row = store.get(message)
    assert [r.status for r in row.recipients] == statuses
    if state is State.DEFERRED:
        assert row.due_at == T0 + 1 + MINUTE
    (attempt,) = store.attempts(message)
    assert attempt.transcript == "C: QUIT" and attempt.ended_at == T0 + 1


def test_a_message_and_its_attempts_are_read_at_one_moment(
    store: OutboxStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the detail pane and `outbox show` display: a result recorded
    between reading the row and reading its attempts is in neither."""
    message = enqueue(store, tmp_path, "b@x.org")
    store.claim_next("a", now=T0, lease=60)
    read_attempts = OutboxStore.attempts

    def attempts_after_a_write(self: OutboxStore, number: int) -> list[AttemptRow]:
        # Another thread (its own connection) records the result just now.
        done = threading.Thread(
            target=store.record_result,
            args=(number, "a", result(("b@x.org", 250)), "C: QUIT"),
            kwargs={"now": T0 + 1},
        )
        done.start()
        done.join(10)
        return read_attempts(self, number)

    monkeypatch.setattr(OutboxStore, "attempts", attempts_after_a_write)
    row, attempts = store.details(message)
    assert row.state is State.SENDING
    assert [(a.ended_at, a.outcome) for a in attempts] == [(None, None)]
    monkeypatch.setattr(OutboxStore, "attempts", read_attempts)
    row, attempts = store.details(message)
    assert row.state is State.SENT and attempts[0].ended_at == T0 + 1


def test_only_unconfirmed_recipients_are_retried(store: OutboxStore, tmp_path: Path) -> None:
    message = enqueue(store, tmp_path, "b@x.org", "c@x.org")
    store.claim_next("a", now=T0, lease=60)
    store.record_result(message, "a", result(("b@x.org", 250), ("c@x.org", 451)), now=T0)
    row = store.claim_next("a", now=T0 + MINUTE, lease=60)
    assert row is not None and row.pending == ("c@x.org",) and row.attempts == 2
    store.record_result(message, "a", result(("c@x.org", 250)), now=T0 + MINUTE)
    assert store.get(message).state is State.SENT


def test_a_failure_without_a_reply_leaves_no_earlier_code_beside_its_reason(
    store: OutboxStore, tmp_path: Path
) -> None:
    """A 451 first, then the server could not be reached: the recipient said
    "450 4.2.0 ... refused the connection" (an earlier code, a later reason)."""
    message = enqueue(store, tmp_path, "b@x.org")
    store.claim_next("a", now=T0, lease=60)
    store.record_result(message, "a", result(("b@x.org", 451)), now=T0)
    assert store.get(message).recipients[0].code == 451
    store.claim_next("a", now=T0 + MINUTE, lease=60)
    refused = Verdict(Disposition.DEFER, "127.0.0.1 refused the connection on port 2525.")
    store.record_failure(message, "a", refused, account="work", now=T0 + MINUTE)
    (recipient,) = store.get(message).recipients
    assert (recipient.status, recipient.code, recipient.enhanced) == ("deferred", None, None)
    assert recipient.text == "127.0.0.1 refused the connection on port 2525."


def test_gives_up_after_the_policy(tmp_path: Path) -> None:
    store = OutboxStore(
        tmp_path / "o.sqlite3", tmp_path / "spool", policy=RetryPolicy(give_up_after=100.0)
    )
    message = enqueue(store, tmp_path)
    store.claim_next("a", now=T0, lease=60)
    store.record_result(message, "a", result(("bob@example.org", 451)), now=T0)
    store.claim_next("a", now=T0 + 120, lease=60)
    assert store.record_result(message, "a", result(("bob@example.org", 451)), now=T0 + 150) is (
        State.FAILED
    )
    reason = store.get(message).last_error or ""
    assert reason.startswith(
        "Mailer gave up after 2 attempts over 2 min 30 s (the retry schedule stops trying "
        "after 1 min 40 s). The last problem:"
    ), reason

    # Given up before the limit, since the next try would come after it: said so.
    message = enqueue(store, tmp_path)
    store.claim_next("a", now=T0, lease=60)
    store.record_result(message, "a", result(("bob@example.org", 451)), now=T0)
    store.claim_next("a", now=T0 + 60, lease=60)
    assert store.record_result(message, "a", result(("bob@example.org", 451)), now=T0 + 60) is (
        State.FAILED
    )
    reason = store.get(message).last_error or ""
    assert reason.startswith(
        "Mailer gave up after 2 attempts over 1 min (its next try would have come after the "
        "1 min 40 s the retry schedule allows). The last problem:"
    ), reason


def test_a_new_retry_schedule_applies_to_messages_already_waiting(tmp_path: Path) -> None:
    """Changed in Settings: what waits follows it from then on, both ways, and
    never past the new give-up age (one last try then)."""
    store = OutboxStore(tmp_path / "o.sqlite3", tmp_path / "spool")  # 1 min, 5 min, ...
    third = enqueue(store, tmp_path)
    for at in (T0 + 2, T0 + 120):  # tried twice: it waits 5 min after the second
        store.claim_next("a", now=at, lease=60)
        store.record_result(third, "a", result(("bob@example.org", 451)), now=at)
    first, second = enqueue(store, tmp_path), enqueue(store, tmp_path)
    for at, message in ((T0 + 121, first), (T0 + 122, second)):
        store.claim_next("a", now=at, lease=60)
        store.record_result(message, "a", result(("bob@example.org", 451)), now=at)
    assert [store.get(m).due_at - T0 for m in (first, second, third)] == [181, 182, 420]
    assert store.reschedule(now=T0 + 150) == []  # the same schedule: nothing moves

    store.policy = RetryPolicy(delays=(20.0, 40.0), then_every=60.0, give_up_after=3 * MINUTE)
    assert sorted(store.reschedule(now=T0 + 125)) == sorted([first, second, third])
    assert [store.get(m).due_at - T0 for m in (first, second)] == [141, 142]  # 20 s after
    assert store.get(third).due_at == T0 + 160  # 40 s after its second attempt
    assert store.reschedule(now=T0 + 150) == []  # due already: they keep their places
    store.policy = RetryPolicy(delays=(20.0, 10 * MINUTE), give_up_after=5 * MINUTE)
    store.reschedule(now=T0 + 150)
    assert store.get(third).due_at == T0 + 2 + 5 * MINUTE  # its last try at the limit
    assert {store.get(m).state for m in (first, second, third)} == {State.DEFERRED}


def test_a_message_waiting_shows_why_it_waits_not_an_earlier_refusal(tmp_path: Path) -> None:
    """One recipient refused for good, one to be tried again: the message is
    deferred, and its reason is the one it waits for."""
    store = OutboxStore(tmp_path / "o.sqlite3", tmp_path / "spool")
    message = enqueue(store, tmp_path, "bad@example.org", "grey@example.org")
    store.claim_next("a", now=T0, lease=60)
    state = store.record_result(
        message, "a", result(("bad@example.org", 550), ("grey@example.org", 450)), now=T0
    )
    assert state is State.DEFERRED
    assert (store.get(message).last_error or "").startswith("grey@example.org: ")


def too_big() -> MessageResult:
    reply = Reply(552, "5.3.4", ("Message size exceeds fixed limit",))
    rejected = tuple(
        RecipientResult(address, RecipientStatus.REJECTED, reply)
        for address in ("b@x.org", "c@x.org")
    )
    return MessageResult(rejected, reply, size_limit=1000)


def change(database: Path, *statements: str) -> None:
    db = sqlite3.connect(database, isolation_level=None)
    try:
        for statement in statements:
            db.execute(statement)
    finally:
        db.close()


def same_address_twice(database: Path) -> None:
    """Both recipient rows for b@x.org, the first accepted by an earlier attempt."""
    change(
        database,
        "UPDATE recipients SET address = 'b@x.org'",
        "UPDATE recipients SET status = 'accepted' WHERE position = 0",
    )


# Recipients; earlier attempts' results; this attempt's result; the state it leaves.
RECORDS = {
    "all accepted": (["b@x.org", "c@x.org"], [], result(("b@x.org", 250), ("c@x.org", 250)),
                     State.SENT),
    "one refused": (["b@x.org", "c@x.org"], [], result(("b@x.org", 250), ("c@x.org", 550)),
                    State.SENT),
    "all refused": (["b@x.org", "c@x.org"], [], result(("b@x.org", 550), ("c@x.org", 550)),
                    State.FAILED),
    "one deferred": (["b@x.org", "c@x.org"], [], result(("b@x.org", 250), ("c@x.org", 451)),
                     State.DEFERRED),
    "refused after an earlier acceptance": (
        ["b@x.org", "c@x.org"], [result(("b@x.org", 250), ("c@x.org", 451))],
        result(("c@x.org", 550)), State.SENT),
    "deferred again": (
        ["b@x.org", "c@x.org"], [result(("b@x.org", 250), ("c@x.org", 451))],
        result(("c@x.org", 451)), State.DEFERRED),
    "given up": (["b@x.org"], [result(("b@x.org", 451))], result(("b@x.org", 451)),
                 State.FAILED),
    "uncertain": (["b@x.org"], [], unconfirmed("b@x.org"), State.UNCERTAIN),
    "too big": (["b@x.org", "c@x.org"], [], too_big(), State.FAILED),
    "one address in two rows": (["b@x.org", "c@x.org"], [same_address_twice],
                                result(("b@x.org", 550)), State.SENT),
}  # fmt: skip


@pytest.mark.parametrize("case", RECORDS)
def test_a_batch_records_what_a_single_result_records(tmp_path: Path, case: str) -> None:
    """record_and_claim works from the rows claim gave (it does not read them
    again); record_result reads them. Both must leave the same rows."""
    recipients, earlier, final, expected = RECORDS[case]

    def record(folder: Path, batch: bool) -> tuple[State | None, tuple[object, ...]]:
        policy = RetryPolicy(give_up_after=100.0 if case == "given up" else 2 * 24 * HOUR)
        store = OutboxStore(folder / "o.sqlite3", folder / "spool", policy=policy)
        message = enqueue(store, folder, *recipients)
        # One size in both, as a too-big reason says it (a Message-ID's length varies).
        change(store.database, "UPDATE messages SET size = 2000")
        now = T0
        for before in earlier:
            if callable(before):
                before(store.database)
                continue
            store.claim_next("a", now=now, lease=60)
            store.record_result(message, "a", before, "earlier", now=now)
            now = store.get(message).due_at + 60
        row = store.claim_next("a", now=now, lease=60)
        assert row is not None
        if batch:
            (state,), _ = store.record_and_claim("a", [(row, final, "S: 250")], now=now + 1)
        else:
            state = store.record_result(message, "a", final, "S: 250", now=now + 1)
        after = store.get(message)
        return state, (
            after.state, after.due_at, after.attempts, after.last_error, after.recipients,
            after.first_attempt_at, after.updated_at, store.attempts(message),
        )  # fmt: skip

    batch = record(tmp_path / "batch", batch=True)
    single = record(tmp_path / "single", batch=False)
    assert batch[0] is expected and batch[1][0] is expected
    assert batch == single


def test_a_result_of_an_earlier_attempt_leaves_a_later_claim_alone(tmp_path: Path) -> None:
    """A row from a claim whose lease ran out (recovery queued the message, and
    it was claimed again) is not the message as held now: the batch does not
    write that result over the later attempt from the old row, but goes the
    way a single result does."""

    def record(folder: Path, batch: bool) -> tuple[object, ...]:
        store = OutboxStore(folder / "o.sqlite3", folder / "spool")
        message = enqueue(store, folder, "b@x.org")
        first = store.claim_next("a", now=T0, lease=10)
        assert first is not None
        assert dict(store.recover(now=T0 + 11)) == {message: State.QUEUED}
        again = store.claim_next("a", now=T0 + 12, lease=60)
        assert again is not None and again.attempt != first.attempt
        late = result(("b@x.org", 451))
        if batch:
            (state,), _ = store.record_and_claim("a", [(first, late, "late")], now=T0 + 13)
        else:
            state = store.record_result(message, "a", late, "late", now=T0 + 13)
        after = store.get(message)
        attempts = [(a.outcome, a.transcript, a.ended_at) for a in store.attempts(message)]
        return state, after.state, after.due_at, after.attempts, after.recipients, attempts

    batch = record(tmp_path / "batch", batch=True)
    assert batch == record(tmp_path / "single", batch=False)
    assert batch[5][0][0] != "deferred"  # the first attempt keeps what recovery wrote


def test_uncertain_then_resolved(store: OutboxStore, tmp_path: Path) -> None:
    message = enqueue(store, tmp_path)
    store.claim_next("a", now=T0, lease=60)
    assert store.record_result(message, "a", unconfirmed("bob@example.org")) is (State.UNCERTAIN)
    assert store.claim_next("a", now=T0 + 999, lease=60) is None  # never resent by itself
    assert store.resolve_uncertain(message, sent=False) is State.QUEUED
    assert store.get(message).pending == ("bob@example.org",)
    with pytest.raises(WrongState):
        store.resolve_uncertain(message, sent=True)


def test_recover_after_a_crash(store: OutboxStore, tmp_path: Path) -> None:
    before_dot = enqueue(store, tmp_path)
    after_dot = enqueue(store, tmp_path)
    store.claim_next("dead", now=T0, lease=10)
    store.claim_next("dead", now=T0, lease=10)
    store.mark_data_end(after_dot, "dead", now=T0 + 1)
    assert store.recover(now=T0 + 5) == []  # leases still running
    assert dict(store.recover(now=T0 + 11)) == {
        before_dot: State.QUEUED,
        after_dot: State.UNCERTAIN,
    }
    # Both attempts are kept; only the one whose "." left counts as a try.
    assert [a.outcome for a in store.attempts(before_dot)] == ["interrupted"]
    assert [a.outcome for a in store.attempts(after_dot)] == ["interrupted"]
    assert (store.get(before_dot).attempts, store.get(after_dot).attempts) == (0, 1)
    with pytest.raises(WrongState):  # the dead runner's late answer is refused
        store.record_result(before_dot, "dead", result(("bob@example.org", 250)))


def test_a_runner_gives_back_what_it_holds(store: OutboxStore, tmp_path: Path) -> None:
    """What a runner cut short (Ctrl+C) does as it ends: its messages go back as
    recovery would take them, at once; another runner's are left alone."""
    ended, waiting, others = (enqueue(store, tmp_path) for _ in range(3))
    assert [r.id for r in store.claim("a", now=T0, lease=600, limit=2)] == [ended, waiting]
    assert store.claim_next("b", now=T0, lease=600).id == others
    assert store.mark_data_end(ended, "a", now=T0 + 1)
    assert dict(store.give_back("a", now=T0 + 2)) == {
        ended: State.UNCERTAIN,  # its "." may have left: the person decides
        waiting: State.QUEUED,
    }
    assert store.get(waiting).due_at == T0 + 2
    assert store.get(others).state is State.SENDING
    assert store.give_back("a", now=T0 + 3) == []
    assert [a.outcome for a in store.attempts(ended)] == ["interrupted"]


def test_pause_account_and_resume(store: OutboxStore, tmp_path: Path) -> None:
    message = enqueue(store, tmp_path)
    enqueue(store, tmp_path)
    store.claim_next("a", now=T0, lease=60)
    verdict = Verdict(Disposition.PAUSE_ACCOUNT, "535 bad password", "needs password")
    assert store.record_failure(message, "a", verdict, account="work", now=T0) is State.QUEUED
    assert store.paused_accounts() == {"work": ("needs password", "535 bad password")}
    assert store.claim_next("a", now=T0 + 9999, lease=60) is None
    assert store.due_accounts(T0 + 9999) == []
    store.resume_account("work")
    assert store.claim_next("a", now=T0 + 1, lease=60) is not None


@pytest.mark.parametrize(("paused_as", "tried_again"), [("needs attention", True),
                                                       ("needs password", False)])  # fmt: skip
def test_retry_now_tries_an_account_needing_attention_but_not_a_refused_password(
    store: OutboxStore, tmp_path: Path, paused_as: str, tried_again: bool
) -> None:
    message = enqueue(store, tmp_path)
    store.claim_next("a", now=T0, lease=60)
    verdict = Verdict(Disposition.PAUSE_ACCOUNT, "530 5.7.0 Authentication required", paused_as)
    store.record_failure(message, "a", verdict, account="work", now=T0)
    store.retry_now(message, now=T0 + 1)
    assert ("work" not in store.paused_accounts()) is tried_again
    assert (store.claim_next("a", now=T0 + 1, lease=60) is not None) is tried_again


def test_cancel(store: OutboxStore, tmp_path: Path) -> None:
    waiting = enqueue(store, tmp_path)
    sending = enqueue(store, tmp_path, due=T0 + 100)
    assert store.cancel(waiting) is State.CANCELLED
    store.claim_next("a", now=T0 + 100, lease=60)
    assert store.cancel(sending) is State.SENDING  # left to its runner
    with pytest.raises(NotFound):
        store.cancel(999)


def test_states_of_many_messages_at_once(store: OutboxStore, tmp_path: Path) -> None:
    waiting = enqueue(store, tmp_path)
    cancelled = enqueue(store, tmp_path)
    store.cancel(cancelled)
    # More numbers than one query takes in its chunks: the missing ones are left out.
    asked = [waiting, *range(1000, 2100), cancelled]
    assert store.states(asked) == {waiting: State.QUEUED, cancelled: State.CANCELLED}
    assert store.states([]) == {}


def test_retry_now_and_failed_messages(store: OutboxStore, tmp_path: Path) -> None:
    message = enqueue(store, tmp_path)
    store.claim_next("a", now=T0, lease=60)
    store.record_result(message, "a", result(("bob@example.org", 550)), now=T0)
    assert store.get(message).state is State.FAILED
    store.retry_now(message, now=T0 + 1)
    row = store.get(message)
    assert row.state is State.QUEUED and row.pending == ("bob@example.org",)


def test_retrying_a_failed_message_starts_the_schedule_again_and_counts_every_attempt(
    tmp_path: Path,
) -> None:
    """After giving up, Retry gives the message a new run of the schedule (1 min,
    then 5 min, ...) while the count of attempts, shown in the list and the
    window, keeps those made before (they are in its history)."""
    store = OutboxStore(
        tmp_path / "o.sqlite3", tmp_path / "spool", policy=RetryPolicy(give_up_after=HOUR)
    )
    message = enqueue(store, tmp_path)
    at = T0
    while store.get(message).state is not State.FAILED:
        at = max(at, store.get(message).due_at)
        store.claim("a", now=at, lease=60, message=message)
        store.record_result(message, "a", result(("bob@example.org", 451)), now=at)
    made = store.get(message).attempts
    assert made == len(store.attempts(message)) >= 5

    store.retry_now(message, now=at + 10)
    store.claim("a", now=at + 10, lease=60, message=message)
    assert store.record_result(
        message, "a", result(("bob@example.org", 451)), now=at + 10
    ) is State.DEFERRED  # fmt: skip
    row = store.get(message)
    assert row.attempts == made + 1 == len(store.attempts(message))
    assert row.due_at == at + 10 + 1 * MINUTE  # the schedule's first delay again
    store.claim("a", now=row.due_at, lease=60, message=message)
    store.record_result(message, "a", result(("bob@example.org", 451)), now=row.due_at)
    assert store.get(message).due_at == row.due_at + 5 * MINUTE
    # A changed schedule reads the same run: 2 attempts into it, not made + 2.
    store.policy = RetryPolicy(delays=(10.0, 20.0, 30.0), then_every=HOUR, give_up_after=HOUR)
    store.reschedule(now=row.due_at + 1)
    assert store.get(message).due_at == row.due_at + 20.0
    # Given up on again: the reason counts this run's attempts, and says all.
    at = store.get(message).due_at
    store.claim("a", now=at, lease=60, message=message)
    store.record_result(message, "a", result(("bob@example.org", 451)), now=at)
    at = store.get(message).due_at
    store.claim("a", now=at + HOUR, lease=60, message=message)
    state = store.record_result(message, "a", result(("bob@example.org", 451)), now=at + HOUR)
    assert state is State.FAILED
    reason = store.get(message).last_error or ""
    assert reason.startswith(
        f"Mailer gave up after 4 attempts since it was retried ({made + 4} in all) over "
    ), reason


def test_sending_everything_now_keeps_the_order_they_were_queued(
    store: OutboxStore, tmp_path: Path
) -> None:
    first, second, third, fourth = (enqueue(store, tmp_path, due=T0) for _ in range(4))
    # The first three are deferred, the earliest-queued one until the latest time.
    for message, retry_at in ((first, T0 + 900), (second, T0 + 600), (third, T0 + 300)):
        store.claim("a", now=T0, lease=60, message=message)
        store.record_result(message, "a", result(("bob@example.org", 451)), now=T0)
        assert store.get(message).state is State.DEFERRED
        with store._write() as db:  # the policy's schedule, made explicit
            db.execute("UPDATE messages SET due_at = ? WHERE id = ?", (retry_at, message))

    assert store.all_due_now([State.DEFERRED, State.QUEUED], now=T0 + 60) == [
        first, second, third, fourth,
    ]  # fmt: skip
    # The one queued last and due already does not go first either.
    assert store.get(fourth).due_at == T0
    claimed = store.claim("a", now=T0 + 60, lease=60, limit=4)
    assert [row.id for row in claimed] == [first, second, third, fourth]


def test_the_windows_send_queued_now_keeps_an_older_queued_message_first(
    store: OutboxStore, tmp_path: Path
) -> None:
    """Deferred messages made due now, one long overdue and one due later, do
    not overtake an older message that is queued (what the window selects)."""
    older = enqueue(store, tmp_path, due=T0 - 600)
    overdue, later = enqueue(store, tmp_path, due=T0), enqueue(store, tmp_path, due=T0)
    for message, retry_at in ((overdue, T0 - 86_400), (later, T0 + 3600)):
        store.claim("a", now=T0, lease=60, message=message)
        store.record_result(message, "a", result(("bob@example.org", 451)), now=T0)
        with store._write() as db:
            db.execute("UPDATE messages SET due_at = ? WHERE id = ?", (retry_at, message))
    store.all_due_now((State.DEFERRED, State.QUEUED), now=T0)
    claimed = store.claim("a", now=T0, lease=60, limit=3)
    assert [row.id for row in claimed] == [older, overdue, later]


def test_send_queued_now_takes_a_scheduled_message_whose_time_has_come_in_its_turn(
    store: OutboxStore, tmp_path: Path
) -> None:
    """A message whose undo window is over but which no runner picked up yet
    may go now: it joins the others in its turn instead of going first. One
    still in its undo window (or set to go later) keeps its time."""
    deferred = enqueue(store, tmp_path, due=T0)
    store.claim("a", now=T0, lease=60, message=deferred)
    store.record_result(deferred, "a", result(("bob@example.org", 451)), now=T0)
    with store._write() as db:
        db.execute("UPDATE messages SET due_at = ? WHERE id = ?", (T0 + 900, deferred))
    window_over = enqueue(store, tmp_path, due=T0 + 10)  # scheduled at T0, due at T0 + 10
    still_waiting = enqueue(store, tmp_path, due=T0 + 40)
    assert store.get(window_over).state is State.SCHEDULED

    assert store.all_due_now((State.DEFERRED, State.QUEUED), now=T0 + 20) == [
        deferred, window_over,
    ]  # fmt: skip
    claimed = store.claim("a", now=T0 + 20, lease=60, limit=3)
    assert [row.id for row in claimed] == [deferred, window_over]
    assert store.get(still_waiting).state is State.SCHEDULED
    assert store.get(still_waiting).due_at == T0 + 40


def test_retry_now_keeps_the_place_of_a_message_due_already(
    store: OutboxStore, tmp_path: Path
) -> None:
    earlier, later = enqueue(store, tmp_path, due=T0), enqueue(store, tmp_path, due=T0 + 10)
    store.retry_now(later, now=T0 + 20)
    store.retry_now(earlier, now=T0 + 30)
    assert [row.id for row in store.claim("a", now=T0 + 30, lease=60, limit=2)] == [
        earlier, later,
    ]  # fmt: skip


def test_missing_spool_file_is_listed(store: OutboxStore, tmp_path: Path) -> None:
    message = enqueue(store, tmp_path)
    store.get(message).spool_path.unlink()
    assert [row.id for row in store.messages()] == [message]


def test_corrupt_database_is_named_and_kept(tmp_path: Path) -> None:
    database = tmp_path / "outbox.sqlite3"
    database.write_bytes(b"this is not a database" * 100)
    with pytest.raises(OutboxError) as info:
        OutboxStore(database, tmp_path / "spool")
    assert str(database) in str(info.value) and "Nothing was deleted" in str(info.value)
    assert database.read_bytes().startswith(b"this is not")


def test_a_damaged_page_lists_what_can_still_be_read_and_says_so(tmp_path: Path) -> None:
    """Bytes overwritten inside the messages table: the listing gives what
    still reads, at once (a damaged page had made it count down from a number
    in the quintillions), and says the file is damaged."""
    database = tmp_path / "data" / "outbox.sqlite3"
    store = OutboxStore(database, tmp_path / "data" / "spool")
    messages = [enqueue(store, tmp_path) for _ in range(6)]
    store.close()
    with contextlib.closing(sqlite3.connect(database)) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # everything in the file itself
        assert db.execute("PRAGMA page_size").fetchone() == (4096,)
    with open(database, "r+b") as file:
        file.seek(4096 + 200)  # into page 2, the messages table
        file.write(b"\xaa" * 3000)
    listed: list[list[int]] = []
    damaged = OutboxStore(database, tmp_path / "data" / "spool")

    def list_them() -> None:
        listed.append([row.id for row in damaged.messages()])

    lister = threading.Thread(target=list_them, daemon=True)
    lister.start()
    lister.join(timeout=30)  # it used to spin for good
    assert listed, "the listing never ended"
    (ids,) = listed
    assert ids and set(ids) <= set(messages) and ids == sorted(ids, reverse=True)
    assert damaged.damaged is not None and str(database) in damaged.damaged


def test_a_damaged_index_still_lists_every_message_with_its_recipients(tmp_path: Path) -> None:
    """The page of the index that finds a message's recipients is overwritten:
    the recipients are still in their table, so every message is listed with
    them (it used to list none: "The outbox is empty.")."""
    database = tmp_path / "data" / "outbox.sqlite3"
    store = OutboxStore(database, tmp_path / "data" / "spool")
    messages = [enqueue(store, tmp_path, f"r{n}@x.org", f"s{n}@x.org") for n in range(6)]
    store.close()
    with contextlib.closing(sqlite3.connect(database)) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        pages = [
            page
            for (page,) in db.execute(
                "SELECT rootpage FROM sqlite_master WHERE type = 'index' "
                "AND tbl_name = 'recipients'"
            )
        ]
    assert pages
    with open(database, "r+b") as file:
        for page in pages:
            file.seek(4096 * (page - 1))
            file.write(b"\xde\xad" * 2048)
    damaged = OutboxStore(database, tmp_path / "data" / "spool")
    try:
        rows = damaged.messages()
        assert damaged.damaged is not None and str(database) in damaged.damaged
        assert [row.id for row in rows] == sorted(messages, reverse=True)
        for n, row in enumerate(reversed(rows)):
            assert [r.address for r in row.recipients] == [f"r{n}@x.org", f"s{n}@x.org"]
    finally:
        damaged.close()
    again = OutboxStore(database, tmp_path / "data" / "spool")  # as `outbox show` opens it
    try:
        row, _ = again.details(messages[2])
        assert [r.address for r in row.recipients] == ["r2@x.org", "s2@x.org"]
    finally:
        again.close()


def test_an_outbox_opens_and_lists_while_another_mailer_is_writing(tmp_path: Path) -> None:
    """The window opens the outbox on its GUI thread: that must not wait for a
    write another Mailer (a command line flushing) holds, up to SQLite's 30 s."""
    database = tmp_path / "data" / "outbox.sqlite3"
    first = OutboxStore(database, tmp_path / "data" / "spool")
    message = enqueue(first, tmp_path)
    first.close()
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sqlite3, sys; db = sqlite3.connect(sys.argv[1], isolation_level=None); "
         "db.execute('BEGIN IMMEDIATE'); print('holding', flush=True); sys.stdin.read()",
         str(database)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "holding\n"
        listed: list[list[int]] = []

        def open_and_list() -> None:
            store = OutboxStore(database, tmp_path / "data" / "spool")
            listed.append([row.id for row in store.messages()])
            store.close()

        opener = threading.Thread(target=open_and_list, daemon=True)
        opener.start()
        opener.join(timeout=10)  # far below the 30 s it would wait on the lock
        assert listed == [[message]]
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=10)


def in_database_file(database: Path, message: int) -> bool:
    """Whether ``message`` is in the database file itself, the log left aside:
    whether a checkpoint copied it there."""
    db = sqlite3.connect(f"{database.as_uri()}?immutable=1", uri=True)
    try:
        return db.execute("SELECT count(*) FROM messages WHERE id = ?", (message,)).fetchone() == (
            1,
        )
    except sqlite3.DatabaseError:
        return False  # read while a page was being copied: look again
    finally:
        db.close()


def test_the_log_is_copied_into_the_database_file_while_the_outbox_is_open(
    store: OutboxStore, tmp_path: Path
) -> None:
    """SQLite would copy its log only once it holds 1,000 pages, and in the
    connection that commits (the sending thread); the store's own thread
    copies it after a commit, and the connections leave it to that thread."""
    message = enqueue(store, tmp_path)
    deadline = time.monotonic() + 10
    while not in_database_file(store.database, message):
        assert time.monotonic() < deadline, "the commit never reached the database file"
        time.sleep(0.02)
    assert store.get(message).state is State.QUEUED


def test_the_log_stays_short_under_changes_that_never_pause(store: OutboxStore) -> None:
    """A change may land while the checkpoint thread copies, and SQLite starts
    its log over only at a write that finds all of it copied: under changes
    that never pause, SQLite's own checkpoint at BACKSTOP pages (run by the
    committing connection, with the store's write lock held) keeps the log
    from growing without end."""
    reason = "x" * 30_000  # about 9 pages of log a commit
    for number in range(1500):
        with store._write() as db:
            db.execute(
                "INSERT OR REPLACE INTO accounts (account, paused, reason, since) "
                "VALUES ('work', NULL, ?, ?)",
                (reason, number),
            )
    log = store.database.with_name(store.database.name + "-wal")
    pages = (log.stat().st_size - 32) // (4096 + 24)  # a header, then frames
    assert pages <= _Checkpointer.BACKSTOP + 20


def test_the_checkpoint_thread_ends_when_idle_or_closed(
    store: OutboxStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def thread() -> threading.Thread | None:
        return store._checkpointer._thread

    enqueue(store, tmp_path)
    running = thread()
    assert running is not None
    store.close()
    assert not running.is_alive() and thread() is None
    monkeypatch.setattr(store._checkpointer, "IDLE", 0.1)
    message = enqueue(store, tmp_path)  # a commit after close starts it again
    running = thread()
    assert running is not None
    running.join(timeout=10)  # ends by itself after IDLE without a commit
    assert not running.is_alive() and thread() is None
    assert in_database_file(store.database, message)


def test_a_change_stands_when_no_checkpoint_thread_can_start(
    store: OutboxStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Starting the thread comes after the commit: if it fails (no new threads
    while the interpreter ends, or none left), the message queued stays queued,
    its file with it; and once the process is ending, no change starts one."""

    def refuse(thread: threading.Thread) -> None:
        raise RuntimeError("can't create new thread at interpreter shutdown")

    with monkeypatch.context() as patch:
        patch.setattr(threading.Thread, "start", refuse)
        message = enqueue(store, tmp_path)
    row = store.get(message)
    assert row.state is State.QUEUED and row.spool_path.exists()
    store._checkpointer.stop(final=True)  # as at the end of the process
    enqueue(store, tmp_path)
    assert store._checkpointer._thread is None


def test_no_log_is_left_beside_the_outbox_when_the_process_ends(tmp_path: Path) -> None:
    """SQLite removes its log when the last connection to the database closes.
    A process that ends while the checkpoint thread runs ends that thread, and
    closes its connection, first."""
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from mailer_gui.message.addresses import parse_address\n"
        "from mailer_gui.message.build import build_message\n"
        "from mailer_gui.message.draft import Draft\n"
        "from mailer_gui.outbox.store import OutboxStore\n"
        "folder = Path(sys.argv[1])\n"
        "store = OutboxStore(folder / 'outbox.sqlite3', folder / 'spool')\n"
        "draft = Draft(sender=parse_address('ann@example.org'),\n"
        "              to=(parse_address('bob@example.org'),), subject='s', body='b')\n"
        "store.enqueue(build_message(draft, spool_dir=folder), account='work', subject='s')\n"
        "assert store._checkpointer._thread is not None, 'the thread runs as the process ends'\n"
    )
    subprocess.run([sys.executable, "-c", script, str(tmp_path)], check=True, timeout=60)
    assert not (tmp_path / "outbox.sqlite3-wal").exists()
    store = OutboxStore(tmp_path / "outbox.sqlite3", tmp_path / "spool")
    assert [row.state for row in store.messages()] == [State.QUEUED]  # kept, in the file
    store.close()


def test_newer_schema_refused(tmp_path: Path) -> None:
    database = tmp_path / "outbox.sqlite3"
    OutboxStore(database, tmp_path / "spool").close()
    with sqlite3.connect(database) as db:
        db.execute("PRAGMA user_version = 99")
    with pytest.raises(OutboxError, match="newer Mailer"):
        OutboxStore(database, tmp_path / "spool")


def test_a_migration_that_fails_is_a_clear_error_and_changes_nothing(tmp_path: Path) -> None:
    """A migration statement SQLite refuses (here an index that is there already,
    as in a file edited by hand) names the file, and the version stays."""
    database = tmp_path / "outbox.sqlite3"
    OutboxStore(database, tmp_path / "spool").close()
    with sqlite3.connect(database) as db:
        db.execute("PRAGMA user_version = 1")  # version 2 makes messages_waiting
    with pytest.raises(OutboxError) as info:
        OutboxStore(database, tmp_path / "spool")
    assert str(database) in str(info.value)
    assert "Nothing was deleted" in str(info.value)
    with sqlite3.connect(database) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == 1


def test_undo_window() -> None:
    from mailer_gui.outbox.policy import undo_deadline

    assert undo_deadline(T0) == T0 + 10
    assert undo_deadline(T0, 0) == T0
    for bad in (-1, 61):
        with pytest.raises(ValueError, match="0 to 60"):
            undo_deadline(T0, bad)


def test_undo_is_a_cancel_before_anything_left(store: OutboxStore, tmp_path: Path) -> None:
    from mailer_gui.outbox.policy import undo_deadline

    message = enqueue(store, tmp_path, due=undo_deadline(T0))
    assert store.get(message).state is State.SCHEDULED
    assert store.claim_next("a", now=T0 + 9, lease=60) is None
    assert store.cancel(message) is State.CANCELLED
    assert store.claim_next("a", now=T0 + 11, lease=60) is None


def test_an_undone_message_is_withdrawn_and_nothing_else_is(
    store: OutboxStore, tmp_path: Path
) -> None:
    """Undo send, once the message is back in Drafts: its row and file go. A
    message that was tried, or is not cancelled, stays with its history."""
    tried, waiting = enqueue(store, tmp_path), enqueue(store, tmp_path)
    store.claim_next("a", now=T0, lease=60)  # `tried`: the oldest
    store.release(tried, "a", now=T0)
    assert store.cancel(tried) is State.CANCELLED
    assert not store.withdraw(tried)  # it had an attempt: its history stays
    assert store.get(tried).state is State.CANCELLED

    undone = enqueue(store, tmp_path)
    spool = store.get(undone).spool_path
    assert store.cancel(undone) is State.CANCELLED
    assert store.withdraw(undone)
    with pytest.raises(NotFound):
        store.get(undone)
    assert not spool.exists()
    assert not store.withdraw(undone)
    assert not store.withdraw(waiting)  # queued: not withdrawn
    assert {m.id: m.state for m in store.messages()} == {
        tried: State.CANCELLED,
        waiting: State.QUEUED,
    }


def test_half_built_files_of_a_killed_mailer_are_removed_once_stale(
    store: OutboxStore, tmp_path: Path
) -> None:
    """A Mailer killed (SIGKILL) while building a message leaves its msg-*.eml
    in the spool. Once nothing wrote to it for an hour it is removed; one being
    built now, and the messages the outbox holds, are left alone."""
    import os

    message = enqueue(store, tmp_path)
    held = store.get(message).spool_path
    stale = store.spool_dir / "msg-killed.eml"
    building = store.spool_dir / "msg-building.eml"
    for path in (stale, building):
        path.write_bytes(b"half a message")
    two_hours_ago = time.time() - 7200
    os.utime(stale, (two_hours_ago, two_hours_ago))
    os.utime(held, (two_hours_ago, two_hours_ago))
    assert store.remove_stale_builds() == [stale]
    assert not stale.exists() and building.exists() and held.exists()
    assert store.get(message).state is State.QUEUED


def test_a_runner_that_lost_its_lease_may_not_send_the_dot(
    store: OutboxStore, tmp_path: Path
) -> None:
    message = enqueue(store, tmp_path)
    store.claim_next("slow", now=T0, lease=10)
    # "slow" stalls past its lease; another runner recovers and takes the message.
    assert dict(store.recover(now=T0 + 11, keep_owner="fast")) == {message: State.QUEUED}
    assert store.claim_next("fast", now=T0 + 11, lease=10) is not None
    assert store.mark_data_end(message, "slow") is False  # "slow" must stop before the dot
    assert store.mark_data_end(message, "fast") is True
    # A runner never takes back its own message, even when its lease looks expired.
    assert store.recover(now=T0 + 99, keep_owner="fast") == []
    (first, second) = store.attempts(message)
    assert first.outcome == "interrupted" and second.outcome is None
