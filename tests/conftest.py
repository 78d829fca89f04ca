"""Fixtures for every suite: settings on a fresh database, services, the app over ASGI, keys.

The integration suite runs twice: on SQLite (a file per test) and on PostgreSQL (a database per
test, copied from a template migrated once per session) when VIDGATE_TEST_POSTGRES_URL is set or,
unset, when the usual local server answers (``local_postgres``; pytest's header says which).
A test joins both runs by asking for ``settings``, ``services``, ``client`` or ``database_url``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import os
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import httpx
import pytest
import trustme
from sqlalchemy.engine import make_url

from local_postgres import VARIABLE, choose_postgres
from support import ADMIN_KEY, StaticServer, admin_services, asgi_client
from vidgate.services import Services
from vidgate.settings import Settings
from vidgate.store.database import Database

# Set by pytest_configure (below), before any test module is collected.
POSTGRES_URL: str | None = None
NO_POSTGRES = "no PostgreSQL for the tests"
_POSTGRES_LINE = pytest.StashKey[str]()
INTEGRATION = Path(__file__).parent / "integration"
# Databases this session makes are named vg_<pid>_...: distinct per xdist worker and per
# concurrent pytest run, and recognisable as leftovers once their process is gone.
PREFIX = f"vg_{os.getpid()}_"
T = TypeVar("T")


def pytest_configure(config: pytest.Config) -> None:
    """Choose the PostgreSQL once, in the first process. The choice goes into the environment
    (the URL, or empty for none), so xdist's workers, started later, inherit it instead of
    probing again, and so do the suites that read the variable themselves."""
    global POSTGRES_URL, NO_POSTGRES
    choice = choose_postgres(os.environ)
    os.environ[VARIABLE] = choice.url or ""
    POSTGRES_URL = choice.url
    NO_POSTGRES = choice.line
    config.stash[_POSTGRES_LINE] = choice.line


def pytest_report_header(config: pytest.Config) -> str:
    return config.stash.get(_POSTGRES_LINE, "")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Every integration test that reaches ``backend`` runs on SQLite and on PostgreSQL
    (unless marked ``sqlite_only``)."""
    if "backend" not in metafunc.fixturenames:
        return
    if INTEGRATION not in Path(str(metafunc.definition.path)).parents:
        return
    backends: list[Any] = ["sqlite"]
    if metafunc.definition.get_closest_marker("sqlite_only") is None:
        backends.append(pytest.param("postgres", marks=pytest.mark.postgres))
    metafunc.parametrize("backend", backends, indirect=True)


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    """The database the test runs on; SQLite outside the integration suite."""
    return str(getattr(request, "param", "sqlite"))


def run_async(make: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine to the end from synchronous code, on a thread with its own loop, so
    whatever event loop pytest-asyncio keeps for the test is left alone."""

    async def main() -> T:
        return await make()

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, main()).result()


def _admin_dsn(url: str) -> str:
    """The asyncpg DSN of the database named in a SQLAlchemy URL (the maintenance database)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _with_database(url: str, name: str) -> str:
    return make_url(url).set(database=name).render_as_string(hide_password=False)


async def _execute(url: str, *statements: str) -> list[Any]:
    try:
        conn = await asyncpg.connect(_admin_dsn(url))
    except asyncpg.InvalidCatalogNameError:  # the URL's database is not made yet: use the default
        conn = await asyncpg.connect(_admin_dsn(_with_database(url, "postgres")))
    try:
        results: list[Any] = []
        for statement in statements:
            results.append(await conn.fetch(statement))
        return results
    finally:
        await conn.close()


def _is_leftover(name: str) -> bool:
    """A database of a test run whose process died before it could drop it."""
    match = re.fullmatch(r"vg_(\d+)_\w+", name)
    if match is None:
        return False
    try:
        os.kill(int(match.group(1)), 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    return False


async def _make_template(url: str, name: str) -> None:
    [rows] = await _execute(url, r"SELECT datname FROM pg_database WHERE datname LIKE 'vg\_%'")
    leftovers = [row["datname"] for row in rows if _is_leftover(row["datname"])]
    await _execute(
        url,
        *(f'DROP DATABASE IF EXISTS "{old}" WITH (FORCE)' for old in leftovers),
        f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)',
        f'CREATE DATABASE "{name}"',
    )
    db = Database(_with_database(url, name))
    try:
        await db.migrate()
    finally:
        await db.close()  # a template may have no open connection when it is copied


@pytest.fixture(scope="session")
def postgres_template() -> Iterator[str]:
    """A database migrated to head, the template every test's database is copied from."""
    if not POSTGRES_URL:
        pytest.skip(NO_POSTGRES)
    name = f"{PREFIX}template"
    run_async(lambda: _make_template(POSTGRES_URL, name))
    yield name
    run_async(lambda: _execute(POSTGRES_URL, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


_numbers = itertools.count()


@pytest.fixture
def postgres_url(postgres_template: str) -> Iterator[str]:
    """A fresh, migrated PostgreSQL database for this test alone, dropped afterwards."""
    assert POSTGRES_URL
    name = f"{PREFIX}{next(_numbers)}"
    run_async(
        lambda: _execute(POSTGRES_URL, f'CREATE DATABASE "{name}" TEMPLATE "{postgres_template}"')
    )
    yield _with_database(POSTGRES_URL, name)
    run_async(lambda: _execute(POSTGRES_URL, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def empty_postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database with nothing in it (not migrated), dropped afterwards."""
    if not POSTGRES_URL:
        pytest.skip(NO_POSTGRES)
    name = f"{PREFIX}empty_{next(_numbers)}"
    run_async(lambda: _execute(POSTGRES_URL, f'CREATE DATABASE "{name}"'))
    yield _with_database(POSTGRES_URL, name)
    run_async(lambda: _execute(POSTGRES_URL, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def database_url(backend: str, request: pytest.FixtureRequest) -> str | None:
    """The test's database URL; None for SQLite, which then lives in the settings' data dir."""
    if backend == "sqlite":
        return None
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def static_server() -> Iterator[StaticServer]:
    with StaticServer() as server:
        yield server


@pytest.fixture
def settings(tmp_path: Path, static_server: StaticServer, database_url: str | None) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        workers=0,
        egress_allow=frozenset({("127.0.0.1", static_server.port)}),
        public_url="http://testserver",
        bootstrap_key=ADMIN_KEY,
        bootstrap_credits=1000,
    )


@pytest.fixture
async def services(settings: Settings) -> AsyncIterator[Services]:
    async with admin_services(settings) as opened:
        yield opened


@pytest.fixture
async def client(services: Services) -> AsyncIterator[httpx.AsyncClient]:
    async with asgi_client(services) as http:
        yield http


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    """A test certificate authority; servers get certificates from it with ``issue_cert``."""
    return trustme.CA()


@pytest.fixture
def ca_file(ca: trustme.CA, tmp_path: Path) -> Path:
    """The CA as a PEM file, for VIDGATE_EGRESS_CA_BUNDLE."""
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return path
