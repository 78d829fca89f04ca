"""The task lifecycle's decisions, as values: given a task as stored and what happened to it,
what it becomes, whether its credits are captured or released, and whether a callback goes out.

Nothing here reads a clock, a database or an engine. ``tasks.transitions`` is the one writer
that applies a decision, with a compare-and-set on the attempt it was made for: when the task
changed in between (a cancel, another attempt, a sweep), the write matches no row, the writer
reads the task again and asks again. So every race comes down to deciding on the task as it is
now, which the table of cases in ``tests/unit/test_lifecycle.py`` covers without a database.
"""

from __future__ import annotations

from dataclasses import dataclass

from vidgate.tasks.model import Task, TaskError, TaskStatus

# The one cancellation error: whoever stops a task for its owner (the API, a worker, a sweep)
# ends it with this code.
CANCELLED = TaskError("request_cancelled", "The task was cancelled.")
CANCELLED_BEFORE_START = TaskError("request_cancelled", "The task was cancelled before it started.")
DEADLINE_PASSED = TaskError(
    "request_cancelled", "The task was cancelled: its Cancel-After deadline passed."
)
# A crashed attempt waits 1, 2, 4... seconds before the next, at most this long.
MAX_RETRY_BACKOFF = 60.0


@dataclass(frozen=True)
class Limits:
    """A model's rules for its tasks (from the registry)."""

    max_attempts: int = 3
    max_run_seconds: float = 900.0


# --- what happened --------------------------------------------------------------------------


@dataclass(frozen=True)
class Result:
    """The attempt made the video, stored under ``result_key``."""

    attempt: int
    result_key: str


@dataclass(frozen=True)
class EngineFailed:
    """The engine gave a definite answer: this task cannot be made (no retry)."""

    attempt: int
    error: TaskError


@dataclass(frozen=True)
class Crashed:
    """The attempt ended without an answer (an engine crash, a retryable remote failure)."""

    attempt: int
    reason: str


@dataclass(frozen=True)
class Stopped:
    """The engine stopped because it was told the task was cancelled or past its deadline."""

    attempt: int


@dataclass(frozen=True)
class HandedBack:
    """The worker is shutting down and returns the task unfinished; no attempt is used up."""

    attempt: int


@dataclass(frozen=True)
class LeaseLapsed:
    """A sweep found the attempt's lease expired: its worker stopped renewing it."""

    attempt: int


@dataclass(frozen=True)
class Overdue:
    """A sweep found the task past its owner's Cancel-After deadline or its run limit."""


@dataclass(frozen=True)
class CancelRequested:
    """The owner asked to cancel."""


Event = (
    Result | EngineFailed | Crashed | Stopped | HandedBack | LeaseLapsed | Overdue | CancelRequested
)


# --- what to do -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Finish:
    """End the task. ``attempt`` is the one that must still hold it (None: it must be pending).

    The settlement follows the status: a completed task's reservation is captured, any other
    ending releases it. The owner's callback, if any, is written in the same transaction.
    """

    status: TaskStatus
    attempt: int | None
    error: TaskError | None = None
    result_key: str | None = None

    @property
    def captured(self) -> bool:
        return self.status is TaskStatus.COMPLETED


@dataclass(frozen=True)
class Requeue:
    """Back to the queue, fenced by ``attempt``; ``counts``: the attempt is used up.
    ``only_expired``: only while its lease is still lapsed (a heartbeat may renew it first)."""

    attempt: int
    available_at: float
    counts: bool = True
    only_expired: bool = False
    reason: str = ""


@dataclass(frozen=True)
class FlagCancel:
    """Mark the running task cancelled; its worker stops the engine and then ends it."""

    attempt: int


@dataclass(frozen=True)
class Stale:
    """Nothing to write: the event's attempt no longer holds the task (or nothing is due)."""

    why: str


@dataclass(frozen=True)
class NotCancellable:
    """A cancel of a task that has already ended."""

    status: TaskStatus


Decision = Finish | Requeue | FlagCancel | Stale | NotCancellable


