"""Where task inputs and results live: the FileStore seam and the local data-dir store."""

from __future__ import annotations

import errno
import os
import re
import shutil
import stat
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from vidgate.media.scratch import PRIVATE_DIR, ScratchSpace, private_dir

_KEY = re.compile(r"^[a-z]+/[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$")
CHUNK = 64 * 1024
PRIVATE_FILE = 0o600
_FOLDER_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK: a FIFO planted under a key must not hang the open; regular files ignore it.
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
# What opening a key can meet that means "not stored": nothing there, a file where a folder
# should be, or a link (O_NOFOLLOW's ELOOP).
_ABSENT = frozenset({errno.ENOENT, errno.ENOTDIR, errno.ELOOP})
MEDIA_TYPES = {"mp4": "video/mp4", "png": "image/png", "jpg": "image/jpeg", "webp": "image/webp"}


@dataclass(frozen=True, slots=True)
class FileInfo:
    size: int
    modified: float  # unix time
    etag: str  # quoted, as HTTP sends it


class FileStore(Protocol):
    """Stores files by key (``results/<task>.mp4``, ``inputs/<task>/0.png``).

    Every method blocks (disk or network): async callers run them in a thread. Nothing outside
    ``media/`` gets a local path from a store; a worker copies what it needs with
    ``download_to``.
    """

    def put_bytes(self, key: str, data: bytes) -> None: ...

    def put_file(self, key: str, source: Path) -> None:
        """Store ``source`` whole under ``key``; ``source`` is gone afterwards."""
        ...

    def read_bytes(self, key: str) -> bytes | None: ...

    def download_to(self, key: str, dest: Path) -> bool:
        """Copy the file to ``dest`` (its modification time is the stored file's); False when
        it is not stored."""
        ...

    def stat(self, key: str) -> FileInfo | None: ...

    def open_range(self, key: str, start: int, end: int) -> Iterator[bytes] | None:
        """Bytes ``start`` to ``end`` (inclusive) in chunks; None when it is not stored.

        The file is opened before this returns, so a missing file is None, not an error
        halfway through a response.
        """
        ...

    def delete_prefix(self, prefix: str) -> None:
        """Delete the file ``prefix`` and everything under ``prefix/``."""
        ...

    def presigned_url(self, key: str, *, expires: int, signed_at: int) -> str | None:
        """A URL that downloads the file straight from the store until ``expires``, the
        same for the same arguments; None when the store does not hand out its own URLs."""
        ...

    def scratch_dir(self) -> Path:
        """A local directory for work files (engines write their videos there)."""
        ...


def check_key(key: str) -> str:
    """Keys are plain relative paths: no '..', no absolute paths, nothing odd."""
    if not _KEY.match(key) or ".." in key.split("/"):
        raise ValueError(f"not a valid file key: {key!r}")
    return key


def media_type(key: str) -> str:
    return MEDIA_TYPES.get(key.rpartition(".")[2], "application/octet-stream")


def etag_of(size: int, modified_ns: int) -> str:
    return f'"{modified_ns:x}-{size:x}"'


