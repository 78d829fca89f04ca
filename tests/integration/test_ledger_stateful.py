"""A hypothesis state machine drives the ledger; after every step the books must balance."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from vidgate.auth.model import Principal
from vidgate.errors import InsufficientCredits, InvalidRequest, TaskNotCancellable
from vidgate.services import Services, open_services
from vidgate.settings import Settings
from vidgate.store import ledger_rows, task_rows
from vidgate.tasks.model import Task, TaskStatus
from vidgate.tasks.service import VideoRequest

PRICE = 2570  # veo3.1-fast at the default group's ratio, in hundredths


class LedgerMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.root = Path(tempfile.mkdtemp(prefix="ledger-"))
        self.services: Services = self.run(
            open_services(Settings(data_dir=self.root, workers=0, max_active_tasks=0))
        )
        self.principals: list[Principal] = []
        self.expected: list[int] = []  # the balance each account should have, by our own count
        for name in ("alice", "bob"):
            created = self.run(self.services.accounts.create_account(name))
            self.principals.append(
                self.run(self.services.accounts.authenticate(f"Bearer {created.key}"))
            )
            self.expected.append(0)
        self.task_owner: dict[str, int] = {}
        self.processing: dict[str, Task] = {}  # task id -> the claim that holds it
        self.cancel_requested: set[str] = set()
        self.clock_offset = 0.0
        self.services.clock.source = self._clock

    def _clock(self) -> float:
        return time.time() + self.clock_offset

    def run(self, awaitable: Any) -> Any:
        return self.loop.run_until_complete(awaitable)

    def teardown(self) -> None:
        self.run(self.services.close())
        self.loop.close()
        shutil.rmtree(self.root, ignore_errors=True)

    def status(self, task_id: str) -> TaskStatus:
        principal = self.principals[self.task_owner[task_id]]
        return self.run(self.services.tasks.get(principal, task_id)).status

    @rule(who=st.integers(0, 1), cents=st.integers(1, 3 * PRICE))
    def top_up(self, who: int, cents: int) -> None:
        credits = Decimal(cents) / 100
        self.run(self.services.ledger.top_up(self.principals[who].account_id, credits, reason="t"))
        self.expected[who] += cents

    @rule(who=st.integers(0, 1), cents=st.integers(-3 * PRICE, 3 * PRICE).filter(bool))
    def adjust(self, who: int, cents: int) -> None:
        account = self.principals[who].account_id
        try:
            self.run(self.services.ledger.adjust(account, Decimal(cents) / 100, reason="fix"))
        except InvalidRequest:
            assert self.expected[who] + cents < 0
            return
        self.expected[who] += cents

    @rule(who=st.integers(0, 1))
    def create(self, who: int) -> None:
        request = VideoRequest(model="veo3.1-fast", prompt="a ledger test")
        try:
            task = self.run(self.services.tasks.create(self.principals[who], request))
        except InsufficientCredits:
            assert self.expected[who] < PRICE
            return
        assert task.credits_cents == PRICE
        self.expected[who] -= PRICE
        self.task_owner[task.id] = who

    @rule()
    def claim(self) -> None:
        task = self.run(self.services.runs.claim("worker"))
        if task is not None:
            self.processing[task.id] = task

    @precondition(lambda self: self.processing)
    @rule(pick=st.integers(0, 10**6), succeed=st.booleans())
    def finish(self, pick: int, succeed: bool) -> None:
        task = sorted(self.processing.values(), key=lambda t: t.id)[pick % len(self.processing)]
        if succeed:
            output = self.root / f"{task.id}.mp4"
            output.write_bytes(b"video")
            done = self.run(self.services.runs.complete(task, output))
        else:
            done = self.run(self.services.runs.fail(task, "generation_failed_no_content", "x"))
        assert done is not None
        del self.processing[task.id]
        if succeed and task.id in self.cancel_requested:
            # A cancel the owner was told about wins over a result that arrives after it.
            assert done.status is TaskStatus.FAILED
            assert done.error is not None
            assert done.error.code == "request_cancelled"
        if not succeed or task.id in self.cancel_requested:
            self.expected[self.task_owner[task.id]] += PRICE

    @precondition(lambda self: self.task_owner)
    @rule(pick=st.integers(0, 10**6))
    def cancel(self, pick: int) -> None:
        task_id = sorted(self.task_owner)[pick % len(self.task_owner)]
        who = self.task_owner[task_id]
        before = self.status(task_id)
        try:
            after = self.run(self.services.tasks.cancel(self.principals[who], task_id))
        except TaskNotCancellable:
            assert before.is_terminal
            return
        if before is TaskStatus.PENDING:
            assert after.status is TaskStatus.FAILED
            assert after.error is not None
            assert after.error.code == "request_cancelled"
            self.expected[who] += PRICE
        else:
            assert after.status is TaskStatus.PROCESSING
            assert after.cancel_requested
            self.cancel_requested.add(task_id)

    @precondition(lambda self: self.processing)
    @rule(pick=st.integers(0, 10**6))
    def lease_expires_and_a_late_worker_is_fenced(self, pick: int) -> None:
        task = sorted(self.processing.values(), key=lambda t: t.id)[pick % len(self.processing)]
        self.clock_offset += 3600
        requeued = self.run(self.services.reaper.reap())
        for held in list(self.processing):
            if held in self.cancel_requested:
                # Its owner asked to cancel it: the reaper ends it, releasing the credits.
                assert held not in requeued
                assert self.status(held) is TaskStatus.FAILED
                self.expected[self.task_owner[held]] += PRICE
            else:
                assert held in requeued
            del self.processing[held]
        output = self.root / "late.mp4"
        output.write_bytes(b"late")
        assert self.run(self.services.runs.complete(task, output)) is None
        assert self.run(self.services.runs.fail(task, "service_error", "late")) is None

    @invariant()
    def books_balance(self) -> None:
        async def check() -> None:
            async with self.services.db.read() as conn:
                for who, principal in enumerate(self.principals):
                    balance = await ledger_rows.balance_cents(conn, principal.account_id)
                    assert balance == self.expected[who]
                    assert balance >= 0
                    assert balance == await ledger_rows.entries_sum(conn, principal.account_id)
                for task_id in self.task_owner:
                    task = await task_rows.get_task(conn, task_id)
                    assert task is not None
                    settled = await ledger_rows.settlements(conn, task_id)
                    if task.status is TaskStatus.COMPLETED:
                        assert settled == ["capture"]
                    elif task.status is TaskStatus.FAILED:
                        assert settled == ["release"]
                    else:
                        assert settled == []

        self.run(check())


LedgerMachine.TestCase.settings = settings(
    max_examples=25,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_ledger_books_balance_after_every_step = LedgerMachine.TestCase
