"""The client commands' progress bars: a task's status and ETA, and a download's bytes."""

from __future__ import annotations

import contextlib
import signal
import time
from collections.abc import Iterator
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    ProgressColumn,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.progress import Task as BarTask
from rich.text import Text

from vidgate.client import Task


def remaining_seconds(
    estimated: float | None, progress: float, since_change: float
) -> float | None:
    """Seconds left: the server's estimate for the part not done yet, counting down between
    progress reports; None without an estimate."""
    if not estimated or estimated <= 0:
        return None
    return max(estimated * (100 - progress) / 100 - since_change, 0.0)


def clock(seconds: float) -> str:
    """``h:mm:ss``, rounded up (a task never shows 0:00:00 left while time remains)."""
    minutes, secs = divmod(int(seconds + 0.999), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


class EtaColumn(ProgressColumn):
    """ETA from the task's ``task_info.estimated_time`` and its progress."""

    def render(self, task: BarTask) -> Text:
        if task.finished:
            return Text("ETA 0:00:00", style="progress.remaining")
        if task.fields.get("done"):  # failed: nothing left to wait for
            return Text("")
        now = time.monotonic()
        since = now - float(task.fields.get("changed", now))
        left = remaining_seconds(task.fields.get("estimated"), task.completed, since)
        text = "-:--:--" if left is None else clock(left)
        return Text(f"ETA {text}", style="progress.remaining")


class TaskBar:
    """A progress bar that follows a task: status, percentage, elapsed time and ETA (drawn on
    ``console``; off when ``show`` is false). ``last`` is the last task seen."""

    def __init__(self, task: Task, console: Console, show: bool) -> None:
        self.last = task
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(bar_width=30),
            TaskProgressColumn(),
            TimeElapsedColumn(),
            EtaColumn(),
            console=console,
            disable=not show,
        )
        self.bar = self.progress.add_task(
            describe(task), total=100, changed=time.monotonic(), estimated=None
        )
        self.update(task)

    def update(self, task: Task) -> None:
        changed = task.progress != self.last.progress or task.status != self.last.status
        self.last = task
        fields: dict[str, Any] = {
            "estimated": task.task_info.estimated_time if task.task_info else None,
            "done": task.done,
        }
        if changed:
            fields["changed"] = time.monotonic()
        self.progress.update(
            self.bar, completed=task.progress, description=describe(task), **fields
        )

    def __enter__(self) -> TaskBar:
        self._running = contextlib.ExitStack()
        self._running.enter_context(started(self.progress))
        return self

    def __exit__(self, *exc: object) -> None:
        self._running.close()


@contextlib.contextmanager
def started(progress: Progress) -> Iterator[Progress]:
    """Show the bar while the block runs. Its refresh thread starts with SIGINT blocked (a new
    thread inherits its creator's signal mask), so the kernel never hands SIGINT to it: the
    main thread gets it, and a read it is blocked in is interrupted at once."""
    if not hasattr(signal, "pthread_sigmask"):  # Windows: no signal masks, nothing to steer
        with progress:
            yield progress
        return
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        progress.start()
    finally:
        try:
            # A SIGINT that came meanwhile is delivered now, to this (the main) thread.
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        except BaseException:
            progress.stop()
            raise
    try:
        yield progress
    finally:
        progress.stop()


def describe(task: Task) -> str:
    if task.status == "pending" and task.queue_position:
        return f"pending, #{task.queue_position} in queue"
    return task.status


def download_bar(console: Console, show: bool) -> Progress:
    """Bytes downloaded, speed and time left (off when ``show`` is false)."""
    return Progress(
        TextColumn("downloading"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=not show,
    )
