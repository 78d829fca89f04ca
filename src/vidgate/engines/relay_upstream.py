"""What the relay makes of its upstream's answers: SDK errors and finished tasks as task errors.

The upstream is another server of this API, reached through the SDK (``vidgate.client``). A
create it refused took nothing (``EngineRefused``: the model's next engine may try), except a
refused request, which every engine would refuse; a create that never got an answer may have
made a task (``EngineFailure``). Nothing here shows the relay's API key.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, cast, get_args

from vidgate.client import APIConnectionError, Task, TaskError, VidgateError
from vidgate.client.retry import RetryPolicy
from vidgate.engines.base import EngineFailure, EngineRefused, TaskErrorCode

TASK_ERROR_CODES: Final[frozenset[str]] = frozenset(get_args(TaskErrorCode))
# The upstream's own words are kept, up to this many characters.
MESSAGE_LIMIT: Final = 500
KEY_REFUSED: Final = "the relay's API key was refused"


@dataclass(frozen=True)
class UpstreamErrors:
    """Maps the upstream's failures to the task error to report (``retry``: what was retried)."""

    api_key: str
    retry: RetryPolicy

    def redact(self, text: str) -> str:
        return text.replace(self.api_key, "[api key]") if self.api_key else text

    def create_failed(self, error: VidgateError) -> EngineFailure:
        if self._passing(error):
            return self._unavailable("create", error)
        status = error.status_code
        message = self._message(error)
        detail = f"upstream create: HTTP {status}: {message}"
        if error.code == "invalid_response":
            detail = "upstream create: the answer is not a task object"
        elif status in (400, 413):
            return EngineFailure("invalid_parameters", message, detail=detail)
        elif status == 402:
            return EngineRefused(
                "resource_exhausted", "The upstream account is out of credits.", detail=detail
            )
        elif status in (401, 403):
            detail = f"upstream create: HTTP {status}: {KEY_REFUSED}"
        # The upstream answered without taking the task: the model's next engine may.
        return EngineRefused(
            "service_error", "The upstream video service refused the task.", detail=detail
        )

    def poll_failed(self, error: VidgateError) -> EngineFailure:
        if self._passing(error):
            return self._unavailable("poll", error)
        status = error.status_code
        if error.code == "invalid_response":
            detail = "upstream poll: the answer is not a task object"
        elif status in (401, 403):
            detail = f"upstream poll: HTTP {status}: {KEY_REFUSED}"
        else:
            detail = f"upstream poll: HTTP {status}: {self._message(error)}"
        return EngineFailure(
            "service_error", "The upstream video service lost track of the task.", detail=detail
        )

    def download_failed(self, error: VidgateError) -> EngineFailure:
        if error.code == "download_too_large":
            return EngineFailure(
                "generation_failed_no_content",
                "The upstream's video is too large.",
                detail=f"upstream result: {self._message(error)}",
            )
        if self._passing(error):
            return self._unavailable("result download", error)
        what = f"HTTP {error.status_code}" if error.status_code else self._message(error)
        return EngineFailure(
            "generation_failed_no_content",
            "The upstream's video could not be downloaded.",
            detail=f"upstream result download: {what}",
        )

    def finished_video(self, upstream_id: str, task: Task) -> str | None:
        """The video URL of a completed task, None while it runs; a failed task's failure is
        raised (a SPEC code passes through, any other is ``unknown_error``)."""
        if task.status == "completed":
            if not task.results:
                raise EngineFailure(
                    "generation_failed_no_content",
                    "The upstream task has no video.",
                    detail=f"upstream task {upstream_id}: completed with no results",
                )
            return task.results[0]
        if task.status != "failed":
            return None
        error = task.error or TaskError()
        code = (
            cast(TaskErrorCode, error.code) if error.code in TASK_ERROR_CODES else "unknown_error"
        )
        message = self.redact(error.message) or "The upstream task failed."
        raise EngineFailure(
            code, message, detail=f"upstream task {upstream_id}: {error.code}: {message}"
        )

    def _passing(self, error: VidgateError) -> bool:
        """A failure the SDK retried until the policy gave up: the upstream was unavailable."""
        if isinstance(error, APIConnectionError) or error.code == "idempotency_conflict":
            return True
        return error.status_code is not None and self.retry.retryable_status(error.status_code)

    def _unavailable(self, what: str, error: VidgateError) -> EngineFailure:
        reason = self._message(error)
        if error.status_code is not None:
            reason = f"HTTP {error.status_code}"
        return EngineFailure(
            "service_unavailable",
            "The upstream video service is unavailable; try again later.",
            detail=f"upstream {what}: {reason} after {error.attempts} attempts",
        )

    def _message(self, error: VidgateError) -> str:
        return self.redact(error.message)[:MESSAGE_LIMIT]
