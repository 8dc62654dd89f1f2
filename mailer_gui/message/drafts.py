"""Unsent drafts on disk: one JSON file per draft in `AppPaths.drafts_dir`.

The composer autosaves what it holds as a `StoredDraft` every few seconds, so a
draft comes back after a crash; the main window lists the folder. Every file is
written whole or not at all (`paths.write_private_file_atomic`, 0600 in a 0700
folder). Pasted images are files of their own beside the JSON, named
``<id>.<digest>.<ext>``, so the JSON stays small and readable. A damaged file
is reported and left alone: it may be the only copy of someone's text.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final, get_args

from mailer_gui.message.draft import BodyFormat, InlineImage, Priority
from mailer_gui.paths import AppPaths, ensure_private_dir, write_private_file_atomic

FORMAT_VERSION: Final = 1
_FORMAT_KEY: Final = "mailer_draft"
_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_BODY_FORMATS: Final[tuple[str, ...]] = get_args(BodyFormat)
# Pasted images keep a familiar extension so the file opens from a file manager;
# anything else is stored as .bin (and can never end in .json).
_IMAGE_EXTENSIONS = frozenset({"png", "jpg", "jpeg", "gif", "webp", "bmp", "svg", "tif", "tiff"})


class DraftStoreError(Exception):
    """A draft file that cannot be read back; ``name`` is its file name."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"The draft {name} cannot be read: {reason}")
        self.name = name
        self.reason = reason


@dataclass(frozen=True)
class StoredDraft:
    """Everything an open composer holds, as the person left it.

    Addresses stay the text that was typed (an invalid one is kept, to be
    fixed later). ``id`` is None until the draft is first saved; a composer
    opened with a StoredDraft whose id is None starts a new draft filled in
    (from a mailto: link, say).
    """

    account: str = ""
    identity: str = ""  # the From address picked among the account's identities
    to: str = ""
    cc: str = ""
    bcc: str = ""
    subject: str = ""
    body: str = ""
    body_format: BodyFormat = "markdown"
    attachments: tuple[Path, ...] = ()
    inline_images: tuple[InlineImage, ...] = ()
    priority: Priority = Priority.NORMAL
    in_reply_to: str | None = None
    references: tuple[str, ...] = ()
    id: str | None = None
    updated_at: float = 0.0  # seconds since the epoch; set by save() when 0

    def same_content(self, other: StoredDraft) -> bool:
        """Whether both hold the same message, whatever their id and save time."""
        return replace(self, id=None, updated_at=0.0) == replace(other, id=None, updated_at=0.0)

    @property
    def title(self) -> str:
        """How a list of drafts names this one."""
        return self.subject.strip() or "(no subject)"


@dataclass(frozen=True)
class DamagedDraft:
    """A file in the drafts folder that could not be read, and why."""

    name: str
    reason: str


@dataclass(frozen=True)
class DraftListing:
    """The drafts that could be read, newest first, and the files that could not."""

    drafts: tuple[StoredDraft, ...]
    damaged: tuple[DamagedDraft, ...]


