"""Callbacks end to end in one process: the outbox, the dispatcher, and a real HTTPS receiver.

The receiver is a threaded HTTPS server on 127.0.0.1 with a trustme certificate for
``hooks.test``; an injected resolver maps that name to loopback, and the (name, port) pairs are on
the egress allow-list, so the dispatcher's real egress path (resolve, check, pin, TLS) is used.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import os
import ssl
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from ipaddress import ip_address
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme
from sqlalchemy import event
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from support import ADMIN_KEY, Hook, HookReceiver, HookReply, admin_services, asgi_client
from vidgate.media.addresses import IPAddress
from vidgate.services import Services
from vidgate.settings import Settings

SEED_REQUEST = {"model": "veo3.1-fast", "prompt": "A cat playing piano"}
PUBLIC_ADDRESS = "93.184.216.34"
# The dispatcher's schedule: a retry 1, 2 and 4 s after the previous attempt ended. Lower bounds
# only, with a little tolerance for clocks: a loaded machine may only make the gaps longer.
RETRY_GAPS = (1.0, 2.0, 4.0)
TOLERANCE = 0.1


# --- the pieces: a CA, receivers, a resolver, the services with a running dispatcher ----------


def _receiver(ca: trustme.CA) -> Iterator[HookReceiver]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("hooks.test").configure_cert(context)
    with HookReceiver(context) as receiver:
        yield receiver


@pytest.fixture
def primary(ca: trustme.CA) -> Iterator[HookReceiver]:
    yield from _receiver(ca)


@pytest.fixture
def secondary(ca: trustme.CA) -> Iterator[HookReceiver]:
    yield from _receiver(ca)


@dataclass
class FakeDNS:
    """Answers from a table instead of DNS; a callable answer may change between lookups."""

    answers: dict[str, list[str] | Callable[[], list[str]]] = field(
        default_factory=lambda: {"hooks.test": ["127.0.0.1"]}
    )
    lookups: list[str] = field(default_factory=list)

    async def __call__(self, host: str, port: int) -> list[IPAddress]:
        self.lookups.append(host)
        answer = self.answers.get(host)
        if answer is None:
            raise OSError(f"{host}: name not known")
        return [ip_address(a) for a in (answer() if callable(answer) else answer)]


@pytest.fixture
def dns() -> FakeDNS:
    return FakeDNS()


@dataclass
class Stack:
    services: Services
    api: httpx.AsyncClient

    async def fail_a_task(self, callback_url: str | None) -> str:
        """Create a task (with callback_url) and fail it the way a worker does: the fastest
        way to a finished task, hence to a callback."""
        body = {**SEED_REQUEST, **({"callback_url": callback_url} if callback_url else {})}
        created = await self.api.post("/v1/videos/generations", json=body)
        assert created.status_code == 200, created.text
        task = await self.services.runs.claim("test-worker")
        assert task is not None
        assert task.id == created.json()["id"]
        assert await self.services.runs.fail(task, "service_error", "The engine broke.")
        return task.id

    async def delivery(self, task_id: str) -> dict[str, Any]:
        response = await self.api.get(f"/v1/tasks/{task_id}/callbacks")
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def delivery_when(
        self, task_id: str, done: Callable[[dict[str, Any]], bool], within: float
    ) -> dict[str, Any]:
        """The delivery log, polled until ``done`` holds of it (or the deadline passes)."""
        deadline = time.monotonic() + within
        while True:
            delivery = await self.delivery(task_id)
            if done(delivery):
                return delivery
            if time.monotonic() > deadline:
                raise AssertionError(f"no such delivery within {within} s: {delivery}")
            await asyncio.sleep(0.05)

    async def credits(self) -> dict[str, Any]:
        response = await self.api.get("/v1/credits")
        assert response.status_code == 200, response.text
        user: dict[str, Any] = response.json()["data"]["user"]
        return user


@pytest.fixture
async def stack(
    tmp_path: Path,
    ca_file: Path,
    primary: HookReceiver,
    secondary: HookReceiver,
    dns: FakeDNS,
    database_url: str | None,
) -> AsyncIterator[Stack]:
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        workers=0,
        egress_allow=frozenset({("hooks.test", primary.port), ("hooks.test", secondary.port)}),
        egress_ca_bundle=ca_file,
        public_url="http://testserver",
        rate_limit_per_minute=0,  # the tests poll the delivery log
    )
    async with admin_services(settings, resolver=dns) as services:
        stop = asyncio.Event()
        dispatcher = asyncio.create_task(services.dispatcher.run(stop), name="test-dispatcher")
        try:
            async with asgi_client(services) as api:
                yield Stack(services, api)
        finally:
            stop.set()
            services.dispatcher.notify()
            await asyncio.wait_for(dispatcher, 10)


def hook_url(receiver: HookReceiver) -> str:
    return f"https://hooks.test:{receiver.port}/hook"


async def wait_until(condition: Callable[[], bool], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {within} s: {what}")
        await asyncio.sleep(0.02)


def stranger_secret() -> str:
    return "whsec_" + base64.b64encode(os.urandom(24)).decode()


def delivered(delivery: dict[str, Any]) -> bool:
    return delivery["status"] == "delivered"


def failed(delivery: dict[str, Any]) -> bool:
    return delivery["status"] == "failed"


# --- retries, signatures, settlement ---------------------------------------------------------


async def test_a_failing_receiver_is_retried_1_2_and_4_s_later_until_it_answers_2xx(
    stack: Stack, primary: HookReceiver
) -> None:
    primary.answer(500, 500, 500, 200)
    secret = (await stack.api.get("/v1/webhook-secret")).json()["secret"]
    assert secret.startswith("whsec_")
    before = await stack.credits()

    # The balance as the receiver could see it at the moment the first callback arrives, read
    # through the API from the receiver's own thread while the attempt is open. (The outbox row
    # is also written in the very transaction that settles the task, so it cannot exist without
    # the settlement; this checks the promise from the receiver's side.)
    loop = asyncio.get_running_loop()
    seen_by_receiver: list[dict[str, Any]] = []

    def check_the_ledger(hook: Hook) -> None:
        if not seen_by_receiver:
            future = asyncio.run_coroutine_threadsafe(stack.credits(), loop)
            seen_by_receiver.append(future.result(timeout=10))

    primary.on_hook = check_the_ledger
    task_id = await stack.fail_a_task(hook_url(primary))

    delivery = await stack.delivery_when(task_id, delivered, within=30)
    hooks = list(primary.hooks)
    assert len(hooks) == 4
    for number, (earlier, later) in enumerate(itertools.pairwise(hooks)):
        assert earlier.answered is not None
        gap = later.received - earlier.answered
        assert gap >= RETRY_GAPS[number] - TOLERANCE, (number, gap)

    task = await stack.api.get(f"/v1/tasks/{task_id}")
    assert task.json()["status"] == "failed"
    for hook in hooks:
        assert hook.body == task.content  # byte for byte what a poll returns
        assert hook.headers["content-type"] == "application/json"
        assert Webhook(secret).verify(hook.body, hook.headers)["id"] == task_id
    assert {hook.headers["webhook-id"] for hook in hooks} == {delivery["webhook_id"]}

    assert delivery["status"] == "delivered"
    assert delivery["url"] == hook_url(primary)
    assert delivery["next_attempt"] is None
    attempts = delivery["attempts"]
    assert [a["number"] for a in attempts] == [1, 2, 3, 4]
    assert [a["status_code"] for a in attempts] == [500, 500, 500, 200]
    assert [a["succeeded"] for a in attempts] == [False, False, False, True]
    assert [a["error"] for a in attempts] == ["answered HTTP 500"] * 3 + [None]

    # The reservation was already released when the first callback arrived.
    assert seen_by_receiver == [before]
    assert before["reserved_credits"] == 0
    ledger = (await stack.api.get("/v1/ledger")).json()["data"]
    assert {entry["kind"] for entry in ledger if entry["task_id"] == task_id} == {
        "reserve",
        "release",
    }


async def test_a_receiver_that_always_fails_gets_4_attempts_then_the_callback_fails(
    stack: Stack, primary: HookReceiver
) -> None:
    primary.answer(500)
    task_id = await stack.fail_a_task(hook_url(primary))

    delivery = await stack.delivery_when(task_id, failed, within=30)
    assert [a["status_code"] for a in delivery["attempts"]] == [500] * 4
    assert not any(a["succeeded"] for a in delivery["attempts"])
    assert delivery["next_attempt"] is None
    last = primary.hooks[-1].answered
    assert last is not None
    # Longer than the longest retry delay: a 5th attempt would have arrived by now.
    await wait_until(
        lambda: time.monotonic() > last + RETRY_GAPS[-1] + 1.0, within=10, what="the wait"
    )
    assert len(primary.hooks) == 4
    assert len((await stack.delivery(task_id))["attempts"]) == 4


async def test_a_redirect_is_a_failure_and_is_not_followed(
    stack: Stack, primary: HookReceiver, secondary: HookReceiver
) -> None:
    # The target is an allowed, working receiver: only not following the redirect keeps it idle.
    primary.answer(HookReply(302, location=hook_url(secondary)))
    task_id = await stack.fail_a_task(hook_url(primary))

    delivery = await stack.delivery_when(task_id, lambda d: len(d["attempts"]) >= 2, within=15)
    first = delivery["attempts"][0]
    assert first["status_code"] == 302
    assert first["succeeded"] is False
    assert "redirect" in first["error"]
    assert delivery["status"] == "pending"  # a failure, so retried
    assert len(primary.hooks) >= 2
    assert secondary.hooks == []


@pytest.mark.slow
async def test_an_attempt_unanswered_for_10_s_is_a_timeout_and_the_retry_succeeds(
    stack: Stack, primary: HookReceiver
) -> None:
    primary.answer(HookReply(200, hold=12), 200)
    task_id = await stack.fail_a_task(hook_url(primary))

    delivery = await stack.delivery_when(task_id, delivered, within=30)
    timed_out, retried = delivery["attempts"]
    assert timed_out["status_code"] is None
    assert timed_out["succeeded"] is False
    assert "did not answer within 10 s" in timed_out["error"]
    assert timed_out["duration_ms"] >= 9500
    assert (retried["status_code"], retried["succeeded"]) == (200, True)
    assert len(primary.hooks) == 2
    assert primary.hooks[0].headers["webhook-id"] == primary.hooks[1].headers["webhook-id"]


async def test_during_a_rotation_a_callback_is_signed_with_both_secrets(
    stack: Stack, primary: HookReceiver
) -> None:
    old = (await stack.api.get("/v1/webhook-secret")).json()["secret"]
    rotated = (await stack.api.post("/v1/webhook-secret/rotate")).json()
    new = rotated["secret"]
    assert new.startswith("whsec_")
    assert new != old
    assert rotated["previous_secret_valid_until"] > time.time()
    assert (await stack.api.get("/v1/webhook-secret")).json()["secret"] == new

    # A cancel finishes the task too (as failed, request_cancelled), and is called back.
    created = await stack.api.post(
        "/v1/videos/generations", json={**SEED_REQUEST, "callback_url": hook_url(primary)}
    )
    task_id = created.json()["id"]
    assert (await stack.api.post(f"/v1/tasks/{task_id}/cancel")).status_code == 200
    await stack.delivery_when(task_id, delivered, within=15)

    [hook] = primary.hooks
    signatures = hook.headers["webhook-signature"].split(" ")
    assert len(signatures) == 2
    assert all(signature.startswith("v1,") for signature in signatures)
    for secret in (old, new):
        payload = Webhook(secret).verify(hook.body, hook.headers)
        assert payload["error"]["code"] == "request_cancelled"
    with pytest.raises(WebhookVerificationError):
        Webhook(stranger_secret()).verify(hook.body, hook.headers)


async def test_two_rotations_at_once_each_keep_a_signing_secret(stack: Stack) -> None:
    secrets = stack.services.webhook_secrets
    account = (await stack.services.accounts.authenticate(f"Bearer {ADMIN_KEY}")).account_id
    first = await secrets.current(account)
    one, two = await asyncio.gather(secrets.rotate(account), secrets.rotate(account))
    signing = await secrets.signing_secrets(account)
    # Whichever rotation wrote last is current; the other's secret is its previous one, so a
    # caller handed either still verifies callbacks through the grace period.
    assert sorted(signing) == sorted([one.secret, two.secret])
    assert first.secret not in signing
    assert (await secrets.current(account)).secret in (one.secret, two.secret)


# --- where callbacks may go ------------------------------------------------------------------


async def test_a_callback_host_rebound_to_loopback_after_creation_is_refused_at_each_attempt(
    stack: Stack, dns: FakeDNS, primary: HookReceiver, secondary: HookReceiver
) -> None:
    answers = iter([[PUBLIC_ADDRESS]])
    dns.answers["rebind.test"] = lambda: next(answers, ["127.0.0.1"])

    # Creation resolves the name (public at that moment) and connects to nothing.
    task_id = await stack.fail_a_task("https://rebind.test/hook")
    assert dns.lookups.count("rebind.test") >= 1

    delivery = await stack.delivery_when(task_id, failed, within=30)
    attempts = delivery["attempts"]
    assert len(attempts) == 4
    for attempt in attempts:
        assert attempt["status_code"] is None
        assert attempt["succeeded"] is False
        assert "127.0.0.1" in attempt["error"]
        assert "loopback" in attempt["error"]
    # Resolved again at every attempt (after the lookup at creation).
    assert dns.lookups.count("rebind.test") == 5
    assert primary.hooks == []
    assert secondary.hooks == []


# --- the delivery log and redelivery ---------------------------------------------------------


async def test_redeliver_sends_a_delivered_callback_again_with_the_same_webhook_id(
    stack: Stack, primary: HookReceiver
) -> None:
    task_id = await stack.fail_a_task(hook_url(primary))
    first = await stack.delivery_when(task_id, delivered, within=15)
    assert len(first["attempts"]) == 1

    response = await stack.api.post(f"/v1/tasks/{task_id}/callbacks/redeliver")
    assert response.status_code == 200, response.text
    assert response.json()["webhook_id"] == first["webhook_id"]

    again = await stack.delivery_when(
        task_id, lambda d: delivered(d) and len(d["attempts"]) == 2, within=15
    )
    assert again["webhook_id"] == first["webhook_id"]
    assert [a["succeeded"] for a in again["attempts"]] == [True, True]
    assert len(primary.hooks) == 2
    assert {hook.headers["webhook-id"] for hook in primary.hooks} == {first["webhook_id"]}
    assert primary.hooks[0].body == primary.hooks[1].body


async def test_redeliver_is_refused_for_a_task_without_a_callback_url(stack: Stack) -> None:
    task_id = await stack.fail_a_task(None)
    response = await stack.api.post(f"/v1/tasks/{task_id}/callbacks/redeliver")
    assert response.status_code == 409
    assert "no callback_url" in response.json()["error"]["message"]
    assert (await stack.delivery(task_id))["status"] == "none"


async def test_redeliver_is_refused_while_the_task_has_not_finished(
    stack: Stack, primary: HookReceiver
) -> None:
    created = await stack.api.post(
        "/v1/videos/generations", json={**SEED_REQUEST, "callback_url": hook_url(primary)}
    )
    task_id = created.json()["id"]
    response = await stack.api.post(f"/v1/tasks/{task_id}/callbacks/redeliver")
    assert response.status_code == 409
    assert "has not finished" in response.json()["error"]["message"]
    delivery = await stack.delivery(task_id)
    assert (delivery["status"], delivery["attempts"], delivery["webhook_id"]) == ("none", [], None)
    assert primary.hooks == []


# --- isolation between receivers ------------------------------------------------------------


async def test_a_hanging_receiver_does_not_hold_up_another_tasks_callback(
    stack: Stack, primary: HookReceiver, secondary: HookReceiver
) -> None:
    primary.answer(HookReply(200, hold=9))
    slow_task = await stack.fail_a_task(hook_url(primary))
    await wait_until(lambda: len(primary.hooks) == 1, within=10, what="the slow attempt opens")

    fast_task = await stack.fail_a_task(hook_url(secondary))
    fast = await stack.delivery_when(fast_task, delivered, within=30)
    assert len(fast["attempts"]) == 1

    # The slow receiver still holds its request: nothing about it is logged yet.
    assert primary.hooks[0].answered is None
    slow = await stack.delivery(slow_task)
    assert (slow["status"], slow["attempts"]) == ("pending", [])

    primary.release.set()
    await stack.delivery_when(slow_task, delivered, within=15)


async def test_the_dispatcher_sleeps_while_an_attempt_is_in_flight(
    stack: Stack, primary: HookReceiver
) -> None:
    primary.answer(HookReply(200, hold=10))
    task_id = await stack.fail_a_task(hook_url(primary))
    await wait_until(lambda: len(primary.hooks) == 1, within=10, what="the attempt opens")

    statements: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "callbacks" in statement:
            statements.append(statement)

    engine = stack.services.db.engine.sync_engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        started = time.monotonic()
        await wait_until(lambda: time.monotonic() - started > 2.0, within=5, what="2 s")
    finally:
        event.remove(engine, "before_cursor_execute", count)
        primary.release.set()
    await stack.delivery_when(task_id, delivered, within=15)
    # Nothing is due for 2 s: a dispatcher polling every second needs a handful of queries.
    assert len(statements) < 30, f"{len(statements)} outbox queries in 2 s"


# --- the request on the wire ----------------------------------------------------------------


async def test_a_callback_carries_exactly_one_content_type_header(
    stack: Stack, primary: HookReceiver
) -> None:
    task_id = await stack.fail_a_task(hook_url(primary))

    await stack.delivery_when(task_id, delivered, within=15)
    [hook] = primary.hooks
    content_types = [value for name, value in hook.raw_headers if name.lower() == "content-type"]
    assert content_types == ["application/json"], hook.raw_headers
