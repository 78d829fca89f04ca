"""Video encoding: frame geometry, image fitting, YUV frames, atomic H.264 MP4 files, probing."""

from __future__ import annotations

import contextlib
import queue
import threading
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import Final, NamedTuple, Self

import av
import numpy as np
from av.video.reformatter import ColorRange, Colorspace
from numpy.typing import NDArray
from PIL import Image

FPS: Final = 24
DURATION_SECONDS: Final = 8
FRAME_COUNT: Final = FPS * DURATION_SECONDS

# An RGB picture as an (height, width, 3) array, and a YUV 4:2:0 picture packed as I420: the Y
# plane (height rows), then U, then V, as one (height * 3 // 2, width) array (PyAV's layout).
RgbArray = NDArray[np.uint8]
Yuv420 = NDArray[np.uint8]

_SIZES: Final = {"16:9": (1280, 720), "9:16": (720, 1280)}
# Tag the stream BT.709 limited range (the HD convention) and convert with the same matrix, so
# players and PyAV's own decoder map the pixels back to the colours we meant.
_BT709: Final = 1
_LIMITED_RANGE: Final = 1


def frame_size(aspect_ratio: str) -> tuple[int, int]:
    """The (width, height) of a video for an aspect ratio of SPEC.md ("16:9" or "9:16")."""
    try:
        return _SIZES[aspect_ratio]
    except KeyError:
        raise ValueError(f"unsupported aspect ratio: {aspect_ratio!r}") from None


