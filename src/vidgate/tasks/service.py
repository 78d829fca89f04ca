"""The task service: creating, reading, claiming and finishing tasks, with billing and files."""

from __future__ import annotations

import asyncio
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
    InvalidTaskId,
    RateLimited,
    TaskNotCancellable,
    TaskNotFound,
    VidgateError,
)
from vidgate.media.egress import EgressPolicy
from vidgate.media.files import FileStore
from vidgate.media.images import ImageInfo, fetch_image
from vidgate.store import callback_rows, ledger_rows, task_rows
from vidgate.store.account_rows import Principal
from vidgate.store.database import Database
from vidgate.store.task_rows import Heartbeat
from vidgate.tasks import validation
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

    # --- the public API's side -------------------------------------------------------------

    async def create(self, principal: Principal, request: VideoRequest) -> Task:
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
        except BaseException:
            await asyncio.to_thread(self.files.delete_prefix, f"inputs/{task_id}")
            raise
        log.info("task %s created: model %s on engine %s", task_id, spec.name, spec.engine)
        self.wakeup.notify()
        return task

    async def get(self, principal: Principal, task_id: str) -> Task:
        if not is_task_id_shaped(task_id):
            raise InvalidTaskId(f"{task_id!r} is not a task id; ids start with 'task-unified-'.")
        async with self.db.read() as conn:
            task = await task_rows.get_task(conn, task_id, account_id=principal.account_id)
        if task is None:
            raise TaskNotFound(f"No task {task_id} for this account.")
        return task

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
            )
        if task is not None:
            log.info("task %s claimed by %s (attempt %d)", task.id, worker, task.attempt)
        return task

    async def heartbeat(self, task: Task, progress: int | None = None) -> Heartbeat:
        async with self.db.write() as conn:
            return await task_rows.heartbeat(
                conn,
                task.id,
                task.attempt,
                now=self.clock(),
                lease_seconds=self.lease_seconds,
                progress=progress,
            )

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

    async def release(self, task: Task) -> bool:
        async with self.db.write() as conn:
            return await task_rows.release_task(conn, task.id, task.attempt, now=self.clock())

    async def reap(self) -> list[str]:
        """Tasks whose worker stopped renewing its lease: back to the queue, or, when their
        owner asked to cancel them, cancelled with their credits released."""
        now = self.clock()
        requeued: list[str] = []
        async with self.db.write() as conn:
            for task in await task_rows.expired_leases(conn, now=now):
                if task.cancel_requested:
                    error = TaskError("request_cancelled", CANCELLED_MESSAGE)
                    await self._finish_in(
                        conn, task, TaskStatus.FAILED, task.attempt, now, error=error
                    )
                    self.callbacks_due()
                elif await task_rows.release_task(
                    conn, task.id, task.attempt, now=now, only_expired=True
                ):
                    requeued.append(task.id)
                    log.warning("task %s: its worker's lease expired; back in the queue", task.id)
        if requeued:
            self.wakeup.notify()
        return requeued

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
