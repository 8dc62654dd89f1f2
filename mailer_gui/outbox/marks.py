"""End-of-data marks: the messages whose final "." may have reached a server.

Before a message's final "." leaves, the runner leaves a trace that survives
the process being killed: the server may take the message from then on, so
after a crash that message is `uncertain` (the person decides), never queued
again silently. An UPDATE committed to the outbox database for every message
costs more than sending a small message; a line appended to a small file costs
one system call. So each runner keeps its marks in its own file,
``<marks folder>/<runner>.log``, one line ``MESSAGE ATTEMPT`` per mark, and
``MESSAGE ATTEMPT -`` when that "." was answered while the message goes on (a
further transaction after a 452, another domain): the last line of a message's
attempt tells. A mark for a transaction that carries only some of the
recipients still to be sent names them by their places in the message
(``MESSAGE ATTEMPT 0,2``): after a crash, only those are in doubt.

- The file is opened with O_APPEND and each line is one write(), so a reader
  never sees half a line from a runner that is alive; a line cut short by a
  crash is ignored. A written line is in the kernel's cache at once and
  survives the process being killed, as a database commit does with
  ``synchronous=NORMAL`` (see store.py).
- The attempt number (the attempts row the claim created) ties a mark to one
  attempt: a mark left by an earlier attempt never makes a later one uncertain.
- `OutboxStore.recover` reads every runner's file inside its write
  transaction, and removes the file of a runner that holds no message (a
  runner that ended, or died with nothing in flight) in that same
  transaction; not yet the files of the runners whose messages it takes back
  then, since a commit that fails (a full disk) leaves those messages
  `sending` with nothing else to tell that their "." left: a later recovery
  removes them. A runner always claims a message (a commit) before it marks
  it, so a file is never removed while one of its lines matters; a runner
  whose file was removed while it held nothing sees that the file has no
  link any more after its next write, and writes a new one.
- The runner forgets the marks of messages whose results are written: the
  file is emptied when nothing is outstanding, and rewritten with only the
  outstanding lines when it grows past `COMPACT_AT` bytes.

Each runner also says it is alive (`RunnerLock`): it holds a lock on
``<marks folder>/<runner>.alive`` (flock, which the system lets go of when
the process ends, however it ends) from before its first claim until it holds
nothing. Recovery (`OutboxStore.recover`) takes back the messages of a runner
whose lock it can take itself (`dead_runners`) at once, instead of waiting up
to a lease (two minutes) for them: a window killed mid-send resends at once
when it is opened again. A runner that holds no lock file (another platform,
a file system without locks) is waited for as before. On Windows there are no
such locks; leases alone decide there.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import threading
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

if sys.platform != "win32":
    import fcntl

SUFFIX = ".log"
ALIVE_SUFFIX = ".alive"
COMPACT_AT = 64 * 1024  # bytes of marks before the file is rewritten
# Bytes exactly as written: Windows would otherwise turn each "\n" into "\r\n".
_BINARY = getattr(os, "O_BINARY", 0)


class EndMarks:
    """One runner's end-of-data marks. Safe to use from its worker threads."""

    def __init__(self, directory: Path, owner: str) -> None:
        self.directory = directory
        self.path = directory / f"{owner}{SUFFIX}"
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._size = 0
        self._outstanding: dict[int, tuple[int, str]] = {}  # message -> attempt, recipients
        self._cut = False  # a write stopped part-way: the next line starts on a new one

    def add(self, message: int, attempt: int, recipients: Sequence[int] | None = None) -> None:
        """Mark ``message`` (in its attempt ``attempt``): its final "." may leave now.
        ``recipients``: the places of those it goes to, when not all still to go.

        OSError when the line could not be written whole (a full disk): the
        caller must mark the message another way.
        """
        which = "" if recipients is None else " " + ",".join(map(str, recipients))
        with self._lock:
            self._outstanding[message] = (attempt, which)
            self._append(f"{message} {attempt}{which}\n".encode("ascii"))

    def clear(self, message: int, attempt: int) -> None:
        """The "." marked for ``message`` was answered, and its answers are in the
        database; the message goes on (another transaction): not uncertain now.

        OSError when the line could not be written whole: the mark stands,
        which only makes a crash from here leave the message uncertain.
        """
        with self._lock:
            if self._outstanding.get(message, (None, ""))[0] == attempt:
                del self._outstanding[message]
            self._append(f"{message} {attempt} -\n".encode("ascii"))

    def _append(self, line: bytes) -> None:
        """Write ``line`` whole, at the end, in one write(); the lock is held."""
        fd = self._open()
        if self._cut:
            line = b"\n" + line
        try:
            written = os.write(fd, line)
        except OSError:
            self._cut = True
            raise
        self._size += written
        if written != len(line):
            self._cut = True
            raise OSError(f"only {written} of {len(line)} bytes reached {self.path}")
        self._cut = False
        if os.fstat(fd).st_nlink == 0:
            # Recovery removed the file while this runner held nothing;
            # start a new one with every mark that still matters.
            self._close_fd()
            self._rewrite()

    def settled(self, messages: Iterable[int]) -> None:
        """The results of ``messages`` are in the database: their marks no longer matter."""
        with self._lock:
            for message in messages:
                self._outstanding.pop(message, None)
            if self._fd is None or not self._size:
                return
            if not self._outstanding:
                os.ftruncate(self._fd, 0)
                self._size = 0
            elif self._size > COMPACT_AT:
                self._close_fd()
                self._rewrite()

    def close(self) -> None:
        """Close the file; remove it when no mark is outstanding."""
        with self._lock:
            self._close_fd()
            if not self._outstanding:
                with contextlib.suppress(OSError):  # gone already, or open elsewhere (Windows)
                    self.path.unlink()

    # ------------------------------------------------------------ plumbing

    def _open(self) -> int:
        if self._fd is None:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | _BINARY, 0o600)
            self._size = os.fstat(self._fd).st_size
        return self._fd

    def _close_fd(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _rewrite(self) -> None:
        """Replace the file with the outstanding marks only (one rename: readers see
        the old file or the new one, both holding every outstanding mark)."""
        data = "".join(f"{m} {a}{w}\n" for m, (a, w) in self._outstanding.items()).encode("ascii")
        temporary = self.path.with_name(self.path.name + ".new")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | _BINARY, 0o600)
        try:
            written = os.write(fd, data)
        finally:
            os.close(fd)
        if written != len(data):
            with contextlib.suppress(OSError):
                temporary.unlink()
            raise OSError(f"only {written} of {len(data)} bytes reached {temporary}")
        try:
            os.replace(temporary, self.path)
        except OSError:
            # Windows refuses to replace a file another process has open:
            # keep appending to the current one.
            with contextlib.suppress(OSError):
                temporary.unlink()
        self._cut = False
        self._open()


