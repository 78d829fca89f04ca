"""The worker loop: claim the oldest pending task, run its engine, report, finish.

The loop does not know where tasks come from: a ``RunSource`` claims and reports, and decides
nothing (the lifecycle's writer does). ``queue.local_runs.LocalRuns`` is the database of this
process; ``queue.remote.RemoteRuns`` is an API server spoken to over HTTP, for workers on
hosts that never touch the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import tempfile
import threading
from collections.abc import Awaitable, Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar

from vidgate.engines.base import (
    Engine,
    EngineFailure,
    EngineRefused,
    GenerationCancelled,
    GenerationContext,
    GenerationRequest,
)
from vidgate.engines.health import ENGINE_FAULTS, EngineHealth
from vidgate.engines.registry import ModelRegistry
from vidgate.tasks.lifecycle import CANCELLED, next_progress
from vidgate.tasks.model import Heartbeat, Task

log = logging.getLogger(__name__)

PROGRESS_INTERVAL = 1.0
T = TypeVar("T")


class RunSource(Protocol):
    """Where a worker gets its tasks and where it reports on them.

    Every report names the task's attempt; a source refuses (``held=False``, or a None/False
    answer) a report from an attempt that no longer holds the task.
    """

    registry: ModelRegistry

    async def claim(self, worker: str, engines: Collection[str]) -> Task | None:
        """A task for this worker, or None. A source that waits for one (a long poll) ends
        the wait when the worker is told to stop."""
        ...

    async def idle(self, seconds: float) -> None:
        """Wait before the next claim, at most ``seconds`` (less when work may be waiting)."""
        ...

    async def inputs(self, task: Task, workdir: Path) -> list[Path]:
        """The task's input images as local files (copied into ``workdir`` when needed)."""
        ...

    async def heartbeat(self, task: Task, progress: int | None = None) -> Heartbeat: ...

    async def complete(self, task: Task, output: Path) -> object: ...

    async def fail(self, task: Task, code: str, message: str) -> object: ...

    async def retry_or_fail(self, task: Task, reason: str) -> None: ...

    async def hand_back(self, task: Task) -> bool: ...

    def track(self, task_id: str, cancelled: threading.Event) -> None:
        """While the task runs here, a cancel made in this process may set ``cancelled``."""
        ...

    def untrack(self, task_id: str) -> None: ...


@dataclass
class _Run:
    """What one run shares between the engine's thread and the reporting loop."""

    task: Task
    context: GenerationContext
    fraction: float = 0.0
    # Why the engine was told to stop: "cancelled" (by its owner or a deadline), "lost" (the
    # task was taken from this attempt), or "shutdown" (this process is stopping).
    stop_reason: str | None = None
    # The video is made and being stored (or uploaded): the finish decides now, not a heartbeat.
    delivering: bool = False

    def progress(self, fraction: float) -> None:
        self.fraction = max(self.fraction, min(1.0, fraction))


