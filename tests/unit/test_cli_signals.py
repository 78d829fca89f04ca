"""The CLI's own SIGINT handling while it waits: it interrupts at once, in the main thread,
whatever handler the process started with, and puts that handler back afterwards."""

from __future__ import annotations

import io
import signal
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from rich.console import Console
from rich.progress import Progress

from vidgate.cli.progress import started
from vidgate.cli.waiting import sigint_interrupts

# A bound for the blocking read below: it only runs out if the interrupt never came.
BOUND = 10.0


@pytest.fixture
def sigint_ignored() -> Iterator[None]:
    """SIGINT ignored, as a background job of a script inherits it; pytest's own after."""
    assert threading.current_thread() is threading.main_thread()
    before = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, before)


def interrupt_main_thread() -> None:
    assert threading.main_thread().ident is not None
    signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)


@pytest.mark.usefixtures("sigint_ignored")
def test_sigint_interrupts_a_blocking_read_even_when_it_was_ignored() -> None:
    left, right = socket.socketpair()
    left.settimeout(BOUND)
    sender = threading.Thread(target=interrupt_main_thread)

    def read_while_interrupted() -> None:
        with sigint_interrupts():
            sender.start()
            left.recv(1)  # nothing is ever sent: only the interrupt ends this read

    try:
        with pytest.raises(KeyboardInterrupt):
            read_while_interrupted()
        sender.join(BOUND)
    finally:
        left.close()
        right.close()

    assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN


def test_the_previous_handler_comes_back_after_the_wait() -> None:
    seen: list[int] = []

    def mine(signum: int, frame: object) -> None:
        seen.append(signum)

    before = signal.signal(signal.SIGINT, mine)
    try:
        with sigint_interrupts():
            assert signal.getsignal(signal.SIGINT) is not mine
        assert signal.getsignal(signal.SIGINT) is mine
        signal.raise_signal(signal.SIGINT)
    finally:
        signal.signal(signal.SIGINT, before)

    assert seen == [signal.SIGINT]


def blocked_signals(native_id: int) -> int:
    """The thread's blocked-signal mask, from procfs (bit n-1 is signal n)."""
    status = Path(f"/proc/self/task/{native_id}/status").read_text()
    line = next(line for line in status.splitlines() if line.startswith("SigBlk:"))
    return int(line.split()[1], 16)


def test_a_bar_refresh_thread_never_takes_sigint_from_the_main_thread() -> None:
    console = Console(file=io.StringIO(), force_terminal=True)
    progress = Progress(console=console, auto_refresh=True)
    before = set(threading.enumerate())

    with started(progress):
        new = [thread for thread in threading.enumerate() if thread not in before]
        assert new, "the bar started no refresh thread"
        masks = [blocked_signals(thread.native_id or 0) for thread in new]
        main_mask = blocked_signals(threading.main_thread().native_id or 0)

    sigint_bit = 1 << (signal.SIGINT - 1)
    assert all(mask & sigint_bit for mask in masks)
    assert not main_mask & sigint_bit
