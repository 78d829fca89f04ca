"""A resumable download into ``<path>.part``: what to ask for, how to read the answer, when to
try again, when done.

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

from vidgate.client._http import Retry, connection_error, retry_pause
from vidgate.client.errors import APIStatusError, VidgateError
from vidgate.client.retry import RetryPolicy

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
    TOO_LARGE = "too_large"
    """The file is larger than ``max_bytes``: the caller raises ``too_large()``."""


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
    max_bytes: int | None = None
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
            self.mode = "wb"
            self.done = 0
            length = response.headers.get("content-length")
            self.total = int(length) if length and length.isdigit() else None
            return Step.TOO_LARGE if self.over_limit(self.total or 0) else Step.WRITE
        if status == 206:
            start, total = parse_content_range(response.headers.get("content-range"))
            if start != offset:
                return Step.RESTART
            self.mode = "ab"
            self.done = offset
            self.total = total
            return Step.TOO_LARGE if self.over_limit(self.total or 0) else Step.WRITE
        if status == 416 and offset:
            _, total = parse_content_range(response.headers.get("content-range"))
            if total is not None and total == offset:
                self.done = self.total = total
                return Step.DONE
            return Step.RESTART
        return Step.ERROR

    def over_limit(self, size: int) -> bool:
        """True when a file of ``size`` bytes is more than the caller takes."""
        return self.max_bytes is not None and size > self.max_bytes

    def too_large(self) -> VidgateError:
        """The error for a file past ``max_bytes``; the part file is dropped."""
        self.discard()
        return VidgateError(
            f"The download is larger than the {self.max_bytes} bytes allowed.",
            code="download_too_large",
        )

    def discard(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.part.unlink()
        self.done = 0
        self.total = None
        self.validator = None

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


@dataclass
class DownloadRetries:
    """When a download tries again and after what pause: failures in a row count against the
    retry policy, and a try that moved the part file forward starts the count again."""

    policy: RetryPolicy
    transfer: Transfer
    attempt: int = 0
    before: int = 0

    def begin(self) -> None:
        self.before = self.transfer.offset()

    def _moved(self) -> bool:
        return self.transfer.offset() > self.before

    def after_cut(self, exc: httpx.TransportError) -> float:
        """The pause after a broken connection; APIConnectionError once the retries are up."""
        if self._moved():
            self.attempt = 0
        delay = self.policy.delay(self.attempt)
        if delay is None:
            error = connection_error(exc)
            error.attempts = self.attempt + 1
            raise error from exc
        self.attempt += 1
        return delay

    def after_status(self, error: APIStatusError) -> float:
        """The pause after an error status; ``error`` itself unless it is worth another try."""
        delay = retry_pause(self.policy, Retry.SAFE, self.attempt, error)
        if delay is None:
            error.attempts = self.attempt + 1
            raise error
        self.attempt += 1
        return delay

    def restart(self) -> None:
        """Drop the part file to ask for the whole file again (at once)."""
        self.transfer.discard()
        self._count("The server keeps answering the wrong byte range.")

    def after_short_body(self) -> None:
        """The body ended before the announced size: resume at once."""
        if self._moved():
            self.attempt = 0
        else:
            self._count("The server keeps ending the download early.")

    def _count(self, message: str) -> None:
        if self.policy.exhausted(self.attempt):
            raise VidgateError(message)
        self.attempt += 1
