"""``POST /v1/videos/generations``: create a video task."""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Header, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import ValidationError
from starlette.requests import ClientDisconnect

from vidgate.api.bodies import parse_object
from vidgate.api.deps import IdempotencyDep, PrincipalDep, TasksDep
from vidgate.api.schemas import CreateVideoRequest, TaskObject
from vidgate.errors import InvalidRequest
from vidgate.tasks import validation
from vidgate.tasks.idempotency import Claim, Replay
from vidgate.tasks.service import VideoRequest

router = APIRouter(tags=["videos"])


MAX_CANCEL_AFTER = 7 * 24 * 3600
# Plain decimal seconds: float() would also take "1_0", "1e3", " 10", "+10", "nan" and "inf".
_SECONDS = re.compile(r"[0-9]+(?:\.[0-9]+)?", re.ASCII)

# The body is read by the route itself (below), so FastAPI does not document it: say it here.
_CREATE_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": CreateVideoRequest.model_json_schema()}},
    }
}


def _cancel_after(value: str | None) -> float | None:
    if value is None:
        return None
    plain = len(value) <= 40 and _SECONDS.fullmatch(value) is not None
    seconds = float(value) if plain else -1.0
    if not 1 <= seconds <= MAX_CANCEL_AFTER:
        raise InvalidRequest(
            f"Cancel-After is a plain decimal number of seconds from 1 to {MAX_CANCEL_AFTER}.",
            param="Cancel-After",
        )
    return seconds


async def _create_request(request: Request) -> CreateVideoRequest:
    """The body, read only now that the key is known good, capped by the BodyLimit middleware."""
    try:
        raw = await request.body()
    except ClientDisconnect:
        raise InvalidRequest("The request body was cut off.") from None
    try:
        body = CreateVideoRequest.model_validate(parse_object(raw))
    except ValidationError as error:
        # Rendered like every other validation failure (api.errors), with the field as param.
        raise RequestValidationError(
            [{**problem, "loc": ("body", *problem["loc"])} for problem in error.errors()]
        ) from None
    validation.check_extra(body.model_extra or {})
    return body


@router.post("/v1/videos/generations", response_model=TaskObject, openapi_extra=_CREATE_BODY)
async def create_video(
    request: Request,
    principal: PrincipalDep,
    tasks: TasksDep,
    idempotency: IdempotencyDep,
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
    # No body parameter: FastAPI would read and parse the body before the key is checked.
    deadline = _cancel_after(cancel_after)
    body = await _create_request(request)
    video = VideoRequest(
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
        cancel_after=deadline,
    )
    if idempotency_key is None:
        answer = (await tasks.create_answered(principal, video))[1]
    else:

        async def create(claim: Claim) -> bytes:
            return (await tasks.create_answered(principal, video, idempotency=claim))[1]

        fingerprinted = body.model_dump(mode="json", exclude_unset=True)
        outcome = await idempotency.once(
            principal.account_id, idempotency_key, fingerprinted, create
        )
        if isinstance(outcome, Replay):
            return Response(
                outcome.body,
                status_code=outcome.status,
                media_type="application/json",
                headers={"Idempotent-Replayed": "true"},
            )
        answer = outcome
    return Response(answer, media_type="application/json")
