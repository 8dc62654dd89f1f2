"""A second launch hands its mailto: URL to the running instance (real local socket)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mailer_gui.paths import resolve_paths
from mailer_gui.ui.single_instance import InstanceServer, may_be_running, server_name
from tests.servers.processes import stop_process


def launch(home: Path, *args: str) -> subprocess.Popen[str]:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    return subprocess.Popen(
        [sys.executable, "-m", "mailer_gui", "--home", str(home), *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_second_launch_hands_its_url_over_and_exits(qtbot, tmp_path: Path) -> None:
    server = InstanceServer(resolve_paths(tmp_path))
    assert server.listen()
    try:
        url = "mailto:bob@example.org?subject=Lunch%20on%20Friday"
        with qtbot.waitSignal(server.received, timeout=20_000) as got:
            process = launch(tmp_path, url)
        assert got.args == [url]
        _out, err = process.communicate(timeout=20)
        assert process.returncode == 0, err
        assert err == ""
    finally:
        server.close()


def test_compose_command_is_handed_over_too(qtbot, tmp_path: Path) -> None:
    server = InstanceServer(resolve_paths(tmp_path))
    assert server.listen()
    try:
        with qtbot.waitSignal(server.received, timeout=20_000) as got:
            process = launch(tmp_path, "compose", "mailto:ann@example.org")
        assert got.args == ["mailto:ann@example.org"]
        process.communicate(timeout=20)
        assert process.returncode == 0
    finally:
        server.close()


def test_instances_for_different_homes_do_not_meet(tmp_path: Path) -> None:
    first = resolve_paths(tmp_path / "one")
    second = resolve_paths(tmp_path / "two")
    assert server_name(first) != server_name(second)
    assert server_name(first) == server_name(resolve_paths(tmp_path / "one"))


LISTENER = """
import sys, time
from PySide6.QtCore import QCoreApplication
from mailer_gui.paths import resolve_paths
from mailer_gui.ui.single_instance import InstanceServer
app = QCoreApplication([])
server = InstanceServer(resolve_paths(sys.argv[1]))
print("listening" if server.listen() else "refused", flush=True)
time.sleep(60)
"""


def start_listener(home: Path) -> subprocess.Popen[str]:
    """Another process holding the instance name of ``home`` (LISTENER above)."""
    return subprocess.Popen(
        [sys.executable, "-c", LISTENER, str(home)],
        env=dict(os.environ, QT_QPA_PLATFORM="offscreen"),
        stdout=subprocess.PIPE,
        text=True,
    )


def test_the_socket_of_a_killed_instance_is_taken_over(qtbot, tmp_path: Path) -> None:
    paths = resolve_paths(tmp_path)
    crashed = start_listener(tmp_path)
    try:
        assert crashed.stdout is not None
        assert crashed.stdout.readline().strip() == "listening"
    finally:
        stop_process(crashed)  # SIGTERM: Python dies without closing its socket
    fresh = InstanceServer(paths)
    try:
        assert fresh.listen()
        with qtbot.waitSignal(fresh.received, timeout=20_000) as got:
            process = launch(tmp_path, "mailto:carol@example.org")
        assert got.args == ["mailto:carol@example.org"]
        process.communicate(timeout=20)
    finally:
        fresh.close()


def test_a_running_instance_keeps_its_name(qtbot, tmp_path: Path) -> None:
    paths = resolve_paths(tmp_path)
    running = start_listener(tmp_path)
    try:
        assert running.stdout is not None
        assert running.stdout.readline().strip() == "listening"
        second = InstanceServer(paths)
        assert not second.listen()  # it answers: not taken over
        second.close()
    finally:
        stop_process(running)


@pytest.mark.skipif(os.name != "posix", reason="only Unix tells by the socket file")
def test_the_socket_file_tells_whether_an_instance_may_run(tmp_path: Path) -> None:
    paths = resolve_paths(tmp_path)
    assert not may_be_running(paths)  # a first launch: no socket, no QtNetwork
    server = InstanceServer(paths)
    assert server.listen()
    try:
        assert may_be_running(paths)
    finally:
        server.close()
    assert not may_be_running(paths)


def test_two_launches_at_once_end_with_one_instance(tmp_path: Path) -> None:
    """Each opens its window and listens after its first paint: one keeps the name."""
    first = launch(tmp_path)
    second = launch(tmp_path)
    try:
        deadline = time.monotonic() + 60
        while first.poll() is None and second.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        gone = [p for p in (first, second) if p.poll() is not None]
        assert len(gone) == 1, "both are still running: two instances"
        (left,) = gone
        _out, err = left.communicate(timeout=20)
        assert left.returncode == 0, err
        # The other one is the instance: it answers on the name.
        (running,) = [p for p in (first, second) if p is not left]
        assert running.poll() is None
        other = InstanceServer(resolve_paths(tmp_path))
        assert not other.listen()
        other.close()
    finally:
        for process in (first, second):
            stop_process(process)
            process.communicate()
