"""Zooming into a still frame fast: whole-pixel crop plans for libswscale, Pillow as a fallback."""

from __future__ import annotations

from typing import Final, NamedTuple

import av
import numpy as np
from PIL import Image

from vidgate.media.frames import Yuv420, yuv420_planes

__all__ = ["ZOOM_TOLERANCE", "AxisPlan", "ZoomableFrame", "plan_axis"]

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
    offset = crop_start + cut * real_step - start
    drift = real_step - step
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


class ZoomableFrame:
    """A still frame that renders any box of itself, enlarged to full size, in about a millisecond.

    libswscale is several times faster than Pillow, but crops on whole pixels only, which makes a
    slow zoom judder. So each axis is planned (``plan_axis``) as a whole-pixel crop, scaled a bit
    larger than needed and cut to size on whole pixels: within ``ZOOM_TOLERANCE`` of the exact
    box. Zooms barely above 1 have no such plan, but do on the planes enlarged by an awkward
    factor; Pillow (exact, slow) is the last resort. Boxes must lie within the frame.
    """

    def __init__(self, frame: Yuv420) -> None:
        self.height = frame.shape[0] * 2 // 3
        self.width = frame.shape[1]
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
        x = plan_axis(left, right - left, cols)
        y = plan_axis(top, bottom - top, rows)
        if max(x.error, y.error) <= ZOOM_TOLERANCE:
            return False, x, y
        wide = round(cols * _ENLARGE)
        high = round(rows * _ENLARGE)
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
