"""The delivery loop against real servers: aiosmtpd fault handlers and smtp-sink."""

from __future__ import annotations

import contextlib
import os
import re
import threading
import time
from pathlib import Path

import pytest

from mailer_gui.accounts.model import Account
from mailer_gui.message.addresses import parse_address, parse_address_list
from mailer_gui.message.build import build_message
from mailer_gui.message.draft import Draft
from mailer_gui.outbox.runner import Event, Progress, Runner, StateChanged, TranscriptLine
from mailer_gui.outbox.store import OutboxStore, State
from mailer_gui.sizes import human_size
from mailer_gui.smtp.auth import Credentials
from mailer_gui.smtp.replies import Reply
from mailer_gui.smtp.session import (
    CHUNK_SIZE,
    MessageResult,
    RecipientResult,
    RecipientStatus,
    Session,
)
from mailer_gui.smtp.settings import AuthMethod, Security


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def outbox(tmp_path: Path) -> OutboxStore:
    return OutboxStore(tmp_path / "outbox.sqlite3", tmp_path / "spool")


def account_for(server, **kwargs) -> Account:
    values = {
        "name": "work",
        "email": "ann@example.org",
        "host": "localhost",
        "port": server.port,
        "security": Security.NONE,
        "auth": AuthMethod.NONE,
    }
    values.update(kwargs)
    return Account(**values)  # type: ignore[arg-type]


def queue(
    outbox: OutboxStore,
    tmp_path: Path,
    *rcpts: str,
    subject: str = "hi",
    text: str = "Hello there.",
    **kw,
) -> int:
    draft = Draft(
        sender=parse_address("Ann <ann@example.org>"),
        to=tuple(parse_address_list(list(rcpts or ("bob@example.org",)))),
        subject=subject,
        body=text,
    )
    built = build_message(draft, spool_dir=tmp_path)
    return outbox.enqueue(built, account="work", subject=subject, **kw)


def runner_for(outbox: OutboxStore, account: Account, events=None, **kwargs) -> Runner:
    return Runner(
        outbox,
        lambda name: account,
        credentials=lambda a: None,
        on_event=(events.append if events is not None else None),
        **kwargs,
    )


def test_4xx_then_success(aiosmtpd_factory, outbox, tmp_path) -> None:
    tries: dict[str, int] = {}

    def greylist(address: str, options: list[str]) -> str | None:
        tries[address] = tries.get(address, 0) + 1
        return "451 4.7.1 Greylisted, try again in a minute" if tries[address] == 1 else None

    server = aiosmtpd_factory(on_rcpt=greylist)
    message = queue(outbox, tmp_path)
    clock = Clock()
    runner = runner_for(outbox, account_for(server), clock=clock)
    runner.deliver_now()
    row = outbox.get(message)
    assert row.state is State.DEFERRED and row.due_at == pytest.approx(clock.now + 60)
    assert "Greylisted" in (row.recipients[0].text or "")
    runner.deliver_now()  # not due yet: nothing happens
    assert server.messages == []
    clock.now += 61
    runner.deliver_now()
    assert outbox.get(message).state is State.SENT
    assert len(server.wait_for_messages(1)) == 1
    assert [a.outcome for a in outbox.attempts(message)] == ["deferred", "sent"]


def test_5xx_for_one_of_three(aiosmtpd_factory, outbox, tmp_path) -> None:
    server = aiosmtpd_factory(rcpt_replies={"gone@example.org": "550 5.1.1 No such user"})
    message = queue(outbox, tmp_path, "a@example.org, gone@example.org, c@example.org")
    runner_for(outbox, account_for(server)).deliver_now()
    row = outbox.get(message)
    assert row.state is State.SENT
    assert [(r.address, r.status, r.code) for r in row.recipients] == [
        ("a@example.org", "accepted", 250),
        ("gone@example.org", "rejected", 550),
        ("c@example.org", "accepted", 250),
    ]
    assert server.wait_for_messages(1)[0].rcpt_tos == ["a@example.org", "c@example.org"]


def test_452_after_n_recipients(aiosmtpd_factory, outbox, tmp_path) -> None:
    count = {"n": 0}

    def on_mail(address: str, options: list[str]) -> None:
        count["n"] = 0

    def on_rcpt(address: str, options: list[str]) -> str | None:
        count["n"] += 1
        return "452 4.5.3 Too many recipients" if count["n"] > 2 else None

    server = aiosmtpd_factory(on_mail=on_mail, on_rcpt=on_rcpt)
    message = queue(outbox, tmp_path, *(f"r{n}@example.org" for n in range(5)))
    runner_for(outbox, account_for(server)).deliver_now()
    assert outbox.get(message).state is State.SENT
    assert [m.rcpt_tos for m in server.wait_for_messages(3)] == [
        ["r0@example.org", "r1@example.org"],
        ["r2@example.org", "r3@example.org"],
        ["r4@example.org"],
    ]


