"""Video frame pictures: the size per aspect ratio, fitting an image, RGB to BT.709 YUV 4:2:0."""

from __future__ import annotations

from typing import Final

import av
import numpy as np
from av.video.reformatter import ColorRange, Colorspace
from numpy.typing import NDArray
from PIL import Image

__all__ = [
    "BT709",
    "LIMITED_RANGE",
    "RgbArray",
    "Yuv420",
    "fit_image",
    "frame_size",
    "rgb_to_yuv420",
    "to_yuv420p",
    "yuv420_planes",
]

# An RGB picture as an (height, width, 3) array, and a YUV 4:2:0 picture packed as I420: the Y
# plane (height rows), then U, then V, as one (height * 3 // 2, width) array (PyAV's layout).
RgbArray = NDArray[np.uint8]
Yuv420 = NDArray[np.uint8]

# Streams are tagged BT.709 limited range (the HD convention) and converted with the same
# matrix, so players and PyAV's own decoder map the pixels back to the colours we meant.
BT709: Final = 1
LIMITED_RANGE: Final = 1

_SIZES: Final = {"16:9": (1280, 720), "9:16": (720, 1280)}


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


def to_yuv420p(frame: av.VideoFrame) -> av.VideoFrame:
    """A PyAV frame converted to yuv420p with the encoder's colour matrix."""
    return frame.reformat(
        format="yuv420p",
        dst_colorspace=Colorspace.ITU709,
        dst_color_range=ColorRange.MPEG,
    )


def rgb_to_yuv420(image: Image.Image | RgbArray) -> Yuv420:
    """Convert RGB to packed I420 with the encoder's colour matrix (BT.709, limited range)."""
    pixels = np.asarray(image.convert("RGB")) if isinstance(image, Image.Image) else image
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(pixels), format="rgb24")
    converted = to_yuv420p(frame).to_ndarray()
    return np.ascontiguousarray(converted, dtype=np.uint8)


def yuv420_planes(frame: Yuv420) -> tuple[Yuv420, Yuv420, Yuv420]:
    """Views of the Y, U and V planes of a packed I420 frame (writing to them edits the frame)."""
    rows, width = frame.shape
    height = rows * 2 // 3
    flat = frame.reshape(-1)
    luma = width * height
    chroma = luma // 4
    return (
        flat[:luma].reshape(height, width),
        flat[luma : luma + chroma].reshape(height // 2, width // 2),
        flat[luma + chroma :].reshape(height // 2, width // 2),
    )
