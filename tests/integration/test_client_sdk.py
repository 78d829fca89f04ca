"""The SDK against a scripted HTTP server on loopback: retries, errors, waiting, webhooks."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

import vidgate.client
from support import ADMIN_KEY, asgi_client, free_port
from vidgate.client import (
    APIConnectionError,
    AsyncClient,
    AuthenticationError,
    BadRequestError,
    Client,
    ConflictError,
    InternalServerError,
    NotFoundError,
    RateLimitError,
    RetryPolicy,
    ServiceUnavailableError,
    Task,
    VidgateError,
    WaitTimeout,
    WebhookVerificationError,
    verify_webhook,
)
from vidgate.services import Services
from vidgate.webhooks.signing import new_secret, signature_headers

KEY = "sk-sdk-test-0123456789abcdefghijklmnopqrstuvwxyz"
TASK_ID = "task-unified-1757169743-7cvnl5zw"


def task_body(status: str = "pending", progress: int = 0, **extra: Any) -> dict[str, Any]:
    return {
        "created": 1757169743,
        "id": TASK_ID,
        "model": "veo3.1-fast",
        "object": "video.generation.task",
        "progress": progress,
        "status": status,
        "task_info": {"can_cancel": status in ("pending", "processing"), "video_duration": 8},
        "type": "video",
        "usage": {"billing_rule": "per_call", "credits_reserved": 25.7, "user_group": "default"},
        **extra,
    }


def error_body(code: str, message: str, kind: str, param: str | None = None) -> dict[str, Any]:
    error = {"code": code, "message": message, "type": kind}
    if param:
        error["param"] = param
    return {"error": error}


@dataclass
class Reply:
    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class ScriptedServer:
    """A real HTTP server on 127.0.0.1 answering a script of replies in order (the last one
    repeats) to any method and path, and recording every request."""

    def __init__(self) -> None:
        self.script: list[Reply] = [Reply()]
        self.seen: list[Seen] = []
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                request = Seen(
                    self.command,
                    self.path,
                    {k.lower(): v for k, v in self.headers.items()},
                    self.rfile.read(length),
                )
                with server.lock:
                    server.seen.append(request)
                    reply = server.script[min(len(server.seen), len(server.script)) - 1]
                body = reply.body
                if not isinstance(body, bytes):
                    body = json.dumps(body).encode()
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _answer

            def log_message(self, *args: object) -> None:
                return

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def answer(self, *replies: Reply) -> None:
        with self.lock:
            self.script = list(replies)
            self.seen = []

    def __enter__(self) -> ScriptedServer:
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def scripted() -> Iterator[ScriptedServer]:
    with ScriptedServer() as server:
        yield server


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def sdk(scripted: ScriptedServer, sleeps: list[float]) -> Iterator[Client]:
    with Client(KEY, scripted.url, timeout=10, sleep=sleeps.append) as client:
        yield client


# -- construction -------------------------------------------------------------------------------


def test_public_names_are_pinned() -> None:
    contract = {
        "Client",
        "AsyncClient",
        "Task",
        "TaskPage",
        "UploadedFile",
        "Credits",
        "VidgateError",
        "APIConnectionError",
        "BadRequestError",
        "AuthenticationError",
        "InsufficientQuotaError",
        "PermissionDeniedError",
        "NotFoundError",
        "ConflictError",
        "RequestTooLargeError",
        "RateLimitError",
        "InternalServerError",
        "ServiceUnavailableError",
        "WaitTimeout",
        "WebhookVerificationError",
        "verify_webhook",
    }
    extras = {
        "APIStatusError",
        "APITimeoutError",
        "UnprocessableEntityError",
        "TaskError",
        "RetryPolicy",
        "NOT_GIVEN",
        "USER_AGENT",
    }
    assert set(vidgate.client.__all__) == contract | extras
    for name in vidgate.client.__all__:
        assert hasattr(vidgate.client, name)


def test_key_and_base_url_come_from_the_environment(
    scripted: ScriptedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VIDGATE_API_KEY", KEY)
    monkeypatch.setenv("VIDGATE_BASE_URL", scripted.url + "/")
    scripted.answer(Reply(body=task_body()))
    with Client() as client:
        assert client.base_url == scripted.url
        assert client.tasks.get(TASK_ID).status == "pending"
    seen = scripted.seen[0]
    assert seen.headers["authorization"] == f"Bearer {KEY}"
    assert seen.headers["user-agent"].startswith("vidgate-python/")
    assert seen.path == f"/v1/tasks/{TASK_ID}"


def test_a_missing_key_is_refused_at_construction(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VIDGATE_API_KEY", raising=False)
    with pytest.raises(VidgateError, match="VIDGATE_API_KEY"):
        Client()
    with pytest.raises(VidgateError, match="VIDGATE_API_KEY"):
        AsyncClient()


def test_the_sdk_imports_without_any_server_dependency() -> None:
    blocked = ["fastapi", "sqlalchemy", "av", "PIL", "numpy", "standardwebhooks", "starlette"]
    script = textwrap.dedent(
        f"""
        import sys

        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in {blocked!r}:
                    raise ImportError("blocked: " + name)
                return None

        sys.meta_path.insert(0, Block())
        from vidgate.client import Client, AsyncClient, verify_webhook
        with Client(api_key="sk-x", base_url="http://127.0.0.1:9") as client:
            assert client.base_url == "http://127.0.0.1:9"
        AsyncClient(api_key="sk-x")
        loaded = sorted(m for m in sys.modules if m.startswith("vidgate"))
        assert all(m == "vidgate" or m.startswith("vidgate.client") for m in loaded), loaded
        print("ok")
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


