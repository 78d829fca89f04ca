"""Only still JPEG, PNG and WebP images of a sane size pass validation."""

from __future__ import annotations

import io
import random
import struct
import zlib

import pytest
from PIL import Image

from vidgate.errors import FetchFailed
from vidgate.media.images import validate_image


def _encode(image: Image.Image, image_format: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, image_format, **options)
    return buffer.getvalue()


def _noise(width: int = 64, height: int = 48) -> Image.Image:
    rng = random.Random(7)
    return Image.frombytes("RGB", (width, height), rng.randbytes(width * height * 3))


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _bilevel_png(width: int, height: int, *, full_data: bool = True) -> bytes:
    """A 1-bit greyscale PNG built by hand: kilobytes on disk, width*height pixels decoded."""
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    row = b"\x00" * (1 + (width + 7) // 8)  # filter byte, then packed bits
    pixels = zlib.compress(row * height, 9) if full_data else zlib.compress(row, 9)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", pixels)
        + _png_chunk(b"IEND", b"")
    )


@pytest.mark.parametrize(
    ("image_format", "expected", "mime_type", "extension"),
    [
        ("JPEG", "JPEG", "image/jpeg", ".jpg"),
        ("PNG", "PNG", "image/png", ".png"),
        ("WEBP", "WEBP", "image/webp", ".webp"),
    ],
)
def test_still_images_are_accepted_with_their_size_and_type(
    image_format: str, expected: str, mime_type: str, extension: str
) -> None:
    info = validate_image(_encode(_noise(64, 48), image_format))
    assert (info.format, info.width, info.height) == (expected, 64, 48)
    assert (info.mime_type, info.extension) == (mime_type, extension)


def test_a_bilevel_png_within_the_pixel_limit_is_accepted() -> None:
    info = validate_image(_bilevel_png(1000, 800))
    assert (info.format, info.width, info.height) == ("PNG", 1000, 800)


@pytest.mark.parametrize(
    ("data", "named"),
    [
        (_encode(_noise(), "GIF"), "is a GIF; only JPEG, PNG and WebP are accepted"),
        (_encode(_noise(), "BMP"), "is a BMP image"),
        (_encode(_noise(), "TIFF"), "is a TIFF image"),
        (
            b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="10"/>',
            "is an SVG image",
        ),
        (b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>', "SVG"),
        (b"<!DOCTYPE html>\n<html><body>Not found</body></html>", "is an HTML page"),
        (b"\n  <html><head><title>login</title></head></html>", "is an HTML page"),
        (b'{"error": "no such image"}', "is JSON or text"),
        (b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00avifmif1", "is an AVIF image"),
        (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00heicmif1", "is a HEIC image"),
        (b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2", "MP4"),
        (b"%PDF-1.7\n", "is a PDF document"),
        (b"\x1f\x8b\x08\x00", "is gzip-compressed data"),
        (b"RIFF\x24\x00\x00\x00WAVEfmt ", "is a RIFF file that is not WebP"),
        (b"", "is empty"),
        (b"hello, world", "is not an image"),
    ],
)
def test_other_content_is_refused_by_name(data: bytes, named: str) -> None:
    with pytest.raises(FetchFailed) as caught:
        validate_image(data)
    assert named in caught.value.message
    assert "only JPEG, PNG and WebP are accepted" in caught.value.message


@pytest.mark.parametrize("image_format", ["PNG", "JPEG", "WEBP"])
def test_truncated_images_are_refused(image_format: str) -> None:
    data = _encode(_noise(128, 128), image_format)
    with pytest.raises(FetchFailed, match="could not be decoded"):
        validate_image(data[: len(data) // 2])


def test_a_png_signature_on_garbage_is_refused() -> None:
    with pytest.raises(FetchFailed, match="is not a valid PNG"):
        validate_image(b"\x89PNG\r\n\x1a\n" + b"\x00" * 100)


@pytest.mark.parametrize(("image_format", "name"), [("PNG", "PNG"), ("WEBP", "WebP")])
def test_animated_images_are_refused(image_format: str, name: str) -> None:
    first = Image.new("RGB", (16, 16), "red")
    second = Image.new("RGB", (16, 16), "blue")
    data = _encode(first, image_format, save_all=True, append_images=[second])
    with pytest.raises(FetchFailed, match=f"is an animated {name}; only still images"):
        validate_image(data)


def test_a_tiny_file_with_huge_dimensions_is_refused_before_decoding() -> None:
    data = _bilevel_png(9000, 9000)
    assert len(data) < 64 * 1024
    with pytest.raises(FetchFailed) as caught:
        validate_image(data)
    assert caught.value.message == (
        "is 9000x9000 pixels (81.0 megapixels), over the 40 megapixel limit"
    )


def test_the_pixel_limit_is_a_parameter() -> None:
    data = _bilevel_png(1000, 1000)
    assert validate_image(data, max_pixels=1_000_000).width == 1000
    with pytest.raises(FetchFailed, match=r"over the 0\.999999 megapixel limit"):
        validate_image(data, max_pixels=999_999)


def test_a_decompression_bomb_past_pillows_own_limit_is_refused() -> None:
    # 400 megapixels: Pillow refuses it while reading the header; only the header is real.
    data = _bilevel_png(20000, 20000, full_data=False)
    with pytest.raises(FetchFailed, match="pixels"):
        validate_image(data, max_pixels=10**9)


def test_a_bomb_warning_is_an_error_when_the_limit_is_above_pillows() -> None:
    # 100 megapixels: above Pillow's warning threshold, below its hard limit.
    data = _bilevel_png(10000, 10000, full_data=False)
    with pytest.raises(FetchFailed, match="too many pixels to decode safely"):
        validate_image(data, max_pixels=10**9)


def test_a_multi_picture_jpeg_counts_as_a_still_photo() -> None:
    first = _noise(32, 32)
    data = _encode(first, "MPO", save_all=True, append_images=[_noise(32, 32)])
    info = validate_image(data)
    assert (info.format, info.width, info.mime_type) == ("JPEG", 32, "image/jpeg")