@pytest.mark.parametrize(
    ("limit", "stated"),
    [
        (33_554_432, "the server's stated limit is 32.0 MB (SIZE 33554432)"),
        (None, "the server announced no limit before (SIZE)"),
    ],
)
def test_a_message_refused_as_too_big_fails_with_its_size_and_the_servers_limit(
    aiosmtpd_factory, outbox, tmp_path, limit, stated
) -> None:
    server = aiosmtpd_factory(
        data_size_limit=limit, on_data=lambda m: "552 5.3.4 Message size exceeds fixed limit"
    )
    message = queue(outbox, tmp_path, "a@example.org", "b@example.org")
    events: list[Event] = []
    runner_for(outbox, account_for(server), events).deliver_now()
    row = outbox.get(message)
    assert row.state is State.FAILED
    reason = row.last_error or ""
    assert f"it is {human_size(row.size)} ({row.size:,} bytes), and {stated}" in reason
    assert "It said: 552 5.3.4 Message size exceeds fixed limit" in reason
    # The window is told the same at once; each recipient keeps the server's words.
    assert [e.detail for e in events if isinstance(e, StateChanged) and e.message == message][
        -1
    ] == reason
    assert {r.text for r in row.recipients} == {"Message size exceeds fixed limit"}


def test_refused_at_mail_for_its_size_it_fails_as_too_big(aiosmtpd_factory, outbox, tmp_path):
    server = aiosmtpd_factory(
        on_mail=lambda address, options: "552 message size exceeds fixed maximum message size"
    )
    message = queue(outbox, tmp_path, "a@example.org")
    runner_for(outbox, account_for(server)).deliver_now()
    row = outbox.get(message)
    assert row.state is State.FAILED
    assert f"too big: it is {human_size(row.size)}" in (row.last_error or "")
    assert "It said: 552 message size exceeds fixed maximum message size" in (row.last_error or "")


def test_a_message_that_went_to_someone_is_not_called_too_big(aiosmtpd_factory, outbox, tmp_path):
    server = aiosmtpd_factory(
        rcpt_replies={"b@example.org": "552 5.2.3 Message exceeds this mailbox's limit"}
    )
    message = queue(outbox, tmp_path, "a@example.org", "b@example.org")
    events: list[Event] = []
    runner_for(outbox, account_for(server), events).deliver_now()
    row = outbox.get(message)
    assert row.state is State.SENT
    told = [e.detail for e in events if isinstance(e, StateChanged) and e.message == message]
    for text in (row.last_error or "", told[-1] or ""):
        assert "too big" not in text
        assert "b@example.org: Message exceeds this mailbox's limit" in text


def test_a_full_mailbox_is_not_taken_for_a_message_too_big(
    aiosmtpd_factory, outbox, tmp_path
) -> None:
    full = "552 5.2.2 The recipient's inbox is out of storage space"
    server = aiosmtpd_factory(rcpt_replies={"b@example.org": full})
    message = queue(outbox, tmp_path, "a@example.org", "b@example.org")
    runner_for(outbox, account_for(server)).deliver_now()
    row = outbox.get(message)
    assert row.state is State.SENT  # a@ took it; b@ is refused
    assert [r.status for r in row.recipients] == ["accepted", "rejected"]
    assert "too big" not in (row.last_error or "")

    # Nor when it is the reply to the final ".".
    server = aiosmtpd_factory(on_data=lambda m: full)
    message = queue(outbox, tmp_path, "c@example.org")
    runner_for(outbox, account_for(server)).deliver_now()
    row = outbox.get(message)
    assert row.state is State.FAILED
    assert "too big" not in (row.last_error or "") and "storage space" in (row.last_error or "")


@pytest.mark.parametrize(
    ("flags", "state", "words"),
    [
        (("-Q", "RCPT"), State.DEFERRED, "421"),  # 421 after RCPT: all unconfirmed deferred
        (("-q", "DATA"), State.DEFERRED, "closed the connection"),  # dropped before the dot
        (("-q", "."), State.UNCERTAIN, "closed the connection"),  # dropped after the dot
    ],
)
def test_connection_faults(smtp_sink_factory, outbox, tmp_path, flags, state, words) -> None:
    sink = smtp_sink_factory(*flags)
    message = queue(outbox, tmp_path, "a@example.org", "b@example.org")
    other = queue(outbox, tmp_path, "c@example.org")
    events: list[Event] = []
    runner_for(outbox, account_for(sink), events).deliver_now()
    row = outbox.get(message)
    assert row.state is state
    assert words in (row.last_error or "")
    if state is State.UNCERTAIN:
        # Nothing is retried until the person decides: no word says otherwise,
        # neither what is kept nor what the window is told at once.
        (told,) = [
            e.detail
            for e in events
            if isinstance(e, StateChanged) and e.message == message and e.state is state
        ]
        for text in (told or "", row.last_error or "", *(r.text or "" for r in row.recipients)):
            assert "may have arrived" in text and "try again" not in text
    # The other message of the account is not blocked by this one's failure.
    assert outbox.get(other).state in (State.DEFERRED, State.QUEUED, State.UNCERTAIN, State.SENT)


