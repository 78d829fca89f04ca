"""The lifecycle's decisions, case by case: every race that used to need a database (cancel vs
completion, lease loss vs a late result, deadline vs retry) is a task as stored and an event."""

from __future__ import annotations

from dataclasses import replace

import pytest

from support import stored_task
from vidgate.tasks import lifecycle
from vidgate.tasks.lifecycle import (
    CANCELLED,
    CANCELLED_BEFORE_START,
    DEADLINE_PASSED,
    CancelRequested,
    Crashed,
    Decision,
    EngineFailed,
    Event,
    Finish,
    FlagCancel,
    HandedBack,
    LeaseLapsed,
    Limits,
    NotCancellable,
    Overdue,
    Requeue,
    Result,
    Stale,
    Stopped,
)
from vidgate.tasks.model import Task, TaskError, TaskStatus

NOW = 1_800_000_000.0
LIMITS = Limits(max_attempts=3, max_run_seconds=600)
FAILED, COMPLETED = TaskStatus.FAILED, TaskStatus.COMPLETED
SORRY = TaskError("generation_failed_no_content", "Nothing came out.")

PENDING = stored_task(NOW - 100)
# Attempt 2 holds it (attempt 1 crashed once), running since 50 s, its run limit ahead.
RUNNING = replace(
    PENDING,
    status=TaskStatus.PROCESSING,
    progress=40,
    attempt=2,
    retries=1,
    started_at=NOW - 50,
    run_deadline_at=NOW + 550,
)
CANCEL_ASKED = replace(RUNNING, cancel_requested=True)
PAST_DEADLINE = replace(RUNNING, deadline_at=NOW - 1)
DONE = replace(RUNNING, status=COMPLETED, progress=100, result_key="results/x-2.mp4")
GAVE_UP = replace(RUNNING, status=FAILED, error=SORRY)
KEY = "results/task-unified-1800000000-abcdefgh-2.mp4"

CASES: list[tuple[str, Task, Event, Decision]] = [
    # --- a result ---
    ("a result completes the task", RUNNING, Result(2, KEY), Finish(COMPLETED, 2, result_key=KEY)),
    ("cancel wins over a result", CANCEL_ASKED, Result(2, KEY), Finish(FAILED, 2, CANCELLED)),
    ("a late result of a lost lease", RUNNING, Result(1, KEY), Stale("it is attempt 2 now")),
    (
        "a late result of a requeued task",
        replace(RUNNING, status=TaskStatus.PENDING),
        Result(2, KEY),
        Stale("it is pending"),
    ),
    ("a result after a sweep failed it", GAVE_UP, Result(2, KEY), Stale("it is failed")),
    # --- failures ---
    ("an engine's definite failure", RUNNING, EngineFailed(2, SORRY), Finish(FAILED, 2, SORRY)),
    ("a stale attempt's failure", RUNNING, EngineFailed(1, SORRY), Stale("it is attempt 2 now")),
    ("a stop after a cancel", CANCEL_ASKED, Stopped(2), Finish(FAILED, 2, CANCELLED)),
    ("a stop at the deadline", PAST_DEADLINE, Stopped(2), Finish(FAILED, 2, DEADLINE_PASSED)),
    (
        "a crash goes back to the queue after 2**retries s",
        RUNNING,
        Crashed(2, "boom"),
        Requeue(2, NOW + 2, reason="boom"),
    ),
    (
        "a crash after a cancel ends it",
        CANCEL_ASKED,
        Crashed(2, "boom"),
        Finish(FAILED, 2, CANCELLED),
    ),
    (
        "deadline wins over a retry",
        PAST_DEADLINE,
        Crashed(2, "boom"),
        Finish(FAILED, 2, DEADLINE_PASSED),
    ),
    (
        "the last attempt's crash fails it",
        replace(RUNNING, retries=2, attempt=3),
        Crashed(3, "boom"),
        Finish(FAILED, 3, TaskError("service_error", "The task could not be run: boom, 3 times.")),
    ),
    ("a stale attempt's crash", RUNNING, Crashed(1, "boom"), Stale("it is attempt 2 now")),
    # --- leases ---
    (
        "a lapsed lease goes back, fenced on still being lapsed",
        RUNNING,
        LeaseLapsed(2),
        Requeue(2, NOW + 2, only_expired=True, reason="its worker stopped renewing the lease"),
    ),
    (
        "a lapsed lease of a cancelled task",
        CANCEL_ASKED,
        LeaseLapsed(2),
        Finish(FAILED, 2, CANCELLED),
    ),
    (
        "a lapsed lease past the deadline",
        PAST_DEADLINE,
        LeaseLapsed(2),
        Finish(FAILED, 2, DEADLINE_PASSED),
    ),
    (
        "a hand-back uses up no attempt",
        RUNNING,
        HandedBack(2),
        Requeue(2, NOW, counts=False, reason="handed back"),
    ),
    ("a stale hand-back", RUNNING, HandedBack(1), Stale("it is attempt 2 now")),
    # --- deadlines ---
    (
        "a pending task past its deadline",
        replace(PENDING, deadline_at=NOW - 1),
        Overdue(),
        Finish(FAILED, None, DEADLINE_PASSED),
    ),
    (
        "a running task past its deadline",
        PAST_DEADLINE,
        Overdue(),
        Finish(FAILED, 2, DEADLINE_PASSED),
    ),
    (
        "a running task past its model's run limit",
        replace(RUNNING, run_deadline_at=NOW - 1),
        Overdue(),
        Finish(
            FAILED,
            2,
            TaskError("generation_timeout", "The video was not ready within 600 seconds."),
        ),
    ),
    ("nothing is overdue", RUNNING, Overdue(), Stale("no deadline has passed")),
    (
        "a finished task is never overdue",
        replace(DONE, deadline_at=NOW - 1),
        Overdue(),
        Stale("it is completed"),
    ),
    # --- cancels ---
    (
        "a pending cancel ends it",
        PENDING,
        CancelRequested(),
        Finish(FAILED, None, CANCELLED_BEFORE_START),
    ),
    ("a running cancel flags it", RUNNING, CancelRequested(), FlagCancel(2)),
    ("a second cancel", CANCEL_ASKED, CancelRequested(), Stale("its cancel was already requested")),
    ("completion wins over a later cancel", DONE, CancelRequested(), NotCancellable(COMPLETED)),
    ("a failed task cannot be cancelled", GAVE_UP, CancelRequested(), NotCancellable(FAILED)),
]


