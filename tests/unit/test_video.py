"""Frame geometry, fitting, YUV frames, zoom planning and the preview scenes, all in memory."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw

from vidgate.engines.base import prompt_seed
from vidgate.engines.preview import CrossfadeScene, KenBurnsScene, TitleScene
from vidgate.media.frames import fit_image, frame_size, rgb_to_yuv420, yuv420_planes
from vidgate.media.video import FRAME_COUNT
from vidgate.media.zoom import ZOOM_TOLERANCE, ZoomableFrame, plan_axis

RED, GREEN, BLUE, YELLOW = (230, 20, 20), (20, 230, 20), (20, 20, 230), (230, 230, 20)


def structured(width: int, height: int, seed: int = 0) -> Image.Image:
    """Gradients and shapes, so that a misplaced or distorted frame shows."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    pixels = np.stack(
        [x / width * 255, y / height * 255, (x + y) / (width + height) * 255], axis=-1
    )
    image = Image.fromarray(pixels.astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(image)
    for _ in range(5):
        x0, y0 = rng.uniform(0, width * 0.8), rng.uniform(0, height * 0.8)
        size = rng.uniform(0.1, 0.25) * min(width, height)
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        draw.ellipse((x0, y0, x0 + size, y0 + size), fill=colour)
    return image


def cornered(width: int, height: int) -> Image.Image:
    """Grey with a coloured square in each corner: the corners show the whole image is there."""
    image = Image.new("RGB", (width, height), (128, 128, 128))
    draw = ImageDraw.Draw(image)
    side = min(width, height) // 5
    draw.rectangle((0, 0, side, side), fill=RED)
    draw.rectangle((width - side - 1, 0, width - 1, side), fill=GREEN)
    draw.rectangle((0, height - side - 1, side, height - 1), fill=BLUE)
    draw.rectangle((width - side - 1, height - side - 1, width - 1, height - 1), fill=YELLOW)
    return image


def test_frame_size_is_720p_in_both_orientations() -> None:
    assert frame_size("16:9") == (1280, 720)
    assert frame_size("9:16") == (720, 1280)
    with pytest.raises(ValueError):
        frame_size("4:3")


def test_frame_count_is_eight_seconds_at_24_fps() -> None:
    assert FRAME_COUNT == 192


@pytest.mark.parametrize(
    ("source", "content"),
    [
        ((800, 200), (0, 25, 160, 65)),  # wide: 160x40, bars above and below
        ((300, 600), (57, 0, 102, 90)),  # tall: 45x90, bars left and right
        ((320, 180), (0, 0, 160, 90)),  # same shape: no bars
    ],
)
def test_fit_image_shows_the_whole_image_with_its_aspect(
    source: tuple[int, int], content: tuple[int, int, int, int]
) -> None:
    fitted = fit_image(cornered(*source), 160, 90)
    assert fitted.size == (160, 90)
    assert fitted.mode == "RGB"
    pixels = np.asarray(fitted).astype(int)
    left, top, right, bottom = content
    assert Image.fromarray((pixels.sum(axis=2) > 0).astype(np.uint8)).getbbox() == content
    assert (right - left) / (bottom - top) == pytest.approx(source[0] / source[1], rel=0.05)
    inset = 2
    corners = {
        RED: pixels[top + inset, left + inset],
        GREEN: pixels[top + inset, right - 1 - inset],
        BLUE: pixels[bottom - 1 - inset, left + inset],
        YELLOW: pixels[bottom - 1 - inset, right - 1 - inset],
    }
    for colour, seen in corners.items():
        assert np.abs(seen - colour).max() < 40, (colour, seen)


def test_fit_image_converts_other_modes() -> None:
    fitted = fit_image(cornered(40, 40).convert("L"), 32, 18)
    assert (fitted.mode, fitted.size) == ("RGB", (32, 18))


def test_yuv420_planes_are_views_of_the_packed_frame() -> None:
    frame = rgb_to_yuv420(structured(64, 36))
    assert frame.shape == (54, 64)
    luma, u, v = yuv420_planes(frame)
    assert (luma.shape, u.shape, v.shape) == ((36, 64), (18, 32), (18, 32))
    u[0, 0] = 7
    assert frame[36, 0] == 7


def test_black_and_white_use_video_range() -> None:
    frame = rgb_to_yuv420(np.array([[[0, 0, 0]] * 4, [[255, 255, 255]] * 4] * 2, np.uint8))
    luma, u, _ = yuv420_planes(frame)
    assert luma[0].tolist() == [16] * 4
    assert luma[1].tolist() == [235] * 4
    assert np.abs(u.astype(int) - 128).max() <= 1


def test_prompt_seed_is_stable() -> None:
    assert prompt_seed("a cat") == prompt_seed("a cat")
    assert prompt_seed("a cat") != prompt_seed("a cat.")


def test_title_frames_depend_only_on_the_prompt() -> None:
    def frames(prompt: str) -> list[np.ndarray]:
        scene = TitleScene(prompt, 160, 90, frame_count=8)
        return [scene.frame(index) for index in (0, 3, 7)]

    same = frames("A lighthouse in a storm")
    again = frames("A lighthouse in a storm")
    other = frames("A lighthouse in the fog")
    assert all(np.array_equal(a, b) for a, b in zip(same, again, strict=True))
    assert all(not np.array_equal(a, b) for a, b in zip(same, other, strict=True))
    assert not np.array_equal(same[0], same[2]), "the backdrop should move"


def test_title_scene_fits_the_longest_prompt() -> None:
    scene = TitleScene("word " * 200, 1280, 720, frame_count=2)
    frame = scene.frame(1)
    assert frame.shape == (1080, 1280)
    # The text panel is drawn: white text luma appears in the middle of the frame.
    assert (yuv420_planes(frame)[0][200:520] >= 200).any()


@pytest.mark.parametrize("size", [1280, 720, 640, 360, 90])
def test_plan_axis_reports_where_its_pixels_sample(size: int) -> None:
    rng = np.random.default_rng(size)
    for _ in range(100):
        zoom = rng.uniform(1.0001, 1.2)
        length = size / zoom
        start = rng.uniform(0, size - length)
        plan = plan_axis(start, length, size)
        assert plan.cut + size <= plan.scaled
        for j in (0, size // 2, size - 1):
            sampled = plan.crop_start + (plan.cut + j + 0.5) * plan.crop_length / plan.scaled
            wanted = start + (j + 0.5) * length / size
            assert abs(sampled - wanted) * zoom <= plan.error + 1e-9


@pytest.mark.parametrize("size", [1280, 720, 640, 360])
def test_plan_axis_is_nearly_always_exact_enough_once_zoomed_in(size: int) -> None:
    rng = np.random.default_rng(size)
    errors = []
    for _ in range(300):
        length = size / rng.uniform(1.03, 1.2)
        errors.append(plan_axis(rng.uniform(0, size - length), length, size).error)
    assert np.mean(np.array(errors) <= ZOOM_TOLERANCE) > 0.95
    assert max(errors) < 0.25


def fine_detail(width: int, height: int, seed: int) -> np.ndarray:
    """Noise two pixels wide: a box off by a fraction of a pixel changes it a lot."""
    rng = np.random.default_rng(seed)
    coarse = Image.fromarray(rng.integers(16, 236, (height // 2, width // 2), dtype=np.uint8))
    return np.asarray(coarse.resize((width, height), Image.Resampling.BICUBIC))


@pytest.mark.parametrize(
    "box",
    [
        (0.0, 0.0, 320.0, 180.0),  # the whole frame
        (0.07, 0.04, 319.8, 179.9),  # barely zoomed: the enlarged-plane path
        (10.3, 6.6, 10.3 + 320 / 1.1, 6.6 + 180 / 1.1),
        (30.25, 0.5, 30.25 + 320 / 1.12, 0.5 + 180 / 1.12),
    ],
)
def test_zoomable_frame_matches_an_exact_resize(box: tuple[float, float, float, float]) -> None:
    planes = [fine_detail(320, 180, 1), fine_detail(160, 90, 2), fine_detail(160, 90, 3)]
    frame = np.concatenate([plane.reshape(-1) for plane in planes]).reshape(270, 320)
    rendered = ZoomableFrame(frame).render(box)
    assert rendered.shape == frame.shape
    for plane, source, scale in zip(yuv420_planes(rendered), planes, (1, 2, 2), strict=True):
        scaled_box = tuple(edge / scale for edge in box)
        exact = Image.fromarray(source).resize(
            source.shape[::-1], Image.Resampling.BILINEAR, box=scaled_box
        )
        # Measured: 0-2 at the exact box (swscale's and Pillow's filters differ slightly), 3.7-6
        # with the box 0.15 pixel off and 8-10 with it 0.3 pixel off.
        difference = np.abs(plane.astype(int) - np.asarray(exact).astype(int)).mean()
        assert difference < 3.0, (scale, difference)


def test_ken_burns_starts_on_the_fitted_image_then_moves() -> None:
    image = structured(400, 300, seed=5)
    scene = KenBurnsScene(image, 160, 90, seed=1, frame_count=12)
    fitted = rgb_to_yuv420(fit_image(image, 160, 90))
    assert np.array_equal(scene.frame(0), fitted)
    assert np.abs(scene.frame(11).astype(int) - fitted).mean() > 3


def test_crossfade_ends_exactly_on_each_fitted_image() -> None:
    first, last = structured(400, 300, seed=6), structured(300, 400, seed=7)
    scene = CrossfadeScene(first, last, 160, 90, frame_count=24)
    fitted_first = rgb_to_yuv420(fit_image(first, 160, 90))
    fitted_last = rgb_to_yuv420(fit_image(last, 160, 90))
    assert np.array_equal(scene.frame(0), fitted_first)
    assert np.array_equal(scene.frame(23), fitted_last)
    middle = scene.frame(12).astype(int)
    assert np.abs(middle - fitted_first).mean() > 3
    assert np.abs(middle - fitted_last).mean() > 3
