"""The baseline server: a bare ASGI endpoint answering fixed bytes to any path, under the same
uvicorn settings as ``vidgate serve`` (``processes.py bare PORT SPEC``)."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from processes import HERE, Process, free_port


def bare_server(workdir: Path, bodies: Mapping[str, bytes]) -> Process:
    """The baseline: a bare ASGI endpoint answering ``bodies[method]`` to any path."""
    port = free_port()
    spec = workdir / f"bare-{port}.json"
    spec.write_text(json.dumps({m: b.decode() for m, b in bodies.items()}))
    return Process(
        [sys.executable, str(HERE), "bare", str(port), str(spec)],
        log_path=workdir / f"bare-{port}.log",
        port=port,
    )


def bare_app(bodies: Mapping[str, bytes]) -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        more = True
        while more:  # read the request body, as a real endpoint must
            message = await receive()
            more = message.get("more_body", False)
        body = bodies.get(scope["method"], b"{}")
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    return app


def serve_bare(port: int, spec: Path) -> None:
    import uvicorn

    bodies = {m: b.encode() for m, b in json.loads(spec.read_text()).items()}
    # The very uvicorn.Config of ``vidgate serve``: same server, loop and HTTP parser.
    config = uvicorn.Config(
        bare_app(bodies),
        host="127.0.0.1",
        port=port,
        log_config=None,
        access_log=False,
        lifespan="on",
    )
    asyncio.run(uvicorn.Server(config).serve())
