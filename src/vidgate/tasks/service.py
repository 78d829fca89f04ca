"""The task service: creating, reading, claiming and finishing tasks, with billing and files."""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from vidgate.billing.pricing import price_for
from vidgate.engines.registry import ModelRegistry
from vidgate.errors import (
    InsufficientCredits,
    InvalidRequest,
    InvalidTaskId,
    RateLimited,
    TaskNotCancellable,
    TaskNotFound,
    VidgateError,
)
from vidgate.media.egress import EgressPolicy
from vidgate.media.files import FileStore
from vidgate.media.images import ImageInfo, fetch_image
from vidgate.store import callback_rows, idempotency_rows, ledger_rows, task_rows
from vidgate.store.account_rows import Principal
from vidgate.store.database import Database
from vidgate.store.task_rows import Heartbeat
from vidgate.tasks import validation
from vidgate.tasks.idempotency import Claim
from vidgate.tasks.model import (
    Task,
    TaskError,
    TaskStatus,
    credits_to_cents,
    is_task_id_shaped,
    new_task_id,
)
from vidgate.tasks.presenter import TaskPresenter
from vidgate.webhooks.signing import new_message_id

log = logging.getLogger(__name__)

CANCELLED_MESSAGE = "The task was cancelled."


@dataclass(frozen=True)
class VideoRequest:
    """A create request as the edge parsed it; the service checks every rule."""

    model: str
    prompt: str
    aspect_ratio: str | None = None
    image_urls: Sequence[str] = ()
    callback_url: str | None = None
    generation_type: str | None = None
    quality: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    # Cancel-After: seconds from creation after which an unfinished task is cancelled.
    cancel_after: float | None = None


@dataclass(frozen=True)
class TaskPage:
    tasks: list[Task]
    next_cursor: str | None


def encode_task_cursor(task: Task) -> str:
    raw = f"t:{task.created_at!r}:{task.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_task_cursor(cursor: str) -> tuple[float, str]:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        kind, created, task_id = text.split(":", 2)
        if kind != "t" or not is_task_id_shaped(task_id):
            raise ValueError(cursor)
        return float(created), task_id
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidRequest("cursor is not one this server gave out.", param="cursor") from None


