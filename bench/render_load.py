"""Benchmark: what preview renders cost the API that shares their process.

A real ``vidgate serve`` (one embedded worker, SQLite) answers ``wrk`` on ``/healthz`` and
``GET /v1/tasks/{id}``, first idle, then while its worker renders preview videos back to back.
It runs twice in the same run: rendering in child processes (``render_in = "process"``, the
engine's default) and in the server's own thread (``render_in = "thread"``, the old way and
the baseline). The figure of merit is each latency while rendering over the same one idle.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from figures import cpu_seconds, fmt, header, markdown_table
from instant import one_engine_registry
from processes import BENCH_KEY, Process, vidgate_serve, workdir
from wrk import WrkLoad, require_wrk, run_wrk

PROMPT = "A red fox trots through a snowy birch forest at dawn, slow tracking shot"
AIM = 2.0  # loaded p99 at most twice the idle p99


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a smoke run: 2 s windows")
    parser.add_argument("--seconds", type=int, help="length of each wrk window (default 10)")
    parser.add_argument("--connections", type=int, default=4, help="wrk connections")
    parser.add_argument(
        "--delay-ms", type=int, default=10, help="pause per connection between requests (0: none)"
    )
    parser.add_argument("--rounds", type=int, help="idle/rendering rounds per mode (default 3)")
    parser.add_argument("--modes", default="process,thread", help="render_in values, in order")
    parser.add_argument("--json", action="store_true", help="print JSON instead of Markdown")
    parser.add_argument("--keep", action="store_true", help="keep the work dir (logs)")
    args = parser.parse_args()
    args.seconds = args.seconds or (2 if args.quick else 10)
    args.rounds = args.rounds or (1 if args.quick else 3)
    args.modes = args.modes.split(",")
    return args


def child_pids(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (the render processes), from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def cpu_of(pids: list[int]) -> float:
    return sum(cpu_seconds(pid) or 0.0 for pid in pids)


class Bench:
    """One server under test and the client calls that drive its tasks."""

    def __init__(self, server: Process) -> None:
        self.server = server
        self.client = httpx.Client(
            base_url=server.url, headers={"Authorization": f"Bearer {BENCH_KEY}"}, timeout=60
        )

    def create(self) -> str:
        body = {"model": "veo3.1-fast", "prompt": PROMPT, "aspect_ratio": "16:9"}
        response = self.client.post("/v1/videos/generations", json=body)
        response.raise_for_status()
        task_id: str = response.json()["id"]
        return task_id

    def status(self, task_id: str) -> str:
        status: str = self.client.get(f"/v1/tasks/{task_id}").json()["status"]
        return status

    def wait(self, task_ids: list[str], statuses: set[str], timeout: float = 600) -> None:
        deadline = time.monotonic() + timeout
        while any(self.status(task_id) not in statuses for task_id in task_ids):
            if time.monotonic() > deadline:
                raise RuntimeError(f"tasks did not reach {statuses}:\n{self.server.log()}")
            time.sleep(0.2)

    def finish(self, task_ids: list[str]) -> int:
        """Cancel what is left of a batch and wait until nothing renders; how many completed."""
        for task_id in task_ids:
            self.client.post(f"/v1/tasks/{task_id}/cancel")
        self.wait(task_ids, {"completed", "failed"})
        return sum(self.status(task_id) == "completed" for task_id in task_ids)


def measure_mode(args: argparse.Namespace, work: Path, mode: str) -> list[dict[str, Any]]:
    models = work / f"models-{mode}.toml"
    models.write_text(
        one_engine_registry(
            "preview", f'type = "preview"\nrender_in = "{mode}"', typical_seconds=10
        )
    )
    server = vidgate_serve(work / f"data-{mode}", None, workers=1, VIDGATE_MODELS=str(models))
    rows: list[dict[str, Any]] = []
    with server.start():
        bench = Bench(server)
        warm = bench.create()  # the first render starts the render process and reads the fonts
        bench.wait([warm], {"completed"})
        targets = {"/healthz": "/healthz", "GET /v1/tasks/{id}": f"/v1/tasks/{warm}"}
        scripts = {
            endpoint: WrkLoad(
                [path],
                headers={"Authorization": f"Bearer {BENCH_KEY}"},
                pause_ms=args.delay_ms,
            ).write(work / f"{mode}-{index}.lua")
            for index, (endpoint, path) in enumerate(targets.items())
        }
        # Idle and rendering windows alternate, round after round: on a shared machine the
        # background load drifts, and it should hit both states alike.
        for round_number in range(args.rounds):
            for state in ("idle", "rendering"):
                batch: list[str] = []
                if state == "rendering":
                    # More tasks than the windows can render: the worker never idles meanwhile.
                    batch = [bench.create() for _ in range(12)]
                    bench.wait(batch[:1], {"processing", "completed"})
                for endpoint, path in targets.items():
                    pids = [server.pid, *child_pids(server.pid)]
                    all_cpu = cpu_of(pids)
                    measured = run_wrk(
                        server.url,
                        scripts[endpoint],
                        first_path=path,
                        seconds=args.seconds,
                        connections=args.connections,
                        threads=1,
                        server_pid=server.pid,
                    )
                    pids = sorted({*pids, *child_pids(server.pid)})
                    server_used = measured.server_cpu_seconds or 0.0
                    result = measured.summary()
                    result.update(
                        non_2xx=measured.bad_status,
                        mode=mode,
                        state=state,
                        endpoint=endpoint,
                        round=round_number,
                        server_cpu_ms_per_request=1000 * server_used / max(1, result["requests"]),
                        render_cpu_seconds=max(0.0, cpu_of(pids) - all_cpu - server_used),
                    )
                    rows.append(result)
                if batch:
                    completed = bench.finish(batch)
                    for row in rows[-len(targets) :]:
                        row["renders_completed"] = completed
        bench.client.close()
    return rows


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per mode, endpoint and state: the median of the rounds (the p99s of each round kept)."""
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["mode"], row["endpoint"], row["state"]), []).append(row)
    summary = []
    for (mode, endpoint, state), group in groups.items():
        entry: dict[str, Any] = {"mode": mode, "endpoint": endpoint, "state": state}
        for key in ("p50_ms", "p99_ms", "server_cpu_ms_per_request"):
            entry[key] = statistics.median(row[key] for row in group)
        entry["rps"] = statistics.median(row["requests"] / row["seconds"] for row in group)
        entry["requests"] = sum(row["requests"] for row in group)
        entry["bad"] = f"{sum(r['non_2xx'] for r in group)}/{sum(r['errors'] for r in group)}"
        entry["p99s"] = [row["p99_ms"] for row in group]
        entry["render_cpu_seconds"] = sum(row["render_cpu_seconds"] for row in group)
        entry["renders"] = round(sum(row.get("renders_completed", 0) for row in group))
        summary.append(entry)
    return summary


