"""The status bar's undo countdown and send progress (offscreen, a hand-driven clock)."""

from __future__ import annotations

from PySide6.QtWidgets import QWidget

from mailer_gui.ui.status_widgets import SendProgress, UndoCountdown, human_size


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_countdown_says_sending_in_never_sent(qtbot) -> None:
    clock = Clock()
    holder = QWidget()  # a status bar in the app; never shown as a window here
    qtbot.addWidget(holder)
    countdown = UndoCountdown(holder, clock=clock)
    countdown.add(7, "Quarterly report", clock.now + 10)
    assert countdown.label.text() == "Sending “Quarterly report” in 10 s"
    clock.now += 2.2
    countdown._tick()
    assert countdown.label.text() == "Sending “Quarterly report” in 8 s"
    assert "Sent" not in countdown.label.text()
    assert countdown.button.isEnabled()

    with qtbot.waitSignal(countdown.undoRequested) as undo:
        countdown.button.click()
    assert undo.args == [7]

    clock.now += 8
    countdown._tick()
    assert countdown.label.text() == "Sending “Quarterly report”…"
    # Past its window but not taken by the runner yet (no state change): still undoable.
    assert countdown.button.isEnabled()
    countdown.set_paused(True)
    assert countdown.label.text() == "“Quarterly report” waits: sending is paused"
    countdown.forget(7)
    assert countdown.isHidden()
    assert countdown.pending() == []


def test_countdown_with_several_messages_undoes_the_one_sent_last(qtbot) -> None:
    clock = Clock()
    holder = QWidget()  # a status bar in the app; never shown as a window here
    qtbot.addWidget(holder)
    countdown = UndoCountdown(holder, clock=clock)
    countdown.add(1, "First", clock.now + 9)
    countdown.add(2, "Second", clock.now + 5)  # sent last, with a shorter window
    assert countdown.latest() == 2
    assert countdown.label.text() == "Sending “Second” in 5 s (and 1 more)"
    with qtbot.waitSignal(countdown.undoRequested) as undo:
        countdown.button.click()
    assert undo.args == [2]
    countdown.forget(2)
    assert countdown.label.text() == "Sending “First” in 9 s"


def test_no_undo_window_shows_nothing(qtbot) -> None:
    clock = Clock()
    holder = QWidget()  # a status bar in the app; never shown as a window here
    qtbot.addWidget(holder)
    countdown = UndoCountdown(holder, clock=clock)
    countdown.add(3, "Now", clock.now)  # undo window of 0 s
    assert countdown.pending() == []
    assert countdown.isHidden()


def test_send_progress_shows_bytes_and_speed(qtbot) -> None:
    clock = Clock()
    holder = QWidget()  # a status bar in the app; never shown as a window here
    qtbot.addWidget(holder)
    progress = SendProgress(holder, clock=clock)
    progress.subject_of = {4: "Quarterly report"}.get
    progress.update_progress(4, 0, 4 * 1024 * 1024)
    clock.now += 2
    progress.update_progress(4, 2 * 1024 * 1024, 4 * 1024 * 1024)
    # Named by its subject: the window shows no message numbers.
    assert progress.label.text() == "Sending “Quarterly report”: 2.0 MB of 4.0 MB, 1.0 MB/s"
    assert progress.bar.value() == 500
    progress.finished(5)  # another message: still showing this one
    assert not progress.isHidden()
    progress.finished(4)
    assert progress.isHidden()
    progress.update_progress(6, 10, 20)  # not in the table the window shows
    assert progress.label.text() == "Sending a message: 10 bytes of 20 bytes"


def test_human_size() -> None:
    assert human_size(0) == "0 bytes"
    assert human_size(1536) == "1.5 KB"
    assert human_size(50 * 1024 * 1024) == "50.0 MB"
    assert human_size(3 * 1024**4) == "3072.0 GB"
