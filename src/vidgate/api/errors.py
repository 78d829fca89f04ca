"""Renders every failure, ours or the framework's, as the error envelope of SPEC.md §5."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from vidgate.api.route_methods import allowed_methods
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


class ErrorBody(BaseModel):
    code: str
    message: str
    type: str
    param: str | None = None


class ErrorEnvelope(BaseModel):
    """Every error vidgate answers, whatever the status (SPEC.md §5)."""

    error: ErrorBody


# Documented on every route: what the envelope looks like and when each status comes.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorEnvelope, "description": description}
    for status, description in {
        400: "A rule was broken (`param` names the field), or malformed JSON",
        401: "No valid API key",
        402: "Not enough credits",
        403: "Not allowed (an admin route, or a bad download link)",
        404: "No such task, model, account or path",
        405: "Wrong method for this path",
        409: "Conflicts with the current state (finished task, key in use)",
        413: "A file or body too large",
        422: "An Idempotency-Key reused with a different body",
        429: "Rate or unfinished-task limit reached (`Retry-After`)",
        500: "The server failed",
        503: "Temporarily unavailable (`Retry-After`)",
    }.items()
}


def drop_framework_422(schema: dict[str, Any]) -> dict[str, Any]:
    """FastAPI documents its own 422 validation body; vidgate never sends it (400 instead)."""
    for path in schema.get("paths", {}).values():
        for operation in path.values():
            response = operation.get("responses", {}).get("422")
            ref = (
                str(response.get("content", {}).get("application/json", {}).get("schema", {}))
                if response
                else ""
            )
            if "HTTPValidationError" in ref:
                operation["responses"]["422"] = {
                    "description": ERROR_RESPONSES[422]["description"],
                    "content": {
                        "application/json": {
                            "schema": {"$ref": "#/components/schemas/ErrorEnvelope"}
                        }
                    },
                }
    components = schema.get("components", {}).get("schemas", {})
    components.pop("HTTPValidationError", None)
    components.pop("ValidationError", None)
    return schema


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

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        error = _from_http(exc)
        if exc.status_code == 405:  # the router's Allow names only its first matching route
            allow = allowed_methods(request.app.routes, request.scope)
            if allow:
                error.headers["Allow"] = ", ".join(allow)
        return error_response(error)

    async def on_crash(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        return error_response(InternalError())

    app.add_exception_handler(VidgateError, on_vidgate)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(Exception, on_crash)
