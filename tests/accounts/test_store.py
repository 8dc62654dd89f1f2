"""The accounts file: atomic 0600 writes, a damaged file kept aside, no secrets in it."""

from __future__ import annotations

import json
import os
import re
import stat
import threading
from pathlib import Path
from typing import Any

import pytest

from mailer_gui.accounts.model import Account
from mailer_gui.accounts.secrets import store_password
from mailer_gui.accounts.store import (
    AccountExists,
    AccountStore,
    AccountStoreError,
    UnknownAccount,
)
from mailer_gui.paths import resolve_paths
from mailer_gui.smtp.settings import Security
from tests.servers.secret_service import MemoryKeyring

posix_only = pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")


def account(name: str = "work", **changes: Any) -> Account:
    values: dict[str, Any] = {
        "name": name,
        "email": f"{name}@example.org",
        "host": "smtp.example.org",
    }
    values.update(changes)
    return Account(**values)


@pytest.fixture
def store(tmp_path: Path) -> AccountStore:
    return AccountStore(resolve_paths(tmp_path / "home", environ={}).accounts_file)


def mode_of(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def write_raw(store: AccountStore, document: Any) -> bytes:
    store.path.parent.mkdir(parents=True, exist_ok=True)
    data = (document if isinstance(document, str) else json.dumps(document)).encode()
    store.path.write_bytes(data)
    return data


def corrupt_copies(store: AccountStore) -> list[Path]:
    return sorted(store.path.parent.glob("accounts.json.corrupt-*"))


GOOD_ENTRY = {"name": "work", "email": "ana@example.org", "host": "smtp.example.org"}


def test_no_file_means_no_accounts_and_nothing_created(store: AccountStore) -> None:
    assert store.load() == []
    assert store.default() is None
    assert not store.path.parent.exists()


@posix_only
def test_add_writes_a_0600_file_in_a_0700_folder(store: AccountStore) -> None:
    previous = os.umask(0)  # the modes must not depend on the umask
    try:
        store.add(account())
    finally:
        os.umask(previous)
    assert mode_of(store.path) == 0o600
    assert mode_of(store.path.parent) == 0o700
    document = json.loads(store.path.read_text(encoding="utf-8"))
    # The first account is the default from the start.
    assert document == {"schema": 1, "default": "work", "accounts": [account().to_json()]}


@posix_only
def test_a_loose_existing_folder_is_tightened_on_write(store: AccountStore) -> None:
    store.path.parent.mkdir(parents=True)
    os.chmod(store.path.parent, 0o755)
    store.add(account())
    assert mode_of(store.path.parent) == 0o700


def test_accounts_come_back_as_they_went_in(store: AccountStore) -> None:
    first = account("work", security=Security.TLS, display_name="Ana Example")
    second = account("home", secret_source="command", password_command="pass show home")
    store.add(first)
    store.add(second)
    assert store.load() == [first, second]
    assert store.get("home") == second
    assert store.get("WORK") == first  # names are matched ignoring case


def test_adding_a_taken_name_fails_and_changes_nothing(store: AccountStore) -> None:
    store.add(account("work"))
    before = store.path.read_bytes()
    with pytest.raises(AccountExists, match="already an account named 'Work'"):
        store.add(account("Work"))
    assert store.path.read_bytes() == before


def test_unknown_names_say_which_accounts_exist(store: AccountStore) -> None:
    with pytest.raises(UnknownAccount, match="No account is set up yet"):
        store.get("work")
    store.add(account("work"))
    store.add(account("home"))
    with pytest.raises(UnknownAccount, match="'work', 'home'") as caught:
        store.get("office")
    assert caught.value.name == "office"
    with pytest.raises(UnknownAccount):
        store.remove("office")
    with pytest.raises(UnknownAccount):
        store.set_default("office")


def test_the_first_account_stays_the_default(store: AccountStore) -> None:
    store.add(account("work"))
    assert store.default() == account("work")
    store.add(account("home"))
    assert store.default() == account("work")  # a second one changes nothing
    # A file written by hand, its only account unmarked: marked before a second joins.
    write_raw(store, {"schema": 1, "default": None, "accounts": [GOOD_ENTRY]})
    assert store.default() is not None and store.default().name == GOOD_ENTRY["name"]
    store.add(account("home"))
    assert json.loads(store.path.read_text(encoding="utf-8"))["default"] == GOOD_ENTRY["name"]
    # Several unmarked (by hand, or unmarked on purpose): no guessing.
    store.set_default(None)
    store.add(account("office"))
    assert store.default() is None


def test_marked_default(store: AccountStore) -> None:
    store.add(account("work"))
    store.add(account("home"), make_default=True)
    assert store.default() == account("home")
    store.set_default("WORK")
    assert store.default() == account("work")
    assert json.loads(store.path.read_text(encoding="utf-8"))["default"] == "work"
    store.set_default(None)
    assert store.default() is None


def test_removing_the_default_makes_the_next_one_the_default(store: AccountStore) -> None:
    store.add(account("work"), make_default=True)
    store.add(account("home"))
    store.add(account("office"))
    assert store.remove("office") == account("office")
    assert store.default() == account("work")  # not the default: nothing changes
    assert store.remove("work") == account("work")
    assert [a.name for a in store.load()] == ["home"]
    assert json.loads(store.path.read_text(encoding="utf-8"))["default"] == "home"
    assert store.remove("home") == account("home")
    assert json.loads(store.path.read_text(encoding="utf-8"))["default"] is None


def test_unknown_keys_survive_a_rewrite(store: AccountStore) -> None:
    entry = dict(GOOD_ENTRY, signature_file="~/sig.txt", color="teal")
    write_raw(store, {"schema": 1, "default": "work", "accounts": [entry], "ui": {"x": 1}})
    store.add(account("home"))
    document = json.loads(store.path.read_text(encoding="utf-8"))
    assert document["ui"] == {"x": 1}
    assert document["accounts"][0] == entry
    assert document["default"] == "work"


def test_nothing_but_the_accounts_file_and_its_lock_is_left(store: AccountStore) -> None:
    store.add(account("work"))
    store.remove("work")
    assert sorted(os.listdir(store.path.parent)) == ["accounts.json", "accounts.json.lock"]


def test_concurrent_writers_lose_nothing(store: AccountStore) -> None:
    names = [f"acct{i}" for i in range(24)]
    errors: list[BaseException] = []

    def add(name: str) -> None:
        try:
            AccountStore(store.path).add(account(name))
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=add, args=(name,)) for name in names]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    assert sorted(a.name for a in store.load()) == sorted(names)


