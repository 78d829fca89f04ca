"""A fake Gemini API for Veo on 127.0.0.1: long-running operations, downloads, scripted faults."""

from __future__ import annotations

import functools
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from vidgate.media.video import FPS, FRAME_COUNT, VideoWriter

API_KEY = "fake-gemini-key-5f2c"
MODEL = "veo-3.1-fast-generate-preview"
_RESPONSE_TYPE = (
    "type.googleapis.com/google.ai.generativelanguage.v1beta.PredictLongRunningResponse"
)


@dataclass(frozen=True)
class Reply:
    """A canned error answer: the HTTP status, and headers such as Retry-After."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Scenario:
    """What the fake does with the next operations; tests edit it before calling the engine."""

    polls: int = 1  # answers with done: false before the operation is done
    video: bytes | None = None  # None: the small 640x360 30 fps clip
    filtered: bool = False  # done without samples, raiMediaFilteredCount 1
    error: tuple[int, str, str] | None = None  # done with error (code, status, message)
    start_failures: list[Reply] = field(default_factory=list)  # answered first, in order
    poll_failures: list[Reply] = field(default_factory=list)
    download_failures: list[Reply] = field(default_factory=list)
    refuse_key: bool = False  # every call answers 401
    relative_uri: bool = False
    redirect_download: bool = False  # the download answers 302 to a storage path
    redirect_origin: str = ""  # where that storage path is, e.g. another host name for us


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: Any


_STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}


def _error(
    status: int, message: str, headers: dict[str, str] | None = None, **extra: Any
) -> Response:
    body = {
        "error": {
            "code": status,
            "message": message,
            "status": _STATUS_NAMES.get(status, "UNKNOWN"),
            **extra,
        }
    }
    return JSONResponse(body, status_code=status, headers=headers)


class FakeGemini:
    """Speaks the Gemini API's Veo protocol over real HTTP and records every request."""

    def __init__(self, api_key: str = API_KEY) -> None:
        self.api_key = api_key
        self.scenario = Scenario()
        self.requests: list[Recorded] = []
        self._polls: dict[str, int] = {}
        self._videos: dict[str, bytes] = {}
        self._lock = threading.Lock()
        self.app = Starlette(
            routes=[
                Route("/v1beta/models/{rest:path}", self._models, methods=["GET", "POST"]),
                Route("/v1beta/files/{rest:path}", self._files, methods=["GET"]),
                Route("/storage/{file_id}", self._storage, methods=["GET"]),
            ]
        )
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.base_url = ""

    def requests_to(self, fragment: str) -> list[Recorded]:
        return [r for r in self.requests if fragment in r.path]

    async def _record(self, request: Request) -> None:
        raw = await request.body()
        body: Any = None
        if raw:
            body = await request.json()
        with self._lock:
            self.requests.append(
                Recorded(
                    request.method, request.url.path, request.url.query, dict(request.headers), body
                )
            )

    def _key_problem(self, request: Request) -> Response | None:
        if self.scenario.refuse_key:
            return _error(401, "Request had invalid authentication credentials.")
        key = request.headers.get("x-goog-api-key")
        if key is None:
            return _error(403, "Method doesn't allow unregistered callers.")
        if key != self.api_key:
            # What the real API answers for a wrong key: 400, with the reason in the details.
            details = [
                {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"}
            ]
            return _error(400, "API key not valid. Please pass a valid API key.", details=details)
        return None

    @staticmethod
    def _failure(replies: list[Reply]) -> Response | None:
        if not replies:
            return None
        reply = replies.pop(0)
        return _error(reply.status, f"scripted {reply.status}", reply.headers)

    async def _models(self, request: Request) -> Response:
        await self._record(request)
        rest = request.path_params["rest"]
        if problem := self._key_problem(request):
            return problem
        if request.method == "POST" and rest.endswith(":predictLongRunning"):
            if failure := self._failure(self.scenario.start_failures):
                return failure
            return await self._start(request, rest.removesuffix(":predictLongRunning"))
        if request.method == "GET" and "/operations/" in rest:
            if failure := self._failure(self.scenario.poll_failures):
                return failure
            return self._operation(f"models/{rest}", request)
        return _error(404, f"no such method: {rest}")

    async def _start(self, request: Request, model: str) -> Response:
        body = await request.json()
        instances = body.get("instances")
        parameters = body.get("parameters", {})
        if not isinstance(instances, list) or len(instances) != 1 or not instances[0].get("prompt"):
            return _error(400, "instances[0].prompt is required")
        if parameters.get("aspectRatio") not in ("16:9", "9:16"):
            return _error(400, "aspectRatio must be 16:9 or 9:16")
        name = f"models/{model}/operations/{uuid.uuid4().hex[:12]}"
        with self._lock:
            self._polls[name] = 0
        return JSONResponse({"name": name, "done": False})

    def _operation(self, name: str, request: Request) -> Response:
        with self._lock:
            if name not in self._polls:
                return _error(404, f"operation {name} not found")
            self._polls[name] += 1
            polls = self._polls[name]
        scenario = self.scenario
        if polls <= scenario.polls:
            return JSONResponse({"name": name, "done": False, "metadata": {}})
        if scenario.error is not None:
            code, status, message = scenario.error
            return JSONResponse(
                {
                    "name": name,
                    "done": True,
                    "error": {"code": code, "status": status, "message": message},
                }
            )
        if scenario.filtered:
            result: dict[str, Any] = {
                "raiMediaFilteredCount": 1,
                "raiMediaFilteredReasons": [
                    "The prompt could not be submitted: it may violate our policies."
                ],
            }
        else:
            file_id = uuid.uuid4().hex[:12]
            with self._lock:
                self._videos[file_id] = (
                    scenario.video if scenario.video is not None else small_clip()
                )
            path = f"v1beta/files/{file_id}:download?alt=media"
            uri = path if scenario.relative_uri else f"{request.base_url}{path}"
            result = {"generatedSamples": [{"video": {"uri": uri}}]}
        response = {"@type": _RESPONSE_TYPE, "generateVideoResponse": result}
        return JSONResponse({"name": name, "done": True, "response": response})

    async def _files(self, request: Request) -> Response:
        await self._record(request)
        if problem := self._key_problem(request):
            return problem
        file_id = request.path_params["rest"].removesuffix(":download")
        if failure := self._failure(self.scenario.download_failures):
            return failure
        if file_id not in self._videos:
            return _error(404, "file not found")
        if self.scenario.redirect_download:
            target = f"{self.scenario.redirect_origin}/storage/{file_id}"
            return RedirectResponse(target, status_code=302)
        return Response(self._videos[file_id], media_type="video/mp4")

    async def _storage(self, request: Request) -> Response:
        await self._record(request)
        file_id = request.path_params["file_id"]
        if file_id not in self._videos:
            return _error(404, "file not found")
        return Response(self._videos[file_id], media_type="video/mp4")

    def __enter__(self) -> FakeGemini:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        config = uvicorn.Config(self.app, log_level="warning", lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name="fake-gemini", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the fake Gemini server did not start")
            time.sleep(0.01)
        self.base_url = f"http://127.0.0.1:{port}"
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=10)


def _frames(width: int, height: int, count: int) -> Iterator[np.ndarray[Any, np.dtype[np.uint8]]]:
    """A moving gradient with a bright bar: every frame differs, so encoders cannot cheat."""
    y, x = np.mgrid[0:height, 0:width]
    for index in range(count):
        frame = np.empty((height, width, 3), np.uint8)
        frame[..., 0] = (x * 255 // width + index * 4) % 256
        frame[..., 1] = y * 255 // height
        frame[..., 2] = 96
        bar = (index * width // count) % width
        frame[:, bar : bar + width // 20] = 235
        yield frame


def _encode(width: int, height: int, fps: int, count: int) -> bytes:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "clip.mp4"
        with VideoWriter(path, width, height, fps=fps) as writer:
            for frame in _frames(width, height, count):
                writer.write(frame)
        return path.read_bytes()


@functools.cache
def small_clip() -> bytes:
    """640x360 at 30 fps for 2 s: not the SPEC format, so the engine must re-encode it."""
    return _encode(640, 360, 30, 60)


@functools.cache
def spec_clip(aspect_ratio: str = "16:9") -> bytes:
    """Already in the SPEC format (H.264, 24 fps, 8 s, the aspect's size): passed through as is."""
    width, height = (1280, 720) if aspect_ratio == "16:9" else (720, 1280)
    return _encode(width, height, FPS, FRAME_COUNT)
