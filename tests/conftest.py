"""Fixtures shared by every test: the loopback peers of tests/servers/.

Qt is told to draw offscreen before anything can import it.
"""

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from tests.servers.aiosmtpd_server import aiosmtpd_factory
from tests.servers.dnsmasq import dnsmasq_factory
from tests.servers.https_server import https_server_factory
from tests.servers.postfix_dovecot import submission_server
from tests.servers.silent import silent_port
from tests.servers.smtp_sink import smtp_sink_factory
from tests.servers.tls import (
    ca_bundle,
    expired_cert,
    self_signed_cert,
    server_cert,
    tls_ca,
    trust_test_ca,
    wrong_host_cert,
)

__all__ = [
    "aiosmtpd_factory",
    "ca_bundle",
    "dnsmasq_factory",
    "expired_cert",
    "https_server_factory",
    "self_signed_cert",
    "server_cert",
    "silent_port",
    "smtp_sink_factory",
    "submission_server",
    "tls_ca",
    "trust_test_ca",
    "wrong_host_cert",
]

try:
    from tests.servers.secret_service import memory_keyring, secret_service
except ImportError:  # not written yet, or its imports are missing here
    pass
else:
    __all__ += ["memory_keyring", "secret_service"]
