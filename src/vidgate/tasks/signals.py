"""The process's task hints: idle workers' wake-up, long polls' watchers, running engines' stop
flags, and the callback dispatcher's nudge. Hints, never promises: everyone also polls.

Built first and handed to whoever needs it (the task service, the transitions, the workers),
so nothing is patched in after construction. On PostgreSQL, other replicas' notices arrive
here too: a new task wakes the workers, a changed one its watchers and, when it runs in this
process, a check whether its engine must stop.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable

from vidgate.store import task_rows
from vidgate.store.database import Database
from vidgate.tasks.model import TaskStatus

log = logging.getLogger(__name__)


class Wakeup:
    """Tells this process's idle workers that a task may be waiting."""

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


class TaskSignals:
    def __init__(self, db: Database, *, callbacks_due: Callable[[], None]) -> None:
        self.db = db
        self.wakeup = Wakeup()
        # Called after a commit that wrote a callback to the outbox: the dispatcher's nudge.
        self.callbacks_due = callbacks_due
        # Tasks running in this process: a cancel here reaches their engine at once; one made
        # through another replica when its notice arrives (PostgreSQL), else at the worker's
        # next heartbeat.
        self._running: dict[str, threading.Event] = {}
        self.stop_checks: set[asyncio.Task[None]] = set()
        self._watchers: dict[str, set[asyncio.Event]] = {}
        db.subscribe("new", lambda _: self.wakeup.notify())
        db.subscribe("task", self.heard)

    # --- running engines ------------------------------------------------------------------

    def track(self, task_id: str, stop: threading.Event) -> None:
        """While the task runs here, ``stop`` is set when it must end (cancel, deadline)."""
        self._running[task_id] = stop

    def untrack(self, task_id: str) -> None:
        self._running.pop(task_id, None)

    def stop(self, task_id: str) -> None:
        """Stop the task's engine if it runs in this process."""
        if (stop := self._running.get(task_id)) is not None:
            stop.set()

    # --- watchers -------------------------------------------------------------------------

    def watch(self, task_id: str) -> asyncio.Event:
        """An event set whenever the task changes; give it back with ``unwatch``."""
        event = asyncio.Event()
        self._watchers.setdefault(task_id, set()).add(event)
        return event

    def unwatch(self, task_id: str, event: asyncio.Event) -> None:
        watchers = self._watchers.get(task_id)
        if watchers is not None:
            watchers.discard(event)
            if not watchers:
                del self._watchers[task_id]

    def changed(self, task_id: str) -> None:
        """Wake this process's waits on the task (a write here changed it)."""
        for event in self._watchers.get(task_id, ()):
            event.set()

    # --- notices from any replica ---------------------------------------------------------

    def heard(self, task_id: str) -> None:
        """The task changed somewhere: wake its waits, and when it runs here, read whether its
        engine must stop (cancelled, or ended by a deadline)."""
        self.changed(task_id)
        stop = self._running.get(task_id)
        if stop is not None and not stop.is_set():
            check = asyncio.create_task(self._stop_if_over(task_id, stop))
            self.stop_checks.add(check)
            check.add_done_callback(self.stop_checks.discard)

    async def _stop_if_over(self, task_id: str, stop: threading.Event) -> None:
        try:
            async with self.db.read_quick() as conn:
                task = await task_rows.get_task(conn, task_id)
        except Exception as error:  # the worker's heartbeat will learn it instead
            log.warning("task %s: could not read it after a notice: %r", task_id, error)
            return
        if task is None or task.cancel_requested or task.status is not TaskStatus.PROCESSING:
            log.info("task %s: changed elsewhere; stopping its engine here", task_id)
            stop.set()