def fit_image(
    image: Image.Image, width: int, height: int, *, background: tuple[int, int, int] = (0, 0, 0)
) -> Image.Image:
    """The whole image, scaled with its aspect kept, centred on a ``width`` x ``height`` frame."""
    source = image if image.mode == "RGB" else image.convert("RGB")
    scale = min(width / source.width, height / source.height)
    size = (
        max(1, min(width, round(source.width * scale))),
        max(1, min(height, round(source.height * scale))),
    )
    # reducing_gap first shrinks by an integer factor: near-Lanczos quality at a fraction of the
    # cost for large photos.
    scaled = source.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
    if size == (width, height):
        return scaled
    canvas = Image.new("RGB", (width, height), background)
    canvas.paste(scaled, ((width - size[0]) // 2, (height - size[1]) // 2))
    return canvas


def rgb_to_yuv420(image: Image.Image | RgbArray) -> Yuv420:
    """Convert RGB to packed I420 with the encoder's colour matrix (BT.709, limited range)."""
    pixels = np.asarray(image.convert("RGB")) if isinstance(image, Image.Image) else image
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(pixels), format="rgb24")
    converted = _to_yuv420(frame).to_ndarray()
    return np.ascontiguousarray(converted, dtype=np.uint8)


def yuv420_planes(frame: Yuv420) -> tuple[Yuv420, Yuv420, Yuv420]:
    """Views of the Y, U and V planes of a packed I420 frame (writing to them edits the frame)."""
    rows, width = frame.shape
    height, flat = rows * 2 // 3, frame.reshape(-1)
    luma, chroma = width * height, width * height // 4
    return (
        flat[:luma].reshape(height, width),
        flat[luma : luma + chroma].reshape(height // 2, width // 2),
        flat[luma + chroma :].reshape(height // 2, width // 2),
    )


class ZoomableFrame:
    """A still frame that renders any box of itself, enlarged to full size, in about a millisecond.

    libswscale is several times faster than Pillow, but crops on whole pixels only, which makes a
    slow zoom judder. So each axis is planned (``plan_axis``) as a whole-pixel crop, scaled a bit
    larger than needed and cut to size on whole pixels: within ``ZOOM_TOLERANCE`` of the exact
    box. Zooms barely above 1 have no such plan, but do on the planes enlarged by an awkward
    factor; Pillow (exact, slow) is the last resort. Boxes must lie within the frame.
    """

    def __init__(self, frame: Yuv420) -> None:
        self.height, self.width = frame.shape[0] * 2 // 3, frame.shape[1]
        self._planes = [np.pad(plane, _PAD, mode="edge") for plane in yuv420_planes(frame)]
        self._enlarged: list[Yuv420] = []

    def render(self, box: tuple[float, float, float, float]) -> Yuv420:
        """The part of the frame inside ``box`` (left, top, right, bottom, in frame pixels)."""
        out = np.empty((self.height * 3 // 2, self.width), np.uint8)
        plans: dict[int, tuple[bool, AxisPlan, AxisPlan]] = {}
        for index, (target, subsampling) in enumerate(
            zip(yuv420_planes(out), (1, 2, 2), strict=True)
        ):
            rows, cols = target.shape
            left, top, right, bottom = (edge / subsampling for edge in box)
            if subsampling not in plans:  # U and V share theirs
                plans[subsampling] = self._plan(left, top, right, bottom, cols, rows)
            enlarged, x, y = plans[subsampling]
            if max(x.error, y.error) > ZOOM_TOLERANCE:
                exact = (left + _PAD, top + _PAD, right + _PAD, bottom + _PAD)
                zoomed = Image.fromarray(self._planes[index]).resize(
                    (cols, rows), Image.Resampling.BILINEAR, box=exact
                )
                target[:] = np.asarray(zoomed)
                continue
            source = self._enlarged_planes()[index] if enlarged else self._planes[index]
            view = source[
                y.crop_start + _PAD : y.crop_start + _PAD + y.crop_length,
                x.crop_start + _PAD : x.crop_start + _PAD + x.crop_length,
            ]
            # One sws thread: libx264 keeps the other cores busy. Bilinear when enlarging, like
            # Pillow's; bicubic when shrinking the enlarged plane, which keeps it as sharp.
            scaled = av.VideoFrame.from_numpy_buffer(view, format="gray").reformat(
                x.scaled, y.scaled, interpolation="BICUBIC" if enlarged else "BILINEAR", threads=1
            )
            target[:] = scaled.to_ndarray()[y.cut : y.cut + rows, x.cut : x.cut + cols]
        return out

    def _plan(
        self, left: float, top: float, right: float, bottom: float, cols: int, rows: int
    ) -> tuple[bool, AxisPlan, AxisPlan]:
        x, y = plan_axis(left, right - left, cols), plan_axis(top, bottom - top, rows)
        if max(x.error, y.error) <= ZOOM_TOLERANCE:
            return False, x, y
        wide, high = round(cols * _ENLARGE), round(rows * _ENLARGE)
        x = plan_axis(left * wide / cols, (right - left) * wide / cols, cols, wide)
        y = plan_axis(top * high / rows, (bottom - top) * high / rows, rows, high)
        return True, x, y

    def _enlarged_planes(self) -> list[Yuv420]:
        if not self._enlarged:
            for plane in self._planes:
                rows, cols = (length - 2 * _PAD for length in plane.shape)
                frame = av.VideoFrame.from_numpy_buffer(plane[_PAD:-_PAD, _PAD:-_PAD], "gray")
                enlarged = frame.reformat(
                    round(cols * _ENLARGE), round(rows * _ENLARGE), interpolation="BICUBIC"
                )
                self._enlarged.append(np.pad(enlarged.to_ndarray(), _PAD, mode="edge"))
        return self._enlarged


# The largest error, in output pixels, that ZoomableFrame accepts from swscale.
ZOOM_TOLERANCE: Final = 0.05
# How far a plan may look for a good crop, and so how wide the padding must be.
_SPARE: Final = 32
_PAD: Final = 2 * _SPARE
# Far from any simple fraction, so zooms near 1 become generic ratios on the enlarged planes.
_ENLARGE: Final = 1.37


class AxisPlan(NamedTuple):
    crop_start: int
    crop_length: int
    scaled: int
    cut: int
    error: float  # the worst distance, in output pixels, from where the pixels should sample


def plan_axis(start: float, length: float, size: int, plane: int | None = None) -> AxisPlan:
    """Show source pixels ``start`` to ``start + length`` at ``size`` pixels, in whole pixels.

    Take ``crop_length`` pixels from ``crop_start`` (up to ``_PAD`` past either end of the
    ``size``-pixel plane), scale them to ``scaled`` pixels, keep ``size`` from ``cut``. Scaling
    maps pixel centres (swscale and Pillow both do), so output pixel j samples ``crop_start +
    (cut + j + 0.5) * crop_length / scaled - 0.5`` instead of ``start + (j + 0.5) * length /
    size - 0.5``; the plan is the best of every scaled size and cut within ``_SPARE``.
    """
    step = length / size
    scaled = np.arange(size, size + 2 * _SPARE + 1)[:, None]
    crop = np.maximum(1, np.rint(scaled * step))
    real_step = crop / scaled
    cut = np.arange(_SPARE + 1)[None, :]
    crop_start = np.rint(start - cut * real_step)
    offset, drift = crop_start + cut * real_step - start, real_step - step
    # The error is linear along the axis, so its worst is at the first or the last pixel.
    error = np.maximum(np.abs(offset + 0.5 * drift), np.abs(offset + (size - 0.5) * drift))
    possible = (
        (cut + size <= scaled)
        & (crop_start >= -_PAD)
        & (crop_start + crop <= (size if plane is None else plane) + _PAD)
    )
    # Among near-equal plans, prefer a smaller scaled size: that is less work for swscale.
    score = np.where(possible, error + (scaled - size) * 1e-4, np.inf)
    row, column = (int(i) for i in np.unravel_index(np.argmin(score), score.shape))
    return AxisPlan(
        int(crop_start[row, column]),
        int(crop[row, 0]),
        int(scaled[row, 0]),
        column,
        float(error[row, column]) / step,
    )


def _to_yuv420(frame: av.VideoFrame) -> av.VideoFrame:
    return frame.reformat(
        format="yuv420p",
        dst_colorspace=Colorspace.ITU709,
        dst_color_range=ColorRange.MPEG,
    )


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
        self.path, self.width, self.height = Path(path), width, height
        self.fps, self.crf, self.preset = fps, crf, preset
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
            codec.colorspace = codec.color_primaries = codec.color_trc = _BT709
            codec.color_range = _LIMITED_RANGE
        except BaseException:
            container.close()
            self._temp.unlink(missing_ok=True)
            raise
        self._container, self._stream = container, stream
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
        self._put(_to_yuv420(av.VideoFrame.from_ndarray(pixels, format="rgb24")))

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
        frame.colorspace = _BT709
        frame.color_range = _LIMITED_RANGE
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
                container, self._container = self._container, None
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


@dataclass(frozen=True)
class VideoInfo:
    codec: str
    width: int
    height: int
    frame_count: int
    duration_seconds: float
    pix_fmt: str


def probe(path: Path) -> VideoInfo:
    """Describe the first video stream of a file, counting frames by decoding them all."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frame_count = sum(1 for _ in container.decode(stream))
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        else:
            duration = (container.duration or 0) / av.time_base
        return VideoInfo(
            codec=stream.codec_context.name,
            width=stream.codec_context.width,
            height=stream.codec_context.height,
            frame_count=frame_count,
            duration_seconds=duration,
            pix_fmt=stream.codec_context.pix_fmt or "",
        )


def decode_frames(path: Path, indices: Iterable[int]) -> dict[int, RgbArray]:
    """Decode the frames at ``indices`` (0-based) of a video as RGB arrays."""
    wanted = set(indices)
    found: dict[int, RgbArray] = {}
    with av.open(str(path)) as container:
        for index, frame in enumerate(container.decode(video=0)):
            if index in wanted:
                found[index] = np.asarray(frame.to_ndarray(format="rgb24"), np.uint8)
                if len(found) == len(wanted):
                    break
    return found


def top_level_boxes(path: Path) -> list[str]:
    """The types of an MP4's top-level boxes in file order (faststart puts moov before mdat)."""
    boxes: list[str] = []
    with path.open("rb") as handle:
        while header := handle.read(8):
            if len(header) < 8:
                break
            size, header_size = int.from_bytes(header[:4], "big"), 8
            boxes.append(header[4:].decode("latin-1"))
            if size == 1:  # a 64-bit size follows the type
                size, header_size = int.from_bytes(handle.read(8), "big"), 16
            elif size == 0:  # the box runs to the end of the file
                break
            handle.seek(size - header_size, 1)
    return boxes
