"""Wake-up hints between processes: PostgreSQL NOTIFY in the writing transaction, one LISTEN.

A notice says "look again", never what changed: whoever wakes re-reads the database, and every
waiter also polls slowly, so a lost notice (a dropped listener, SQLite's other processes) only
costs latency. Notices are sent with ``pg_notify`` inside the transaction that makes the change,
so PostgreSQL delivers them only if it commits. On SQLite ``notify`` does nothing; the process
that made the change wakes its own waiters directly.

Kinds: ``new`` (a task may be claimable), ``task`` (task ``arg`` changed), ``callbacks`` (a
callback may be due).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy import func, literal, select

if TYPE_CHECKING:  # the database module imports this one
    import asyncpg

    from vidgate.store.database import Conn

log = logging.getLogger(__name__)

CHANNEL = "vidgate"
APPLICATION_NAME = "vidgate-listener"
NoticeKind = Literal["new", "task", "callbacks"]
Handler = Callable[[str], None]

# How often a quiet listener checks that its connection is still alive, and how long it waits
# between reconnection attempts (doubling up to the cap).
PING_SECONDS = 30.0
BACKOFF_FIRST = 0.5
BACKOFF_CAP = 30.0
# Options in a SQLAlchemy asyncpg URL that are SQLAlchemy's, not asyncpg.connect()'s.
_SQLALCHEMY_ONLY = ("prepared_statement_cache_size", "prepared_statement_name_func")


async def notify(conn: Conn, kind: NoticeKind, arg: str = "") -> None:
    """Send a hint with the caller's transaction (PostgreSQL); nothing on SQLite."""
    if conn.dialect.name == "postgresql":
        await conn.execute(select(func.pg_notify(CHANNEL, f"{kind}:{arg}")))


def notify_clause(kind: NoticeKind, arg: Any) -> Any:
    """``pg_notify(...)`` as a column, for a SELECT that notifies only for the rows it finds."""
    return func.pg_notify(CHANNEL, literal(f"{kind}:") + arg)


class Listener:
    """One dedicated connection LISTENing on the channel for this process, reconnecting with
    backoff when it drops. Handlers run on the event loop and must not block."""

    def __init__(self, connect_args: Mapping[str, Any]) -> None:
        self.connect_args = {k: v for k, v in connect_args.items() if k not in _SQLALCHEMY_ONLY}
        # Named, so an operator can tell it in pg_stat_activity.
        self.connect_args["server_settings"] = {
            **self.connect_args.get("server_settings", {}),
            "application_name": APPLICATION_NAME,
        }
        self.handlers: dict[str, list[Handler]] = {}
        self.connected = asyncio.Event()
        self.connections = 0  # how many times it has (re)connected
        self._task: asyncio.Task[None] | None = None

    def subscribe(self, kind: NoticeKind, handler: Handler) -> None:
        self.handlers.setdefault(kind, []).append(handler)
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name="vidgate-listener"
            )

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def _dispatch(self, kind: str, arg: str) -> None:
        for handler in self.handlers.get(kind, ()):
            try:
                handler(arg)
            except Exception:
                log.exception("notice handler for %r failed", kind)

    def _on_notification(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        kind, _, arg = payload.partition(":")
        self._dispatch(kind, arg)

    def _wake_everyone(self) -> None:
        """After a (re)connection: notices sent while no one listened are lost, so claimers
        and dispatchers look again (task waits re-read every second anyway)."""
        self._dispatch("new", "")
        self._dispatch("callbacks", "")

    async def _run(self) -> None:
        delay = BACKOFF_FIRST
        while True:
            # Any failure here is the database or the network: log it and try again, never stop.
            try:
                import asyncpg  # vidgate[postgres]: SQLite servers start without it

                conn = await asyncpg.connect(**self.connect_args)
            except Exception as error:
                log.warning("notice listener: cannot connect (%s); again in %.1f s", error, delay)
            else:
                try:
                    await self._listen(conn)
                    delay = BACKOFF_FIRST
                except Exception:
                    log.warning("notice listener: connection lost; reconnecting", exc_info=True)
                finally:
                    self.connected.clear()
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(conn.close(), 5)
            await asyncio.sleep(delay)
            delay = min(delay * 2, BACKOFF_CAP)

    async def _listen(self, conn: asyncpg.Connection) -> None:
        closed = asyncio.Event()
        conn.add_termination_listener(lambda _conn: closed.set())
        await conn.add_listener(CHANNEL, self._on_notification)
        log.info("notice listener: listening on %r", CHANNEL)
        self.connections += 1
        self.connected.set()
        self._wake_everyone()
        while not closed.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(closed.wait(), PING_SECONDS)
                break
            await asyncio.wait_for(conn.fetchval("SELECT 1"), 10)
        log.warning("notice listener: the connection closed; reconnecting")
