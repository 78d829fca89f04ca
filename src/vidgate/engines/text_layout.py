"""Prompt layout in near-linear time: font runs, wrapped lines, the largest size that fits.

The old layout cut an over-long word by measuring every prefix, for every font size: quadratic
in the word, 99 s for 1000 letters. Here each distinct word and cluster is measured once, at one
reference size, and scaled; the font size is found by bisection over those estimates; then only
the chosen size's lines are measured exactly (one call per font run), and shortened if shaping
made one wider than its estimate. Work is bounded by a small multiple of the prompt's length.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Protocol

from vidgate.engines.base import GenerationCancelled
from vidgate.engines.bidi import bidi_levels, visual_order
from vidgate.engines.graphemes import clusters

ELLIPSIS: Final = "…"
# Words of more clusters than this are cut by cluster estimates without a whole measurement.
_LONG_WORD: Final = 48


class SizedFont(Protocol):
    def getlength(self, text: str, mode: str = ..., direction: str | None = ...) -> float: ...


class Fonts(Protocol):
    """What layout needs from a font chain (``fonts.FontChain``; the unit tests use a fake)."""

    raqm: bool

    def face_for(self, cluster: str, previous: int | None = None) -> int: ...

    def drawable(self, cluster: str, face: int) -> str: ...

    def font(self, face: int, size: int, basic: bool = False) -> SizedFont: ...


@dataclass(frozen=True)
class Run:
    """Text in one font and one direction, drawn in one call."""

    text: str
    face: int
    level: int  # bidi embedding level: odd is right to left
    width: float

    @property
    def rtl(self) -> bool:
        return self.level % 2 == 1


@dataclass(frozen=True)
class Line:
    runs: tuple[Run, ...]  # left to right
    width: float


@dataclass(frozen=True)
class Layout:
    size: int
    lines: tuple[Line, ...]
    measurements: int  # font measuring calls made, and the code points they measured
    measured_chars: int


def font_sizes(short: int) -> list[int]:
    """The sizes tried, largest first: from short/13 down by tenths to short/48."""
    size = max(12, short // 13)
    smallest = max(12, short // 48)
    sizes = [size]
    while size > smallest:
        size = max(smallest, int(size * 0.9))
        sizes.append(size)
    return sizes


def lines_fitting(size: int, max_height: float) -> int:
    return int(max_height // (size * 1.25))


class _Paragraph:
    """One line of the prompt as clusters, with what does not depend on the font size."""

    def __init__(self, text: str, fonts: Fonts) -> None:
        self.parts = clusters(text)
        self.faces: list[int] = []
        previous: int | None = None
        for number, part in enumerate(self.parts):
            previous = fonts.face_for(part, previous)
            self.faces.append(previous)
            self.parts[number] = fonts.drawable(part, previous) or part
        self.levels = bidi_levels(self.parts)
        self.spaces = [part.isspace() for part in self.parts]
        # word_end[i]: where the word (or stretch of spaces) that starts at i ends
        self.word_end = [0] * len(self.parts)
        end = len(self.parts)
        for index in range(len(self.parts) - 1, -1, -1):
            if index + 1 < len(self.parts) and self.spaces[index] != self.spaces[index + 1]:
                end = index + 1
            self.word_end[index] = end


class _Typesetter:
    """Measures text, counting the work, and lays out paragraphs at a given size."""

    def __init__(self, fonts: Fonts, reference: int, cancelled: Callable[[], bool] | None) -> None:
        self.fonts = fonts
        self.reference = reference
        self.cancelled = cancelled
        self.calls = 0  # font measuring calls made, and the code points they measured
        self.chars = 0
        self._words: dict[tuple[str, tuple[int, ...], tuple[int, ...]], float] = {}
        self._clusters: dict[tuple[str, int, bool], float] = {}
        self._exact: dict[tuple[int, int, int, int], list[Run]] = {}  # (paragraph, span, size)

    def check(self) -> None:
        if self.cancelled is not None and self.cancelled():
            raise GenerationCancelled

    def measure(self, text: str, face: int, size: int, rtl: bool, basic: bool = False) -> float:
        self.check()
        self.calls += 1
        self.chars += len(text)
        font = self.fonts.font(face, size, basic)
        if self.fonts.raqm and not basic:
            return float(font.getlength(text, direction="rtl" if rtl else "ltr"))
        return float(font.getlength(text[::-1] if rtl else text))

    def runs(self, paragraph: _Paragraph, start: int, end: int, size: int | None) -> list[Run]:
        """The font-and-direction runs of clusters [start, end), in logical order; measured at
        ``size`` (None: not measured)."""
        runs: list[Run] = []
        index = start
        while index < end:
            face = paragraph.faces[index]
            level = paragraph.levels[index]
            stop = index + 1
            while stop < end and paragraph.faces[stop] == face and paragraph.levels[stop] == level:
                stop += 1
            text = "".join(paragraph.parts[index:stop])
            width = self.measure(text, face, size, level % 2 == 1) if size is not None else 0.0
            runs.append(Run(text, face, level, width))
            index = stop
        return runs

    def exact_runs(self, paragraph: _Paragraph, start: int, end: int, size: int) -> list[Run]:
        key = (id(paragraph), start, end, size)
        runs = self._exact.get(key)
        if runs is None:
            runs = self.runs(paragraph, start, end, size)
            self._exact[key] = runs
        return runs

    def word_width(self, paragraph: _Paragraph, start: int, end: int) -> float:
        """The width at the reference size of the word (or spaces) [start, end), measured once
        per distinct word."""
        key = (
            "".join(paragraph.parts[start:end]),
            tuple(paragraph.faces[start:end]),
            tuple(paragraph.levels[start:end]),
        )
        width = self._words.get(key)
        if width is None:
            width = sum(run.width for run in self.runs(paragraph, start, end, self.reference))
            self._words[key] = width
        return width

    def cluster_width(self, paragraph: _Paragraph, index: int) -> float:
        rtl = paragraph.levels[index] % 2 == 1
        key = (paragraph.parts[index], paragraph.faces[index], rtl)
        width = self._clusters.get(key)
        if width is None:
            # Unshaped: an estimate for cutting a long word, checked when the line is measured.
            width = self.measure(key[0], key[1], self.reference, rtl, basic=True)
            self._clusters[key] = width
        return width

    def wrap(
        self, paragraph: _Paragraph, size: int, max_width: float, exact: bool
    ) -> list[tuple[int, int]]:
        """Greedy lines as cluster spans: by scaled estimates, and when ``exact``, shortened
        until each measures within ``max_width`` at ``size``."""
        scale = size / self.reference
        count = len(paragraph.parts)
        spans: list[tuple[int, int]] = []
        start = 0
        while start < count and paragraph.spaces[start]:
            start += 1
        if start >= count:
            return [(0, 0)]
        while start < count:
            self.check()
            end = start
            width = 0.0
            full = False
            # The rest of a word cut on the line before is cut again, never measured whole:
            # measuring each remainder would make a long word quadratic again. A long word
            # goes by clusters from the start: it would be measured run by run for nothing.
            rest = start > 0 and not paragraph.spaces[start - 1]
            while end < count and not full:  # whole words while they fit
                stop = paragraph.word_end[end]
                if not (rest and end == start) and stop - end <= _LONG_WORD:
                    grown = width + self.word_width(paragraph, end, stop) * scale
                    if grown <= max_width:
                        width, end = grown, stop
                        continue
                    if end > start:
                        break
                while end < stop:  # a word wider than the line: cut it by clusters
                    step = self.cluster_width(paragraph, end) * scale
                    if width + step > max_width and end > start:
                        full = True
                        break
                    width += step
                    end += 1
            if exact:
                end = self._shorten(paragraph, start, end, size, max_width)
            spans.append((start, end))
            start = end
            while start < count and paragraph.spaces[start]:
                start += 1
        return spans

    def _shorten(
        self, paragraph: _Paragraph, start: int, end: int, size: int, max_width: float
    ) -> int:
        """``end`` moved back until [start, end) measures within ``max_width``: to a space when
        the line has one, else in proportion to the excess. A single cluster always stays."""
        while True:
            trimmed = self.trim(paragraph, start, end)
            width = sum(run.width for run in self.exact_runs(paragraph, start, trimmed, size))
            if width <= max_width or trimmed - start <= 1:
                return end
            spaces = [i for i in range(trimmed - 1, start, -1) if paragraph.spaces[i]]
            if spaces:
                end = spaces[0]
            else:
                keep = math.floor((trimmed - start) * max_width / width)
                end = start + max(1, min(trimmed - start - 1, keep))

    @staticmethod
    def trim(paragraph: _Paragraph, start: int, end: int) -> int:
        while end > start and paragraph.spaces[end - 1]:
            end -= 1
        return end

    def line(self, paragraph: _Paragraph, start: int, end: int, size: int, tail: str) -> Line:
        trimmed = self.trim(paragraph, start, end)
        runs = list(self.exact_runs(paragraph, start, trimmed, size))
        if tail:
            face = paragraph.faces[trimmed - 1] if trimmed > start else 0
            level = runs[-1].level if runs else 0
            runs.append(Run(tail, face, level, self.measure(tail, face, size, level % 2 == 1)))
        ordered = tuple(runs[index] for index in visual_order([run.level for run in runs]))
        return Line(ordered, sum(run.width for run in runs))


def lay_out(
    text: str,
    fonts: Fonts,
    max_width: float,
    max_height: float,
    short: int,
    cancelled: Callable[[], bool] | None = None,
) -> Layout:
    """The largest size whose wrapped lines fit the box; at the smallest, the lines that fit,
    the last ending in an ellipsis. ``cancelled`` is checked at every measurement and line."""
    sizes = font_sizes(short)
    setter = _Typesetter(fonts, sizes[0], cancelled)
    paragraphs = [_Paragraph(line, fonts) for line in text.splitlines() or [""]]
    setter.check()

    wrapped: dict[tuple[int, bool], list[tuple[int, int, int]]] = {}

    def spans(size: int, exact: bool) -> list[tuple[int, int, int]]:
        if (size, exact) not in wrapped:
            wrapped[size, exact] = [
                (number, start, end)
                for number, paragraph in enumerate(paragraphs)
                for start, end in setter.wrap(paragraph, size, max_width, exact)
            ]
        return wrapped[size, exact]

    def fits(size: int, exact: bool) -> bool:
        return len(spans(size, exact)) <= lines_fitting(size, max_height)

    # Bisection on the estimates (fitting only gets easier as the size shrinks), then the
    # exact check from there down: one or two sizes measured line by line.
    # The answer is in sizes[low..high].
    low = 0
    high = len(sizes) - 1
    while low < high:
        middle = (low + high) // 2
        if fits(sizes[middle], exact=False):
            high = middle
        else:
            low = middle + 1
    chosen = low
    while chosen < len(sizes) - 1 and not fits(sizes[chosen], exact=True):
        chosen += 1
    size = sizes[chosen]
    laid = spans(size, exact=True)
    fitting = lines_fitting(size, max_height)
    lines: list[Line] = []
    for index, (number, start, end) in enumerate(laid[: max(1, fitting)]):
        paragraph = paragraphs[number]
        truncated = len(laid) > fitting and index == max(1, fitting) - 1
        if not truncated:
            lines.append(setter.line(paragraph, start, end, size, ""))
            continue
        cut = max(start, setter.trim(paragraph, start, end) - 2)
        line = setter.line(paragraph, start, cut, size, ELLIPSIS)
        while line.width > max_width and cut > start:
            cut -= max(1, (cut - start) // 8)
            line = setter.line(paragraph, start, cut, size, ELLIPSIS)
        lines.append(line)
    return Layout(size, tuple(lines), setter.calls, setter.chars)
