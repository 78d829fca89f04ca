"""The real server process calls back a real HTTPS receiver, and a SIGKILL loses no callback."""

from __future__ import annotations

import json
import ssl
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme
from standardwebhooks import Webhook

from support import HookReceiver, HookReply, ServerProcess

SEED_REQUEST = {"model": "veo3.1-fast", "prompt": "A cat playing piano"}


@pytest.fixture
def ca_file(tmp_path: Path) -> tuple[trustme.CA, Path]:
    ca = trustme.CA()
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return ca, path


@pytest.fixture
def receiver(ca_file: tuple[trustme.CA, Path]) -> Iterator[HookReceiver]:
    ca, _ = ca_file
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    # The callback URL names the address itself, so the certificate must carry it as an IP SAN.
    ca.issue_cert("127.0.0.1").configure_cert(context)
    with HookReceiver(context) as hooks:
        yield hooks


@pytest.fixture
def server(
    tmp_path: Path, ca_file: tuple[trustme.CA, Path], receiver: HookReceiver
) -> Iterator[ServerProcess]:
    _, path = ca_file
    with ServerProcess(
        tmp_path / "data",
        {
            "VIDGATE_EGRESS_ALLOW": f"127.0.0.1:{receiver.port}",
            "VIDGATE_EGRESS_CA_BUNDLE": str(path),
            "VIDGATE_WORKERS": "1",
        },
    ) as process:
        yield process


def wait_for(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll until condition returns something truthy; return it."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(0.05)


def delivery_log(server: ServerProcess, task_id: str) -> dict[str, Any]:
    with server.client() as client:
        response = client.get(f"/v1/tasks/{task_id}/callbacks")
    assert response.status_code == 200, response.text
    log: dict[str, Any] = response.json()
    return log


def kill(server: ServerProcess) -> None:
    assert server.process is not None
    server.process.kill()  # SIGKILL: no shutdown code runs
    server.process.wait(timeout=10)


def create_with_callback(server: ServerProcess, receiver: HookReceiver) -> tuple[str, str]:
    """The account's webhook secret and a new task that calls the receiver back."""
    with server.client() as client:
        secret: str = client.get("/v1/webhook-secret").json()["secret"]
        created = client.post(
            "/v1/videos/generations",
            json={**SEED_REQUEST, "callback_url": f"https://127.0.0.1:{receiver.port}/hook"},
        )
    assert created.status_code == 200, created.text
    task_id: str = created.json()["id"]
    return secret, task_id


def test_a_callback_pending_when_the_server_is_killed_is_delivered_after_restart(
    server: ServerProcess, receiver: HookReceiver
) -> None:
    receiver.answer(503)
    secret, task_id = create_with_callback(server, receiver)

    # The first attempt arrives once the worker has rendered the video; SIGKILL the server once
    # its outcome (503) is logged, which is while its retry waits in the outbox.
    wait_for(lambda: receiver.hooks, timeout=60, what="the first callback attempt")
    first = wait_for(
        lambda: (log := delivery_log(server, task_id))["attempts"] and log,
        timeout=10,
        what="the first attempt in the delivery log",
    )
    assert first["attempts"][0]["status_code"] == 503
    assert first["status"] == "pending"
    kill(server)

    receiver.answer(200)
    server.start()
    done = wait_for(
        lambda: (log := delivery_log(server, task_id))["status"] == "delivered" and log,
        timeout=60,
        what=f"delivery after the restart (server log:\n{server.log()[-3000:]})",
    )
    assert done["webhook_id"] == first["webhook_id"]
    assert done["attempts"][0]["status_code"] == 503
    assert done["attempts"][-1]["status_code"] == 200

    hooks = list(receiver.hooks)
    assert len(hooks) >= 2
    assert {hook.headers["webhook-id"] for hook in hooks} == {first["webhook_id"]}
    assert hooks[-1].body == hooks[0].body  # the payload fixed when the task finished
    task = Webhook(secret).verify(hooks[-1].body, hooks[-1].headers)
    assert task["id"] == task_id
    assert task["status"] == "completed"
    assert task["progress"] == 100
    [url] = task["results"]
    assert httpx.get(url, timeout=30).headers["content-type"] == "video/mp4"
    with server.client() as client:
        assert json.loads(client.get(f"/v1/tasks/{task_id}").content)["status"] == "completed"


@pytest.mark.slow
def test_a_callback_whose_attempt_a_sigkill_cut_off_is_sent_again_after_restart(
    server: ServerProcess, receiver: HookReceiver
) -> None:
    # The receiver holds the first request open; the server dies mid-attempt, with the callback
    # leased and no outcome written. Once the dead process's lease (30 s) runs out, the restarted
    # server sends it again: at least once, with the same webhook-id for the receiver to dedupe.
    receiver.answer(HookReply(200, hold=60), 200)
    secret, task_id = create_with_callback(server, receiver)
    wait_for(lambda: receiver.hooks, timeout=60, what="the first callback attempt")
    kill(server)
    receiver.release.set()  # the held request's reply now goes to a dead connection

    server.start()
    done = wait_for(
        lambda: (log := delivery_log(server, task_id))["status"] == "delivered" and log,
        timeout=90,
        what=f"delivery after the lease expired (server log:\n{server.log()[-3000:]})",
    )
    [attempt] = done["attempts"]  # the cut-off attempt left no record
    assert (attempt["status_code"], attempt["succeeded"]) == (200, True)
    cut_off, resent = receiver.hooks
    assert cut_off.headers["webhook-id"] == resent.headers["webhook-id"] == done["webhook_id"]
    assert cut_off.body == resent.body
    assert Webhook(secret).verify(resent.body, resent.headers)["status"] == "completed"
