"""Benchmark: from create to claimed, the time a new task waits before a worker takes it.

``vidgate serve`` runs one in-process worker with the benchmark-only ``instant`` engine (it
copies a ready-made file, so nothing renders). Clients create a task, long-poll it
(``?wait=``) until it finishes, then create the next. Dispatch is read from the timestamps the
store records: ``started_at`` (set by the claim) minus ``created_at`` (set when the create
began). The baseline is the floor of the same path measured in the same run: the round trip
of the create request itself. ``--remote`` runs the worker as its own process that reaches the
server over HTTP (``vidgate worker --server URL --token T``), on PostgreSQL.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select

sys.path.insert(0, str(Path(__file__).resolve().parent))

from figures import fmt, header, markdown_table, percentile
from instant import INSTANT_MODELS
from processes import BENCH_KEY, HERE, Process, fresh_database, vidgate_serve, workdir
from vidgate.store.database import Database
from vidgate.store.tables import tasks

CREATE_BODY = {"model": "veo3.1-fast", "prompt": "A lighthouse at dusk, waves, slow pan"}
BUCKETS_MS = (2, 5, 10, 20, 50, 100, 250, 1000)
AIM_MS = {"embedded": 20.0, "remote": 100.0}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a few seconds: tiny counts")
    parser.add_argument("--tasks", type=int, help="tasks per concurrency level")
    parser.add_argument("--clients", default="1,4", help="concurrency levels (comma list)")
    parser.add_argument("--database-url", help="PostgreSQL URL (a fresh database is made on it)")
    parser.add_argument(
        "--remote",
        action="store_true",
        help="the worker in its own process, over HTTP (the server on PostgreSQL: --database-url, "
        "else VIDGATE_TEST_POSTGRES_URL, else SQLite)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of Markdown")
    parser.add_argument("--keep", action="store_true", help="keep the work dir (logs)")
    args = parser.parse_args()
    args.levels = [int(c) for c in args.clients.split(",")]
    args.tasks = args.tasks or (20 if args.quick else 300)
    if args.remote and not args.database_url:
        args.database_url = os.environ.get("VIDGATE_TEST_POSTGRES_URL")
    return args


def remote_worker_available() -> bool:
    """Whether this version of ``vidgate worker`` can reach a server over HTTP."""
    shown = subprocess.run(
        [sys.executable, "-m", "vidgate", "worker", "--help"],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
        check=False,
    )
    return "--server" in shown.stdout


async def client_loop(
    client: httpx.AsyncClient, count: int, limit_seconds: float
) -> list[dict[str, Any]]:
    """Create, then long-poll until the task ends; ``count`` times in a row."""
    seen = []
    for _ in range(count):
        started = time.perf_counter()
        response = await client.post("/v1/videos/generations", json=CREATE_BODY)
        created = time.perf_counter()
        response.raise_for_status()
        task = response.json()
        deadline = started + limit_seconds
        while task["status"] not in ("completed", "failed") and time.perf_counter() < deadline:
            polled = await client.get(f"/v1/tasks/{task['id']}", params={"wait": 5})
            polled.raise_for_status()
            task = polled.json()
        ended = time.perf_counter()
        seen.append(
            {
                "id": task["id"],
                "status": task["status"],
                "create_ms": (created - started) * 1000,
                "observed_ms": (ended - started) * 1000,
            }
        )
    return seen


async def measure_level(url: str, clients: int, total: int) -> list[dict[str, Any]]:
    headers = {"Authorization": f"Bearer {BENCH_KEY}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60) as client:
        await client_loop(client, 2, 30)  # warm-up, not counted
        shares = [total // clients + (1 if i < total % clients else 0) for i in range(clients)]
        runs = await asyncio.gather(*(client_loop(client, share, 30) for share in shares))
    return [item for run in runs for item in run]


async def store_times(db_url: str, ids: list[str]) -> dict[str, tuple[float, float, float]]:
    """(created_at, started_at, finished_at) of each task, as the store recorded them."""
    db = Database(db_url)
    found: dict[str, tuple[float, float, float]] = {}
    try:
        async with db.read() as conn:
            for first in range(0, len(ids), 500):
                rows = await conn.execute(
                    select(
                        tasks.c.id, tasks.c.created_at, tasks.c.started_at, tasks.c.finished_at
                    ).where(tasks.c.id.in_(ids[first : first + 500]))
                )
                for row in rows:
                    found[row.id] = (row.created_at, row.started_at, row.finished_at)
    finally:
        await db.close()
    return found


def distribution(values_ms: list[float]) -> dict[str, int]:
    counts: dict[str, int] = {}
    low = 0.0
    for high in (*BUCKETS_MS, float("inf")):
        label = f"{low:g}-{high:g} ms" if high != float("inf") else f">{low:g} ms"
        counts[label] = sum(1 for v in values_ms if low <= v < high)
        low = high
    return counts


def summarise(
    seen: list[dict[str, Any]], times: dict[str, tuple[float, float, float]]
) -> dict[str, Any]:
    dispatch, run, finish, create, observed = [], [], [], [], []
    for item in seen:
        created, started, finished = times.get(item["id"], (0.0, None, None))
        create.append(item["create_ms"])
        observed.append(item["observed_ms"])
        if started is not None:
            dispatch.append((started - created) * 1000)
        if started is not None and finished is not None:
            run.append((finished - started) * 1000)
            finish.append((finished - created) * 1000)

    def stats(values: list[float]) -> dict[str, float]:
        return {
            "p50": percentile(values, 50),
            "p90": percentile(values, 90),
            "p99": percentile(values, 99),
            "max": max(values) if values else float("nan"),
        }

    return {
        "tasks": len(seen),
        "completed": sum(1 for item in seen if item["status"] == "completed"),
        "claimed": len(dispatch),
        "dispatch_ms": stats(dispatch),
        "create_round_trip_ms": stats(create),
        "run_ms": stats(run),
        "created_to_finished_ms": stats(finish),
        "client_observed_ms": stats(observed),
        "dispatch_distribution": distribution(dispatch),
    }


def remote_worker(work: Path, server: Process) -> Process:
    """A worker token made with ``vidgate workers token create`` on the server's database, and
    ``vidgate worker --server URL --token T`` in its own process and data dir."""
    made = subprocess.run(
        [
            sys.executable,
            str(HERE),
            "vidgate",
            "workers",
            "token",
            "create",
            "--name",
            "bench",
            "--json",
        ],
        env=server.env,
        capture_output=True,
        text=True,
        check=True,
    )
    token = json.loads(made.stdout)["token"]
    worker_dir = work / "worker-data"
    models = work / "worker-models.toml"
    models.write_text(INSTANT_MODELS)
    env = {
        "VIDGATE_DATA_DIR": str(worker_dir),
        "VIDGATE_MODELS": str(models),
        "VIDGATE_DATABASE_URL": "",
        "GEMINI_API_KEY": "",
    }
    argv = [sys.executable, str(HERE), "vidgate", "worker", "--count", "1"]
    argv += ["--server", server.url, "--token", token]
    return Process(argv, log_path=work / "worker.log", env=env, health_path=None).start()


def run(args: argparse.Namespace, work: Path, database_url: str | None) -> dict[str, Any]:
    mode = "remote" if args.remote else "embedded"
    data_dir = work / "data"
    worker: Process | None = None
    if args.remote:
        server = vidgate_serve(data_dir, database_url, workers=0, instant=True)
    else:
        server = vidgate_serve(data_dir, database_url, workers=1, instant=True)
    levels = []
    try:
        server.start()
        if args.remote:
            worker = remote_worker(work, server)
        for clients in args.levels:
            seen = asyncio.run(measure_level(server.url, clients, args.tasks))
            db_url = database_url or f"sqlite+aiosqlite:///{(data_dir / 'vidgate.db').resolve()}"
            times = asyncio.run(store_times(db_url, [item["id"] for item in seen]))
            levels.append({"clients": clients, **summarise(seen, times)})
    finally:
        if worker is not None:
            worker.stop()
        server.stop()
    return {
        "mode": mode,
        "database": "PostgreSQL" if database_url else "SQLite",
        "levels": levels,
    }


def render(result: dict[str, Any]) -> str:
    if "not_runnable" in result:
        return header("Dispatch, remote worker") + "\n" + str(result["not_runnable"])
    rows = []
    for level in result["levels"]:
        d, c = level["dispatch_ms"], level["create_round_trip_ms"]
        rows.append(
            [
                str(level["clients"]),
                str(level["tasks"]),
                str(level["completed"]),
                fmt(d["p50"], 2),
                fmt(d["p90"], 2),
                fmt(d["p99"], 2),
                fmt(d["max"], 2),
                fmt(c["p50"], 2),
                fmt(c["p99"], 2),
                fmt(d["p50"] / c["p50"] if c["p50"] else None, 2),
                fmt(level["run_ms"]["p50"], 2),
                fmt(level["created_to_finished_ms"]["p50"], 2),
                fmt(level["client_observed_ms"]["p50"], 2),
            ]
        )
    table = markdown_table(
        [
            "Clients",
            "Tasks",
            "Completed",
            "Dispatch p50 (ms)",
            "p90",
            "p99",
            "max",
            "Baseline: create round trip p50 (ms)",
            "create p99",
            "Ratio p50",
            "Claim to finished p50 (ms)",
            "Created to finished p50 (ms)",
            "Client saw it end, p50 (ms)",
        ],
        rows,
    )
    buckets = list(result["levels"][0]["dispatch_distribution"])
    histogram = markdown_table(
        ["Clients", *buckets],
        [
            [str(level["clients"]), *map(str, level["dispatch_distribution"].values())]
            for level in result["levels"]
        ],
    )
    mode = result["mode"]
    where = (
        "one worker in the server process"
        if mode == "embedded"
        else "one `vidgate worker --server` process"
    )
    aim = AIM_MS[mode]
    first = result["levels"][0]["dispatch_ms"]["p50"]
    met = "met" if first < aim else "NOT met"
    title = (
        f"Dispatch ({mode}: {where}, instant engine, {result['database']}): "
        "created_at to started_at as the store records them"
    )
    notes = [
        "",
        "Each client creates a task, long-polls it until it ends, then creates the next; with "
        "more clients than workers, dispatch includes waiting behind the other clients' tasks.",
        "",
        "Distribution of dispatch times (tasks per bucket):",
        "",
        histogram,
        "",
        f"Aim (reported, not asserted): p50 under {aim:.0f} ms {mode} at "
        f"{result['levels'][0]['clients']} client(s): {first:.2f} ms, {met}.",
    ]
    return header(title) + "\n" + table + "\n" + "\n".join(notes)


def main() -> None:
    args = parse_args()
    if args.remote:
        reason = None
        if not remote_worker_available():
            reason = (
                "Not yet runnable: this version of `vidgate worker` has no `--server` option "
                "(the remote worker is being built)."
            )
        if reason:
            result: dict[str, Any] = {"mode": "remote", "not_runnable": reason}
            print(json.dumps(result, indent=2) if args.json else render(result))
            return
    with (
        workdir("vidgate-bench-dispatch-", keep=args.keep) as work,
        fresh_database(args.database_url) as database_url,
    ):
        result = run(args, work, database_url)
    print(json.dumps(result, indent=2) if args.json else render(result))


if __name__ == "__main__":
    main()