def test_bad_password_pauses_the_account(aiosmtpd_factory, trust_test_ca, outbox, tmp_path) -> None:
    server = aiosmtpd_factory(tls="implicit", users={"ann": "right"}, auth_required=True)
    account = account_for(server, security=Security.TLS, auth=AuthMethod.PLAIN, username="ann")
    password = {"value": "wrong"}
    first = queue(outbox, tmp_path)
    second = queue(outbox, tmp_path)
    runner = Runner(
        outbox,
        lambda name: account,
        credentials=lambda a: lambda: Credentials("ann", password["value"]),
    )
    runner.deliver_now()
    assert outbox.paused_accounts()["work"][0] == "needs password"
    assert {outbox.get(first).state, outbox.get(second).state} == {State.QUEUED}
    attempts = outbox.attempts(first) + outbox.attempts(second)
    assert len([a for a in attempts if a.outcome == "pause-account"]) == 1  # tried once only
    runner.deliver_now()  # still paused: no new attempt
    assert len(outbox.attempts(first) + outbox.attempts(second)) == len(attempts)
    password["value"] = "right"
    outbox.resume_account("work")
    runner.deliver_now()
    assert {outbox.get(first).state, outbox.get(second).state} == {State.SENT}


@pytest.mark.parametrize(
    ("auth", "paused_as"),
    [(AuthMethod.NONE, "needs attention"), (AuthMethod.PLAIN, "needs password")],
)
def test_a_server_that_wants_a_login_pauses_the_account_and_fails_nothing(
    aiosmtpd_factory, trust_test_ca, outbox, tmp_path, auth, paused_as
) -> None:
    """530 (RFC 4954: authentication required) to every recipient is the
    account's problem, not theirs: the messages wait, as queued, for the person
    to fix the account (a login, or its password), instead of all failing."""
    server = aiosmtpd_factory(tls="implicit", users={"ann": "right"}, auth_required=True)
    account = account_for(server, security=Security.TLS, auth=auth, username="ann")
    first = queue(outbox, tmp_path, "a@example.org, b@example.org")
    second = queue(outbox, tmp_path)
    runner = runner_for(outbox, account)  # no password to give
    runner.deliver_now()
    state, reason = outbox.paused_accounts()["work"]
    assert state == paused_as
    assert "530 5.7.0" in reason and "requires sign-in" in reason
    for message in (first, second):
        row = outbox.get(message)
        assert row.state is State.QUEUED
        assert row.attempts == 0  # the account's fault: no attempt counted against it
        assert {r.status for r in row.recipients} == {"pending"}
    assert "530" in str(runner.errors[first])
    outcomes = [a.outcome for a in outbox.attempts(first) + outbox.attempts(second)]
    assert outcomes.count("pause-account") == 1  # tried once, then the account waits
    assert set(outcomes) <= {"pause-account", "interrupted"}  # claimed, given back
    assert server.messages == []


def test_a_server_that_wants_starttls_first_needs_attention_not_a_password(
    aiosmtpd_factory, trust_test_ca, outbox, tmp_path
) -> None:
    """RFC 3207's 530 to MAIL: a password would not help, the account's
    security setting would. Asking for the password again and again is a loop."""
    server = aiosmtpd_factory(tls="starttls", require_starttls=True, users={"ann": "right"})
    account = account_for(server, security=Security.NONE, auth=AuthMethod.AUTO, username="ann")
    message = queue(outbox, tmp_path)
    Runner(
        outbox, lambda name: account, credentials=lambda a: lambda: Credentials("ann", "right")
    ).deliver_now()
    state, reason = outbox.paused_accounts()["work"]
    assert state == "needs attention"
    assert "STARTTLS" in reason
    assert outbox.get(message).state is State.QUEUED
    assert server.messages == []


def test_a_530_for_one_recipient_is_that_recipients_not_the_accounts(
    aiosmtpd_factory, outbox, tmp_path
) -> None:
    """Relaying to one address needs a login: that recipient is refused, the
    others get the message, and the account goes on with its other messages."""
    server = aiosmtpd_factory(
        rcpt_replies={"ext@other.example": "530 5.7.1 Relaying requires authentication"}
    )
    mixed = queue(outbox, tmp_path, "ext@other.example, local@example.org")
    only_external = queue(outbox, tmp_path, "ext@other.example")
    local = queue(outbox, tmp_path, "local@example.org")
    runner_for(outbox, account_for(server)).deliver_now()
    assert outbox.paused_accounts() == {}
    assert [(r.address, r.status) for r in outbox.get(mixed).recipients] == [
        ("ext@other.example", "rejected"),
        ("local@example.org", "accepted"),
    ]
    assert outbox.get(only_external).state is State.FAILED
    assert outbox.get(local).state is State.SENT
    assert len(server.wait_for_messages(2)) == 2