# -- errors ---------------------------------------------------------------------------------------


def test_an_error_envelope_becomes_a_typed_error_with_its_fields(
    sdk: Client, scripted: ScriptedServer
) -> None:
    scripted.answer(
        Reply(400, error_body("invalid_request", "Too long.", "invalid_request_error", "prompt"))
    )
    with pytest.raises(BadRequestError) as caught:
        sdk.videos.generate("x" * 5000)
    error = caught.value
    assert (error.status_code, error.code, error.param) == (400, "invalid_request", "prompt")
    assert (error.message, error.type) == ("Too long.", "invalid_request_error")
    assert "prompt" in str(error)

    scripted.answer(Reply(401, error_body("unauthorized", "No.", "authentication_error")))
    with pytest.raises(AuthenticationError):
        sdk.credits()


def test_an_answer_without_an_envelope_still_raises_by_status(
    sdk: Client, scripted: ScriptedServer
) -> None:
    scripted.answer(Reply(500, b"<html>oops</html>", {"Content-Type": "text/html"}))
    with pytest.raises(InternalServerError) as caught:
        sdk.tasks.get(TASK_ID)
    assert caught.value.code is None
    assert "oops" in caught.value.message
    assert len(scripted.seen) == 1  # a 500 is not retried


def test_a_200_that_is_not_a_task_is_an_error_not_a_crash(
    sdk: Client, scripted: ScriptedServer
) -> None:
    scripted.answer(Reply(200, b"<html>a login page</html>"))
    with pytest.raises(VidgateError, match="base URL") as caught:
        sdk.tasks.get(TASK_ID)
    assert caught.value.code == "invalid_response"


# -- retries --------------------------------------------------------------------------------------


def test_a_read_is_retried_after_503_and_succeeds(
    sdk: Client, scripted: ScriptedServer, sleeps: list[float]
) -> None:
    unavailable = error_body("service_unavailable", "Busy.", "service_unavailable_error")
    scripted.answer(Reply(503, unavailable, {"Retry-After": "0"}), Reply(body=task_body()))
    assert sdk.tasks.get(TASK_ID).id == TASK_ID
    assert [seen.method for seen in scripted.seen] == ["GET", "GET"]
    assert sleeps == [0.0]


def test_a_429_waits_what_retry_after_says(
    sdk: Client, scripted: ScriptedServer, sleeps: list[float]
) -> None:
    limited = error_body("rate_limit_exceeded", "Slow down.", "rate_limit_error")
    scripted.answer(Reply(429, limited, {"Retry-After": "7"}), Reply(body=task_body()))
    sdk.tasks.get(TASK_ID)
    assert sleeps == [7.0]


def test_a_retry_after_beyond_a_minute_is_handed_to_the_caller(
    sdk: Client, scripted: ScriptedServer, sleeps: list[float]
) -> None:
    limited = error_body("rate_limit_exceeded", "Too many tasks.", "rate_limit_error")
    scripted.answer(Reply(429, limited, {"Retry-After": "3600"}), Reply(body=task_body()))
    with pytest.raises(RateLimitError) as caught:
        sdk.tasks.get(TASK_ID)
    assert caught.value.retry_after == 3600
    assert sleeps == []
    assert len(scripted.seen) == 1


