"""VIDGATE_MODELS points the server at another registry file: its models, prices and limits."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from support import ADMIN_KEY, asgi_client
from vidgate.services import open_services
from vidgate.settings import Settings

MODELS = """
[engines.cpu]
type = "preview"

[models."house-model"]
engines = ["cpu"]
price = "3.50"
aliases = ["house"]
max_prompt_chars = 20
aspect_ratios = ["16:9"]
max_images = 1
"""


async def test_a_custom_registry_file_sets_models_prices_and_limits(tmp_path: Path) -> None:
    path = tmp_path / "models.toml"
    path.write_text(MODELS)
    services = await open_services(Settings(data_dir=tmp_path / "data", workers=0, models=path))
    try:
        await services.accounts.bootstrap(key=ADMIN_KEY, credits=Decimal(100))
        async with asgi_client(services) as client:
            [model] = (await client.get("/v1/models")).json()["data"]
            assert (model["id"], model["engine"], model["price"]) == ("house-model", "cpu", 3.5)
            assert model["aliases"] == ["house"]
            made = await client.post(
                "/v1/videos/generations", json={"model": "house", "prompt": "x"}
            )
            assert made.status_code == 200
            assert made.json()["usage"]["credits_reserved"] == 3.5
            for body, param in (
                ({"model": "house", "prompt": "x" * 21}, "prompt"),
                ({"model": "house", "prompt": "x", "aspect_ratio": "9:16"}, "aspect_ratio"),
                ({"model": "veo3.1-fast", "prompt": "x"}, "model"),
            ):
                refused = await client.post("/v1/videos/generations", json=body)
                assert refused.status_code == 400
                assert refused.json()["error"]["param"] == param
    finally:
        await services.close()
