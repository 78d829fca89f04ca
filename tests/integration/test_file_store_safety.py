"""The local file store on a real disk: symbolic links planted in it are never followed, files
and folders are owner-only, and scratch folders are swept only once their process is gone."""

from __future__ import annotations

import fcntl
import os
import stat
import time
from pathlib import Path

import httpx
import pytest

from vidgate.media.files import LocalFileStore
from vidgate.media.scratch import LOCK_NAME, STALE_SECONDS, ScratchSpace
from vidgate.services import Services

SECRET = b"not a stored file: the server's own secrets"


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A file and a folder outside the store, which planted links point at."""
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "secret.mp4").write_bytes(SECRET)
    return folder


@pytest.fixture
def store(tmp_path: Path, outside: Path) -> LocalFileStore:
    store = LocalFileStore(tmp_path / "files")
    store.put_bytes("results/real.mp4", b"a real video")
    (store.root / "results" / "linked.mp4").symlink_to(outside / "secret.mp4")
    (store.root / "inputs").mkdir()
    (store.root / "inputs" / "task-linked").symlink_to(outside, target_is_directory=True)
    return store


@pytest.mark.parametrize("key", ["results/linked.mp4", "inputs/task-linked/secret.mp4"])
def test_the_store_does_not_read_through_a_planted_link(
    store: LocalFileStore, key: str, tmp_path: Path
) -> None:
    assert store.read_bytes(key) is None
    assert store.stat(key) is None
    assert store.open_range(key, 0, 10) is None
    assert store.path(key) is None
    assert store.download_to(key, tmp_path / "copy.mp4") is False
    assert not (tmp_path / "copy.mp4").exists()
    # The real file next to the links is served as ever.
    assert store.read_bytes("results/real.mp4") == b"a real video"


def test_the_store_does_not_write_through_a_linked_folder(
    store: LocalFileStore, outside: Path
) -> None:
    with pytest.raises(ValueError, match="not a valid file key"):
        store.put_bytes("inputs/task-linked/0.png", b"planted")
    assert not (outside / "0.png").exists()


def test_deleting_a_linked_folder_removes_the_link_not_what_it_points_at(
    store: LocalFileStore, outside: Path
) -> None:
    store.delete_prefix("inputs/task-linked")
    assert not (store.root / "inputs" / "task-linked").is_symlink()
    assert (outside / "secret.mp4").read_bytes() == SECRET


def test_stored_files_are_0600_and_folders_0700_whatever_the_umask_allowed(
    tmp_path: Path,
) -> None:
    old = os.umask(0o022)
    try:
        store = LocalFileStore(tmp_path / "files")
        store.put_bytes("inputs/task-x/0.png", b"png")
        source = store.scratch_dir() / "render.mp4"
        source.write_bytes(b"video")  # made 0644 under this umask, as an engine would
        store.put_file("results/task-x.mp4", source)
    finally:
        os.umask(old)
    for key in ("inputs/task-x/0.png", "results/task-x.mp4"):
        assert stat.S_IMODE((store.root / key).stat().st_mode) == 0o600, key
    for folder in ("", "inputs", "inputs/task-x", "results", "tmp", str(store.scratch_dir())):
        assert stat.S_IMODE((store.root / folder).stat().st_mode) == 0o700, folder


def test_a_file_stricter_than_0600_stays_as_strict(tmp_path: Path) -> None:
    store = LocalFileStore(tmp_path / "files")
    source = store.scratch_dir() / "render.mp4"
    source.write_bytes(b"video")
    source.chmod(0o400)
    store.put_file("results/task-y.mp4", source)
    assert stat.S_IMODE((store.root / "results/task-y.mp4").stat().st_mode) == 0o400


@pytest.mark.sqlite_only
async def test_get_files_answers_404_for_a_planted_link(
    services: Services, client: httpx.AsyncClient, outside: Path
) -> None:
    files = services.files
    assert isinstance(files, LocalFileStore)
    files.put_bytes("results/real.mp4", b"a real video")
    (files.root / "results" / "linked.mp4").symlink_to(outside / "secret.mp4")
    (files.root / "inputs").mkdir(exist_ok=True)
    (files.root / "inputs" / "task-linked").symlink_to(outside, target_is_directory=True)
    expires = int(time.time()) + 600

    for key in ("results/linked.mp4", "inputs/task-linked/secret.mp4"):
        response = await client.get(services.signer.sign(key, expires=expires))
        assert response.status_code == 404, (key, response.text)
        assert SECRET not in response.content
        assert response.json()["error"]["type"]
    real = await client.get(services.signer.sign("results/real.mp4", expires=expires))
    assert (real.status_code, real.content) == (200, b"a real video")


# --- scratch folders ------------------------------------------------------------------------


def test_a_sweep_keeps_a_live_folder_and_removes_one_whose_lock_is_free(tmp_path: Path) -> None:
    live = ScratchSpace(tmp_path / "tmp")
    mine = live.folder()
    (mine / "work.part").write_bytes(b"in use")
    # A folder whose process died: its lock file is there, nobody holds it.
    dead = tmp_path / "tmp" / "4242-deadbeef0000"
    dead.mkdir()
    (dead / LOCK_NAME).write_bytes(b"4242\n")
    (dead / "half.mp4.part").write_bytes(b"left behind")

    swept = ScratchSpace(tmp_path / "tmp").sweep()

    assert swept == 1
    assert not dead.exists()
    assert (mine / "work.part").read_bytes() == b"in use"


def test_a_sweep_never_removes_a_folder_whose_lock_is_held(tmp_path: Path) -> None:
    held = tmp_path / "tmp" / "4343-cafe00000000"
    held.mkdir(parents=True)
    fd = os.open(held / LOCK_NAME, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # as another live process holds it
        assert ScratchSpace(tmp_path / "tmp").sweep() == 0
        assert held.exists()
    finally:
        os.close(fd)


def test_a_sweep_removes_loose_files_only_once_they_are_stale(tmp_path: Path) -> None:
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    old, new = scratch / "old.part", scratch / "new.part"
    old.write_bytes(b"old")
    new.write_bytes(b"new")
    long_ago = time.time() - STALE_SECONDS - 60
    os.utime(old, (long_ago, long_ago))

    assert ScratchSpace(scratch).sweep() == 1
    assert not old.exists()
    assert new.exists()


def test_a_released_folder_is_gone(tmp_path: Path) -> None:
    space = ScratchSpace(tmp_path / "tmp")
    folder = space.folder()
    space.release()
    assert not folder.exists()
    assert not folder.parent.exists()
