"""What a create fetches and checks from the network: its images and its callback host."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

from vidgate.errors import VidgateError, excerpt
from vidgate.media.egress import EgressPolicy
from vidgate.media.images import ImageInfo, fetch_image, validate_image
from vidgate.tasks import validation


async def check_callback_url(egress: EgressPolicy, url: str) -> None:
    """https, at most 2048 characters, and a host that resolves only to public addresses."""
    validation.check_callback_length(url)
    try:
        await egress.resolve_checked(url, schemes=("https",))
    except VidgateError as error:
        raise error.with_param("callback_url", f"callback_url: {error.message}") from None


async def fetch_images(
    egress: EgressPolicy,
    urls: Sequence[str],
    *,
    local: Callable[[str], Awaitable[bytes | None]] | None = None,
) -> list[tuple[bytes, ImageInfo]]:
    """Every image, fetched at once and validated; the first failure names its URL.

    ``local`` reads a URL this server can answer itself (an upload link) without the network;
    it returns None for any other URL, which is then fetched through the egress policy.
    """

    async def one(index: int, url: str) -> tuple[bytes, ImageInfo]:
        try:
            data = None if local is None else await local(url)
            if data is not None:
                return data, await asyncio.to_thread(validate_image, data)
            return await fetch_image(egress, url)
        except VidgateError as error:
            message = f"image_urls[{index}] ({excerpt(url)}): {error.message}"
            raise error.with_param("image_urls", message) from None

    results = await asyncio.gather(
        *(one(index, url) for index, url in enumerate(urls)), return_exceptions=True
    )
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return [r for r in results if not isinstance(r, BaseException)]
