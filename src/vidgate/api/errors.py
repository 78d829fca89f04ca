"""Renders every failure, ours or the framework's, as the error envelope of SPEC.md §5."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from vidgate.errors import (
    InternalError,
    InvalidRequest,
    MethodNotAllowed,
    NotFound,
    RequestTooLarge,
    Unauthorized,
    VidgateError,
)

log = logging.getLogger(__name__)


def error_response(error: VidgateError) -> JSONResponse:
    body: dict[str, Any] = {
        "code": error.code,
        "message": error.message,
        "type": error.type,
    }
    if error.param is not None:
        body["param"] = error.param
    return JSONResponse({"error": body}, status_code=error.status, headers=error.headers)


def _from_validation(exc: RequestValidationError) -> VidgateError:
    problems = list(exc.errors())
    if not problems:
        return InvalidRequest()
    first = problems[0]
    if first.get("type") == "json_invalid":
        return InvalidRequest("The request body is not valid JSON.")
    location = [str(part) for part in first.get("loc", ()) if part not in ("body", "query")]
    if not location:
        kind = first.get("type")
        if kind in ("missing", "model_attributes_type", "dict_type"):
            return InvalidRequest("The request body must be a JSON object.")
        return InvalidRequest(f"The request body is not valid: {first.get('msg')}.")
    param = location[0]
    where = ".".join(location) if len(location) == 1 else f"{param}[{'].['.join(location[1:])}]"
    if first.get("type") == "missing":
        return InvalidRequest(f"{param} is required.", param=param)
    return InvalidRequest(f"{where}: {first.get('msg')}.", param=param)


def _from_http(exc: StarletteHTTPException) -> VidgateError:
    headers = dict(exc.headers or {})
    if exc.status_code == 404:
        return NotFound("There is nothing at this path.")
    if exc.status_code == 405:
        return MethodNotAllowed(headers=headers)
    if exc.status_code == 401:
        return Unauthorized()
    if exc.status_code == 413:
        return RequestTooLarge()
    if 400 <= exc.status_code < 500:
        return InvalidRequest(str(exc.detail))
    return InternalError()


def install(app: FastAPI) -> None:
    async def on_vidgate(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, VidgateError)
        return error_response(exc)

    async def on_validation(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return error_response(_from_validation(exc))

    async def on_http(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        return error_response(_from_http(exc))

    async def on_crash(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        return error_response(InternalError())

    app.add_exception_handler(VidgateError, on_vidgate)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(Exception, on_crash)
