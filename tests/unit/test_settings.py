"""Settings come from VIDGATE_* variables, once."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from vidgate.settings import Settings


def test_defaults_put_sqlite_in_the_data_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("VIDGATE_DATA_DIR", "VIDGATE_DATABASE_URL", "VIDGATE_PUBLIC_URL"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings()
    assert settings.data_dir == Path("data")
    assert settings.resolved_database_url.startswith("sqlite+aiosqlite:///")
    assert settings.resolved_database_url.endswith("/data/vidgate.db")
    assert settings.base_url == "http://127.0.0.1:8000"


def test_environment_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIDGATE_EGRESS_ALLOW", "127.0.0.1:8081, images.test:443,[::1]:9000")
    monkeypatch.setenv("VIDGATE_PUBLIC_URL", "https://v.example.com/")
    monkeypatch.setenv("VIDGATE_WORKERS", "3")
    settings = Settings()
    assert settings.egress_allow == {("127.0.0.1", 8081), ("images.test", 443), ("::1", 9000)}
    assert settings.base_url == "https://v.example.com"
    assert settings.workers == 3


@pytest.mark.parametrize("value", ["127.0.0.1", "host:port", ":80"])
def test_bad_allow_entries_are_refused(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("VIDGATE_EGRESS_ALLOW", value)
    with pytest.raises(ValidationError, match="host:port"):
        Settings()


def test_result_urls_live_at_least_a_day() -> None:
    with pytest.raises(ValidationError):
        Settings(result_url_ttl_seconds=3600)
