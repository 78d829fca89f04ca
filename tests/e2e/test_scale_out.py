"""Scale-out for real: two API processes on one PostgreSQL database, three remote workers,
300 tasks with HTTPS callbacks, a worker killed and an API restarted during the run.

Every task must complete exactly once (one settlement), every callback must arrive, and every
account's ledger must balance.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy.engine import make_url

from support import (
    HookReceiver,
    RemoteWorkerProcess,
    ServerProcess,
    loopback_receiver,
    wait_until,
)
from vidgate.media.probe import probe

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

TASKS = 300
ACCOUNTS = 3
PRICE_CENTS = 2570  # veo3.1-fast in the packaged registry
# A stand-in for a GPU host: the real remote-worker loop with an engine that takes 0.4 s.
FAST_WORKER = [str(Path(__file__).parents[1] / "fast_worker.py"), "--seconds", "0.4"]


def query(url: str, sql: str) -> list[Any]:
    async def go() -> list[Any]:
        dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        conn = await asyncpg.connect(dsn)
        try:
            return list(await conn.fetch(sql))
        finally:
            await conn.close()

    return asyncio.run(go())


def test_two_apis_three_workers_300_tasks_survive_a_kill_and_a_restart(
    tmp_path: Path, postgres_url: str
) -> None:
    with loopback_receiver(tmp_path) as (hooks, ca_file):
        env = {
            "VIDGATE_DATABASE_URL": postgres_url,
            "VIDGATE_WORKERS": "0",
            "VIDGATE_LEASE_SECONDS": "10",
            "VIDGATE_RATE_LIMIT_PER_MINUTE": "0",
            "VIDGATE_MAX_ACTIVE_TASKS": "0",
            "VIDGATE_EGRESS_ALLOW": f"127.0.0.1:{hooks.port}",
            "VIDGATE_EGRESS_CA_BUNDLE": str(ca_file),
        }
        # Both APIs share one data dir: the files (results) are shared as on a network disk.
        apis = [ServerProcess(tmp_path / "data", env) for _ in range(2)]
        workers: list[RemoteWorkerProcess] = []
        try:
            for api in apis:
                api.start()
            _run(apis, workers, hooks, tmp_path, postgres_url)
        finally:
            for worker in workers:
                worker.stop(timeout=30)
            for api in apis:
                api.stop()


def _run(
    apis: list[ServerProcess],
    workers: list[RemoteWorkerProcess],
    hooks: HookReceiver,
    tmp_path: Path,
    url: str,
) -> None:
    keys = []
    with apis[0].client() as admin:
        for index in range(ACCOUNTS):
            made = admin.post(
                "/admin/accounts", json={"name": f"tenant-{index}", "credits": "5000"}
            )
            assert made.status_code == 200, made.text
            keys.append(made.json()["key"])
        tokens = []
        for index in range(3):
            made = admin.post("/admin/worker-tokens", json={"name": f"gpu-{index}"})
            tokens.append(made.json()["token"])
    for index, token in enumerate(tokens):
        worker = RemoteWorkerProcess(
            tmp_path / f"gpu-{index}", apis[index % 2].url, token, program=FAST_WORKER
        )
        worker.start()
        workers.append(worker)

    callback = f"https://127.0.0.1:{hooks.port}/hook"

    def create(number: int) -> tuple[str, int]:
        api = apis[number % 2]
        account = number % ACCOUNTS
        with httpx.Client(
            base_url=api.url, headers={"Authorization": f"Bearer {keys[account]}"}, timeout=30
        ) as http:
            made = http.post(
                "/v1/videos/generations",
                json={"model": "veo3.1-fast", "prompt": f"task {number}", "callback_url": callback},
            )
        assert made.status_code == 200, made.text
        return made.json()["id"], account

    with ThreadPoolExecutor(4) as pool:
        created = list(pool.map(create, range(TASKS)))
    task_ids = {task_id for task_id, _ in created}
    assert len(task_ids) == TASKS

    def completed() -> int:
        [row] = query(url, "SELECT count(*) AS n FROM tasks WHERE status = 'completed'")
        return int(row["n"])

    # A worker dies mid-task (SIGKILL: no hand-back; the lease must run out) ...
    wait_until(lambda: completed() >= TASKS // 5, "a fifth of the tasks", timeout=300)
    victim = workers[0]
    wait_until(
        lambda: victim.log().rfind("claimed from the server") > victim.log().rfind("delivered"),
        "the victim to be inside a task",
        timeout=30,
    )
    victim.kill()
    # ... and an API restarts with its workers' tasks in flight.
    wait_until(lambda: completed() >= TASKS * 2 // 5, "two fifths of the tasks", timeout=300)
    apis[1].stop()
    apis[1].start()

    wait_until(lambda: completed() == TASKS, "every task to complete", timeout=600)

    # Exactly once: every task completed with one capture, no release, no second settlement.
    rows = query(url, "SELECT id, status, attempt, result_key FROM tasks")
    assert {row["id"] for row in rows} == task_ids
    assert all(row["status"] == "completed" for row in rows)
    settles = query(
        url, "SELECT task_id, kind FROM ledger_entries WHERE phase = 'settle' ORDER BY id"
    )
    assert Counter(row["task_id"] for row in settles) == Counter(dict.fromkeys(task_ids, 1))
    assert {row["kind"] for row in settles} == {"capture"}

    # Every account's ledger balances: the balance is the sum of its entries, and each paid
    # exactly its completed tasks.
    balances = query(
        url,
        "SELECT a.name, a.balance_cents, COALESCE(SUM(l.amount_cents), 0) AS total "
        "FROM accounts a LEFT JOIN ledger_entries l ON l.account_id = a.id "
        "GROUP BY a.id, a.name, a.balance_cents",
    )
    per_account = Counter(account for _, account in created)
    for row in balances:
        assert row["balance_cents"] == row["total"], row
        if row["name"].startswith("tenant-"):
            index = int(row["name"].split("-")[1])
            assert row["balance_cents"] == 500000 - per_account[index] * PRICE_CENTS, row

    # Every callback arrives (at least once; receivers deduplicate on webhook-id).
    def delivered() -> dict[str, dict[str, Any]]:
        with hooks.lock:
            seen = {hook.headers["webhook-id"]: hook for hook in hooks.hooks}
        bodies = {json.loads(hook.body)["id"]: json.loads(hook.body) for hook in seen.values()}
        return bodies if set(bodies) == task_ids else {}

    bodies = wait_until(delivered, "every callback", timeout=120)
    assert all(body["status"] == "completed" for body in bodies.values())
    with hooks.lock:
        assert len({hook.headers["webhook-id"] for hook in hooks.hooks}) == TASKS

    # The results are real videos (a sample, through both APIs).
    for number, body in enumerate(list(bodies.values())[:10]):
        video = httpx.get(body["results"][0], timeout=30)
        assert video.status_code == 200
        path = tmp_path / f"result-{number}.mp4"
        path.write_bytes(video.content)
        assert probe(path).frame_count == 12
