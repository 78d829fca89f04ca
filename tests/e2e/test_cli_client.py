"""The client CLI (generate, tasks, credits) in subprocesses against a real server process."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import httpx
import numpy as np
import pytest
from PIL import Image

from support import E2E_KEY, ServerProcess, StaticServer, free_port, image_bytes, structured_image
from vidgate.cli.progress import clock, remaining_seconds
from vidgate.media.frames import fit_image
from vidgate.media.probe import probe

pytestmark = pytest.mark.slow

TASK_ID = re.compile(r"task-unified-\d+-[a-z0-9]{8}")
# H.264 at crf 23 on structured images decodes within a few levels of the source; an unrelated
# image is ~40-90 away (the same bound as test_serve.py).
CLOSE_ENOUGH = 12.0
STARTED_WITH_SIGINT_IGNORED = (
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_IGN); "
    "os.execv(sys.executable, [sys.executable, '-m', 'vidgate', *sys.argv[1:]])"
)
# Every wait on a child process is bounded: long enough for a loaded machine, never forever.
BOUND = 60.0


class ClientCli:
    """Runs ``python -m vidgate`` in ``cwd`` with VIDGATE_BASE_URL/VIDGATE_API_KEY set (and no
    other VIDGATE_* variable: the client commands must not need the server's settings)."""

    def __init__(self, base_url: str, cwd: Path, api_key: str | None = E2E_KEY) -> None:
        self.cwd = cwd
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("VIDGATE_")}
        self.env.update(VIDGATE_BASE_URL=base_url, COLUMNS="200")
        if api_key is not None:
            self.env["VIDGATE_API_KEY"] = api_key

    def command(self, *args: str, sigint: str = "default") -> list[str]:
        """``sigint="ignored"``: started as a background job of a script starts, with SIGINT
        ignored (SIG_IGN survives exec, and Python then installs no handler of its own)."""
        if sigint == "ignored":
            return [sys.executable, "-c", STARTED_WITH_SIGINT_IGNORED, *args]
        return [sys.executable, "-m", "vidgate", *args]

    def run(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.command(*args),
            env=self.env,
            cwd=self.cwd,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def json(self, *args: str, status: int = 0) -> Any:
        done = self.run(*args, "--json")
        assert done.returncode == status, f"{args}: exit {done.returncode}\n{done.stderr}"
        return json.loads(done.stdout)


@pytest.fixture(scope="module")
def image_host() -> Iterator[StaticServer]:
    with StaticServer() as host:
        yield host


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory, image_host: StaticServer) -> Iterator[str]:
    """A server that renders (one in-process worker, the preview engine)."""
    root = tmp_path_factory.mktemp("cli-api")
    server = ServerProcess(root / "data", {"VIDGATE_EGRESS_ALLOW": f"127.0.0.1:{image_host.port}"})
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="module")
def idle(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A server without workers: its tasks stay pending until cancelled."""
    server = ServerProcess(tmp_path_factory.mktemp("cli-idle") / "data", {"VIDGATE_WORKERS": "0"})
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


def api_get(base_url: str, path: str) -> Any:
    """What the server answers the E2E account, straight over HTTP (not through the CLI)."""
    headers = {"Authorization": f"Bearer {E2E_KEY}"}
    response = httpx.get(f"{base_url}{path}", headers=headers, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def task_on(base_url: str, task_id: str) -> dict[str, Any]:
    task: dict[str, Any] = api_get(base_url, f"/v1/tasks/{task_id}")
    return task


def mean_difference(frame: np.ndarray, image: Image.Image) -> float:
    return float(np.abs(frame.astype(np.int16) - np.asarray(image, dtype=np.int16)).mean())


def first_and_last_frames(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with av.open(str(path)) as container:
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    return frames[0], frames[-1]


def assert_spec_video(path: Path, width: int, height: int) -> None:
    info = probe(path)
    assert (info.codec, info.width, info.height, info.frame_count) == ("h264", width, height, 192)
    assert info.pix_fmt == "yuv420p"
    assert abs(info.duration_seconds - 8.0) < 0.05


def assert_one_line_error(done: subprocess.CompletedProcess[str], status: int) -> str:
    assert done.returncode == status, (done.returncode, done.stdout, done.stderr)
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: "), lines[0]
    assert "Traceback" not in done.stderr
    return lines[0]


# --- generate, end to end -----------------------------------------------------------------------


def test_generate_uploads_two_local_images_and_saves_the_spec_mp4(api: str, tmp_path: Path) -> None:
    first = structured_image(600, 900, seed=31)
    last = structured_image(900, 600, seed=32)
    (tmp_path / "a.png").write_bytes(image_bytes(first))
    (tmp_path / "b.png").write_bytes(image_bytes(last))

    done = ClientCli(api, tmp_path).run(
        "generate",
        "From one to the other",
        "--image",
        "a.png",
        "--image",
        "b.png",
        "--out",
        "x.mp4",
    )

    assert done.returncode == 0, done.stderr
    video = tmp_path / "x.mp4"
    assert "x.mp4" in done.stdout
    assert TASK_ID.search(done.stdout)
    assert_spec_video(video, 1280, 720)
    start, end = first_and_last_frames(video)
    assert mean_difference(start, fit_image(first, 1280, 720)) < CLOSE_ENOUGH
    assert mean_difference(end, fit_image(last, 1280, 720)) < CLOSE_ENOUGH
    assert mean_difference(end, fit_image(first, 1280, 720)) > 2 * CLOSE_ENOUGH
    assert not list(tmp_path.glob("*.part"))


def test_generate_json_passes_an_image_url_through_and_saves_to_the_task_id(
    api: str, image_host: StaticServer, tmp_path: Path
) -> None:
    picture = structured_image(900, 1400, seed=33)
    url = image_host.add("/portrait.png", image_bytes(picture), content_type="image/png")

    task = ClientCli(api, tmp_path).json(
        "generate", "Slowly closer", "--image", url, "--aspect", "9:16"
    )

    assert task["status"] == "completed"
    assert task["progress"] == 100
    assert TASK_ID.fullmatch(task["id"])
    assert task["model"] == "veo3.1-fast"
    assert task["results"][0].startswith(api)
    assert task["file"] == str((tmp_path / f"{task['id']}.mp4").resolve())
    assert_spec_video(Path(task["file"]), 720, 1280)
    start, _ = first_and_last_frames(Path(task["file"]))
    assert mean_difference(start, fit_image(picture, 720, 1280)) < CLOSE_ENOUGH
    assert ("GET", "/portrait.png") in [(m, p) for m, p, _ in image_host.requests]


def test_no_wait_then_tasks_wait_and_download(api: str, tmp_path: Path) -> None:
    cli = ClientCli(api, tmp_path)

    created = cli.run("generate", "A cat playing piano", "--no-wait")
    assert created.returncode == 0, created.stderr
    task_id = created.stdout.strip()
    assert TASK_ID.fullmatch(task_id), created.stdout

    waited = cli.json("tasks", "wait", task_id, "--timeout", "120")
    downloaded = cli.json("tasks", "download", task_id, "--out", "piano.mp4")

    assert waited["id"] == task_id
    assert waited["status"] == "completed"
    assert downloaded["file"] == str((tmp_path / "piano.mp4").resolve())
    assert_spec_video(tmp_path / "piano.mp4", 1280, 720)


def test_credits_json_has_remaining_and_used(api: str, tmp_path: Path) -> None:
    cli = ClientCli(api, tmp_path)
    # A task of its own, so something is spent (or held) whichever tests ran before.
    assert cli.run("generate", "A coin spinning on a table", "--no-wait").returncode == 0
    balance = cli.json("credits")

    assert set(balance) == {"remaining", "used", "reserved"}
    assert balance["remaining"] + balance["used"] + balance["reserved"] == pytest.approx(500)
    assert balance["used"] + balance["reserved"] > 0
    assert balance["remaining"] < 500


# --- tasks on a server that never starts them ----------------------------------------------------


def test_no_wait_returns_the_pending_task_at_once(idle: str, tmp_path: Path) -> None:
    cli = ClientCli(idle, tmp_path)

    plain = cli.run("generate", "Never rendered", "--no-wait")
    task = cli.json("generate", "Never rendered either", "--no-wait")

    assert plain.returncode == 0, plain.stderr
    assert TASK_ID.fullmatch(plain.stdout.strip())
    assert task["status"] == "pending"
    assert task["progress"] == 0
    assert task["task_info"]["can_cancel"] is True
    assert task_on(idle, plain.stdout.strip())["status"] == "pending"


def test_wait_timeout_is_exit_124_and_leaves_the_task(idle: str, tmp_path: Path) -> None:
    cli = ClientCli(idle, tmp_path)
    task_id = cli.json("generate", "Never rendered", "--no-wait")["id"]

    done = cli.run("tasks", "wait", task_id, "--timeout", "1", "--json")

    assert done.returncode == 124, done.stderr
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert lines[0].startswith(f"waiting for {task_id}")
    assert lines[1:] == [
        f"error: task {task_id} did not finish within 1 s; it keeps running on the server"
        f" (see `vidgate tasks wait {task_id}`)"
    ]
    assert task_on(idle, task_id)["status"] == "pending"


def test_tasks_get_list_cancel_and_download_json(idle: str, tmp_path: Path) -> None:
    cli = ClientCli(idle, tmp_path)
    created = cli.json("generate", "Wait for me", "--model", "veo3.1-fast", "--no-wait")
    task_id = created["id"]

    got = cli.json("tasks", "get", task_id)
    listed = cli.json("tasks", "list", "--status", "pending", "--limit", "100")
    early = cli.run("tasks", "download", task_id)
    cancelled = cli.json("tasks", "cancel", task_id)
    after = cli.run("tasks", "download", task_id)
    failed = cli.json("tasks", "list", "--status", "failed", "--all")

    assert got["id"] == task_id
    assert got["status"] == "pending"
    assert got["usage"]["credits_reserved"] > 0
    assert listed["object"] == "list"
    assert isinstance(listed["has_more"], bool)
    assert task_id in [t["id"] for t in listed["data"]]
    assert {t["status"] for t in listed["data"]} == {"pending"}
    line = assert_one_line_error(early, 1)
    assert "pending" in line
    assert f"vidgate tasks wait {task_id}" in line
    assert cancelled["status"] == "failed"
    assert cancelled["error"]["code"] == "request_cancelled"
    assert "request_cancelled" in assert_one_line_error(after, 1)
    assert task_id in [t["id"] for t in failed["data"]]
    assert failed["has_more"] is False
    assert failed["next_cursor"] is None
    assert not list(tmp_path.glob("*.mp4"))


def test_tasks_list_pages_with_a_cursor(idle: str, tmp_path: Path) -> None:
    cli = ClientCli(idle, tmp_path)
    headers = {"Authorization": f"Bearer {E2E_KEY}"}
    for n in range(3):
        body = {"model": "veo3.1-fast", "prompt": f"Page filler {n}"}
        response = httpx.post(f"{idle}/v1/videos/generations", json=body, headers=headers)
        assert response.status_code == 200, response.text

    first = cli.json("tasks", "list", "--limit", "2")
    second = cli.json("tasks", "list", "--limit", "2", "--cursor", first["next_cursor"])
    every = cli.json("tasks", "list", "--limit", "2", "--all")

    assert len(first["data"]) == 2
    assert first["has_more"] is True
    ids = [t["id"] for t in every["data"]]
    assert len(ids) == len(set(ids)) >= 3
    assert ids[:2] == [t["id"] for t in first["data"]]
    assert ids[2 : 2 + len(second["data"])] == [t["id"] for t in second["data"]]


# --- errors: one line, a documented exit status --------------------------------------------------


def test_no_api_key_is_a_usage_error(idle: str, tmp_path: Path) -> None:
    done = ClientCli(idle, tmp_path, api_key=None).run("credits")

    assert "API key" in assert_one_line_error(done, 2)


def test_a_wrong_api_key_is_an_api_error(idle: str, tmp_path: Path) -> None:
    wrong = "sk-wrong-0123456789abcdefghijklmnopqrstuvwxyzABCDEFGH"

    done = ClientCli(idle, tmp_path, api_key=wrong).run("credits", "--json")

    assert assert_one_line_error(done, 3).startswith("error: unauthorized: ")


def test_a_missing_image_file_is_a_usage_error_before_any_request(
    idle: str, tmp_path: Path
) -> None:
    cli = ClientCli(idle, tmp_path)
    before = api_get(idle, "/v1/tasks?limit=100")["data"]

    missing = cli.run("generate", "A cat", "--image", "cat.gif")
    aspect = cli.run("generate", "A cat", "--aspect", "4:3", "--json")
    three = cli.run("generate", "A cat", "--image", "a", "--image", "b", "--image", "c")

    assert assert_one_line_error(missing, 2) == "error: --image cat.gif: not found"
    assert "--aspect 4:3" in assert_one_line_error(aspect, 2)
    assert "at most two --image" in assert_one_line_error(three, 2)
    assert api_get(idle, "/v1/tasks?limit=100")["data"] == before


def test_server_refusals_and_an_unreachable_server(idle: str, tmp_path: Path) -> None:
    cli = ClientCli(idle, tmp_path)
    (tmp_path / "notes.png").write_text("not an image at all")

    unknown = cli.run("tasks", "get", "task-unified-1700000000-abcdefgh")
    not_image = cli.run("generate", "A cat", "--image", "notes.png", "--json")
    nowhere = ClientCli(f"http://127.0.0.1:{free_port()}", tmp_path).run("credits")

    assert assert_one_line_error(unknown, 3).startswith("error: task_not_found: ")
    assert assert_one_line_error(not_image, 3).startswith("error: invalid_request: ")
    assert "cannot reach the server" in assert_one_line_error(nowhere, 4)


# --- Ctrl-C while waiting ------------------------------------------------------------------------


class Terminal:
    """A child process on a pseudo-terminal; a thread collects everything it writes."""

    def __init__(self, command: list[str], env: dict[str, str], cwd: Path) -> None:
        self.master, slave = pty.openpty()
        self.process = subprocess.Popen(
            command, env=env, cwd=cwd, stdin=slave, stdout=slave, stderr=slave,
            start_new_session=True,
        )  # fmt: skip
        os.close(slave)
        self.output = b""
        self.changed = threading.Condition()
        self.finished = False
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        try:
            while True:
                ready, _, _ = select.select([self.master], [], [], 0.1)
                if not ready:
                    if self.process.poll() is not None:
                        return
                    continue
                try:
                    chunk = os.read(self.master, 4096)
                except OSError:
                    return
                if not chunk:
                    return
                with self.changed:
                    self.output += chunk
                    self.changed.notify_all()
        finally:
            with self.changed:
                self.finished = True
                self.changed.notify_all()

    def text(self) -> str:
        with self.changed:
            return self.output.decode(errors="replace")

    def wait_for(self, pattern: re.Pattern[str], timeout: float = BOUND) -> re.Match[str]:
        """The first match of ``pattern`` in the output, as soon as it is written."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while True:
                found = pattern.search(self.output.decode(errors="replace"))
                left = deadline - time.monotonic()
                if found or self.finished or left <= 0:
                    break
                self.changed.wait(left)
        if found is None:
            raise AssertionError(f"{pattern.pattern!r} never showed; output:\n{self.text()}")
        return found

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        self.reader.join(timeout=5)
        os.close(self.master)


def first_line(stream: Any, timeout: float = BOUND) -> str:
    """The first line a child writes to ``stream`` (a pipe), waiting at most ``timeout``."""
    fd = stream.fileno()
    data = b""
    deadline = time.monotonic() + timeout
    while b"\n" not in data:
        left = deadline - time.monotonic()
        ready, _, _ = select.select([fd], [], [], max(left, 0))
        if not ready:
            raise AssertionError(f"no line within {timeout:g} s; so far: {data!r}")
        chunk = os.read(fd, 4096)  # the raw fd: nothing stays in the file object's buffer
        if not chunk:
            raise AssertionError(f"the stream closed before a line; so far: {data!r}")
        data += chunk
    return data.decode()


# The CLI is started as a terminal starts it (SIGINT at its default), and as a background job
# of a script starts it (SIGINT ignored, inherited): Ctrl-C must stop the wait in both.
SIGINT_STATES = pytest.mark.parametrize("sigint", ["default", "ignored"])


@SIGINT_STATES
def test_ctrl_c_at_a_terminal_asks_and_cancels_on_yes(
    idle: str, tmp_path: Path, sigint: str
) -> None:
    cli = ClientCli(idle, tmp_path)
    command = cli.command("generate", "Cancel me", sigint=sigint)
    terminal = Terminal(command, cli.env, tmp_path)
    try:
        task_id = terminal.wait_for(re.compile(rf"waiting for ({TASK_ID.pattern})")).group(1)
        terminal.process.send_signal(signal.SIGINT)
        terminal.wait_for(re.compile(re.escape(f"Cancel task {task_id}? [y/N]")))
        os.write(terminal.master, b"y\n")
        status = terminal.process.wait(timeout=BOUND)
        terminal.wait_for(re.compile(re.escape(f"Cancelled task {task_id}.")))
    finally:
        terminal.close()

    assert status == 130, terminal.text()
    assert "Traceback" not in terminal.text()
    task = task_on(idle, task_id)
    assert task["status"] == "failed"
    assert task["error"]["code"] == "request_cancelled"


@SIGINT_STATES
def test_ctrl_c_at_a_terminal_keeps_the_task_on_no(idle: str, tmp_path: Path, sigint: str) -> None:
    cli = ClientCli(idle, tmp_path)
    command = cli.command("generate", "Keep me", sigint=sigint)
    terminal = Terminal(command, cli.env, tmp_path)
    try:
        task_id = terminal.wait_for(re.compile(rf"waiting for ({TASK_ID.pattern})")).group(1)
        terminal.process.send_signal(signal.SIGINT)
        terminal.wait_for(re.compile(re.escape("[y/N]")))
        os.write(terminal.master, b"\n")
        status = terminal.process.wait(timeout=BOUND)
        terminal.wait_for(re.compile(re.escape(f"vidgate tasks wait {task_id}")))
    finally:
        terminal.close()

    assert status == 130, terminal.text()
    assert task_on(idle, task_id)["status"] == "pending"


@SIGINT_STATES
def test_ctrl_c_without_a_terminal_cancels_nothing_and_prints_the_task(
    idle: str, tmp_path: Path, sigint: str
) -> None:
    cli = ClientCli(idle, tmp_path)
    process = subprocess.Popen(
        cli.command("generate", "Leave me running", "--json", sigint=sigint),
        env=cli.env,
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert process.stderr is not None
        waiting = first_line(process.stderr)
        assert waiting.startswith("waiting for task-unified-"), waiting
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=BOUND)
        stdout, stderr = out.decode(), err.decode()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

    assert process.returncode == 130, stderr
    task = json.loads(stdout)
    assert task["id"] in waiting
    assert task["status"] == "pending"
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert f"vidgate tasks wait {task['id']}" in lines[0]
    assert task_on(idle, task["id"])["status"] == "pending"


def test_started_with_sigint_ignored_a_wait_still_ends_with_the_task(
    api: str, tmp_path: Path
) -> None:
    cli = ClientCli(api, tmp_path)
    command = cli.command("generate", "Ignored interrupts", "--json", sigint="ignored")

    done = subprocess.run(
        command,
        env=cli.env,
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    task = json.loads(done.stdout)
    assert task["status"] == "completed"
    assert_spec_video(Path(task["file"]), 1280, 720)


# --- the ETA (pure) ------------------------------------------------------------------------------


def test_eta_is_the_estimate_for_what_is_left_counting_down() -> None:
    assert remaining_seconds(None, 0, 0) is None
    assert remaining_seconds(0, 50, 0) is None
    assert remaining_seconds(180, 0, 0) == 180
    assert remaining_seconds(180, 50, 0) == 90
    assert remaining_seconds(180, 50, 30) == 60
    assert remaining_seconds(180, 90, 60) == 0
    assert clock(0) == "0:00:00"
    assert clock(59.2) == "0:01:00"
    assert clock(3725) == "1:02:05"