def test_one_connection_for_many_messages(aiosmtpd_factory, outbox, tmp_path) -> None:
    server = aiosmtpd_factory()
    ids = [queue(outbox, tmp_path, f"r{n}@example.org") for n in range(5)]
    runner_for(outbox, account_for(server), per_connection=2).deliver_now()
    assert {outbox.get(i).state for i in ids} == {State.SENT}
    transcripts = [outbox.attempts(i)[0].transcript for i in ids]
    connects = [t.count("* connecting to") for t in transcripts]
    assert connects == [1, 0, 1, 0, 1]  # reused, and renewed every 2 messages
    assert len(server.wait_for_messages(5)) == 5


def test_missing_spool_file_fails_that_message_only(aiosmtpd_factory, outbox, tmp_path) -> None:
    server = aiosmtpd_factory()
    broken = queue(outbox, tmp_path)
    fine = queue(outbox, tmp_path)
    outbox.get(broken).spool_path.unlink()
    runner_for(outbox, account_for(server)).deliver_now()
    assert outbox.get(broken).state is State.FAILED
    assert "is missing" in (outbox.get(broken).last_error or "")
    assert outbox.get(fine).state is State.SENT


def open_spool_files(outbox: OutboxStore) -> list[str]:
    """The files of the spool folder this process has open (Linux: /proc/self/fd)."""
    folder = str(outbox.spool_dir.resolve())
    found = []
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/self/fd/{fd}")
            if target.startswith(folder):
                found.append(target)
    return found


needs_proc = pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc")


@needs_proc
@pytest.mark.parametrize(
    ("lines", "files_open"),
    [
        (1, 0),  # read whole into memory: no message file stays open
        (2000, 2),  # larger than one read: the message going out and the next one
    ],
)
def test_with_pipelining_each_next_message_is_made_ready_while_the_server_works(
    smtp_sink_factory, outbox, tmp_path, monkeypatch, lines, files_open
) -> None:
    prepared: list[str] = []
    planned: list[bool] = []
    after: list[tuple[str, ...] | None] = []
    open_then: list[int] = []
    real_prepare = Session.prepare_next

    def prepare_next(session: Session, body, plan=None, following=None) -> None:
        planned.append(plan is not None)
        after.append(following[0].recipients if following else None)
        start = body.tell()
        head = body.read(4096)
        body.seek(start)
        subject = re.search(rb"Subject: (number \d)", head)
        assert subject is not None
        prepared.append(subject.group(1).decode())
        open_then.append(len(open_spool_files(outbox)))
        real_prepare(session, body, plan, following)

    monkeypatch.setattr(Session, "prepare_next", prepare_next)
    sink = smtp_sink_factory(dump=True)
    text = "\n".join(f"Line {n} of a report that goes on for a while." for n in range(lines))
    subjects = [f"number {n}" for n in range(6)]
    ids = [
        queue(outbox, tmp_path, f"r{n}@example.org", subject=subject, text=text)
        for n, subject in enumerate(subjects)
    ]
    assert (outbox.get(ids[0]).size > CHUNK_SIZE) == (lines > 1)
    runner_for(outbox, account_for(sink), per_connection=4).deliver_now()
    assert {outbox.get(i).state for i in ids} == {State.SENT}
    # Each message after the first on a connection was opened and read while
    # the server took the one before; the 5th starts a new connection.
    assert prepared == [subjects[1], subjects[2], subjects[3], subjects[5]]
    assert open_then == [files_open] * 4
    # A small message goes with the DATA plan made when it was queued.
    assert planned == [lines == 1] * 4
    # The commands that go with a prepared message's final "." are built with
    # it, when another message follows it on that connection.
    assert after == [("r2@example.org",), ("r3@example.org",), None, None]
    dump = sink.read_dump()
    for i in ids:
        assert dump.count(outbox.get(i).message_id.encode()) == 1
    assert open_spool_files(outbox) == []


