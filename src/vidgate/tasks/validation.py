"""The rules a create request must pass before a task exists (SPEC.md §2), as pure functions."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from vidgate.engines.registry import ModelSpec
from vidgate.errors import FetchFailed, InvalidRequest, excerpt

MAX_CALLBACK_URL_CHARS = 2048
GENERATION_TYPES = ("TEXT", "FIRST&LAST")
# Unknown fields are kept with the task as they came; bounded, since every read carries them.
MAX_EXTRA_BYTES = 16 * 1024


def _json_bytes(value: object) -> int:
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())


def check_extra(extra: Mapping[str, Any]) -> None:
    """The unknown fields take at most MAX_EXTRA_BYTES as compact JSON; else blame the largest."""
    if not extra:
        return
    total = _json_bytes(extra)
    if total <= MAX_EXTRA_BYTES:
        return
    sizes = {name: _json_bytes({name: value}) for name, value in extra.items()}
    largest = max(sizes, key=lambda name: sizes[name])
    raise InvalidRequest(
        f"Unknown fields are recorded with the task up to {MAX_EXTRA_BYTES} bytes of JSON in "
        f"all; these take {total} bytes, '{excerpt(largest)}' alone {sizes[largest]}.",
        param=excerpt(largest),
    )


def check_callback_length(url: str) -> None:
    if len(url) > MAX_CALLBACK_URL_CHARS:
        raise InvalidRequest(
            f"callback_url is {len(url)} characters; at most {MAX_CALLBACK_URL_CHARS}.",
            param="callback_url",
        )


def check_prompt(prompt: str, spec: ModelSpec) -> str:
    if not prompt.strip():
        raise InvalidRequest("prompt must not be blank.", param="prompt")
    if "\x00" in prompt:
        # PostgreSQL cannot store it; refused on SQLite too, so both backends answer alike.
        raise InvalidRequest("prompt cannot contain the NUL character (U+0000).", param="prompt")
    if len(prompt) > spec.max_prompt_chars:
        raise InvalidRequest(
            f"prompt is {len(prompt)} characters; {spec.name} takes at most "
            f"{spec.max_prompt_chars}.",
            param="prompt",
        )
    return prompt


def check_aspect(aspect: str | None, spec: ModelSpec) -> str:
    if aspect is None:
        return "16:9"
    if aspect == "auto" or aspect in spec.aspect_ratios:
        return aspect
    allowed = ", ".join(repr(a) for a in (*spec.aspect_ratios, "auto"))
    raise InvalidRequest(
        f"aspect_ratio '{excerpt(aspect)}' is not supported; use one of {allowed}.",
        param="aspect_ratio",
    )


def check_images(
    urls: Sequence[str], generation_type: str | None, spec: ModelSpec
) -> Sequence[str]:
    if len(urls) > spec.max_images:
        raise InvalidRequest(
            f"image_urls has {len(urls)} URLs; {spec.name} takes at most {spec.max_images} "
            "(one for the first frame, two for the first and last frames).",
            param="image_urls",
        )
    for index, url in enumerate(urls):
        scheme = url.partition(":")[0].lower()
        if scheme not in ("http", "https") or "://" not in url:
            raise FetchFailed(
                f"image_urls[{index}] ({excerpt(url)}): only http and https URLs can be fetched.",
                param="image_urls",
            )
    if generation_type is not None:
        if generation_type not in GENERATION_TYPES:
            allowed = ", ".join(sorted(GENERATION_TYPES))
            raise InvalidRequest(
                f"generation_type '{excerpt(generation_type)}' is not known; use one of {allowed}.",
                param="generation_type",
            )
        if generation_type == "TEXT" and urls:
            raise InvalidRequest(
                "generation_type TEXT takes no image_urls.", param="generation_type"
            )
        if generation_type == "FIRST&LAST" and not urls:
            raise InvalidRequest(
                "generation_type FIRST&LAST needs one or two image_urls.",
                param="generation_type",
            )
    return urls


def check_quality(quality: str | None, spec: ModelSpec) -> None:
    if quality is not None and quality not in spec.qualities:
        allowed = ", ".join(spec.qualities)
        raise InvalidRequest(
            f"quality '{excerpt(quality)}' is not supported by {spec.name}; use {allowed}.",
            param="quality",
        )
