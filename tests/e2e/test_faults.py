"""Faults for real: workers killed or frozen mid-task, a server killed before it answers, SIGTERM.

Every test runs real processes on 127.0.0.1 over one SQLite file and reads that file directly
to see what the processes left behind: the task row (status, attempt, retries) and the ledger.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import signal
import socket
import sqlite3
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx
import pytest

from support import E2E_KEY, ServerProcess, WorkerProcess, wait_until
from vidgate.media.probe import probe

pytestmark = pytest.mark.slow


SEED_REQUEST = {"model": "veo3.1-fast", "prompt": "A cat playing piano"}
# No workers in the server: only the `vidgate worker` processes of a test render. A lease of
# 2 s (renewed every second) lets the reaper notice a dead or frozen worker within seconds.
SHORT_LEASE = {"VIDGATE_WORKERS": "0", "VIDGATE_LEASE_SECONDS": "2"}
NO_WORKERS = {"VIDGATE_WORKERS": "0"}


# --- waiting and reading the database ----------------------------------------------------------


@contextlib.contextmanager
def database(data_dir: Path) -> Iterator[sqlite3.Connection]:
    """A short-lived connection: no snapshot is held between two reads."""
    db = sqlite3.connect(data_dir / "vidgate.db", timeout=10)
    db.row_factory = sqlite3.Row
    try:
        yield db
    finally:
        db.close()


def task_row(data_dir: Path, task_id: str) -> dict[str, Any]:
    with database(data_dir) as db:
        row = db.execute("SELECT * FROM tasks WHERE id = ?", (task_id,)).fetchone()
    assert row is not None, f"no task {task_id} in the database"
    return dict(row)


def task_ids(data_dir: Path) -> list[str]:
    with database(data_dir) as db:
        return [row[0] for row in db.execute("SELECT id FROM tasks ORDER BY created_at")]


def ledger_kinds(data_dir: Path, task_id: str | None = None) -> list[str]:
    """The kinds of the task's ledger entries (of every task's, without one), sorted."""
    with database(data_dir) as db:
        if task_id is None:
            rows = db.execute("SELECT kind FROM ledger_entries WHERE task_id IS NOT NULL")
        else:
            rows = db.execute("SELECT kind FROM ledger_entries WHERE task_id = ?", (task_id,))
        return sorted(row[0] for row in rows)


def write_lock_is_free(data_dir: Path) -> bool:
    """Whether another process could start a writing transaction now."""
    db = sqlite3.connect(data_dir / "vidgate.db", timeout=0.2, isolation_level=None)
    try:
        db.execute("BEGIN IMMEDIATE")
        db.execute("ROLLBACK")
        return True
    except sqlite3.OperationalError as error:
        if "locked" not in str(error):
            raise
        return False
    finally:
        db.close()


# --- acting on the processes --------------------------------------------------------------------


def create_task(server: ServerProcess) -> str:
    with server.client() as client:
        created = client.post("/v1/videos/generations", json=SEED_REQUEST)
    assert created.status_code == 200, created.text
    task_id: str = created.json()["id"]
    return task_id


def wait_until_claimed(worker: WorkerProcess, task_id: str, attempt: int) -> None:
    """Until the worker logs the claim. The claim and its engine start run in one step of the
    worker's event loop after that line, so a signal handled after it finds the engine running.
    """
    line = f"task {task_id} claimed by {worker.name} (attempt {attempt})"
    wait_until(lambda: line in worker.log(), f"{worker.name} to claim {task_id}")


def freeze(worker: WorkerProcess, data_dir: Path) -> None:
    """SIGSTOP the worker at a moment it holds no SQLite write lock.

    A process frozen inside a write (a heartbeat, ~1 ms a second) would block every other
    writer for the busy timeout: SQLite's nature, not what these tests are about.
    """
    deadline = time.monotonic() + 30
    while True:
        worker.send(signal.SIGSTOP)
        wait_until(lambda: all_threads_stopped(worker.pid), f"{worker.name} to stop", 10)
        if write_lock_is_free(data_dir):
            return
        worker.send(signal.SIGCONT)
        assert time.monotonic() < deadline, "the worker never let go of the write lock"
        time.sleep(0.05)


def all_threads_stopped(pid: int) -> bool:
    """Whether every thread of the process is in state T (stopped by a signal), per /proc."""
    states = []
    for stat in Path(f"/proc/{pid}/task").glob("*/stat"):
        with contextlib.suppress(FileNotFoundError):  # a thread that just ended
            # The state follows the ")" that closes the command name.
            states.append(stat.read_text().rsplit(")", 1)[1].split()[0])
    return bool(states) and all(state == "T" for state in states)


def still_rendering(data_dir: Path, task_id: str, attempt: int) -> None:
    row = task_row(data_dir, task_id)
    if row["status"] != "processing":
        pytest.fail(f"the render ended before the fault reached it ({row['status']}): untested")
    assert row["attempt"] == attempt


def finished(data_dir: Path, task_id: str) -> dict[str, Any] | None:
    row = task_row(data_dir, task_id)
    return row if row["status"] in ("completed", "failed") else None


def result_of(server: ServerProcess, task_id: str, tmp_path: Path) -> tuple[str, Path]:
    """The task's result URL (as the API gives it) and the video downloaded from it."""
    with server.client() as client:
        task = client.get(f"/v1/tasks/{task_id}").json()
    assert task["status"] == "completed", task
    url: str = task["results"][0]
    response = httpx.get(url, timeout=30)
    assert response.status_code == 200
    target = tmp_path / f"{task_id}.mp4"
    target.write_bytes(response.content)
    return url, target


