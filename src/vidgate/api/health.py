"""Liveness and readiness probes, open to anyone."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import text

from vidgate.api.deps import DbDep, MetricsDep
from vidgate.errors import ServiceUnavailable

router = APIRouter(tags=["health"])


@router.get(
    "/metrics",
    response_class=Response,
    openapi_extra={"security": []},
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}},
)
async def metrics(tally: MetricsDep) -> Response:
    """Prometheus metrics: tasks and callbacks by status, request timings."""
    return Response(await tally.render(), media_type=CONTENT_TYPE_LATEST)


@router.get("/healthz", openapi_extra={"security": []})
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", openapi_extra={"security": []})
async def readyz(db: DbDep) -> dict[str, str]:
    try:
        async with db.read() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception as error:
        raise ServiceUnavailable(
            "The database is not reachable.", headers={"Retry-After": "5"}
        ) from error
    return {"status": "ready"}