def test_a_message_read_ahead_goes_whole_on_a_new_connection(
    aiosmtpd_factory, outbox, tmp_path
) -> None:
    """The server ends the connection with a 421 to a final ".", after the next
    message's commands went with it and its start was read ahead: the next
    message goes on a new connection, from its first byte. The one refused
    so, after another went through (the server's limit per connection, most
    often), goes again at once on a new connection: no deferral, no counted
    attempt, its 421 kept in its history."""
    from tests.smtp.test_session_ahead import pipelining

    calls = {"data": 0}

    def on_data(message) -> str | None:
        calls["data"] += 1
        return "421 4.3.2 Service shutting down" if calls["data"] == 2 else None

    server = pipelining(aiosmtpd_factory(on_data=on_data))
    first = queue(outbox, tmp_path, "r1@example.org", subject="one")
    second = queue(outbox, tmp_path, "r2@example.org", subject="two")
    third = queue(outbox, tmp_path, "r3@example.org", subject="three")
    runner_for(outbox, account_for(server)).deliver_now()
    assert {outbox.get(m).state for m in (first, second, third)} == {State.SENT}
    (received,) = [m for m in server.messages if b"Subject: three" in m.content]
    spool = outbox.get(third).spool_path.read_bytes()
    assert received.content.replace(b"\r\n", b"\n") == spool.replace(b"\r\n", b"\n")
    transcript = outbox.attempts(third)[0].transcript
    assert transcript.count("* connecting to") == 1  # its own, new connection
    closed, sent = outbox.attempts(second)
    assert (closed.outcome, sent.outcome) == ("interrupted", "sent")
    assert "421 4.3.2 Service shutting down" in closed.transcript
    assert "sends it again at once on a new connection" in (closed.error or "")
    assert "try again later" not in (closed.error or "")  # it does not wait
    assert outbox.get(second).attempts == 1


@pytest.mark.parametrize("where", ["MAIL", "."])
def test_a_421_before_any_message_went_through_holds_the_accounts_other_messages(
    aiosmtpd_factory, outbox, tmp_path, where: str
) -> None:
    """A server that closes with 421 before taking anything (busy, or limiting
    the sender), to MAIL or to the end of the message, is not sent one
    connection after another: the account's other messages wait for the
    deferred one's retry time, untried."""
    mails: list[str] = []
    busy_words = "421 4.7.0 Too many connections from your address, try again later"

    def on_mail(address: str, options: list[str]) -> str | None:
        mails.append(address)
        return busy_words if where == "MAIL" else None

    def on_data(message) -> str | None:
        return busy_words if where == "." else None

    server = aiosmtpd_factory(on_mail=on_mail, on_data=on_data)
    first, *others = (queue(outbox, tmp_path, f"r{n}@example.org") for n in range(3))
    runner = runner_for(outbox, account_for(server))
    runner.deliver_now()
    assert len(mails) == 1  # one connection, one MAIL
    row = outbox.get(first)
    assert row.state is State.DEFERRED and "Too many connections" in (row.last_error or "")
    for message in others:
        untried = outbox.get(message)
        assert untried.state is State.QUEUED and untried.attempts == 0
        assert untried.due_at == row.due_at  # they go with its next try, in their order
        assert untried.first_attempt_at is None  # its retry schedule has not begun
        assert outbox.attempts(message) == []  # no "Attempt 1: interrupted" either


@needs_proc
def test_a_missing_spool_file_after_commands_went_ahead_fails_that_message_only(
    smtp_sink_factory, outbox, tmp_path
) -> None:
    sink = smtp_sink_factory(dump=True)  # PIPELINING: the broken one's MAIL goes ahead
    first, broken, last = (queue(outbox, tmp_path, f"r{n}@example.org") for n in range(3))
    outbox.get(broken).spool_path.unlink()
    runner_for(outbox, account_for(sink)).deliver_now()
    assert outbox.get(broken).state is State.FAILED
    assert "is missing" in (outbox.get(broken).last_error or "")
    assert {outbox.get(first).state, outbox.get(last).state} == {State.SENT}
    dump = sink.read_dump()
    assert dump.count(outbox.get(first).message_id.encode()) == 1
    assert dump.count(outbox.get(last).message_id.encode()) == 1
    assert open_spool_files(outbox) == []


def test_background_thread_with_undo_window(aiosmtpd_factory, outbox, tmp_path) -> None:
    server = aiosmtpd_factory()
    events: list[Event] = []
    runner = runner_for(outbox, account_for(server), events)
    runner.start()
    try:
        message = queue(outbox, tmp_path, due_at=time.time() + 0.5)  # the undo window
        assert outbox.get(message).state is State.SCHEDULED
        runner.wake()
        time.sleep(0.2)
        assert outbox.get(message).state is State.SCHEDULED  # not before its time
        deadline = time.monotonic() + 10
        while outbox.get(message).state is not State.SENT and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        runner.stop()
    assert outbox.get(message).state is State.SENT
    states = [e.state for e in events if isinstance(e, StateChanged)]
    assert states == [State.SENDING, State.SENT]
    assert any(isinstance(e, Progress) and e.sent == e.total for e in events)
    assert any(isinstance(e, TranscriptLine) and e.record.text.startswith("250") for e in events)


