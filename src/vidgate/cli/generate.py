"""``vidgate generate``: upload the images, create the task, wait for it, download the MP4."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from vidgate.cli.client_options import (
    ApiKeyOption,
    BaseUrlOption,
    JsonOption,
    OutOption,
    TimeoutOption,
    check_out,
    open_client,
)
from vidgate.cli.failures import EXIT_INTERRUPTED, EXIT_USAGE, fail, reported_failures
from vidgate.cli.output import console, print_json, task_data
from vidgate.cli.waiting import Interrupted, ask_cancel, report_finished, wait

ASPECT_RATIOS = ("16:9", "9:16", "auto")
MAX_IMAGES = 2


def check_aspect(aspect: str | None) -> str | None:
    if aspect is not None and aspect not in ASPECT_RATIOS:
        fail(f"--aspect {aspect}: must be one of {', '.join(ASPECT_RATIOS)}", EXIT_USAGE)
    return aspect


def check_images(images: list[str]) -> list[str | Path]:
    """Each ``--image``: an http(s) URL as it is, or a readable local file, in order."""
    if len(images) > MAX_IMAGES:
        fail("at most two --image (the first and the last frame)", EXIT_USAGE)
    checked: list[str | Path] = []
    for image in images:
        if image.startswith(("http://", "https://")):
            checked.append(image)
            continue
        path = Path(image).expanduser()
        if not path.exists():
            fail(f"--image {image}: not found", EXIT_USAGE)
        if not path.is_file():
            fail(f"--image {image}: not a file", EXIT_USAGE)
        try:
            with path.open("rb"):
                pass
        except OSError as error:
            fail(f"--image {image}: {error.strerror or 'cannot be read'}", EXIT_USAGE)
        checked.append(path)
    return checked


def generate(
    prompt: Annotated[str, typer.Argument(help="What the video shows.")],
    image: Annotated[
        list[str] | None,
        typer.Option(
            "--image",
            help="A local image (uploaded) or an http(s) URL; once: the first frame,"
            " twice: the first and the last frame.",
            show_default=False,
        ),
    ] = None,
    aspect: Annotated[
        str | None,
        typer.Option("--aspect", help="16:9 (the server's default), 9:16 or auto."),
    ] = None,
    model: Annotated[str, typer.Option("--model", help="The model.")] = "veo3.1-fast",
    out: OutOption = None,
    no_wait: Annotated[
        bool, typer.Option("--no-wait", help="Print the task id at once; do not wait.")
    ] = False,
    callback_url: Annotated[
        str | None,
        typer.Option("--callback-url", help="An https URL the server POSTs the finished task to."),
    ] = None,
    timeout: TimeoutOption = None,
    as_json: JsonOption = False,
    base_url: BaseUrlOption = None,
    api_key: ApiKeyOption = None,
) -> None:
    """Create a video: upload the images, wait with a progress bar, download the MP4.

    Ctrl-C while waiting asks whether to cancel the task (only at a terminal).
    """
    with reported_failures():
        aspect_ratio = check_aspect(aspect)
        images = check_images(image or [])
        target = check_out(out)
        show = not as_json
        with open_client(base_url, api_key) as client:
            try:
                urls = [
                    item if isinstance(item, str) else client.files.upload(item).url
                    for item in images
                ]
                task = client.videos.generate(
                    prompt,
                    model=model,
                    image_urls=urls or None,
                    aspect_ratio=aspect_ratio,
                    callback_url=callback_url,
                )
            except KeyboardInterrupt:
                fail(
                    "interrupted; a task may exist already: `vidgate tasks list`", EXIT_INTERRUPTED
                )
            if no_wait:
                if as_json:
                    print_json(task_data(task))
                else:
                    console.print(task.id, highlight=False, soft_wrap=True)
                return
            try:
                final = wait(client, task, timeout=timeout, show=show)
            except Interrupted as interrupted:
                interactive = not as_json and sys.stdin.isatty()
                ask_cancel(client, interrupted.task, interactive=interactive, as_json=as_json)
            report_finished(client, final, out=target, as_json=as_json, show=show)
