"""``GET /v1/tasks/{task_id}`` (the poll target) and ``POST /v1/tasks/{task_id}/cancel``."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from vidgate.api.deps import PrincipalDep, ServicesDep
from vidgate.api.schemas import TaskObject
from vidgate.services import Services
from vidgate.tasks.model import Task

router = APIRouter(tags=["tasks"])


def task_response(services: Services, task: Task) -> Response:
    """The task object as the exact bytes a callback of the same moment carries."""
    return Response(services.presenter.json(task), media_type="application/json")


@router.get("/v1/tasks/{task_id}", response_model=TaskObject)
async def get_task(task_id: str, principal: PrincipalDep, services: ServicesDep) -> Response:
    return task_response(services, await services.tasks.get(principal, task_id))


@router.post("/v1/tasks/{task_id}/cancel", response_model=TaskObject)
async def cancel_task(task_id: str, principal: PrincipalDep, services: ServicesDep) -> Response:
    """Cancel a pending task at once, or ask a processing one's worker to stop (409 when done)."""
    return task_response(services, await services.tasks.cancel(principal, task_id))