def test_messages_that_come_due_while_the_server_is_put_off_wait_for_it_in_the_store(
    aiosmtpd_factory, outbox, tmp_path
) -> None:
    """The window's runner, its account held back after a 421: a message queued
    meanwhile, one whose undo window ends meanwhile and a deferred one due
    meanwhile all show (in the store, so in every view) the time they go,
    not "now"; one sent later keeps its time."""
    mails: list[str] = []

    def busy(address: str, options: list[str]) -> str:
        mails.append(address)
        return "421 4.7.0 Too many connections from your address, try again later"

    server = aiosmtpd_factory(on_mail=busy)
    first = queue(outbox, tmp_path, subject="first")
    runner = runner_for(outbox, account_for(server))
    runner.start()
    try:
        deadline = time.monotonic() + 10
        while outbox.get(first).state is not State.DEFERRED and time.monotonic() < deadline:
            time.sleep(0.05)
        until = outbox.get(first).due_at
        assert until > time.time() + 30  # its retry, a minute on
        now = time.time()
        queued = queue(outbox, tmp_path, subject="queued meanwhile")
        undone = queue(outbox, tmp_path, subject="undo window over", due_at=now + 0.3)
        later = queue(outbox, tmp_path, subject="sent later", due_at=now + 3600)
        deferred = queue(outbox, tmp_path, subject="deferred before")
        with outbox._write() as db:  # deferred earlier by another Mailer, due in 5 s
            db.execute(
                "UPDATE messages SET state = 'deferred', due_at = ? WHERE id = ?",
                (now + 5, deferred),
            )
        time.sleep(0.5)  # the undo window ends
        runner.wake()
        deadline = time.monotonic() + 10
        while outbox.get(undone).due_at != until and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [(outbox.get(m).state, outbox.get(m).due_at) for m in (queued, undone)] == [
            (State.QUEUED, until), (State.QUEUED, until),
        ]  # fmt: skip
        assert (outbox.get(deferred).state, outbox.get(deferred).due_at) == (
            State.DEFERRED, until,
        )  # fmt: skip
        assert outbox.get(later).due_at == now + 3600
        assert len(mails) == 1  # no second connection meanwhile
    finally:
        runner.stop()


def test_runner_idles_without_spinning(aiosmtpd_factory, outbox, tmp_path) -> None:
    server = aiosmtpd_factory()
    runner = runner_for(outbox, account_for(server))
    queue(outbox, tmp_path, due_at=time.time() + 3600)  # send later
    started = time.process_time()
    runner.start()
    time.sleep(1.0)
    runner.stop()
    assert time.process_time() - started < 0.3  # asleep, not polling


def test_cancel_while_sending(aiosmtpd_factory, outbox, tmp_path) -> None:
    def slow(address: str, options: list[str]) -> None:
        time.sleep(3)

    server = aiosmtpd_factory(on_rcpt=slow)
    runner = runner_for(outbox, account_for(server))
    message = queue(outbox, tmp_path)
    worker = threading.Thread(target=runner.deliver_now)
    worker.start()
    deadline = time.monotonic() + 5
    while outbox.get(message).state is not State.SENDING and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.2)
    started = time.monotonic()
    assert runner.cancel(message) is State.SENDING
    worker.join(5)
    assert time.monotonic() - started < 2.5  # the connection was closed, not waited out
    row = outbox.get(message)
    assert row.state is State.QUEUED and row.due_at > time.time()  # held, not resent at once
    assert runner.cancel(message) is State.CANCELLED  # and now it can go for good
    assert server.messages == []


def test_pause_holds_new_work_until_resumed(aiosmtpd_factory, outbox, tmp_path) -> None:
    server = aiosmtpd_factory()
    runner = runner_for(outbox, account_for(server))
    runner.pause()
    runner.start()
    try:
        message = queue(outbox, tmp_path)
        runner.wake()
        time.sleep(0.5)  # the scheduler ran at least once meanwhile
        assert runner.paused
        assert outbox.get(message).state is State.QUEUED
        runner.resume()
        deadline = time.monotonic() + 10
        while outbox.get(message).state is not State.SENT and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        runner.stop()
    assert outbox.get(message).state is State.SENT
    assert len(server.messages) == 1


def test_refused_recipients_are_named_in_the_state_change(
    aiosmtpd_factory, outbox, tmp_path
) -> None:
    server = aiosmtpd_factory(
        rcpt_replies={"nobody@example.org": "550 5.1.1 <nobody@example.org>: user unknown"}
    )
    events: list[Event] = []
    runner = runner_for(outbox, account_for(server), events)
    message = queue(outbox, tmp_path, "nobody@example.org")
    runner.deliver_now(message=message)
    (change,) = [e for e in events if isinstance(e, StateChanged) and e.state is State.FAILED]
    assert change.detail is not None
    assert "nobody@example.org" in change.detail and "user unknown" in change.detail


