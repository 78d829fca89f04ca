"""A database that cannot be reached is a 503 to retry, never a 500 with a stack trace."""

from __future__ import annotations

import pytest

from support import free_port
from vidgate.errors import ServiceUnavailable
from vidgate.store.database import Database


@pytest.mark.parametrize("how", ["read", "write"])
async def test_an_unreachable_postgresql_is_service_unavailable(how: str) -> None:
    # Nothing listens on this loopback port: the driver's connect is refused.
    db = Database(f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/vidgate")
    try:
        with pytest.raises(ServiceUnavailable) as caught:
            async with getattr(db, how)() as conn:
                await conn.exec_driver_sql("SELECT 1")
    finally:
        await db.close()
    assert caught.value.status == 503
    assert caught.value.headers["Retry-After"] == "2"
    assert "database" in caught.value.message
