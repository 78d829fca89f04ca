"""``Client``: the blocking SDK, one resource object per noun (videos, tasks, files)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from vidgate.client._download import (
    DownloadRetries,
    ProgressCallback,
    Step,
    Transfer,
    target_path,
)
from vidgate.client._http import (
    DEFAULT_TIMEOUT,
    NOT_GIVEN,
    USER_AGENT,
    NotGiven,
    Options,
    Retry,
    connection_error,
    drop_none,
    generation_body,
    idempotency_header,
    missing_video,
    parse,
    retry_pause,
    retryable,
    task_path,
    upload_missing,
    upload_parts,
)
from vidgate.client._wait import Pacer, wait_params
from vidgate.client.errors import (
    APIStatusError,
    ConflictError,
    VidgateError,
    WaitTimeout,
    error_from_response,
)
from vidgate.client.retry import RetryPolicy, header_retry_after
from vidgate.client.types import Credits, Task, TaskPage, UploadedFile

ImageSource = str | os.PathLike[str] | bytes


class Client:
    """A vidgate (or evolink) API client. ``api_key`` and ``base_url`` default to the
    ``VIDGATE_API_KEY`` and ``VIDGATE_BASE_URL`` environment variables.

    ``http_client`` lets you bring your own ``httpx.Client`` (proxies, TLS, a transport);
    ``sleep`` replaces ``time.sleep`` for every pause (retries and polling). ``retry_policy``
    says how to retry (default ``RetryPolicy()``); ``max_retries``, when given, overrides its.
    """

    def __init__(
        self,
        api_key: str | None = None,
        base_url: str | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        max_retries: int | None = None,
        retry_policy: RetryPolicy | None = None,
        http_client: httpx.Client | None = None,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        self._options = Options.resolve(api_key, base_url, timeout, max_retries, retry_policy)
        self._owns_http = http_client is None
        self._http = http_client or httpx.Client(timeout=timeout)
        self._sleep = sleep or time.sleep
        self.videos = Videos(self)
        self.tasks = Tasks(self)
        self.files = Files(self)

    @property
    def base_url(self) -> str:
        return self._options.base_url

    @property
    def max_retries(self) -> int:
        return self._options.max_retries

    @property
    def retry_policy(self) -> RetryPolicy:
        return self._options.retry

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        retry: Retry = Retry.SAFE,
        json: Any = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        files: Mapping[str, tuple[str, bytes, str]] | None = None,
        timeout: float | None = None,
    ) -> httpx.Response:
        """Send one API request, retrying per ``retry``; the 2xx answer or a VidgateError."""
        options = self._options
        attempt = 0
        while True:
            try:
                response = self._http.request(
                    method,
                    options.url(path),
                    json=json,
                    params=params,
                    headers={**options.headers, **(headers or {})},
                    files=files,
                    timeout=options.timeout if timeout is None else timeout,
                )
            except httpx.TransportError as exc:
                error: VidgateError = connection_error(exc)
                cause: BaseException | None = exc
            else:
                if response.is_success:
                    return response
                error = error_from_response(response)
                cause = None
            error.attempts = attempt + 1
            delay = retry_pause(options.retry, retry, attempt, error)
            if delay is None:
                raise error from cause
            self._sleep(delay)
            attempt += 1

    def download(
        self,
        task_or_url: Task | str,
        path: str | os.PathLike[str],
        *,
        on_progress: ProgressCallback | None = None,
        max_bytes: int | None = None,
    ) -> Path:
        """Save a task's video (or any result URL) to ``path`` (a file, or a directory to put
        it in), resuming an interrupted transfer; ``on_progress(done, total)`` as it goes. A
        file larger than ``max_bytes`` raises VidgateError ``download_too_large``."""
        url, fallback = self._video_url(task_or_url)
        url = self._options.url(url)
        transfer = Transfer(url, target_path(path, url, fallback), max_bytes)
        retries = DownloadRetries(self._options.retry, transfer)
        while True:
            retries.begin()
            try:
                step = self._transfer(transfer, on_progress)
            except httpx.TransportError as exc:
                self._sleep(retries.after_cut(exc))
                continue
            except APIStatusError as error:
                self._sleep(retries.after_status(error))
                continue
            if step is Step.RESTART:
                retries.restart()
            elif step is Step.DONE or transfer.complete():
                return transfer.finish()
            else:
                retries.after_short_body()

    def _transfer(self, transfer: Transfer, on_progress: ProgressCallback | None) -> Step:
        headers = {"User-Agent": USER_AGENT, **transfer.request_headers()}
        with self._http.stream(
            "GET", transfer.url, headers=headers, follow_redirects=True
        ) as response:
            step = transfer.accept(response)
            if step is Step.ERROR:
                response.read()
                raise error_from_response(response)
            if step is Step.WRITE:
                step = _write(transfer, response, on_progress)
        if step is Step.TOO_LARGE:
            raise transfer.too_large()
        return step

    def _video_url(self, task_or_url: Task | str) -> tuple[str, str]:
        """(URL, file name to use in a directory) for a task, a task id or a URL."""
        if isinstance(task_or_url, str) and ("://" in task_or_url or task_or_url.startswith("/")):
            return task_or_url, "video.mp4"
        task = task_or_url if isinstance(task_or_url, Task) else self.tasks.get(task_or_url)
        if task.video_url is None:
            raise missing_video(task)
        return task.video_url, f"{task.id}.mp4"

    def credits(self) -> Credits:
        return parse(Credits, self.request("GET", "/v1/credits"))


class Videos:
    def __init__(self, client: Client) -> None:
        self._client = client

    def generate(
        self,
        prompt: str,
        *,
        model: str = "veo3.1-fast",
        images: Sequence[ImageSource] | None = None,
        image_urls: Sequence[str] | None = None,
        aspect_ratio: str | None = None,
        callback_url: str | None = None,
        idempotency_key: str | bool | NotGiven | None = NOT_GIVEN,
        cancel_after: float | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> Task:
        """Create a video task. ``images`` (local files or bytes) are uploaded first and follow
        ``image_urls``: the first image is the first frame, a second one the last. A fresh
        ``Idempotency-Key`` makes the create safe to retry; pass ``idempotency_key=None`` to
        send none (and then it is never retried)."""
        urls = list(image_urls or [])
        urls += [self._client.files.upload(image).url for image in images or ()]
        body = generation_body(
            prompt,
            model=model,
            image_urls=urls,
            aspect_ratio=aspect_ratio,
            callback_url=callback_url,
            extra=extra,
        )
        headers = idempotency_header(idempotency_key)
        if cancel_after is not None:
            headers["Cancel-After"] = f"{cancel_after:g}"
        retry = Retry.KEYED_CREATE if "Idempotency-Key" in headers else Retry.NEVER
        response = self._client.request(
            "POST", "/v1/videos/generations", json=body, headers=headers, retry=retry
        )
        return parse(Task, response)


class Tasks:
    def __init__(self, client: Client) -> None:
        self._client = client

    def get(self, task_id: str, *, wait: float | None = None) -> Task:
        """The task; with ``wait``, a vidgate server holds the answer up to that many seconds
        (at most its ``X-Vidgate-Wait-Max``) until the task changes. Others answer at once."""
        client = self._client
        response = client.request(
            "GET",
            task_path(task_id),
            params=wait_params(wait),
            timeout=client._options.timeout + (wait or 0),
        )
        return parse(Task, response)

    def list(
        self,
        *,
        status: str | None = None,
        model: str | None = None,
        limit: int = 20,
        cursor: str | None = None,
    ) -> TaskPage:
        """One page of the caller's tasks, newest first; pass ``next_cursor`` for the next."""
        params = drop_none(
            {"status": status, "model": model, "limit": str(limit), "cursor": cursor}
        )
        return parse(TaskPage, self._client.request("GET", "/v1/tasks", params=params))

    def iter(
        self, *, status: str | None = None, model: str | None = None, page_size: int = 100
    ) -> Iterator[Task]:
        """Every task of the caller, newest first, following the cursors page by page."""
        cursor: str | None = None
        while True:
            page = self.list(status=status, model=model, limit=page_size, cursor=cursor)
            yield from page.data
            if not page.has_more or not page.next_cursor:
                return
            cursor = page.next_cursor

    def cancel(self, task_id: str) -> Task:
        """Cancel a pending or processing task. Retried like a read: if an earlier attempt did
        cancel it but its answer was lost, the retry's 409 is answered with the cancelled task."""
        try:
            response = self._client.request("POST", task_path(task_id, "/cancel"))
        except ConflictError as conflict:
            if conflict.attempts > 1:
                task = self.get(task_id)
                if task.cancelled:
                    return task
            raise
        return parse(Task, response)

    def wait(
        self,
        task: Task | str,
        *,
        timeout: float | None = None,
        on_progress: Callable[[Task], object] | None = None,
        poll_interval: float = 1.0,
        max_poll_interval: float = 10.0,
    ) -> Task:
        """Block until the task is completed or failed and return it (a failed task is returned,
        not raised). ``on_progress(task)`` on every change seen; WaitTimeout past ``timeout``."""
        task_id = task.id if isinstance(task, Task) else task
        client = self._client
        pacer = Pacer(timeout, poll_interval=poll_interval, max_poll_interval=max_poll_interval)
        failures = 0
        while True:
            if pacer.expired():
                raise WaitTimeout(
                    f"Task {task_id} did not finish within {timeout:g} s.", task=pacer.last
                )
            hold = pacer.long_poll()
            started = time.monotonic()
            try:
                response = client.request(
                    "GET",
                    task_path(task_id),
                    params=pacer.params(hold),
                    timeout=client._options.timeout + hold,
                )
            except VidgateError as error:
                failures += 1
                policy = client.retry_policy
                if not retryable(policy, Retry.SAFE, error) or policy.exhausted(failures - 1):
                    raise
                client._sleep(pacer.backoff_after_error(header_retry_after(error.headers)))
                continue
            failures = 0
            current = parse(Task, response)
            if pacer.observe(current, response.headers) and on_progress is not None:
                on_progress(current)
            if current.done:
                return current
            pause = pacer.pause(
                held=hold, elapsed=time.monotonic() - started, headers=response.headers
            )
            if pause > 0:
                client._sleep(pause)


class Files:
    def __init__(self, client: Client) -> None:
        self._client = client

    def upload(self, file: ImageSource, *, filename: str | None = None) -> UploadedFile:
        """Upload an image (a path or its bytes) for ``image_urls``: a vidgate extra."""
        parts = upload_parts(file, filename)
        try:
            response = self._client.request("POST", "/v1/files", files={"file": parts})
        except APIStatusError as error:
            missing = upload_missing(error)
            if missing is error:
                raise
            raise missing from error
        return parse(UploadedFile, response)


def _write(
    transfer: Transfer, response: httpx.Response, on_progress: ProgressCallback | None
) -> Step:
    """Stream the body into the part file; TOO_LARGE (nothing more written) past max_bytes."""
    if on_progress is not None:
        on_progress(transfer.done, transfer.total)
    with transfer.part.open(transfer.mode) as out:
        for chunk in response.iter_raw():
            if transfer.over_limit(transfer.done + len(chunk)):
                return Step.TOO_LARGE
            out.write(chunk)
            transfer.done += len(chunk)
            if on_progress is not None:
                on_progress(transfer.done, transfer.total)
    return Step.WRITE
