"""Fixtures for the account tests, until tests/conftest.py imports them for all."""

from tests.servers.secret_service import memory_keyring, secret_service  # noqa: F401
