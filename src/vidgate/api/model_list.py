"""``GET /v1/models``: the models this server serves, their engine, price and limits."""

from __future__ import annotations

from fastapi import APIRouter

from vidgate.api.deps import HealthDep, PrincipalDep, RegistryDep
from vidgate.api.schemas import EngineStatus, ModelEntry, ModelList
from vidgate.billing.pricing import price_for

router = APIRouter(tags=["models"])


@router.get("/v1/models", response_model=ModelList)
async def list_models(
    principal: PrincipalDep, health: HealthDep, registry: RegistryDep
) -> ModelList:
    return ModelList(
        data=[
            ModelEntry(
                id=spec.name,
                engine=health.order(spec.candidates)[0],
                engines=[
                    EngineStatus(name=name, healthy=health.healthy(name))
                    for name in spec.candidates
                ],
                aliases=list(spec.aliases),
                price=float(price_for(spec, principal.group)),
                max_prompt_chars=spec.max_prompt_chars,
                aspect_ratios=list(spec.aspect_ratios),
                max_images=spec.max_images,
                video_duration=spec.video_duration,
                description=spec.description,
            )
            for spec in registry
        ]
    )