@pytest.mark.parametrize(
    ("task", "event", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_decide(task: Task, event: Event, expected: Decision) -> None:
    assert lifecycle.decide(task, event, now=NOW, limits=LIMITS) == expected


def test_the_backoff_doubles_per_retry_up_to_a_minute() -> None:
    waits = []
    for retries in range(9):
        task = replace(RUNNING, retries=retries, attempt=retries + 1)
        decision = lifecycle.decide(
            task, Crashed(retries + 1, "boom"), now=NOW, limits=Limits(max_attempts=100)
        )
        assert isinstance(decision, Requeue)
        waits.append(decision.available_at - NOW)
    assert waits == [1, 2, 4, 8, 16, 32, 60, 60, 60]


def test_only_a_completed_ending_captures_the_credits() -> None:
    assert Finish(COMPLETED, 2, result_key=KEY).captured
    assert not Finish(FAILED, 2, CANCELLED).captured
    assert not Finish(FAILED, None, CANCELLED_BEFORE_START).captured


def test_a_workers_failure_report_becomes_its_event() -> None:
    assert lifecycle.failure(2, "request_cancelled", "whatever it says") == Stopped(2)
    assert lifecycle.failure(2, "service_error", "upstream 503", retryable=True) == Crashed(
        2, "upstream 503"
    )
    assert lifecycle.failure(2, SORRY.code, SORRY.message) == EngineFailed(2, SORRY)


def test_every_cancellation_has_the_one_code() -> None:
    for error in (CANCELLED, CANCELLED_BEFORE_START, DEADLINE_PASSED):
        assert error.code == "request_cancelled"


def test_a_purge_deletes_the_inputs_and_the_result() -> None:
    assert lifecycle.purgeable_keys(DONE) == [
        *DONE.image_keys,
        f"inputs/{DONE.id}",
        "results/x-2.mp4",
    ]
    assert lifecycle.purgeable_keys(GAVE_UP) == [*GAVE_UP.image_keys, f"inputs/{GAVE_UP.id}"]
