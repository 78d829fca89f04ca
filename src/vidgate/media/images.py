"""Images from strangers: fetch them through the egress policy and accept only safe stills."""

from __future__ import annotations

import asyncio
import io
import warnings
from dataclasses import dataclass
from typing import Literal

from PIL import Image

from vidgate.errors import FetchFailed
from vidgate.media.egress import EgressPolicy

__all__ = ["DEFAULT_MAX_BYTES", "DEFAULT_MAX_PIXELS", "ImageInfo", "fetch_image", "validate_image"]

DEFAULT_MAX_BYTES = 10 * 1024 * 1024
DEFAULT_MAX_PIXELS = 40_000_000

ImageFormat = Literal["JPEG", "PNG", "WEBP"]

_ACCEPTED = "only JPEG, PNG and WebP are accepted"
# Asked for by name: a CDN that negotiates formats could answer "image/*" with AVIF.
_ACCEPT_HEADER = "image/jpeg, image/png, image/webp"


@dataclass(frozen=True, slots=True)
class ImageInfo:
    """What a validated image is; ``extension`` includes the dot (".jpg")."""

    format: ImageFormat
    width: int
    height: int
    mime_type: str
    extension: str


_INFO: dict[ImageFormat, tuple[str, str]] = {
    "JPEG": ("image/jpeg", ".jpg"),
    "PNG": ("image/png", ".png"),
    "WEBP": ("image/webp", ".webp"),
}

# Formats refused by name, so the message tells the sender what they actually sent.
_REFUSED_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"GIF87a", "a GIF"),
    (b"GIF89a", "a GIF"),
    (b"BM", "a BMP image"),
    (b"II*\x00", "a TIFF image"),
    (b"MM\x00*", "a TIFF image"),
    (b"\x00\x00\x01\x00", "an ICO icon"),
    (b"\x00\x00\x00\x0cJXL \r\n\x87\n", "a JPEG XL image"),
    (b"\xff\x0a", "a JPEG XL image"),
    (b"\x00\x00\x00\x0cjP  \r\n\x87\n", "a JPEG 2000 image"),
    (b"8BPS", "a Photoshop document"),
    (b"%PDF", "a PDF document"),
    (b"\x1f\x8b", "gzip-compressed data"),
    (b"PK\x03\x04", "a ZIP archive"),
)
_ISO_BRANDS: dict[bytes, str] = {
    b"avif": "an AVIF image",
    b"avis": "an AVIF image",
    b"heic": "a HEIC image",
    b"heix": "a HEIC image",
    b"hevc": "a HEIC image",
    b"heim": "a HEIC image",
    b"heis": "a HEIC image",
    b"mif1": "a HEIF image",
    b"msf1": "a HEIF image",
    b"qt  ": "a QuickTime video",
}


def validate_image(data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> ImageInfo:
    """Accept a still JPEG, PNG or WebP of at most max_pixels pixels, fully decodable.

    The type comes from the bytes, never from a name or a header. Blocking (Pillow decodes the
    whole image): call it in a thread. Raises FetchFailed saying what was wrong.
    """
    image_format = _sniff(data)
    # catch_warnings changes process-wide filters; it only matters here if max_pixels exceeds
    # Pillow's own MAX_IMAGE_PIXELS, since the size check below refuses everything else first.
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(data), formats=[image_format]) as image:
                width, height = image.size
                _check_size(width, height, max_pixels)
                # A multi-picture JPEG (MPO: stereo or depth views from a phone) is a still
                # photo whose first picture is the image; APNG and animated WebP are not stills.
                if image.format != "MPO" and getattr(image, "n_frames", 1) > 1:
                    raise FetchFailed(
                        f"is an animated {_name(image_format)}; only still images are accepted"
                    )
                image.load()
        except FetchFailed:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            # Pillow's text names its own limit and a "DOS attack"; ours says what to send.
            raise FetchFailed("has too many pixels to decode safely") from None
        except (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError) as exc:
            # Pillow reports damaged data with any of these, in words that name its internals
            # ("cannot identify image file <_io.BytesIO object at 0x...>"): never passed on.
            raise FetchFailed(
                f"is not a valid {_name(image_format)}: it could not be decoded ({_damage(exc)})"
            ) from None
    mime_type, extension = _INFO[image_format]
    return ImageInfo(image_format, width, height, mime_type, extension)


async def fetch_image(
    policy: EgressPolicy,
    url: str,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> tuple[bytes, ImageInfo]:
    """Fetch url through the policy and validate what came back as an image."""
    fetched = await policy.fetch(url, max_bytes=max_bytes, accept=_ACCEPT_HEADER)
    info = await asyncio.to_thread(validate_image, fetched.content, max_pixels=max_pixels)
    return fetched.content, info


def _sniff(data: bytes) -> ImageFormat:
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    raise FetchFailed(f"{_describe_other(data)}; {_ACCEPTED}")


def _describe_other(data: bytes) -> str:
    if not data:
        return "is empty"
    for signature, name in _REFUSED_SIGNATURES:
        if data.startswith(signature):
            return f"is {name}"
    if data[4:8] == b"ftyp":
        return f"is {_ISO_BRANDS.get(data[8:12], 'an MP4/ISO media file')}"
    if data[:4] == b"RIFF":
        return "is a RIFF file that is not WebP"
    text = data[:1024].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if b"<svg" in text:
        return "is an SVG image"
    if text.startswith((b"<!doctype html", b"<html", b"<head", b"<body")) or b"<html" in text:
        return "is an HTML page"
    if text.startswith(b"<"):
        return "is an XML or HTML document"
    if text.startswith((b"{", b"[")):
        return "is JSON or text"
    return "is not an image (its first bytes match no known format)"


def _check_size(width: int, height: int, max_pixels: int) -> None:
    if width <= 0 or height <= 0:
        raise FetchFailed(f"claims a size of {width}x{height} pixels, which is not an image")
    if width * height > max_pixels:
        raise FetchFailed(
            f"is {width}x{height} pixels ({width * height / 1e6:.1f} megapixels), "
            f"over the {max_pixels / 1e6:g} megapixel limit"
        )


def _damage(exc: BaseException) -> str:
    if "truncated" in str(exc) or isinstance(exc, EOFError):
        return "the data ends early"
    return "the data is damaged"


def _name(image_format: ImageFormat) -> str:
    return {"JPEG": "JPEG", "PNG": "PNG", "WEBP": "WebP"}[image_format]