def test_retry_now_goes_at_once_after_the_server_was_unreachable(
    aiosmtpd_factory, outbox, tmp_path
) -> None:
    server = aiosmtpd_factory()
    account = {"now": account_for(server, port=9)}  # the discard port: closed here
    runner = Runner(outbox, lambda name: account["now"], credentials=lambda a: None)
    runner.start()
    try:
        message = queue(outbox, tmp_path)
        runner.wake()
        deadline = time.monotonic() + 10
        while outbox.get(message).state is not State.DEFERRED and time.monotonic() < deadline:
            time.sleep(0.05)
        assert outbox.get(message).state is State.DEFERRED
        account["now"] = account_for(server)  # the person fixed the settings
        outbox.retry_now(message)
        runner.clear_backoff("work")
        deadline = time.monotonic() + 10
        while outbox.get(message).state is not State.SENT and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        runner.stop()
    assert outbox.get(message).state is State.SENT


@pytest.mark.parametrize("sandbox", [True, False])
def test_a_stopped_sandbox_is_told_as_stopped_not_as_a_wrong_port(
    outbox, tmp_path, sandbox: bool
) -> None:
    """Mailer's own sandbox refusing the connection is not running; the advice
    about ports 465 and 587 fits an account of the person's only."""
    import socket

    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]  # nothing listens here once it is closed
    account = Account(
        name="work", email="you@sandbox.test", host="127.0.0.1", port=port,
        security=Security.STARTTLS, auth=AuthMethod.PLAIN,
        username="sandbox" if sandbox else "you", secret_source="none",
    )  # fmt: skip
    message = queue(outbox, tmp_path)
    runner_for(outbox, account).deliver_now()
    row = outbox.get(message)
    assert row.state is State.DEFERRED
    reason = row.last_error or ""
    if sandbox:
        assert reason.startswith(f"Mailer's test server (the sandbox, port {port}) is not running")
        assert "465" not in reason
    else:
        assert f"refused the connection on port {port}" in reason and "465 is TLS" in reason


def test_direct_delivery_takes_its_messages_one_at_a_time(outbox, tmp_path) -> None:
    """Each direct delivery takes seconds (lookups, several servers): while one
    goes, the others are still queued, not all "Sending…" with it."""
    account = Account(name="work", email="ann@example.org", kind="direct")
    messages = [queue(outbox, tmp_path, subject=f"m{n}") for n in range(3)]
    seen: dict[int, list[State]] = {}

    def direct(account, row, body, transcript, before_end, on_session, silence, answered):
        seen[row.id] = [outbox.get(m).state for m in messages]
        before_end()
        taken = Reply(250, None, ("ok",))
        accepted = [RecipientResult(a, RecipientStatus.ACCEPTED, taken) for a in row.pending]
        return MessageResult(tuple(accepted), taken)

    runner_for(outbox, account, direct=direct).deliver_now()
    first, second, third = messages
    assert seen == {
        first: [State.SENDING, State.QUEUED, State.QUEUED],
        second: [State.SENT, State.SENDING, State.QUEUED],
        third: [State.SENT, State.SENT, State.SENDING],
    }


def test_cancel_during_a_direct_lookup_gives_the_message_back(outbox, tmp_path) -> None:
    """Cancel pressed while a direct delivery looks up MX records (no session
    to close yet): the message goes back to the queue, as Cancel says, not
    on to the retry schedule with the lookup's failure."""
    from mailer_gui.smtp.errors import ConnectionLost

    account = Account(name="work", email="ann@example.org", kind="direct")
    message = queue(outbox, tmp_path)
    told: list[State] = []

    def direct(account, row, body, transcript, before_end, on_session, silence, answered):
        told.append(runner.cancel(row.id))  # the person presses Cancel meanwhile
        error = ConnectionLost("no DNS server answered within 5 s")
        deferred = [RecipientResult(a, RecipientStatus.DEFERRED, None, "") for a in row.pending]
        return MessageResult(tuple(deferred), error=error)

    runner = runner_for(outbox, account, direct=direct)
    runner.deliver_now()
    row = outbox.get(message)
    assert told == [State.SENDING]
    assert row.state is State.QUEUED and row.due_at > time.time() + 30  # held a minute
    assert row.attempts == 0 and [a.outcome for a in outbox.attempts(message)] == ["interrupted"]


@pytest.mark.parametrize("after_the_end", [False, True], ids=["before the end", "after the end"])
def test_a_fault_of_mailers_own_leaves_no_message_sending(
    outbox, tmp_path, after_the_end: bool
) -> None:
    """An error that is no SMTP failure (a bug) ends that message's attempt
    with the reason, and the others go on: nothing stays `sending`. Once the
    final "." may have left, the message is uncertain, not sent again."""
    account = Account(name="work", email="ann@example.org", kind="direct")
    first, second = queue(outbox, tmp_path), queue(outbox, tmp_path, subject="next")
    calls: list[int] = []

    def direct(account, row, body, transcript, before_end, on_session, silence, answered):
        calls.append(row.id)
        if row.id != first:
            raise ConnectionRefusedError(111, "Connection refused")  # told as deferred
        if after_the_end:
            before_end()
        raise KeyError("boom")

    runner_for(outbox, account, direct=direct).deliver_now()
    assert calls == [first, second]  # the second was still tried
    row = outbox.get(first)
    assert row.state is (State.UNCERTAIN if after_the_end else State.DEFERRED)
    assert "Mailer failed while" in (row.last_error or "") and "KeyError" in (row.last_error or "")
    assert outbox.get(second).state is State.DEFERRED


