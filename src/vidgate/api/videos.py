"""``POST /v1/videos/generations``: create a video task."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header
from fastapi.responses import Response

from vidgate.api.deps import PrincipalDep, ServicesDep
from vidgate.api.schemas import CreateVideoRequest, TaskObject
from vidgate.errors import InvalidRequest
from vidgate.tasks.idempotency import Replay
from vidgate.tasks.service import VideoRequest

router = APIRouter(tags=["videos"])


MAX_CANCEL_AFTER = 7 * 24 * 3600


def _cancel_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not 1 <= seconds <= MAX_CANCEL_AFTER:
        raise InvalidRequest(
            f"Cancel-After is a number of seconds from 1 to {MAX_CANCEL_AFTER}.",
            param="Cancel-After",
        )
    return seconds


@router.post("/v1/videos/generations", response_model=TaskObject)
async def create_video(
    body: CreateVideoRequest,
    principal: PrincipalDep,
    services: ServicesDep,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            description="Retry safely: the same key and body return the first answer (24 h).",
        ),
    ] = None,
    cancel_after: Annotated[
        str | None,
        Header(
            alias="Cancel-After",
            description="Seconds after which the task is cancelled if it has not finished.",
        ),
    ] = None,
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
        cancel_after=_cancel_after(cancel_after),
    )
    claim = None
    if idempotency_key is not None:
        outcome = await services.idempotency.begin(
            principal.account_id, idempotency_key, body.model_dump(mode="json", exclude_unset=True)
        )
        if isinstance(outcome, Replay):
            return Response(
                outcome.body,
                status_code=outcome.status,
                media_type="application/json",
                headers={"Idempotent-Replayed": "true"},
            )
        claim = outcome
    try:
        _, answer = await services.tasks.create_answered(principal, request, idempotency=claim)
    except BaseException:
        if claim is not None:
            await services.idempotency.abandon(claim)
        raise
    return Response(answer, media_type="application/json")
