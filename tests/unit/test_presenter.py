"""The presenter: signed links the same all hour long, a new one each hour, always ours;
and the task object it writes is the one the schema documents."""

from __future__ import annotations

import json
from dataclasses import replace
from urllib.parse import parse_qs, urlsplit

import pytest

from support import Clock, stored_task
from vidgate.api.schemas import TaskObject
from vidgate.engines.registry import ModelRegistry
from vidgate.errors import Forbidden
from vidgate.media.signing import UrlSigner
from vidgate.tasks.model import TaskError, TaskStatus
from vidgate.tasks.presenter import HOUR, TaskPresenter

DAY = 24 * HOUR
KEY = "inputs/task-unified-1-abcdefgh/0.png"


def presenter(clock: Clock) -> tuple[TaskPresenter, UrlSigner]:
    signer = UrlSigner(b"secret", "http://files.test")
    return TaskPresenter(signer, ModelRegistry({}), url_ttl_seconds=DAY, clock=clock), signer


def expiry(url: str) -> str:
    return parse_qs(urlsplit(url).query)["expires"][0]


def test_a_link_is_the_same_all_hour_and_renewed_the_next() -> None:
    clock = Clock(1_800_000_600.0)  # 10 minutes past an hour
    shown, signer = presenter(clock)
    first = shown.file_url(KEY)
    clock.now += 20 * 60
    assert shown.file_url(KEY) == first  # a poll and a callback of the same hour agree
    clock.now += HOUR  # the remembered link must not outlive its hour
    later = shown.file_url(KEY)
    assert int(expiry(later)) == int(expiry(first)) + HOUR
    for url in (first, later):
        query = parse_qs(urlsplit(url).query)
        signer.verify(KEY, query["expires"][0], query["signature"][0], now=clock.now)
        assert int(query["expires"][0]) >= clock.now + DAY - HOUR


def test_each_file_gets_its_own_signature() -> None:
    clock = Clock(1_800_000_000.0)
    shown, signer = presenter(clock)
    other = "inputs/task-unified-1-abcdefgh/1.jpg"
    query = parse_qs(urlsplit(shown.file_url(KEY)).query)
    with pytest.raises(Forbidden):
        signer.verify(other, query["expires"][0], query["signature"][0], now=clock.now)
    assert shown.file_url(other) != shown.file_url(KEY)


def test_the_task_object_sent_is_the_one_the_schema_documents() -> None:
    """The presenter writes the dict; api/schemas.py documents it: every state's JSON must
    validate against the schema with no field the schema does not name."""
    shown, _ = presenter(Clock(1_800_000_000.0))
    pending = stored_task(1_800_000_000.0, image_keys=[KEY], credits_cents=125)
    states = [
        (pending, 3),
        (replace(pending, status=TaskStatus.PROCESSING, progress=40, attempt=1), None),
        (
            replace(pending, status=TaskStatus.COMPLETED, progress=100, result_key="results/x.mp4"),
            None,
        ),
        (
            replace(pending, status=TaskStatus.FAILED, error=TaskError("service_error", "No.")),
            None,
        ),
    ]
    for task, position in states:
        sent = json.loads(shown.json(task, queue_position=position))
        documented = TaskObject.model_validate(sent)
        assert set(sent) <= set(TaskObject.model_fields), set(sent) - set(TaskObject.model_fields)
        assert documented.model_dump(mode="json", exclude_unset=True) == sent
