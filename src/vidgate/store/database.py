"""The database handle: the async engine, SQLite's pragmas and locking, migrations, notices."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import (
    Connection,
    CursorResult,
    Engine,
    Executable,
    RootTransaction,
    Table,
    create_engine,
    event,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from vidgate.errors import InvalidRequest, ServiceUnavailable
from vidgate.store.notices import Handler, Listener, NoticeKind

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).with_name("migrations")
# PostgreSQL's "character not in repertoire": text with a NUL character, which SQLite stores.
NUL_IN_TEXT = "22021"
# Any fixed number: the transaction-scoped advisory lock that lets one replica migrate at a time.
MIGRATION_LOCK = 0x76696467  # "vidg"
# Quick writes between two checkpoints (SQLite's own default is 1,000 pages, about 100 creates).
CHECKPOINT_EVERY = 100


class QuickConnection:
    """A transaction on SQLite through the plain ``sqlite3`` driver, on the event loop's own
    thread: for the hot paths' few indexed statements (a poll's key, task and queue position;
    a create's insert and reservation).

    Through the async engine the same transaction costs about ten times the CPU (pool, greenlet
    bridge, and a thread hand-off for each of begin, execute, fetch and commit: 1.3 ms against
    0.14 ms measured here). A read in WAL mode never waits for a writer, and a write runs here
    only once ``BEGIN IMMEDIATE`` got the write lock without waiting, so neither blocks the
    loop for longer than the hand-offs would have. Only for statements an index bounds:
    anything that scans belongs in ``Database.read()`` or ``Database.write()``.
    """

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self.dialect = conn.dialect

    async def execute(
        self, statement: Executable, parameters: Mapping[str, Any] | None = None
    ) -> CursorResult[Any]:
        return self._conn.execute(statement, parameters)

    @property
    def driver(self) -> sqlite3.Connection:
        """The driver's own connection, inside this transaction (for ``store.prepared``)."""
        driver = self._conn.connection.dbapi_connection
        assert isinstance(driver, sqlite3.Connection)
        return driver

    @asynccontextmanager
    async def begin_nested(self) -> AsyncIterator[None]:
        """A savepoint: rolled back alone when the block raises."""
        with self._conn.begin_nested():
            yield


# What the hot paths' statements accept: a connection of either kind.
Conn = AsyncConnection | QuickConnection


