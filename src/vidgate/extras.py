"""The optional parts of vidgate and the settings that need them: one clear line at start-up
when a setting asks for a part that is not installed, not an ImportError deep in a request.

``pip install vidgate`` (what ``make run`` installs) is what one machine needs: SQLite, files in
the data dir, rate limits counted in memory. Scaling out needs a driver or client each, kept out
of the plain install because every server would carry them (boto3 alone is ~36 MB):
``vidgate[postgres]``, ``vidgate[s3]``, ``vidgate[redis]``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

from vidgate.engines.config import ConfigError
from vidgate.settings import Settings


class MissingExtra(ConfigError):
    """A setting needs an optional part of vidgate that is not installed."""


@dataclass(frozen=True)
class Extra:
    name: str
    """The pip extra: ``vidgate[name]``."""
    module: str
    """What it installs, imported to tell whether it is there."""
    setting: str
    """The setting that needs it, as the operator wrote it."""


POSTGRES = Extra("postgres", "asyncpg", "VIDGATE_DATABASE_URL=postgresql+asyncpg://...")
S3 = Extra("s3", "boto3", "VIDGATE_S3_BUCKET")
REDIS = Extra("redis", "coredis", "VIDGATE_REDIS_URL")


def needed(settings: Settings) -> list[Extra]:
    """The extras these settings use."""
    extras = []
    if settings.resolved_database_url.startswith("postgresql"):
        extras.append(POSTGRES)
    if settings.s3_bucket:
        extras.append(S3)
    if settings.redis_url:
        extras.append(REDIS)
    return extras


def importable(module: str) -> bool:
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True


def require_extras(settings: Settings, installed: Callable[[str], bool] = importable) -> None:
    """Raise ``MissingExtra``, naming each setting and the install that serves it."""
    missing = [extra for extra in needed(settings) if not installed(extra.module)]
    if not missing:
        return
    names = ",".join(extra.name for extra in missing)
    uses = "; ".join(f"{extra.setting} needs {extra.module}" for extra in missing)
    raise MissingExtra(
        f"{uses}, which is not installed: pip install 'vidgate[{names}]'"
        f" (in a checkout: .venv/bin/pip install -e '.[{names}]')"
    )
