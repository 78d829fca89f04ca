"""Test helpers shared by every suite: a loopback HTTP server, test images, a decoded video."""

from __future__ import annotations

import contextlib
import io
import os
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field, replace
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import httpx
import numpy as np
from PIL import Image, ImageDraw

from vidgate.app import create_app
from vidgate.services import Services, open_services
from vidgate.settings import Settings
from vidgate.tasks.model import Task, TaskStatus

ADMIN_KEY = "sk-test-admin-0123456789abcdefghijklmnopqrstuvwxyzABCD"
E2E_KEY = "sk-e2e-0123456789abcdefghijklmnopqrstuvwxyzABCDEFGH"


class ServerProcess:
    """``python -m vidgate serve`` with its own data dir; its output goes to a log file."""

    def __init__(self, data_dir: Path, env: dict[str, str]) -> None:
        self.port = free_port()
        self.data_dir = data_dir
        self.log_path = data_dir.parent / f"server-{self.port}.log"
        self.env = {
            **os.environ,
            "VIDGATE_DATA_DIR": str(data_dir),
            "VIDGATE_BOOTSTRAP_KEY": E2E_KEY,
            "VIDGATE_BOOTSTRAP_CREDITS": "500",
            **env,
        }
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> None:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "vidgate", "serve", "--port", str(self.port)],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"vidgate serve exited early:\n{self.log()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"vidgate serve did not become healthy:\n{self.log()}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def client(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {E2E_KEY}"}, timeout=30
        )

    def __enter__(self) -> ServerProcess:
        """Started (and stopped again if it never became healthy); stopped on leaving."""
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass
class Route:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


