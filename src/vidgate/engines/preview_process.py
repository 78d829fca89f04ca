"""The preview render in child processes, kept loaded between tasks, so that it never takes the
event loop's time: a render in the server's own thread holds the GIL and moved /healthz p99 from
~100 ms to ~700 ms. One child per render at a time; a crash fails that task, never the server."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event
from pathlib import Path
from types import FrameType
from typing import Any, Final

from vidgate.engines.base import (
    EngineFailure,
    GenerationCancelled,
    GenerationContext,
    GenerationRequest,
)
from vidgate.engines.child_process import ChildProcess

logger = logging.getLogger(__name__)

# How often the parent's thread looks at the cancel flags while it waits for the child.
_POLL_SECONDS: Final = 0.02
# The child's CPU priority below the server's: on a small machine the API answers first.
NICE: Final = 10

# Messages, as tuples (cheap to pickle): parent to child ("render", request, output) | ("exit",);
# child to parent ("progress", fraction) | ("log", logger, level, text) | ("done",) |
# ("cancelled",) | ("failed", code, message, detail), the answer, after ("leaving",) when the
# child got a SIGTERM during the render and exits after it.


class _PipeLog(logging.Handler):
    """The child's log records, sent to the parent, which logs them under the same names."""

    def __init__(self, send: Callable[[tuple[Any, ...]], None]) -> None:
        super().__init__(logging.INFO)
        self._send = send

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._send(("log", record.name, record.levelno, record.getMessage()))
        except Exception:  # the parent is gone: nothing to tell
            self.handleError(record)


def serve(connection: Connection, stop: Event, nice: int) -> None:
    """The child's main function: read the fonts once, then render what the parent sends."""
    lock = threading.Lock()  # the render thread and the encoder's log calls share the pipe

    def send(message: tuple[Any, ...]) -> None:
        with lock:
            connection.send(message)

    busy, leave = [False], [False]

    def on_term(signum: int, frame: FrameType | None) -> None:
        # A SIGTERM to the whole process group (systemd, a terminal) must not fail the task in
        # hand: the server's own shutdown decides. Idle, leave now; busy, after the render.
        if not busy[0]:
            raise SystemExit(0)
        leave[0] = True

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the server to handle
    signal.signal(signal.SIGTERM, on_term)
    with contextlib.suppress(OSError):
        os.nice(nice)
    with contextlib.suppress(AttributeError, OSError):  # Linux only
        # SCHED_IDLE on top: a waking server thread preempts the render at once, where nice alone
        # lets it wait out the render's time slice. The encoder's threads inherit it.
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    root.addHandler(_PipeLog(send))

    from vidgate.engines.fonts import default_chain
    from vidgate.engines.preview import render_preview

    default_chain()  # the fonts' cmaps, read before the first task rather than during it
    while True:
        try:
            message = connection.recv()
        except (EOFError, OSError):  # the parent is gone
            return
        if message[0] != "render":
            return
        busy[0] = True
        _, request, output = message
        context = GenerationContext(progress=lambda fraction: send(("progress", fraction)))
        try:
            render_preview(request, Path(output), context, stop)
            reply: tuple[Any, ...] = ("done",)
        except GenerationCancelled:
            reply = ("cancelled",)
        except EngineFailure as failure:
            reply = ("failed", failure.code, failure.message, failure.detail)
        except Exception as error:
            logging.getLogger(__name__).exception("task %s: the render failed", request.task_id)
            reply = ("failed", "service_error", "the preview render failed", repr(error))
        busy[0] = False
        try:
            if leave[0]:
                send(("leaving",))  # before the answer, so the parent never sends it more
            send(reply)
        except OSError:
            return
        if leave[0]:
            return


class _Child(ChildProcess):
    """One render process; ``leaving`` once it said it exits after this render (a SIGTERM)."""

    def __init__(self, nice: int) -> None:
        super().__init__(
            serve,
            (nice,),
            name="vidgate-preview",
            label="the preview render process",
            poll_seconds=_POLL_SECONDS,
        )
        self.leaving = False