# --- a damaged file ------------------------------------------------------------

DAMAGED = [
    pytest.param('{"schema": 1, "accounts": [', "not valid JSON", id="truncated-json"),
    pytest.param("", "not valid JSON", id="empty-file"),
    pytest.param([GOOD_ENTRY], "top level", id="list-at-top"),
    pytest.param({"accounts": [GOOD_ENTRY]}, "schema", id="no-schema"),
    pytest.param({"schema": "1", "accounts": []}, "schema", id="schema-is-text"),
    pytest.param({"schema": 1}, "'accounts'", id="no-accounts"),
    pytest.param({"schema": 1, "accounts": {"work": GOOD_ENTRY}}, "'accounts'", id="dict"),
    pytest.param({"schema": 1, "accounts": ["work"]}, "account #1", id="entry-is-text"),
    pytest.param(
        {"schema": 1, "accounts": [dict(GOOD_ENTRY, port="587")]}, "account #1", id="bad-port"
    ),
    pytest.param(
        {"schema": 1, "accounts": [GOOD_ENTRY, dict(GOOD_ENTRY, name="WORK")]},
        "two accounts",
        id="duplicate-names",
    ),
    pytest.param({"schema": 1, "default": 3, "accounts": []}, "'default'", id="bad-default"),
]


@pytest.mark.parametrize(("content", "reason"), DAMAGED)
def test_a_damaged_file_is_kept_aside_and_reported(
    store: AccountStore, content: Any, reason: str
) -> None:
    original = write_raw(store, content)
    with pytest.raises(AccountStoreError) as caught:
        store.load()
    message = str(caught.value)
    assert str(store.path) in message
    assert reason in message
    assert "nothing was deleted" in message
    (copy,) = corrupt_copies(store)
    assert re.fullmatch(r"accounts\.json\.corrupt-\d{8}-\d{6}", copy.name)
    assert caught.value.corrupt_copy == copy
    assert str(copy) in message
    assert copy.read_bytes() == original
    assert store.path.read_bytes() == original  # the original stays where it was
    if os.name == "posix":
        assert mode_of(copy) == 0o600


def test_a_damaged_file_is_never_overwritten(store: AccountStore) -> None:
    original = write_raw(store, '{"schema": 1, "accounts": [{"name": "work"')
    with pytest.raises(AccountStoreError):
        store.add(account("home"))
    with pytest.raises(AccountStoreError):
        store.remove("work")
    with pytest.raises(AccountStoreError):
        store.default()
    assert store.path.read_bytes() == original
    assert len(corrupt_copies(store)) == 1  # the same damage is copied once


def test_each_different_damage_gets_its_own_copy(store: AccountStore) -> None:
    write_raw(store, "{")
    with pytest.raises(AccountStoreError):
        store.load()
    write_raw(store, "[")
    with pytest.raises(AccountStoreError):
        store.load()
    assert sorted(copy.read_bytes() for copy in corrupt_copies(store)) == [b"[", b"{"]


def test_a_newer_format_is_left_alone(store: AccountStore) -> None:
    original = write_raw(store, {"schema": 2, "accounts": "elsewhere"})
    with pytest.raises(AccountStoreError, match="newer Mailer"):
        store.load()
    assert corrupt_copies(store) == []
    with pytest.raises(AccountStoreError, match="newer Mailer"):
        store.add(account())
    assert store.path.read_bytes() == original


