"""Each fault switch, seen through Mailer's own engine (smtp.session) as the app would."""

from __future__ import annotations

import threading
import time

import pytest

from mailer_gui.sandbox.faults import Faults
from mailer_gui.sandbox.server import SandboxServer
from mailer_gui.smtp.errors import ConnectionLost, MessageRefused
from mailer_gui.smtp.session import RecipientStatus
from mailer_gui.smtp.transcript import Transcript
from tests.sandbox.conftest import MESSAGE, engine_send, engine_session

BO, CY = "bo@example.test", "cy@example.test"


def test_a_plain_send_through_the_engine(sandbox: SandboxServer) -> None:
    transcript = Transcript()
    with engine_session(sandbox, transcript) as session:
        assert session.tls_active and session.authenticated
        result = engine_send(session, (BO, CY))
    assert result.outcome == "sent"
    assert result.reply is not None and result.reply.code == 250
    [message] = sandbox.messages()
    assert message.envelope_to == (BO, CY)
    assert message.path.read_bytes().endswith(MESSAGE)
    assert sandbox.password not in transcript.render()


def test_reject_next_rcpt_5xx(sandbox: SandboxServer) -> None:
    sandbox.faults.reject_next_rcpt = "5xx"
    with engine_session(sandbox) as session:
        result = engine_send(session, (BO, CY))
    bo, cy = result.recipients
    assert bo.status is RecipientStatus.REJECTED
    assert bo.reply is not None and (bo.reply.code, bo.reply.enhanced) == (550, "5.1.1")
    assert "fault switch" in bo.reply.text
    assert cy.status is RecipientStatus.ACCEPTED  # only the next RCPT: the switch reset
    assert result.outcome == "partial"
    assert sandbox.faults.reject_next_rcpt is None
    assert [m.envelope_to for m in sandbox.messages()] == [(CY,)]


def test_reject_next_rcpt_4xx(sandbox: SandboxServer) -> None:
    sandbox.faults.reject_next_rcpt = "4xx"
    transcript = Transcript()
    with engine_session(sandbox, transcript) as session:
        # The sandbox pipelines as real servers do: the first message's DATA
        # went with its refused RCPT, and the second needs an RSET first.
        assert "PIPELINING" in session.extensions
        first = engine_send(session, (BO,))
        second = engine_send(session, (BO,))  # the switch went back off by itself
    assert "C: RSET" in transcript.render()
    [bo] = first.recipients
    assert bo.status is RecipientStatus.DEFERRED
    assert bo.reply is not None and (bo.reply.code, bo.reply.enhanced) == (450, "4.2.0")
    assert first.outcome == "deferred" and second.outcome == "sent"
    assert len(sandbox.messages()) == 1


def test_greylist_defers_first_try_then_accepts(sandbox: SandboxServer) -> None:
    sandbox.faults.greylist = True
    with engine_session(sandbox) as session:
        first = engine_send(session, (BO,))
    [bo] = first.recipients
    assert first.outcome == "deferred" and bo.status is RecipientStatus.DEFERRED
    assert bo.reply is not None and (bo.reply.code, bo.reply.enhanced) == (451, "4.7.1")
    assert sandbox.messages() == []

    with engine_session(sandbox) as session:  # the retry, on a new connection
        retry = engine_send(session, (BO, CY))
    # The known pair passes; a new pair is greylisted in its turn.
    assert [r.status for r in retry.recipients] == [
        RecipientStatus.ACCEPTED,
        RecipientStatus.DEFERRED,
    ]
    with engine_session(sandbox) as session:
        assert engine_send(session, (BO, CY)).outcome == "sent"
    assert len(sandbox.messages()) == 2

    sandbox.faults.greylist = False
    sandbox.faults.greylist = True  # switched on again: every pair starts over
    with engine_session(sandbox) as session:
        assert engine_send(session, (BO,)).outcome == "deferred"


def test_drop_during_data_is_deferred_not_uncertain(sandbox: SandboxServer) -> None:
    sandbox.faults.drop_during_data = True
    with engine_session(sandbox) as session:
        result = engine_send(session, (BO, CY))
        assert not session.usable
    assert result.outcome == "deferred" and not result.uncertain
    assert isinstance(result.error, ConnectionLost)
    assert {r.status for r in result.recipients} == {RecipientStatus.DEFERRED}
    assert sandbox.messages() == []

    sandbox.faults.drop_during_data = False
    with engine_session(sandbox) as session:
        assert engine_send(session, (BO,)).outcome == "sent"


