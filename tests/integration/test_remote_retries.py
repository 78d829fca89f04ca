"""A remote worker's calls to an API server that is failing: the shared policy's pauses."""

from __future__ import annotations

import dataclasses

import httpx

from vidgate.engines.registry import ModelRegistry
from vidgate.queue.remote import WORKER_RETRY, Backoff, RemoteRuns
from vidgate.tasks.model import Task

CLAIMED = {
    "lease_seconds": 60,
    "task": {
        "id": "task-unified-1757169743-remote01",
        "model": "alpha",
        "engine": "preview",
        "progress": 0,
        "prompt": "a kite",
        "aspect_ratio": "16:9",
        "inputs": [],
        "attempt": 1,
    },
}


class FailingServer:
    """Answers a claim with a task, and each other call from a script (the last repeats)."""

    def __init__(self, *answers: httpx.Response) -> None:
        self.answers = list(answers)
        self.calls: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/claim"):
            return httpx.Response(200, json=CLAIMED)
        self.calls.append(request.url.path)
        return self.answers[min(len(self.calls), len(self.answers)) - 1]


class Runs:
    def __init__(self, server: FailingServer) -> None:
        self.slept: list[float] = []
        self.http = httpx.AsyncClient(
            transport=httpx.MockTransport(server), base_url="http://api.test"
        )
        # The top of each jittered step, so that the pauses are known.
        policy = dataclasses.replace(WORKER_RETRY, rand=lambda: 1.0)
        self.runs = RemoteRuns(
            self.http, ModelRegistry.of([]), ["alpha"], claim_wait=0, retry=policy, sleep=self.sleep
        )

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)

    async def claimed(self) -> Task:
        task = await self.runs.claim("remote-0", ["preview"])
        assert task is not None
        return task


def unavailable(retry_after: str | None = None) -> httpx.Response:
    headers = {"Retry-After": retry_after} if retry_after is not None else {}
    return httpx.Response(503, headers=headers, json={"error": {"message": "database down"}})


async def test_a_report_waits_what_retry_after_says_else_backs_off() -> None:
    server = FailingServer(
        unavailable("2"),
        unavailable(),
        unavailable("3600"),
        httpx.Response(200, json={"id": "x", "status": "failed"}),
    )
    remote = Runs(server)
    async with remote.http:
        task = await remote.claimed()
        await remote.runs.fail(task, "content_policy_violation", "no")
    assert len(server.calls) == 4
    # Retry-After 2; then the second step of the backoff (1 s); a long Retry-After is cut to 15.
    assert remote.slept == [2.0, 1.0, 15.0]


async def test_a_hand_back_tries_three_times_in_under_two_seconds() -> None:
    server = FailingServer(unavailable("30"))
    remote = Runs(server)
    async with remote.http:
        task = await remote.claimed()
        assert not await remote.runs.hand_back(task)
    assert len(server.calls) == 3
    assert remote.slept == [0.5, 1.0]  # a stopping process ignores the Retry-After


async def test_a_hand_back_that_gets_through_says_so() -> None:
    server = FailingServer(httpx.Response(502), httpx.Response(204))
    remote = Runs(server)
    async with remote.http:
        task = await remote.claimed()
        assert await remote.runs.hand_back(task)
    assert len(server.calls) == 2


def test_the_backoff_grows_to_its_cap_and_starts_over_after_a_success() -> None:
    backoff = Backoff(dataclasses.replace(WORKER_RETRY, rand=lambda: 0.0))
    assert [backoff.next() for _ in range(7)] == [0.25, 0.5, 1.0, 2.0, 4.0, 7.5, 7.5]
    assert backoff.next(retry_after=4.0) == 4.0
    backoff.reset()
    assert backoff.next() == 0.25
