"""The task service: the API's use cases of tasks (create, read, list, wait, cancel)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from vidgate.auth.model import Principal
from vidgate.billing import charges
from vidgate.billing.model import credits_to_cents
from vidgate.billing.pricing import price_for
from vidgate.cursors import decode_cursor, encode_cursor
from vidgate.engines.registry import ModelRegistry, ModelSpec
from vidgate.errors import (
    InsufficientCredits,
    InvalidRequest,
    InvalidTaskId,
    RateLimited,
    TaskNotCancellable,
    TaskNotFound,
)
from vidgate.media.egress import EgressPolicy
from vidgate.media.files import FileStore
from vidgate.store import idempotency_rows, task_queries, task_rows
from vidgate.store.database import Database
from vidgate.tasks import validation
from vidgate.tasks.idempotency import Claim
from vidgate.tasks.inputs import check_callback_url, fetch_images
from vidgate.tasks.lifecycle import CancelRequested, NotCancellable
from vidgate.tasks.model import Task, TaskStatus, is_task_id_shaped, new_task_id
from vidgate.tasks.presenter import TaskPresenter
from vidgate.tasks.signals import TaskSignals
from vidgate.tasks.transitions import TaskTransitions

log = logging.getLogger(__name__)

# How long a process reuses a model's estimated run time before reading its history again.
ESTIMATE_SECONDS = 30.0


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


async def _no_upload(url: str) -> bytes | None:
    return None


def encode_task_cursor(task: Task) -> str:
    return encode_cursor("t", repr(task.created_at), task.id)


def decode_task_cursor(cursor: str) -> tuple[float, str]:
    created, task_id = decode_cursor("t", cursor, 2)
    try:
        return float(created), task_id
    except ValueError:
        raise InvalidRequest("cursor is not one this server gave out.", param="cursor") from None


class TaskService:
    """The API's use cases of tasks: create, read, list, wait for a change, cancel."""

    def __init__(
        self,
        db: Database,
        registry: ModelRegistry,
        files: FileStore,
        egress: EgressPolicy,
        presenter: TaskPresenter,
        signals: TaskSignals,
        transitions: TaskTransitions,
        *,
        read_upload: Callable[[str], Awaitable[bytes | None]] = _no_upload,
        max_active_tasks: int = 100,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.db = db
        self.registry = registry
        self.files = files
        self.egress = egress
        self.presenter = presenter
        self.signals = signals
        self.transitions = transitions
        # Reads this server's own upload links from the store (None: not an upload link).
        self.read_upload = read_upload
        self.max_active_tasks = max_active_tasks
        self.clock = clock
        self._estimates: dict[str, tuple[float, int]] = {}

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
            await check_callback_url(self.egress, request.callback_url)
        images = await fetch_images(self.egress, urls, local=self.read_upload)
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
            estimated_time=await self._estimated_seconds(spec, now),
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
            async with self.db.write_quick() as conn:
                await task_rows.insert_task(conn, task)
                # The reservation locks the account row, so the count below sees every other
                # create of this account that committed first (PostgreSQL as well as SQLite).
                if not await charges.reserve(conn, task, now=now):
                    raise InsufficientCredits(
                        f"This task costs {price} credits and the account has fewer available."
                    )
                active = max_active and await task_rows.count_active(conn, principal.account_id)
                if max_active and active > max_active:
                    raise RateLimited(
                        f"This account already has {max_active} unfinished tasks, its limit; "
                        "wait for some to finish.",
                        headers={"Retry-After": "10"},
                    )
                position = await task_queries.queue_position(conn, task)
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
        self.signals.wakeup.notify()
        return task, answer

    async def _estimated_seconds(self, spec: ModelSpec, now: float) -> int:
        """The model's recent average run time (else its typical one), read at most every
        ESTIMATE_SECONDS per process: an estimate need not cost every create a query."""
        known = self._estimates.get(spec.name)
        if known is not None and now < known[0]:
            return known[1]
        async with self.db.read() as conn:
            history = await task_queries.average_run_seconds(conn, spec.name)
        estimate = round(history) if history is not None else spec.typical_seconds
        self._estimates[spec.name] = (now + ESTIMATE_SECONDS, estimate)
        return estimate

    async def get(self, principal: Principal, task_id: str) -> Task:
        return (await self._get(principal, task_id, with_position=False))[0]

    async def get_with_position(
        self, principal: Principal, task_id: str
    ) -> tuple[Task, int | None]:
        """The task and, when pending, its place in the queue: one read, the poll's hot path."""
        return await self._get(principal, task_id, with_position=True)

    async def _get(
        self, principal: Principal, task_id: str, *, with_position: bool
    ) -> tuple[Task, int | None]:
        if not is_task_id_shaped(task_id):
            raise InvalidTaskId(f"{task_id!r} is not a task id; ids start with 'task-unified-'.")
        position = None
        async with self.db.read_quick() as conn:
            task = await task_rows.get_task(conn, task_id, account_id=principal.account_id)
            if with_position and task is not None and task.status is TaskStatus.PENDING:
                position = await task_queries.queue_position(conn, task)
        if task is None:
            raise TaskNotFound(f"No task {task_id} for this account.")
        return task, position

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
            found = await task_queries.list_tasks(
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

        Changes made in this process (and, on PostgreSQL, in any replica) wake the wait at
        once; re-reading the task every second catches whatever a lost hint missed.
        """
        task = await self.get(principal, task_id)
        if task.status.is_terminal or seconds <= 0:
            return task
        seen = (task.status, task.progress, task.cancel_requested)
        deadline = asyncio.get_running_loop().time() + seconds
        event = self.signals.watch(task.id)
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
            self.signals.unwatch(task_id, event)

    async def queue_position(self, task: Task) -> int | None:
        if task.status is not TaskStatus.PENDING:
            return None
        async with self.db.read_quick() as conn:  # the held poll asks this at every change
            return await task_queries.queue_position(conn, task)

    async def cancel(self, principal: Principal, task_id: str) -> Task:
        """Cancel at once when pending; flag for the worker when processing; 409 when done."""
        task = await self.get(principal, task_id)
        outcome = await self.transitions.record(task, CancelRequested())
        if isinstance(outcome.decision, NotCancellable):
            raise TaskNotCancellable(
                f"Task {task.id} has already {outcome.decision.status.value}; "
                "it can no longer be cancelled."
            )
        # Cancelled, flagged for its worker, or flagged already: the task as it is now.
        return outcome.task or await self.get(principal, task_id)