class RenderProcesses:
    """Render processes for the preview engine: one per render in progress, kept for the next.

    ``render`` blocks (run it in a thread); it starts a child when none is idle (a spawn and the
    font cmaps take a second or two, paid once per child). A cancel stops the child's render at
    its next frame or measurement; a child that does not stop within ``stop_timeout`` is
    killed. A child that dies fails its task with ``resource_exhausted`` (SIGKILL, most often
    the out-of-memory killer) or ``service_error``, and the next task gets a fresh child.
    """

    def __init__(self, *, nice: int = NICE, stop_timeout: float = 10.0) -> None:
        self.nice, self.stop_timeout = nice, stop_timeout
        self._idle: list[_Child] = []
        self._all: set[_Child] = set()
        self._lock = threading.Lock()
        self._closed = False

    @property
    def pids(self) -> list[int]:
        with self._lock:
            return sorted(child.process.pid for child in self._all if child.process.pid)

    def render(
        self,
        request: GenerationRequest,
        output: Path,
        context: GenerationContext,
        stop: threading.Event,
    ) -> None:
        def cancelled() -> bool:
            return context.cancelled.is_set() or stop.is_set()

        if cancelled():
            raise GenerationCancelled
        child = self._take()
        try:
            output.parent.mkdir(parents=True, exist_ok=True)
            child.stop.clear()
            child.connection.send(("render", request, str(output)))
            answer = self._follow(child, request.task_id, context, cancelled)
        except BaseException:
            self._discard(child)
            for partial in output.parent.glob(f".{output.name}.*.part"):
                partial.unlink(missing_ok=True)
            raise
        if child.leaving:
            self._discard(child, gently=True)
        else:
            self._give_back(child)
        if answer[0] == "cancelled":
            raise GenerationCancelled
        if answer[0] == "failed":
            _, code, text, detail = answer
            raise EngineFailure(code, text, detail=detail)

    def _follow(
        self,
        child: _Child,
        task_id: str,
        context: GenerationContext,
        cancelled: Callable[[], bool],
    ) -> tuple[Any, ...]:
        """Relay the child's progress and logs until its answer (done, cancelled or failed);
        raises when the child dies or does not stop in time."""
        deadline: float | None = None
        while True:
            if deadline is None and cancelled():
                child.stop.set()
                deadline = time.monotonic() + self.stop_timeout
            elif deadline is not None and time.monotonic() > deadline:
                logger.warning("task %s: the preview process did not stop; killing it", task_id)
                raise GenerationCancelled
            try:
                message = child.receive()
            except (EOFError, OSError):
                failure = child.failure()
                logger.error("task %s: %s (%s)", task_id, failure.message, failure.detail or "")
                raise failure from None
            if message is None:
                continue
            if message[0] == "progress":
                if deadline is None:  # frames after a cancel are not progress
                    context.progress(message[1])
            elif message[0] == "log":
                logging.getLogger(message[1]).log(message[2], "%s", message[3])
            elif message[0] == "leaving":
                child.leaving = True
            else:
                return message

    def _take(self) -> _Child:
        with self._lock:
            while self._idle:
                child = self._idle.pop()
                if child.process.is_alive():
                    return child
                self._all.discard(child)
                child.close()
            child = _Child(self.nice)
            self._all.add(child)
            return child

    def _give_back(self, child: _Child) -> None:
        with self._lock:
            if child in self._all and child not in self._idle and not self._closed:
                self._idle.append(child)

    def _discard(self, child: _Child, *, gently: bool = False) -> None:
        with self._lock:
            self._all.discard(child)
        if gently:
            child.close()
        else:
            child.kill()

    def close(self) -> None:
        """Stop every child (at shutdown); renders still running fail."""
        with self._lock:
            self._closed = True
            children, self._idle, self._all = list(self._all), [], set()
        for child in children:
            child.close()