def assert_full_video(path: Path) -> None:
    info = probe(path)
    assert (info.codec, info.width, info.height, info.frame_count) == ("h264", 1280, 720, 192)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


P = TypeVar("P", bound=ServerProcess | WorkerProcess)


class Spawned:
    """The processes a test starts: whatever happens, workers are killed and servers stopped."""

    def __init__(self) -> None:
        self.processes: list[ServerProcess | WorkerProcess] = []

    def start(self, process: P) -> P:
        """Start ``process``, which is cleaned up after the test even if starting fails."""
        self.processes.append(process)
        process.start()
        return process

    def clean_up(self) -> None:
        for process in reversed(self.processes):
            if isinstance(process, WorkerProcess):
                process.kill()
            else:
                process.stop()


@pytest.fixture
def spawned() -> Iterator[Spawned]:
    processes = Spawned()
    yield processes
    processes.clean_up()


# --- the faults ---------------------------------------------------------------------------------


def test_task_of_a_killed_worker_is_finished_by_another_and_charged_once(
    tmp_path: Path, spawned: Spawned
) -> None:
    data = tmp_path / "data"
    server = spawned.start(ServerProcess(data, SHORT_LEASE))
    first = spawned.start(WorkerProcess(data, SHORT_LEASE))
    task_id = create_task(server)
    wait_until_claimed(first, task_id, attempt=1)
    freeze(first, data)
    still_rendering(data, task_id, attempt=1)
    first.kill()

    second = spawned.start(WorkerProcess(data, SHORT_LEASE))
    row = wait_until(lambda: finished(data, task_id), f"{task_id} to finish")
    assert row["status"] == "completed", row
    assert row["attempt"] == 2
    assert row["retries"] == 1  # the killed attempt counts
    assert row["result_key"] == f"results/{task_id}-2.mp4"
    assert f"task {task_id} claimed by {second.name} (attempt 2)" in second.log()
    assert_full_video(result_of(server, task_id, tmp_path)[1])
    assert ledger_kinds(data, task_id) == ["capture", "reserve"]


def test_frozen_worker_that_resumes_after_losing_its_lease_changes_nothing(
    tmp_path: Path, spawned: Spawned
) -> None:
    data = tmp_path / "data"
    server = spawned.start(ServerProcess(data, SHORT_LEASE))
    frozen = spawned.start(WorkerProcess(data, SHORT_LEASE))
    task_id = create_task(server)
    wait_until_claimed(frozen, task_id, attempt=1)
    freeze(frozen, data)
    still_rendering(data, task_id, attempt=1)

    rescuer = spawned.start(WorkerProcess(data, SHORT_LEASE))
    row = wait_until(lambda: finished(data, task_id), f"{task_id} to finish")
    assert row["status"] == "completed", row
    assert row["attempt"] == 2
    assert f"task {task_id} claimed by {rescuer.name} (attempt 2)" in rescuer.log()
    url, video = result_of(server, task_id, tmp_path)
    result_file = data / "files" / row["result_key"]
    before = digest(result_file)
    assert digest(video) == before

    frozen.send(signal.SIGCONT)
    # It learns at its next heartbeat that attempt 1 lost the task and stops the engine,
    # or, if the render ends first, its result is refused by the attempt fence.
    told = (
        f"task {task_id}: stopping the engine (lost)",
        f"task {task_id}: attempt 1 no longer holds it; result dropped",
    )
    scratch = data / "files" / "tmp"
    wait_until(
        lambda: any(line in frozen.log() for line in told) and not any(scratch.glob("*/work/*")),
        "the resumed worker to give the task up",
    )
    assert frozen.running(), frozen.log()  # it lives on, ready for more

    after = task_row(data, task_id)
    assert after["status"] == "completed"
    assert after["attempt"] == 2
    assert after["result_key"] == row["result_key"]
    assert after["finished_at"] == row["finished_at"]
    assert digest(result_file) == before
    assert not (data / "files" / "results" / f"{task_id}-1.mp4").exists()
    later_url, _ = result_of(server, task_id, tmp_path)
    assert urlsplit(later_url).path == urlsplit(url).path
    assert ledger_kinds(data, task_id) == ["capture", "reserve"]


