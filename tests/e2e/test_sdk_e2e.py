"""The SDK, sync and async, against a real ``vidgate serve`` process (through a recording proxy
where a test must see or cut the traffic)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import av
import httpx
import pytest

from support import E2E_KEY, ServerProcess, StaticServer, image_bytes, structured_image
from vidgate.client import (
    AsyncClient,
    AuthenticationError,
    BadRequestError,
    Client,
    ConflictError,
    InsufficientQuotaError,
    NotFoundError,
    Task,
)

pytestmark = pytest.mark.slow

WAIT = 240.0  # generous: the machine is shared; a test never waits on this unless it fails
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "host", "content-length"}


@dataclass
class Hop:
    method: str
    path: str
    headers: dict[str, str]
    status: int


class RecordingProxy:
    """A real HTTP proxy on 127.0.0.1 in front of the server: records every request and its
    answer's status; ``cut_next_file`` sends only the first half of the next /files/ body (with
    the full Content-Length) and then drops the connection."""

    def __init__(self, upstream: str) -> None:
        self.hops: list[Hop] = []
        self.cut_next_file = False
        self.lock = threading.Lock()
        self.upstream = httpx.Client(base_url=upstream, timeout=60)
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
                answer = proxy.upstream.request(
                    self.command, self.path, content=body, headers=headers
                )
                with proxy.lock:
                    proxy.hops.append(
                        Hop(
                            self.command,
                            self.path,
                            {k.lower(): v for k, v in self.headers.items()},
                            answer.status_code,
                        )
                    )
                    cut = proxy.cut_next_file and self.path.startswith("/files/")
                    if cut:
                        proxy.cut_next_file = False
                self.send_response(answer.status_code)
                for name, value in answer.headers.items():
                    if name.lower() not in HOP_BY_HOP:
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(answer.content)))
                self.end_headers()
                if cut:
                    self.wfile.write(answer.content[: len(answer.content) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(answer.content)

            do_GET = do_POST = _forward

            def log_message(self, *args: object) -> None:
                return

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def files(self) -> list[Hop]:
        with self.lock:
            return [hop for hop in self.hops if hop.path.startswith("/files/")]

    def __enter__(self) -> RecordingProxy:
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.upstream.close()


@pytest.fixture(scope="module")
def image_host() -> Iterator[StaticServer]:
    with StaticServer() as host:
        yield host


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, image_host: StaticServer
) -> Iterator[ServerProcess]:
    with ServerProcess(
        tmp_path_factory.mktemp("sdk") / "data",
        {"VIDGATE_EGRESS_ALLOW": f"127.0.0.1:{image_host.port}"},
    ) as process:
        yield process


@pytest.fixture
def proxy(server: ServerProcess) -> Iterator[RecordingProxy]:
    with RecordingProxy(server.url) as recording:
        yield recording


@pytest.fixture
def sdk(server: ServerProcess) -> Iterator[Client]:
    with Client(E2E_KEY, server.url) as client:
        yield client


@pytest.fixture(scope="module")
def finished(server: ServerProcess) -> Task:
    """One text-to-video task, completed, shared by the download tests."""
    with Client(E2E_KEY, server.url) as client:
        task = client.tasks.wait(client.videos.generate("A lighthouse at dusk"), timeout=WAIT)
    assert task.succeeded, task
    return task


def assert_mp4_of_8_seconds(path: Path) -> None:
    with av.open(str(path)) as container:
        assert container.format.name.startswith("mov,mp4")
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        frames = sum(1 for _ in container.decode(stream))
        rate = stream.average_rate
        assert rate is not None
        assert Fraction(frames) / Fraction(rate) == 8


def through(proxy: RecordingProxy, server: ServerProcess, url: str) -> str:
    assert url.startswith(server.url)
    return proxy.url + url.removeprefix(server.url)


# -- generate, wait, download ---------------------------------------------------------------------


def test_sync_generate_long_polls_and_reports_progress(
    server: ServerProcess, proxy: RecordingProxy, tmp_path: Path
) -> None:
    seen: list[Task] = []
    with Client(E2E_KEY, proxy.url) as client:
        created = client.videos.generate("A cat playing piano", aspect_ratio="9:16")
        assert created.status == "pending"
        task = client.tasks.wait(created.id, timeout=WAIT, on_progress=seen.append)
        assert task.succeeded
        assert task.video_url is not None
        path = client.download(task, tmp_path)
    assert path == tmp_path / path.name
    assert path.suffix == ".mp4"
    assert_mp4_of_8_seconds(path)

    assert seen[-1].status == "completed"
    progress = [t.progress for t in seen]
    assert progress == sorted(progress)
    assert len({(t.status, t.progress) for t in seen}) == len(seen)  # only changes reported
    polls = [hop.path for hop in proxy.hops if hop.path.startswith(f"/v1/tasks/{created.id}")]
    assert "wait=" not in polls[0]
    assert all("wait=" in poll for poll in polls[1:])  # the server offers the long-poll
    create = next(hop for hop in proxy.hops if hop.path == "/v1/videos/generations")
    assert create.headers["user-agent"].startswith("vidgate-python/")
    assert create.headers["idempotency-key"]


def test_a_cut_download_resumes_with_a_range_request(
    server: ServerProcess, proxy: RecordingProxy, finished: Task, tmp_path: Path
) -> None:
    assert finished.video_url is not None
    proxy.cut_next_file = True
    progress: list[tuple[int, int | None]] = []
    with Client(E2E_KEY, server.url) as client:
        path = client.download(
            through(proxy, server, finished.video_url),
            tmp_path / "cut.mp4",
            on_progress=lambda done, total: progress.append((done, total)),
        )
    first, second = proxy.files()
    assert (first.status, second.status) == (200, 206)
    assert "range" not in first.headers
    resumed_at = int(second.headers["range"].removeprefix("bytes=").removesuffix("-"))
    size = path.stat().st_size
    assert 0 < resumed_at < size
    assert progress[-1] == (size, size)
    assert not (tmp_path / "cut.mp4.part").exists()
    assert_mp4_of_8_seconds(path)


def test_a_part_file_left_behind_is_resumed(
    server: ServerProcess, proxy: RecordingProxy, finished: Task, tmp_path: Path
) -> None:
    assert finished.video_url is not None
    whole = httpx.get(finished.video_url, timeout=30).content
    target = tmp_path / "left.mp4"
    target.with_name("left.mp4.part").write_bytes(whole[:12345])
    with Client(E2E_KEY, server.url) as client:
        client.download(through(proxy, server, finished.video_url), target)
    (hop,) = proxy.files()
    assert hop.headers["range"] == "bytes=12345-"
    assert hop.status == 206
    assert target.read_bytes() == whole
    assert_mp4_of_8_seconds(target)


def test_download_by_task_id(sdk: Client, finished: Task, tmp_path: Path) -> None:
    path = sdk.download(finished.id, tmp_path / "by-id.mp4")
    assert_mp4_of_8_seconds(path)


def test_generate_from_uploaded_images_and_from_image_urls(
    sdk: Client, image_host: StaticServer, tmp_path: Path
) -> None:
    first = tmp_path / "first.png"
    first.write_bytes(image_bytes(structured_image(640, 360, seed=1)))
    last = image_bytes(structured_image(640, 360, seed=2), "JPEG")
    uploaded = sdk.files.upload(first)
    assert uploaded.id.startswith("file-")
    assert (uploaded.width, uploaded.height, uploaded.content_type) == (640, 360, "image/png")

    from_files = sdk.videos.generate("From first to last", images=[first, last])
    hosted = image_host.add("/third.png", image_bytes(structured_image(640, 360, seed=3)))
    from_url = sdk.videos.generate("Pan and zoom", image_urls=[hosted])
    for created in (from_files, from_url):
        task = sdk.tasks.wait(created, timeout=WAIT)
        assert task.succeeded, task
    assert any(request[1] == "/third.png" for request in image_host.requests)


async def test_async_generate_upload_wait_and_download(
    server: ServerProcess, tmp_path: Path
) -> None:
    image = image_bytes(structured_image(360, 640, seed=4))
    seen: list[tuple[str, int]] = []

    async def report(task: Task) -> None:
        seen.append((task.status, task.progress))

    async with AsyncClient(E2E_KEY, server.url) as client:
        created = await client.videos.generate("Tall", images=[image], aspect_ratio="9:16")
        task = await client.tasks.wait(created.id, timeout=WAIT, on_progress=report)
        assert task.succeeded
        sizes: list[int] = []
        path = await client.download(
            task, tmp_path / "async.mp4", on_progress=lambda done, total: sizes.append(done)
        )
        page = await client.tasks.list(limit=1)
        everything = [t.id async for t in client.tasks.iter()]
        credits = await client.credits()
    assert seen[-1] == ("completed", 100)
    assert sizes[-1] == path.stat().st_size
    assert_mp4_of_8_seconds(path)
    assert page.data[0].id == created.id
    assert created.id in everything
    assert credits.used > 0


# -- cancel ---------------------------------------------------------------------------------------


def test_cancel_then_a_second_cancel_is_a_conflict(sdk: Client) -> None:
    created = sdk.videos.generate("Never mind")
    sdk.tasks.cancel(created.id)
    task = sdk.tasks.wait(created.id, timeout=WAIT)
    assert task.cancelled
    assert task.error is not None
    assert task.error.code == "request_cancelled"
    with pytest.raises(ConflictError):
        sdk.tasks.cancel(created.id)


async def test_async_cancel(server: ServerProcess) -> None:
    async with AsyncClient(E2E_KEY, server.url) as client:
        created = await client.videos.generate("Never mind, async")
        await client.tasks.cancel(created.id)
        task = await client.tasks.wait(created, timeout=WAIT)
    assert task.cancelled


# -- typed errors ---------------------------------------------------------------------------------


def test_a_bad_key_is_an_authentication_error(server: ServerProcess) -> None:
    client = Client("sk-not-a-real-key-0123456789abcdefghijklmnop", server.url)
    with client, pytest.raises(AuthenticationError) as caught:
        client.credits()
    assert (caught.value.status_code, caught.value.code) == (401, "unauthorized")


def test_an_unknown_task_is_not_found(sdk: Client) -> None:
    with pytest.raises(NotFoundError) as caught:
        sdk.tasks.get("task-unified-1757169743-zzzzzzzz")
    assert caught.value.code == "task_not_found"
    with pytest.raises(BadRequestError) as bad:
        sdk.tasks.get("not-a-task")
    assert bad.value.code == "invalid_task_id"


def test_a_broken_rule_names_its_param(sdk: Client) -> None:
    with pytest.raises(BadRequestError) as caught:
        sdk.videos.generate("A cat", aspect_ratio="4:3")
    assert caught.value.param == "aspect_ratio"
    with pytest.raises(BadRequestError) as too_long:
        sdk.videos.generate("x" * 1001)
    assert too_long.value.param == "prompt"


def test_a_short_balance_is_insufficient_quota(server: ServerProcess) -> None:
    with server.client() as admin:
        answer = admin.post("/admin/accounts", json={"name": "sdk-poor", "credits": "10.00"})
        assert answer.status_code == 200, answer.text
        key = answer.json()["key"]
    with Client(key, server.url) as client:
        with pytest.raises(InsufficientQuotaError) as caught:
            client.videos.generate("Too expensive")
        assert caught.value.code == "insufficient_quota"
        assert client.credits().remaining == 10.0
