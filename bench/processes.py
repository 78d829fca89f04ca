"""The benchmarks' processes: starting the servers under test in processes of their own, and,
run as a script, playing one of the benchmarks' helper processes:

- ``drive``: the load generator (``load.py``); reads a JSON spec on stdin and prints the
  measured latencies as JSON;
- ``bare PORT SPEC``: the baseline server (``bare.py``), a bare Starlette app that answers
  recorded bytes, on the same server stack as ``vidgate serve``;
- ``vidgate ARGS``: the ``vidgate`` command (``serve``, ``worker``, ...) with the
  benchmark-only ``instant`` engine (``instant.py``) registered in this process.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import httpx

from instant import INSTANT_MODELS, run_vidgate

BENCH_KEY = "sk-bench-0123456789abcdefghijklmnopqrstuvwxyzABCDEFGH"
HERE = Path(__file__).resolve()  # the script the helper processes run: see main()


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Process:
    """A helper process with its output in a log file, healthy once ``health_path`` answers."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        log_path: Path,
        env: Mapping[str, str] | None = None,
        port: int | None = None,
        health_path: str | None = "/healthz",
    ) -> None:
        self.argv = list(argv)
        self.log_path = log_path
        self.env = {**os.environ, **(env or {})}
        self.port = port
        self.health_path = health_path
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self, timeout: float = 90.0) -> Process:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.argv, env=self.env, stdout=log, stderr=subprocess.STDOUT
            )
        if self.health_path is None:
            return self
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.argv} exited early:\n{self.log()}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(self.url + self.health_path, timeout=2).status_code == 200:
                    return self
            time.sleep(0.1)
        raise RuntimeError(f"{self.argv} did not become healthy:\n{self.log()}")

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        if self.alive():
            assert self.process is not None
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:] if self.log_path.exists() else ""

    def __enter__(self) -> Process:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def server_env(data_dir: Path, database_url: str | None, **extra: str) -> dict[str, str]:
    """The environment of a benchmarked server: its own data dir, a rich bootstrap account,
    no request or unfinished-task limits, and no remote engine configured."""
    env = {
        "VIDGATE_DATA_DIR": str(data_dir),
        "VIDGATE_BOOTSTRAP_KEY": BENCH_KEY,
        "VIDGATE_BOOTSTRAP_CREDITS": "1000000000",
        "VIDGATE_RATE_LIMIT_PER_MINUTE": "0",
        "VIDGATE_MAX_ACTIVE_TASKS": "0",
        "GEMINI_API_KEY": "",
        **extra,
    }
    if database_url:
        env["VIDGATE_DATABASE_URL"] = database_url
    return env


def vidgate_serve(
    data_dir: Path, database_url: str | None, *, workers: int, instant: bool = False, **env: str
) -> Process:
    """``vidgate serve`` (with the instant engine registered in it when asked)."""
    port = free_port()
    extra = {"VIDGATE_WORKERS": str(workers), "VIDGATE_PORT": str(port), **env}
    if instant:
        models = data_dir.parent / "instant-models.toml"
        models.write_text(INSTANT_MODELS)
        extra["VIDGATE_MODELS"] = str(models)
        argv = [sys.executable, str(HERE), "vidgate", "serve", "--port", str(port)]
    else:
        argv = [sys.executable, "-m", "vidgate", "serve", "--port", str(port)]
    return Process(
        argv,
        log_path=data_dir.parent / f"serve-{port}.log",
        env=server_env(data_dir, database_url, **extra),
        port=port,
    )


def vidgate_worker(data_dir: Path, database_url: str | None, *, count: int = 1) -> Process:
    """``vidgate worker`` on a server's database, with the instant engine: it finishes at once
    whatever the queue holds (a benchmark's finished tasks)."""
    models = data_dir.parent / "instant-models.toml"
    models.write_text(INSTANT_MODELS)
    env = server_env(data_dir, database_url, VIDGATE_MODELS=str(models))
    return Process(
        [sys.executable, str(HERE), "vidgate", "worker", "--count", str(count)],
        log_path=data_dir.parent / "worker.log",
        env=env,
        health_path=None,
    )


@contextlib.contextmanager
def fresh_database(url: str | None) -> Iterator[str | None]:
    """A PostgreSQL URL: a new database on that server for this run, dropped after it.
    None (SQLite in the data dir) stays None."""
    if not url:
        yield None
        return
    from sqlalchemy.engine import make_url

    base = make_url(url)
    if base.get_backend_name() != "postgresql":
        yield url
        return
    import asyncpg

    name = f"vidgate_bench_{os.getpid()}_{secrets.token_hex(3)}"
    admin_dsn = base.set(drivername="postgresql").render_as_string(hide_password=False)

    async def run(statement: str) -> None:
        conn = await asyncpg.connect(admin_dsn)
        try:
            await conn.execute(statement)
        finally:
            await conn.close()

    asyncio.run(run(f'CREATE DATABASE "{name}"'))
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        asyncio.run(run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@contextlib.contextmanager
def workdir(prefix: str, keep: bool = False) -> Iterator[Path]:
    import tempfile

    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    finally:
        if keep:
            print(f"(work dir kept: {path})", file=sys.stderr)
        else:
            shutil.rmtree(path, ignore_errors=True)


def main() -> None:
    # load.py and bare.py import this module, so they are imported here, when played.
    role, args = sys.argv[1], sys.argv[2:]
    if role == "drive":
        from load import LoadSpec, run_load

        spec = LoadSpec(**json.loads(sys.stdin.read()))
        pid = int(args[0]) if args else None
        sys.stdout.write(json.dumps(asyncio.run(run_load(spec, pid))))
    elif role == "bare":
        from bare import serve_bare

        serve_bare(int(args[0]), Path(args[1]))
    elif role == "vidgate":
        run_vidgate(args)
    else:
        raise SystemExit(f"unknown role {role!r}")


if __name__ == "__main__":
    main()
