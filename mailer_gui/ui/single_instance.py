"""One Mailer per person and home folder: a second launch hands its request over.

Clicking a mailto: link starts `mailer-gui mailto:...`. When Mailer is already
running for the same data folder, that second process connects to the first
through a QLocalServer (a Unix socket, or a named pipe on Windows), sends the
request as one line of UTF-8 and exits; the running app opens a composer. The
socket name includes the user and a hash of the data folder, so two portable
installs (or tests with their own home) never talk to each other.

A server left behind by a crashed instance is removed before listening: the
first instance to start after a crash simply takes the name over. Two launches
at the same moment take turns (a lock file): the second finds the first
listening and hands over.

QtNetwork loads only when a socket is used: on Unix a first launch sees that
no socket file exists (`may_be_running`) and opens its window at once; it
listens once that window is painted, before it opens the outbox.
"""

from __future__ import annotations

import getpass
import os
import sys
from typing import TYPE_CHECKING

from PySide6.QtCore import QByteArray, QCryptographicHash, QObject, Signal

from mailer_gui.paths import AppPaths

if TYPE_CHECKING:
    from PySide6.QtNetwork import QLocalSocket

#: How long a second launch waits for the running instance, in milliseconds.
#: Only the second process waits: before it has a window, or (two launches at
#: once) before it has opened its outbox.
HANDOFF_TIMEOUT_MS = 3000
#: A request that does not fit here is not a mailto URL or a command.
MAX_REQUEST = 64 * 1024

ACK = b"ok\n"


def server_name(paths: AppPaths) -> str:
    """The local socket's name for this user and data folder."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid()) if hasattr(os, "getuid") else "user"
    # SHA-256 from QtCore: hashlib would load OpenSSL before the first window.
    digest = bytes(
        QCryptographicHash.hash(
            str(paths.data_dir).encode("utf-8"), QCryptographicHash.Algorithm.Sha256
        )
        .toHex()
        .data()
    ).decode("ascii")[:16]
    return f"mailer-gui-{user}-{digest}"


def may_be_running(paths: AppPaths) -> bool:
    """False when no Mailer can be listening for this data folder: its socket file is missing.

    Only Unix answers without connecting: QLocalServer's socket is a file in
    Qt's temporary folder ($TMPDIR, else /tmp). Windows (named pipes) and a
    macOS without $TMPDIR answer True, and connecting tells.
    """
    if os.name != "posix":
        return True
    folder = os.environ.get("TMPDIR")
    if not folder:
        if sys.platform == "darwin":
            return True  # Qt asks the system for its temporary folder there
        folder = "/tmp"
    return os.path.exists(os.path.join(folder, server_name(paths)))


def hand_over(paths: AppPaths, request: str, timeout_ms: int = HANDOFF_TIMEOUT_MS) -> bool:
    """Give ``request`` ("" to just raise the window) to a running instance.

    True when an instance took it (this process should exit); False when none
    is running (this process becomes the instance).
    """
    from PySide6.QtNetwork import QLocalSocket

    socket = QLocalSocket()
    socket.connectToServer(server_name(paths))
    if not socket.waitForConnected(timeout_ms):
        return False
    socket.write(QByteArray(request.encode("utf-8") + b"\n"))
    socket.flush()  # sends at once; the reply below proves it arrived
    answered = socket.waitForReadyRead(timeout_ms) and bytes(socket.readAll().data()) == ACK
    socket.disconnectFromServer()
    return answered


class InstanceServer(QObject):
    """Listens for later launches; `received` carries each one's request."""

    #: the request line ("" when a later launch had nothing to open)
    received = Signal(str)

    def __init__(self, paths: AppPaths, parent: QObject | None = None) -> None:
        from PySide6.QtNetwork import QLocalServer

        super().__init__(parent)
        self._name = server_name(paths)
        self._server = QLocalServer(self)
        self._server.setSocketOptions(QLocalServer.SocketOption.UserAccessOption)
        self._server.newConnection.connect(self._accept)
        self._buffers: dict[QLocalSocket, bytearray] = {}

    def listen(self) -> bool:
        """Take the name; a socket file left by a crashed instance is replaced.

        False when another instance answers on it (two launches at once): the
        caller hands its request over to that one instead. The check comes
        first because Qt's listen() with access options replaces an existing
        socket file, even a live one; a lock file keeps another launch from
        doing the same between this check and the listen().
        """
        from PySide6.QtCore import QDir, QLockFile
        from PySide6.QtNetwork import QLocalServer, QLocalSocket

        lock = QLockFile(QDir(QDir.tempPath()).filePath(f"{self._name}.lock"))
        locked = lock.tryLock(HANDOFF_TIMEOUT_MS)  # else go on: no worse than without it
        try:
            probe = QLocalSocket()
            probe.connectToServer(self._name)
            if probe.waitForConnected(500):
                probe.abort()
                return False  # alive: never take over a running Mailer's name
            if self._server.listen(self._name):
                return True
            QLocalServer.removeServer(self._name)
            return self._server.listen(self._name)
        finally:
            if locked:
                lock.unlock()

    def close(self) -> None:
        """Stop listening and drop the connections still open (before Qt deletes them)."""
        self._server.close()
        for socket in list(self._buffers):
            socket.disconnected.disconnect()
            socket.readyRead.disconnect()
            socket.abort()
            socket.deleteLater()
        self._buffers.clear()

    def _accept(self) -> None:
        while self._server.hasPendingConnections():
            socket = self._server.nextPendingConnection()
            self._buffers[socket] = bytearray()
            socket.readyRead.connect(lambda s=socket: self._read(s))
            socket.disconnected.connect(lambda s=socket: self._forget(s))

    def _read(self, socket: QLocalSocket) -> None:
        buffer = self._buffers.get(socket)
        if buffer is None:
            return
        buffer.extend(bytes(socket.readAll().data()))
        if len(buffer) > MAX_REQUEST:
            socket.abort()
            return
        if b"\n" not in buffer:
            return
        line = bytes(buffer.split(b"\n", 1)[0])
        self._buffers[socket] = bytearray()
        socket.write(QByteArray(ACK))
        socket.flush()
        self.received.emit(line.decode("utf-8", "replace").strip())

    def _forget(self, socket: QLocalSocket) -> None:
        self._buffers.pop(socket, None)
        socket.deleteLater()


__all__ = ["InstanceServer", "hand_over", "may_be_running", "server_name"]
