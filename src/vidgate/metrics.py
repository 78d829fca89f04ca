"""Prometheus metrics: request timings in this process, queue and outbox state from the database.

The task and callback figures are read from the database when scraped, so every replica reports
the same, true numbers, whichever process did the work.

Finished tasks only ever grow in number, so a process counts them all once, at its first
scrape, and afterwards only those finished since: a scrape at a million tasks reads the queue
and the last few minutes, not the table. The last ``SETTLE_SECONDS`` are counted afresh at
every scrape, so a finish whose transaction commits late, or that a replica's lagging clock
stamped early, is still counted (replicas' clocks must agree within that).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Gauge, Histogram, generate_latest
from sqlalchemy.ext.asyncio import AsyncConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from vidgate.engines.health import EngineHealth
from vidgate.store import callback_rows, task_queries
from vidgate.store.database import Database

# Finishes older than this are counted once per process and kept; newer ones at every scrape.
SETTLE_SECONDS = 300.0

# Label values come from this closed set, never from the request itself: a client that sends
# a made-up method or path must not mint a new series (each one stays in /metrics forever).
METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"}
)
OTHER_METHOD = "other"
UNMATCHED_ROUTE = "unmatched"


class FinishedTally:
    """Finished tasks by (model, status): settled ones kept, the last few minutes re-read."""

    def __init__(self) -> None:
        self.settled: Counter[tuple[str, str]] = Counter()
        self.settled_until: float | None = None  # None: nothing counted yet
        self._turn = asyncio.Lock()  # two scrapes at once must not add a window twice

    async def read(self, conn: AsyncConnection, now: float) -> task_queries.TaskCounts:
        async with self._turn:
            until = now - SETTLE_SECONDS
            if self.settled_until is None or until > self.settled_until:
                self.settled.update(
                    await task_queries.finished_counts(conn, after=self.settled_until, until=until)
                )
                self.settled_until = until
            recent = await task_queries.finished_counts(conn, after=self.settled_until)
            return dict(self.settled + Counter(recent))


class Metrics:
    def __init__(
        self,
        db: Database,
        health: EngineHealth,
        engines: Iterable[str],
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.db = db
        self.health = health
        self.engine_names = sorted(engines)
        self.clock = clock
        self.finished = FinishedTally()
        self.registry = CollectorRegistry()
        self.requests = Histogram(
            "vidgate_http_request_duration_seconds",
            "HTTP requests by route template, method and status",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.tasks = Gauge(
            "vidgate_tasks",
            "Tasks by model and status: pending and processing now; completed and failed ever "
            "(purged tasks included)",
            ["model", "status"],
            registry=self.registry,
        )
        self.oldest_pending = Gauge(
            "vidgate_oldest_pending_task_age_seconds",
            "How long the oldest pending task has waited (0 when none waits)",
            registry=self.registry,
        )
        self.engine_healthy = Gauge(
            "vidgate_engine_healthy",
            "1 while an engine's recent calls in this process succeed, 0 while its circuit is open",
            ["engine"],
            registry=self.registry,
        )
        self.callbacks = Gauge(
            "vidgate_callbacks",
            "Callbacks in the outbox by status",
            ["status"],
            registry=self.registry,
        )

    async def render(self) -> bytes:
        async with self.db.read() as conn:
            tasks = await task_queries.unfinished_counts(conn)
            tasks.update(await self.finished.read(conn, self.clock()))
            oldest = await task_queries.oldest_pending_created_at(conn)
            callbacks = await callback_rows.counts_by_status(conn)
        self.tasks.clear()
        for (model, status), count in tasks.items():
            self.tasks.labels(model, status).set(count)
        self.oldest_pending.set(0 if oldest is None else max(0.0, self.clock() - oldest))
        self.callbacks.clear()
        for status, count in callbacks.items():
            self.callbacks.labels(status).set(count)
        for name in self.engine_names:
            self.engine_healthy.labels(name).set(1 if self.health.healthy(name) else 0)
        return generate_latest(self.registry)

    def observe(self, scope: Scope, status: int, seconds: float) -> None:
        # The route's template (one per route the app declares), never the path that was sent.
        template = getattr(scope.get("route"), "path", None)
        route = template if isinstance(template, str) else UNMATCHED_ROUTE
        method = scope["method"] if scope["method"] in METHODS else OTHER_METHOD
        self.requests.labels(route, method, str(status)).observe(seconds)


class RequestTimer:
    """Plain ASGI middleware timing every HTTP request by route template, method and status.

    Not Starlette's ``BaseHTTPMiddleware``: that one costs a task and a stream per request.
    """

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            # The router writes the matched route into this same scope.
            self.metrics.observe(scope, status, time.perf_counter() - started)
