"""The load driver: a fixed number of keep-alive requests by N concurrent clients, measured
in a process of its own (``processes.py drive``) so its CPU shows apart from the server's."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from figures import cpu_seconds, percentile
from processes import HERE


@dataclass
class LoadSpec:
    """``total`` measured requests by ``concurrency`` clients on keep-alive connections, after
    ``warmup`` unmeasured ones per client. Requests go to ``paths`` in turn (each with the
    matching key of ``keys``, when there are several)."""

    base_url: str
    method: str
    paths: list[str]
    keys: list[str]
    concurrency: int
    total: int
    warmup: int = 2
    body: dict[str, Any] | None = None


@dataclass
class LoadResult:
    """What one load run measured: latencies in milliseconds, statuses, wall and CPU seconds."""

    requests: int
    seconds: float
    latencies_ms: list[float]
    statuses: dict[int, int]
    client_cpu_seconds: float
    server_cpu_seconds: float | None = None
    errors: list[str] = field(default_factory=list)

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def non_2xx(self) -> int:
        return sum(n for status, n in self.statuses.items() if not 200 <= status < 300)

    @property
    def p50(self) -> float:
        return percentile(self.latencies_ms, 50)

    @property
    def p99(self) -> float:
        return percentile(self.latencies_ms, 99)

    @property
    def server_cpu_ms_per_request(self) -> float | None:
        if self.server_cpu_seconds is None or not self.requests:
            return None
        return self.server_cpu_seconds * 1000 / self.requests

    def summary(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "non_2xx": self.non_2xx,
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "seconds": round(self.seconds, 4),
            "rps": round(self.rps, 1),
            "p50_ms": round(self.p50, 3),
            "p99_ms": round(self.p99, 3),
            "client_cpu_seconds": round(self.client_cpu_seconds, 3),
            "server_cpu_ms_per_request": _rounded(self.server_cpu_ms_per_request, 4),
            "errors": self.errors[:5],
        }


def _rounded(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def drive(spec: LoadSpec, server_pid: int | None = None) -> LoadResult:
    """Run the load from a separate process; the server's CPU is read around the measured part."""
    argv = [sys.executable, str(HERE), "drive"]
    if server_pid is not None:
        argv.append(str(server_pid))
    done = subprocess.run(
        argv,
        input=json.dumps(spec.__dict__).encode(),
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"load driver failed:\n{done.stderr.decode(errors='replace')}")
    data = json.loads(done.stdout)
    return LoadResult(
        requests=data["requests"],
        seconds=data["seconds"],
        latencies_ms=data["latencies_ms"],
        statuses={int(k): v for k, v in data["statuses"].items()},
        client_cpu_seconds=data["client_cpu_seconds"],
        server_cpu_seconds=data["server_cpu_seconds"],
        errors=data["errors"],
    )


async def run_load(spec: LoadSpec, server_pid: int | None) -> dict[str, Any]:
    """The load itself, in this process: what ``drive`` reads back as JSON."""
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    errors: list[str] = []
    counter = 0
    limits = httpx.Limits(
        max_connections=spec.concurrency, max_keepalive_connections=spec.concurrency
    )
    body = json.dumps(spec.body).encode() if spec.body is not None else None
    headers = {"Content-Type": "application/json"} if body is not None else {}
    async with httpx.AsyncClient(base_url=spec.base_url, limits=limits, timeout=60) as client:

        async def one(record: bool) -> None:
            nonlocal counter
            index = counter
            counter += 1
            path = spec.paths[index % len(spec.paths)]
            key = spec.keys[index % len(spec.keys)]
            request_headers = {**headers, "Authorization": f"Bearer {key}"}
            started = time.perf_counter()
            try:
                response = await client.request(
                    spec.method, path, content=body, headers=request_headers
                )
                status = response.status_code
            except httpx.HTTPError as error:
                status = 0
                if len(errors) < 20:
                    errors.append(f"{type(error).__name__}: {error}")
            elapsed = (time.perf_counter() - started) * 1000
            if record:
                latencies.append(elapsed)
                statuses[status] = statuses.get(status, 0) + 1
            elif status and not 200 <= status < 300 and len(errors) < 20:
                errors.append(f"warm-up: HTTP {status}: {response.text[:200]}")

        async def client_loop(share: int) -> None:
            for _ in range(share):
                await one(True)

        await asyncio.gather(*(one(False) for _ in range(spec.concurrency * spec.warmup)))
        shares = [spec.total // spec.concurrency] * spec.concurrency
        for i in range(spec.total % spec.concurrency):
            shares[i] += 1
        server_cpu = cpu_seconds(server_pid) if server_pid else None
        cpu, started = time.process_time(), time.perf_counter()
        await asyncio.gather(*(client_loop(share) for share in shares))
        seconds = time.perf_counter() - started
        client_cpu = time.process_time() - cpu
        server_after = cpu_seconds(server_pid) if server_pid else None
    return {
        "requests": len(latencies),
        "seconds": seconds,
        "latencies_ms": latencies,
        "statuses": statuses,
        "client_cpu_seconds": client_cpu,
        "server_cpu_seconds": (
            server_after - server_cpu
            if server_cpu is not None and server_after is not None
            else None
        ),
        "errors": errors,
    }
