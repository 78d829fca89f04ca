"""Engines are built from their registry entries; wrong options are refused by name."""

from __future__ import annotations

import pytest

from vidgate.engines.config import ConfigError, EngineConfig
from vidgate.engines.factory import build_engine
from vidgate.engines.preview import PreviewEngine
from vidgate.engines.relay import RelayEngine
from vidgate.engines.veo import VeoEngine


async def test_each_known_type_builds_its_engine() -> None:
    assert isinstance(build_engine(EngineConfig("p", "preview")), PreviewEngine)
    veo = build_engine(EngineConfig("g", "veo", {"api_key": "k", "poll_interval": 1.0}))
    assert isinstance(veo, VeoEngine)
    relay = build_engine(EngineConfig("r", "relay", {"base_url": "https://up", "api_key": "k"}))
    assert isinstance(relay, RelayEngine)
    await veo.aclose()
    await relay.aclose()


@pytest.mark.parametrize(
    ("config", "fragment"),
    [
        (EngineConfig("x", "sora"), "unknown type 'sora'"),
        (EngineConfig("p", "preview", {"speed": 2}), "no option 'speed'"),
        (EngineConfig("g", "veo", {}), "needs 'api_key'"),
        (EngineConfig("r", "relay", {"api_key": "k"}), "needs 'base_url'"),
        (EngineConfig("r", "relay", {"base_url": "u", "api_key": "k", "colour": 1}), "'colour'"),
    ],
)
def test_wrong_entries_are_refused(config: EngineConfig, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment.replace("(", r"\(")) as raised:
        build_engine(config)
    assert config.name in str(raised.value)
