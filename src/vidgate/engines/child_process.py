"""One engine child process and its pipe: how the preview and diffusers engines keep their work
out of the server's process, so a crash or an out-of-memory there fails a task, never the server.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import signal
from collections.abc import Callable
from typing import Any

from vidgate.engines.base import EngineFailure


class ChildProcess:
    """A spawned process running ``target(connection, stop, *args)``; ``stop`` asks it to leave
    the current job. Messages both ways are tuples (cheap to pickle)."""

    def __init__(
        self,
        target: Callable[..., None],
        args: tuple[Any, ...],
        *,
        name: str,
        label: str,
        poll_seconds: float,
    ) -> None:
        context = multiprocessing.get_context("spawn")  # fork would copy the server's threads
        self.connection, child_end = context.Pipe()
        self.stop = context.Event()
        self.label = label  # what the process is called in a failure: "the model process"
        self.poll_seconds = poll_seconds
        self.process = context.Process(
            target=target, args=(child_end, self.stop, *args), name=name, daemon=True
        )
        self.process.start()
        child_end.close()  # so that a dead child reads as EOF here

    def receive(self) -> tuple[Any, ...] | None:
        """The next message, None when there is none yet; raises EOFError once the child is gone."""
        if self.connection.poll(self.poll_seconds):
            message: tuple[Any, ...] = self.connection.recv()
            return message
        if not self.process.is_alive() and not self.connection.poll(0):
            raise EOFError
        return None

    def failure(self) -> EngineFailure:
        """Why the child died: SIGKILL is most often the kernel's out-of-memory killer."""
        self.process.join(5)
        code = self.process.exitcode
        if code == -signal.SIGKILL:
            return EngineFailure("resource_exhausted", f"{self.label} was killed (out of memory?)")
        return EngineFailure("service_error", f"{self.label} crashed", detail=f"exit {code}")

    def kill(self) -> None:
        self.process.kill()
        self.process.join(5)
        self.connection.close()

    def close(self, timeout: float = 5.0) -> None:
        """Ask the child to exit (``("exit",)``), and kill it if it has not within ``timeout``."""
        if self.process.is_alive():
            with contextlib.suppress(OSError):
                self.connection.send(("exit",))
            self.process.join(timeout)
        if self.process.is_alive():
            self.kill()
        else:
            self.connection.close()