class LocalFileStore:
    """Files under one directory; every write lands whole (temp file, fsync, rename).

    Owner-only: folders 0700, files 0600 (or stricter, when the umask is). Nothing is read
    through a symbolic link: each key is opened one component at a time with ``O_NOFOLLOW``
    under the root, so a link planted in the store (to a file elsewhere, or a linked
    folder) is not a stored file, and is never written through either.
    """

    def __init__(self, root: Path, *, scratch: ScratchSpace | None = None) -> None:
        private_dir(root)
        self.root = root.resolve()
        self.scratch = scratch or ScratchSpace(self.root / "tmp")

    def _target(self, key: str) -> Path:
        return self.root / check_key(key)

    def _parent(self, key: str) -> Path:
        """The key's folder, made owner-only where missing; a folder that is a link (or not
        a folder) is refused."""
        target = self._target(key)
        folder = self.root
        for part in target.relative_to(self.root).parts[:-1]:
            folder = folder / part
            try:
                folder.mkdir(mode=PRIVATE_DIR)
            except FileExistsError:
                if folder.is_symlink() or not folder.is_dir():
                    raise ValueError(f"not a valid file key: {key!r}") from None
        return target

    def _temp(self, target: Path) -> Path:
        # In this process's scratch folder (same filesystem: the rename is atomic), so what a
        # killed process was writing is swept with its folder at the next start.
        return self.scratch.folder() / f"{target.name}.{uuid.uuid4().hex}.part"

    def put_bytes(self, key: str, data: bytes) -> None:
        target = self._parent(key)
        temp = self._temp(target)
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, PRIVATE_FILE)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        temp.replace(target)

    def put_file(self, key: str, source: Path) -> None:
        target = self._parent(key)
        temp = self._temp(target)
        shutil.move(source, temp)
        with temp.open("rb") as handle:
            # The source was made with the umask's mode: bits only go, never come.
            os.fchmod(handle.fileno(), os.fstat(handle.fileno()).st_mode & PRIVATE_FILE)
            os.fsync(handle.fileno())
        temp.replace(target)

    def _open(self, key: str) -> int | None:
        """A descriptor on the stored regular file, reached without following any link;
        None when there is none."""
        try:
            parts = check_key(key).split("/")
        except ValueError:
            return None
        folder = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            for part in parts[:-1]:
                inner = os.open(part, _FOLDER_FLAGS, dir_fd=folder)
                os.close(folder)
                folder = inner
            fd = os.open(parts[-1], _FILE_FLAGS, dir_fd=folder)
        except OSError as error:
            if error.errno in _ABSENT:
                return None
            raise
        finally:
            os.close(folder)
        if not stat.S_ISREG(os.fstat(fd).st_mode):  # a folder, a FIFO, a device...
            os.close(fd)
            return None
        return fd

    def path(self, key: str) -> Path | None:
        """The file's path on this machine (this store only; tests look at it)."""
        fd = self._open(key)
        if fd is None:
            return None
        os.close(fd)
        return self._target(key)

    def read_bytes(self, key: str) -> bytes | None:
        fd = self._open(key)
        if fd is None:
            return None
        with os.fdopen(fd, "rb") as handle:
            return handle.read()

    def download_to(self, key: str, dest: Path) -> bool:
        fd = self._open(key)
        if fd is None:
            return False
        with os.fdopen(fd, "rb") as source:
            status = os.fstat(source.fileno())
            dest.parent.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
            out = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, PRIVATE_FILE)
            with os.fdopen(out, "wb") as target:
                shutil.copyfileobj(source, target, CHUNK)
        # The stored file's modification time, as copy2 kept it (input URLs are signed on it).
        os.utime(dest, ns=(status.st_atime_ns, status.st_mtime_ns))
        return True

    def stat(self, key: str) -> FileInfo | None:
        fd = self._open(key)
        if fd is None:
            return None
        try:
            status = os.fstat(fd)
        finally:
            os.close(fd)
        return FileInfo(
            status.st_size, status.st_mtime, etag_of(status.st_size, status.st_mtime_ns)
        )

    def open_range(self, key: str, start: int, end: int) -> Iterator[bytes] | None:
        fd = self._open(key)
        if fd is None:
            return None
        handle = os.fdopen(fd, "rb")
        handle.seek(start)
        return _read_chunks(handle, end - start + 1)

    def delete_prefix(self, prefix: str) -> None:
        target = self._target(prefix.rstrip("/"))
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target, ignore_errors=True)  # links inside are unlinked, not followed
        else:
            target.unlink(missing_ok=True)

    def presigned_url(self, key: str, *, expires: int, signed_at: int) -> str | None:
        return None

    def scratch_dir(self) -> Path:
        """This process's own folder under ``tmp/`` (see ScratchSpace), on the same
        filesystem, so finished files move in with a rename."""
        return self.scratch.folder()


def _read_chunks(handle: _Readable, remaining: int) -> Iterator[bytes]:
    try:
        while remaining > 0:
            chunk = handle.read(min(CHUNK, remaining))
            if not chunk:
                return
            remaining -= len(chunk)
            yield chunk
    finally:
        handle.close()


class _Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...

    def close(self) -> None: ...
