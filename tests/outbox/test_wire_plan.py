"""A small message's DATA plan: made when it is queued, trusted only for the
very bytes it was made for (store.wire_plan, store.planned_dots)."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest

from mailer_gui.outbox import store as store_module
from mailer_gui.outbox.store import OutboxStore, State, planned_dots
from mailer_gui.smtp import protocol as p
from mailer_gui.smtp.session import CHUNK_SIZE
from tests.outbox.old_outbox import outbox_at_version
from tests.outbox.test_runner import account_for, queue, runner_for
from tests.smtp.test_session_ahead import pipelining

# Lines a DATA body must carry as they are: the "." alone would end the
# message early if it went out without its dot doubled.
DOT_LINES = "First line.\n.hidden\n.\n..two dots\nLast line."


@pytest.fixture
def outbox(tmp_path: Path) -> OutboxStore:
    return OutboxStore(tmp_path / "outbox.sqlite3", tmp_path / "spool")


def spool_bytes(outbox: OutboxStore, message: int) -> bytes:
    return outbox.get(message).spool_path.read_bytes()


def test_a_small_message_is_planned_when_queued(outbox, tmp_path) -> None:
    message = queue(outbox, tmp_path, text=DOT_LINES)
    row = outbox.get(message)
    data = spool_bytes(outbox, message)
    assert row.wire_plan is not None
    dots = planned_dots(row, data)
    assert dots == p.plan_data(data)
    # Each part (plain text, and the HTML made from the Markdown) has its own.
    assert {data[at : at + 3] for at in dots} >= {b".hi", b".\r\n", b"..t"}


def test_a_plan_is_not_trusted_once_the_file_changed(outbox, tmp_path) -> None:
    message = queue(outbox, tmp_path, text=DOT_LINES)
    row = outbox.get(message)
    data = spool_bytes(outbox, message)
    changed = data.replace(b"First", b".irst")  # same size, one more line to stuff
    assert len(changed) == len(data)
    assert planned_dots(row, changed) is None
    assert planned_dots(row._replace(wire_plan=None), data) is None


def test_a_large_message_has_no_plan(outbox, tmp_path) -> None:
    text = "\n".join(f"Line {n} of a long report." for n in range(4000))
    message = queue(outbox, tmp_path, text=text)
    assert outbox.get(message).size > CHUNK_SIZE
    assert outbox.get(message).wire_plan is None


def test_planned_messages_arrive_with_their_dot_lines(aiosmtpd_factory, outbox, tmp_path) -> None:
    """Three planned messages over one pipelining connection: the first goes
    with its plan after its 354, the others are made ready by theirs while
    the server works on the one before. Each arrives as it was written."""
    server = pipelining(aiosmtpd_factory())
    ids = [queue(outbox, tmp_path, f"r{n}@example.org", text=DOT_LINES) for n in range(3)]
    assert all(outbox.get(i).wire_plan for i in ids)
    runner_for(outbox, account_for(server)).deliver_now()
    assert {outbox.get(i).state for i in ids} == {State.SENT}
    received = server.wait_for_messages(3)
    assert [m.content for m in received] == [spool_bytes(outbox, i) for i in ids]
    assert b"\r\n.hidden\r\n.\r\n..two dots\r\n" in received[0].content


@pytest.mark.parametrize(
    "damage",
    ["same size, other bytes", "emptied", "cut short", "grown", "a large one cut short"],
)
def test_a_message_file_changed_after_queueing_is_not_sent(
    aiosmtpd_factory, outbox, tmp_path, damage: str
) -> None:
    """The file is no longer what was queued (damage, or a hand in the spool):
    that message fails with a reason naming its file, nothing of it is sent,
    and the others go as they were queued."""
    server = pipelining(aiosmtpd_factory())
    large = damage.startswith("a large")
    text = "\n".join(f"Line {n} of a long report." for n in range(4000)) if large else DOT_LINES
    ids = [queue(outbox, tmp_path, f"r{n}@example.org", text=text) for n in range(3)]
    path = outbox.get(ids[1]).spool_path
    data = path.read_bytes()
    path.write_bytes(
        {
            "same size, other bytes": data.replace(
                b"\r\nFirst line.\r\n", b"\r\n.\r\nst line.\r\n"
            ),
            "emptied": b"",
            "cut short": data[:500],
            "grown": data + b"more\r\n",
            "a large one cut short": data[: len(data) // 2],
        }[damage]
    )
    runner_for(outbox, account_for(server)).deliver_now()
    assert [outbox.get(i).state for i in ids] == [State.SENT, State.FAILED, State.SENT]
    reason = outbox.get(ids[1]).last_error or ""
    assert f"The message file {path} has changed since the message was queued" in reason
    received = server.wait_for_messages(2)
    assert [m.rcpt_tos for m in received] == [["r0@example.org"], ["r2@example.org"]]


def test_an_outbox_from_before_plans_gets_the_column_and_sends_as_before(
    aiosmtpd_factory, tmp_path: Path
) -> None:
    """A message queued by a Mailer before schema 5 has no plan: after the
    migration it is sent with its body encoded as it goes."""
    spool = tmp_path / "spool"
    spool.mkdir()
    content = b"Subject: old\r\n\r\nqueued before plans\r\n.dot line\r\n"
    (spool / "m.eml").write_bytes(content)
    database = tmp_path / "outbox.sqlite3"
    with contextlib.closing(outbox_at_version(database, 4)) as db:
        db.execute(
            "INSERT INTO messages (id, account, state, created_at, due_at, message_id, size, "
            "spool_file, envelope_from, updated_at) VALUES "
            "(7, 'work', 'queued', 1, 1, '<m@example.org>', ?, 'm.eml', 'ann@example.org', 1)",
            (len(content),),
        )
        db.execute("INSERT INTO recipients (message, position, address) VALUES (7, 0, 'b@x.org')")
    outbox = OutboxStore(database, spool)
    assert outbox._read("PRAGMA user_version")[0][0] == len(store_module._SCHEMA)
    assert outbox.get(7).wire_plan is None
    server = aiosmtpd_factory()
    runner_for(outbox, account_for(server)).deliver_now()
    assert outbox.get(7).state is State.SENT
    assert server.wait_for_messages(1)[0].content == content
