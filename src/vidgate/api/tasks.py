"""The caller's tasks: one (the poll target, with an optional long-poll), the list, cancel."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Coroutine
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from fastapi.routing import APIRoute
from pydantic import BaseModel

from vidgate.api.deps import PrincipalDep, ServicesDep, authorize, services_of
from vidgate.api.schemas import TaskObject
from vidgate.services import Services
from vidgate.tasks.model import Task
from vidgate.tasks.presenter import dump

router = APIRouter(tags=["tasks"])

MAX_WAIT_SECONDS = 30
# What a long poll whose client went away is counted as in /metrics (nginx's "client closed
# request"); nobody receives it.
CLIENT_GONE = 499


class TaskList(BaseModel):
    object: Literal["list"] = "list"
    data: list[TaskObject]
    has_more: bool
    next_cursor: str | None


def task_response(services: Services, task: Task, position: int | None) -> Response:
    """The task object as the exact bytes a callback of the same moment carries."""
    body = services.presenter.json(task, queue_position=position)
    return Response(body, media_type="application/json")


@router.get("/v1/tasks", response_model=TaskList)
async def list_tasks(
    principal: PrincipalDep,
    services: ServicesDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=300)] = None,
    status: Annotated[
        Literal["pending", "processing", "completed", "failed"] | None, Query()
    ] = None,
    model: Annotated[str | None, Query(max_length=100)] = None,
) -> Response:
    """The caller's tasks, newest first; pass ``next_cursor`` back for the next page."""
    page = await services.tasks.list_tasks(
        principal, limit=limit, cursor=cursor, status=status, model=model
    )
    body = {
        "object": "list",
        "data": [services.presenter.object(task) for task in page.tasks],
        "has_more": page.next_cursor is not None,
        "next_cursor": page.next_cursor,
    }
    return Response(dump(body), media_type="application/json")


async def _until_disconnected(request: Request) -> None:
    # A GET's (empty) body comes first; after it, receive() waits for the client to leave.
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def _while_connected(request: Request, waiting: Awaitable[Task]) -> Task | None:
    """``waiting``'s task, or None once the client has gone: a long poll nobody reads must not
    hold the server (nor its shutdown) for the rest of its time."""
    wait = asyncio.ensure_future(waiting)
    gone = asyncio.ensure_future(_until_disconnected(request))
    try:
        await asyncio.wait({wait, gone}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        gone.cancel()
        if not wait.done():
            wait.cancel()
        await asyncio.gather(wait, gone, return_exceptions=True)
    return None if wait.cancelled() else wait.result()


async def get_task(
    request: Request,
    task_id: str,
    principal: PrincipalDep,
    services: ServicesDep,
    wait: Annotated[
        float,
        Query(
            ge=0,
            le=MAX_WAIT_SECONDS,
            description="Hold the answer up to this many seconds until the task changes.",
        ),
    ] = 0,
) -> Response:
    task, position = await services.tasks.get_with_position(principal, task_id)
    if wait and not task.status.is_terminal:
        # Held until it changes. A finished task never will: it is answered at once, without
        # the watch on the connection a held answer needs.
        changed = await _while_connected(
            request, services.tasks.wait_for_change(principal, task_id, wait)
        )
        if changed is None:
            return Response(status_code=CLIENT_GONE)
        task = changed
        position = await services.tasks.queue_position(task)
    response = task_response(services, task, position)
    # Tells clients (the SDK's tasks.wait) that ?wait= long-polls here, and up to how long.
    response.headers["X-Vidgate-Wait-Max"] = str(MAX_WAIT_SECONDS)
    return response


# A query FastAPI would take as it stands: nothing, or one ``wait`` of plain digits.
_PLAIN_WAIT = re.compile(rb"wait=(\d{1,2}(?:\.\d{1,6})?)")


def _plain_wait(query: bytes) -> float | None:
    """The ``wait`` FastAPI would pass for this query string (0 when there is none), or None
    when the query is anything else: out of range, repeated, spelled otherwise, or with
    other parameters."""
    if not query:
        return 0.0
    match = _PLAIN_WAIT.fullmatch(query)
    if match is None:
        return None
    wait = float(match[1])
    return wait if wait <= MAX_WAIT_SECONDS else None


class _PollRoute(APIRoute):
    """The poll's route: its common requests skip FastAPI's parameter handling.

    A poll is the API's most frequent request, and resolving its parameters and dependencies
    cost it more than reading the task did (about 100 µs a poll in-process, measured). A poll
    with no query, or a plain ``wait`` in range, calls ``get_task`` with what FastAPI would
    have passed: the path's id, ``get_principal``'s caller, the services. Any other query
    goes to FastAPI's own handler, whose validation answers it as before; the schema is
    FastAPI's either way. (Where OpenTelemetry is configured, FastAPI's spans for the
    dependencies and the endpoint are not made for the polls answered here.)
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        validated = super().get_route_handler()

        async def handler(request: Request) -> Response:
            wait = _plain_wait(request.scope["query_string"])
            if wait is None:
                return await validated(request)
            services = services_of(request)
            principal = await authorize(services, request.headers.get("authorization"))
            task_id: str = request.path_params["task_id"]
            return await get_task(request, task_id, principal, services, wait)

        return handler


router.add_api_route(
    "/v1/tasks/{task_id}",
    get_task,
    methods=["GET"],
    response_model=TaskObject,
    route_class_override=_PollRoute,
)


@router.post("/v1/tasks/{task_id}/cancel", response_model=TaskObject)
async def cancel_task(task_id: str, principal: PrincipalDep, services: ServicesDep) -> Response:
    """Cancel a pending task at once, or ask a processing one's worker to stop (409 when done)."""
    task = await services.tasks.cancel(principal, task_id)
    return task_response(services, task, await services.tasks.queue_position(task))
