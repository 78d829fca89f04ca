"""``/worker/v1``: the protocol remote workers speak, with worker tokens only; and
``/admin/worker-tokens``, where admins make and revoke those tokens.

The worker routes are left out of the public OpenAPI document: they are a contract between
vidgate processes, not part of the client API (docs/deploy.md describes them).
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from vidgate.api.deps import (
    AdminDep,
    GatewayDep,
    SettingsDep,
    WorkerTokensDep,
    services_of,
)
from vidgate.api.security_headers import no_store
from vidgate.auth.model import WorkerTokenRecord
from vidgate.engines.base import TaskErrorCode
from vidgate.tasks.model import Task

router = APIRouter(prefix="/worker/v1", include_in_schema=False)
admin_router = APIRouter(prefix="/admin", tags=["admin"])


async def get_worker(
    request: Request,
    authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> WorkerTokenRecord:
    return await services_of(request).worker_tokens.authenticate(authorization)


WorkerDep = Annotated[WorkerTokenRecord, Depends(get_worker)]
AttemptQuery = Annotated[int, Query(ge=1, description="The attempt the claim gave")]


class ClaimIn(BaseModel):
    worker: str = Field(min_length=1, max_length=60, pattern=r"^[A-Za-z0-9._:-]+$")
    models: list[str] = Field(min_length=1, max_length=100)
    wait: float = Field(default=25, ge=0, le=60, description="Seconds to hold the claim open")


class InputOut(BaseModel):
    index: int
    url: str = Field(description="GET it with the worker token (path on this server)")


class ClaimedTask(BaseModel):
    id: str
    model: str
    engine: str
    prompt: str
    aspect_ratio: Literal["16:9", "9:16"]
    attempt: int
    progress: int
    inputs: list[InputOut]


class ClaimOut(BaseModel):
    object: str = "worker.claim"
    task: ClaimedTask
    lease_expires_at: float
    lease_seconds: float


class Attempt(BaseModel):
    attempt: int = Field(ge=1)


class HeartbeatIn(Attempt):
    progress: int | None = Field(default=None, ge=0, le=100)


class HeartbeatOut(BaseModel):
    cancelled: bool
    lease_expires_at: float


class FailIn(Attempt):
    code: TaskErrorCode
    message: str = Field(min_length=1, max_length=1000)
    retryable: bool = Field(
        default=False, description="Run it again (until the model's attempt limit) instead"
    )


class TaskStateOut(BaseModel):
    id: str
    status: str
    error_code: str | None = None


def _state(task: Task) -> TaskStateOut:
    return TaskStateOut(
        id=task.id, status=task.status.value, error_code=task.error.code if task.error else None
    )


@router.post("/claim", response_model=ClaimOut, responses={204: {"description": "Nothing came"}})
async def claim(
    body: ClaimIn, token: WorkerDep, gateway: GatewayDep, settings: SettingsDep, request: Request
) -> ClaimOut | Response:
    models = gateway.served_models(body.models)
    wait = min(body.wait, settings.worker_claim_wait_seconds)
    owner = f"{token.name[:39]}/{body.worker}"  # lease_owner holds 100 characters
    lease = await gateway.claim(owner, models, wait, request.is_disconnected)
    if lease is None:
        return Response(status_code=204)
    task = lease.task
    return ClaimOut(
        task=ClaimedTask(
            id=task.id,
            model=task.model,
            engine=task.engine,
            prompt=task.prompt,
            aspect_ratio="9:16" if task.aspect_ratio == "9:16" else "16:9",
            attempt=task.attempt,
            progress=task.progress,
            inputs=[
                InputOut(
                    index=index,
                    url=f"/worker/v1/tasks/{task.id}/inputs/{index}?attempt={task.attempt}",
                )
                for index in range(len(task.image_keys))
            ],
        ),
        lease_expires_at=lease.expires_at,
        lease_seconds=gateway.transitions.lease_seconds,
    )


@router.post("/tasks/{task_id}/heartbeat", response_model=HeartbeatOut)
async def heartbeat(
    task_id: str, body: HeartbeatIn, _: WorkerDep, gateway: GatewayDep
) -> HeartbeatOut:
    lease = await gateway.heartbeat(task_id, body.attempt, body.progress)
    return HeartbeatOut(cancelled=lease.task.cancel_requested, lease_expires_at=lease.expires_at)


@router.get("/tasks/{task_id}/inputs/{index}")
async def download_input(
    task_id: str, index: int, attempt: AttemptQuery, _: WorkerDep, gateway: GatewayDep
) -> StreamingResponse:
    found = await gateway.input(task_id, attempt, index)
    return StreamingResponse(
        found.chunks,
        media_type=found.media_type,
        headers={"Content-Length": str(found.size)},
    )


@router.put("/tasks/{task_id}/result", response_model=TaskStateOut)
async def upload_result(
    task_id: str,
    attempt: AttemptQuery,
    _: WorkerDep,
    gateway: GatewayDep,
    request: Request,
    content_length: Annotated[int | None, Header(ge=0)] = None,
) -> TaskStateOut:
    """The finished MP4 as the request body, streamed; the task is finished with it."""
    done = await gateway.accept_result(task_id, attempt, request.stream(), content_length)
    return _state(done)


@router.post("/tasks/{task_id}/fail", response_model=TaskStateOut)
async def fail(task_id: str, body: FailIn, _: WorkerDep, gateway: GatewayDep) -> TaskStateOut:
    done = await gateway.fail(
        task_id, body.attempt, body.code, body.message, retryable=body.retryable
    )
    return _state(done)


@router.post("/tasks/{task_id}/hand-back", status_code=204)
async def hand_back(task_id: str, body: Attempt, _: WorkerDep, gateway: GatewayDep) -> Response:
    """Give the task back to the queue without using up an attempt (the worker is stopping)."""
    await gateway.hand_back(task_id, body.attempt)
    return Response(status_code=204)


# --- admin: worker tokens ---------------------------------------------------------------


class WorkerTokenOut(BaseModel):
    id: str
    object: str = "worker_token"
    name: str
    prefix: str
    created: int
    last_used: int | None
    revoked: int | None


class CreatedWorkerTokenOut(WorkerTokenOut):
    token: str = Field(description="The full token: shown this once, never again.")


class WorkerTokenList(BaseModel):
    object: str = "list"
    data: list[WorkerTokenOut]


class WorkerTokenCreate(BaseModel):
    name: str = Field(default="worker", max_length=200)


def _when(value: float | None) -> int | None:
    return None if value is None else int(value)


def token_out(record: WorkerTokenRecord) -> WorkerTokenOut:
    return WorkerTokenOut(
        id=record.id,
        name=record.name,
        prefix=record.prefix,
        created=int(record.created_at),
        last_used=_when(record.last_used_at),
        revoked=_when(record.revoked_at),
    )


@admin_router.get("/worker-tokens", response_model=WorkerTokenList)
async def list_worker_tokens(_: AdminDep, worker_tokens: WorkerTokensDep) -> WorkerTokenList:
    return WorkerTokenList(data=[token_out(t) for t in await worker_tokens.list()])


@admin_router.post(
    "/worker-tokens", response_model=CreatedWorkerTokenOut, dependencies=[Depends(no_store)]
)
async def create_worker_token(
    body: WorkerTokenCreate, _: AdminDep, worker_tokens: WorkerTokensDep
) -> CreatedWorkerTokenOut:
    """A token for `vidgate worker --server URL --token ...`; it can only run tasks."""
    created = await worker_tokens.create(body.name)
    return CreatedWorkerTokenOut(**token_out(created.record).model_dump(), token=created.secret)


@admin_router.delete("/worker-tokens/{token_id}", response_model=WorkerTokenOut)
async def revoke_worker_token(
    token_id: str, _: AdminDep, worker_tokens: WorkerTokensDep
) -> WorkerTokenOut:
    """Revoke a worker token: its next call is refused; its running task is lost at the next
    heartbeat and goes back to the queue when the lease runs out."""
    return token_out(await worker_tokens.revoke(token_id))
