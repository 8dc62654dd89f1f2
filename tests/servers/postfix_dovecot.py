"""A private Postfix submission server with Dovecot SASL, all under one temporary folder.

``submission_server`` (session scope) returns a :class:`SubmissionServer`:

- ``host`` (``"127.0.0.1"``), ``starttls_port`` (STARTTLS required before anything
  else: ``smtpd_tls_security_level = encrypt``), ``tls_port`` (implicit TLS,
  ``smtpd_tls_wrappermode = yes``). Both only offer AUTH after TLS, with PLAIN, LOGIN
  and CRAM-MD5, checked by Dovecot. The certificate is ``server_cert`` (test CA,
  localhost/127.0.0.1/::1): a client trusts it through ``trust_test_ca``.
- ``username`` (``alice@example.test``), ``password`` (random for each run).
  Only authenticated clients may send (``554 5.7.1`` otherwise).
- ``recipients``: addresses that are delivered (``alice@``, ``bob@example.test`` and
  anything ``@example.org``), ``unknown_recipient``: one that gets
  ``550 5.1.1 ... User unknown``. Other domains are refused (``554 5.7.1 Relay access
  denied``), so nothing ever leaves the machine.
- ``maildir``: the one Maildir all accepted mail is delivered to (``new/``).
  ``messages()`` returns the delivered files' bytes (oldest first),
  ``wait_for_messages(count, timeout)`` waits (bounded) until at least ``count``
  are there (``containing=token``: only those containing ``token``),
  ``wait_for_message(token, timeout)`` returns the first one containing ``token``,
  ``clear_messages()`` empties the Maildir. The server is shared by the whole
  session and delivery is asynchronous: find a test's mail by a unique token.
- ``startup_seconds``: how long starting Dovecot and Postfix took.
- ``log_text()``: Postfix's and Dovecot's logs, for failure messages.

Nothing of the system's Postfix or Dovecot is used or touched: configuration, queue,
data, logs, sockets and mail all live under a ``mailer-postfix-*`` folder in the
temporary directory, which is removed at teardown after Postfix (SIGTERM to its
master's PID, as ``postfix -c DIR stop`` does, but without its 1 s polling) and
Dovecot (SIGTERM to its PID) have stopped. Needs root (Postfix's master
runs as root and switches to the ``postfix`` user); without root, postfix or dovecot
the fixture calls ``unavailable`` (a skip locally, a failure under CI=true).
"""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.servers.availability import require_program, unavailable
from tests.servers.tls import ServerCert

__all__ = ["SubmissionServer", "submission_server"]

HOST = "127.0.0.1"
DOMAINS = ("example.test", "example.org")
USERNAME = "alice@example.test"
RECIPIENTS = ("alice@example.test", "bob@example.test", "@example.org")
UNKNOWN_RECIPIENT = "nobody@example.test"
POSTFIX_DAEMONS = "/usr/lib/postfix/sbin"
START_TIMEOUT = 20.0
# virtual(8) refuses uid 0; mail is written as nobody.
MAIL_USER = "nobody"

QUEUE_DIRS = {
    # name: (owner, group, mode), as Postfix's postfix-files sets them
    "active": ("postfix", None, 0o700),
    "bounce": ("postfix", None, 0o700),
    "corrupt": ("postfix", None, 0o700),
    "defer": ("postfix", None, 0o700),
    "deferred": ("postfix", None, 0o700),
    "flush": ("postfix", None, 0o700),
    "hold": ("postfix", None, 0o700),
    "incoming": ("postfix", None, 0o700),
    "private": ("postfix", None, 0o700),
    "saved": ("postfix", None, 0o700),
    "trace": ("postfix", None, 0o700),
    "maildrop": ("postfix", "postdrop", 0o730),
    "public": ("postfix", "postdrop", 0o710),
    "pid": ("root", "root", 0o755),
}

