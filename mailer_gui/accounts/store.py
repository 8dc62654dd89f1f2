"""The accounts file: every account's settings, in one JSON file, never a password.

    {"schema": 1, "default": "work", "accounts": [{"name": "work", "email": ...}, ...]}

Each account object holds the settings of ACCOUNT_FIELDS (accounts.model).
Keys this version does not know, in the file or in an account, are kept as
they are, so an older Mailer never erases what a newer one wrote. Writes are
atomic, 0600 in a 0700 folder, under a lock so the GUI and the CLI cannot lose
each other's changes. Passwords live in the keyring (accounts.secrets).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mailer_gui.accounts.model import FIELDS_BY_NAME, Account, AccountError
from mailer_gui.paths import ensure_private_dir, write_private_file_atomic

if sys.platform != "win32":
    import fcntl

SCHEMA = 1

# Keys that would mean someone put a secret into the file by hand.
_SECRET_KEYS = frozenset(
    {"password", "passwd", "pass", "secret", "token", "access_token", "refresh_token"}
)


class AccountStoreError(Exception):
    """The accounts file cannot be used as it is; the message says why and what to do."""

    def __init__(self, message: str, *, path: Path, corrupt_copy: Path | None = None) -> None:
        super().__init__(message)
        self.path = path
        self.corrupt_copy = corrupt_copy


class UnknownAccount(AccountStoreError):
    """No account has the name asked for."""

    def __init__(self, message: str, *, path: Path, name: str) -> None:
        super().__init__(message, path=path)
        self.name = name


class AccountExists(AccountStoreError):
    """An account with that name (ignoring case) is already there."""

    def __init__(self, message: str, *, path: Path, name: str) -> None:
        super().__init__(message, path=path)
        self.name = name


@dataclass
class _Document:
    """The parsed file: the raw JSON (to write back) and the accounts read from it."""

    raw: dict[str, Any] = field(default_factory=lambda: {"schema": SCHEMA, "default": None})
    entries: list[dict[str, Any]] = field(default_factory=list)
    accounts: list[Account] = field(default_factory=list)

    def index(self, name: str) -> int | None:
        # Names are unique ignoring case: Windows Credential Manager, where the
        # password is kept under the name, does not tell "Work" from "work".
        wanted = name.casefold()
        for position, account in enumerate(self.accounts):
            if account.name.casefold() == wanted:
                return position
        return None

    def default_account(self) -> Account | None:
        marked = self.raw.get("default")
        if isinstance(marked, str):
            position = self.index(marked)
            if position is not None:
                return self.accounts[position]
        return self.accounts[0] if len(self.accounts) == 1 else None

    def to_bytes(self) -> bytes:
        self.raw["accounts"] = self.entries
        return (json.dumps(self.raw, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


class AccountStore:
    """The accounts in the JSON file at `path` (usually AppPaths.accounts_file).

    Every call reads the file afresh, so another process's changes are seen;
    it is parsed again only when its bytes differ from those parsed last time
    (the outbox asks for an account at every connection it opens).
    Removing an account here does not touch its keyring entry: call
    accounts.secrets.delete_password(name) too.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._path = Path(path)
        # The bytes parsed last and what came of them; never changed once made
        # (`_update` changes a document parsed for it alone). Not the file's
        # inode and times: a file system may give a new file the number of the
        # one it replaced, and its times may be as coarse as two seconds.
        self._parsed: tuple[bytes, _Document] | None = None

    @property
    def path(self) -> Path:
        return self._path

    def load(self) -> list[Account]:
        """All accounts, in the file's order; [] when there is no file yet."""
        return list(self._read().accounts)

    def get(self, name: str) -> Account:
        """The account called `name` (ignoring case); UnknownAccount if none is."""
        document = self._read()
        return document.accounts[self._require(document, name)]

    def default(self) -> Account | None:
        """The account marked default, else the only account, else None."""
        return self._read().default_account()

    def add(self, account: Account, make_default: bool = False) -> None:
        """Add `account`; AccountExists if its name is taken."""
        with self._update() as document:
            if document.index(account.name) is not None:
                raise AccountExists(
                    f"There is already an account named {account.name!r}; "
                    "choose another name or remove that account first.",
                    path=self._path,
                    name=account.name,
                )
            # The default stays the default: an only account, the default
            # without a mark, is marked before a second one joins it; the
            # first account is the default from the start.
            current = document.default_account()
            if current is not None:
                document.raw["default"] = current.name
            elif not document.accounts:
                make_default = True
            document.entries.append(account.to_json())
            document.accounts.append(account)
            if make_default:
                document.raw["default"] = account.name

    def remove(self, name: str) -> Account:
        """Remove the account called `name` and return it; UnknownAccount if none is."""
        with self._update() as document:
            position = self._require(document, name)
            default = document.default_account()
            removed = document.accounts.pop(position)
            del document.entries[position]
            if default is removed:
                # The next account becomes the default, as in other mail
                # programs: sending without --account keeps working.
                document.raw["default"] = document.accounts[0].name if document.accounts else None
            return removed

    def replace(self, name: str, account: Account) -> None:
        """Put `account` in place of the account called `name`, in one atomic write.

        The account keeps its place in the file, its default mark and any keys
        this version of Mailer does not know. AccountExists when the new name
        belongs to another account; UnknownAccount when `name` is not there.
        """
        with self._update() as document:
            position = self._require(document, name)
            other = document.index(account.name)
            if other is not None and other != position:
                raise AccountExists(
                    f"There is already an account named {account.name!r}; choose another name.",
                    path=self._path,
                    name=account.name,
                )
            unknown = {
                key: value
                for key, value in document.entries[position].items()
                if key not in FIELDS_BY_NAME and key != "identities"
            }
            document.entries[position] = {**account.to_json(), **unknown}
            document.accounts[position] = account
            marked = document.raw.get("default")
            if isinstance(marked, str) and marked.casefold() == name.casefold():
                document.raw["default"] = account.name

    def set_default(self, name: str | None) -> None:
        """Mark the account called `name` as the default (None: no marked default)."""
        with self._update() as document:
            if name is None:
                document.raw["default"] = None
            else:
                document.raw["default"] = document.accounts[self._require(document, name)].name

    # --- reading and writing --------------------------------------------------

    def _require(self, document: _Document, name: str) -> int:
        position = document.index(name)
        if position is None:
            known = ", ".join(repr(account.name) for account in document.accounts)
            raise UnknownAccount(
                f"There is no account named {name!r}. "
                + (f"The accounts are: {known}." if known else "No account is set up yet."),
                path=self._path,
                name=name,
            )
        return position

    @contextlib.contextmanager
    def _update(self) -> Iterator[_Document]:
        """Read, let the caller change the document, write it back: all under the lock."""
        ensure_private_dir(self._path.parent)
        with self._locked():
            document = self._read(fresh=True)
            yield document
            write_private_file_atomic(self._path, document.to_bytes())

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        lock_path = self._path.with_name(self._path.name + ".lock")
        descriptor = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            if sys.platform != "win32":
                fcntl.flock(descriptor, fcntl.LOCK_EX)
            yield
        finally:
            os.close(descriptor)  # closing releases the lock

    def _read(self, *, fresh: bool = False) -> _Document:
        """The file's document: parsed now, or as parsed last time when the file
        holds the same bytes (``fresh``: parsed now in any case)."""
        try:
            data = self._path.read_bytes()
        except FileNotFoundError:
            return _Document()
        except OSError as error:
            raise AccountStoreError(
                f"The accounts file {self._path} cannot be read: {error.strerror}.",
                path=self._path,
            ) from error
        parsed = self._parsed
        if not fresh and parsed is not None and parsed[0] == data:
            return parsed[1]
        try:
            document = self._parse(data)
        except _Corrupt as corrupt:
            copy = self._keep_corrupt_copy(data)
            raise AccountStoreError(
                f"The accounts file {self._path} is damaged ({corrupt.reason}), so no "
                f"account was loaded. A copy was kept as {copy}. Fix the file or move it "
                "away to start with no accounts; nothing was deleted.",
                path=self._path,
                corrupt_copy=copy,
            ) from None
        if not fresh:
            self._parsed = (data, document)
        return document

    def _parse(self, data: bytes) -> _Document:
        try:
            raw = json.loads(data.decode("utf-8-sig"))
        except UnicodeDecodeError:
            raise _Corrupt("it is not UTF-8 text") from None
        except json.JSONDecodeError as error:
            raise _Corrupt(f"not valid JSON: {error.msg} at line {error.lineno}") from None
        if not isinstance(raw, dict):
            raise _Corrupt("the top level is not a JSON object")
        schema = raw.get("schema")
        if not isinstance(schema, int) or isinstance(schema, bool) or schema < 1:
            raise _Corrupt(f"'schema' must be a positive whole number, not {schema!r}")
        if schema > SCHEMA:
            raise AccountStoreError(
                f"The accounts file {self._path} was written by a newer Mailer "
                f"(format {schema}; this version reads format {SCHEMA}). "
                "Update Mailer to use it; the file was left untouched.",
                path=self._path,
            )
        default = raw.get("default")
        if default is not None and not isinstance(default, str):
            raise _Corrupt(f"'default' must be an account name or null, not {default!r}")
        entries = raw.get("accounts")
        if not isinstance(entries, list):
            raise _Corrupt("'accounts' is missing or not a list")
        document = _Document(raw=raw)
        for number, entry in enumerate(entries, start=1):
            if not isinstance(entry, dict):
                raise _Corrupt(f"account #{number} is not a JSON object")
            self._refuse_secrets(entry, number)
            try:
                account = Account.from_json(entry)
            except AccountError as error:
                raise _Corrupt(f"account #{number}: {error}") from None
            if document.index(account.name) is not None:
                raise _Corrupt(f"two accounts are named {account.name!r}")
            document.entries.append(entry)
            document.accounts.append(account)
        return document

    def _refuse_secrets(self, entry: dict[str, Any], number: int) -> None:
        # Not "damaged": copying it aside would only spread the secret to a second file.
        found = sorted(key for key in entry if key.lower() in _SECRET_KEYS)
        if found:
            raise AccountStoreError(
                f"Account #{number} in {self._path} holds {', '.join(map(repr, found))}. "
                "Mailer never keeps passwords or tokens in this file: remove the key, "
                "and store the password in the system keyring or use a password command.",
                path=self._path,
            )

    def _keep_corrupt_copy(self, data: bytes) -> Path:
        """Copy the damaged bytes next to the file, once per distinct content."""
        prefix = f"{self._path.name}.corrupt-"
        for existing in sorted(self._path.parent.glob(prefix + "*")):
            with contextlib.suppress(OSError):
                if existing.read_bytes() == data:
                    return existing
        stamp = time.strftime("%Y%m%d-%H%M%S")
        copy = self._path.with_name(prefix + stamp)
        counter = 1
        while copy.exists():
            counter += 1
            copy = self._path.with_name(f"{prefix}{stamp}-{counter}")
        write_private_file_atomic(copy, data)
        return copy


class _Corrupt(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
