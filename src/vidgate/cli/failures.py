"""How the client commands fail: one line on stderr and an exit status, the same for every
command (docs/cli.md):

- 0 success;
- 1 the task failed or was cancelled (``generate``, ``tasks wait``), or has no video yet
  (``tasks download``);
- 2 usage or configuration error (no API key, a bad ``--image`` path, a bad ``--aspect`` ...);
- 3 the server refused the request (a 4xx answer): ``error: <code>: <message>``;
- 4 the server is unavailable (5xx after the SDK's retries, connection refused, timeouts);
- 124 ``--timeout`` ran out before the task finished (it keeps running on the server);
- 130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import NoReturn

import typer
from rich.text import Text

from vidgate.cli.output import errors
from vidgate.client import APIConnectionError, APITimeoutError, VidgateError, WaitTimeout

EXIT_TASK_FAILED = 1
EXIT_USAGE = 2
EXIT_API_ERROR = 3
EXIT_UNAVAILABLE = 4
EXIT_TIMEOUT = 124
EXIT_INTERRUPTED = 130


class Failure(Exception):
    """A one-line error for stderr and the exit status that goes with it."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


def fail(message: str, exit_code: int) -> NoReturn:
    raise Failure(message, exit_code)


@contextlib.contextmanager
def reported_failures() -> Iterator[None]:
    """Turn failures, SDK errors and Ctrl-C into one line on stderr and a documented status."""
    try:
        try:
            yield
        except KeyboardInterrupt:
            fail("interrupted", EXIT_INTERRUPTED)
        except WaitTimeout as error:
            fail(error.message, EXIT_TIMEOUT)
        except VidgateError as error:
            raise failure_for(error) from None
    except Failure as failure:
        errors.print(Text.assemble(("error:", "red"), " ", failure.message))
        raise typer.Exit(failure.exit_code) from None


def failure_for(error: VidgateError) -> Failure:
    """The line and exit status for an error of the SDK."""
    status = error.status_code
    if isinstance(error, APIConnectionError):
        cause = error.__cause__
        detail = f"{type(cause).__name__}: {cause}" if cause is not None else error.message
        if isinstance(error, APITimeoutError):
            return Failure(f"the server did not answer in time ({detail})", EXIT_UNAVAILABLE)
        return Failure(f"cannot reach the server: {detail}", EXIT_UNAVAILABLE)
    text = f"{error.code}: {error.message}" if error.code else error.message
    if status is None or status >= 500:
        # No status: an answer the SDK could not use (a completed task without a video...).
        return Failure(text, EXIT_UNAVAILABLE)
    return Failure(text, EXIT_API_ERROR)
