"""The diffusers model process: loads one pipeline once, then runs jobs sent over a pipe."""

from __future__ import annotations

import importlib
import logging
import os
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from vidgate.engines.base import TaskErrorCode

logger = logging.getLogger(__name__)

PipelineKind = Literal["ltx", "wan"]


@dataclass(frozen=True)
class ChildConfig:
    """What the process loads: sent once, at spawn."""

    pipeline: PipelineKind
    model_path: str
    device: str | None = None  # None: cuda when available, else cpu
    dtype: str | None = None  # None: bfloat16 on cuda, float32 on cpu


@dataclass(frozen=True)
class Job:
    """One generation: keyframe images arrive already fitted to ``width`` x ``height``."""

    prompt: str
    width: int
    height: int
    num_frames: int
    num_inference_steps: int
    guidance_scale: float | None
    seed: int
    frames_path: str  # where the frames go, as one (frames, height, width, 3) uint8 .npy
    images: list[NDArray[np.uint8]] = field(default_factory=list)


# Messages, as tuples (cheap to pickle): child to parent
#   ("ready",) | ("progress", done, total) | ("done",) | ("cancelled",) | ("failed", code, text)
# and parent to child: ("generate", Job) | ("exit",).


def _module(name: str) -> Any:
    """Import torch or diffusers lazily and untyped: the server and mypy run without them."""
    return importlib.import_module(name)


class _Stop(Exception):
    """Raised from the step callback to leave the denoising loop at once."""


def classify(error: BaseException) -> TaskErrorCode:
    """The task error code for an exception raised by a pipeline.

    By class name, so that the parent and the unit tests need no torch: CUDA's out-of-memory is
    ``torch.cuda.OutOfMemoryError`` (also ``torch.OutOfMemoryError``).
    """
    if isinstance(error, MemoryError) or type(error).__name__ == "OutOfMemoryError":
        return "resource_exhausted"
    if isinstance(error, ValueError):
        return "invalid_parameters"
    return "service_error"


def serve(connection: Connection, stop: Event, config: ChildConfig) -> None:
    """The process's main function: load, say ready, then answer jobs until told to exit."""
    # Never download at run time: set before huggingface_hub is imported, which reads it once.
    os.environ["HF_HUB_OFFLINE"] = "1"
    try:
        runner = _Runner(config)
    except BaseException as error:
        connection.send(("failed", classify(error), f"could not load the pipeline: {error!r}"))
        return
    connection.send(("ready",))
    while True:
        try:
            message = connection.recv()
        except EOFError:  # the parent is gone
            return
        if message[0] != "generate":
            return
        reply = runner.run(message[1], connection, stop)
        connection.send(reply)
        if reply[0] == "failed" and reply[1] == "resource_exhausted":
            # Memory may be fragmented or held by a half-finished graph: start clean next time.
            return


class _Runner:
    def __init__(self, config: ChildConfig) -> None:
        torch = self.torch = _module("torch")
        self.kind = config.pipeline
        self.device = config.device or ("cuda" if torch.cuda.is_available() else "cpu")
        default_dtype = "bfloat16" if self.device.startswith("cuda") else "float32"
        self.dtype = getattr(torch, config.dtype or default_dtype)
        if config.pipeline == "ltx":
            self.text, self.images = _load_ltx(config.model_path, self.dtype)
        else:
            self.text, self.images = _load_wan(config.model_path, self.dtype)
        for pipe in {id(p): p for p in (self.text, self.images) if p is not None}.values():
            pipe.to(self.device)
            pipe.set_progress_bar_config(disable=True)

    def run(self, job: Job, connection: Connection, stop: Event) -> tuple[Any, ...]:
        try:
            frames = self._generate(job, connection, stop)
        except _Stop:
            return ("cancelled",)
        except Exception as error:
            logger.exception("the pipeline failed")
            return ("failed", classify(error), f"{type(error).__name__}: {error}")
        finally:
            if self.device.startswith("cuda"):
                self.torch.cuda.empty_cache()
        np.save(job.frames_path, frames)
        return ("done",)

    def _generate(self, job: Job, connection: Connection, stop: Event) -> NDArray[np.uint8]:
        from PIL import Image

        steps = job.num_inference_steps

        def on_step_end(
            pipe: Any, step: int, timestep: Any, tensors: dict[str, Any]
        ) -> dict[str, Any]:
            connection.send(("progress", step + 1, steps))
            # Raising leaves the loop now; pipe._interrupt would still run the VAE decode.
            if stop.is_set():
                raise _Stop
            return tensors

        images = [Image.fromarray(array, "RGB") for array in job.images]
        arguments: dict[str, Any] = {
            "prompt": job.prompt,
            "width": job.width,
            "height": job.height,
            "num_frames": job.num_frames,
            "num_inference_steps": steps,
            "generator": self.torch.Generator(device="cpu").manual_seed(job.seed),
            "output_type": "np",
            "callback_on_step_end": on_step_end,
        }
        if job.guidance_scale is not None:
            arguments["guidance_scale"] = job.guidance_scale
        if stop.is_set():
            raise _Stop
        if not images:
            if self.text is None:
                raise ValueError("this model needs an image: it is an image-to-video model")
            result = self.text(**arguments)
        elif self.images is None:
            raise ValueError("this model takes no images: it is a text-to-video model")
        elif self.kind == "ltx":
            condition = _module("diffusers.pipelines.ltx.pipeline_ltx_condition").LTXVideoCondition
            # Keyframes: the first image at frame 0, the second at the last frame.
            indices = [0, job.num_frames - 1]
            conditions = [
                condition(image=image, frame_index=index)
                for image, index in zip(images, indices, strict=False)
            ]
            result = self.images(conditions=conditions, **arguments)
        else:
            last = images[1] if len(images) > 1 else None
            result = self.images(image=images[0], last_image=last, **arguments)
        video = np.asarray(result.frames[0], dtype=np.float32)
        return np.clip(np.rint(video * 255), 0, 255).astype(np.uint8)


def _load_ltx(model_path: str, dtype: Any) -> tuple[Any, Any]:
    diffusers = _module("diffusers")
    conditioned = diffusers.LTXConditionPipeline.from_pretrained(model_path, torch_dtype=dtype)
    # The text pipeline shares the same modules: no second copy of the weights.
    return diffusers.LTXPipeline(**conditioned.components), conditioned


def _load_wan(model_path: str, dtype: Any) -> tuple[Any, Any]:
    diffusers = _module("diffusers")
    # A Wan checkpoint is either text-to-video or image-to-video; its model_index.json says which.
    pipe = diffusers.DiffusionPipeline.from_pretrained(model_path, torch_dtype=dtype)
    if isinstance(pipe, diffusers.WanImageToVideoPipeline):
        return None, pipe
    if isinstance(pipe, diffusers.WanPipeline):
        return pipe, None
    raise ValueError(f"{model_path} holds a {type(pipe).__name__}, not a Wan pipeline")
