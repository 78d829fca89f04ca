"""Liveness and readiness probes, open to anyone."""

from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy import text

from vidgate.api.deps import ServicesDep
from vidgate.errors import ServiceUnavailable

router = APIRouter(tags=["health"])


@router.get("/healthz", openapi_extra={"security": []})
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", openapi_extra={"security": []})
async def readyz(services: ServicesDep) -> dict[str, str]:
    try:
        async with services.db.read() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception as error:
        raise ServiceUnavailable(
            "The database is not reachable.", headers={"Retry-After": "5"}
        ) from error
    return {"status": "ready"}
