"""The model registry file: defaults, secrets from the environment, clear errors."""

from __future__ import annotations

import tomllib
from decimal import Decimal
from pathlib import Path

import pytest

from vidgate.engines.config import ConfigError, load_model_config, parse_model_config

BASE = """
[engines.preview]
type = "preview"

[engines.gemini]
type = "veo"
api_key = "${GEMINI_API_KEY}"
base_url = "https://generativelanguage.googleapis.com"

[models."veo3.1-fast"]
engines = ["gemini", "preview"]
price = "25.70"
aliases = ["veo3.1-fast-beta"]
max_run_seconds = 600
"""


def parse(text: str, environ: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    return parse_model_config(tomllib.loads(text), environ=environ or {})


def test_the_packaged_default_serves_veo_on_the_preview_engine() -> None:
    config = load_model_config()
    spec = config.registry.resolve("veo3.1-fast")
    assert spec.engine == "preview"
    assert spec.price == Decimal("25.70")
    assert config.registry.resolve("veo3.1-fast-beta") is spec
    assert spec.max_images == 2
    assert spec.aspect_ratios == ("16:9", "9:16")
    assert "preview" in spec.description
    assert set(config.engines) == {"preview"}
    assert config.skipped == {"veo": "GEMINI_API_KEY not set"}


def test_setting_gemini_api_key_moves_the_default_model_to_veo() -> None:
    config = load_model_config(environ={"GEMINI_API_KEY": "AIza-test"})
    spec = config.registry.resolve("veo3.1-fast")
    assert spec.engine == "veo"
    assert config.engines["veo"].options["api_key"] == "AIza-test"
    assert "Veo" in spec.description


def test_an_engine_whose_secret_is_unset_is_skipped_for_the_next() -> None:
    config = parse(BASE)
    spec = config.registry.resolve("veo3.1-fast")
    assert spec.engine == "preview"
    assert config.skipped == {"gemini": "GEMINI_API_KEY not set"}
    assert spec.max_run_seconds == 600


def test_a_set_secret_selects_the_engine_and_is_expanded() -> None:
    config = parse(BASE, {"GEMINI_API_KEY": "AIza-secret"})
    assert config.registry.resolve("veo3.1-fast").engine == "gemini"
    assert config.engines["gemini"].options["api_key"] == "AIza-secret"
    assert config.engines["gemini"].type == "veo"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ('[models."m"]\nengines = ["nope"]\nprice = "1"', "no [engines.nope]"),
        ('[engines.p]\ntype = "preview"\n[models."m"]\nengines = ["p"]\nprice = "x"', "price"),
        (
            '[engines.p]\ntype = "preview"\n[models."m"]\nengines = ["p"]\nprice = "1.001"',
            "hundredths",
        ),
        ('[engines.p]\ntype = "preview"\n[models."m"]\nengines = []\nprice = "1"', "non-empty"),
        (
            '[engines.p]\ntype = "preview"\n[models."m"]\nengines = ["p"]\nprice = "1"\ncolour = 3',
            "colour",
        ),
        ('[engines.p]\nflavour = "x"\n[models."m"]\nengines = ["p"]\nprice = "1"', "type"),
        ('[engines.p]\ntype = "preview"', "no [models"),
        (
            '[engines.g]\ntype = "veo"\nkey = "${K}"\n[models."m"]\nengines = ["g"]\nprice = "1"',
            "none of its engines is configured (g: K not set)",
        ),
        (
            '[engines.p]\ntype = "preview"\n[models."a"]\nengines = ["p"]\nprice = "1"\n'
            'aliases = ["b"]\n[models."b"]\nengines = ["p"]\nprice = "1"',
            "defined twice",
        ),
    ],
)
def test_mistakes_are_refused_with_where_and_what(text: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse(text)
    assert fragment in str(raised.value)


def test_a_broken_file_names_itself(tmp_path: Path) -> None:
    path = tmp_path / "models.toml"
    path.write_text("[models\n")
    with pytest.raises(ConfigError, match=str(path)):
        load_model_config(path)
