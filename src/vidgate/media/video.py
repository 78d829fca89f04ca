"""Writing videos: the SPEC's frame rate and length, and atomic H.264 MP4 files."""

from __future__ import annotations

import contextlib
import queue
import threading
import uuid
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import Final, Self

import av
import numpy as np
from PIL import Image

from vidgate.media.frames import BT709, LIMITED_RANGE, RgbArray, Yuv420, to_yuv420p

FPS: Final = 24
DURATION_SECONDS: Final = 8
FRAME_COUNT: Final = FPS * DURATION_SECONDS


class VideoWriter:
    """Writes an H.264 MP4 (libx264, yuv420p, faststart) that appears at ``path`` only whole.

    Frames are encoded on a background thread while the caller makes the next ones, so rendering
    overlaps with libx264; ``write`` copies the frame, so the caller may reuse its array. Leaving
    the ``with`` block normally finishes the file and renames it into place; leaving it with an
    exception discards everything.
    """

    def __init__(
        self,
        path: Path,
        width: int,
        height: int,
        *,
        fps: int = FPS,
        crf: int = 23,
        preset: str = "veryfast",
        queued_frames: int = 6,
    ) -> None:
        if width <= 0 or height <= 0 or width % 2 or height % 2:
            raise ValueError(f"yuv420p needs even, positive dimensions, not {width}x{height}")
        self.path = Path(path)
        self.width = width
        self.height = height
        self.fps = fps
        self.crf = crf
        self.preset = preset
        self.frames_written = 0
        self._temp = self.path.with_name(f".{self.path.name}.{uuid.uuid4().hex}.part")
        self._queue: queue.Queue[av.VideoFrame | None] = queue.Queue(maxsize=queued_frames)
        self._aborting = False
        self._error: BaseException | None = None
        self._container: av.container.OutputContainer | None = None
        self._stream: av.VideoStream | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Self:
        container = av.open(str(self._temp), "w", format="mp4", options={"movflags": "+faststart"})
        try:
            stream = container.add_stream(
                "libx264", rate=self.fps, options={"preset": self.preset, "crf": str(self.crf)}
            )
            stream.width = self.width
            stream.height = self.height
            stream.pix_fmt = "yuv420p"
            codec = stream.codec_context
            codec.colorspace = codec.color_primaries = codec.color_trc = BT709
            codec.color_range = LIMITED_RANGE
        except BaseException:
            container.close()
            self._temp.unlink(missing_ok=True)
            raise
        self._container = container
        self._stream = stream
        self._thread = threading.Thread(target=self._encode_all, name="video-encoder", daemon=True)
        self._thread.start()
        return self

    def write(self, frame: Image.Image | RgbArray) -> None:
        """Append an RGB frame (a PIL image or an (height, width, 3) uint8 array)."""
        if isinstance(frame, Image.Image):
            pixels = np.asarray(frame.convert("RGB"))
        else:
            pixels = np.ascontiguousarray(frame)
        self._check_shape(pixels.shape, (self.height, self.width, 3))
        self._put(to_yuv420p(av.VideoFrame.from_ndarray(pixels, format="rgb24")))

    def write_yuv420(self, frame: Yuv420) -> None:
        """Append a packed I420 frame, the fast path: no colour conversion at all."""
        self._check_shape(frame.shape, (self.height * 3 // 2, self.width))
        self._put(av.VideoFrame.from_ndarray(frame, format="yuv420p"))

    def _check_shape(self, actual: tuple[int, ...], expected: tuple[int, ...]) -> None:
        if actual != expected:
            raise ValueError(f"frame of shape {actual}, this video takes {expected}")

    def _put(self, frame: av.VideoFrame) -> None:
        if self._thread is None:
            raise RuntimeError("VideoWriter is used outside its with block")
        if self._error is not None:
            raise self._error
        frame.pts = self.frames_written
        frame.time_base = Fraction(1, self.fps)
        frame.colorspace = BT709
        frame.color_range = LIMITED_RANGE
        self._queue.put(frame)
        self.frames_written += 1

    def _encode_all(self) -> None:
        assert self._stream is not None
        assert self._container is not None
        try:
            while (frame := self._queue.get()) is not None:
                if not self._aborting:
                    self._container.mux(self._stream.encode(frame))
            if not self._aborting:
                self._container.mux(self._stream.encode(None))
        except BaseException as exc:  # handed to the caller's thread by _put and __exit__
            self._error = exc
            # Keep draining so a caller blocked on a full queue is released.
            while self._queue.get() is not None:
                pass

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._aborting = exc_type is not None
        try:
            if self._thread is not None:
                self._queue.put(None)
                self._thread.join()
                self._thread = None
            if self._container is not None:
                container = self._container
                self._container = None
                if self._aborting or self._error is not None:
                    with contextlib.suppress(Exception):
                        container.close()
                else:
                    container.close()
            if self._error is not None and not self._aborting:
                raise self._error
            if not self._aborting:
                if self.frames_written == 0:
                    raise ValueError("no frames were written")
                self._temp.replace(self.path)
        finally:
            self._temp.unlink(missing_ok=True)
