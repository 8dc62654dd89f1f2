"""The transport's reads and writes on a loopback connection this test holds
both ends of."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from mailer_gui.smtp.errors import TimeoutError_
from mailer_gui.smtp.transport import Transport


@pytest.fixture
def ends() -> Iterator[tuple[Transport, socket.socket]]:
    """A Transport on a connected loopback socket, and the server's end."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname()[:2], timeout=5)
        server, _ = listener.accept()
    transport = Transport(client, "127.0.0.1")
    with contextlib.closing(server):
        yield transport, server
    transport.close()


def test_a_read_may_wait_longer_than_the_last_write_did(ends) -> None:
    """A write leaves the socket's timeout at its own; a later read that may
    wait longer (the final reply) still waits its whole time."""
    transport, server = ends
    transport.write(b"DATA\r\n", timeout=0.2)
    assert server.recv(100) == b"DATA\r\n"
    late = threading.Timer(0.7, server.sendall, (b"250 taken, late\r\n",))
    late.start()
    try:
        assert transport.read(timeout=5) == b"250 taken, late\r\n"
    finally:
        late.join()


def test_a_long_read_still_ends_at_its_own_timeout(ends) -> None:
    transport, _ = ends
    transport.write(b"NOOP\r\n", timeout=1.0)
    started = time.monotonic()
    with pytest.raises(TimeoutError_, match=r"nothing for 1\.3 s"):
        transport.read(timeout=1.3)
    waited = time.monotonic() - started
    # Its own 1.3 s: neither the write's 1.0 s nor a whole second step (2.0 s).
    assert 1.25 <= waited < 1.9
    # And a shorter read after it waits only its own time too.
    started = time.monotonic()
    with pytest.raises(TimeoutError_):
        transport.read(timeout=0.1)
    assert time.monotonic() - started < 0.9
