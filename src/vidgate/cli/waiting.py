"""Waiting for a task and what comes after: the progress bar, the cancel prompt on Ctrl-C, and
the download of a finished task's video."""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import NoReturn

import typer
from rich.filesize import decimal

from vidgate.cli.failures import (
    EXIT_INTERRUPTED,
    EXIT_TASK_FAILED,
    EXIT_TIMEOUT,
    Failure,
    fail,
    failure_for,
)
from vidgate.cli.output import console, error_text, errors, print_json, task_data
from vidgate.cli.progress import TaskBar, download_bar, started
from vidgate.client import Client, Task, VidgateError, WaitTimeout


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


@contextlib.contextmanager
def sigint_interrupts() -> Iterator[None]:
    """While the CLI waits (on the server, a download or the person at the terminal), SIGINT
    raises KeyboardInterrupt in the main thread at once; the previous handler comes back after.

    The CLI installs its own handler because the one it inherits may be SIG_IGN (a background
    job of a non-interactive shell, nohup-like launchers, a test runner started that way):
    Python then installs none, and a Ctrl-C or ``kill -INT`` left the wait polling until the
    task ended. Python runs the handler in the main thread, and the bars' refresh threads keep
    SIGINT blocked (``progress``), so the kernel hands it to the main thread, whose long
    poll or blocking read returns EINTR and raises instead of finishing first.
    """
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set from the main thread
        return
    previous = signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGINT, _interrupt)
    try:
        yield
    finally:
        # None: a handler set outside Python, which cannot be put back; the default is closest.
        signal.signal(signal.SIGINT, signal.SIG_DFL if previous is None else previous)


class Interrupted(Exception):
    """Ctrl-C while waiting for a task."""

    def __init__(self, task: Task) -> None:
        super().__init__(task.id)
        self.task = task


def wait(client: Client, task: Task, *, timeout: float | None, show: bool) -> Task:
    """Wait for the task to finish; on Ctrl-C raise ``Interrupted`` with the last task seen."""
    if task.done:
        return task
    bar = TaskBar(task, errors, show)
    try:
        # The handler is in place before the line below: once a script has seen the line, a
        # SIGINT stops the wait.
        with sigint_interrupts():
            # Even with no live bar (--json, a log) one line tells which task this is. Written
            # straight to the file: a Ctrl-C inside Rich's buffered print could repeat the line
            # with the next message.
            errors.file.write(f"waiting for {task.id} ({task.model})\n")
            errors.file.flush()
            with bar:
                return client.tasks.wait(task.id, timeout=timeout, on_progress=bar.update)
    except KeyboardInterrupt:
        raise Interrupted(bar.last) from None
    except WaitTimeout:
        raise Failure(
            f"task {task.id} did not finish within {timeout:g} s; it keeps running on the server"
            f" (see `vidgate tasks wait {task.id}`)",
            EXIT_TIMEOUT,
        ) from None
    except VidgateError as error:
        # The server went away mid-wait: say which task to pick up again.
        failure = failure_for(error)
        failure.message += f" (task {task.id}: `vidgate tasks wait {task.id}`)"
        raise failure from None


def download(client: Client, task: Task, out: Path, *, show: bool) -> Path:
    progress = download_bar(errors, show)
    bar = progress.add_task("download", total=None)

    def on_progress(done: int, total: int | None) -> None:
        progress.update(bar, completed=done, total=total)

    try:
        with sigint_interrupts(), started(progress):
            return client.download(task, out, on_progress=on_progress)
    except KeyboardInterrupt:
        raise Failure(
            f"interrupted; the video stays on the server: `vidgate tasks download {task.id}`",
            EXIT_INTERRUPTED,
        ) from None


def ask_cancel(client: Client, task: Task, *, interactive: bool, as_json: bool) -> NoReturn:
    """After Ctrl-C while waiting: cancel the task if the person at the terminal says so, else
    say how to pick it up again. Exits 130 either way."""
    if interactive:
        try:
            with sigint_interrupts():  # a second Ctrl-C at the prompt is a no
                errors.print(f"Cancel task {task.id}? [y/N] ", end="")
                answer = sys.stdin.readline().strip().lower()
        except (KeyboardInterrupt, EOFError):
            answer = ""
            errors.print()
        if answer in ("y", "yes"):
            cancelled = client.tasks.cancel(task.id)
            errors.print(f"Cancelled task {cancelled.id}.")
            raise typer.Exit(EXIT_INTERRUPTED)
    if as_json:
        print_json(task_data(task))
    fail(
        f"interrupted; task {task.id} keeps running: `vidgate tasks wait {task.id}`,"
        f" `vidgate tasks download {task.id}`",
        EXIT_INTERRUPTED,
    )


def report_finished(
    client: Client, task: Task, *, out: Path | None, as_json: bool, show: bool
) -> None:
    """Report a finished task: download a completed one, fail with status 1 otherwise."""
    if task.status != "completed":
        if as_json:
            print_json(task_data(task))
        fail(f"task {task.id} failed: {error_text(task)}", EXIT_TASK_FAILED)
    target = Path(f"{task.id}.mp4")
    if out is not None:
        target = out / target if out.is_dir() else out
    path = download(client, task, target, show=show)
    if as_json:
        print_json({**task_data(task), "file": str(path.resolve())})
    else:
        console.print(
            f"Saved {task.id} to {path} ({decimal(path.stat().st_size)}).",
            highlight=False,
            soft_wrap=True,
        )
