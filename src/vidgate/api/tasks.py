"""``GET /v1/tasks/{task_id}``: the task object, the poll target."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from vidgate.api.deps import PrincipalDep, ServicesDep
from vidgate.api.presenter import present
from vidgate.api.schemas import TaskObject

router = APIRouter(tags=["tasks"])


@router.get("/v1/tasks/{task_id}", response_model=TaskObject, response_model_exclude_none=True)
async def get_task(task_id: str, principal: PrincipalDep, services: ServicesDep) -> dict[str, Any]:
    return present(services, await services.tasks.get(principal, task_id))


@router.post(
    "/v1/tasks/{task_id}/cancel", response_model=TaskObject, response_model_exclude_none=True
)
async def cancel_task(
    task_id: str, principal: PrincipalDep, services: ServicesDep
) -> dict[str, Any]:
    """Cancel a pending task at once, or ask a processing one's worker to stop (409 when done)."""
    return present(services, await services.tasks.cancel(principal, task_id))
