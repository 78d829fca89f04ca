"""The baseline server: a bare Starlette app answering the very bytes vidgate answered, on the
stack ``vidgate serve`` runs (``processes.py bare PORT SPEC``).

The stack is the production one: uvicorn with vidgate's own connection protocol
(``http_server.guarded_protocol``, over httptools) and its default limits, on uvloop, with the
heap frozen as ``vidgate serve`` freezes it. The app has vidgate's route shapes, no auth, no
database: each answer's body and headers were recorded from vidgate, and a ``?wait=`` on a task
vidgate would hold is held as long before the same answer.
"""

from __future__ import annotations

import asyncio
import gc
import json
import sys
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from processes import HERE, Process, free_port


@dataclass(frozen=True)
class Answer:
    """One recorded answer: its body and the headers vidgate sent beside it."""

    body: str
    headers: dict[str, str] = field(default_factory=dict)
    holds: bool = False  # a ?wait= on this task is held (vidgate waits for it to change)


# Headers the server itself writes (uvicorn, Starlette): not part of the recorded answer.
SERVER_HEADERS = {"date", "server", "content-length", "content-type", "connection"}


def recorded(body: bytes, headers: Mapping[str, str], *, holds: bool = False) -> Answer:
    kept = {name: value for name, value in headers.items() if name.lower() not in SERVER_HEADERS}
    return Answer(body.decode(), kept, holds)


def bare_server(workdir: Path, answers: Mapping[str, Answer]) -> Process:
    """The baseline, answering ``answers["METHOD /path"]``."""
    port = free_port()
    spec = workdir / f"bare-{port}.json"
    spec.write_text(json.dumps({route: asdict(answer) for route, answer in answers.items()}))
    return Process(
        [sys.executable, str(HERE), "bare", str(port), str(spec)],
        log_path=workdir / f"bare-{port}.log",
        port=port,
    )


def bare_app(answers: Mapping[str, Answer]) -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    def respond(answer: Answer | None) -> Response:
        if answer is None:
            return Response(b'{"error":"not recorded"}', 404, media_type="application/json")
        return Response(answer.body, headers=answer.headers, media_type="application/json")

    async def task(request: Request) -> Response:
        answer = answers.get(f"GET {request.url.path}")
        wait = request.query_params.get("wait")
        if answer is not None and answer.holds and wait:
            await asyncio.sleep(float(wait))
        return respond(answer)

    async def create(request: Request) -> Response:
        await request.body()  # read, as a real endpoint must
        return respond(answers.get(f"POST {request.url.path}"))

    async def health(request: Request) -> Response:
        return Response(b'{"status":"ok"}', media_type="application/json")

    return Starlette(
        routes=[
            Route("/v1/tasks/{task_id}", task, methods=["GET"]),
            Route("/v1/videos/generations", create, methods=["POST"]),
            Route("/healthz", health, methods=["GET"]),
        ]
    )


def serve_bare(port: int, spec: Path) -> None:
    import uvicorn
    import uvloop

    from vidgate.http_server import guarded_protocol, listen_sockets, raise_descriptor_limit
    from vidgate.settings import Settings

    answers = {route: Answer(**answer) for route, answer in json.loads(spec.read_text()).items()}
    defaults = Settings.model_fields
    max_connections = defaults["max_connections"].default
    # The uvicorn.Config of ``vidgate serve``, with the same defaults for its limits.
    config = uvicorn.Config(
        bare_app(answers),
        http=guarded_protocol(
            header_timeout=defaults["header_timeout_seconds"].default,
            max_connections=max_connections,
        ),
        timeout_keep_alive=defaults["keep_alive_seconds"].default,
        log_config=None,
        access_log=False,
        lifespan="on",
    )
    raise_descriptor_limit(max_connections)
    listeners = listen_sockets("127.0.0.1", port)
    gc.collect()
    gc.freeze()
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(uvicorn.Server(config).serve(sockets=listeners))
