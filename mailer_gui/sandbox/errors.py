"""The sandbox's one error: what went wrong, in words for a person."""

from __future__ import annotations


class SandboxError(Exception):
    """The sandbox cannot start or do what was asked; the message says why and what to do."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
