"""Which PostgreSQL the tests run on: VIDGATE_TEST_POSTGRES_URL when it is set (empty: none),
else the usual local server when it answers, else none (that half of the suite is skipped)."""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

import asyncpg
from sqlalchemy.engine import make_url

VARIABLE: Final = "VIDGATE_TEST_POSTGRES_URL"
DEFAULT_URL: Final = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
# A server on this machine answers in milliseconds; this only bounds a dead address.
CONNECT_TIMEOUT: Final = 3.0


@dataclass(frozen=True)
class PostgresChoice:
    url: str | None
    """The SQLAlchemy URL the PostgreSQL tests use; None: they are skipped."""
    line: str
    """One line for pytest's header that says which it is and why."""


def shown(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


async def _refusal(url: str, connect_timeout: float) -> str | None:
    """None when a PostgreSQL server at ``url`` lets us in, else why not."""
    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    try:
        connection = await asyncpg.connect(dsn, timeout=connect_timeout)
    except asyncpg.InvalidCatalogNameError:
        return None  # the server answered; the tests make their databases from "postgres"
    except (OSError, TimeoutError, asyncpg.PostgresError) as error:
        return f"{type(error).__name__}: {error}".strip().rstrip(":")
    await connection.close()
    return None


def refusal(url: str, timeout: float = CONNECT_TIMEOUT) -> str | None:
    """``_refusal`` from synchronous code, on a thread with its own event loop."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, _refusal(url, timeout)).result()


def choose_postgres(
    environ: Mapping[str, str], default: str = DEFAULT_URL, timeout: float = CONNECT_TIMEOUT
) -> PostgresChoice:
    given = environ.get(VARIABLE)
    if given is not None:
        if not given:
            return PostgresChoice(None, f"postgresql: off ({VARIABLE} is empty): skipped")
        return PostgresChoice(given, f"postgresql: {shown(given)} (from {VARIABLE})")
    why = refusal(default, timeout)
    if why is None:
        return PostgresChoice(
            default, f"postgresql: {shown(default)} (found answering; {VARIABLE} unset)"
        )
    return PostgresChoice(
        None,
        f"postgresql: none at {shown(default)} ({why}): skipped; set {VARIABLE} to run it",
    )
