"""The one writer of a task's lifecycle: it claims, renews leases, and applies the decisions
of ``tasks.lifecycle``, each as a compare-and-set on the attempt the decision was made for,
with the settlement and the callback's outbox row in the same transaction, and the signals
(watchers, workers, the dispatcher, a running engine's stop) after the commit.

The worker loop, the sweeps, the remote-worker gateway and the API's cancel all come here;
none of them decides or writes a status change itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncConnection

from vidgate.billing import charges
from vidgate.engines.registry import ModelRegistry
from vidgate.media.files import FileStore
from vidgate.store import callback_rows, task_rows
from vidgate.store.database import Database
from vidgate.tasks import lifecycle
from vidgate.tasks.lifecycle import Decision, Event, FlagCancel, Limits, Requeue, Result
from vidgate.tasks.model import Heartbeat, Task
from vidgate.tasks.presenter import TaskPresenter
from vidgate.tasks.signals import TaskSignals
from vidgate.webhooks.signing import new_message_id

log = logging.getLogger(__name__)

# A decision whose compare-and-set missed is made again on the task as it is now; a task that
# keeps changing under the writer this often is left to the next event or sweep.
MAX_DECISIONS = 4


@dataclass(frozen=True)
class Outcome:
    """A decision and the task after it: as written, or as stored when nothing was written
    (None when the task is gone)."""

    decision: Decision
    task: Task | None
    written: bool

    @property
    def done(self) -> Task | None:
        """The task as this decision wrote it; None when nothing was written."""
        return self.task if self.written else None


@dataclass
class _Effects:
    """What to signal once the transaction that wrote it has committed."""

    changed: list[str] = field(default_factory=list)
    stopped: list[str] = field(default_factory=list)
    callbacks: bool = False
    wakeup: bool = False


class DecisionBatch:
    """Decisions applied in one transaction, their signals kept for after its commit. A
    compare-and-set that misses is not retried here: ``record`` decides again on the task as
    it is now, and a sweep leaves it to the next sweep."""

    def __init__(self, writer: TaskTransitions, conn: AsyncConnection, now: float) -> None:
        self._writer = writer
        self.conn = conn
        self.now = now
        self.effects = _Effects()

    async def apply(self, task: Task, event: Event) -> Outcome:
        decision = lifecycle.decide(task, event, now=self.now, limits=self._writer.limits(task))
        written = await self._writer.write(self.conn, task, decision, self.now, self.effects)
        return Outcome(decision, written or task, written is not None)


class TaskTransitions:
    def __init__(
        self,
        db: Database,
        registry: ModelRegistry,
        files: FileStore,
        presenter: TaskPresenter,
        signals: TaskSignals,
        *,
        clock: Callable[[], float],
        lease_seconds: float = 60.0,
    ) -> None:
        self.db = db
        self.registry = registry
        self.files = files
        self.presenter = presenter
        self.signals = signals
        self.clock = clock
        self.lease_seconds = lease_seconds

    def limits(self, task: Task | str) -> Limits:
        """The rules of the task's model (defaults for a model no longer in the registry)."""
        spec = self.registry.models.get(task if isinstance(task, str) else task.model)
        if spec is None:
            return Limits()
        return Limits(max_attempts=spec.max_attempts, max_run_seconds=float(spec.max_run_seconds))

    # --- holding a task -------------------------------------------------------------------

    async def claim(
        self,
        worker: str,
        engines: Collection[str] | None = None,
        *,
        models: Collection[str] | None = None,
    ) -> Task | None:
        """The oldest pending task (of ``engines``, of ``models``), now this worker's attempt."""
        async with self.db.write() as conn:
            task = await task_rows.claim_task(
                conn,
                worker=worker,
                now=self.clock(),
                lease_seconds=self.lease_seconds,
                engines=engines,
                max_run_seconds=lambda model: self.limits(model).max_run_seconds,
                models=models,
            )
        if task is not None:
            log.info("task %s claimed by %s (attempt %d)", task.id, worker, task.attempt)
            self.signals.changed(task.id)
        return task

    async def heartbeat(self, task: Task, progress: int | None = None) -> Heartbeat:
        """Renew the attempt's lease (and raise progress); says whether it still holds the
        task and whether its owner asked to cancel."""
        async with self.db.write() as conn:
            beat = await task_rows.heartbeat(
                conn,
                task.id,
                task.attempt,
                now=self.clock(),
                lease_seconds=self.lease_seconds,
                progress=progress,
            )
        if progress is not None:
            self.signals.changed(task.id)
        return beat

    async def complete(self, task: Task, output: Path) -> Outcome:
        """Store the attempt's video, then record it; the file goes again when the task did
        not end completed with it (cancelled meanwhile, or another attempt holds it now)."""
        # One file per attempt: a late attempt never overwrites or deletes the winner's video.
        key = f"results/{task.id}-{task.attempt}.mp4"
        await asyncio.to_thread(self.files.put_file, key, output)
        outcome = await self.record(task, Result(task.attempt, key))
        if outcome.task is None or outcome.task.result_key != key:
            await asyncio.to_thread(self.files.delete_prefix, key)
        return outcome

    # --- applying decisions ---------------------------------------------------------------

    async def record(self, task: Task, event: Event) -> Outcome:
        """Decide what ``event`` does to ``task`` and write it; when the task changed since
        the caller read it, decide again on the task as it is now."""
        async with self.db.write() as conn:
            batch = DecisionBatch(self, conn, self.clock())
            outcome = await batch.apply(task, event)
            for _ in range(MAX_DECISIONS - 1):
                if outcome.written or not _writes(outcome.decision):
                    break
                current = await task_rows.get_task(conn, task.id)
                if current is None:
                    outcome = Outcome(outcome.decision, None, False)
                    break
                task = current
                outcome = await batch.apply(task, event)
        self.announce(batch.effects)
        attempt = getattr(event, "attempt", None)
        if attempt is not None and isinstance(outcome.decision, lifecycle.Stale):
            what = "result" if isinstance(event, Result) else "report"
            log.warning(
                "task %s: attempt %d no longer holds it; %s dropped (%s)",
                task.id,
                attempt,
                what,
                outcome.decision.why,
            )
        if not outcome.written and _writes(outcome.decision):
            log.warning("task %s: it kept changing under %r; nothing written", task.id, event)
        return outcome

    @contextlib.asynccontextmanager
    async def sweep(self) -> AsyncIterator[DecisionBatch]:
        """A transaction for many decisions; their signals go out after it commits."""
        async with self.db.write() as conn:
            batch = DecisionBatch(self, conn, self.clock())
            yield batch
        self.announce(batch.effects)

    async def write(
        self,
        conn: AsyncConnection,
        task: Task,
        decision: Decision,
        now: float,
        effects: _Effects,
    ) -> Task | None:
        """Apply ``decision`` in ``conn``'s transaction: the task after it, or None when its
        compare-and-set found the task changed (or the decision writes nothing)."""
        match decision:
            case lifecycle.Finish():
                done = await self._finish(conn, task, decision, now)
                if done is not None:
                    log.info("task %s %s", task.id, _ending(done))
                    effects.stopped.append(done.id)
                    effects.callbacks |= done.callback_url is not None
            case Requeue():
                done = await task_rows.release_task(
                    conn,
                    task.id,
                    decision.attempt,
                    now=now,
                    only_expired=decision.only_expired,
                    counts=decision.counts,
                    available_at=decision.available_at,
                )
                if done is not None:
                    _log_requeue(task, decision, now)
                    effects.wakeup = True
            case FlagCancel():
                done = await task_rows.request_cancel(conn, task.id, decision.attempt, now=now)
                if done is not None:
                    log.info("task %s: cancel requested while processing", task.id)
                    effects.stopped.append(done.id)
            case _:
                return None
        if done is not None:
            effects.changed.append(done.id)
        return done

    async def _finish(
        self, conn: AsyncConnection, task: Task, finish: lifecycle.Finish, now: float
    ) -> Task | None:
        done = await task_rows.finish_task(
            conn,
            task.id,
            now=now,
            status=finish.status,
            attempt=finish.attempt,
            result_key=finish.result_key,
            error=finish.error,
        )
        if done is None:
            return None
        await charges.settle(conn, done, captured=finish.captured, now=now)
        if done.callback_url is not None:
            # The outbox row commits with the settlement: the callback follows billing, and
            # no crash can lose it.
            await callback_rows.enqueue(
                conn,
                callback_id=new_message_id(),
                task_id=done.id,
                account_id=done.account_id,
                url=done.callback_url,
                payload=self.presenter.json(done).decode(),
                now=now,
            )
        return done

    def announce(self, effects: _Effects) -> None:
        """The signals of a committed transaction."""
        for task_id in effects.changed:
            self.signals.changed(task_id)
        for task_id in effects.stopped:
            self.signals.stop(task_id)
        if effects.callbacks:
            self.signals.callbacks_due()
        if effects.wakeup:
            self.signals.wakeup.notify()


def _writes(decision: Decision) -> bool:
    return isinstance(decision, lifecycle.Finish | Requeue | FlagCancel)


def _ending(task: Task) -> str:
    if task.error is None:
        return task.status.value
    return f"{task.status.value} ({task.error.code})"


def _log_requeue(task: Task, requeue: Requeue, now: float) -> None:
    if not requeue.counts:
        log.info("task %s handed back to the queue", task.id)
    else:
        wait = requeue.available_at - now
        log.warning("task %s: %s; back in the queue in %.0f s", task.id, requeue.reason, wait)
