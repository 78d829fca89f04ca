"""The preview's prompt text with the installed fonts (`make fonts`): glyphs, not boxes, for
CJK, Arabic, Hebrew, Devanagari and emoji; hostile prompts laid out with bounded work; a cancel
honoured during the layout."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from vidgate.engines.base import GenerationCancelled, GenerationContext, GenerationRequest
from vidgate.engines.fonts import FontChain, default_chain, pillow_only_chain
from vidgate.engines.preview import TitleScene, render_preview
from vidgate.engines.prompt_overlay import prompt_masks
from vidgate.engines.text_layout import lay_out

SIZE = (640, 360)
SCRIPTS = {
    "CJK": "山川草木日月",
    "Arabic": "مرحبا بالعالم",
    "Hebrew": "שלום עולם",
    "Devanagari": "नमस्ते दुनिया",
    "emoji": "😀🚀🌍🎉🐱",
}
HOSTILE = {
    "1000 letters": "a" * 1000,
    "1000 emoji": "".join(chr(0x1F600 + i % 80) for i in range(1000)),
    "1000 CJK": "".join(chr(0x4E00 + i * 7) for i in range(1000)),
    "combining marks": ("e" + "\u0301\u0308\u0323") * 250,
    "Arabic, no spaces": ("مرحبابالعالم" * 84)[:1000],
    "Hebrew and digits": ("שלום עולם 123 " * 72)[:1000],
    "four scripts in turn": "a日ب😀" * 250,
}


def text_pixels(prompt: str, chain: FontChain) -> np.ndarray:
    """Where the prompt's white fill is, at 640x360 (the label in the corner is cut off)."""
    _, _, fill = prompt_masks(prompt, *SIZE, fonts=chain)
    return np.asarray(fill)[: SIZE[1] * 7 // 8] > 128


def share_different(first: np.ndarray, second: np.ndarray) -> float:
    """The share of the pixels inked in either that only one of them inks."""
    return float((first ^ second).sum() / max(1, (first | second).sum()))


def glyph(chain: FontChain, face: int, text: str) -> np.ndarray:
    image = Image.new("L", (120, 120))
    ImageDraw.Draw(image).text((10, 90), text, fill=255, font=chain.font(face, 64), anchor="ls")
    return np.asarray(image) > 128


def test_two_cjk_prompts_draw_their_own_glyphs_not_the_missing_glyph_box() -> None:
    chain, boxes = default_chain(), pillow_only_chain()
    first, second = "山川草木", "日月星辰"
    drawn_first, drawn_second = text_pixels(first, chain), text_pixels(second, chain)
    boxed = text_pixels(first, boxes)
    # Pillow's font alone draws both prompts as the same four boxes: what the engine did before.
    assert np.array_equal(boxed, text_pixels(second, boxes))
    assert drawn_first.sum() > 500
    assert drawn_second.sum() > 500
    assert share_different(drawn_first, drawn_second) > 0.5
    assert share_different(drawn_first, boxed) > 0.5
    assert share_different(drawn_second, boxed) > 0.5


@pytest.mark.parametrize("script", SCRIPTS)
def test_each_script_is_drawn_with_a_font_that_has_its_glyphs(script: str) -> None:
    chain = default_chain()
    text = SCRIPTS[script]
    letters = sorted(set(text) - {" "})
    faces = {char: chain.face_for(char) for char in letters}
    assert chain.default not in faces.values(), f"no installed font has {script} (make fonts)"
    shapes = []
    for char, face in faces.items():
        shape = glyph(chain, face, char)
        missing = glyph(chain, face, "\u0378")  # unassigned: that font's missing-glyph box
        assert shape.any(), (script, char)
        assert share_different(shape, missing) > 0.3, (script, char)
        shapes.append(shape)
    # Boxes would all be alike; real letters differ from one another.
    for index, shape in enumerate(shapes):
        for other in shapes[index + 1 :]:
            assert share_different(shape, other) > 0.1
    assert share_different(text_pixels(text, chain), text_pixels(text, pillow_only_chain())) > 0.3


def test_right_to_left_words_are_drawn_right_to_left() -> None:
    chain = default_chain()
    # Two Hebrew letters: the first in reading order must be the one on the right.
    shin, final_mem = text_pixels("ש", chain), text_pixels("ם", chain)
    word = text_pixels("שם", chain)
    columns = np.nonzero(word.any(axis=0))[0]
    middle = (columns.min() + columns.max()) // 2
    right, left = word[:, middle:], word[:, :middle]

    def width(mask: np.ndarray) -> int:
        inked = np.nonzero(mask.any(axis=0))[0]
        return int(inked.max() - inked.min())

    assert abs(width(right) - width(shin)) <= 3
    assert abs(width(left) - width(final_mem)) <= 3


@pytest.mark.parametrize("name", HOSTILE)
def test_a_hostile_prompt_is_laid_out_with_bounded_work_on_the_real_fonts(name: str) -> None:
    text = HOSTILE[name]
    layout = lay_out(text, default_chain(), 1280 * 0.8, 720 * 0.6, 720)
    # The old layout passed 5,100 measurements (and 2.4 million measured characters) of
    # these prompts within its first size, and took 86-99 s.
    assert layout.measurements <= 5 * len(text) + 100, layout.measurements
    assert layout.measured_chars <= 8 * len(text), layout.measured_chars
    assert layout.lines


class StopAfter:
    """A stop flag that goes up at its ``count``-th look, counting the looks."""

    def __init__(self, count: int) -> None:
        self.count, self.looks = count, 0

    def is_set(self) -> bool:
        self.looks += 1
        return self.looks >= self.count


def test_a_cancel_during_the_layout_stops_the_title_scene_at_once() -> None:
    stop = StopAfter(20)
    with pytest.raises(GenerationCancelled):
        TitleScene(HOSTILE["1000 CJK"], 1280, 720, frame_count=2, cancelled=stop.is_set)
    assert stop.looks == 20


def test_a_render_cancelled_while_laying_out_makes_no_frame_and_no_file(tmp_path: Path) -> None:
    values: list[float] = []
    stop = StopAfter(5)
    output = tmp_path / "out" / "video.mp4"
    request = GenerationRequest("task-1", HOSTILE["1000 CJK"], "16:9")
    with pytest.raises(GenerationCancelled):
        render_preview(request, output, GenerationContext(progress=values.append), stop)
    assert stop.looks == 5
    assert values == []
    assert not output.parent.exists() or list(output.parent.iterdir()) == []


def test_a_lone_surrogate_does_not_break_the_render() -> None:
    # The API refuses one; a task made before that check, or by another path, must still render.
    scene = TitleScene("ab\ud800cd", *SIZE, frame_count=2)
    assert scene.frame(1).shape == (SIZE[1] * 3 // 2, SIZE[0])
    assert text_pixels("ab\ud800cd", default_chain()).any()


def test_a_script_without_a_font_is_drawn_with_pillows_font_and_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    chain = pillow_only_chain()  # as on a machine without the fonts
    with caplog.at_level(logging.WARNING, logger="vidgate.engines.fonts"):
        faces = {chain.face_for(char) for char in "山川草木 مرحبا"}
    assert faces == {chain.default}
    missing = [r.getMessage() for r in caplog.records if "no installed font" in r.getMessage()]
    assert len(missing) == 2, missing  # one line for CJK, one for Arabic
    assert "CJK" in missing[0]
    assert "ARABIC" in missing[1]
