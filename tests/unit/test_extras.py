"""A setting that needs an optional part (vidgate[postgres], [s3], [redis]) which is not
installed is one clear line at start-up, naming the setting and the install."""

from __future__ import annotations

from pathlib import Path

import pytest

from vidgate.extras import MissingExtra, require_extras
from vidgate.settings import Settings

DATA = Path("/nonexistent/vidgate-data")  # never opened: the checks only read settings


def nothing_installed(module: str) -> bool:
    return False


def test_one_machine_needs_no_extra() -> None:
    require_extras(Settings(data_dir=DATA), installed=nothing_installed)


def test_a_bucket_without_boto3_names_the_setting_and_the_extra() -> None:
    settings = Settings(data_dir=DATA, s3_bucket="videos")

    with pytest.raises(MissingExtra) as raised:
        require_extras(settings, installed=nothing_installed)

    message = str(raised.value)
    assert message.startswith("VIDGATE_S3_BUCKET needs boto3, which is not installed: ")
    assert "pip install 'vidgate[s3]'" in message
    assert ".venv/bin/pip install -e '.[s3]'" in message


def test_every_missing_extra_is_in_the_one_line() -> None:
    settings = Settings(
        data_dir=DATA,
        database_url="postgresql+asyncpg://vidgate@db.internal/vidgate",
        s3_bucket="videos",
        redis_url="redis://127.0.0.1:6379/0",
    )

    with pytest.raises(MissingExtra) as raised:
        require_extras(settings, installed=lambda module: module == "boto3")

    message = str(raised.value)
    assert "\n" not in message
    assert "VIDGATE_DATABASE_URL=postgresql+asyncpg://... needs asyncpg" in message
    assert "VIDGATE_REDIS_URL needs coredis" in message
    assert "boto3" not in message
    assert "pip install 'vidgate[postgres,redis]'" in message


def test_installed_extras_pass() -> None:
    settings = Settings(data_dir=DATA, s3_bucket="videos", redis_url="redis://127.0.0.1:6379/0")

    require_extras(settings, installed=lambda module: True)