MASTER_CF = """\
# service type  private unpriv  chroot  wakeup  maxproc command + args
{host}:{starttls_port} inet n   -       n       -       -       smtpd
  -o syslog_name=postfix/submission
  -o smtpd_tls_security_level=encrypt
  -o smtpd_sasl_auth_enable=yes
{host}:{tls_port} inet n        -       n       -       -       smtpd
  -o syslog_name=postfix/submissions
  -o smtpd_tls_wrappermode=yes
  -o smtpd_tls_security_level=encrypt
  -o smtpd_sasl_auth_enable=yes
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
virtual   unix  -       n       n       -       -       virtual
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""

MAIN_CF = """\
compatibility_level = 3.6
config_directory = {root}/etc
queue_directory = {root}/queue
data_directory = {root}/data
mail_owner = postfix
setgid_group = postdrop
maillog_file = {root}/log/postfix.log
maillog_file_prefixes = /var, /dev/stdout, {root}/log
myhostname = mail.example.test
mydomain = example.test
myorigin = example.test
mydestination =
mynetworks = 127.0.0.1/32
inet_interfaces = {host}
inet_protocols = ipv4
smtpd_banner = $myhostname ESMTP Mailer test Postfix
biff = no
alias_maps =
alias_database =
# Nothing leaves this machine: only the virtual domains below are delivered.
local_transport = error:5.1.1 local delivery is disabled in tests
default_transport = error:5.7.1 delivery outside the test domains is disabled
relay_transport = error:5.7.1 relaying is disabled in tests
relay_domains =
smtp_dns_support_level = disabled
smtpd_peername_lookup = no
virtual_mailbox_domains = {domains}
virtual_mailbox_base = {root}/mail
virtual_mailbox_maps = inline:{{ {mailbox_map} }}
virtual_uid_maps = static:{uid}
virtual_gid_maps = static:{gid}
virtual_minimum_uid = 1
virtual_mailbox_limit = 0
message_size_limit = 67108864
smtputf8_enable = yes
# Submission only: authenticate, and only to the test domains.
smtpd_relay_restrictions = reject_unauth_destination
smtpd_recipient_restrictions = permit_sasl_authenticated, reject
smtpd_sasl_auth_enable = no
smtpd_sasl_type = dovecot
smtpd_sasl_path = {root}/dovecot/run/auth-postfix
smtpd_sasl_security_options = noanonymous
smtpd_sasl_tls_security_options = noanonymous
smtpd_sasl_authenticated_header = no
smtpd_tls_auth_only = yes
smtpd_tls_security_level = may
smtpd_tls_chain_files = {root}/tls/key.pem, {root}/tls/cert.pem
smtpd_tls_loglevel = 1
smtpd_tls_session_cache_database =
smtpd_tls_received_header = yes
delay_warning_time = 0
# No tarpit after a client error (default: 1 s), so refusal tests stay fast.
smtpd_error_sleep_time = 0s
notify_classes =
"""

DOVECOT_CONF = """\
instance_name = {instance}
base_dir = {root}/dovecot/run
state_dir = {root}/dovecot/state
log_path = {root}/dovecot/dovecot.log
protocols =
ssl = no
auth_mechanisms = plain login cram-md5
# Postfix only offers AUTH after TLS (smtpd_tls_auth_only).
disable_plaintext_auth = no
auth_verbose = yes
# A failed login answers at once (default: 2 s), so wrong-password tests stay fast.
auth_failure_delay = 0
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/dovecot/users
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={root}/mail
}}
# No growing per-IP delay after failed logins (2, 4, 8, 15 s): every test is 127.0.0.1.
service anvil {{
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
service auth {{
  unix_listener auth-postfix {{
    mode = 0660
    user = postfix
    group = postfix
  }}
}}
"""


def _free_ports(count: int) -> list[int]:
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind((HOST, 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _chown(path: Path, user: str, group: str | None = None) -> None:
    entry = pwd.getpwnam(user)
    gid = grp.getgrnam(group).gr_gid if group else entry.pw_gid
    os.chown(path, entry.pw_uid, gid)


def _banner(port: int, timeout: float) -> bytes:
    with socket.create_connection((HOST, port), timeout=timeout) as sock:
        return sock.recv(512)


@dataclass
class SubmissionServer:
    host: str
    starttls_port: int
    tls_port: int
    username: str
    password: str
    maildir: Path
    root: Path
    startup_seconds: float
    domains: tuple[str, ...] = DOMAINS
    recipients: tuple[str, ...] = RECIPIENTS
    unknown_recipient: str = UNKNOWN_RECIPIENT
    _dovecot: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _postfix_started: bool = field(default=False, repr=False)

    @property
    def config_dir(self) -> Path:
        return self.root / "etc"

    def _files(self) -> list[Path]:
        files = [
            path
            for sub in ("new", "cur")
            if (self.maildir / sub).is_dir()
            for path in (self.maildir / sub).iterdir()
            if path.is_file()
        ]
        # Maildir names begin with the delivery time in seconds; mtime breaks ties.
        return sorted(files, key=lambda path: (path.stat().st_mtime_ns, path.name))

    def messages(self) -> list[bytes]:
        """The delivered messages' bytes, oldest first."""
        return [path.read_bytes() for path in self._files()]

    def clear_messages(self) -> None:
        """Empty the Maildir (mail an earlier test sent may still arrive afterwards)."""
        for path in self._files():
            path.unlink(missing_ok=True)

    def wait_for_messages(
        self, count: int, timeout: float = 15.0, *, containing: bytes | str | None = None
    ) -> list[bytes]:
        """Wait until at least ``count`` messages are delivered; fail after ``timeout`` s.

        With ``containing``, only the messages that contain it count (and are returned).
        """
        needle = containing.encode() if isinstance(containing, str) else containing
        deadline = time.monotonic() + timeout
        while True:
            found = [m for m in self.messages() if needle is None or needle in m]
            if len(found) >= count:
                return found
            if time.monotonic() >= deadline:
                raise AssertionError(
                    f"{len(found)} of {count} messages delivered to {self.maildir} "
                    f"after {timeout} s\n--- logs ---\n{self.log_text()[-4000:]}"
                )
            time.sleep(0.05)

    def wait_for_message(self, token: bytes | str, timeout: float = 15.0) -> bytes:
        """The first delivered message containing ``token`` (e.g. a unique Subject).

        The server is shared by the session; this is the way to find one test's mail.
        """
        needle = token.encode() if isinstance(token, str) else token
        deadline = time.monotonic() + timeout
        while True:
            for message in self.messages():
                if needle in message:
                    return message
            if time.monotonic() >= deadline:
                raise AssertionError(
                    f"no message containing {needle!r} delivered to {self.maildir} "
                    f"after {timeout} s\n--- logs ---\n{self.log_text()[-4000:]}"
                )
            time.sleep(0.05)

    def log_text(self) -> str:
        parts = []
        for name in ("log/postfix.log", "dovecot/dovecot.log", "log/start.log"):
            path = self.root / name
            if path.exists():
                parts.append(f"=== {name} ===\n" + path.read_text("utf-8", "replace"))
        return "\n".join(parts)

    def stop(self) -> None:
        """Stop Postfix (its master, by PID) and Dovecot (by PID), both at once."""
        master = _master_pid(self.root) if self._postfix_started else None
        self._postfix_started = False
        dovecot, self._dovecot = self._dovecot, None
        if master is not None:
            _signal(master, signal.SIGTERM)  # what `postfix stop` does
        if dovecot is not None and dovecot.poll() is None:
            _signal(dovecot.pid, signal.SIGTERM)
        if master is not None and not _wait_gone(master, 10):
            # What `postfix stop` does when the master does not go: the whole group.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(master, signal.SIGKILL)
            _wait_gone(master, 5)
        if dovecot is not None:
            try:
                dovecot.wait(timeout=10)
            except subprocess.TimeoutExpired:
                _signal(dovecot.pid, signal.SIGKILL)
                dovecot.wait(timeout=5)


def _signal(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie nobody has reaped yet is gone for our purpose
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rpartition(")")[2].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while _alive(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)
    return True


def _master_pid(root: Path) -> int | None:
    """The PID of this instance's running master, checked against its command line.

    A PID file can outlive its process; the PID might then belong to someone else.
    """
    try:
        pid = int((root / "queue/pid/master.pid").read_text().split()[0])
        command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (OSError, ValueError, IndexError):
        return None
    return pid if str(root / "etc").encode() in command else None


def _write_config(root: Path, cert: ServerCert, password: str) -> None:
    """Everything but the ports: TLS files, queue, data, Maildir and Dovecot."""
    nobody = pwd.getpwnam(MAIL_USER)
    for sub in ("etc", "log", "tls", "dovecot", "mail"):
        (root / sub).mkdir(exist_ok=True)
    cert.write(root / "tls")

    queue = root / "queue"
    queue.mkdir(exist_ok=True)
    os.chmod(queue, 0o755)
    for name, (owner, group, mode) in QUEUE_DIRS.items():
        path = queue / name
        path.mkdir(exist_ok=True)
        _chown(path, owner, group)
        os.chmod(path, mode)
    data = root / "data"
    data.mkdir(exist_ok=True)
    _chown(data, "postfix")
    os.chmod(data, 0o700)

    maildir = root / "mail/Maildir"
    for sub in ("", "new", "cur", "tmp"):
        (maildir / sub).mkdir(parents=True, exist_ok=True)
        os.chown(maildir / sub, nobody.pw_uid, nobody.pw_gid)
        os.chmod(maildir / sub, 0o700)

    users = root / "dovecot/users"
    users.touch(mode=0o600)
    users.write_text(f"{USERNAME}:{{PLAIN}}{password}::::::\n")
    _chown(users, "dovecot")  # read by Dovecot's auth process, which runs as dovecot
    (root / "dovecot/dovecot.conf").write_text(
        DOVECOT_CONF.format(
            root=root,
            instance=root.name,
            uid=nobody.pw_uid,
            gid=nobody.pw_gid,
        )
    )


def _write_postfix_config(root: Path, starttls_port: int, tls_port: int) -> None:
    nobody = pwd.getpwnam(MAIL_USER)
    mailbox_map = ", ".join(f"{address}=Maildir/" for address in RECIPIENTS)
    (root / "etc/main.cf").write_text(
        MAIN_CF.format(
            root=root,
            host=HOST,
            domains=", ".join(DOMAINS),
            mailbox_map=mailbox_map,
            uid=nobody.pw_uid,
            gid=nobody.pw_gid,
        )
    )
    (root / "etc/master.cf").write_text(
        MASTER_CF.format(host=HOST, starttls_port=starttls_port, tls_port=tls_port)
    )
    # Postfix rereads a configuration file until its mtime is a second or more in the
    # past (dict_load_file: no reading of a file still being written): 1.5 s per start.
    past = time.time() - 60
    for name in ("main.cf", "master.cf"):
        os.utime(root / "etc" / name, (past, past))


def _start_dovecot(root: Path, dovecot: str, deadline: float) -> subprocess.Popen[bytes]:
    with open(root / "log/start.log", "ab") as log:
        process = subprocess.Popen(
            [dovecot, "-F", "-c", str(root / "dovecot/dovecot.conf")],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    socket_path = root / "dovecot/run/auth-postfix"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"dovecot exited with {process.returncode}")
        if socket_path.exists():
            try:
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                    sock.settimeout(2)
                    sock.connect(str(socket_path))
                    sock.sendall(b"VERSION\t1\t1\nCPID\t1\n")
                    if b"VERSION" in sock.recv(4096):
                        return process
            except OSError:
                pass
        time.sleep(0.02)
    process.kill()
    process.wait(timeout=5)
    raise RuntimeError("dovecot's auth socket did not come up in time")


def _start_postfix(root: Path, master: str, deadline: float, ports: list[int]) -> None:
    # `postfix start` runs postfix-script, which logs "starting" through postlog before
    # postlogd exists (a 1.5-2 s stall) and checks the system's files; what it then
    # runs is `master -w`: start the daemon, wait until it has initialised.
    result = subprocess.run(
        [master, "-c", str(root / "etc"), "-w"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=max(1.0, deadline - time.monotonic()),
        check=False,
    )
    with open(root / "log/start.log", "ab") as log:
        log.write(b"$ master -w\n" + result.stdout + result.stderr)
    if result.returncode != 0:
        raise RuntimeError(
            f"postfix master failed ({result.returncode}): {result.stderr.decode(errors='replace')}"
        )
    starttls_port = ports[0]
    for port in ports:
        while True:
            try:
                if port != starttls_port:  # implicit TLS: no plain banner to read
                    with socket.create_connection((HOST, port), timeout=2):
                        break
                elif _banner(port, 2).startswith(b"220"):
                    break
            except OSError:
                pass
            if time.monotonic() >= deadline:
                raise RuntimeError(f"postfix is not listening on {HOST}:{port}")
            time.sleep(0.05)


def start_submission_server(cert: ServerCert) -> SubmissionServer:
    """Start the private Postfix + Dovecot pair (the caller must ``stop()`` it)."""
    if os.geteuid() != 0:
        unavailable("root privileges (for a private Postfix instance)")
    require_program("postfix", "/usr/sbin/postfix")
    postconf = require_program("postconf", "/usr/sbin/postconf")
    daemons = subprocess.run(
        [postconf, "-dh", "daemon_directory"], capture_output=True, text=True, timeout=30
    ).stdout.strip()
    master = os.path.join(daemons or POSTFIX_DAEMONS, "master")
    if not os.access(master, os.X_OK):
        unavailable(f"Postfix's master daemon ({master})")
    dovecot = require_program("dovecot", "/usr/sbin/dovecot")
    for user in ("postfix", MAIL_USER, "dovecot", "dovenull"):
        try:
            pwd.getpwnam(user)
        except KeyError:
            unavailable(f"the system user {user!r}")

    started = time.monotonic()
    root = Path(tempfile.mkdtemp(prefix="mailer-postfix-"))
    os.chmod(root, 0o755)  # postfix, dovecot and nobody reach sockets and mail in here
    server = SubmissionServer(
        host=HOST,
        starttls_port=0,
        tls_port=0,
        username=USERNAME,
        password=secrets.token_urlsafe(18),
        maildir=root / "mail/Maildir",
        root=root,
        startup_seconds=0.0,
    )
    try:
        _write_config(root, cert, server.password)
        deadline = time.monotonic() + START_TIMEOUT
        server._dovecot = _start_dovecot(root, dovecot, deadline)
        for attempt in range(3):  # a free port can be taken before Postfix binds it
            server.starttls_port, server.tls_port = _free_ports(2)
            _write_postfix_config(root, server.starttls_port, server.tls_port)
            server._postfix_started = True
            try:
                _start_postfix(root, master, deadline, [server.starttls_port, server.tls_port])
                break
            except RuntimeError:
                if attempt == 2 or time.monotonic() >= deadline:
                    raise
                pid = _master_pid(root)
                if pid is not None:
                    _signal(pid, signal.SIGTERM)
                    _wait_gone(pid, 10)
        server.startup_seconds = time.monotonic() - started
        return server
    except BaseException as error:
        logs = server.log_text()
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
        if isinstance(error, RuntimeError):
            raise RuntimeError(f"{error}\n{logs[-6000:]}") from error
        raise


@pytest.fixture(scope="session")
def submission_server(server_cert: ServerCert) -> Iterator[SubmissionServer]:
    server = start_submission_server(server_cert)
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(server.root, ignore_errors=True)