def raw_create(port: int, key: str) -> bytes:
    body = json.dumps(SEED_REQUEST).encode()
    head = (
        "POST /v1/videos/generations HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{port}\r\n"
        f"Authorization: Bearer {E2E_KEY}\r\n"
        "Content-Type: application/json\r\n"
        f"Idempotency-Key: {key}\r\n"
        f"Content-Length: {len(body)}\r\n"
        "\r\n"
    )
    return head.encode() + body


def test_create_retried_after_the_server_was_killed_before_answering_is_replayed(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    key = f"k-{uuid.uuid4()}"
    servers = [ServerProcess(data, NO_WORKERS)]
    try:
        killed = servers[0]
        killed.start()
        # The client sends the whole request and never reads the answer: the server dies
        # as soon as the task is in the database.
        with socket.create_connection(("127.0.0.1", killed.port), timeout=10) as connection:
            connection.sendall(raw_create(killed.port, key))
            created = wait_until(lambda: task_ids(data), "the task row", timeout=30)
            assert killed.process is not None
            killed.process.kill()
            killed.process.wait()
        assert len(created) == 1

        restarted = ServerProcess(data, NO_WORKERS)
        servers.append(restarted)
        restarted.start()
        with restarted.client() as client:
            replay = client.post(
                "/v1/videos/generations", json=SEED_REQUEST, headers={"Idempotency-Key": key}
            )
            assert replay.status_code == 200, replay.text
            assert replay.headers.get("Idempotent-Replayed") == "true"
            assert replay.json()["id"] == created[0]
            assert replay.json()["status"] == "pending"
            assert task_ids(data) == created
            assert ledger_kinds(data) == ["reserve"]

            other_body = client.post(
                "/v1/videos/generations",
                json={**SEED_REQUEST, "prompt": "A dog playing drums"},
                headers={"Idempotency-Key": key},
            )
            assert other_body.status_code == 422, other_body.text
            assert other_body.json()["error"]["code"] == "idempotency_key_reused"
            assert task_ids(data) == created

            fresh = client.post(
                "/v1/videos/generations",
                json=SEED_REQUEST,
                headers={"Idempotency-Key": f"k-{uuid.uuid4()}"},
            )
            assert fresh.status_code == 200, fresh.text
            assert "Idempotent-Replayed" not in fresh.headers
            assert fresh.json()["id"] != created[0]
        assert task_ids(data) == [*created, fresh.json()["id"]]
        assert ledger_kinds(data) == ["reserve", "reserve"]
    finally:
        for server in servers:
            if server.process is not None and server.process.poll() is None:
                server.process.kill()
                server.process.wait()


def test_sigterm_without_grace_hands_the_task_back_without_using_an_attempt(
    tmp_path: Path, spawned: Spawned
) -> None:
    data = tmp_path / "data"
    server = spawned.start(ServerProcess(data, NO_WORKERS))
    stopping = spawned.start(WorkerProcess(data, {"VIDGATE_SHUTDOWN_GRACE_SECONDS": "0"}))
    task_id = create_task(server)
    wait_until_claimed(stopping, task_id, attempt=1)
    stopping.send(signal.SIGTERM)
    code = stopping.wait(timeout=15)
    assert code is not None, f"no exit by itself after SIGTERM:\n{stopping.log()}"
    assert code == 0, stopping.log()
    assert f"task {task_id} handed back to the queue" in stopping.log()
    row = task_row(data, task_id)
    assert (row["status"], row["attempt"], row["retries"]) == ("pending", 1, 0)
    assert row["lease_owner"] is None

    successor = spawned.start(WorkerProcess(data, {}))
    row = wait_until(lambda: finished(data, task_id), f"{task_id} to finish")
    assert row["status"] == "completed", row
    assert (row["attempt"], row["retries"]) == (2, 0)
    assert f"task {task_id} claimed by {successor.name} (attempt 2)" in successor.log()
    assert_full_video(result_of(server, task_id, tmp_path)[1])
    assert ledger_kinds(data, task_id) == ["capture", "reserve"]


def test_sigterm_with_grace_lets_the_running_render_finish_then_exits(
    tmp_path: Path, spawned: Spawned
) -> None:
    data = tmp_path / "data"
    server = spawned.start(ServerProcess(data, NO_WORKERS))
    worker = spawned.start(WorkerProcess(data, {"VIDGATE_SHUTDOWN_GRACE_SECONDS": "30"}))
    task_id = create_task(server)
    wait_until_claimed(worker, task_id, attempt=1)
    still_rendering(data, task_id, attempt=1)
    worker.send(signal.SIGTERM)
    assert worker.wait(timeout=60) == 0, worker.log()

    log = worker.log()
    stopping = log.index("vidgate worker: stopping")
    assert "shutting down: 1 task(s) get 30 s to finish" in log
    assert log.index(f"task {task_id} completed") > stopping  # SIGTERM came mid-render
    assert "handed back" not in log
    row = task_row(data, task_id)
    assert row["status"] == "completed", row
    assert (row["attempt"], row["retries"]) == (1, 0)
    assert_full_video(result_of(server, task_id, tmp_path)[1])
    assert ledger_kinds(data, task_id) == ["capture", "reserve"]
