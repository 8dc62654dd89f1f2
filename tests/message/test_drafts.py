"""The drafts folder: real files, modes checked with os.stat, damage reported not deleted."""

from __future__ import annotations

import json
import os
import stat
import threading
import time
from pathlib import Path

import pytest

from mailer_gui.message.draft import InlineImage, Priority
from mailer_gui.message.drafts import (
    DamagedDraft,
    DraftStore,
    DraftStoreError,
    StoredDraft,
    prune_unused_folders,
)
from mailer_gui.paths import resolve_paths

posix_only = pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 64


def mode_of(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def store(tmp_path: Path) -> DraftStore:
    return DraftStore.for_paths(resolve_paths(tmp_path))


def full_draft(tmp_path: Path) -> StoredDraft:
    return StoredDraft(
        account="work",
        identity="ann@example.org",
        to='"Doe, J" <j@example.org>, bob@',  # kept as typed, the bad one too
        cc="carol@example.org",
        bcc="audit@example.org",
        subject="Quarterly report – café",
        body="**Numbers** below.\n\n![chart](chart.png)\n\n-- \nAnn",
        body_format="markdown",
        attachments=(tmp_path / "report.pdf", tmp_path / "données.csv"),
        inline_images=(
            InlineImage("chart.png", data=PNG, content_type="image/png"),
            InlineImage("logo.svg", path=tmp_path / "logo.svg"),
        ),
        priority=Priority.HIGH,
        in_reply_to="<abc@example.org>",
        references=("<root@example.org>", "<abc@example.org>"),
    )


def test_every_field_comes_back(store: DraftStore, tmp_path: Path) -> None:
    draft = full_draft(tmp_path)
    draft_id = store.save(draft)
    loaded = store.load(draft_id)
    assert loaded.id == draft_id
    assert loaded.updated_at > 0
    assert loaded.same_content(draft)
    assert loaded == StoredDraft(**{**vars(draft), "id": draft_id, "updated_at": loaded.updated_at})


def test_pasted_images_are_files_beside_the_json_not_base64(
    store: DraftStore, tmp_path: Path
) -> None:
    draft_id = store.save(full_draft(tmp_path))
    document = json.loads(store.path_of(draft_id).read_text())
    pasted, linked = document["inline_images"]
    assert pasted["name"] == "chart.png" and "data" not in pasted
    assert linked == {"name": "logo.svg", "content_type": None, "path": str(tmp_path / "logo.svg")}
    image_file = store.directory / pasted["file"]
    assert image_file.read_bytes() == PNG
    assert image_file.name.startswith(f"{draft_id}.") and image_file.suffix == ".png"
    assert len(store.path_of(draft_id).read_bytes()) < len(PNG)  # no blob in the JSON


@posix_only
def test_files_are_private(store: DraftStore, tmp_path: Path) -> None:
    previous = os.umask(0)
    try:
        draft_id = store.save(full_draft(tmp_path))
    finally:
        os.umask(previous)
    assert mode_of(store.directory) == 0o700
    names = sorted(os.listdir(store.directory))
    assert len(names) == 2  # the JSON and the pasted image, no temporary files
    for name in names:
        assert mode_of(store.directory / name) == 0o600
    assert f"{draft_id}.json" in names


def test_saving_again_replaces_and_drops_images_no_longer_used(
    store: DraftStore, tmp_path: Path
) -> None:
    draft = full_draft(tmp_path)
    draft_id = store.save(draft)
    second = InlineImage("photo.jpg", data=b"\xff\xd8jpeg", content_type="image/jpeg")
    store.save(StoredDraft(**{**vars(draft), "id": draft_id, "inline_images": (second,)}))
    loaded = store.load(draft_id)
    assert loaded.inline_images == (second,)
    assert sorted(p.suffix for p in store.directory.iterdir()) == [".jpg", ".json"]


def test_list_is_newest_first_and_delete_removes_everything(
    store: DraftStore, tmp_path: Path
) -> None:
    assert store.list().drafts == ()  # no folder yet: nothing, and nothing created
    assert not store.directory.exists()
    old = store.save(StoredDraft(subject="old", updated_at=1_000.0))
    new = store.save(StoredDraft(subject="new", updated_at=2_000.0))
    pasted = store.save(full_draft(tmp_path))
    listing = store.list()
    assert [d.id for d in listing.drafts] == [pasted, new, old]
    assert listing.damaged == ()

    store.delete(pasted)
    store.delete(pasted)  # twice is fine
    assert sorted(os.listdir(store.directory)) == sorted([f"{old}.json", f"{new}.json"])
    with pytest.raises(DraftStoreError, match="not there"):
        store.load(pasted)


def test_a_damaged_file_is_reported_by_name_skipped_and_kept(
    store: DraftStore, tmp_path: Path
) -> None:
    good = store.save(StoredDraft(subject="fine"))
    truncated = store.directory / "0123abcd.json"
    truncated.write_text('{"mailer_draft": 1, "subject": "half')
    wrong_type = store.save(StoredDraft(subject="will break"))
    document = json.loads(store.path_of(wrong_type).read_text())
    document["to"] = ["not", "text"]
    store.path_of(wrong_type).write_text(json.dumps(document))
    missing_image = store.save(full_draft(tmp_path))
    next(store.directory.glob(f"{missing_image}.*.png")).unlink()

    listing = store.list()
    assert [d.id for d in listing.drafts] == [good]
    by_name = {d.name: d.reason for d in listing.damaged}
    assert set(by_name) == {"0123abcd.json", f"{wrong_type}.json", f"{missing_image}.json"}
    assert "not valid JSON" in by_name["0123abcd.json"]
    assert by_name[f"{wrong_type}.json"] == "to is missing or not text"
    assert "chart.png" in by_name[f"{missing_image}.json"]
    # Never deleted: the person may still want what is in them.
    assert truncated.read_text() == '{"mailer_draft": 1, "subject": "half'
    assert store.path_of(wrong_type).exists() and store.path_of(missing_image).exists()
    assert isinstance(listing.damaged[0], DamagedDraft)


def test_another_format_version_is_damage_not_a_guess(store: DraftStore) -> None:
    draft_id = store.save(StoredDraft(subject="x"))
    path = store.path_of(draft_id)
    path.write_text(path.read_text().replace('"mailer_draft": 1', '"mailer_draft": 99'))
    with pytest.raises(DraftStoreError, match="format 1"):
        store.load(draft_id)


def test_ids_cannot_leave_the_folder(store: DraftStore) -> None:
    with pytest.raises(ValueError, match="not a draft id"):
        store.load("../accounts")
    with pytest.raises(ValueError, match="not a draft id"):
        store.save(StoredDraft(id="../../evil"))


def test_lone_surrogates_in_pasted_text_survive(store: DraftStore) -> None:
    draft = StoredDraft(body="broken \ud800 pair", attachments=(Path("/tmp/\udcff.bin"),))
    assert store.load(store.save(draft)).same_content(draft)


def test_a_failed_write_keeps_the_previous_draft(
    store: DraftStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    draft_id = store.save(StoredDraft(subject="first"))

    def disk_full(source: str, destination: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", disk_full)
    with pytest.raises(OSError, match="No space left"):
        store.save(StoredDraft(id=draft_id, subject="second"))
    monkeypatch.undo()
    assert store.load(draft_id).subject == "first"
    assert os.listdir(store.directory) == [f"{draft_id}.json"]


def test_a_reader_never_sees_a_half_written_draft(store: DraftStore) -> None:
    """Autosave writes while the main window lists the folder: every read is whole."""
    draft_id = store.save(StoredDraft(subject="v0", body="x" * 200_000))
    stop = threading.Event()
    problems: list[str] = []
    reads = 0

    def reader() -> None:
        nonlocal reads
        while not stop.is_set():
            listing = store.list()
            problems.extend(d.reason for d in listing.damaged)
            assert len(listing.drafts) == 1
            reads += 1

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for version in range(1, 40):
            store.save(StoredDraft(id=draft_id, subject=f"v{version}", body="y" * 200_000))
    finally:
        stop.set()
        thread.join(10)
    assert reads > 0
    assert problems == []
    assert store.load(draft_id).subject == "v39"


def _folder(root: Path, name: str, *, age: float, files: tuple[str, ...] = ("a.pdf",)) -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    for file in files:
        (folder / file).write_bytes(b"%PDF-1.4\n")
    moment = time.time() - age
    os.utime(folder, (moment, moment))
    return folder


def test_unused_attachment_folders_are_removed_and_used_ones_kept(
    store: DraftStore, tmp_path: Path
) -> None:
    """Edit as new and Undo send leave a folder per message; a draft may still use one."""
    edits, restored = tmp_path / "edit-as-new", tmp_path / "restored"
    attached = _folder(edits, "message-1-x", age=3600)
    inline = _folder(edits, "message-2-y", age=3600, files=("logo.png",))
    unused = _folder(edits, "message-3-z", age=3600)
    undone = _folder(restored, "7", age=3600)
    fresh = _folder(restored, "8", age=0)  # this run's composer may use it unsaved
    store.save(StoredDraft(subject="edited", attachments=(attached / "a.pdf",)))
    store.save(
        StoredDraft(
            subject="with a logo",
            inline_images=(InlineImage("logo.png", path=inline / "logo.png"),),
        )
    )

    removed = prune_unused_folders([edits, restored, tmp_path / "absent"], store,
                                   before=time.time() - 60)  # fmt: skip

    assert sorted(removed) == sorted([unused, undone])
    assert not unused.exists() and not undone.exists()
    assert (attached / "a.pdf").exists() and (inline / "logo.png").exists() and fresh.exists()


def test_nothing_is_removed_while_a_draft_cannot_be_read(store: DraftStore, tmp_path: Path) -> None:
    edits = tmp_path / "edit-as-new"
    unused = _folder(edits, "message-3-z", age=3600)
    (store.directory / "0123abcd.json").parent.mkdir(parents=True, exist_ok=True)
    (store.directory / "0123abcd.json").write_text('{"mailer_draft": 1, "attach')
    assert prune_unused_folders([edits], store, before=time.time()) == []
    assert (unused / "a.pdf").exists()
