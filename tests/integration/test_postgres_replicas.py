"""Two replicas on one PostgreSQL database: claims, balances, and the wake-up hints between them.

Each "replica" is a full Services opened on the same database, as two server processes would be:
its own engine, pool and notice listener.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from support import ADMIN_KEY
from vidgate.auth.model import Principal
from vidgate.errors import InsufficientCredits
from vidgate.services import Services, open_services
from vidgate.settings import Settings
from vidgate.store import ledger_rows
from vidgate.store.notices import APPLICATION_NAME, notify
from vidgate.store.tables import ledger_entries, tasks
from vidgate.tasks.model import Task, TaskStatus
from vidgate.tasks.service import VideoRequest

pytestmark = pytest.mark.postgres

PRICE = Decimal("25.70")  # veo3.1-fast in the packaged registry
REQUEST = VideoRequest(model="veo3.1-fast", prompt="A lighthouse in a storm")


@pytest.fixture
async def replicas(tmp_path: Path, postgres_url: str) -> AsyncIterator[tuple[Services, Services]]:
    settings = Settings(data_dir=tmp_path / "data", database_url=postgres_url, workers=0)
    first = await open_services(settings)
    second = await open_services(settings)
    await first.accounts.bootstrap(key=ADMIN_KEY, credits=Decimal(1000))
    try:
        for replica in (first, second):
            assert replica.db.listener is not None
            await asyncio.wait_for(replica.db.listener.connected.wait(), 30)
        yield first, second
    finally:
        await first.close()
        await second.close()


async def admin_task(replica: Services) -> tuple[Principal, Task]:
    """The admin, and a task the admin just created through ``replica``."""
    admin = await replica.accounts.authenticate(f"Bearer {ADMIN_KEY}")
    return admin, await replica.tasks.create(admin, REQUEST)


class Notices:
    """What one replica's listener hears, in order."""

    def __init__(self, services: Services) -> None:
        self.heard: list[tuple[str, str]] = []
        self.arrived = asyncio.Event()
        for kind in ("new", "task", "callbacks"):
            services.db.subscribe(kind, lambda arg, kind=kind: self._hear(kind, arg))

    def _hear(self, kind: str, arg: str) -> None:
        self.heard.append((kind, arg))
        self.arrived.set()

    async def until(self, kind: str, arg: str = "") -> None:
        while (kind, arg) not in self.heard:
            self.arrived.clear()
            await asyncio.wait_for(self.arrived.wait(), 30)


async def test_two_replicas_claiming_at_once_take_each_task_exactly_once(
    replicas: tuple[Services, Services],
) -> None:
    first, second = replicas
    admin = await first.accounts.authenticate(f"Bearer {ADMIN_KEY}")
    created = {(await first.tasks.create(admin, REQUEST)).id for _ in range(24)}

    async def claim_all(services: Services, worker: str) -> list[Task]:
        taken: list[Task] = []
        while (task := await services.runs.claim(worker)) is not None:
            taken.append(task)
        return taken

    batches = await asyncio.gather(
        *(claim_all(replica, f"w{n}") for n in range(4) for replica in (first, second))
    )
    claimed = [task.id for batch in batches for task in batch]
    assert sorted(claimed) == sorted(created)  # every task, none twice
    assert all(task.attempt == 1 for batch in batches for task in batch)
    assert sum(1 for batch in batches if batch) > 1  # the claims really ran side by side


async def test_fifty_concurrent_creates_never_overdraw_the_account(
    replicas: tuple[Services, Services],
) -> None:
    first, second = replicas
    member = await first.accounts.create_account("member", credits=PRICE * 10)
    principal = await first.accounts.authenticate(f"Bearer {member.key}")

    async def create(services: Services) -> bool:
        try:
            await services.tasks.create(principal, REQUEST)
        except InsufficientCredits:
            return False
        return True

    results = await asyncio.gather(*(create((first, second)[n % 2]) for n in range(50)))
    assert results.count(True) == 10
    async with first.db.read() as conn:
        assert await ledger_rows.balance_cents(conn, principal.account_id) == 0
        assert await ledger_rows.entries_sum(conn, principal.account_id) == 0
        reservations = (
            await conn.execute(
                select(func.count()).where(
                    ledger_entries.c.account_id == principal.account_id,
                    ledger_entries.c.kind == "reserve",
                )
            )
        ).scalar()
        made = (
            await conn.execute(
                select(func.count()).where(tasks.c.account_id == principal.account_id)
            )
        ).scalar()
    assert reservations == made == 10