# --- no secret in the file -------------------------------------------------------


def test_the_file_never_holds_the_password(
    store: AccountStore, memory_keyring: MemoryKeyring
) -> None:
    password = "c0rrect-h0rse-b4ttery"
    work = account("work")
    store.add(work, make_default=True)
    store_password(work.name, password, service="mailer-gui")
    store.add(account("home", secret_source="command", password_command="pass show home"))
    store.set_default("home")
    for path in store.path.parent.iterdir():
        assert password.encode() not in path.read_bytes(), path
    for entry in json.loads(store.path.read_text(encoding="utf-8"))["accounts"]:
        assert not {key for key in entry if "password" in key} - {"password_command"}
    assert memory_keyring.passwords == {("mailer-gui", "work"): password}


def test_a_hand_written_password_is_refused_not_copied(store: AccountStore) -> None:
    write_raw(store, {"schema": 1, "accounts": [dict(GOOD_ENTRY, Password="hunter22")]})
    with pytest.raises(AccountStoreError, match="never keeps passwords") as caught:
        store.load()
    assert "hunter22" not in str(caught.value)
    assert corrupt_copies(store) == []


def test_replace_keeps_place_default_and_unknown_keys(store: AccountStore) -> None:
    store.add(account("home"))
    store.add(account("work"), make_default=True)
    document = json.loads(store.path.read_text())
    document["accounts"][1]["from_a_newer_version"] = [1, 2]
    store.path.write_text(json.dumps(document))

    store.replace("work", account("work", port=2525))
    assert [a.name for a in store.load()] == ["home", "work"]
    assert store.get("work").port == 2525
    assert store.default() is not None and store.default().name == "work"
    saved = json.loads(store.path.read_text())
    assert saved["accounts"][1]["from_a_newer_version"] == [1, 2]

    store.replace("work", account("office"))  # renamed: the default mark follows
    assert store.default() is not None and store.default().name == "office"
    with pytest.raises(AccountExists):
        store.replace("office", account("home"))
    with pytest.raises(UnknownAccount):
        store.replace("nobody", account("nobody"))


# --- reading again only what changed --------------------------------------------


def test_another_stores_changes_are_seen_by_a_store_that_read_before(store: AccountStore) -> None:
    store.add(account("work", port=587))
    assert store.get("work").port == 587
    other = AccountStore(store.path)  # another process, say the desktop app
    other.replace("work", account("work", port=465))
    other.add(account("home"))
    assert store.get("work").port == 465
    assert [a.name for a in store.load()] == ["work", "home"]


def test_a_change_that_keeps_the_files_size_and_times_is_read_again(store: AccountStore) -> None:
    """Rewritten in place to the same size, its times set back (a file system
    with coarse times, or one that gives a new file the old one's number):
    only the bytes tell, and they are what counts."""
    write_raw(store, {"schema": 1, "accounts": [{**GOOD_ENTRY, "port": 587}]})
    assert store.get("work").port == 587
    before = os.stat(store.path)
    with open(store.path, "r+b") as file:  # in place, no new file
        data = file.read()
        file.seek(0)
        file.write(data.replace(b"587", b"465"))
    os.utime(store.path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = os.stat(store.path)
    assert (after.st_ino, after.st_size, after.st_mtime_ns) == (
        before.st_ino, before.st_size, before.st_mtime_ns,
    )  # fmt: skip
    assert store.get("work").port == 465


def test_an_unchanged_file_is_not_parsed_again(
    store: AccountStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.add(account("work"))
    store.get("work")
    parsed: list[bytes] = []
    parse = store._parse
    monkeypatch.setattr(store, "_parse", lambda data: parsed.append(data) or parse(data))
    for _ in range(3):
        assert store.get("work").name == "work"
    assert parsed == []
    store.add(account("home"))  # a change: read once more, then no more
    assert store.get("home").name == "home"
    assert store.get("work").name == "work"
    assert len(parsed) == 2  # the change itself (read fresh, under the lock), then one read


def test_a_change_that_could_not_be_written_is_not_seen_afterwards(
    store: AccountStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A change works on a document of its own: when its write fails, the
    accounts read before (and kept) are still what the file holds."""
    store.add(account("work"))
    assert [a.name for a in store.load()] == ["work"]

    def full_disk(path: Path, data: bytes) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("mailer_gui.accounts.store.write_private_file_atomic", full_disk)
    with pytest.raises(OSError):
        store.add(account("home"), make_default=True)
    with pytest.raises(OSError):
        store.remove("work")
    assert [a.name for a in store.load()] == ["work"]
    default = store.default()
    assert default is not None and default.name == "work"


def test_a_file_that_goes_away_after_it_was_read_means_no_accounts(store: AccountStore) -> None:
    store.add(account("work"))
    assert store.load()
    store.path.unlink()
    assert store.load() == []
    with pytest.raises(UnknownAccount):
        store.get("work")