def read_marks(directory: Path) -> set[tuple[int, int]]:
    """Every (message, attempt) any runner marked, from every runner's file.

    OSError when a file is there but cannot be read: the caller must not
    decide anything without it.
    """
    return set(read_marks_detail(directory))


def read_marks_detail(directory: Path) -> dict[tuple[int, int], frozenset[int] | None]:
    """`read_marks`, each with the places of the recipients its "." went to
    (None: all those still to go)."""
    found: dict[tuple[int, int], frozenset[int] | None] = {}
    try:
        files = [p for p in directory.iterdir() if p.name.endswith(SUFFIX)]
    except FileNotFoundError:
        return found
    for path in files:
        try:
            text = path.read_bytes()
        except FileNotFoundError:
            continue
        # A runner's lines are in the order it wrote them: a mark, then
        # perhaps its clearing, then perhaps the next transaction's mark.
        for line in text.split(b"\n")[:-1]:  # the last piece has no newline: unfinished
            message, _, rest = line.rstrip(b"\r").partition(b" ")
            attempt, _, which = rest.partition(b" ")
            if not (message.isdigit() and attempt.isdigit()):
                continue
            key = (int(message), int(attempt))
            if not which:
                found[key] = None
            elif which == b"-":
                found.pop(key, None)
            elif all(place.isdigit() for place in which.split(b",")):
                found[key] = frozenset(int(place) for place in which.split(b","))
            else:  # not a line this version writes: the whole message is in doubt
                found[key] = None
    return found