async def test_a_new_task_wakes_an_idle_worker_in_the_other_replica(
    replicas: tuple[Services, Services],
) -> None:
    first, second = replicas
    await second.signals.wakeup.wait(0.01)  # forget the wake-up its listener gave on connecting
    idle = asyncio.create_task(second.signals.wakeup.wait(3600))
    await asyncio.sleep(0)
    await admin_task(first)
    await asyncio.wait_for(idle, 30)  # an hour's poll, cut short by the notice


async def test_a_change_in_one_replica_is_heard_by_the_other_after_commit(
    replicas: tuple[Services, Services],
) -> None:
    first, second = replicas
    heard = Notices(second)
    _, task = await admin_task(first)
    await heard.until("new")
    claimed = await first.runs.claim("w1")
    assert claimed is not None
    assert claimed.id == task.id
    await heard.until("task", task.id)

    heard.heard.clear()
    await first.runs.heartbeat(claimed, progress=40)
    await heard.until("task", task.id)
    heard.heard.clear()
    await first.runs.heartbeat(claimed, progress=40)  # no progress: no notice
    await first.runs.fail(claimed, "generation_failed", "no")
    await heard.until("task", task.id)
    assert heard.heard == [("task", task.id)]


async def test_a_rolled_back_change_sends_no_notice(replicas: tuple[Services, Services]) -> None:
    first, second = replicas
    heard = Notices(second)

    async def roll_back() -> None:
        async with first.db.write() as conn:
            await notify(conn, "callbacks")
            raise RuntimeError("rolled back")

    with pytest.raises(RuntimeError):
        await roll_back()
    async with first.db.write() as conn:
        await notify(conn, "task", "marker")
    await heard.until("task", "marker")
    assert ("callbacks", "") not in heard.heard


async def test_a_finished_task_with_a_callback_wakes_the_other_replicas_dispatcher(
    replicas: tuple[Services, Services],
) -> None:
    first, second = replicas
    heard = Notices(second)
    admin, task = await admin_task(first)
    async with first.db.write() as conn:  # as if created with one (no receiver is needed)
        await conn.execute(
            tasks.update().where(tasks.c.id == task.id).values(callback_url="https://example.com/")
        )
    cancelled = await first.tasks.cancel(admin, task.id)
    assert cancelled.status is TaskStatus.FAILED
    await heard.until("callbacks")


async def test_the_listener_reconnects_when_its_connection_is_killed(
    replicas: tuple[Services, Services],
) -> None:
    first, second = replicas
    listener = second.db.listener
    assert listener is not None
    before = listener.connections
    heard = Notices(second)
    async with first.db.write() as conn:
        killed = (
            await conn.execute(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE application_name = :name AND datname = current_database() "
                    "AND pid <> pg_backend_pid()"
                ),
                {"name": APPLICATION_NAME},
            )
        ).scalar()
    assert killed == 2  # one listener per replica
    # Back online, it wakes its claimers and dispatchers: notices may have been missed.
    await heard.until("callbacks")
    assert listener.connections == before + 1
    heard.heard.clear()
    await admin_task(first)
    await heard.until("new")


async def test_a_cancel_through_one_replica_stops_the_engine_running_in_the_other(
    replicas: tuple[Services, Services],
) -> None:
    first, second = replicas
    heard = Notices(first)
    admin, task = await admin_task(first)
    claimed = await first.runs.claim("w1")
    assert claimed is not None
    assert claimed.id == task.id
    engine_stop = threading.Event()
    first.signals.track(task.id, engine_stop)  # as the worker does while its engine runs

    # Progress is a change too: the check it starts finds nothing to stop.
    heard.heard.clear()
    await second.runs.heartbeat(claimed, progress=30)
    await heard.until("task", task.id)
    await asyncio.gather(*first.signals.stop_checks)
    assert not engine_stop.is_set()

    heard.heard.clear()  # else the heartbeat's notice, heard already, ends the wait at once
    cancelled = await second.tasks.cancel(admin, task.id)
    assert cancelled.cancel_requested
    await heard.until("task", task.id)
    await asyncio.gather(*first.signals.stop_checks)
    assert engine_stop.is_set()  # at the notice, not at the worker's next heartbeat
