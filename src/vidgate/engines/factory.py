"""Builds each configured engine from its registry entry."""

from __future__ import annotations

from collections.abc import Mapping

from vidgate.engines.base import Engine
from vidgate.engines.config import ConfigError, EngineConfig
from vidgate.engines.preview import PreviewEngine

KNOWN_TYPES = ("preview",)


def build_engine(config: EngineConfig) -> Engine:
    if config.type == "preview":
        if config.options:
            raise ConfigError(f"[engines.{config.name}]: preview takes no options")
        return PreviewEngine()
    known = ", ".join(KNOWN_TYPES)
    raise ConfigError(f"[engines.{config.name}]: unknown type {config.type!r}; known: {known}")


def build_engines(configs: Mapping[str, EngineConfig]) -> dict[str, Engine]:
    return {name: build_engine(config) for name, config in configs.items()}
