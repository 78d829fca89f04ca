"""Scratch space for work files: one folder per process, locked while the process lives, so a
start sweeps what killed processes left behind and never what a live one is using.

``vidgate serve`` and ``vidgate worker`` may share a data dir and start at any moment. Each
process works in ``<root>/<pid>-<random>/work/`` (empty when nothing is in flight), beside the
folder's ``.lock``, which it holds with ``flock`` until it exits (the kernel lets go when it
dies, ``kill -9`` included). A sweep deletes a folder only while holding that folder's lock
itself, so a live owner's folder is never touched. A folder appears under its final name
already locked (it is made under ``.new-...`` and renamed), so
no sweep can catch one between its creation and its lock. What the lock cannot vouch for
(loose files and folders without a lock, from older versions or a process killed while
setting up) goes only once it is older than ``STALE_SECONDS``.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import shutil
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

LOCK_NAME = ".lock"
WORK_NAME = "work"
STAGING_PREFIX = ".new-"
# Longer than any one work file lives (a 2 GiB upload and its fsync take minutes, not hours).
STALE_SECONDS = 6 * 3600.0
PRIVATE_DIR = 0o700


def private_dir(path: Path) -> bool:
    """Make ``path`` (and missing parents) owner-only; tighten it when it is looser.

    Modes only ever lose bits here, so a stricter umask still wins. True when an existing
    directory had to be tightened.
    """
    path.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        path.chmod(mode & ~0o077)
        return True
    return False


class ScratchSpace:
    """The scratch folders under ``root``: this process's own, and the sweep of the dead."""

    def __init__(self, root: Path, *, clock: Callable[[], float] = time.time) -> None:
        self.root = root
        self.clock = clock
        self._guard = threading.Lock()
        self._mine: Path | None = None
        self._lock_fd: int | None = None
        self._pid = 0

    def folder(self) -> Path:
        """This process's work folder, made (and its parent locked) on first use."""
        with self._guard:
            if self._mine is None or self._pid != os.getpid():  # a forked child makes its own
                self._mine = self._claim()
            return self._mine / WORK_NAME

    def _claim(self) -> Path:
        private_dir(self.root)
        name = f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
        staging = self.root / f"{STAGING_PREFIX}{name}"
        staging.mkdir(mode=PRIVATE_DIR)
        (staging / WORK_NAME).mkdir(mode=PRIVATE_DIR)
        fd = os.open(
            staging / LOCK_NAME, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600
        )
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.write(fd, f"{os.getpid()}\n".encode())
            final = self.root / name
            staging.rename(final)
        except BaseException:
            os.close(fd)
            shutil.rmtree(staging, ignore_errors=True)
            raise
        self._lock_fd, self._pid = fd, os.getpid()
        return final

    def release(self) -> None:
        """Delete this process's folder and let go of its lock (at a clean shutdown)."""
        with self._guard:
            mine, fd = self._mine, self._lock_fd
            self._mine = self._lock_fd = None
        if mine is not None and fd is not None and self._pid == os.getpid():
            shutil.rmtree(mine, ignore_errors=True)
            os.close(fd)

    def sweep(self) -> int:
        """Delete the folders of processes that are gone, and stale loose files; how many
        entries went."""
        try:
            entries = list(os.scandir(self.root))
        except FileNotFoundError:
            return 0
        removed = 0
        for entry in entries:
            path = Path(entry.path)
            if path == self._mine:
                continue
            try:
                if entry.is_dir(follow_symlinks=False) and not entry.name.startswith(
                    STAGING_PREFIX
                ):
                    removed += self._sweep_folder(path)
                elif self._stale(path):
                    _remove(path)
                    removed += 1
            except FileNotFoundError:  # another process swept it first
                continue
        return removed

    def _sweep_folder(self, folder: Path) -> int:
        try:
            fd = os.open(folder / LOCK_NAME, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            # No lock: an older version's folder, or one being deleted by another sweep.
            if self._stale(folder):
                shutil.rmtree(folder, ignore_errors=True)
                return 1
            return 0
        except OSError as error:
            if error.errno == errno.ELOOP:  # a symlink where the lock should be: not ours
                return 0
            raise
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return 0  # its process is alive
            # Deleted while this process holds the lock, so its owner cannot be alive.
            shutil.rmtree(folder, ignore_errors=True)
            return 1
        finally:
            os.close(fd)

    def _stale(self, path: Path) -> bool:
        return self.clock() - path.lstat().st_mtime > STALE_SECONDS


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
