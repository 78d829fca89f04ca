"""Reading encoded videos back: stream facts, chosen frames as RGB, an MP4's top-level boxes."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from vidgate.media.frames import RgbArray

__all__ = ["VideoInfo", "decode_frames", "probe", "top_level_boxes"]


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
            size = int.from_bytes(header[:4], "big")
            header_size = 8
            boxes.append(header[4:].decode("latin-1"))
            if size == 1:  # a 64-bit size follows the type
                size = int.from_bytes(handle.read(8), "big")
                header_size = 16
            elif size == 0:  # the box runs to the end of the file
                break
            handle.seek(size - header_size, 1)
    return boxes
