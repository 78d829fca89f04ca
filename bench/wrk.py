"""wrk, the C load generator the benchmarks drive servers with: its Lua script (method, body,
key, paths in turn, a pause), one timed run, and the server's CPU time around it.

A load generator in C, not Python: on two cores an httpx client saturated before either server
did (1,108 req/s where wrk got 3,000 to 3,400 from the same bare endpoint), so a ratio against
its baseline measured the client.
"""

from __future__ import annotations

import json
import resource
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from figures import cpu_seconds

# wrk's own report, as one JSON line: its latency histogram gives exact percentiles.
# (summary.errors.status counts answers with a status of 400 or more.)
_REPORT = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'RESULT {"requests": %d, "errors": %d, "bad_status": %d, "seconds": %f, ' ..
    '"p50_ms": %f, "p90_ms": %f, "p99_ms": %f, "max_ms": %f}\\n',
    summary.requests, e.connect + e.read + e.write + e.timeout, e.status,
    summary.duration / 1e6, latency:percentile(50) / 1e3, latency:percentile(90) / 1e3,
    latency:percentile(99) / 1e3, latency.max / 1e3))
end
"""


def require_wrk() -> None:
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: `make wrk` (or apt-get install -y wrk)")


def _lua_string(text: str) -> str:
    """``text`` as a quoted Lua string: each byte outside printable ASCII, and each quote or
    backslash, as a decimal escape."""
    plain = {*range(0x20, 0x7F)} - {ord('"'), ord("\\")}
    return '"' + "".join(chr(b) if b in plain else f"\\{b:03d}" for b in text.encode()) + '"'


@dataclass(frozen=True)
class WrkLoad:
    """What each connection sends: ``method`` to ``paths`` in turn (one thread's connections
    share the turn), with ``headers`` and ``body``, pausing ``pause_ms`` after each answer."""

    paths: Sequence[str]
    method: str = "GET"
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes | None = None
    pause_ms: int = 0

    def script(self) -> str:
        lines = [f"wrk.method = {_lua_string(self.method)}"]
        for name, value in self.headers.items():
            lines.append(f"wrk.headers[{_lua_string(name)}] = {_lua_string(value)}")
        if self.body is not None:
            lines.append(f"wrk.body = {_lua_string(self.body.decode())}")
        if len(self.paths) > 1:
            # With one path wrk builds the request once; with several, each one is formatted.
            listed = ", ".join(_lua_string(path) for path in self.paths)
            lines += [
                f"local paths = {{{listed}}}",
                "local turn = 0",
                "request = function()",
                "  turn = turn % #paths + 1",
                "  return wrk.format(nil, paths[turn])",
                "end",
            ]
        if self.pause_ms > 0:
            # A steady load below capacity: latency then shows stalls, not a queue.
            lines.append(f"delay = function() return {self.pause_ms} end")
        return "\n".join(lines) + "\n" + _REPORT

    def write(self, path: Path) -> Path:
        path.write_text(self.script())
        return path


@dataclass(frozen=True)
class WrkResult:
    """One run: counts, wrk's latency percentiles, and the CPU seconds the server (and wrk
    itself) used meanwhile."""

    requests: int
    errors: int
    bad_status: int
    seconds: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    connections: int
    server_cpu_seconds: float | None
    client_cpu_seconds: float

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def server_cpu_ms_per_request(self) -> float | None:
        if self.server_cpu_seconds is None or not self.requests:
            return None
        return 1000 * self.server_cpu_seconds / self.requests

    def summary(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "rps": round(self.rps, 1),
            "server_cpu_ms_per_request": self.server_cpu_ms_per_request,
        }


def run_wrk(
    base_url: str,
    script: Path,
    *,
    first_path: str,
    seconds: int,
    connections: int,
    server_pid: int | None = None,
    threads: int | None = None,
    timeout_seconds: float = 10.0,
) -> WrkResult:
    """``wrk`` for ``seconds`` (whole: wrk takes no fractions) over ``connections`` keep-alive
    connections (two threads, or one below two connections), reading the server's CPU time
    just before and after it."""
    threads = threads or min(2, connections)
    command = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{seconds}s",
        "--timeout",
        f"{timeout_seconds:g}s",
        "-s",
        str(script),
        base_url + first_path,
    ]
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    before = cpu_seconds(server_pid) if server_pid else None
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    after = cpu_seconds(server_pid) if server_pid else None
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}):\n{done.stderr}{done.stdout}")
    line = next((line for line in done.stdout.splitlines() if line.startswith("RESULT ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no result:\n{done.stdout}{done.stderr}")
    report = json.loads(line.removeprefix("RESULT "))
    return WrkResult(
        **report,
        connections=connections,
        server_cpu_seconds=after - before if before is not None and after is not None else None,
        client_cpu_seconds=(used.ru_utime + used.ru_stime)
        - (children.ru_utime + children.ru_stime),
    )