def render(rows: list[dict[str, Any]], args: argparse.Namespace) -> str:
    summary = summarise(rows)
    idle = {(r["mode"], r["endpoint"]): r for r in summary if r["state"] == "idle"}
    table = []
    for row in summary:
        base = idle[row["mode"], row["endpoint"]]
        loaded = row["state"] == "rendering"
        table.append(
            [
                row["mode"],
                row["endpoint"],
                row["state"],
                str(row["requests"]),
                fmt(row["rps"], 0),
                fmt(row["p50_ms"], 2),
                fmt(row["p99_ms"], 2),
                ", ".join(fmt(value, 1) for value in row["p99s"]),
                fmt(row["p99_ms"] / base["p99_ms"], 2) if loaded else "",
                row["bad"],
                fmt(row["server_cpu_ms_per_request"], 3),
                (fmt(row["render_cpu_seconds"], 1) if row["mode"] == "process" else "(in server)")
                if loaded
                else "",
                str(row["renders"]) if loaded else "",
            ]
        )
    title = (
        f"API latency while preview renders run: vidgate serve (1 worker, SQLite), wrk -t1 "
        f"-c{args.connections}, each connection pausing {args.delay_ms} ms between requests, "
        f"{args.seconds:g} s windows, {args.rounds} rounds of idle then "
        "rendering (medians); render_in = process (child processes, the default) against "
        "thread (the server's own thread, as before)"
    )
    headers = [
        "Render in",
        "Endpoint",
        "State",
        "Requests",
        "req/s",
        "p50 (ms)",
        "p99 (ms)",
        "p99 of each round (ms)",
        "p99 / idle p99",
        "Non-2xx/errors",
        "Server CPU (ms/req)",
        "Render processes' CPU (s)",
        "Renders done",
    ]
    notes = ["", "Aims (reported, not asserted):"]
    for row in summary:
        if row["state"] == "rendering":
            share = row["p99_ms"] / idle[row["mode"], row["endpoint"]]["p99_ms"]
            met = "met" if share <= AIM else "NOT met"
            notes.append(
                f"- {row['mode']}, {row['endpoint']}: p99 {share:.2f}x idle (aim <= {AIM:g}x): "
                f"{met}"
            )
    notes.append(
        "Server CPU is the `vidgate serve` process's own; with render_in = thread it includes "
        "the render, which runs in that process. Renders done: tasks completed in the rendering "
        "windows of all rounds (one batch per round serves both endpoints' windows; the rest of "
        "it is cancelled before the next idle window)."
    )
    return header(title) + "\n" + markdown_table(headers, table, right=3) + "\n" + "\n".join(notes)


def main() -> None:
    args = parse_args()
    require_wrk()
    with workdir("vidgate-bench-render-", keep=args.keep) as work:
        rows = [row for mode in args.modes for row in measure_mode(args, work, mode)]
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print(render(rows, args))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
