"""``POST /v1/videos/generations``: create a video task."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from vidgate.api.deps import PrincipalDep, ServicesDep
from vidgate.api.schemas import CreateVideoRequest, TaskObject
from vidgate.api.tasks import task_response
from vidgate.tasks.service import VideoRequest

router = APIRouter(tags=["videos"])


@router.post("/v1/videos/generations", response_model=TaskObject, response_model_exclude_none=True)
async def create_video(
    body: CreateVideoRequest, principal: PrincipalDep, services: ServicesDep
) -> Response:
    request = VideoRequest(
        model=body.model,
        prompt=body.prompt,
        aspect_ratio=body.aspect_ratio,
        image_urls=body.image_urls or (),
        callback_url=body.callback_url,
        generation_type=body.generation_type,
        quality=body.quality,
        extra={
            **(body.model_extra or {}),
            **({"enhance_prompt": body.enhance_prompt} if body.enhance_prompt is not None else {}),
        },
    )
    task = await services.tasks.create(principal, request)
    return task_response(services, task)
