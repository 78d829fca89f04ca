"""The wire shapes of the evolink video API: the create request and the task object."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictStr


class CreateVideoRequest(BaseModel):
    """``POST /v1/videos/generations``. Unknown fields are accepted and recorded on the task."""

    model_config = ConfigDict(extra="allow")

    model: StrictStr = Field(examples=["veo3.1-fast"])
    prompt: StrictStr = Field(examples=["A cat playing piano"])
    aspect_ratio: StrictStr | None = Field(default=None, examples=["16:9"])
    image_urls: list[StrictStr] | None = Field(default=None, examples=[[]])
    callback_url: StrictStr | None = None
    generation_type: StrictStr | None = None
    quality: StrictStr | None = None
    enhance_prompt: bool | None = None


class TaskInfo(BaseModel):
    can_cancel: bool
    estimated_time: int
    video_duration: int


class Usage(BaseModel):
    billing_rule: Literal["per_call"] = "per_call"
    credits_reserved: float
    user_group: str


class TaskErrorBody(BaseModel):
    code: str
    message: str
    type: Literal["task_error"] = "task_error"


class TaskObject(BaseModel):
    """The task as ``GET /v1/tasks/{id}`` shows it, and as callbacks carry it."""

    created: int
    id: str
    model: str
    object: Literal["video.generation.task"] = "video.generation.task"
    progress: int = Field(ge=0, le=100)
    status: Literal["pending", "processing", "completed", "failed"]
    task_info: TaskInfo
    type: Literal["video"] = "video"
    usage: Usage
    results: list[str] | None = None
    error: TaskErrorBody | None = None
    engine: str | None = None
    queue_position: int | None = None
    prompt: str | None = Field(default=None, description="The prompt, whole, as it was created")
    aspect_ratio: str | None = Field(
        default=None, description="The aspect ratio it was made in (`auto` already resolved)"
    )
    input_images: list[str] = Field(
        default_factory=list,
        description="Signed links to the images stored with the task, in order (first frame, "
        "last frame); valid as long as the result link",
    )


class EngineStatus(BaseModel):
    name: str
    healthy: bool = Field(description="False while recent calls failed (this process's view)")


class ModelEntry(BaseModel):
    id: str
    object: Literal["model"] = "model"
    engine: str
    engines: list[EngineStatus]
    aliases: list[str]
    price: float
    max_prompt_chars: int
    aspect_ratios: list[str]
    max_images: int
    video_duration: int
    description: str


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelEntry]