def decide(task: Task, event: Event, *, now: float, limits: Limits) -> Decision:
    """What ``event`` does to ``task`` as it is stored now."""
    match event:
        case CancelRequested():
            return _on_cancel(task)
        case Overdue():
            return _on_overdue(task, now, limits)
    if (held := _holds(task, event.attempt)) is not None:
        return held
    match event:
        case Result(result_key=key):
            if task.cancel_requested:  # the owner was told it would stop: not charged
                return Finish(TaskStatus.FAILED, task.attempt, CANCELLED)
            return Finish(TaskStatus.COMPLETED, task.attempt, result_key=key)
        case EngineFailed(error=error):
            return Finish(TaskStatus.FAILED, task.attempt, error)
        case Stopped():
            return Finish(TaskStatus.FAILED, task.attempt, _why_stopped(task, now))
        case HandedBack():
            return Requeue(task.attempt, now, counts=False, reason="handed back")
        case Crashed(reason=reason):
            return _retry_or_fail(task, reason, now, limits, only_expired=False)
        case LeaseLapsed():
            # The write is fenced on the lease still being lapsed: a heartbeat may renew it
            # between the sweep's read and its write.
            reason = "its worker stopped renewing the lease"
            return _retry_or_fail(task, reason, now, limits, only_expired=True)
    raise TypeError(f"not a lifecycle event: {event!r}")  # pragma: no cover - exhaustive


def failure(attempt: int, code: str, message: str, *, retryable: bool = False) -> Event:
    """A worker's report that its attempt failed, as an event: a stop for a cancel, a crash
    when another attempt may succeed, else the engine's definite failure."""
    if code == CANCELLED.code:
        return Stopped(attempt)
    if retryable:
        return Crashed(attempt, message)
    return EngineFailed(attempt, TaskError(code, message))


def _holds(task: Task, attempt: int) -> Stale | None:
    if task.status is not TaskStatus.PROCESSING:
        return Stale(f"it is {task.status.value}")
    if task.attempt != attempt:
        return Stale(f"it is attempt {task.attempt} now")
    return None


def _on_cancel(task: Task) -> Decision:
    if task.status is TaskStatus.PENDING:
        return Finish(TaskStatus.FAILED, None, CANCELLED_BEFORE_START)
    if task.status is TaskStatus.PROCESSING:
        if task.cancel_requested:
            return Stale("its cancel was already requested")
        return FlagCancel(task.attempt)
    return NotCancellable(task.status)


def _on_overdue(task: Task, now: float, limits: Limits) -> Decision:
    attempt = task.attempt if task.status is TaskStatus.PROCESSING else None
    if task.status.is_terminal:
        return Stale(f"it is {task.status.value}")
    if task.deadline_at is not None and task.deadline_at < now:
        return Finish(TaskStatus.FAILED, attempt, DEADLINE_PASSED)
    if attempt is not None and task.run_deadline_at is not None and task.run_deadline_at < now:
        return Finish(TaskStatus.FAILED, attempt, run_limit_error(limits))
    return Stale("no deadline has passed")


def run_limit_error(limits: Limits) -> TaskError:
    return TaskError(
        "generation_timeout",
        f"The video was not ready within {limits.max_run_seconds:.0f} seconds.",
    )


def _why_stopped(task: Task, now: float) -> TaskError:
    """A stopped engine's task ends with the reason it was stopped for."""
    if task.deadline_at is not None and task.deadline_at < now and not task.cancel_requested:
        return DEADLINE_PASSED
    return CANCELLED


def _retry_or_fail(
    task: Task, reason: str, now: float, limits: Limits, *, only_expired: bool
) -> Decision:
    """An attempt ended with no answer: again after a backoff, unless nobody wants the video
    any more (cancelled, past its deadline) or the model's attempt limit is reached."""
    if task.cancel_requested:
        return Finish(TaskStatus.FAILED, task.attempt, CANCELLED)
    if task.deadline_at is not None and task.deadline_at < now:
        return Finish(TaskStatus.FAILED, task.attempt, DEADLINE_PASSED)
    if task.retries + 1 >= limits.max_attempts:
        error = TaskError(
            "service_error",
            f"The task could not be run: {reason}, {limits.max_attempts} times.",
        )
        return Finish(TaskStatus.FAILED, task.attempt, error)
    backoff = min(MAX_RETRY_BACKOFF, float(2**task.retries))
    return Requeue(
        task.attempt, now + backoff, counts=True, only_expired=only_expired, reason=reason
    )


def purgeable_keys(task: Task) -> list[str]:
    """The stored files of a finished task past retention: its inputs and its result (the
    ``inputs/<id>`` prefix too, for inputs of versions that did not record their keys)."""
    keys = [*task.image_keys, f"inputs/{task.id}"]
    if task.result_key:
        keys.append(task.result_key)
    return keys


def next_progress(current: int, fraction: float) -> int:
    """Progress while processing: 1..99, never lower than what was already reported."""
    proposed = min(99, max(1, int(fraction * 100)))
    return max(current, proposed)
