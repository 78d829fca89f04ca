"""Prompt layout: grapheme clusters, bidi order, bounded work and cancellation, on fake fonts."""

from __future__ import annotations

import unicodedata

import pytest

from vidgate.engines.base import GenerationCancelled
from vidgate.engines.bidi import bidi_levels, visual_order
from vidgate.engines.graphemes import MAX_CLUSTER, clusters
from vidgate.engines.text_layout import Layout, font_sizes, lay_out

WIDTH, HEIGHT, SHORT = 1280 * 0.8, 720 * 0.6, 720


class FakeFont:
    """Advances by character class; shaped text comes out 10% wider than the sum of its
    unshaped clusters, so the layout must shorten lines its estimates said would fit."""

    def __init__(self, fonts: FakeFonts, size: int, basic: bool) -> None:
        self.fonts, self.size, self.basic = fonts, size, basic

    def getlength(self, text: str, mode: str = "", direction: str | None = None) -> float:
        self.fonts.calls += 1
        self.fonts.chars += len(text)
        if self.fonts.cancel_at is not None and self.fonts.calls >= self.fonts.cancel_at:
            self.fonts.cancel = True
        width = sum(self.advance(char) for char in text) * self.size
        return width if self.basic else width * 1.1

    @staticmethod
    def advance(char: str) -> float:
        if unicodedata.category(char) in ("Mn", "Me", "Cf"):
            return 0.0
        return 1.0 if unicodedata.east_asian_width(char) in "WF" else 0.55


class FakeFonts:
    """A font chain of two faces: 0 for scripts written left to right, 1 for Hebrew/Arabic."""

    raqm = True

    def __init__(self, cancel_at: int | None = None) -> None:
        self.calls = self.chars = 0
        self.cancel_at, self.cancel = cancel_at, False

    def face_for(self, cluster: str, previous: int | None = None) -> int:
        if unicodedata.bidirectional(cluster[0]) in ("R", "AL"):
            return 1
        return previous if previous is not None and not cluster[0].isalpha() else 0

    def drawable(self, cluster: str, face: int) -> str:
        return cluster

    def font(self, face: int, size: int, basic: bool = False) -> FakeFont:
        return FakeFont(self, size, basic)


HOSTILE = {
    "1000 letters": "a" * 1000,
    "1000 emoji": "".join(chr(0x1F600 + i % 80) for i in range(1000)),
    "1000 CJK": "".join(chr(0x4E00 + i * 7) for i in range(1000)),
    "combining marks": ("e" + "\u0301\u0308\u0323") * 250,
    "one letter, 999 marks": "a" + "\u0301" * 999,
    "ZWJ families": ("\U0001f468\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466" * 143)[:1000],
    "Arabic, no spaces": ("مرحبابالعالم" * 84)[:1000],
    "Hebrew with digits": ("שלום עולם 123 " * 72)[:1000],
    "Latin and Hebrew in turn": "aש" * 500,
    "words": "word " * 200,
    "500 lines": "a\n" * 500,
}


def line_texts(layout: Layout) -> list[str]:
    return ["".join(run.text for run in line.runs) for line in layout.lines]


def test_a_letter_keeps_its_marks_and_an_emoji_sequence_stays_whole() -> None:
    family = "\U0001f468\u200d\U0001f469\u200d\U0001f467"
    thumbs = "\U0001f44d\U0001f3fd"
    flag = "\U0001f1eb\U0001f1f7"
    text = f"e\u0301{family}{thumbs}{flag}क्षx\r\n"
    assert clusters(text) == ["e\u0301", family, thumbs, flag, "क्ष", "x", "\r\n"]


def test_an_endless_cluster_is_cut_at_the_longest_real_one() -> None:
    parts = clusters("a" + "\u0301" * 999)
    assert "".join(parts) == "a" + "\u0301" * 999
    assert max(len(part) for part in parts) == MAX_CLUSTER


def test_right_to_left_words_are_ordered_right_to_left() -> None:
    parts = clusters("ab שלום 12 cd")
    levels = bidi_levels(parts)
    # The Hebrew word and the digits after it go right to left; the space between them too.
    assert levels == [0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0]
    assert visual_order([0, 1, 1, 0]) == [0, 2, 1, 3]
    rtl = bidi_levels(clusters("שלום ab"))
    assert rtl == [1, 1, 1, 1, 1, 2, 2]
    assert visual_order([1, 2]) == [1, 0]


def test_a_short_prompt_gets_the_largest_size_on_one_line() -> None:
    layout = lay_out("A red fox", FakeFonts(), WIDTH, HEIGHT, SHORT)
    assert layout.size == font_sizes(SHORT)[0]
    assert line_texts(layout) == ["A red fox"]


@pytest.mark.parametrize("name", HOSTILE)
def test_any_long_prompt_is_laid_out_with_work_linear_in_its_length(name: str) -> None:
    text = HOSTILE[name]
    fonts = FakeFonts()
    layout = lay_out(text, fonts, WIDTH, HEIGHT, SHORT)
    # The old layout measured every prefix of a long word at every size: ~450,000 calls and
    # ~150 million characters for 1000 letters. Here: each distinct word and cluster once,
    # then each line of one or two sizes.
    assert fonts.calls == layout.measurements
    assert layout.measurements <= 5 * len(text) + 100, layout.measurements
    assert layout.measured_chars <= 8 * len(text), layout.measured_chars
    assert all(line.width <= WIDTH for line in layout.lines if len(line.runs[0].text) > 1)


@pytest.mark.parametrize("name", ["1000 emoji", "ZWJ families", "combining marks", "1000 CJK"])
def test_lines_break_between_clusters_only(name: str) -> None:
    text = HOSTILE[name]
    layout = lay_out(text, FakeFonts(), WIDTH, HEIGHT * 10, SHORT)  # room for every line
    lines = line_texts(layout)
    assert "".join(lines) == text
    whole = clusters(text)
    position = 0
    for line in lines:
        parts = clusters(line)
        assert parts == whole[position : position + len(parts)]
        position += len(parts)


def test_a_prompt_too_long_for_the_box_ends_in_an_ellipsis() -> None:
    layout = lay_out("界" * 1000, FakeFonts(), WIDTH, 60, SHORT)
    assert layout.size == font_sizes(SHORT)[-1]
    assert line_texts(layout)[-1].endswith("…")
    assert all(line.width <= WIDTH for line in layout.lines)


@pytest.mark.parametrize("cancel_at", [1, 10, 200])
def test_a_cancel_stops_the_layout_at_its_next_measurement(cancel_at: int) -> None:
    fonts = FakeFonts(cancel_at=cancel_at)
    with pytest.raises(GenerationCancelled):
        lay_out(HOSTILE["1000 CJK"], fonts, WIDTH, HEIGHT, SHORT, cancelled=lambda: fonts.cancel)
    assert fonts.calls == cancel_at  # not one measurement after the flag went up
