"""A resumable download into ``<path>.part``: what to ask for, how to read the answer, when done.

An interrupted transfer resumes with ``Range: bytes=N-`` (N: the bytes already in the part
file, also one left by an earlier process), guarded by ``If-Range`` once the file's validator
is known. A ``206`` whose ``Content-Range`` starts at N is appended; a ``200`` (the server
ignored the range, or the file changed) starts over; so does a ``206`` at another offset. The
part file is renamed into place only when its size matches the announced total.
"""

from __future__ import annotations

import contextlib
import enum
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Final
from urllib.parse import unquote, urlsplit

import httpx

from vidgate.client.errors import VidgateError

CONTENT_RANGE: Final = re.compile(r"bytes\s+(?:(\d+)-(\d+)|\*)/(\d+|\*)", re.IGNORECASE)

ProgressCallback = Callable[[int, int | None], object]


class Step(enum.Enum):
    WRITE = "write"
    """Stream the body into the part file (``mode`` says append or truncate)."""
    RESTART = "restart"
    """The answer cannot extend the part file: drop it and ask for the whole file."""
    DONE = "done"
    """The part file already holds the whole file."""
    ERROR = "error"
    """An error status: the caller raises it (or retries)."""


def parse_content_range(value: str | None) -> tuple[int | None, int | None]:
    """(first byte, total size) of a ``Content-Range``; None for what it leaves unsaid."""
    match = CONTENT_RANGE.fullmatch(value.strip()) if value else None
    if match is None:
        return None, None
    start = int(match[1]) if match[1] is not None else None
    total = int(match[3]) if match[3] != "*" else None
    return start, total


def target_path(path: str | os.PathLike[str], url: str, fallback: str) -> Path:
    """``path`` itself, or inside it (when it is a directory) the URL's file name."""
    target = Path(path)
    if target.is_dir():
        name = PurePosixPath(unquote(urlsplit(url).path)).name or fallback
        target = target / name
    return target


@dataclass
class Transfer:
    url: str
    path: Path
    total: int | None = None
    validator: str | None = None
    done: int = field(init=False, default=0)
    mode: str = field(init=False, default="ab")

    def __post_init__(self) -> None:
        self.done = self.offset()

    @property
    def part(self) -> Path:
        return self.path.with_name(self.path.name + ".part")

    def offset(self) -> int:
        try:
            return self.part.stat().st_size
        except FileNotFoundError:
            return 0

    def request_headers(self) -> dict[str, str]:
        # identity: the byte counts below are bytes of the file, never of a compressed body.
        headers = {"Accept-Encoding": "identity"}
        offset = self.offset()
        if offset:
            headers["Range"] = f"bytes={offset}-"
            if self.validator:
                headers["If-Range"] = self.validator
        return headers

    def accept(self, response: httpx.Response) -> Step:
        """Read an answer's status and headers; sets ``mode``, ``done`` and ``total``."""
        status = response.status_code
        offset = self.offset()
        self.validator = response.headers.get("etag") or response.headers.get("last-modified")
        if status == 200:
            self.mode, self.done = "wb", 0
            length = response.headers.get("content-length")
            self.total = int(length) if length and length.isdigit() else None
            return Step.WRITE
        if status == 206:
            start, total = parse_content_range(response.headers.get("content-range"))
            if start != offset:
                return Step.RESTART
            self.mode, self.done, self.total = "ab", offset, total
            return Step.WRITE
        if status == 416 and offset:
            _, total = parse_content_range(response.headers.get("content-range"))
            if total is not None and total == offset:
                self.done = self.total = total
                return Step.DONE
            return Step.RESTART
        return Step.ERROR

    def discard(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.part.unlink()
        self.done, self.total, self.validator = 0, None, None

    def complete(self) -> bool:
        """True when the part file holds the whole file; False when more is to come. Raises
        (and drops the part file) when it holds more than the server said the file has."""
        size = self.offset()
        if self.total is None:
            return True  # no length announced: the end of the body is the end of the file
        if size > self.total:
            self.discard()
            raise VidgateError(
                f"The download grew past its announced size ({size} > {self.total} bytes).",
                code="download_size_mismatch",
            )
        return size == self.total

    def finish(self) -> Path:
        self.part.replace(self.path)
        return self.path