def test_retries_stop_after_max_retries_with_growing_jittered_backoff(
    scripted: ScriptedServer, sleeps: list[float]
) -> None:
    scripted.answer(Reply(502, b"bad gateway"))
    draws = iter([0.0, 1.0, 0.5])
    policy = RetryPolicy(rand=lambda: next(draws))
    sdk = Client(KEY, scripted.url, max_retries=3, retry_policy=policy, sleep=sleeps.append)
    with sdk, pytest.raises(InternalServerError) as caught:
        sdk.tasks.get(TASK_ID)
    assert caught.value.status_code == 502
    assert caught.value.attempts == 4
    assert len(scripted.seen) == 4
    # Equal jitter: steps of 0.5, 1 and 2 s, each between half and all of its step.
    assert sleeps == [0.25, 1.0, 1.5]


def test_connection_errors_are_retried_then_raised(sleeps: list[float]) -> None:
    sdk = Client(KEY, f"http://127.0.0.1:{free_port()}", max_retries=2, sleep=sleeps.append)
    with sdk, pytest.raises(APIConnectionError) as caught:
        sdk.tasks.get(TASK_ID)
    assert caught.value.attempts == 3
    assert len(sleeps) == 2


def test_a_create_without_idempotency_key_is_never_retried(
    sdk: Client, scripted: ScriptedServer, sleeps: list[float]
) -> None:
    unavailable = error_body("service_unavailable", "Busy.", "service_unavailable_error")
    scripted.answer(Reply(503, unavailable, {"Retry-After": "0"}), Reply(body=task_body()))
    with pytest.raises(ServiceUnavailableError) as caught:
        sdk.videos.generate("A cat playing piano", idempotency_key=None)
    assert caught.value.retry_after == 0
    assert len(scripted.seen) == 1
    assert "idempotency-key" not in scripted.seen[0].headers
    assert sleeps == []


def test_a_create_with_its_default_key_is_retried_with_the_same_key(
    sdk: Client, scripted: ScriptedServer
) -> None:
    in_flight = error_body("idempotency_conflict", "Still running.", "invalid_request_error")
    scripted.answer(
        Reply(503, b"", {"Retry-After": "0"}),
        Reply(409, in_flight, {"Retry-After": "0"}),
        Reply(body=task_body()),
    )
    task = sdk.videos.generate(
        "A cat playing piano", image_urls=["https://example.com/a.png"], aspect_ratio="9:16"
    )
    assert task.id == TASK_ID
    keys = {seen.headers["idempotency-key"] for seen in scripted.seen}
    assert len(scripted.seen) == 3
    assert len(keys) == 1
    assert uuid.UUID(keys.pop()).version == 4
    assert json.loads(scripted.seen[0].body) == {
        "model": "veo3.1-fast",
        "prompt": "A cat playing piano",
        "aspect_ratio": "9:16",
        "image_urls": ["https://example.com/a.png"],
    }
    assert {seen.body for seen in scripted.seen} == {scripted.seen[0].body}


def test_a_caller_key_and_extra_fields_are_sent(sdk: Client, scripted: ScriptedServer) -> None:
    scripted.answer(Reply(body=task_body()))
    sdk.videos.generate(
        "p", idempotency_key="mine-1", cancel_after=60, extra={"enhance_prompt": True}
    )
    seen = scripted.seen[0]
    assert seen.headers["idempotency-key"] == "mine-1"
    assert seen.headers["cancel-after"] == "60"
    assert json.loads(seen.body)["enhance_prompt"] is True


def test_a_cancel_whose_answer_was_lost_returns_the_cancelled_task(
    sdk: Client, scripted: ScriptedServer
) -> None:
    finished = error_body("task_not_cancellable", "Finished.", "invalid_request_error")
    cancelled = task_body(
        "failed", error={"code": "request_cancelled", "message": "Cancelled.", "type": "task_error"}
    )
    scripted.answer(Reply(502, b""), Reply(409, finished), Reply(body=cancelled))
    task = sdk.tasks.cancel(TASK_ID)
    assert task.cancelled
    assert [(s.method, s.path) for s in scripted.seen] == [
        ("POST", f"/v1/tasks/{TASK_ID}/cancel"),
        ("POST", f"/v1/tasks/{TASK_ID}/cancel"),
        ("GET", f"/v1/tasks/{TASK_ID}"),
    ]


