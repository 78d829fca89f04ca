"""Benchmark: reading tasks with 10 thousand and with 1 million tasks in the database.

Two databases are filled with bulk INSERTs (SQLAlchemy Core, migrated schema, the tasks spread
over a few accounts, ids in the SPEC format, a realistic mix: almost all finished, a fixed
number pending), then ``vidgate serve`` (no workers) runs on each at once and a separate
process drives ``GET /v1/tasks/{id}`` (random tasks, each with its owner's key) and
``GET /v1/tasks`` (the first page) at 8 clients, alternating between the two servers. The
baseline is the small database: the ratio is large / small. Then each store query the API,
the workers and the reaper run is timed in-process on both, with its query plan.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import random
import re
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import event, insert
from sqlalchemy.ext.asyncio import AsyncConnection

sys.path.insert(0, str(Path(__file__).resolve().parent))

from figures import fmt, header, markdown_table, ratio
from load import LoadResult, LoadSpec, drive
from processes import fresh_database, vidgate_serve, workdir
from vidgate.auth.accounts import AccountService
from vidgate.metrics import SETTLE_SECONDS
from vidgate.store import task_queries, task_rows
from vidgate.store.database import Database
from vidgate.store.tables import tasks
from vidgate.tasks.model import TASK_ID_PREFIX

MODEL, ENGINE = "veo3.1-fast", "preview"
DAY = 86400.0
ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"
SMALL_TASKS = 3
SMALL_KEY = "sk-bench-scale-small-0123456789abcdefghijklmnopqrstuvwxyz"
PENDING = 100  # pending tasks in either database: bounded by accounts x their limit, not by size
BATCH = 20_000
AIM = 1.2  # the large database within 20% of the small one
_COST = re.compile(r"\s*\(cost=[^)]*\)")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a few seconds: tiny sizes")
    parser.add_argument("--sizes", help="small,large task counts (default 10000,1000000)")
    parser.add_argument("--accounts", type=int, default=5, help="accounts the tasks spread over")
    parser.add_argument("--requests", type=int, help="measured GETs of one task, per round")
    parser.add_argument("--list-requests", type=int, help="measured list GETs, per round")
    parser.add_argument("--rounds", type=int, help="rounds, alternating the two servers")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--database-url", help="PostgreSQL URL (fresh databases are made on it)")
    parser.add_argument(
        "--analyze",
        action="store_true",
        help="run ANALYZE on SQLite after the fill (vidgate itself never does)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of Markdown")
    parser.add_argument("--keep", action="store_true", help="keep the work dir (logs)")
    args = parser.parse_args()
    quick = args.quick
    sizes = args.sizes or ("2000,20000" if quick else "10000,1000000")
    args.sizes = [int(s) for s in sizes.split(",")]
    args.requests = args.requests or (200 if quick else 2000)
    args.list_requests = args.list_requests or (100 if quick else 1000)
    args.rounds = args.rounds or (1 if quick else 2)
    return args


# --- filling -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Layout:
    """Where task ``i`` of ``size`` lives: its id, account and times, all derived from ``i``."""

    size: int
    accounts: list[tuple[str, str]]  # (account id, key)
    start: float
    span: float = 6 * DAY  # inside the 7-day retention: the reaper has nothing to purge
    small_account: str = ""  # an account with only SMALL_TASKS tasks

    def created(self, i: int) -> float:
        return self.start + self.span * i / self.size

    def task_id(self, i: int) -> str:
        # A bijection of i onto 8 base-36 characters: unique ids that look random.
        n, suffix = (i * 2654435761 + 12345) % 36**8, ""
        for _ in range(8):
            n, digit = divmod(n, 36)
            suffix += ALPHABET[digit]
        return f"{TASK_ID_PREFIX}{int(self.created(i))}-{suffix}"

    def account(self, i: int) -> tuple[str, str]:
        return self.accounts[i % len(self.accounts)]

    def status(self, i: int) -> str:
        if i >= self.size - PENDING:
            return "pending"  # the newest tasks are the queue
        return "failed" if i % 20 == 7 else "completed"

    def row(self, i: int) -> dict[str, Any]:
        created = self.created(i)
        status = self.status(i)
        done = status != "pending"
        task_id = self.task_id(i)
        return {
            "id": task_id,
            "account_id": self.account(i)[0],
            "api_key_id": None,
            "model": MODEL,
            "engine": ENGINE,
            "status": status,
            "progress": 100 if status == "completed" else 0,
            "prompt": f"A red fox in the snow, take {i}",
            "aspect_ratio": "16:9",
            "image_keys": [],
            "callback_url": None,
            "extra": {},
            "user_group": "default",
            "credits_cents": 2570,
            "estimated_time": 60,
            "created_at": created,
            "updated_at": created + 60 if done else created,
            "started_at": created + 1 if done else None,
            "finished_at": created + 60 if done else None,
            "attempt": 1 if done else 0,
            "cancel_requested": False,
            "available_at": created,
            "retries": 0,
            "result_key": f"results/{task_id}-1.mp4" if status == "completed" else None,
            "error_code": "generation_failed_no_content" if status == "failed" else None,
            "error_message": "The engine made no video." if status == "failed" else None,
        }


def sqlite_url(data_dir: Path) -> str:
    return f"sqlite+aiosqlite:///{(data_dir / 'vidgate.db').resolve()}"


async def fill(
    url: str, size: int, account_count: int, now: float, *, analyze: bool = False
) -> tuple[Layout, float]:
    """Migrate, make the accounts (each with a known key), insert ``size`` tasks."""
    db = Database(url)
    try:
        await db.migrate()
        service = AccountService(db)
        accounts = []
        for a in range(account_count):
            key = f"sk-bench-scale-{a:02d}-0123456789abcdefghijklmnopqrstuvwxyz"
            made = await service.create_account(f"bench-{a}", credits=Decimal(1000), key=key)
            accounts.append((made.account_id, key))
        layout = Layout(size, accounts, start=now - 6 * DAY - 60)
        started = time.perf_counter()
        for first in range(0, size, BATCH):
            rows = [layout.row(i) for i in range(first, min(size, first + BATCH))]
            async with db.write() as conn:
                await conn.execute(insert(tasks), rows)
        # One more account with only a few (finished) tasks among everyone else's.
        small = await service.create_account("bench-small", key=SMALL_KEY)
        rows = [
            {**layout.row(i), "id": layout.task_id(size + i), "account_id": small.account_id}
            for i in range(SMALL_TASKS)
        ]
        async with db.write() as conn:
            await conn.execute(insert(tasks), rows)
        layout = dataclasses.replace(layout, small_account=small.account_id)
        # vidgate never runs ANALYZE on SQLite, so by default neither does the benchmark: the
        # planner's statistics change plans (see --analyze). PostgreSQL's autovacuum always
        # gathers them, so there the benchmark does too.
        if db.is_sqlite:
            if analyze:
                async with db.write() as conn:
                    await conn.exec_driver_sql("ANALYZE")
        else:
            async with db.engine.connect() as conn:
                await conn.execution_options(isolation_level="AUTOCOMMIT")
                await conn.exec_driver_sql("ANALYZE")
        return layout, time.perf_counter() - started
    finally:
        await db.close()


# --- the store's queries, timed and explained ----------------------------------------------

Query = Callable[[AsyncConnection], Awaitable[Any]]


def store_queries(layout: Layout, now: float) -> list[tuple[str, Query, bool]]:
    """(what, the store call, whether it writes) for the queries hot paths run."""
    account, _ = layout.account(layout.size // 2)
    some = layout.task_id(layout.size // 2)
    owner = layout.account(layout.size // 2)[0]
    last_pending = layout.task_id(layout.size - 1)

    async def queue_position(conn: AsyncConnection) -> Any:
        task = await task_rows.get_task(conn, last_pending)
        assert task is not None
        return await task_queries.queue_position(conn, task)

    return [
        (
            "get_task (GET /v1/tasks/{id})",
            lambda c: task_rows.get_task(c, some, account_id=owner),
            False,
        ),
        (
            "list_tasks, first page (GET /v1/tasks)",
            lambda c: task_queries.list_tasks(c, account, limit=21),
            False,
        ),
        (
            "list_tasks, status=completed",
            lambda c: task_queries.list_tasks(c, account, limit=21, status="completed"),
            False,
        ),
        (
            "list_tasks, status=pending",
            lambda c: task_queries.list_tasks(c, account, limit=21, status="pending"),
            False,
        ),
        (
            f"list_tasks, status=completed, an account with {SMALL_TASKS} tasks",
            lambda c: task_queries.list_tasks(
                c, layout.small_account, limit=21, status="completed"
            ),
            False,
        ),
        ("queue_position, last pending (GET, create)", queue_position, False),
        ("count_active (create)", lambda c: task_rows.count_active(c, account), False),
        (
            "average_run_seconds (create)",
            lambda c: task_queries.average_run_seconds(c, MODEL),
            False,
        ),
        (
            "claim_task (worker, rolled back)",
            lambda c: task_rows.claim_task(c, worker="bench", now=now, lease_seconds=60),
            True,
        ),
        ("expired_leases (reaper)", lambda c: task_rows.expired_leases(c, now=now), False),
        ("overdue (reaper)", lambda c: task_rows.overdue(c, now=now), False),
        (
            "past_retention (reaper)",
            lambda c: task_queries.past_retention(c, before=now - 7 * DAY, limit=100),
            False,
        ),
        ("oldest_pending_created_at (/metrics)", task_queries.oldest_pending_created_at, False),
        ("unfinished_counts (/metrics)", task_queries.unfinished_counts, False),
        (
            "finished_counts, last 5 minutes (/metrics)",
            lambda c: task_queries.finished_counts(c, after=now - SETTLE_SECONDS),
            False,
        ),
    ]


@contextlib.contextmanager
def captured(db: Database) -> Iterator[list[tuple[str, Any]]]:
    statements: list[tuple[str, Any]] = []

    def record(conn: Any, cursor: Any, statement: str, params: Any, *rest: Any) -> None:
        statements.append((statement, params))

    event.listen(db.engine.sync_engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", record)


async def time_queries(url: str, layout: Layout, repeats: int, now: float) -> dict[str, Any]:
    """Median milliseconds of each store query, and the plan of its SQL."""
    db = Database(url)
    results: dict[str, Any] = {}
    try:
        for name, query, writes in store_queries(layout, now):
            times = []
            for _ in range(repeats + 1):  # the first warms the cache
                async with db.engine.connect() as conn:
                    transaction = await conn.begin()
                    started = time.perf_counter()
                    await query(conn)
                    times.append((time.perf_counter() - started) * 1000)
                    await transaction.rollback()
            plan = await explain(db, query, writes)
            results[name] = {"ms": statistics.median(times[1:]), "plan": plan}
    finally:
        await db.close()
    return results


async def explain(db: Database, query: Query, writes: bool) -> str:
    async with db.engine.connect() as conn:
        transaction = await conn.begin()
        with captured(db) as statements:
            await query(conn)
        plans = []
        for statement, params in statements:
            if writes and not statement.lstrip().upper().startswith("SELECT"):
                continue
            if db.is_sqlite:
                rows = await conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, params)
                plans.append("; ".join(str(row[-1]) for row in rows))
            else:
                rows = await conn.exec_driver_sql("EXPLAIN " + statement, params)
                lines = (_COST.sub("", str(row[0])).strip() for row in rows)
                plans.append("; ".join(line for line in lines if line))
        await transaction.rollback()
    return " // ".join(plans)


# --- the run -------------------------------------------------------------------------------


def targets(layout: Layout, count: int, seed: int) -> tuple[list[str], list[str]]:
    picks = random.Random(seed).sample(range(layout.size), min(count, layout.size))
    return [f"/v1/tasks/{layout.task_id(i)}" for i in picks], [layout.account(i)[1] for i in picks]


def merged(results: list[LoadResult]) -> LoadResult:
    cpu = [r.server_cpu_seconds for r in results]
    statuses: dict[int, int] = {}
    for r in results:
        for status, n in r.statuses.items():
            statuses[status] = statuses.get(status, 0) + n
    return LoadResult(
        requests=sum(r.requests for r in results),
        seconds=sum(r.seconds for r in results),
        latencies_ms=[ms for r in results for ms in r.latencies_ms],
        statuses=statuses,
        client_cpu_seconds=sum(r.client_cpu_seconds for r in results),
        server_cpu_seconds=None if None in cpu else sum(c for c in cpu if c is not None),
        errors=[e for r in results for e in r.errors],
    )


def run(args: argparse.Namespace, work: Path, urls: list[str | None]) -> dict[str, Any]:
    now = time.time()
    layouts, fill_seconds, db_urls = [], [], []
    for size, url in zip(args.sizes, urls, strict=True):
        data_dir = work / f"data-{size}"
        data_dir.mkdir(parents=True)
        db_url = url or sqlite_url(data_dir)
        layout, seconds = asyncio.run(fill(db_url, size, args.accounts, now, analyze=args.analyze))
        layouts.append(layout)
        fill_seconds.append(seconds)
        db_urls.append(db_url)
    servers = [
        vidgate_serve(work / f"data-{size}", url, workers=0)
        for size, url in zip(args.sizes, urls, strict=True)
    ]
    results: list[dict[str, list[LoadResult]]] = [{"get": [], "list": []} for _ in servers]
    try:
        for server in servers:
            server.start()
        for round_index in range(args.rounds):
            order = list(range(len(servers)))
            if round_index % 2:
                order.reverse()
            for s in order:
                layout, server = layouts[s], servers[s]
                paths, keys = targets(layout, min(args.requests, 5000), seed=round_index)
                get = LoadSpec(server.url, "GET", paths, keys, args.clients, args.requests)
                results[s]["get"].append(drive(get, server.pid))
                list_keys = [key for _, key in layout.accounts]
                listing = LoadSpec(
                    server.url, "GET", ["/v1/tasks"], list_keys, args.clients, args.list_requests
                )
                results[s]["list"].append(drive(listing, server.pid))
    finally:
        for server in servers:
            server.stop()
    repeats = 3 if args.quick else 7
    queries = [
        asyncio.run(time_queries(url, layout, repeats, now))
        for url, layout in zip(db_urls, layouts, strict=True)
    ]
    return {
        "database": "PostgreSQL" if urls[0] else "SQLite",
        "sizes": args.sizes,
        "accounts": args.accounts,
        "pending": PENDING,
        "clients": args.clients,
        "rounds": args.rounds,
        "fill_seconds": [round(s, 1) for s in fill_seconds],
        "analyzed": args.analyze or bool(urls[0]),
        "get": [merged(r["get"]).summary() for r in results],
        "list": [merged(r["list"]).summary() for r in results],
        "queries": queries,
    }


def render(result: dict[str, Any]) -> str:
    small, large = result["sizes"]
    rows = []
    for name, label in (("get", "GET /v1/tasks/{id}"), ("list", "GET /v1/tasks (first page)")):
        a, b = result[name]
        rows.append(
            [
                label,
                f"{a['requests']}/{b['requests']}",
                f"{a['non_2xx']}/{b['non_2xx']}",
                fmt(a["rps"], 0),
                fmt(b["rps"], 0),
                ratio(a["rps"], b["rps"]),
                fmt(a["p50_ms"], 2),
                fmt(b["p50_ms"], 2),
                ratio(b["p50_ms"], a["p50_ms"]),
                fmt(a["p99_ms"], 2),
                fmt(b["p99_ms"], 2),
                ratio(b["p99_ms"], a["p99_ms"]),
                fmt(a["server_cpu_ms_per_request"], 2),
                fmt(b["server_cpu_ms_per_request"], 2),
            ]
        )
    s, lg = f"{small:,}", f"{large:,}"
    table = markdown_table(
        [
            "Request",
            "Requests (small/large)",
            "Non-2xx",
            f"req/s {s}",
            f"req/s {lg}",
            "Throughput ratio small/large",
            f"p50 {s} (ms)",
            f"p50 {lg} (ms)",
            "p50 ratio",
            f"p99 {s} (ms)",
            f"p99 {lg} (ms)",
            "p99 ratio",
            f"CPU {s} (ms/req)",
            f"CPU {lg} (ms/req)",
        ],
        rows,
        right=1,
    )
    query_rows = []
    q_small, q_large = result["queries"]
    for name in q_small:
        a, b = q_small[name]["ms"], q_large[name]["ms"]
        query_rows.append(
            [name, fmt(a, 3), fmt(b, 3), ratio(b, a), q_large[name]["plan"].replace("|", "/")]
        )
    queries = markdown_table(
        ["Store query", f"{s} (ms)", f"{lg} (ms)", "Ratio", f"Plan at {lg}"],
        query_rows,
        1,
        text=[4],
    )
    title = (
        f"Reading tasks with {s} and {lg} tasks in the database ({result['database']}; "
        f"{result['accounts']} accounts, {result['pending']} pending tasks, the rest finished; "
        f"{result['clients']} clients, {result['rounds']} round(s) alternating the two servers"
        f"{'; ANALYZE run' if result['analyzed'] else ''})"
    )
    get_small, get_large = result["get"]
    worst = max(
        get_large["p50_ms"] / get_small["p50_ms"], get_large["p99_ms"] / get_small["p99_ms"]
    )
    met = "met" if worst <= AIM else "NOT met"
    notes = [
        "",
        "Ratios are large / small for latency and small / large for throughput: 1.0 means the "
        "size of the table costs nothing.",
        f"Fill time (bulk INSERT, indexes included): {result['fill_seconds'][0]} s and "
        f"{result['fill_seconds'][1]} s.",
        f"Aim (reported, not asserted): GET of one task within {AIM - 1:.0%} at {lg} tasks: "
        f"worst latency ratio {worst:.2f}, {met}.",
        "",
        "Store queries, timed in-process (median), each in its own transaction:",
        "",
        queries,
    ]
    return header(title) + "\n" + table + "\n" + "\n".join(notes)


def main() -> None:
    args = parse_args()
    if len(args.sizes) != 2:
        raise SystemExit("--sizes takes two counts: small,large")
    with (
        workdir("vidgate-bench-scale-", keep=args.keep) as work,
        fresh_database(args.database_url) as small_url,
        fresh_database(args.database_url) as large_url,
    ):
        result = run(args, work, [small_url, large_url])
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(render(result))


if __name__ == "__main__":
    main()
