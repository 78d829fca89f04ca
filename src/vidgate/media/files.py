"""Where task inputs and results live: the FileStore seam and the local data-dir store."""

from __future__ import annotations

import os
import re
import shutil
import uuid
from pathlib import Path
from typing import Protocol

_KEY = re.compile(r"^[a-z]+/[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$")


class FileStore(Protocol):
    """Stores files by key (``results/<task>.mp4``, ``inputs/<task>/0.png``)."""

    def put_bytes(self, key: str, data: bytes) -> None: ...

    def put_file(self, key: str, source: Path) -> None: ...

    def path(self, key: str) -> Path | None:
        """A local path to read the file from, or None when it is not stored."""
        ...

    def delete_prefix(self, prefix: str) -> None: ...


def check_key(key: str) -> str:
    """Keys are plain relative paths: no '..', no absolute paths, nothing odd."""
    if not _KEY.match(key) or ".." in key.split("/"):
        raise ValueError(f"not a valid file key: {key!r}")
    return key


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
        try:
            target = self._target(key)
        except ValueError:
            return None
        return target if target.is_file() else None

    def delete_prefix(self, prefix: str) -> None:
        target = self._target(prefix.rstrip("/"))
        if target.is_dir():
            shutil.rmtree(target, ignore_errors=True)
        else:
            target.unlink(missing_ok=True)

    def scratch_dir(self) -> Path:
        """A directory on the same filesystem, so finished files move in with a rename."""
        scratch = self.root / "tmp"
        scratch.mkdir(parents=True, exist_ok=True)
        return scratch
