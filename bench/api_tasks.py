"""What ``api.py`` measures against: tasks finished and pending, the answers the bare
endpoint replays, and the queue emptied between create windows."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from bare import Answer, recorded
from processes import BENCH_KEY, Process, vidgate_worker

CREATE_PATH = "/v1/videos/generations"
CREATE_BODY = {
    "model": "veo3.1-fast",
    "prompt": "A red fox trots through a snowy birch forest at dawn, slow tracking shot",
    "aspect_ratio": "16:9",
}
AUTH = {"Authorization": f"Bearer {BENCH_KEY}"}


@dataclass(frozen=True)
class Tasks:
    """What the setup left in the database: tasks waiting in the queue and finished ones."""

    pending: list[str]
    finished: list[str]


def prepare(server: Process, data_dir: Path, database_url: str | None, count: int) -> Tasks:
    """Finished tasks (a worker with the instant engine runs, then stops) and pending ones."""
    with httpx.Client(base_url=server.url, headers=AUTH, timeout=30) as client:

        def create() -> str:
            response = client.post(CREATE_PATH, json=CREATE_BODY)
            response.raise_for_status()
            task_id: str = response.json()["id"]
            return task_id

        finished = [create() for _ in range(count)]
        with vidgate_worker(data_dir, database_url).start() as worker:
            deadline = time.monotonic() + 120
            for task_id in finished:
                while client.get(f"/v1/tasks/{task_id}").json()["status"] != "completed":
                    if time.monotonic() > deadline or not worker.alive():
                        raise RuntimeError(f"the tasks did not complete:\n{worker.log()}")
                    time.sleep(0.1)
        pending = [create() for _ in range(count)]
    return Tasks(pending=pending, finished=finished)


def record(server: Process, tasks: Tasks) -> dict[str, Answer]:
    """vidgate's own answers, which the bare endpoint then serves byte for byte."""
    answers: dict[str, Answer] = {}
    with httpx.Client(base_url=server.url, headers=AUTH, timeout=30) as client:
        for task_id, holds in [(t, True) for t in tasks.pending] + [
            (t, False) for t in tasks.finished
        ]:
            path = f"/v1/tasks/{task_id}"
            response = client.get(path)
            answers[f"GET {path}"] = recorded(response.content, response.headers, holds=holds)
        created = client.post(CREATE_PATH, json=CREATE_BODY)
        answers[f"POST {CREATE_PATH}"] = recorded(created.content, created.headers)
    return answers


def drain(database_url: str, keep: Sequence[str]) -> None:
    """Fail, straight in the database, the pending tasks a create window made: each window then
    starts from the same queue (a create counts the tasks ahead of it, linear in the queue)."""
    from sqlalchemy import update
    from sqlalchemy.ext.asyncio import create_async_engine

    from vidgate.store.tables import tasks

    async def run() -> None:
        engine = create_async_engine(database_url)
        now = time.time()
        try:
            async with engine.begin() as conn:
                await conn.execute(
                    update(tasks)
                    .where(tasks.c.status == "pending", tasks.c.id.not_in(list(keep)))
                    .values(
                        status="failed",
                        error_code="bench_drained",
                        error_message="drained by the benchmark",
                        finished_at=now,
                        updated_at=now,
                    )
                )
        finally:
            await engine.dispose()

    asyncio.run(run())