class Database:
    """One engine per process. ``read()`` for queries, ``write()`` for anything that writes;
    ``read_quick()`` and ``write_quick()`` for the hot paths' few indexed statements, whose
    bodies use only ``execute`` and ``begin_nested`` (a ``Conn`` of either kind).

    On SQLite a writing transaction starts with ``BEGIN IMMEDIATE``: a deferred transaction
    that reads and then writes can fail with SQLITE_BUSY whatever the busy timeout, because it
    asks for the write lock while holding a read snapshot another writer has moved past.

    On PostgreSQL every transaction is READ COMMITTED: each statement sees what committed
    before it began, and code that reads then writes relies on row locks instead, taken by a
    conditional ``UPDATE ... WHERE`` (a compare-and-set that re-checks its condition after
    waiting for the row) or ``SELECT ... FOR UPDATE [SKIP LOCKED]``.
    """

    def __init__(self, url: str) -> None:
        self.url = make_url(url)
        self.is_sqlite = self.url.get_backend_name() == "sqlite"
        if self.is_sqlite and self.url.database and self.url.database != ":memory:":
            _private_database_file(Path(self.url.database))
        kwargs: dict[str, Any] = {}
        if not self.is_sqlite:
            kwargs.update(
                pool_size=10,
                max_overflow=10,
                pool_pre_ping=True,
                isolation_level="READ COMMITTED",
            )
        self.engine: AsyncEngine = create_async_engine(self.url, **kwargs)
        self.listener: Listener | None = None
        self._quick: Engine | None = None
        self._spare_reader: Connection | None = None
        self._quick_writer: Engine | None = None
        if self.is_sqlite:
            _configure_sqlite(self.engine.sync_engine)
            if self.url.database not in (None, "", ":memory:"):  # a second connection sees it
                sync_url = self.url.set(drivername="sqlite")
                self._quick = create_engine(sync_url, connect_args={"check_same_thread": False})
                _configure_sqlite(self._quick)
                # Writes take their turn below, so one connection serves them all; it never
                # waits for SQLite's lock (another process holds it: the async path waits),
                # and never checkpoints on the loop's thread (see _checkpoint_soon).
                self._quick_writer = create_engine(
                    sync_url,
                    connect_args={"check_same_thread": False},
                    pool_size=1,
                    max_overflow=0,
                    execution_options={"vidgate_immediate": True},
                )
                _configure_sqlite(self._quick_writer, busy_timeout_ms=0, autocheckpoint=False)
        elif self.url.get_backend_name() == "postgresql":
            _, connect_args = self.engine.dialect.create_connect_args(self.url)
            self.listener = Listener(connect_args)
        self._writer = self.engine.execution_options(vidgate_immediate=True)
        # SQLite has one writer at a time: this process's writers queue here, in order, rather
        # than sleeping in SQLite's busy handler (which made the create p99 ~10x worse).
        self._write_turn = asyncio.Lock() if self.is_sqlite else None
        self.quick_writes_since_checkpoint = 0
        self.checkpointing: asyncio.Task[None] | None = None

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        async with _client_errors(), self.engine.begin() as conn:
            yield conn

    @asynccontextmanager
    async def read_quick(self) -> AsyncIterator[Conn]:
        """A read for indexed point lookups: on SQLite a ``QuickConnection``, else ``read()``."""
        if self._quick is None:
            async with self.read() as conn:
                yield conn
            return
        async with _client_errors():
            # A connection kept out of the pool, when no other read holds it (a quick read
            # awaits nothing but its statements, so it rarely is): an empty read took 31 µs
            # with a checkout from the pool and back, 7 µs on a connection kept out (measured
            # here).
            quick = self._spare_reader or self._quick.connect()
            self._spare_reader = None
            kept = False
            try:
                with quick.begin():
                    yield QuickConnection(quick)
                kept = self._spare_reader is None
            finally:
                if kept:
                    self._spare_reader = quick
                else:
                    quick.close()

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        turn = self._write_turn or contextlib.nullcontext()
        async with turn, _client_errors(), self._writer.begin() as conn:
            yield conn

    @asynccontextmanager
    async def write_quick(self) -> AsyncIterator[Conn]:
        """A write of a few indexed statements: on SQLite a ``QuickConnection`` when the write
        lock is free at once; when another process holds it, and elsewhere, ``write()``."""
        if self._quick_writer is None or self._write_turn is None:
            async with self.write() as conn:
                yield conn
            return
        async with self._write_turn, _client_errors():
            quick = self._quick_writer.connect()
            try:
                began = _begin_at_once(quick)
            except BaseException:
                quick.close()
                raise
            if began is None:
                quick.close()
                async with self._writer.begin() as conn:
                    yield conn
                return
            with quick, began:
                yield QuickConnection(quick)
        self._checkpoint_soon()

    def _checkpoint_soon(self) -> None:
        """Every CHECKPOINT_EVERY quick writes, copy the WAL into the database in a thread.

        SQLite's automatic checkpoint runs inside the commit that crosses its threshold, with
        an fsync: 8 to 12 ms measured here, which on the loop's thread would stall every
        request. A PASSIVE checkpoint waits for no reader or writer.
        """
        self.quick_writes_since_checkpoint += 1
        if self.quick_writes_since_checkpoint < CHECKPOINT_EVERY or self._quick is None:
            return
        if self.checkpointing is not None and not self.checkpointing.done():
            return
        self.quick_writes_since_checkpoint = 0
        self.checkpointing = asyncio.create_task(asyncio.to_thread(_checkpoint, self._quick))

    def subscribe(self, kind: NoticeKind, handler: Handler) -> None:
        """Call ``handler`` when any process sends a notice of ``kind`` (PostgreSQL only; the
        first subscription starts this process's listener, so call it on the event loop)."""
        if self.listener is not None:
            self.listener.subscribe(kind, handler)

    async def migrate(self) -> None:
        """Bring the schema to the newest revision (Alembic), inside one transaction.

        Replicas starting together take turns: SQLite's write lock, PostgreSQL's advisory lock
        (DDL is transactional there, so the second one finds the schema already at head).
        """
        async with self.write() as conn:
            if conn.dialect.name == "postgresql":
                await conn.execute(text(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})"))
            await conn.run_sync(_upgrade)

    async def close(self) -> None:
        if self.listener is not None:
            await self.listener.close()
        if self.checkpointing is not None:
            await self.checkpointing
        if self._spare_reader is not None:
            self._spare_reader.close()
            self._spare_reader = None
        for quick in (self._quick, self._quick_writer):
            if quick is not None:
                quick.dispose()
        await self.engine.dispose()