def test_a_first_cancel_of_a_finished_task_is_a_conflict(
    sdk: Client, scripted: ScriptedServer
) -> None:
    finished = error_body("task_not_cancellable", "Finished.", "invalid_request_error")
    scripted.answer(Reply(409, finished))
    with pytest.raises(ConflictError) as caught:
        sdk.tasks.cancel(TASK_ID)
    assert caught.value.code == "task_not_cancellable"
    assert len(scripted.seen) == 1


def test_an_upload_is_retried_with_the_same_bytes(
    sdk: Client, scripted: ScriptedServer, tmp_path: Path
) -> None:
    image = tmp_path / "first.png"
    image.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 64)
    uploaded = {"object": "file", "id": "file-" + "a" * 24, "url": "http://x/files/u.png"}
    scripted.answer(Reply(503, b"", {"Retry-After": "0"}), Reply(body=uploaded))
    assert sdk.files.upload(image).url == "http://x/files/u.png"
    assert len(scripted.seen) == 2
    first, second = scripted.seen

    def without_boundary(seen: Seen) -> bytes:
        boundary = seen.headers["content-type"].split("boundary=")[1].encode()
        return seen.body.replace(boundary, b"")

    assert without_boundary(first) == without_boundary(second)
    assert b'filename="first.png"' in first.body
    assert b"Content-Type: image/png" in first.body


def test_an_upload_to_a_server_without_the_endpoint_says_so(
    sdk: Client, scripted: ScriptedServer
) -> None:
    scripted.answer(Reply(404, error_body("not_found", "Not found.", "invalid_request_error")))
    with pytest.raises(NotFoundError, match="image_urls"):
        sdk.files.upload(b"\xff\xd8\xff" + b"\0" * 16)


# -- waiting --------------------------------------------------------------------------------------


def test_wait_polls_with_backoff_where_there_is_no_long_poll(
    sdk: Client, scripted: ScriptedServer, sleeps: list[float]
) -> None:
    scripted.answer(
        Reply(body=task_body("pending")),
        Reply(body=task_body("pending")),
        Reply(body=task_body("pending")),
        Reply(body=task_body("processing", 40)),
        Reply(body=task_body("processing", 40), headers={"Retry-After": "5"}),
        Reply(body=task_body("completed", 100, results=["http://x/v.mp4"])),
    )
    seen: list[tuple[str, int]] = []
    task = sdk.tasks.wait(TASK_ID, on_progress=lambda t: seen.append((t.status, t.progress)))
    assert task.succeeded
    assert task.video_url == "http://x/v.mp4"
    assert seen == [("pending", 0), ("processing", 40), ("completed", 100)]
    assert sleeps == [1.0, 1.5, 2.25, 1.0, 5.0]
    assert all("wait=" not in request.path for request in scripted.seen)


def test_wait_long_polls_where_the_server_offers_it(
    sdk: Client, scripted: ScriptedServer, sleeps: list[float]
) -> None:
    offer = {"X-Vidgate-Wait-Max": "30"}
    scripted.answer(
        Reply(body=task_body("pending"), headers=offer),
        Reply(body=task_body("processing", 10), headers=offer),
        Reply(body=task_body("failed", 10, error={"code": "service_error"}), headers=offer),
    )
    task = sdk.tasks.wait(TASK_ID, timeout=120)
    assert task.status == "failed"
    assert task.error is not None
    assert task.error.code == "service_error"
    paths = [request.path for request in scripted.seen]
    assert paths[0] == f"/v1/tasks/{TASK_ID}"
    for path in paths[1:]:
        hold = float(path.split("wait=")[1])
        assert 29 <= hold <= 30


def test_wait_times_out_with_the_last_task_seen(scripted: ScriptedServer) -> None:
    scripted.answer(Reply(body=task_body("processing", 5)))
    with Client(KEY, scripted.url) as sdk, pytest.raises(WaitTimeout) as caught:
        sdk.tasks.wait(TASK_ID, timeout=0.3)
    assert caught.value.task is not None
    assert caught.value.task.progress == 5


def test_wait_rides_out_a_server_that_is_briefly_unavailable(
    scripted: ScriptedServer, sleeps: list[float]
) -> None:
    scripted.answer(
        Reply(body=task_body("processing", 5)),
        Reply(503, b"", {"Retry-After": "2"}),
        Reply(503, b"", {"Retry-After": "2"}),
        Reply(body=task_body("completed", 100, results=["http://x/v.mp4"])),
    )
    with Client(KEY, scripted.url, max_retries=1, sleep=sleeps.append) as sdk:
        assert sdk.tasks.wait(TASK_ID).succeeded
    # 1 s poll pause, then a failed poll (2 tries, Retry-After 2 between), then 2 s after it.
    assert sleeps == [1.0, 2.0, 2.0]


