"""The worker loop: claim the oldest pending task, run its engine, report, finish."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from vidgate.engines.base import (
    Engine,
    EngineFailure,
    EngineRefused,
    GenerationCancelled,
    GenerationContext,
    GenerationRequest,
)
from vidgate.engines.health import ENGINE_FAULTS, EngineHealth
from vidgate.media.files import FileStore
from vidgate.queue.runs import TaskRuns
from vidgate.tasks.model import Task, next_progress
from vidgate.tasks.service import CANCELLED_MESSAGE

log = logging.getLogger(__name__)

PROGRESS_INTERVAL = 1.0


@dataclass
class _Run:
    """What one run shares between the engine's thread and the reporting loop."""

    task: Task
    context: GenerationContext
    fraction: float = 0.0
    # Why the engine was told to stop: "cancelled" (by its owner or a deadline), "lost" (the
    # task was taken from this attempt), or "shutdown" (this process is stopping).
    stop_reason: str | None = None

    def progress(self, fraction: float) -> None:
        self.fraction = max(self.fraction, min(1.0, fraction))


class Worker:
    """One task at a time. Several workers may share a process; each has its own name."""

    def __init__(
        self,
        runs: TaskRuns,
        engines: Mapping[str, Engine],
        files: FileStore,
        *,
        name: str,
        scratch: Path,
        poll_interval: float = 0.5,
        health: EngineHealth | None = None,
    ) -> None:
        self.runs = runs
        self.service = runs.tasks
        self.engines = engines
        self.files = files
        self.name = name
        self.scratch = scratch
        self.poll_interval = poll_interval
        self.health = health or EngineHealth()
        self.current: _Run | None = None

    async def run(self, stop: asyncio.Event) -> None:
        log.info("worker %s started (engines: %s)", self.name, ", ".join(self.engines))
        while not stop.is_set():
            try:
                task = await self.runs.claim(self.name, engines=list(self.engines))
            except Exception:
                log.exception("worker %s: claim failed; retrying", self.name)
                task = None
            if task is None:
                await self.service.wakeup.wait(self.poll_interval)
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
        spec = self.service.registry.models.get(task.model)
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
        request = GenerationRequest(
            task_id=task.id,
            prompt=task.prompt,
            aspect_ratio="9:16" if task.aspect_ratio == "9:16" else "16:9",
            images=[self._input_path(key) for key in task.image_keys],
            options={},
        )
        with tempfile.TemporaryDirectory(dir=self.scratch) as workdir:
            output = Path(workdir) / "result.mp4"
            reporter = asyncio.create_task(self._report(run))
            self.service.running[task.id] = run.context.cancelled
            self.current = run
            try:
                await self._generate(task, request, output, run.context)
            except asyncio.CancelledError:
                # The process is stopping past its grace period: hand the task back, not lose
                # an attempt to an expired lease.
                run.context.cancelled.set()
                await asyncio.shield(self.runs.hand_back(task))
                raise
            except GenerationCancelled:
                log.info("task %s: engine stopped (%s)", task.id, run.stop_reason or "cancelled")
                if run.stop_reason == "shutdown":
                    await self.runs.hand_back(task)
                elif run.stop_reason != "lost":
                    await self.runs.fail(task, "request_cancelled", CANCELLED_MESSAGE)
                return
            except EngineFailure as failure:
                log.warning("task %s failed: %s (%s)", task.id, failure.code, failure.detail)
                await self.runs.fail(task, failure.code, failure.message)
                return
            except Exception as crash:
                log.exception("task %s: engine crashed", task.id)
                await self.runs.retry_or_fail(task, f"the engine crashed ({type(crash).__name__})")
                return
            finally:
                self.current = None
                self.service.running.pop(task.id, None)
                reporter.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await reporter
            await self.runs.complete(task, output)

    async def _report(self, run: _Run) -> None:
        """A heartbeat a second: it carries progress, renews the lease, and learns of cancels."""
        sent = run.task.progress
        while True:
            await asyncio.sleep(PROGRESS_INTERVAL)
            progress = next_progress(sent, run.fraction)
            try:
                beat = await self.runs.heartbeat(run.task, progress)
            except Exception:
                log.exception("task %s: heartbeat failed; will retry", run.task.id)
                continue
            sent = progress
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

    def _input_path(self, key: str) -> Path:
        path = self.files.path(key)
        if path is None:
            raise FileNotFoundError(f"input file {key} is missing")
        return path