class Wakeup:
    """Tells this process's idle workers that a task may be waiting (a hint, never a promise)."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def notify(self) -> None:
        self._event.set()

    async def wait(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._event.wait(), seconds)
        except TimeoutError:
            return
        self._event.clear()


class TaskService:
    def __init__(
        self,
        db: Database,
        registry: ModelRegistry,
        files: FileStore,
        egress: EgressPolicy,
        presenter: TaskPresenter,
        *,
        lease_seconds: float = 60.0,
        max_active_tasks: int = 100,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.db = db
        self.registry = registry
        self.files = files
        self.egress = egress
        self.presenter = presenter
        # Called when a finish enqueued a callback; the app points it at the dispatcher.
        self.callbacks_due: Callable[[], None] = lambda: None
        self.lease_seconds = lease_seconds
        self.max_active_tasks = max_active_tasks
        self.clock = clock
        self.wakeup = Wakeup()
        # Tasks running in this process: a cancel here reaches their engine at once; a cancel
        # through another replica reaches it at the worker's next heartbeat.
        self.running: dict[str, threading.Event] = {}
        self._watchers: dict[str, set[asyncio.Event]] = {}

    # --- the public API's side -------------------------------------------------------------

    async def create(
        self, principal: Principal, request: VideoRequest, *, idempotency: Claim | None = None
    ) -> Task:
        return (await self.create_answered(principal, request, idempotency=idempotency))[0]

    async def create_answered(
        self, principal: Principal, request: VideoRequest, *, idempotency: Claim | None = None
    ) -> tuple[Task, bytes]:
        """Create the task; also the exact answer, made (and, with a key, stored) in the
        transaction that creates it, so a replay is byte for byte the first answer."""
        spec = self.registry.resolve(request.model)
        prompt = validation.check_prompt(request.prompt, spec)
        aspect = validation.check_aspect(request.aspect_ratio, spec)
        urls = validation.check_images(request.image_urls, request.generation_type, spec)
        validation.check_quality(request.quality, spec)
        if request.callback_url is not None:
            await self._check_callback_url(request.callback_url)
        images = await self._fetch_images(urls)
        if aspect == "auto":
            aspect = "16:9"
            if images and images[0][1].height > images[0][1].width:
                aspect = "9:16"

        now = self.clock()
        task_id = new_task_id(int(now))
        image_keys = [
            f"inputs/{task_id}/{index}{info.extension}" for index, (_, info) in enumerate(images)
        ]
        for key, (data, _) in zip(image_keys, images, strict=True):
            await asyncio.to_thread(self.files.put_bytes, key, data)
        price = price_for(spec, principal.group)
        async with self.db.read() as conn:
            history = await task_rows.average_run_seconds(conn, spec.name)
        task = Task(
            id=task_id,
            account_id=principal.account_id,
            model=spec.name,
            engine=spec.engine,
            status=TaskStatus.PENDING,
            progress=0,
            prompt=prompt,
            aspect_ratio=aspect,
            image_keys=image_keys,
            callback_url=request.callback_url,
            user_group=principal.user_group,
            credits_cents=credits_to_cents(price),
            estimated_time=round(history) if history is not None else spec.typical_seconds,
            created_at=now,
            updated_at=now,
            extra=request.extra,
            api_key_id=principal.key_id,
            deadline_at=None if request.cancel_after is None else now + request.cancel_after,
        )
        max_active = principal.group.max_active_tasks
        if max_active is None:
            max_active = self.max_active_tasks
        try:
            # One transaction: the task exists exactly when its credits are reserved.
            async with self.db.write() as conn:
                await task_rows.insert_task(conn, task)
                # The reservation locks the account row, so the count below sees every other
                # create of this account that committed first (PostgreSQL as well as SQLite).
                if not await ledger_rows.reserve(
                    conn, principal.account_id, task_id, task.credits_cents, now=now
                ):
                    raise InsufficientCredits(
                        f"This task costs {price} credits and the account has fewer available."
                    )
                active = await task_rows.count_active(conn, principal.account_id)
                if max_active and active > max_active:
                    raise RateLimited(
                        f"This account already has {max_active} unfinished tasks, its limit; "
                        "wait for some to finish.",
                        headers={"Retry-After": "10"},
                    )
                position = await task_rows.queue_position(conn, task)
                answer = self.presenter.json(task, queue_position=position)
                if idempotency is not None:
                    # The answer commits with the task: a retry after a crash gets it back.
                    await idempotency_rows.complete(
                        conn,
                        idempotency.account_id,
                        idempotency.key,
                        status=200,
                        body=answer.decode(),
                        task_id=task.id,
                    )
        except BaseException:
            await asyncio.to_thread(self.files.delete_prefix, f"inputs/{task_id}")
            raise
        log.info("task %s created: model %s on engine %s", task_id, spec.name, spec.engine)
        self.wakeup.notify()
        return task, answer

    async def get(self, principal: Principal, task_id: str) -> Task:
        if not is_task_id_shaped(task_id):
            raise InvalidTaskId(f"{task_id!r} is not a task id; ids start with 'task-unified-'.")
        async with self.db.read() as conn:
            task = await task_rows.get_task(conn, task_id, account_id=principal.account_id)
        if task is None:
            raise TaskNotFound(f"No task {task_id} for this account.")
        return task

    async def list_tasks(
        self,
        principal: Principal,
        *,
        limit: int,
        cursor: str | None = None,
        status: str | None = None,
        model: str | None = None,
    ) -> TaskPage:
        if status is not None and status not in {s.value for s in TaskStatus}:
            raise InvalidRequest(
                f"status {status!r} is not one of pending, processing, completed, failed.",
                param="status",
            )
        before = decode_task_cursor(cursor) if cursor else None
        if model is not None:
            model = self.registry.resolve(model).name
        async with self.db.read() as conn:
            found = await task_rows.list_tasks(
                conn,
                principal.account_id,
                limit=limit + 1,
                before=before,
                status=status,
                model=model,
            )
        page = found[:limit]
        more = len(found) > limit
        return TaskPage(page, encode_task_cursor(page[-1]) if more and page else None)

    async def wait_for_change(self, principal: Principal, task_id: str, seconds: float) -> Task:
        """The task once it changes (status or progress) or ``seconds`` pass, whichever first.

        Changes made in this process wake the wait at once; others are seen by re-reading
        the task every second.
        """
        task = await self.get(principal, task_id)
        if task.status.is_terminal or seconds <= 0:
            return task
        seen = (task.status, task.progress, task.cancel_requested)
        deadline = asyncio.get_running_loop().time() + seconds
        event = asyncio.Event()
        self._watchers.setdefault(task.id, set()).add(event)
        try:
            while (left := deadline - asyncio.get_running_loop().time()) > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(event.wait(), min(1.0, left))
                event.clear()
                task = await self.get(principal, task_id)
                if (task.status, task.progress, task.cancel_requested) != seen:
                    return task
            return task
        finally:
            watchers = self._watchers.get(task_id)
            if watchers is not None:
                watchers.discard(event)
                if not watchers:
                    del self._watchers[task_id]

    def changed(self, task_id: str) -> None:
        """Wake this process's waits on the task (a write here changed it)."""
        for event in self._watchers.get(task_id, ()):
            event.set()

    async def queue_position(self, task: Task) -> int | None:
        if task.status is not TaskStatus.PENDING:
            return None
        async with self.db.read() as conn:
            return await task_rows.queue_position(conn, task)

    async def cancel(self, principal: Principal, task_id: str) -> Task:
        """Cancel at once when pending; flag for the worker when processing; 409 when done."""
        task = await self.get(principal, task_id)
        if task.status is TaskStatus.PENDING:
            error = TaskError("request_cancelled", "The task was cancelled before it started.")
            done = await self._finish(task, TaskStatus.FAILED, attempt=None, error=error)
            if done is not None:
                return done
            task = await self.get(principal, task_id)  # a worker took it meanwhile
        if task.status is TaskStatus.PROCESSING:
            async with self.db.write() as conn:
                flagged = await task_rows.request_cancel(conn, task.id, now=self.clock())
            if flagged:
                log.info("task %s: cancel requested while processing", task.id)
                self.changed(task.id)
                if (stop := self.running.get(task.id)) is not None:
                    stop.set()
            return await self.get(principal, task_id)
        raise TaskNotCancellable(
            f"Task {task.id} has already {task.status.value}; it can no longer be cancelled."
        )

    async def _check_callback_url(self, url: str) -> None:
        validation.check_callback_length(url)
        try:
            await self.egress.resolve_checked(url, schemes=("https",))
        except VidgateError as error:
            raise error.with_param("callback_url", f"callback_url: {error.message}") from None

    async def _fetch_images(self, urls: Sequence[str]) -> list[tuple[bytes, ImageInfo]]:
        async def one(index: int, url: str) -> tuple[bytes, ImageInfo]:
            try:
                return await fetch_image(self.egress, url)
            except VidgateError as error:
                message = f"image_urls[{index}] ({url}): {error.message}"
                raise error.with_param("image_urls", message) from None

        results = await asyncio.gather(
            *(one(index, url) for index, url in enumerate(urls)), return_exceptions=True
        )
        for result in results:
            if isinstance(result, BaseException):
                raise result
        return [r for r in results if not isinstance(r, BaseException)]

    # --- the worker's side -----------------------------------------------------------------

    async def claim(self, worker: str, engines: Collection[str] | None = None) -> Task | None:
        async with self.db.write() as conn:
            task = await task_rows.claim_task(
                conn,
                worker=worker,
                now=self.clock(),
                lease_seconds=self.lease_seconds,
                engines=engines,
                max_run_seconds=self._max_run_seconds,
            )
        if task is not None:
            log.info("task %s claimed by %s (attempt %d)", task.id, worker, task.attempt)
            self.changed(task.id)
        return task

    async def heartbeat(self, task: Task, progress: int | None = None) -> Heartbeat:
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
            self.changed(task.id)
        return beat

    async def complete(self, task: Task, output: Path) -> Task | None:
        """Store the video and finish the task; None when this attempt no longer holds it.

        A task whose cancel was requested while it rendered ends cancelled, not completed:
        the owner was told it would stop and is not charged for it.
        """
        # One file per attempt: a late attempt never overwrites or deletes the winner's video.
        key = f"results/{task.id}-{task.attempt}.mp4"
        await asyncio.to_thread(self.files.put_file, key, output)
        done = await self._finish(task, TaskStatus.COMPLETED, attempt=task.attempt, result_key=key)
        if done is None:
            await asyncio.to_thread(self.files.delete_prefix, key)
            done = await self.fail(task, "request_cancelled", CANCELLED_MESSAGE)
        return done

    async def fail(self, task: Task, code: str, message: str) -> Task | None:
        error = TaskError(code, message)
        return await self._finish(task, TaskStatus.FAILED, attempt=task.attempt, error=error)

    async def hand_back(self, task: Task) -> bool:
        """Return a held task to the queue without using up an attempt (graceful shutdown)."""
        async with self.db.write() as conn:
            handed = await task_rows.release_task(
                conn, task.id, task.attempt, now=self.clock(), counts=False
            )
        if handed:
            log.info("task %s handed back to the queue", task.id)
        return handed

    async def retry_or_fail(self, task: Task, reason: str) -> None:
        """An attempt ended without an answer (the engine crashed): again after a short
        backoff, or, at the model's attempt limit, failed with its credits released."""
        now = self.clock()
        async with self.db.write() as conn:
            await self._retry_or_fail_in(conn, task, reason, now, only_expired=False)
        self.changed(task.id)
        self.callbacks_due()
        self.wakeup.notify()

    async def reap(self) -> list[str]:
        """Tasks whose worker stopped renewing its lease go back to the queue (or fail at the
        attempt limit, or end cancelled when their owner asked); then deadlines are enforced.
        Returns the ids put back in the queue."""
        now = self.clock()
        requeued: list[str] = []
        async with self.db.write() as conn:
            lapsed = await task_rows.expired_leases(conn, now=now)
            for task in lapsed:
                if task.cancel_requested:
                    error = TaskError("request_cancelled", CANCELLED_MESSAGE)
                    await self._finish_in(
                        conn, task, TaskStatus.FAILED, task.attempt, now, error=error
                    )
                elif await self._retry_or_fail_in(
                    conn, task, "its worker stopped renewing the lease", now, only_expired=True
                ):
                    requeued.append(task.id)
            overdue = await task_rows.overdue(conn, now=now)
            for task in overdue:
                await self._expire_in(conn, task, now)
        # After the commit: a callback the sweep enqueued is there when the dispatcher looks.
        for task in (*lapsed, *overdue):
            self.changed(task.id)
        if lapsed or overdue:
            self.callbacks_due()
        if requeued:
            self.wakeup.notify()
        return requeued

    async def purge_expired(self, retention_seconds: float, *, batch: int = 100) -> int:
        """Delete the files of tasks finished longer ago than retention; they then answer 404.

        Works in small batches, each its own short transaction, so no sweep holds a long lock.
        """
        purged = 0
        while True:
            now = self.clock()
            async with self.db.read() as conn:
                old = await task_rows.past_retention(
                    conn, before=now - retention_seconds, limit=batch
                )
            if not old:
                return purged
            for task in old:
                for key in (*task.image_keys, *([task.result_key] if task.result_key else [])):
                    await asyncio.to_thread(self.files.delete_prefix, key)
                await asyncio.to_thread(self.files.delete_prefix, f"inputs/{task.id}")
            async with self.db.write() as conn:
                await task_rows.mark_purged(conn, [task.id for task in old], now=now)
            purged += len(old)
            log.info("retention: purged %d finished task(s)", len(old))

    async def _retry_or_fail_in(
        self, conn: AsyncConnection, task: Task, reason: str, now: float, *, only_expired: bool
    ) -> bool:
        """True when the task went back to the queue, False when it failed (or was not held)."""
        limit = self._max_attempts(task.model)
        if task.retries + 1 >= limit:
            log.warning(
                "task %s: %s, attempt %d of %d; failing", task.id, reason, task.retries + 1, limit
            )
            error = TaskError(
                "service_error", f"The task could not be run: {reason}, {limit} times."
            )
            await self._finish_in(conn, task, TaskStatus.FAILED, task.attempt, now, error=error)
            return False
        backoff = min(60.0, float(2**task.retries))
        released = await task_rows.release_task(
            conn,
            task.id,
            task.attempt,
            now=now,
            only_expired=only_expired,
            available_at=now + backoff,
        )
        if released:
            log.warning("task %s: %s; back in the queue in %.0f s", task.id, reason, backoff)
        return released

    async def _expire_in(self, conn: AsyncConnection, task: Task, now: float) -> None:
        """Fail a task past a deadline: the client's (cancelled) or its model's run limit."""
        if task.deadline_at is not None and task.deadline_at < now:
            error = TaskError(
                "request_cancelled", "The task was cancelled: its Cancel-After deadline passed."
            )
        else:
            limit = self._max_run_seconds(task.model)
            error = TaskError(
                "generation_timeout", f"The video was not ready within {limit:.0f} seconds."
            )
        attempt = task.attempt if task.status is TaskStatus.PROCESSING else None
        if await self._finish_in(conn, task, TaskStatus.FAILED, attempt, now, error=error):
            log.warning("task %s: %s", task.id, error.message)
            if (stop := self.running.get(task.id)) is not None:
                stop.set()

    def _max_run_seconds(self, model: str) -> float:
        spec = self.registry.models.get(model)
        return float(spec.max_run_seconds if spec else 900)

    def _max_attempts(self, model: str) -> int:
        spec = self.registry.models.get(model)
        return spec.max_attempts if spec else 3

    async def _finish(
        self,
        task: Task,
        status: TaskStatus,
        *,
        attempt: int | None,
        result_key: str | None = None,
        error: TaskError | None = None,
    ) -> Task | None:
        async with self.db.write() as conn:
            done = await self._finish_in(
                conn, task, status, attempt, self.clock(), result_key=result_key, error=error
            )
        if done is None:
            log.warning("task %s: attempt %s no longer holds it; result dropped", task.id, attempt)
        else:
            log.info("task %s %s", task.id, status.value)
            self.changed(task.id)
            if done.callback_url is not None:
                self.callbacks_due()
        return done

    async def _finish_in(
        self,
        conn: AsyncConnection,
        task: Task,
        status: TaskStatus,
        attempt: int | None,
        now: float,
        *,
        result_key: str | None = None,
        error: TaskError | None = None,
    ) -> Task | None:
        """The terminal compare-and-set and the settlement, in the caller's transaction."""
        done = await task_rows.finish_task(
            conn,
            task.id,
            now=now,
            status=status,
            attempt=attempt,
            result_key=result_key,
            error=error,
        )
        if done is not None:
            await ledger_rows.settle(
                conn,
                done.account_id,
                done.id,
                done.credits_cents,
                captured=status is TaskStatus.COMPLETED,
                now=now,
            )
            if done.callback_url is not None:
                # The outbox row commits with the settlement: the callback follows billing,
                # and no crash can lose it.
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