# -- listing --------------------------------------------------------------------------------------


def test_iter_follows_cursors(sdk: Client, scripted: ScriptedServer) -> None:
    first = {"object": "list", "data": [task_body()], "has_more": True, "next_cursor": "c2"}
    last = {"object": "list", "data": [task_body("completed", 100)], "has_more": False}
    scripted.answer(Reply(body=first), Reply(body=last))
    tasks = list(sdk.tasks.iter(status="pending", page_size=1))
    assert [t.status for t in tasks] == ["pending", "completed"]
    assert scripted.seen[0].path == "/v1/tasks?status=pending&limit=1"
    assert scripted.seen[1].path == "/v1/tasks?status=pending&limit=1&cursor=c2"


# -- the async client -----------------------------------------------------------------------------


async def test_async_client_retries_a_keyed_create_and_waits(scripted: ScriptedServer) -> None:
    pauses: list[float] = []

    async def record(seconds: float) -> None:
        pauses.append(seconds)

    scripted.answer(
        Reply(503, b"", {"Retry-After": "0"}),
        Reply(body=task_body()),
        Reply(body=task_body("processing", 50)),
        Reply(body=task_body("completed", 100, results=["http://x/v.mp4"])),
    )
    seen: list[int] = []

    async def progress(task: Task) -> None:
        seen.append(task.progress)

    async with AsyncClient(KEY, scripted.url, sleep=record) as sdk:
        created = await sdk.videos.generate("A cat playing piano")
        task = await sdk.tasks.wait(created, on_progress=progress)
    assert task.succeeded
    assert seen == [50, 100]
    assert pauses == [0.0, 1.0]
    assert (
        scripted.seen[0].headers["idempotency-key"] == scripted.seen[1].headers["idempotency-key"]
    )


async def test_async_client_never_retries_an_unkeyed_create(scripted: ScriptedServer) -> None:
    scripted.answer(Reply(503, b"", {"Retry-After": "0"}), Reply(body=task_body()))
    async with AsyncClient(KEY, scripted.url) as sdk:
        with pytest.raises(ServiceUnavailableError):
            await sdk.videos.generate("p", idempotency_key=False)
    assert len(scripted.seen) == 1


# -- downloads over a server that misbehaves ------------------------------------------------------


def test_a_download_starts_over_when_the_range_is_ignored(
    sdk: Client, scripted: ScriptedServer, tmp_path: Path
) -> None:
    content = bytes(range(256)) * 40
    target = tmp_path / "v.mp4"
    target.with_name("v.mp4.part").write_bytes(b"stale bytes")
    scripted.answer(Reply(200, content, {"Content-Type": "video/mp4"}))
    progress: list[tuple[int, int | None]] = []
    path = sdk.download(
        scripted.url + "/files/v.mp4", target, on_progress=lambda d, t: progress.append((d, t))
    )
    assert path == target
    assert target.read_bytes() == content
    assert not target.with_name("v.mp4.part").exists()
    assert scripted.seen[0].headers["range"] == "bytes=11-"
    assert "authorization" not in scripted.seen[0].headers
    assert progress[0] == (0, len(content))
    assert progress[-1] == (len(content), len(content))


def test_a_download_at_a_wrong_offset_restarts_from_zero(
    sdk: Client, scripted: ScriptedServer, tmp_path: Path
) -> None:
    content = b"0123456789" * 100
    target = tmp_path / "v.mp4"
    target.with_name("v.mp4.part").write_bytes(content[:100])
    scripted.answer(
        Reply(206, content[50:], {"Content-Range": f"bytes 50-999/{len(content)}"}),
        Reply(200, content),
    )
    sdk.download(scripted.url + "/files/v.mp4", target)
    assert target.read_bytes() == content
    assert scripted.seen[0].headers["range"] == "bytes=100-"
    assert "range" not in scripted.seen[1].headers


def test_a_complete_part_file_is_recognised_by_a_416(
    sdk: Client, scripted: ScriptedServer, tmp_path: Path
) -> None:
    content = b"x" * 500
    (tmp_path / "v.mp4.part").write_bytes(content)
    scripted.answer(Reply(416, b"", {"Content-Range": "bytes */500"}))
    sdk.download(scripted.url + "/files/v.mp4", tmp_path / "v.mp4")
    assert (tmp_path / "v.mp4").read_bytes() == content


