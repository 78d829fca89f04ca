"""Request bodies: a size cap enforced while they arrive, and strict JSON for what is kept.

The cap is a plain ASGI middleware (not ``BaseHTTPMiddleware``, which costs a task and a stream
per request). A declared ``Content-Length`` over the cap is answered 413 before a byte of the
body is read; a body without one (chunked) is cut off at the first chunk that passes it. The
routes that take files keep their own, larger caps and are left to them.

Strict JSON is what Python's ``json`` module is not: it takes ``NaN`` and ``Infinity``, reads
``1e999`` as infinity, and decodes ``"\\ud800"`` into a string that cannot be written as UTF-8
(nor stored, nor hashed). ``parse_object`` refuses each of these with a 400 naming the field.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from vidgate.errors import InvalidRequest, RequestTooLarge, excerpt

DEFAULT_MAX_BODY_BYTES = 1024 * 1024
MAX_DEPTH = 32
# The range every database and JSON reader agrees on: a signed 64-bit integer.
MIN_INTEGER = -(2**63)
MAX_INTEGER = 2**63 - 1

_WORKER_RESULT = re.compile(r"/worker/v1/tasks/[^/]+/result")


def takes_files(method: str, path: str) -> bool:
    """The routes whose bodies are files, capped by their own limits (uploads, worker results)."""
    if method == "POST" and path == "/v1/files":
        return True
    return method == "PUT" and _WORKER_RESULT.fullmatch(path) is not None


def _size(count: int) -> str:
    if count % (1024 * 1024) == 0:
        return f"{count // (1024 * 1024)} MiB"
    if count % 1024 == 0:
        return f"{count // 1024} KiB"
    return f"{count} bytes"


class BodyLimit:
    """Answer 413 ``request_too_large`` to any body over ``max_bytes``, before it is parsed."""

    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int = DEFAULT_MAX_BODY_BYTES,
        exempt: Callable[[str, str], bool] = takes_files,
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.exempt = exempt

    def _refusal(self) -> RequestTooLarge:
        return RequestTooLarge(
            f"The request body is over the {_size(self.max_bytes)} ({self.max_bytes} bytes) "
            "limit for JSON bodies."
        )

    async def _refuse(self, send: Send) -> None:
        error = self._refusal()
        body = json.dumps(
            {"error": {"code": error.code, "message": error.message, "type": error.type}}
        ).encode()
        # The client may still be sending: say the connection ends with this answer.
        await send(
            {
                "type": "http.response.start",
                "status": error.status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.exempt(scope["method"], scope["path"]):
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            # A malformed Content-Length never reaches here: the HTTP server refuses it.
            if (
                name == b"content-length"
                and value.isdigit()
                and (len(value) > 18 or int(value) > self.max_bytes)
            ):
                await self._refuse(send)
                return
        received = 0
        refused = False
        started = False

        async def limited() -> Message:
            nonlocal received, refused
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    refused = True
                    raise self._refusal()
            return message

        async def sending(message: Message) -> None:
            nonlocal started
            if refused and not started:
                # Whatever the app made of the refused read (FastAPI turns it into a 400), the
                # answer is ours, sent below.
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited, sending)
        except Exception:
            if not refused or started:
                raise
        if refused and not started:
            await self._refuse(send)


class _Refused:
    """A number JSON cannot carry faithfully, left in the parsed value for the walk to name."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


def _constant(token: str) -> _Refused:
    return _Refused(f"is {token}, which JSON does not allow; send a finite number")


def _float(token: str) -> float | _Refused:
    value = float(token)
    if math.isfinite(value):
        return value
    return _Refused(f"is {excerpt(token, 40)}, beyond the range of a 64-bit floating-point number")


def _int(token: str) -> int | _Refused:
    # Checked by length first: int() of thousands of digits is slow, and over 4300 it raises.
    digits = len(token.lstrip("-"))
    value = int(token) if digits <= 19 else None
    if value is None or not MIN_INTEGER <= value <= MAX_INTEGER:
        return _Refused(
            f"is an integer of {digits} digits, outside the 64-bit range "
            f"({MIN_INTEGER} to {MAX_INTEGER})"
        )
    return value


def _is_text(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _where(path: tuple[str | int, ...]) -> str:
    shown = excerpt(str(path[0]))
    for part in path[1:]:
        shown += f"[{part}]" if isinstance(part, int) else f".{excerpt(part)}"
    return shown


def _check(document: dict[str, Any]) -> None:
    """Refuse lone surrogates (in keys and strings), refused numbers and deep nesting."""
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(document, ())]
    while stack:
        value, path = stack.pop()
        if len(path) > MAX_DEPTH:
            raise InvalidRequest(
                f"{_where(path)} is nested more than {MAX_DEPTH} levels deep.",
                param=excerpt(str(path[0])),
            )
        if isinstance(value, dict):
            for key, item in value.items():
                if not _is_text(key):
                    where = _where((*path, key))
                    raise InvalidRequest(
                        f"The field name {where} contains a lone surrogate (a \\ud800 to "
                        "\\udfff escape without its pair), which is not text.",
                        param=excerpt(str((*path, key)[0])),
                    )
                stack.append((item, (*path, key)))
        elif isinstance(value, list):
            stack.extend((item, (*path, index)) for index, item in enumerate(value))
        elif isinstance(value, str):
            if not _is_text(value):
                raise InvalidRequest(
                    f"{_where(path)} contains a lone surrogate (a \\ud800 to \\udfff escape "
                    "without its pair), which is not text; send valid Unicode.",
                    param=excerpt(str(path[0])),
                )
        elif isinstance(value, _Refused):
            raise InvalidRequest(f"{_where(path)} {value.reason}.", param=excerpt(str(path[0])))


def parse_object(raw: bytes) -> dict[str, Any]:
    """The body as a JSON object of valid text and representable numbers, else a 400."""
    if not raw.strip():
        raise InvalidRequest("The request body must be a JSON object.")
    try:
        document = json.loads(raw, parse_constant=_constant, parse_float=_float, parse_int=_int)
    except UnicodeDecodeError:
        raise InvalidRequest("The request body is not valid JSON: it is not UTF-8.") from None
    except RecursionError:
        raise InvalidRequest(
            f"The request body is nested more than {MAX_DEPTH} levels deep."
        ) from None
    except ValueError:  # json.JSONDecodeError, and whatever else the reader refuses
        raise InvalidRequest("The request body is not valid JSON.") from None
    if not isinstance(document, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    _check(document)
    return document