def tried_twice_in_100_s(server, tmp_path: Path, *to: str) -> tuple[OutboxStore, int, list[Event]]:
    """A message tried, deferred, and tried again 61 s later by an outbox that
    gives up after 100 s (so at the second try): the outbox, the message, the events."""
    from mailer_gui.outbox.policy import RetryPolicy

    outbox = OutboxStore(
        tmp_path / "outbox.sqlite3",
        tmp_path / "spool",
        policy=RetryPolicy(delays=(60.0,), then_every=60.0, give_up_after=100.0),
    )
    message = queue(outbox, tmp_path, *to)
    clock = Clock()
    events: list[Event] = []
    runner = runner_for(outbox, account_for(server), events, clock=clock)
    runner.deliver_now()
    assert outbox.get(message).state is State.DEFERRED
    clock.now += 61
    runner.deliver_now()
    return outbox, message, events


def test_giving_up_says_so_not_that_it_will_try_again(aiosmtpd_factory, tmp_path) -> None:
    """Mailer gives up on a recipient still deferred: the state change says it
    gave up and after how long, not "to be tried again"."""
    server = aiosmtpd_factory(rcpt_replies={"wait@example.org": "451 4.2.1 Mailbox busy"})
    outbox, message, events = tried_twice_in_100_s(
        server, tmp_path, "a@example.org, wait@example.org"
    )
    row = outbox.get(message)
    assert row.state is State.FAILED
    assert [(r.address, r.status) for r in row.recipients] == [
        ("a@example.org", "accepted"),
        ("wait@example.org", "deferred"),
    ]
    (change,) = [e for e in events if isinstance(e, StateChanged) and e.state is State.FAILED]
    assert change.detail.startswith("Mailer gave up after 2 attempts over 1 min 1 s"), change
    assert "To be tried again" not in change.detail
    assert len(server.wait_for_messages(1)) == 1  # to a@ once, never again


@pytest.mark.parametrize("trouble", ["421 to MAIL", "nothing listens"])
def test_giving_up_after_a_servers_trouble_says_so(aiosmtpd_factory, tmp_path, trouble) -> None:
    """The last try ended in the server's trouble (a 421, a refused connection),
    not a recipient's answer: the state change says that Mailer gave up, not
    only the trouble, which reads as if it would try again."""
    server = aiosmtpd_factory(on_mail=lambda address, options: "421 4.7.0 Too busy")
    if trouble == "nothing listens":
        server.stop()
    outbox, message, events = tried_twice_in_100_s(server, tmp_path)
    row = outbox.get(message)
    assert row.state is State.FAILED
    # Not "Mailer will try again later" after the server's words: it will not.
    assert "try again" not in (row.last_error or ""), row.last_error
    # The last attempt says that it was the last.
    assert [a.outcome for a in outbox.attempts(message)][-1] == "given-up"
    (change,) = [e for e in events if isinstance(e, StateChanged) and e.state is State.FAILED]
    assert change.detail.startswith("Mailer gave up after 2 attempts"), change


def test_a_recovery_that_cannot_be_made_is_told_once(aiosmtpd_factory, outbox, tmp_path) -> None:
    """A message left `sending` by a Mailer that died, and a marks folder that
    cannot be read (a file in its place): the background runner cannot take
    it back, and says so once, instead of the message showing "Sending…"
    with no word."""
    from mailer_gui.outbox.runner import Trouble

    server = aiosmtpd_factory()
    message = queue(outbox, tmp_path, due_at=time.time() - 700)
    assert outbox.claim_next("gone", now=time.time() - 600, lease=1) is not None
    if outbox.marks_dir.exists():
        for path in outbox.marks_dir.iterdir():
            path.unlink()
        outbox.marks_dir.rmdir()
    outbox.marks_dir.write_text("not a folder")
    events: list[Event] = []
    runner = runner_for(outbox, account_for(server), events)
    runner.start()
    try:
        deadline = time.monotonic() + 10
        while not any(isinstance(e, Trouble) for e in events) and time.monotonic() < deadline:
            time.sleep(0.05)
        for _ in range(3):  # more turns of the scheduler
            runner.wake()
            time.sleep(0.1)
    finally:
        runner.stop()
    troubles = [e for e in events if isinstance(e, Trouble)]
    assert len(troubles) == 1, troubles
    assert str(outbox.marks_dir) in troubles[0].text
    assert outbox.get(message).state is State.SENDING  # left as it was: nothing guessed