class DraftStore:
    """Reads and writes drafts in one folder; safe to call from several threads."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self._lock = threading.Lock()

    @classmethod
    def for_paths(cls, paths: AppPaths) -> DraftStore:
        return cls(paths.drafts_dir)

    def path_of(self, draft_id: str) -> Path:
        _check_id(draft_id)
        return self.directory / f"{draft_id}.json"

    # ------------------------------------------------------------ writing

    def save(self, draft: StoredDraft) -> str:
        """Write ``draft`` (a new id when it has none); its id.

        Images are written before the JSON that names them, and images no
        longer named are removed after it, so a crash at any point leaves a
        draft whose files are all there. ``updated_at`` 0 means now.
        """
        draft_id = draft.id or uuid.uuid4().hex
        _check_id(draft_id)
        updated_at = draft.updated_at or time.time()
        with self._lock:
            ensure_private_dir(self.directory)
            images: list[dict[str, Any]] = []
            kept: set[str] = set()
            for image in draft.inline_images:
                entry: dict[str, Any] = {"name": image.name, "content_type": image.content_type}
                if image.data is not None:
                    file_name = _image_file_name(draft_id, image)
                    target = self.directory / file_name
                    if not target.exists():  # named by its digest: same name, same bytes
                        write_private_file_atomic(target, image.data)
                    entry["file"] = file_name
                    kept.add(file_name)
                elif image.path is not None:
                    entry["path"] = os.fspath(image.path)
                images.append(entry)
            document = {
                _FORMAT_KEY: FORMAT_VERSION,
                "id": draft_id,
                "updated_at": updated_at,
                "account": draft.account,
                "identity": draft.identity,
                "to": draft.to,
                "cc": draft.cc,
                "bcc": draft.bcc,
                "subject": draft.subject,
                "body": draft.body,
                "body_format": draft.body_format,
                "attachments": [os.fspath(path) for path in draft.attachments],
                "inline_images": images,
                "priority": draft.priority.value,
                "in_reply_to": draft.in_reply_to,
                "references": list(draft.references),
            }
            # ASCII JSON: a lone surrogate (possible in pasted text or a file
            # name) is escaped and comes back as it was, instead of failing.
            data = json.dumps(document, indent=2).encode("ascii") + b"\n"
            write_private_file_atomic(self.path_of(draft_id), data)
            self._remove_images(draft_id, keep=kept)
        return draft_id

    def delete(self, draft_id: str) -> None:
        """Remove a draft and its images; a draft already gone is not an error."""
        path = self.path_of(draft_id)
        with self._lock:
            path.unlink(missing_ok=True)  # first: never a draft whose images are gone
            self._remove_images(draft_id, keep=())

    def _remove_images(self, draft_id: str, keep: Iterable[str]) -> None:
        kept = set(keep)
        if not self.directory.is_dir():
            return
        for path in self.directory.glob(f"{draft_id}.*"):
            if path.suffix != ".json" and path.name not in kept:
                path.unlink(missing_ok=True)

    # ------------------------------------------------------------ reading

    def load(self, draft_id: str) -> StoredDraft:
        """The draft with this id; DraftStoreError when it is missing or damaged."""
        path = self.path_of(draft_id)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            raise DraftStoreError(path.name, "the file is not there (deleted?)") from None
        except OSError as exc:
            raise DraftStoreError(path.name, exc.strerror or str(exc)) from exc
        return self._parse(path.name, draft_id, raw)

    def list(self) -> DraftListing:
        """Every draft, newest first; damaged files are named, skipped and kept."""
        if not self.directory.is_dir():
            return DraftListing((), ())
        drafts: list[StoredDraft] = []
        damaged: list[DamagedDraft] = []
        for path in sorted(self.directory.glob("*.json")):
            if path.name.startswith("."):
                continue  # a write in progress
            draft_id = path.stem
            if not _ID.match(draft_id):
                damaged.append(DamagedDraft(path.name, "the file name is not a draft's"))
                continue
            try:
                drafts.append(self.load(draft_id))
            except DraftStoreError as exc:
                damaged.append(DamagedDraft(exc.name, exc.reason))
        drafts.sort(key=lambda draft: draft.updated_at, reverse=True)
        return DraftListing(tuple(drafts), tuple(damaged))

    def _parse(self, name: str, draft_id: str, raw: bytes) -> StoredDraft:
        try:
            document = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise DraftStoreError(name, f"it is not valid JSON ({exc})") from None
        if not isinstance(document, dict):
            raise DraftStoreError(name, "it does not hold a draft")
        if document.get(_FORMAT_KEY) != FORMAT_VERSION:
            raise DraftStoreError(
                name,
                f"it is not a draft of format {FORMAT_VERSION} "
                "(written by another version of Mailer?)",
            )
        reader = _Reader(name, document)
        body_format = reader.text("body_format")
        if body_format not in _BODY_FORMATS:
            raise DraftStoreError(name, f"body_format {body_format!r} is not markdown or plain")
        try:
            priority = Priority(reader.text("priority"))
        except ValueError:
            raise DraftStoreError(name, "priority is not high, normal or low") from None
        images = tuple(self._image(name, entry) for entry in reader.items("inline_images"))
        updated_at = document.get("updated_at")
        if not isinstance(updated_at, int | float) or isinstance(updated_at, bool):
            raise DraftStoreError(name, "updated_at is not a time")
        return StoredDraft(
            account=reader.text("account"),
            identity=reader.text("identity"),
            to=reader.text("to"),
            cc=reader.text("cc"),
            bcc=reader.text("bcc"),
            subject=reader.text("subject"),
            body=reader.text("body"),
            body_format=body_format,  # type: ignore[arg-type]  # checked above
            attachments=tuple(Path(path) for path in reader.texts("attachments")),
            inline_images=images,
            priority=priority,
            in_reply_to=reader.optional_text("in_reply_to"),
            references=tuple(reader.texts("references")),
            id=draft_id,
            updated_at=float(updated_at),
        )

    def _image(self, name: str, entry: Any) -> InlineImage:
        if not isinstance(entry, Mapping):
            raise DraftStoreError(name, "an inline image entry is not an object")
        reader = _Reader(name, entry)
        image_name = reader.text("name")
        content_type = reader.optional_text("content_type")
        if "file" in entry:
            file_name = reader.text("file")
            if "/" in file_name or "\\" in file_name or file_name.startswith("."):
                raise DraftStoreError(name, f"the image file name {file_name!r} is not allowed")
            try:
                data = (self.directory / file_name).read_bytes()
            except OSError as exc:
                raise DraftStoreError(
                    name,
                    f"the pasted image {image_name!r} ({file_name}) cannot be read: "
                    f"{exc.strerror or exc}",
                ) from None
            return InlineImage(image_name, data=data, content_type=content_type)
        return InlineImage(image_name, path=Path(reader.text("path")), content_type=content_type)


class _Reader:
    """Typed access to one JSON object; a wrong type names the file and the key."""

    def __init__(self, name: str, document: Mapping[str, Any]) -> None:
        self.name = name
        self.document = document

    def _wrong(self, key: str, expected: str) -> DraftStoreError:
        return DraftStoreError(self.name, f"{key} is missing or not {expected}")

    def text(self, key: str) -> str:
        value = self.document.get(key)
        if not isinstance(value, str):
            raise self._wrong(key, "text")
        return value

    def optional_text(self, key: str) -> str | None:
        value = self.document.get(key)
        if value is not None and not isinstance(value, str):
            raise self._wrong(key, "text")
        return value

    def items(self, key: str) -> list[Any]:
        value = self.document.get(key)
        if not isinstance(value, list):
            raise self._wrong(key, "a list")
        return value

    def texts(self, key: str) -> list[str]:
        values = self.items(key)
        if not all(isinstance(value, str) for value in values):
            raise self._wrong(key, "a list of texts")
        return values


def _check_id(draft_id: str) -> None:
    if not _ID.match(draft_id):
        raise ValueError(f"{draft_id!r} is not a draft id")


def _image_file_name(draft_id: str, image: InlineImage) -> str:
    assert image.data is not None
    digest = hashlib.sha256(image.data).hexdigest()[:32]
    extension = image.name.rpartition(".")[2].lower() if "." in image.name else ""
    if extension not in _IMAGE_EXTENSIONS:
        extension = "bin"
    return f"{draft_id}.{digest}.{extension}"


def prune_unused_folders(roots: Iterable[Path], drafts: DraftStore, *, before: float) -> list[Path]:
    """Remove the folders of attachments taken out of sent messages that nothing uses.

    "Edit as new" and "Undo send" write a message's attachments into a folder
    of their own under ``roots`` (edit-as-new/, restored/), so that a composer
    can attach them again. Once that draft is sent (its bytes frozen in the
    spool) or thrown away, the folder is only clutter. A folder is kept while
    a saved draft refers to a file in it, and when it was changed at
    ``before`` or later (a composer of this run may use it before its first
    save). While a draft file cannot be read, nothing is removed: it might
    refer to any of them. Blocking: call it on a worker thread. Returns the
    folders removed.
    """
    listing = drafts.list()
    if listing.damaged:
        return []
    used: list[Path] = []
    for draft in listing.drafts:
        used.extend(draft.attachments)
        used.extend(image.path for image in draft.inline_images if image.path is not None)
    removed: list[Path] = []
    for root in roots:
        try:
            folders = [entry for entry in root.iterdir() if entry.is_dir()]
        except FileNotFoundError:
            continue
        for folder in folders:
            try:
                if folder.stat().st_mtime >= before:
                    continue
            except FileNotFoundError:
                continue
            if any(path.is_relative_to(folder) for path in used):
                continue
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


__all__ = [
    "DamagedDraft",
    "DraftListing",
    "DraftStore",
    "DraftStoreError",
    "StoredDraft",
    "prune_unused_folders",
]
