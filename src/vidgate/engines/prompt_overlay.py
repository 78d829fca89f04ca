"""The prompt over a title scene: laid out, drawn on a translucent panel with a label, composed
once, then blended into every frame."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Final, TypeAlias

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageDraw, ImageFont

from vidgate.engines.base import GenerationCancelled
from vidgate.engines.fonts import FontChain, default_chain
from vidgate.engines.graphemes import clusters
from vidgate.engines.text_layout import lay_out
from vidgate.media.frames import Yuv420, yuv420_planes

MAX_PROMPT_CHARS: Final = 1000
LABEL: Final = "vidgate preview"
# Luma of white and black in limited-range video; overlays are grey, so their chroma is 128.
_WHITE: Final = 235.0
_BLACK: Final = 16.0

_SURROGATES: Final = re.compile("[\ud800-\udfff]")
Wide: TypeAlias = NDArray[np.uint16]  # room for the products of 8-bit samples


class PromptOverlay:
    """The prompt on a translucent panel plus a small label, blended into Y and toward grey in UV.

    Everything is composed once; per frame it is two integer multiply-adds over the covered box.
    """

    def __init__(
        self,
        prompt: str,
        width: int,
        height: int,
        *,
        fonts: FontChain | None = None,
        cancelled: Callable[[], bool] | None = None,
    ) -> None:
        panel, cover, fill = prompt_masks(prompt, width, height, fonts=fonts, cancelled=cancelled)
        self._compose(panel, cover, fill)

    def _compose(self, panel: Image.Image, cover: Image.Image, fill: Image.Image) -> None:
        # Compose only the covered box (even-aligned, for chroma): the rest is left untouched.
        boxes = [box for box in (panel.getbbox(), cover.getbbox()) if box] or [(0, 0, 2, 2)]
        edges = list(zip(*boxes, strict=True))
        left, top, right, bottom = min(edges[0]), min(edges[1]), max(edges[2]), max(edges[3])
        self._box = (top - top % 2, bottom + bottom % 2, left - left % 2, right + right % 2)
        top, bottom, left, right = self._box
        alpha: NDArray[np.float64] = np.zeros((bottom - top, right - left))
        luma = np.zeros_like(alpha)  # premultiplied by alpha
        for mask, value in ((panel, _BLACK), (cover, _BLACK), (fill, _WHITE)):
            layer = np.asarray(mask.crop((left, top, right, bottom)), np.float64) / 255
            luma = luma * (1 - layer) + value * layer
            alpha = alpha * (1 - layer) + layer
        chroma_alpha = alpha.reshape(alpha.shape[0] // 2, 2, alpha.shape[1] // 2, 2).mean((1, 3))
        # out = (background * keep + add) >> 8 stays under 2**16: add <= 235 * 256 * alpha.
        self._keep = np.rint((1 - alpha) * 256).astype(np.uint16)
        self._add = np.rint(luma * 256 + 128).astype(np.uint16)
        self._chroma_keep = np.rint((1 - chroma_alpha) * 256).astype(np.uint16)
        self._chroma_add = np.rint(chroma_alpha * 128 * 256 + 128).astype(np.uint16)
        self._scratch = np.empty_like(self._keep)
        self._chroma_scratch = np.empty_like(self._chroma_keep)

    def apply(self, frame: Yuv420) -> None:
        top, bottom, left, right = self._box
        luma, u, v = yuv420_planes(frame)
        _blend(luma[top:bottom, left:right], self._keep, self._add, self._scratch)
        for plane in (u, v):
            region = plane[top // 2 : bottom // 2, left // 2 : right // 2]
            _blend(region, self._chroma_keep, self._chroma_add, self._chroma_scratch)


def prompt_masks(
    prompt: str,
    width: int,
    height: int,
    *,
    fonts: FontChain | None = None,
    cancelled: Callable[[], bool] | None = None,
) -> tuple[Image.Image, Image.Image, Image.Image]:
    """The overlay's three masks: the panel, the text with its outline, the text's fill.

    Each line is drawn run by run, each run in the first font of the chain that has its glyphs,
    right-to-left runs shaped and placed by the layout's bidi order. ``cancelled`` is checked
    at every measurement and line: a 1000-character prompt must not outlive its cancel.
    """
    short = min(width, height)
    fill, cover, panel = (Image.new("L", (width, height)) for _ in range(3))
    # A lone surrogate cannot be drawn (nor encoded for FreeType): the replacement character.
    text = _SURROGATES.sub("\ufffd", prompt[:MAX_PROMPT_CHARS]).strip()
    if text:
        _draw_prompt(text, panel, cover, fill, fonts or default_chain(), cancelled)
    label_font = ImageFont.load_default(size=max(10, short // 40))
    corner = (width - short // 30, height - short // 30)
    ImageDraw.Draw(cover).text(
        corner, LABEL, fill=150, font=label_font, anchor="rd", stroke_width=1, stroke_fill=150
    )
    ImageDraw.Draw(fill).text(corner, LABEL, fill=200, font=label_font, anchor="rd")
    return panel, cover, fill


def _draw_prompt(
    text: str,
    panel: Image.Image,
    cover: Image.Image,
    fill: Image.Image,
    chain: FontChain,
    cancelled: Callable[[], bool] | None,
) -> None:
    width, height = panel.size
    layout = lay_out(text, chain, width * 0.8, height * 0.6, min(width, height), cancelled)
    size, count = layout.size, len(layout.lines)
    stroke = max(1, size // 14)
    ascent, descent = chain.font(0, size).getmetrics()
    pitch = size * 1.25  # the line pitch the layout counted with
    block = (count - 1) * pitch + ascent + descent
    top = (height - block) / 2
    half = max(line.width for line in layout.lines) / 2 + stroke
    pad = size * 0.6
    ImageDraw.Draw(panel).rounded_rectangle(
        (width / 2 - half - pad, top - stroke - pad, width / 2 + half + pad, top + block + pad),
        radius=pad,
        fill=110,
    )
    # The text is drawn once, into the fill; its dark outline is that fill grown by the stroke
    # width. FreeType's stroker, run for every glyph, took most of a long prompt's set-up.
    draw = ImageDraw.Draw(fill)
    for number, line in enumerate(layout.lines):
        if cancelled is not None and cancelled():
            raise GenerationCancelled
        baseline, x = top + ascent + number * pitch, (width - line.width) / 2
        for run in line.runs:
            font = chain.font(run.face, size)
            if chain.raqm:
                drawn, direction = run.text, "rtl" if run.rtl else "ltr"
            else:  # no shaping: at least the order of the clusters
                drawn = "".join(reversed(clusters(run.text))) if run.rtl else run.text
                direction = None
            draw.text((x, baseline), drawn, fill=255, font=font, anchor="ls", direction=direction)
            x += run.width
    inked = fill.getbbox()
    if inked is not None:
        left, upper = max(0, inked[0] - stroke), max(0, inked[1] - stroke)
        right, lower = min(width, inked[2] + stroke), min(height, inked[3] + stroke)
        grown = _grow(np.asarray(fill.crop((left, upper, right, lower))), stroke)
        cover.paste(Image.fromarray(grown, "L"), (left, upper))


def _grow(mask: NDArray[np.uint8], radius: int) -> NDArray[np.uint8]:
    """``mask`` dilated by ``radius`` pixels (a square), as two passes of shifted maxima."""
    out = mask.copy()
    for axis in (1, 0):
        source = out.copy()
        length = source.shape[axis]
        for shift in range(1, min(radius, length - 1) + 1):
            ahead = [slice(None), slice(None)]
            behind = [slice(None), slice(None)]
            ahead[axis], behind[axis] = slice(shift, None), slice(None, -shift)
            np.maximum(out[tuple(ahead)], source[tuple(behind)], out=out[tuple(ahead)])
            np.maximum(out[tuple(behind)], source[tuple(ahead)], out=out[tuple(behind)])
    return out


def _blend(region: Yuv420, keep: Wide, add: Wide, scratch: Wide) -> None:
    # In place and into preallocated memory: fresh temporaries would cost more than the maths.
    np.multiply(region, keep, out=scratch, dtype=np.uint16)
    np.add(scratch, add, out=scratch)
    np.right_shift(scratch, 8, out=scratch)
    np.copyto(region, scratch, casting="unsafe")
