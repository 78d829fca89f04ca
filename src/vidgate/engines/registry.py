"""The model registry: each public model name, the engine that serves it, its price and limits."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal

from vidgate.errors import InvalidRequest, excerpt


@dataclass(frozen=True)
class ModelSpec:
    name: str
    engine: str
    price: Decimal
    # Every configured engine that may serve it, in order of preference; ``engine`` is the first.
    engines: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()
    max_prompt_chars: int = 1000
    aspect_ratios: tuple[str, ...] = ("16:9", "9:16")
    max_images: int = 2
    qualities: tuple[str, ...] = ("720p",)
    video_duration: int = 8
    # What a task is expected to take before this server has history of its own.
    typical_seconds: int = 180
    # Past this a running task fails with generation_timeout.
    max_run_seconds: int = 900
    # Attempts (lost leases, crashes) before the task fails with service_error.
    max_attempts: int = 3
    description: str = ""

    @property
    def candidates(self) -> tuple[str, ...]:
        return self.engines or (self.engine,)


@dataclass
class ModelRegistry:
    models: Mapping[str, ModelSpec]
    _by_name: dict[str, ModelSpec] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._by_name = {}
        for spec in self.models.values():
            for name in (spec.name, *spec.aliases):
                if name in self._by_name:
                    raise ValueError(f"model name {name!r} is defined twice")
                self._by_name[name] = spec

    @classmethod
    def of(cls, specs: Iterable[ModelSpec]) -> ModelRegistry:
        return cls({spec.name: spec for spec in specs})

    def resolve(self, name: str) -> ModelSpec:
        """The model a request names (an alias gives its target); 400 for an unknown one."""
        spec = self._by_name.get(name)
        if spec is None:
            known = ", ".join(sorted(self._by_name))
            raise InvalidRequest(
                f"model '{excerpt(name)}' is not served here; available: {known}", param="model"
            )
        return spec

    def __iter__(self) -> Iterator[ModelSpec]:
        return iter(self.models.values())
