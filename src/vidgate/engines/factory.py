"""Builds each configured engine from its registry entry."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from vidgate.engines.base import Engine
from vidgate.engines.config import ConfigError, EngineConfig
from vidgate.engines.diffusers_engine import DiffusersEngine  # torch loads in its child only
from vidgate.engines.preview import PreviewEngine
from vidgate.engines.relay import RelayEngine
from vidgate.engines.veo import VeoEngine

KNOWN_TYPES = ("preview", "veo", "relay", "diffusers")
# The options each type takes (beyond `type`), and which of them it cannot do without.
_OPTIONS: dict[str, tuple[set[str], set[str]]] = {
    "preview": ({"render_in"}, set()),
    "veo": (
        {
            "api_key",
            "base_url",
            "model",
            "poll_interval",
            "typical_seconds",
            "max_retries",
            "timeout",
            "backoff",
        },
        {"api_key"},
    ),
    "diffusers": (
        {
            "pipeline",
            "model_path",
            "width",
            "height",
            "num_frames",
            "num_inference_steps",
            "guidance_scale",
            "device",
            "dtype",
            "stop_timeout",
        },
        {"pipeline", "model_path"},
    ),
    "relay": (
        {"base_url", "api_key", "upstream_model", "poll_wait", "max_retries", "timeout"},
        {"base_url", "api_key"},
    ),
}

ImageUrl = Callable[[Path], str]


def _checked_options(config: EngineConfig) -> dict[str, Any]:
    if config.type not in _OPTIONS:
        known = ", ".join(KNOWN_TYPES)
        raise ConfigError(f"[engines.{config.name}]: unknown type {config.type!r}; known: {known}")
    allowed, required = _OPTIONS[config.type]
    unknown = sorted(set(config.options) - allowed)
    if unknown:
        raise ConfigError(f"[engines.{config.name}]: {config.type} takes no option {unknown[0]!r}")
    missing = sorted(required - set(config.options))
    if missing:
        raise ConfigError(f"[engines.{config.name}]: {config.type} needs {missing[0]!r}")
    return dict(config.options)


def build_engine(config: EngineConfig, *, image_url: ImageUrl | None = None) -> Engine:
    options = _checked_options(config)
    if config.type == "veo":
        return VeoEngine(**options)
    if config.type == "diffusers":
        return DiffusersEngine(options)
    if config.type == "relay":
        return RelayEngine(**options, image_url=image_url)
    return PreviewEngine(**options)


def build_engines(
    configs: Mapping[str, EngineConfig], *, image_url: ImageUrl | None = None
) -> dict[str, Engine]:
    return {name: build_engine(config, image_url=image_url) for name, config in configs.items()}