def remove_idle(directory: Path, *, keep: Iterable[str | None]) -> None:
    """Remove the files of runners not in ``keep`` (those holding messages):
    their marks, and the lock files of those known to be gone."""
    owners = {owner for owner in keep if owner}
    wanted = {f"{owner}{SUFFIX}" for owner in owners}
    try:
        files = list(directory.iterdir())
    except OSError:
        return  # tidying only: it can wait for the next recovery
    for path in files:
        name = path.name
        if name.endswith(SUFFIX) and name not in wanted:
            with contextlib.suppress(OSError):  # gone already, or open on Windows
                path.unlink()
            continue
        for suffix in (ALIVE_SUFFIX, _NEW_SUFFIX):
            if name.endswith(suffix) and name[: -len(suffix)] not in owners:
                # Removed while locked here, so never the lock file of a runner alive.
                with contextlib.suppress(OSError), _locked_if_gone(path) as gone:
                    if gone:
                        path.unlink()


# A lock file is made under this name, locked, and only then renamed to its
# own: no other process can take the lock of a runner that is starting.
_NEW_SUFFIX = ".alive-new"


def _this_machine() -> bytes:
    """What a lock file says of the machine its runner runs on: its name and,
    where the system tells, the boot it is in. A lock is trusted to be free
    only when taken on the machine that took it: across machines sharing a
    folder (NFS, a virtual machine's shared folder) locks may not be seen."""
    boot = b""
    with contextlib.suppress(OSError):
        boot = Path("/proc/sys/kernel/random/boot_id").read_bytes().strip()
    return socket.gethostname().encode("utf-8", "replace") + b" " + boot + b"\n"


class RunnerLock:
    """A runner's lock file: held while the runner may hold messages (see above).

    Taking it is best effort: where it cannot be had (no locks on this system
    or file system), the runner goes on, and recovery waits for its leases.
    """

    def __init__(self, directory: Path, owner: str) -> None:
        self.path = directory / f"{owner}{ALIVE_SUFFIX}"
        self._fd: int | None = None
        self._lock = threading.Lock()

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        """Hold the lock (before the first claim); nothing if it is held already."""
        if sys.platform == "win32":
            return
        with self._lock:
            if self._fd is not None:
                return
            new = self.path.with_name(self.path.name[: -len(ALIVE_SUFFIX)] + _NEW_SUFFIX)
            try:
                self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                fd = os.open(new, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
            except OSError:
                return
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                os.write(fd, _this_machine())
                if _held_by_another(self.path):
                    # Another runner of this name (never two of one name in
                    # Mailer): its file stays, and this one goes on without.
                    raise BlockingIOError
                os.replace(new, self.path)
            except OSError:  # no locks here: recovery waits for the leases
                with contextlib.suppress(OSError):
                    new.unlink()
                os.close(fd)
                return
            self._fd = fd

    def release(self, *, holding: bool = False) -> None:
        """Let go, and remove the file: the runner holds nothing any more. (The
        file of a process that was killed goes at the next recovery.)

        ``holding``: the runner still holds messages it could not give back
        (the outbox could not be written, a full disk). The file stays,
        unlocked, as a killed runner's would: the next recovery then knows
        this runner is gone and takes them back at once, instead of waiting
        for their leases to run out.
        """
        with self._lock:
            if self._fd is not None:
                if not holding:
                    with contextlib.suppress(OSError):
                        self.path.unlink()  # while locked: never another runner's file
                os.close(self._fd)  # closing lets go of the lock
                self._fd = None


def _held_by_another(path: Path) -> bool:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False  # not there
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)
    return False


def dead_runners(directory: Path, owners: Iterable[str]) -> set[str]:
    """Those of ``owners`` whose lock file is there, was made on this machine
    and is held by nobody: their process ended without letting go of its
    messages."""
    dead: set[str] = set()
    for owner in owners:
        with _locked_if_gone(directory / f"{owner}{ALIVE_SUFFIX}") as gone:
            if gone:
                dead.add(owner)
    return dead


@contextlib.contextmanager
def _locked_if_gone(path: Path) -> Iterator[bool]:
    """Hold the lock on ``path`` for the block if it was made on this machine
    and nobody holds it (True); False when it is held, missing, from another
    machine, or cannot be tried: those are not known to be gone."""
    if sys.platform == "win32":
        yield False
        return
    try:
        fd = os.open(path, os.O_RDWR)
    except OSError:
        yield False
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            ours = os.pread(fd, 4096, 0) == _this_machine()
        except OSError:  # held by a runner alive, or no locks on this file system
            ours = False
        yield ours
    finally:
        os.close(fd)
