"""The create rules of SPEC.md §2, one by one, as pure functions."""

from __future__ import annotations

from typing import Any

import pytest

from vidgate.engines.config import load_model_config
from vidgate.errors import FetchFailed, InvalidRequest
from vidgate.tasks import validation

REGISTRY = load_model_config().registry
SPEC = REGISTRY.resolve("veo3.1-fast")


def test_unknown_model_names_the_param_and_the_choices() -> None:
    with pytest.raises(InvalidRequest) as raised:
        REGISTRY.resolve("sora")
    assert raised.value.param == "model"
    assert "veo3.1-fast" in raised.value.message


def test_alias_resolves_to_the_model() -> None:
    assert REGISTRY.resolve("veo3.1-fast-beta") is SPEC


@pytest.mark.parametrize("prompt", ["", " ", "\n\t "])
def test_blank_prompts_are_refused(prompt: str) -> None:
    with pytest.raises(InvalidRequest) as raised:
        validation.check_prompt(prompt, SPEC)
    assert raised.value.param == "prompt"


def test_a_nul_character_in_the_prompt_is_refused_on_every_backend() -> None:
    with pytest.raises(InvalidRequest) as raised:
        validation.check_prompt("a cat\x00 playing piano", SPEC)
    assert raised.value.param == "prompt"
    assert "NUL" in raised.value.message


def test_prompt_length_limit_is_the_models() -> None:
    assert validation.check_prompt("é" * 1000, SPEC) == "é" * 1000
    with pytest.raises(InvalidRequest, match="1001 characters"):
        validation.check_prompt("x" * 1001, SPEC)


@pytest.mark.parametrize(
    ("given", "expected"), [(None, "16:9"), ("16:9", "16:9"), ("9:16", "9:16"), ("auto", "auto")]
)
def test_aspect_ratios_accepted(given: str | None, expected: str) -> None:
    assert validation.check_aspect(given, SPEC) == expected


@pytest.mark.parametrize("given", ["4:3", "16:10", "", "16/9", "1:1"])
def test_aspect_ratios_refused(given: str) -> None:
    with pytest.raises(InvalidRequest) as raised:
        validation.check_aspect(given, SPEC)
    assert raised.value.param == "aspect_ratio"


def test_at_most_two_images() -> None:
    urls = ["https://example.com/a.png"] * 2
    assert validation.check_images(urls, None, SPEC) == urls
    with pytest.raises(InvalidRequest, match="at most 2") as raised:
        validation.check_images([*urls, urls[0]], None, SPEC)
    assert raised.value.param == "image_urls"


@pytest.mark.parametrize(
    "url",
    ["ftp://example.com/a.png", "file:///etc/passwd", "example.com/a.png", "javascript:alert(1)"],
)
def test_image_urls_must_be_http(url: str) -> None:
    with pytest.raises(FetchFailed) as raised:
        validation.check_images([url], None, SPEC)
    assert raised.value.param == "image_urls"


@pytest.mark.parametrize(
    ("generation_type", "count", "ok"),
    [
        ("TEXT", 0, True),
        ("TEXT", 1, False),
        ("FIRST&LAST", 0, False),
        ("FIRST&LAST", 1, True),
        ("FIRST&LAST", 2, True),
        ("REFERENCE", 0, False),
    ],
)
def test_generation_type_agrees_with_the_image_count(
    generation_type: str, count: int, ok: bool
) -> None:
    urls = ["https://example.com/a.png"] * count
    if ok:
        validation.check_images(urls, generation_type, SPEC)
    else:
        with pytest.raises(InvalidRequest) as raised:
            validation.check_images(urls, generation_type, SPEC)
        assert raised.value.param == "generation_type"


def test_quality() -> None:
    validation.check_quality(None, SPEC)
    validation.check_quality("720p", SPEC)
    with pytest.raises(InvalidRequest) as raised:
        validation.check_quality("1080p", SPEC)
    assert raised.value.param == "quality"


def test_callback_url_length() -> None:
    validation.check_callback_length("https://example.com/" + "a" * 2028)
    with pytest.raises(InvalidRequest, match="2049") as raised:
        validation.check_callback_length("https://example.com/" + "a" * 2029)
    assert raised.value.param == "callback_url"


def test_unknown_fields_are_bounded_at_exactly_16_kib_of_compact_json() -> None:
    # {"seed":"xxx..."} is exactly the bound as compact JSON; one character more is not.
    fill = validation.MAX_EXTRA_BYTES - len('{"seed":""}')
    validation.check_extra({"seed": "x" * fill})
    with pytest.raises(InvalidRequest) as raised:
        validation.check_extra({"seed": "x" * (fill + 1)})
    assert raised.value.param == "seed"


def test_unknown_fields_past_16_kib_are_refused_naming_the_largest() -> None:
    extra = {"small": "x" * 9000, "large": "y" * 9000 + "y", "tiny": 1}
    with pytest.raises(InvalidRequest) as raised:
        validation.check_extra(extra)
    assert raised.value.param == "large"
    assert "16384 bytes" in raised.value.message


def test_a_huge_unknown_field_name_is_cut_in_the_message_and_param() -> None:
    name = "n" * 200_000
    with pytest.raises(InvalidRequest) as raised:
        validation.check_extra({name: 1})
    assert len(raised.value.message) < 600
    assert raised.value.param is not None
    assert len(raised.value.param) < 200
    assert "(200000 characters)" in raised.value.param


@pytest.mark.parametrize(
    ("check", "param"),
    [
        (lambda value: validation.check_aspect(value, SPEC), "aspect_ratio"),
        (lambda value: validation.check_quality(value, SPEC), "quality"),
        (lambda value: validation.check_images([], value, SPEC), "generation_type"),
        (lambda value: validation.check_images([value], None, SPEC), "image_urls"),
        (lambda value: REGISTRY.resolve(value), "model"),
    ],
)
def test_a_200_kb_value_is_not_echoed_whole(check: Any, param: str) -> None:
    value = "ftp://" + "v" * 200_000
    with pytest.raises(InvalidRequest) as raised:
        check(value)
    assert raised.value.param == param
    assert len(raised.value.message) < 600, raised.value.message[:300]
    assert "200006 characters" in raised.value.message


def test_quoted_values_are_one_line_of_text() -> None:
    with pytest.raises(InvalidRequest) as raised:
        validation.check_aspect("16:9\n\x00\ud800", SPEC)
    message = raised.value.message
    assert "\n" not in message
    assert "\x00" not in message
    message.encode("utf-8")  # no lone surrogate left in it
    assert "16:9\\n\\x00\\ud800" in message
