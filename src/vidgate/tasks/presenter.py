"""The task as the wire sees it: the evolink task object, as data and as the exact JSON bytes.

``GET /v1/tasks/{id}`` and the callback both send ``TaskPresenter.json``, so a receiver gets
byte for byte what a poll of the same moment returns.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from vidgate.engines.registry import ModelRegistry
from vidgate.media.files import FileStore
from vidgate.media.signing import UrlSigner
from vidgate.tasks.model import Task, TaskStatus

HOUR = 3600
# Signed links remembered per process: a link is the same all hour long, and a page of tasks
# with their images asks for hundreds of them at every poll.
SIGNED_LINKS_KEPT = 4096


def task_object(
    task: Task,
    *,
    result_url: str | None,
    video_duration: int,
    queue_position: int | None = None,
    input_images: list[str] | None = None,
) -> dict[str, Any]:
    """The task as JSON-ready data, in the field order of the reference.

    After the reference's fields come this server's extras (SPEC §2 allows them): the engine,
    and the task's own inputs (its prompt, the aspect ratio it was made in, signed links to the
    images it stored), which only its owner ever sees.
    """
    body: dict[str, Any] = {
        "created": task.created,
        "id": task.id,
        "model": task.model,
        "object": "video.generation.task",
        "progress": task.progress,
        "status": task.status.value,
        "task_info": {
            "can_cancel": task.can_cancel,
            "estimated_time": task.estimated_time,
            "video_duration": video_duration,
        },
        "type": "video",
        "usage": {
            "billing_rule": "per_call",
            "credits_reserved": float(task.credits_reserved),
            "user_group": task.user_group,
        },
        "engine": task.engine,
        "prompt": task.prompt,
        "aspect_ratio": task.aspect_ratio,
        "input_images": input_images or [],
    }
    if queue_position is not None:
        body["queue_position"] = queue_position
    if task.status is TaskStatus.COMPLETED and result_url is not None:
        body["results"] = [result_url]
    if task.status is TaskStatus.FAILED and task.error is not None:
        body["error"] = {
            "code": task.error.code,
            "message": task.error.message,
            "type": "task_error",
        }
    return body


class TaskPresenter:
    def __init__(
        self,
        signer: UrlSigner,
        registry: ModelRegistry,
        *,
        url_ttl_seconds: int,
        clock: Callable[[], float] = time.time,
        files: FileStore | None = None,
    ) -> None:
        self.signer = signer
        self.registry = registry
        self.url_ttl_seconds = url_ttl_seconds
        self.clock = clock
        # A store that hands out its own URLs (S3, presigned mode) serves results directly.
        self.files = files
        # Our own signature is a pure function of (key, expiry) under a secret fixed for the
        # process; a presigned URL is not cached (the store's credentials may be refreshed).
        self._signed = lru_cache(maxsize=SIGNED_LINKS_KEPT)(self._sign)

    def _sign(self, key: str, expires: int) -> str:
        return self.signer.sign(key, expires=expires)

    def file_url(self, key: str) -> str:
        """A link to a stored file of a task (its result or an input image), signed."""
        # Rounded up to the hour: the URL is the same all hour long (a callback and a poll of
        # the same moment agree) and always valid for at least the configured time.
        earliest = int(self.clock()) + self.url_ttl_seconds
        expires = -(-earliest // HOUR) * HOUR
        if self.files is not None:
            # Signed as of a time fixed by the expiry, an hour before the earliest moment
            # that expiry is handed out: never in the future, and the same all hour long.
            signed_at = expires - self.url_ttl_seconds - HOUR
            url = self.files.presigned_url(key, expires=expires, signed_at=signed_at)
            if url is not None:
                return url
        return self._signed(key, expires)

    def object(self, task: Task, *, queue_position: int | None = None) -> dict[str, Any]:
        url = self.file_url(task.result_key) if task.result_key is not None else None
        spec = self.registry.models.get(task.model)
        duration = spec.video_duration if spec is not None else 8
        # Signed from the keys already on the task row: a page of tasks costs no extra query,
        # and the links are the same all hour long, like the result's.
        images = [self.file_url(key) for key in task.image_keys]
        return task_object(
            task,
            result_url=url,
            video_duration=duration,
            queue_position=queue_position,
            input_images=images,
        )

    def json(self, task: Task, *, queue_position: int | None = None) -> bytes:
        """Compact, UTF-8, in a fixed order: the bytes both the API and callbacks send."""
        return dump(self.object(task, queue_position=queue_position))


# One encoder for every answer: json.dumps with options builds a new one at each call.
_ENCODER = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def dump(data: Any) -> bytes:
    return _ENCODER.encode(data).encode()
