"""The one Settings object: every VIDGATE_* environment variable, read once and passed down."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class Settings(BaseSettings):
    """Built once in ``cli.main()`` (or a test fixture) and handed to everything that needs it."""

    model_config = SettingsConfigDict(env_prefix="VIDGATE_", extra="ignore")

    data_dir: Path = Path("./data")
    database_url: str | None = Field(
        default=None, description="SQLAlchemy async URL; default: SQLite in the data dir"
    )
    host: str = "127.0.0.1"
    port: int = 8000
    public_url: str | None = Field(
        default=None, description="Base URL that result links are built on"
    )
    workers: int = Field(default=1, ge=0, description="In-process workers beside the API")
    bootstrap_key: str | None = None
    bootstrap_credits: float = 1000.0
    egress_allow: Annotated[frozenset[tuple[str, int]], NoDecode] = frozenset()
    egress_ca_bundle: Path | None = None
    result_url_ttl_seconds: int = Field(default=24 * 3600, ge=24 * 3600)
    lease_seconds: float = Field(default=60.0, gt=0)
    poll_interval_seconds: float = Field(default=0.5, gt=0)
    rate_limit_per_minute: int = Field(
        default=600, ge=0, description="Requests per minute per key (0: unlimited)"
    )
    max_active_tasks: int = Field(
        default=100, ge=0, description="Unfinished tasks per account (0: unlimited)"
    )
    redis_url: str | None = Field(
        default=None, description="Shares rate limits between API replicas"
    )
    auth_cache_seconds: float = Field(
        default=2.0,
        ge=0,
        le=60,
        description="How long a replica remembers who an API key is (0: read it every time)",
    )
    webhook_rotation_grace_seconds: float = Field(
        default=24 * 3600, ge=0, description="How long a rotated-out webhook secret still signs"
    )
    callback_concurrency: int = Field(
        default=16, ge=1, description="Callbacks in flight at once per process"
    )
    shutdown_grace_seconds: float = Field(
        default=30, ge=0, description="On SIGTERM, how long running tasks get to finish"
    )
    retention_days: float = Field(
        default=7, gt=0, description="Finished tasks and their files are kept this long"
    )
    s3_bucket: str | None = Field(
        default=None, description="Keep inputs and results in this S3 bucket, not the data dir"
    )
    s3_endpoint_url: str | None = Field(
        default=None, description="S3-compatible endpoint (MinIO, R2...); default: AWS"
    )
    s3_public_endpoint_url: str | None = Field(
        default=None, description="The endpoint clients reach, for presigned URLs"
    )
    s3_region: str | None = None
    s3_access_key_id: str | None = Field(default=None, repr=False)
    s3_secret_access_key: str | None = Field(default=None, repr=False)
    s3_prefix: str = Field(default="", description="Object names start with this folder")
    s3_addressing_style: str = Field(default="auto", pattern="^(auto|path|virtual)$")
    s3_result_urls: str = Field(
        default="stream",
        pattern="^(stream|presigned)$",
        description="Result links stream through the API, or are the bucket's presigned URLs",
    )
    models: Path | None = Field(
        default=None, description="The model registry file (TOML); default: the packaged one"
    )
    log_level: str = "INFO"
    max_body_bytes: int = Field(
        default=1024 * 1024,
        ge=1024,
        description="Largest JSON request body (413 past it); uploads have their own caps",
    )
    # The HTTP server (``vidgate serve``): slow or idle clients, and how many at once.
    header_timeout_seconds: float = Field(
        default=20, gt=0, le=300, description="Longest a client may take to send a request head"
    )
    keep_alive_seconds: int = Field(
        default=5, ge=1, description="How long an idle connection stays open between requests"
    )
    max_connections: int = Field(
        default=1000, ge=0, description="Open connections at once; past it 503 (0: no cap)"
    )
    # Remote workers (``vidgate worker --server``): the API's side, then the worker host's.
    worker_result_max_bytes: int = Field(
        default=2 * 1024**3, gt=0, description="Largest video a remote worker may upload"
    )
    worker_claim_wait_seconds: float = Field(
        default=25, ge=0, le=60, description="Longest a remote worker's claim is held open"
    )
    worker_server: str | None = Field(
        default=None, description="A remote worker's API server URL (vidgate worker --server)"
    )
    worker_token: str | None = Field(
        default=None, repr=False, description="A remote worker's token (wk-...)"
    )

    @field_validator("egress_allow", mode="before")
    @classmethod
    def _parse_allow(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        pairs: set[tuple[str, int]] = set()
        for item in filter(None, (part.strip() for part in value.split(","))):
            host, sep, port = item.rpartition(":")
            if not sep or not host or not port.isdigit():
                raise ValueError(f"VIDGATE_EGRESS_ALLOW entries are host:port, got {item!r}")
            pairs.add((host.strip("[]").lower(), int(port)))
        return frozenset(pairs)

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'vidgate.db').resolve()}"

    @property
    def base_url(self) -> str:
        if self.public_url:
            return self.public_url.rstrip("/")
        host = f"[{self.host}]" if ":" in self.host else self.host
        if host in ("0.0.0.0", "[::]"):  # noqa: S104 - only naming the wildcard, not binding
            host = "127.0.0.1"
        return f"http://{host}:{self.port}"

    @property
    def files_dir(self) -> Path:
        return self.data_dir / "files"

    def environment(self) -> Mapping[str, str]:
        """The process environment, for ``${NAME}`` secrets in the model registry file."""
        return os.environ