def test_slow_replies_delay_each_reply(sandbox: SandboxServer) -> None:
    started = time.monotonic()
    with engine_session(sandbox) as session:
        engine_send(session, (BO,))
    fast = time.monotonic() - started

    delay = 0.25
    sandbox.faults.slow_replies = delay
    transcript = Transcript()
    started = time.monotonic()
    with engine_session(sandbox, transcript) as session:
        # greeting, EHLO, STARTTLS, EHLO, AUTH: five replies before the session is open
        assert time.monotonic() - started >= 5 * delay
        result = engine_send(session, (BO,))
    slow = time.monotonic() - started
    assert result.outcome == "sent"
    # + MAIL, RCPT, DATA, "." and QUIT
    assert slow >= 10 * delay > fast


def test_slow_replies_can_change_while_connected(sandbox: SandboxServer) -> None:
    with engine_session(sandbox) as session:
        sandbox.faults.slow_replies = 0.3
        started = time.monotonic()
        engine_send(session, (BO,))
        assert time.monotonic() - started >= 4 * 0.3  # MAIL, RCPT, DATA, "."
        sandbox.faults.slow_replies = 0
        started = time.monotonic()
        engine_send(session, (BO,))
        assert time.monotonic() - started < 1.0


def test_size_limit_is_advertised_and_enforced(sandbox: SandboxServer) -> None:
    sandbox.faults.size_limit = 1000
    big = MESSAGE + (b"x" * 70 + b"\r\n") * 30
    with engine_session(sandbox) as session:
        assert session.size_limit == 1000
        with pytest.raises(MessageRefused, match="SIZE 1000"):
            engine_send(session, (BO,), big)  # the engine refuses before sending a byte
        assert engine_send(session, (BO,)).outcome == "sent"
    sandbox.faults.size_limit = None
    with engine_session(sandbox) as session:
        assert session.size_limit is None
        assert engine_send(session, (BO,), big).outcome == "sent"


# --------------------------------------------------------------- the switches


def test_switch_values_checked() -> None:
    faults = Faults()
    with pytest.raises(ValueError):
        faults.reject_next_rcpt = "3xx"  # type: ignore[assignment]
    for bad in (-1.0, float("nan"), float("inf"), 601.0):
        with pytest.raises(ValueError):
            faults.slow_replies = bad
    for size in (0, -5, True, 1.5):
        with pytest.raises(ValueError):
            faults.size_limit = size  # type: ignore[assignment]
    with pytest.raises(ValueError):
        Faults(size_limit=0)
    assert faults.size_limit == 25 * 1024 * 1024


def test_rejection_taken_once() -> None:
    faults = Faults()
    faults.reject_next_rcpt = "5xx"
    assert faults.take_rcpt_rejection() == "5xx"
    assert faults.take_rcpt_rejection() is None
    assert faults.reject_next_rcpt is None


def test_greylist_pairs_ignore_case() -> None:
    faults = Faults()
    assert not faults.greylisted("a@x", "b@y")  # off: nothing is greylisted
    faults.greylist = True
    assert faults.greylisted("a@x", "b@y")
    assert not faults.greylisted("A@X", "B@Y")
    assert faults.greylisted("a@x", "c@y")


def test_reset_turns_everything_off() -> None:
    faults = Faults(size_limit=5000)
    faults.reject_next_rcpt = "4xx"
    faults.greylist = True
    faults.drop_during_data = True
    faults.slow_replies = 2
    faults.reset()
    state: tuple[object, ...] = (faults.reject_next_rcpt, faults.greylist, faults.drop_during_data)
    assert state == (None, False, False)
    assert faults.slow_replies == 0 and faults.size_limit == 5000


def test_only_one_thread_takes_a_rejection() -> None:
    faults = Faults()
    faults.reject_next_rcpt = "5xx"
    taken: list[object] = []
    barrier = threading.Barrier(16)

    def take() -> None:
        barrier.wait(5)
        taken.append(faults.take_rcpt_rejection())

    threads = [threading.Thread(target=take) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)
    assert sorted(map(str, taken)) == ["5xx"] + ["None"] * 15