@asynccontextmanager
async def _client_errors() -> AsyncIterator[None]:
    """Database refusals that are the client's doing become a 400, not a crash; a database
    that cannot be reached (or is busy past the timeout) becomes a 503 to retry."""
    try:
        yield
    except (OperationalError, InterfaceError) as error:
        log.warning("database unavailable: %s", error.orig or error)
        raise _unavailable() from error
    except DBAPIError as error:
        if getattr(error.orig, "sqlstate", None) == NUL_IN_TEXT:
            raise InvalidRequest("Text cannot contain the NUL character (U+0000).") from error
        raise
    except (ConnectionError, TimeoutError) as error:  # the driver's own connect failures
        log.warning("database unreachable: %s", error)
        raise _unavailable() from error


def _unavailable() -> ServiceUnavailable:
    return ServiceUnavailable(
        "The database is unavailable; retry shortly.", headers={"Retry-After": "2"}
    )


def upsert_insert(conn: AsyncConnection, table: Table) -> postgresql.Insert | sqlite.Insert:
    """An INSERT with the dialect's ``on_conflict_do_nothing`` / ``on_conflict_do_update``."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def _upgrade(connection: Connection) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


def _begin_at_once(conn: Connection) -> RootTransaction | None:
    """``BEGIN IMMEDIATE`` without waiting; None when another connection holds the write lock."""
    try:
        return conn.begin()
    except OperationalError as error:
        if _is_busy(error):
            log.debug("SQLite write lock held elsewhere; writing through the async engine")
            return None
        raise


def _is_busy(error: OperationalError) -> bool:
    code = getattr(error.orig, "sqlite_errorcode", None)
    return code is not None and code & 0xFF == sqlite3.SQLITE_BUSY


def _checkpoint(engine: Engine) -> None:
    try:
        connection = engine.raw_connection()  # in autocommit: a checkpoint needs no transaction
        try:
            connection.cursor().execute("PRAGMA wal_checkpoint(PASSIVE)")
        finally:
            connection.close()
    except Exception as error:  # the next one retries; the WAL only grows meanwhile
        log.warning("SQLite checkpoint failed: %s", error)


def _configure_sqlite(
    engine: Engine, *, busy_timeout_ms: int = 30000, autocheckpoint: bool = True
) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from the driver so the "begin" hook below decides.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
        cursor.execute("PRAGMA foreign_keys=ON")
        if not autocheckpoint:
            cursor.execute("PRAGMA wal_autocheckpoint=0")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        if conn.get_execution_options().get("vidgate_immediate", False):
            # Through SQLAlchemy, which wraps a failure (SQLITE_BUSY: see _begin_at_once).
            conn.exec_driver_sql("BEGIN IMMEDIATE")
            return
        # A deferred BEGIN takes no lock and cannot be refused: straight to the driver, which
        # makes an empty quick read 24 µs instead of 36 (measured here).
        driver = conn.connection.dbapi_connection
        assert driver is not None  # a connection being begun is open
        cursor = driver.cursor()
        try:
            cursor.execute("BEGIN")
        finally:
            cursor.close()


def _private_database_file(path: Path) -> None:
    """The database file exists, owner-only (0600), before SQLite opens it: SQLite makes a
    new file 0644, and gives its -wal and -shm files the database file's mode. Modes only
    lose bits, so a stricter umask still wins; an older, looser file is tightened."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    os.close(fd)
    for name in (path.name, f"{path.name}-wal", f"{path.name}-shm", f"{path.name}-journal"):
        with contextlib.suppress(FileNotFoundError):
            member = path.with_name(name)
            mode = member.stat().st_mode & 0o777
            if mode & 0o077:
                member.chmod(mode & 0o700)
