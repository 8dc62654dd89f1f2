"""Skip locally, fail in CI: the rule for tests that need a real server.

A developer without Postfix installed can still run the suite; CI (CI=true)
must have every peer, so there a missing one is a failure, never a skip.
"""

from __future__ import annotations

import os
import shutil
from typing import NoReturn

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def unavailable(what: str) -> NoReturn:
    """Report a missing peer: a skip on a workstation, a failure under CI=true."""
    if in_ci():
        pytest.fail(f"{what} is not available, and CI=true requires it", pytrace=False)
    pytest.skip(f"{what} is not available")


def require_program(name: str, *candidates: str) -> str:
    """Path of an executable (searched on PATH and in the given places)."""
    found = shutil.which(name)
    if found:
        return found
    for candidate in candidates:
        if os.access(candidate, os.X_OK):
            return candidate
    unavailable(f"the program {name!r}")