def test_a_download_of_a_task_without_video_is_refused(sdk: Client, tmp_path: Path) -> None:
    task = Task.model_validate(task_body("failed", error={"code": "service_error"}))
    with pytest.raises(VidgateError, match="no video"):
        sdk.download(task, tmp_path)


def test_an_expired_link_is_a_typed_error(
    sdk: Client, scripted: ScriptedServer, tmp_path: Path
) -> None:
    scripted.answer(Reply(403, error_body("forbidden", "Expired.", "permission_error")))
    with pytest.raises(vidgate.client.PermissionDeniedError):
        sdk.download(scripted.url + "/files/v.mp4", tmp_path / "v.mp4")
    assert not (tmp_path / "v.mp4").exists()


# -- webhooks, against the server's own signer -----------------------------------------------------


def signed(body: bytes, secrets: list[str], at: float | None = None) -> dict[str, str]:
    return signature_headers("msg_abc", time.time() if at is None else at, body.decode(), secrets)


def test_a_callback_signed_by_the_server_verifies() -> None:
    secret = new_secret()
    body = json.dumps(task_body("completed", 100, results=["http://x/v.mp4"])).encode()
    task = verify_webhook(body, signed(body, [secret]), secret)
    assert task.video_url == "http://x/v.mp4"
    upper = {name.upper(): value for name, value in signed(body, [secret]).items()}
    assert verify_webhook(body.decode(), upper, secret).id == TASK_ID


def test_during_a_rotation_either_secret_verifies() -> None:
    old, new = new_secret(), new_secret()
    body = json.dumps(task_body()).encode()
    headers = signed(body, [new, old])
    assert len(headers["webhook-signature"].split()) == 2
    assert verify_webhook(body, headers, old).id == TASK_ID
    assert verify_webhook(body, headers, new).id == TASK_ID


@pytest.mark.parametrize("tamper", ["body", "secret", "id", "old", "future", "missing", "sig"])
def test_a_forged_or_stale_callback_is_refused(tamper: str) -> None:
    secret = new_secret()
    body = json.dumps(task_body()).encode()
    at = time.time() + {"old": -301, "future": 301}.get(tamper, 0)
    headers = signed(body, [secret], at)
    if tamper == "body":
        body = body.replace(b"pending", b"complete")
    elif tamper == "secret":
        secret = new_secret()
    elif tamper == "id":
        headers["webhook-id"] = "msg_other"
    elif tamper == "missing":
        del headers["webhook-timestamp"]
    elif tamper == "sig":
        headers["webhook-signature"] = "v1,AAAA v2," + headers["webhook-signature"][3:]
    with pytest.raises(WebhookVerificationError):
        verify_webhook(body, headers, secret)


def test_the_tolerance_is_adjustable() -> None:
    secret = new_secret()
    body = json.dumps(task_body()).encode()
    headers = signed(body, [secret], time.time() - 600)
    assert verify_webhook(body, headers, secret, tolerance=900).id == TASK_ID


def test_a_download_answered_503_is_retried(
    sdk: Client, scripted: ScriptedServer, sleeps: list[float], tmp_path: Path
) -> None:
    content = b"v" * 1000
    scripted.answer(Reply(503, b"", {"Retry-After": "0"}), Reply(200, content))
    sdk.download(scripted.url + "/files/v.mp4", tmp_path / "v.mp4")
    assert (tmp_path / "v.mp4").read_bytes() == content
    assert sleeps == [0.0]


# -- in process, over ASGI ------------------------------------------------------------------------


async def test_the_sdk_over_asgi_sees_the_long_poll_offer_and_cancels(
    services: Services,
) -> None:
    async with (
        asgi_client(services, key=None) as http,
        AsyncClient(ADMIN_KEY, "http://testserver", http_client=http) as sdk,
    ):
        created = await sdk.videos.generate("In process")
        answer = await sdk.request("GET", f"/v1/tasks/{created.id}")
        assert answer.headers["x-vidgate-wait-max"] == "30"
        await sdk.tasks.cancel(created.id)
        task = await sdk.tasks.wait(created.id, timeout=30)
        assert task.cancelled
        with pytest.raises(ConflictError):
            await sdk.tasks.cancel(created.id)
