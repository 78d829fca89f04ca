"""A model with several engines: a refusal moves the task on; an accepted failure does not."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from support import ADMIN_KEY, asgi_client
from vidgate.engines.base import EngineFailure, EngineRefused, GenerationContext, GenerationRequest
from vidgate.engines.registry import ModelRegistry, ModelSpec
from vidgate.queue.worker import Worker
from vidgate.services import open_services
from vidgate.settings import Settings


class Refusing:
    name = "first"

    def __init__(self) -> None:
        self.calls = 0

    async def generate(
        self, request: GenerationRequest, output: Path, context: GenerationContext
    ) -> None:
        self.calls += 1
        raise EngineRefused("service_unavailable", "the first engine is down")


class Accepting:
    name = "second"

    def __init__(self, fail: bool = False) -> None:
        self.calls = 0
        self.fail = fail

    async def generate(
        self, request: GenerationRequest, output: Path, context: GenerationContext
    ) -> None:
        self.calls += 1
        if self.fail:
            raise EngineFailure("generation_failed_no_content", "accepted, then made nothing")
        output.write_bytes(b"a video")  # noqa: ASYNC240 - a few bytes in a test


async def test_refusals_fail_over_in_order_and_open_the_circuit(tmp_path: Path) -> None:
    first, second = Refusing(), Accepting()
    spec = ModelSpec(name="m", engine="first", engines=("first", "second"), price=Decimal(1))
    services = await open_services(
        Settings(data_dir=tmp_path / "data", workers=0),
        registry=ModelRegistry.of([spec]),
        engines={"first": first, "second": second},
    )
    try:
        await services.accounts.bootstrap(key=ADMIN_KEY, credits=Decimal(100))
        async with asgi_client(services) as client:
            worker = Worker(
                services.runs,
                services.engines,
                name="w",
                scratch=services.files.scratch_dir(),
                health=services.health,
            )
            for round_ in range(4):
                made = await client.post(
                    "/v1/videos/generations", json={"model": "m", "prompt": "x"}
                )
                task = await services.runs.claim("w")
                assert task is not None
                await worker.run_task(task)
                done = (await client.get(f"/v1/tasks/{made.json()['id']}")).json()
                assert done["status"] == "completed", (round_, done)
            # Three refusals opened the first engine's circuit: the fourth task went straight on.
            assert (first.calls, second.calls) == (3, 4)
            [model] = (await client.get("/v1/models")).json()["data"]
            assert model["engines"] == [
                {"name": "first", "healthy": False},
                {"name": "second", "healthy": True},
            ]
            assert model["engine"] == "second"
            metrics = (await client.get("/metrics")).text
            assert 'vidgate_engine_healthy{engine="first"} 0.0' in metrics

            second.fail = True
            made = await client.post("/v1/videos/generations", json={"model": "m", "prompt": "x"})
            task = await services.runs.claim("w")
            assert task is not None
            await worker.run_task(task)
            failed = (await client.get(f"/v1/tasks/{made.json()['id']}")).json()
            assert failed["error"]["code"] == "generation_failed_no_content"
            assert first.calls == 3  # accepted elsewhere: never sent on to another engine
    finally:
        await services.close()
