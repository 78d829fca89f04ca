"""Where task inputs and results live: the FileStore seam and the local data-dir store."""

from __future__ import annotations

import os
import re
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

_KEY = re.compile(r"^[a-z]+/[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$")
CHUNK = 64 * 1024
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
    """Files under one directory; every write lands whole (temp file, fsync, rename)."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    def _target(self, key: str) -> Path:
        return self.root / check_key(key)

    def put_bytes(self, key: str, data: bytes) -> None:
        target = self._target(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        temp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.part")
        with temp.open("wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        temp.replace(target)

    def put_file(self, key: str, source: Path) -> None:
        target = self._target(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        temp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.part")
        shutil.move(source, temp)
        with temp.open("rb") as handle:
            os.fsync(handle.fileno())
        temp.replace(target)

    def path(self, key: str) -> Path | None:
        """The file's path on this machine (this store only; tests look at it)."""
        try:
            target = self._target(key)
        except ValueError:
            return None
        return target if target.is_file() else None

    def read_bytes(self, key: str) -> bytes | None:
        path = self.path(key)
        try:
            return None if path is None else path.read_bytes()
        except FileNotFoundError:
            return None

    def download_to(self, key: str, dest: Path) -> bool:
        path = self.path(key)
        if path is None:
            return False
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            shutil.copy2(path, dest)  # copy2 keeps the modification time
        except FileNotFoundError:
            return False
        return True

    def stat(self, key: str) -> FileInfo | None:
        path = self.path(key)
        try:
            status = None if path is None else path.stat()
        except FileNotFoundError:
            return None
        if status is None:
            return None
        return FileInfo(
            status.st_size, status.st_mtime, etag_of(status.st_size, status.st_mtime_ns)
        )

    def open_range(self, key: str, start: int, end: int) -> Iterator[bytes] | None:
        path = self.path(key)
        try:
            handle = None if path is None else path.open("rb")
        except FileNotFoundError:
            return None
        if handle is None:
            return None
        handle.seek(start)
        return _read_chunks(handle, end - start + 1)

    def delete_prefix(self, prefix: str) -> None:
        target = self._target(prefix.rstrip("/"))
        if target.is_dir():
            shutil.rmtree(target, ignore_errors=True)
        else:
            target.unlink(missing_ok=True)

    def presigned_url(self, key: str, *, expires: int, signed_at: int) -> str | None:
        return None

    def scratch_dir(self) -> Path:
        """A directory on the same filesystem, so finished files move in with a rename."""
        scratch = self.root / "tmp"
        scratch.mkdir(parents=True, exist_ok=True)
        return scratch


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
