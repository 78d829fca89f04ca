"""The model registry file (TOML): engines, the models they serve, prices and limits."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from vidgate.engines.registry import ModelRegistry, ModelSpec

DEFAULT_CONFIG = Path(__file__).with_name("models.toml")
_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_LIMITS = {f.name for f in fields(ModelSpec)} - {
    "name",
    "engine",
    "engines",
    "price",
    "description",
}


class ConfigError(ValueError):
    """The model registry file is wrong; the message says where."""


@dataclass(frozen=True)
class EngineConfig:
    name: str
    type: str
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelConfig:
    registry: ModelRegistry
    engines: Mapping[str, EngineConfig]  # the configured engines the models use
    skipped: Mapping[str, str]  # engines left out, and why (a variable not set)


def load_model_config(
    path: Path | None = None, *, environ: Mapping[str, str] | None = None
) -> ModelConfig:
    source = path or DEFAULT_CONFIG
    try:
        data = tomllib.loads(source.read_text())
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise ConfigError(f"{source}: {error}") from None
    return parse_model_config(data, environ=environ or {}, where=str(source))


def parse_model_config(
    data: Mapping[str, Any], *, environ: Mapping[str, str], where: str = "models"
) -> ModelConfig:
    engines, skipped = _engines(data.get("engines", {}), environ, where)
    models = data.get("models")
    if not isinstance(models, dict) or not models:
        raise ConfigError(f'{where}: no [models."NAME"] tables')
    specs = [_model(name, table, engines, skipped, where) for name, table in models.items()]
    try:
        registry = ModelRegistry.of(specs)
    except ValueError as error:
        raise ConfigError(f"{where}: {error}") from None
    used = {spec.engine for spec in specs}
    return ModelConfig(registry, {n: e for n, e in engines.items() if n in used}, skipped)


def _engines(
    tables: Any, environ: Mapping[str, str], where: str
) -> tuple[dict[str, EngineConfig], dict[str, str]]:
    if not isinstance(tables, dict):
        raise ConfigError(f"{where}: [engines] must be tables")
    engines: dict[str, EngineConfig] = {}
    skipped: dict[str, str] = {}
    for name, table in tables.items():
        if not isinstance(table, dict) or not isinstance(table.get("type"), str):
            raise ConfigError(f"{where}: [engines.{name}] needs a string `type`")
        options = {k: v for k, v in table.items() if k != "type"}
        missing = sorted(_missing_variables(options, environ))
        if missing:
            skipped[name] = f"{', '.join(missing)} not set"
            continue
        engines[name] = EngineConfig(name, table["type"], _expand(options, environ))
    return engines, skipped


def _model(
    name: str,
    table: Any,
    engines: Mapping[str, EngineConfig],
    skipped: Mapping[str, str],
    where: str,
) -> ModelSpec:
    at = f'{where}: [models."{name}"]'
    if not isinstance(table, dict):
        raise ConfigError(f"{at} must be a table")
    listed = table.get("engines")
    if not isinstance(listed, list) or not listed or not all(isinstance(e, str) for e in listed):
        raise ConfigError(f"{at}: `engines` is a non-empty list of engine names")
    unknown = [e for e in listed if e not in engines and e not in skipped]
    if unknown:
        raise ConfigError(f"{at}: no [engines.{unknown[0]}] table")
    configured = [e for e in listed if e in engines]
    if not configured:
        reasons = "; ".join(f"{e}: {skipped[e]}" for e in listed)
        raise ConfigError(f"{at}: none of its engines is configured ({reasons})")
    try:
        price = Decimal(str(table.get("price")))
    except InvalidOperation:
        raise ConfigError(f"{at}: `price` is a number of credits, as a string") from None
    if not price.is_finite() or price < 0 or price != price.quantize(Decimal("0.01")):
        raise ConfigError(f"{at}: `price` is at least 0, in hundredths of a credit")
    extra = set(table) - _LIMITS - {"engines", "price", "description"}
    if extra:
        raise ConfigError(f"{at}: unknown keys {sorted(extra)}")
    limits: dict[str, Any] = {}
    for key in _LIMITS & set(table):
        value = table[key]
        limits[key] = tuple(value) if isinstance(value, list) else value
    engine = configured[0]
    description = table.get("description") or _describe(engines[engine])
    try:
        return ModelSpec(
            name=name,
            engine=engine,
            engines=tuple(configured),
            price=price,
            description=description,
            **limits,
        )
    except TypeError as error:
        raise ConfigError(f"{at}: {error}") from None


def _describe(engine: EngineConfig) -> str:
    if engine.type == "preview":
        return (
            "Served by the embedded preview engine (a CPU renderer, no weights): "
            "configure a real engine to make real videos."
        )
    if engine.type == "veo":
        return "Google Veo 3.1 Fast through the Gemini API."
    if engine.type == "relay":
        return f"Relayed to {engine.options.get('base_url', 'another server')}."
    return f"Served by the {engine.type} engine {engine.name!r}."


def _missing_variables(value: Any, environ: Mapping[str, str]) -> set[str]:
    if isinstance(value, str):
        return {v for v in _VARIABLE.findall(value) if not environ.get(v)}
    if isinstance(value, dict):
        return set().union(*(_missing_variables(v, environ) for v in value.values()))
    if isinstance(value, list):
        return set().union(*(_missing_variables(v, environ) for v in value))
    return set()


def _expand(value: Any, environ: Mapping[str, str]) -> Any:
    if isinstance(value, str):
        return _VARIABLE.sub(lambda m: environ[m.group(1)], value)
    if isinstance(value, dict):
        return {k: _expand(v, environ) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v, environ) for v in value]
    return value
