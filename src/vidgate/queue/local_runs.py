"""A worker's source of tasks on this process's database: the transitions' writer, the
process's signals and its file store (``queue.remote.RemoteRuns`` is the same over HTTP)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Collection
from pathlib import Path

from vidgate.engines.registry import ModelRegistry
from vidgate.media.files import FileStore
from vidgate.tasks import lifecycle
from vidgate.tasks.lifecycle import Crashed, HandedBack
from vidgate.tasks.model import Heartbeat, Task
from vidgate.tasks.signals import TaskSignals
from vidgate.tasks.transitions import TaskTransitions


class LocalRuns:
    """Every report names the attempt it comes from; one from a stale attempt answers None
    (or False) and changes nothing."""

    def __init__(
        self,
        transitions: TaskTransitions,
        signals: TaskSignals,
        files: FileStore,
        registry: ModelRegistry,
    ) -> None:
        self.transitions = transitions
        self.signals = signals
        self.files = files
        self.registry = registry

    async def claim(self, worker: str, engines: Collection[str] | None = None) -> Task | None:
        return await self.transitions.claim(worker, engines)

    async def idle(self, seconds: float) -> None:
        await self.signals.wakeup.wait(seconds)

    async def inputs(self, task: Task, workdir: Path) -> list[Path]:
        return [await self._input(key, workdir) for key in task.image_keys]

    async def _input(self, key: str, workdir: Path) -> Path:
        # At its key's own path: the input URLs some engines send are derived from it.
        local = workdir / key
        if not await asyncio.to_thread(self.files.download_to, key, local):
            raise FileNotFoundError(f"input file {key} is missing")
        return local

    async def heartbeat(self, task: Task, progress: int | None = None) -> Heartbeat:
        return await self.transitions.heartbeat(task, progress)

    async def complete(self, task: Task, output: Path) -> Task | None:
        """The finished task (completed, or failed when it was cancelled meanwhile); None
        when this attempt no longer holds it."""
        return (await self.transitions.complete(task, output)).done

    async def fail(self, task: Task, code: str, message: str) -> Task | None:
        event = lifecycle.failure(task.attempt, code, message)
        return (await self.transitions.record(task, event)).done

    async def retry_or_fail(self, task: Task, reason: str) -> None:
        await self.transitions.record(task, Crashed(task.attempt, reason))

    async def hand_back(self, task: Task) -> bool:
        """Return a held task to the queue without using up an attempt (graceful shutdown)."""
        return (await self.transitions.record(task, HandedBack(task.attempt))).written

    def track(self, task_id: str, cancelled: threading.Event) -> None:
        self.signals.track(task_id, cancelled)

    def untrack(self, task_id: str) -> None:
        self.signals.untrack(task_id)
