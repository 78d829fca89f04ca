"""Turns a task into its wire object, with a freshly signed result URL."""

from __future__ import annotations

from typing import Any

from vidgate.api.schemas import task_object
from vidgate.services import Services
from vidgate.tasks.model import Task


def present(services: Services, task: Task) -> dict[str, Any]:
    result_url = None
    if task.result_key is not None:
        # Rounded up to the hour: the URL stays the same for an hour (a callback and a GET of
        # the same moment agree) and is always valid for at least the configured time.
        earliest = int(services.tasks.clock()) + services.settings.result_url_ttl_seconds
        expires = -(-earliest // 3600) * 3600
        result_url = services.signer.sign(task.result_key, expires=expires)
    spec = services.registry.models.get(task.model)
    duration = spec.video_duration if spec is not None else 8
    return task_object(task, result_url=result_url, video_duration=duration)
