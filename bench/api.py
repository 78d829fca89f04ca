"""Benchmark: the API's read and create paths against a bare endpoint answering the same bytes.

``vidgate serve`` (no workers, so tasks stay pending and nothing renders) and a bare ASGI app
under the same uvicorn settings run as two processes; a third process drives keep-alive
load with httpx at 1, 8 and 32 concurrent clients. The ratio is vidgate's requests per second
over the bare endpoint's: what authentication, the database and the task logic cost.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bare import bare_server
from figures import fmt, header, markdown_table, ratio
from load import LoadResult, LoadSpec, drive
from processes import BENCH_KEY, fresh_database, vidgate_serve, workdir

CREATE_PATH = "/v1/videos/generations"
CREATE_BODY = {
    "model": "veo3.1-fast",
    "prompt": "A red fox trots through a snowy birch forest at dawn, slow tracking shot",
    "aspect_ratio": "16:9",
}
GET_AIM = 0.5  # vidgate's GET rate at least half the bare endpoint's
CREATE_AIM_RPS, CREATE_AIM_P99_MS, CREATE_AIM_CLIENTS = 300.0, 100.0, 8


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a few seconds: tiny counts")
    parser.add_argument("--clients", default="1,8,32", help="concurrency levels (comma list)")
    parser.add_argument("--get-requests", type=int, help="measured GETs per level")
    parser.add_argument("--create-requests", type=int, help="measured creates per level")
    parser.add_argument("--tasks", type=int, help="tasks the GETs read in turn")
    parser.add_argument("--database-url", help="PostgreSQL URL (a fresh database is made on it)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of Markdown")
    parser.add_argument("--keep", action="store_true", help="keep the work dir (logs)")
    args = parser.parse_args()
    args.levels = [int(c) for c in args.clients.split(",")]
    quick = args.quick
    args.get_requests = args.get_requests or (200 if quick else 3000)
    args.create_requests = args.create_requests or (100 if quick else 1500)
    args.tasks = args.tasks or (8 if quick else 64)
    return args


def run(args: argparse.Namespace, work: Path, database_url: str | None) -> dict[str, Any]:
    server = vidgate_serve(work / "data", database_url, workers=0).start()
    bare = None
    try:
        headers = {"Authorization": f"Bearer {BENCH_KEY}"}
        with httpx.Client(base_url=server.url, headers=headers, timeout=30) as client:
            created = [client.post(CREATE_PATH, json=CREATE_BODY) for _ in range(args.tasks)]
            for response in created:
                response.raise_for_status()
            ids = [response.json()["id"] for response in created]
            # The bare endpoint answers the very bytes vidgate answers.
            get_body = client.get(f"/v1/tasks/{ids[-1]}").content
        bare = bare_server(work, {"GET": get_body, "POST": created[-1].content}).start()
        get_paths = [f"/v1/tasks/{task_id}" for task_id in ids]
        rows: list[dict[str, Any]] = []
        made = args.tasks
        for index, clients in enumerate(args.levels):
            for endpoint, method, paths, total, body in (
                ("GET /v1/tasks/{id}", "GET", get_paths, args.get_requests, None),
                (
                    "POST /v1/videos/generations",
                    "POST",
                    [CREATE_PATH],
                    args.create_requests,
                    CREATE_BODY,
                ),
            ):
                results: dict[str, LoadResult] = {}
                # Alternate which goes first, so drift in the machine's load hits both alike.
                order = [("vidgate", server), ("bare", bare)]
                for name, target in order if index % 2 == 0 else order[::-1]:
                    spec = LoadSpec(
                        base_url=target.url,
                        method=method,
                        paths=paths,
                        keys=[BENCH_KEY],
                        concurrency=clients,
                        total=total,
                        body=body,
                    )
                    results[name] = drive(spec, target.pid)
                if method == "POST":
                    made += results["vidgate"].requests + clients * LoadSpec.warmup
                rows.append(
                    {
                        "endpoint": endpoint,
                        "clients": clients,
                        "vidgate": results["vidgate"].summary(),
                        "bare": results["bare"].summary(),
                        "pending_tasks_after": made if method == "POST" else None,
                    }
                )
        return {"rows": rows, "database": "PostgreSQL" if database_url else "SQLite"}
    finally:
        if bare is not None:
            bare.stop()
        server.stop()


def aims(rows: list[dict[str, Any]]) -> list[str]:
    lines = []
    for row in rows:
        vid, bare = row["vidgate"], row["bare"]
        if row["endpoint"].startswith("GET"):
            share = vid["rps"] / bare["rps"] if bare["rps"] else 0.0
            met = "met" if share >= GET_AIM else "NOT met"
            lines.append(
                f"- GET at {row['clients']} clients: {share:.0%} of the bare endpoint's rate "
                f"(aim >= {GET_AIM:.0%}): {met}"
            )
        elif row["clients"] == CREATE_AIM_CLIENTS:
            met = vid["rps"] >= CREATE_AIM_RPS and vid["p99_ms"] < CREATE_AIM_P99_MS
            lines.append(
                f"- create at {CREATE_AIM_CLIENTS} clients: {vid['rps']:.0f}/s, p99 "
                f"{vid['p99_ms']:.1f} ms (aim >= {CREATE_AIM_RPS:.0f}/s, p99 < "
                f"{CREATE_AIM_P99_MS:.0f} ms): {'met' if met else 'NOT met'}"
            )
    return lines


def render(result: dict[str, Any]) -> str:
    rows = []
    for row in result["rows"]:
        vid, bare = row["vidgate"], row["bare"]
        rows.append(
            [
                row["endpoint"],
                str(row["clients"]),
                str(vid["requests"]),
                f"{vid['non_2xx']}/{bare['non_2xx']}",
                fmt(vid["rps"], 0),
                fmt(bare["rps"], 0),
                ratio(vid["rps"], bare["rps"]),
                fmt(vid["p50_ms"], 2),
                fmt(vid["p99_ms"], 2),
                fmt(bare["p50_ms"], 2),
                fmt(bare["p99_ms"], 2),
                fmt(vid["server_cpu_ms_per_request"], 2),
                fmt(bare["server_cpu_ms_per_request"], 2),
                fmt(100 * vid["client_cpu_seconds"] / vid["seconds"], 0),
            ]
        )
    table = markdown_table(
        [
            "Endpoint",
            "Clients",
            "Requests",
            "Non-2xx (vidgate/bare)",
            "vidgate req/s",
            "Bare req/s",
            "Ratio",
            "vidgate p50 (ms)",
            "vidgate p99 (ms)",
            "Bare p50 (ms)",
            "Bare p99 (ms)",
            "vidgate CPU (ms/req)",
            "Bare CPU (ms/req)",
            "Client CPU (%)",
        ],
        rows,
        right=2,
    )
    title = (
        f"API throughput and latency, vidgate serve (workers 0, {result['database']}) against a "
        "bare ASGI endpoint answering the same bytes, same uvicorn settings, one process each"
    )
    pending = [r["pending_tasks_after"] for r in result["rows"] if r["pending_tasks_after"]]
    notes = [
        "",
        "Ratio: vidgate req/s / bare req/s. CPU: the server process's CPU time per request. "
        "Client CPU: the load driver's CPU time over the wall time (it shares the machine's "
        "cores with the server).",
        f"The account's pending tasks grew to about {pending[-1] if pending else 0} during the "
        "create runs (nothing renders).",
        "",
        "Aims (reported, not asserted):",
        *aims(result["rows"]),
    ]
    return header(title) + "\n" + table + "\n" + "\n".join(notes)


def main() -> None:
    args = parse_args()
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
