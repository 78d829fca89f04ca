"""create_app(services): wiring only: routes, error rendering, background loops in the lifespan."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from vidgate.api import (
    admin,
    callbacks,
    credits,
    docs,
    errors,
    files,
    health,
    keys,
    model_list,
    tasks,
    uploads,
    videos,
    worker_protocol,
)
from vidgate.api.bodies import BodyLimit
from vidgate.api.security_headers import HeaderedFastAPI
from vidgate.dashboard import router as dashboard_router
from vidgate.metrics import RequestTimer
from vidgate.services import Services

log = logging.getLogger(__name__)


def create_app(
    services: Services, *, workers: int | None = None, background: bool = True
) -> FastAPI:
    """The ASGI app over ``services``.

    Its lifespan runs ``workers`` in-process workers and, with ``background``, the lease reaper
    and the callback dispatcher (both safe to run in every replica at once).
    """
    count = services.settings.workers if workers is None else workers

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        runner = services.background(workers=count, background=background)
        await runner.start()
        try:
            yield
        finally:
            await runner.shutdown()

    app = HeaderedFastAPI(
        title="vidgate",
        summary="A self-hosted video-generation API speaking the evolink.ai video interface.",
        version="0.1.0",
        lifespan=lifespan,
        # /docs is api/docs.py's (no CDN, a strict CSP); ReDoc cannot run under that CSP.
        docs_url=None,
        redoc_url=None,
        # A trailing slash is a 404: the redirect's Location was built from the Host header.
        redirect_slashes=False,
    )
    app.state.services = services
    # Added first, so it runs inside the timer: refused bodies are timed too.
    app.add_middleware(BodyLimit, max_bytes=services.settings.max_body_bytes)
    app.add_middleware(RequestTimer, metrics=services.metrics)
    errors.install(app)
    for module in (
        videos,
        tasks,
        callbacks,
        model_list,
        credits,
        keys,
        admin,
        uploads,
        files,
        health,
    ):
        app.include_router(module.router, responses=errors.ERROR_RESPONSES)
    app.include_router(worker_protocol.router)
    app.include_router(worker_protocol.admin_router, responses=errors.ERROR_RESPONSES)
    app.include_router(dashboard_router)  # the web pages: public, left out of the schema
    app.include_router(docs.router)  # Swagger UI at /docs, also left out of the schema

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = errors.drop_framework_422(FastAPI.openapi(app))
            schema.setdefault("components", {})["securitySchemes"] = {
                "bearer": {"type": "http", "scheme": "bearer", "description": "sk-... API key"}
            }
            schema["security"] = [{"bearer": []}]
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