class StaticServer:
    """A real HTTP server on 127.0.0.1 that answers fixed routes and records what it was asked."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests.append(("GET", self.path, dict(self.headers)))
                route = server.routes.get(self.path, Route(404, b"not found"))
                self.send_response(route.status)
                for name, value in route.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(route.body)))
                self.end_headers()
                # Tests of the byte cap hang up after the limit: that is the point, not a fault.
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.wfile.write(route.body)

            def log_message(self, *args: object) -> None:
                return

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def add(self, path: str, body: bytes, *, status: int = 200, content_type: str = "") -> str:
        headers = {"Content-Type": content_type} if content_type else {}
        self.routes[path] = Route(status, body, headers)
        return self.base_url + path

    def __enter__(self) -> StaticServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def structured_image(width: int, height: int, seed: int) -> Image.Image:
    """An RGB image with gradients and shapes, different for each seed (not a flat colour)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    base = rng.uniform(0, 255, size=3)
    angle = rng.uniform(0, 2 * np.pi)
    ramp = (np.cos(angle) * x / width + np.sin(angle) * y / height) * 160
    pixels = np.clip(base[None, None, :] * 0.5 + ramp[..., None] * rng.uniform(0.3, 1, 3), 0, 255)
    image = Image.fromarray(pixels.astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(image)
    for _ in range(6):
        x0, y0 = int(rng.uniform(0, width * 0.8)), int(rng.uniform(0, height * 0.8))
        size = int(rng.uniform(0.1, 0.3) * min(width, height))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        draw.ellipse((x0, y0, x0 + size, y0 + size), fill=colour)
    return image


def image_bytes(image: Image.Image, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


T = TypeVar("T")


class Clock:
    """A clock a test sets by hand: ``clock.now += 60``. Starts at ``now``, else the time."""

    def __init__(self, now: float | None = None) -> None:
        self.now = time.time() if now is None else now

    def __call__(self) -> float:
        return self.now


def wait_until(
    condition: Callable[[], T | None], what: str, timeout: float = 60.0, *, every: float = 0.05
) -> T:
    """Poll ``condition`` until it returns something truthy, which is returned."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


@contextlib.asynccontextmanager
async def admin_services(settings: Settings, **options: Any) -> AsyncIterator[Services]:
    """``open_services(settings, **options)`` with the admin account (ADMIN_KEY, 1,000
    credits), closed on leaving."""
    opened = await open_services(settings, **options)
    try:
        await opened.accounts.bootstrap(key=ADMIN_KEY, credits=Decimal(1000))
        yield opened
    finally:
        await opened.close()


def asgi_client(
    services: Services, *, key: str | None = ADMIN_KEY, raise_app_exceptions: bool = True
) -> httpx.AsyncClient:
    """A client on the app itself, in process (no server; the lifespan does not run), sending
    ``key`` as its bearer when one is given."""
    transport = httpx.ASGITransport(
        app=create_app(services, workers=0), raise_app_exceptions=raise_app_exceptions
    )
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.AsyncClient(transport=transport, base_url="http://testserver", headers=headers)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def iter_lines(data: bytes) -> Iterator[str]:
    yield from data.decode(errors="replace").splitlines()


@dataclass(frozen=True)
class HookReply:
    """One scripted answer of a HookReceiver: a status, after holding the request ``hold`` s."""

    status: int = 200
    hold: float = 0.0
    location: str | None = None


@dataclass
class Hook:
    """A request a HookReceiver got: when (time.monotonic), what, and when it finished answering."""

    received: float
    headers: dict[str, str]
    body: bytes
    answered: float | None = None
    # Every header line as sent, in order, duplicates kept (``headers`` keeps the last one).
    raw_headers: list[tuple[str, str]] = field(default_factory=list)


class TlsPerConnection(ThreadingHTTPServer):
    """A threading HTTP server that, given ``tls``, runs each TLS handshake in the connection's
    own thread (never in the accept loop, where one stalled client would block the rest)."""

    tls: ssl.SSLContext | None = None

    def finish_request(self, request: Any, client_address: Any) -> None:
        if self.tls is None:
            super().finish_request(request, client_address)
            return
        try:
            wrapped = self.tls.wrap_socket(request, server_side=True)
        except OSError:
            return
        try:
            super().finish_request(wrapped, client_address)
        finally:
            wrapped.close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients that hang up on purpose (caps, timeouts) are what these tests are about


class HookReceiver(TlsPerConnection):
    """A real HTTPS callback receiver on 127.0.0.1 that answers a scripted sequence of replies
    (the last one repeats) and records every request.

    ``on_hook`` runs in the request's thread before the reply is sent; ``release`` cuts every
    hold short (set it to end a test without waiting on a hanging reply).
    """

    daemon_threads = True

    def __init__(self, tls: ssl.SSLContext) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                hook = Hook(
                    time.monotonic(),
                    {name.lower(): value for name, value in self.headers.items()},
                    self.rfile.read(length),
                    raw_headers=list(self.headers.items()),
                )
                with receiver.lock:
                    receiver.hooks.append(hook)
                    script = receiver.script
                    reply = script[min(len(receiver.hooks), len(script)) - 1]
                if receiver.on_hook is not None:
                    receiver.on_hook(hook)
                if reply.hold:
                    receiver.release.wait(reply.hold)
                self.send_response(reply.status)
                if reply.location:
                    self.send_header("Location", reply.location)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")
                hook.answered = time.monotonic()

            def log_message(self, *args: object) -> None:
                return

        super().__init__(("127.0.0.1", 0), Handler)
        self.tls = tls
        self.lock = threading.Lock()
        self.script: list[HookReply] = [HookReply(200)]
        self.hooks: list[Hook] = []
        self.on_hook: Callable[[Hook], None] | None = None
        self.release = threading.Event()

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def answer(self, *replies: int | HookReply) -> None:
        with self.lock:
            self.script = [r if isinstance(r, HookReply) else HookReply(r) for r in replies]

    def __enter__(self) -> HookReceiver:
        threading.Thread(target=self.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self.shutdown()
        self.server_close()


@contextlib.contextmanager
def loopback_receiver(directory: Path) -> Iterator[tuple[HookReceiver, Path]]:
    """A running HookReceiver on 127.0.0.1 with a certificate from a fresh CA, and that CA's
    bundle (written in ``directory``) for the server's VIDGATE_EGRESS_CA_BUNDLE."""
    import trustme

    ca = trustme.CA()
    bundle = directory / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    # The callback URL names the address itself, so the certificate carries it as an IP SAN.
    ca.issue_cert("127.0.0.1").configure_cert(tls)
    with HookReceiver(tls) as hooks:
        yield hooks, bundle


class WorkerProcess:
    """``python -m vidgate worker`` (workers, reaper, dispatcher; no API) on a data dir; its
    output goes to a log file of its own. Fault tests stop it, kill it or freeze it."""

    def __init__(self, data_dir: Path, env: dict[str, str]) -> None:
        self.data_dir = data_dir
        self.log_path = data_dir.parent / f"worker-{time.monotonic_ns()}.log"
        self.env = {**os.environ, "VIDGATE_DATA_DIR": str(data_dir), **env}
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None, "the worker was never started"
        return self.process.pid

    @property
    def name(self) -> str:
        """The name its (single) worker claims tasks under: ``<host>-<pid>-0``."""
        return f"{socket.gethostname()}-{self.pid}-0"

    def command(self) -> list[str]:
        return [sys.executable, "-m", "vidgate", "worker"]

    def start(self, timeout: float = 60.0) -> None:
        """Start it and return once its workers run (it logs ``vidgate worker: ...``)."""
        command = self.command()
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                command, env=self.env, stdout=log, stderr=subprocess.STDOUT
            )
        what = " ".join(command[1:])
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if "vidgate worker:" in self.log():
                return
            if self.process.poll() is not None:
                raise RuntimeError(f"{what} exited early:\n{self.log()}")
            time.sleep(0.05)
        raise RuntimeError(f"{what} did not start:\n{self.log()}")

    def send(self, signum: int) -> None:
        assert self.process is not None, "the worker was never started"
        self.process.send_signal(signum)

    def wait(self, timeout: float) -> int | None:
        """Its exit code once it exits by itself; None if it still runs after ``timeout``."""
        assert self.process is not None, "the worker was never started"
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL (also ends a SIGSTOPped process) and reap it."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def stop(self, timeout: float = 60.0) -> int | None:
        """SIGTERM and wait for it to exit (killed past ``timeout``); its exit code."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.process.returncode

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def assert_error(
    response: httpx.Response, status: int, code: str, param: str | None = None
) -> dict[str, Any]:
    """The response is the SPEC.md §5 error envelope with this status, code (and param)."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    error: dict[str, Any] = body["error"]
    assert error["code"] == code
    assert error["message"]
    assert error["type"]
    if param is not None:
        assert error.get("param") == param
    return error


class RemoteWorkerProcess(WorkerProcess):
    """``python -m vidgate worker --server URL --token TOKEN``: a worker that reaches the API
    over HTTP only. Its data dir holds scratch files and never a database."""

    def __init__(
        self,
        data_dir: Path,
        server: str,
        token: str,
        env: dict[str, str] | None = None,
        *,
        program: list[str] | None = None,
    ) -> None:
        super().__init__(data_dir, env or {})
        self.server = server
        self.token = token
        # What runs instead of ``-m vidgate worker`` (a script with a test engine), if anything.
        self.program = program or ["-m", "vidgate", "worker"]
        # The token reaches the process in its environment, not on a command line others see.
        self.env["VIDGATE_WORKER_TOKEN"] = token
        self.env.pop("VIDGATE_DATABASE_URL", None)

    def command(self) -> list[str]:
        return [sys.executable, *self.program, "--server", self.server]


def stored_task(created_at: float, **changes: Any) -> Task:
    """A pending text task as the store returns it, created at ``created_at``, with
    ``changes`` on top: unit tests of pure task rules build their cases from it."""
    task = Task(
        id=f"task-unified-{int(created_at)}-abcdefgh",
        account_id="acct",
        model="veo3.1-fast",
        engine="preview",
        status=TaskStatus.PENDING,
        progress=0,
        prompt="A fox",
        aspect_ratio="16:9",
        image_keys=[f"inputs/task-unified-{int(created_at)}-abcdefgh/0.png"],
        callback_url=None,
        user_group="default",
        credits_cents=100,
        estimated_time=60,
        created_at=created_at,
        updated_at=created_at,
    )
    return replace(task, **changes)
