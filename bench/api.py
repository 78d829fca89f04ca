"""Benchmark: the API's poll, long poll and create against a bare endpoint answering the same
bytes, both driven by wrk.

``vidgate serve`` (no workers: nothing renders, tasks stay as they are) and a bare Starlette
app on the same server stack (``bare.py``) run as two processes; ``wrk`` drives each at 1, 8
and 32 keep-alive connections, window after window, alternating which goes first. Beside
requests per second and wrk's latency percentiles come each server's CPU time per request
(the steadiest figure on a shared machine) and wrk's own CPU, which tells whether a baseline
was limited by the load generator rather than by its server.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from api_tasks import AUTH, CREATE_BODY, CREATE_PATH, Tasks, drain, prepare, record
from bare import bare_server
from figures import fmt, header, machine, markdown_table, now_utc, ratio
from processes import Process, fresh_database, vidgate_serve, workdir
from wrk import WrkLoad, require_wrk, run_wrk

FINISHED_WAIT = 30  # seconds asked of a ?wait= on a finished task: it answers at once anyway
READ_AIM = 0.5  # vidgate's rate at least half the bare endpoint's
# Creates at 8 connections: at least 300 a second, with a p99 under 100 ms.
CREATE_AIM_RPS = 300.0
CREATE_AIM_P99_MS = 100.0
CREATE_AIM_CONNECTIONS = 8
# A load generator thread this busy was the limit, not the server it measured.
CLIENT_BOUND = 0.9
# Counted, never reached: the limiter runs on every request, as in production.
RATE_LIMIT = "1000000000"


@dataclass(frozen=True)
class Endpoint:
    name: str
    title: str
    load: Callable[[Tasks, float], WrkLoad]
    aim: str  # "read", "create" or "" (no aim: a held poll's rate is set by its hold)


def _paths(ids: Sequence[str], query: str = "") -> list[str]:
    return [f"/v1/tasks/{task_id}{query}" for task_id in ids]


ENDPOINTS = [
    Endpoint(
        "get",
        "GET /v1/tasks/{id} (pending, with its queue position)",
        lambda tasks, hold: WrkLoad(_paths(tasks.pending), headers=AUTH),
        "read",
    ),
    Endpoint(
        "wait",
        f"GET /v1/tasks/{{id}}?wait={FINISHED_WAIT} (finished: answers at once)",
        lambda tasks, hold: WrkLoad(_paths(tasks.finished, f"?wait={FINISHED_WAIT}"), headers=AUTH),
        "read",
    ),
    Endpoint(
        "held",
        "GET /v1/tasks/{id}?wait=HOLD (pending: held HOLD s, then answered unchanged)",
        lambda tasks, hold: WrkLoad(_paths(tasks.pending, f"?wait={hold:g}"), headers=AUTH),
        "",
    ),
    Endpoint(
        "create",
        "POST /v1/videos/generations",
        lambda tasks, hold: WrkLoad(
            [CREATE_PATH],
            method="POST",
            headers={**AUTH, "Content-Type": "application/json"},
            body=json.dumps(CREATE_BODY).encode(),
        ),
        "create",
    ),
]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a smoke run: 1 s windows, 1 round")
    parser.add_argument("--connections", default="1,8,32", help="wrk connections (comma list)")
    parser.add_argument("--seconds", type=int, help="length of each measured window (5)")
    parser.add_argument("--rounds", type=int, help="windows per server, endpoint and level (3)")
    parser.add_argument("--warmup", type=int, help="unmeasured seconds first per endpoint (1)")
    parser.add_argument("--hold", type=float, default=0.25, help="the held poll's ?wait= (s)")
    parser.add_argument("--tasks", type=int, help="pending and finished tasks read in turn (64)")
    names = ",".join(endpoint.name for endpoint in ENDPOINTS)
    parser.add_argument("--endpoints", default=names, help=f"which of {names}")
    parser.add_argument("--database-url", help="PostgreSQL URL (a fresh database is made on it)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of Markdown")
    parser.add_argument("--keep", action="store_true", help="keep the work dir (logs)")
    args = parser.parse_args()
    args.levels = [int(c) for c in args.connections.split(",")]
    quick = args.quick
    args.seconds = args.seconds or (1 if quick else 5)
    args.rounds = args.rounds or (1 if quick else 3)
    args.warmup = args.warmup if args.warmup is not None else (0 if quick else 1)
    args.tasks = args.tasks or (4 if quick else 64)
    wanted = set(args.endpoints.split(","))
    args.chosen = [endpoint for endpoint in ENDPOINTS if endpoint.name in wanted]
    return args


def run(args: argparse.Namespace, work: Path, database_url: str | None) -> dict[str, Any]:
    began = {"machine": machine(), "date": now_utc()}  # the load average at the start
    data_dir = work / "data"
    server = vidgate_serve(
        data_dir, database_url, workers=0, instant=True, VIDGATE_RATE_LIMIT_PER_MINUTE=RATE_LIMIT
    ).start()
    bare = None
    try:
        tasks = prepare(server, data_dir, database_url, args.tasks)
        bare = bare_server(work, record(server, tasks)).start()
        url = database_url or f"sqlite+aiosqlite:///{(data_dir / 'vidgate.db').resolve()}"
        keep = tasks.pending + tasks.finished
        scripts = {
            e.name: e.load(tasks, args.hold).write(work / f"{e.name}.lua") for e in args.chosen
        }
        first = {e.name: e.load(tasks, args.hold).paths[0] for e in args.chosen}
        servers = [("vidgate", server), ("bare", bare)]

        def window(endpoint: Endpoint, target: Process, connections: int, seconds: int) -> Any:
            result = run_wrk(
                target.url,
                scripts[endpoint.name],
                first_path=first[endpoint.name],
                seconds=seconds,
                connections=connections,
                server_pid=target.pid,
            )
            if endpoint.name == "create" and target is server:
                drain(url, keep)
            return result

        for endpoint in args.chosen:
            if args.warmup > 0:
                for _, target in servers:
                    window(endpoint, target, args.levels[0], args.warmup)
        windows: list[dict[str, Any]] = []
        for round_number in range(args.rounds):
            for index, connections in enumerate(args.levels):
                for endpoint in args.chosen:
                    # Alternate which goes first: drift in the machine's load hits both alike.
                    flip = (round_number + index) % 2
                    for name, target in servers[::-1] if flip else servers:
                        result = window(endpoint, target, connections, args.seconds)
                        windows.append(
                            {
                                "endpoint": endpoint.name,
                                "connections": connections,
                                "server": name,
                                "round": round_number,
                                **result.summary(),
                            }
                        )
        return {
            **began,
            "windows": windows,
            "database": "PostgreSQL" if database_url else "SQLite",
            "seconds": args.seconds,
            "rounds": args.rounds,
            "hold": args.hold,
        }
    finally:
        if bare is not None:
            bare.stop()
        server.stop()


def combined(windows: list[dict[str, Any]]) -> dict[str, Any]:
    """One server's windows at one level: medians of the rates and percentiles; CPU per
    request over all of them (the CPU counters tick in 10 ms)."""
    requests = sum(w["requests"] for w in windows)
    seconds = sum(w["seconds"] for w in windows)
    server_cpu = [w["server_cpu_seconds"] for w in windows]
    threads = min(2, windows[0]["connections"])
    return {
        "requests": requests,
        "bad": sum(w["bad_status"] + w["errors"] for w in windows),
        "rps": statistics.median(w["rps"] for w in windows),
        "p50_ms": statistics.median(w["p50_ms"] for w in windows),
        "p99_ms": statistics.median(w["p99_ms"] for w in windows),
        "cpu_ms": (
            1000 * sum(server_cpu) / requests if None not in server_cpu and requests else None
        ),
        "server_busy": sum(server_cpu) / seconds if None not in server_cpu else None,
        # Of the threads wrk ran: at CLIENT_BOUND, wrk limited the rate.
        "client_busy": sum(w["client_cpu_seconds"] for w in windows) / seconds / threads,
    }


def summarise(result: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    groups: dict[tuple[str, int], dict[str, list[dict[str, Any]]]] = {}
    for w in result["windows"]:
        groups.setdefault((w["endpoint"], w["connections"]), {}).setdefault(w["server"], []).append(
            w
        )
    for (name, connections), by_server in groups.items():
        rows.append(
            {
                "endpoint": name,
                "connections": connections,
                "vidgate": combined(by_server["vidgate"]),
                "bare": combined(by_server["bare"]),
            }
        )
    return rows


def aims(rows: list[dict[str, Any]]) -> list[str]:
    lines = []
    by_name = {endpoint.name: endpoint for endpoint in ENDPOINTS}
    for row in rows:
        endpoint, vid, bare = by_name[row["endpoint"]], row["vidgate"], row["bare"]
        where = f"{endpoint.title.split(' (')[0]} at {row['connections']} connection(s)"
        if endpoint.aim == "read":
            share = vid["rps"] / bare["rps"] if bare["rps"] else 0.0
            if bare["client_busy"] >= CLIENT_BOUND:
                verdict = "not judged: wrk limited the baseline"
            else:
                verdict = "met" if share >= READ_AIM else "NOT met"
            lines.append(
                f"- {where}: {share:.2f} of the bare endpoint's rate (aim >= {READ_AIM:g}), "
                f"CPU per request {ratio(bare['cpu_ms'], vid['cpu_ms'])} of vidgate's: {verdict}"
            )
        elif endpoint.aim == "create" and row["connections"] == CREATE_AIM_CONNECTIONS:
            met = vid["rps"] >= CREATE_AIM_RPS and vid["p99_ms"] < CREATE_AIM_P99_MS
            lines.append(
                f"- {where}: {vid['rps']:.0f}/s, p99 {vid['p99_ms']:.1f} ms (aim >= "
                f"{CREATE_AIM_RPS:.0f}/s, p99 < {CREATE_AIM_P99_MS:.0f} ms): "
                f"{'met' if met else 'NOT met'}"
            )
    return lines


def render(result: dict[str, Any]) -> str:
    rows = summarise(result)
    titles = {endpoint.name: endpoint.title for endpoint in ENDPOINTS}
    table = []
    for row in rows:
        vid, bare = row["vidgate"], row["bare"]
        table.append(
            [
                titles[row["endpoint"]].replace("HOLD", f"{result['hold']:g}"),
                str(row["connections"]),
                f"{vid['requests']}/{bare['requests']}",
                f"{vid['bad']}/{bare['bad']}",
                fmt(vid["rps"], 0),
                fmt(bare["rps"], 0),
                ratio(vid["rps"], bare["rps"]),
                fmt(vid["p50_ms"], 2),
                fmt(vid["p99_ms"], 2),
                fmt(bare["p50_ms"], 2),
                fmt(bare["p99_ms"], 2),
                fmt(vid["cpu_ms"], 3),
                fmt(bare["cpu_ms"], 3),
                ratio(bare["cpu_ms"], vid["cpu_ms"]),
                f"{fmt(100 * vid['server_busy'], 0)}/{fmt(100 * bare['server_busy'], 0)}",
                f"{fmt(100 * vid['client_busy'], 0)}/{fmt(100 * bare['client_busy'], 0)}",
            ]
        )
    headers = [
        "Endpoint",
        "Connections",
        "Requests (vidgate/bare)",
        "Errors (vidgate/bare)",
        "vidgate req/s",
        "Bare req/s",
        "Ratio",
        "vidgate p50 (ms)",
        "vidgate p99 (ms)",
        "Bare p50 (ms)",
        "Bare p99 (ms)",
        "vidgate CPU (ms/req)",
        "Bare CPU (ms/req)",
        "CPU ratio",
        "Server CPU % (vidgate/bare)",
        "wrk CPU % (vidgate/bare)",
    ]
    title = (
        f"API under wrk: vidgate serve (workers 0, {result['database']}) against a bare "
        "Starlette endpoint answering the same bytes on the same server stack (uvicorn, "
        "vidgate's protocol over httptools, uvloop), "
        f"{result['rounds']} windows of {result['seconds']:g} s per server and level (medians)"
    )
    notes = [
        "",
        "Ratio: vidgate req/s / bare req/s. CPU ratio: bare CPU per request / vidgate's. "
        "Server CPU %: of one core, over the windows. wrk CPU %: of its threads (two, one at "
        f"1 connection); at {CLIENT_BOUND:.0%} wrk, not the server, set the rate. Errors: "
        "answers of 400 or more and socket errors.",
        "",
        "Aims (reported, not asserted):",
        *aims(rows),
    ]
    top = header(title, machine_line=result.get("machine"), date=result.get("date"))
    return top + "\n" + markdown_table(headers, table, right=2) + "\n" + "\n".join(notes)


def main() -> None:
    args = parse_args()
    require_wrk()
    with (
        workdir("vidgate-bench-api-", keep=args.keep) as work,
        fresh_database(args.database_url) as database_url,
    ):
        result = run(args, work, database_url)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(render(result))


if __name__ == "__main__":
    main()