class Worker:
    """One task at a time. Several workers may share a process; each has its own name."""

    def __init__(
        self,
        runs: RunSource,
        engines: Mapping[str, Engine],
        *,
        name: str,
        scratch: Path,
        poll_interval: float = 0.5,
        health: EngineHealth | None = None,
    ) -> None:
        self.runs = runs
        self.engines = engines
        self.name = name
        self.scratch = scratch
        self.poll_interval = poll_interval
        self.health = health or EngineHealth()
        self.current: _Run | None = None

    async def run(self, stop: asyncio.Event) -> None:
        log.info("worker %s started (engines: %s)", self.name, ", ".join(self.engines))
        while not stop.is_set():
            try:
                task = await self.runs.claim(self.name, list(self.engines))
            except Exception:
                log.exception("worker %s: claim failed; retrying", self.name)
                task = None
            if task is None:
                await until_stopped(stop, self.runs.idle(self.poll_interval))
                continue
            if stop.is_set():
                # Shutdown began while this claim was in flight: give it straight back.
                await self.runs.hand_back(task)
                break
            try:
                await self.run_task(task)
            except Exception:
                # The task stays processing; its lease runs out and the reaper re-queues it.
                log.exception("task %s: the worker failed around the engine", task.id)
        log.info("worker %s stopped", self.name)

    def _candidates(self, task: Task) -> list[str]:
        """The engines that may run the task here, healthy ones first (failover order)."""
        spec = self.runs.registry.models.get(task.model)
        listed = spec.candidates if spec is not None else (task.engine,)
        usable = [name for name in listed if name in self.engines] or [task.engine]
        return self.health.order(usable)

    async def _generate(
        self, task: Task, request: GenerationRequest, output: Path, context: GenerationContext
    ) -> None:
        """Run the first engine that takes the job; move on only when one refuses it."""
        candidates = self._candidates(task)
        for index, name in enumerate(candidates):
            try:
                await self.engines[name].generate(request, output, context)
            except EngineRefused as refusal:
                self.health.failed(name)
                if index + 1 == len(candidates):
                    raise
                log.warning(
                    "task %s: engine %s refused it (%s); trying %s",
                    task.id,
                    name,
                    refusal.message,
                    candidates[index + 1],
                )
                continue
            except EngineFailure as failure:
                if failure.code in ENGINE_FAULTS:
                    self.health.failed(name)
                raise
            self.health.succeeded(name)
            return

    async def run_task(self, task: Task) -> None:
        run = _Run(task, GenerationContext(progress=lambda f: None))
        run.context.progress = run.progress
        with tempfile.TemporaryDirectory(dir=self.scratch) as workdir:
            request = GenerationRequest(
                task_id=task.id,
                prompt=task.prompt,
                aspect_ratio="9:16" if task.aspect_ratio == "9:16" else "16:9",
                images=await self.runs.inputs(task, Path(workdir)),
                options={},
            )
            output = Path(workdir) / "result.mp4"
            # The heartbeat runs until the result is in: an upload to a remote server may
            # outlast a lease.
            reporter = asyncio.create_task(self._report(run))
            self.runs.track(task.id, run.context.cancelled)
            self.current = run
            try:
                if await self._run_engine(run, request, output):
                    self.current = None
                    run.delivering = True
                    await self.runs.complete(task, output)
            except asyncio.CancelledError:
                # The process is stopping past its grace period: hand the task back, not lose
                # an attempt to an expired lease.
                run.context.cancelled.set()
                await asyncio.shield(self.runs.hand_back(task))
                raise
            finally:
                self.current = None
                self.runs.untrack(task.id)
                reporter.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await reporter

    async def _run_engine(self, run: _Run, request: GenerationRequest, output: Path) -> bool:
        """True when the engine made the video and this attempt still holds the task; on
        every other outcome the task is reported (failed, retried, handed back) here."""
        task = run.task
        try:
            await self._generate(task, request, output, run.context)
        except GenerationCancelled:
            log.info("task %s: engine stopped (%s)", task.id, run.stop_reason or "cancelled")
            if run.stop_reason == "shutdown":
                await self.runs.hand_back(task)
            elif run.stop_reason != "lost":
                await self.runs.fail(task, CANCELLED.code, CANCELLED.message)
            return False
        except EngineFailure as failure:
            log.warning("task %s failed: %s (%s)", task.id, failure.code, failure.detail)
            await self.runs.fail(task, failure.code, failure.message)
            return False
        except Exception as crash:
            log.exception("task %s: engine crashed", task.id)
            await self.runs.retry_or_fail(task, f"the engine crashed ({type(crash).__name__})")
            return False
        if run.stop_reason == "lost":
            log.info("task %s: the video is ready but this attempt lost the task", task.id)
            return False
        return True

    async def _report(self, run: _Run) -> None:
        """A heartbeat a second: it carries progress, renews the lease, and learns of cancels."""
        sent = run.task.progress
        while True:
            await asyncio.sleep(PROGRESS_INTERVAL)
            progress = next_progress(sent, run.fraction)
            try:
                beat = await self.runs.heartbeat(run.task, progress)
            except Exception as error:
                log.warning("task %s: heartbeat failed (%r); will retry", run.task.id, error)
                continue
            sent = progress
            if run.delivering:
                continue
            if not beat.held or beat.cancel_requested:
                run.stop_reason = "cancelled" if beat.held else "lost"
                log.warning("task %s: stopping the engine (%s)", run.task.id, run.stop_reason)
                run.context.cancelled.set()
                return

    def abandon(self) -> None:
        """Stop the running engine and hand its task back (the grace period is over)."""
        if self.current is not None and self.current.stop_reason is None:
            self.current.stop_reason = "shutdown"
            self.current.context.cancelled.set()


async def until_stopped(stop: asyncio.Event, work: Awaitable[T]) -> T | None:
    """``work``'s result, or None as soon as ``stop`` is set (``work`` is then cancelled)."""
    job = asyncio.ensure_future(work)
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({job, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
    if not job.done():
        job.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await job
        return None
    return job.result()
