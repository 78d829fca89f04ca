"""What the API answers, as pydantic models that keep any field they do not know."""

from __future__ import annotations

from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, field_validator

TaskStatus = Literal["pending", "processing", "completed", "failed"]
FINISHED: Final = frozenset({"completed", "failed"})


class _Open(BaseModel):
    """A model that keeps unknown fields (``model_extra``): servers add fields over time."""

    model_config = ConfigDict(extra="allow")


class TaskError(_Open):
    code: str = "unknown_error"
    message: str = ""
    type: str = "task_error"


class TaskInfo(_Open):
    can_cancel: bool | None = None
    estimated_time: float | None = None
    video_duration: float | None = None


class Usage(_Open):
    billing_rule: str | None = None
    credits_reserved: float | None = None
    user_group: str | None = None


class Task(_Open):
    """A video task: ``GET /v1/tasks/{id}``, the create answer and the callback body.

    ``status`` is one of ``pending``, ``processing``, ``completed``, ``failed`` (a cancelled
    task is ``failed`` with ``error.code == "request_cancelled"``); it is typed ``str`` so
    that a status a newer server invents is kept, not refused.
    """

    id: str
    model: str = ""
    object: str = "video.generation.task"
    status: str
    progress: int = 0
    created: int = 0
    type: str | None = None
    results: list[str] | None = None
    error: TaskError | None = None
    task_info: TaskInfo | None = None
    usage: Usage | None = None
    queue_position: int | None = None
    engine: str | None = None

    @field_validator("progress", mode="before")
    @classmethod
    def _whole_percent(cls, value: Any) -> Any:
        # Some servers report fractional progress; a percentage is shown whole.
        return int(value) if isinstance(value, float) else value

    @property
    def done(self) -> bool:
        """Finished: completed or failed (cancelled included)."""
        return self.status in FINISHED

    @property
    def succeeded(self) -> bool:
        return self.status == "completed"

    @property
    def cancelled(self) -> bool:
        return (
            self.status == "failed"
            and self.error is not None
            and (self.error.code == "request_cancelled")
        )

    @property
    def video_url(self) -> str | None:
        """The link to the MP4 once completed (``results[0]``)."""
        return self.results[0] if self.results else None


class TaskPage(_Open):
    object: str = "list"
    data: list[Task]
    has_more: bool = False
    next_cursor: str | None = None


class UploadedFile(_Open):
    """An image uploaded with ``files.upload``; pass ``url`` in ``image_urls`` (valid 24 h)."""

    object: str = "file"
    id: str
    url: str
    filename: str | None = None
    bytes: int | None = None
    content_type: str | None = None
    width: int | None = None
    height: int | None = None
    created: int | None = None
    expires_at: int | None = None


class CreditBalance(_Open):
    remaining_credits: float = 0.0
    used_credits: float = 0.0
    reserved_credits: float | None = None  # vidgate only
    unlimited_credits: bool | None = None  # the token part only


class CreditData(_Open):
    user: CreditBalance
    token: CreditBalance | None = None


class Credits(_Open):
    """``GET /v1/credits`` in evolink's shape; ``remaining`` and ``used`` are the account's."""

    success: bool = True
    message: str = ""
    data: CreditData

    @property
    def remaining(self) -> float:
        return self.data.user.remaining_credits

    @property
    def used(self) -> float:
        return self.data.user.used_credits

    @property
    def reserved(self) -> float | None:
        return self.data.user.reserved_credits
