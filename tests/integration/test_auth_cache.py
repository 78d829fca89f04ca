"""A replica remembers who a key is for a moment: never past a revocation it made itself,
never past the key's expiry, and at most VIDGATE_AUTH_CACHE_SECONDS past one made elsewhere."""

from __future__ import annotations

import pytest

from support import ADMIN_KEY, Clock
from vidgate.errors import Unauthorized
from vidgate.services import Services
from vidgate.store import account_rows


@pytest.fixture
def clock(services: Services) -> Clock:
    clock = Clock(services.accounts.clock())
    services.accounts.clock = clock
    assert services.accounts.cache_seconds == 2.0  # the default setting
    return clock


async def test_a_revocation_made_elsewhere_is_seen_within_the_cache_time(
    services: Services, clock: Clock
) -> None:
    created = await services.accounts.create_key("admin", name="poller")
    bearer = f"Bearer {created.secret}"
    assert (await services.accounts.authenticate(bearer)).key_id == created.record.id
    # Another replica revokes it: straight in the shared database, not through this service.
    async with services.db.write() as conn:
        await account_rows.revoke_key(conn, created.record.id, now=clock.now)
    clock.now += 1.0
    assert (await services.accounts.authenticate(bearer)).key_id == created.record.id
    clock.now += 1.5  # past the 2 s this replica remembers a key
    with pytest.raises(Unauthorized):
        await services.accounts.authenticate(bearer)


async def test_a_revocation_made_here_is_seen_at_once(services: Services, clock: Clock) -> None:
    created = await services.accounts.create_key("admin", name="poller")
    bearer = f"Bearer {created.secret}"
    await services.accounts.authenticate(bearer)
    await services.accounts.revoke_key(created.record.id)
    with pytest.raises(Unauthorized):
        await services.accounts.authenticate(bearer)


async def test_a_remembered_key_still_expires_on_time(services: Services, clock: Clock) -> None:
    created = await services.accounts.create_key("admin", name="short", expires_at=clock.now + 0.5)
    bearer = f"Bearer {created.secret}"
    await services.accounts.authenticate(bearer)
    clock.now += 0.6  # inside the cache time, past the key's expiry
    with pytest.raises(Unauthorized):
        await services.accounts.authenticate(bearer)


async def test_a_group_change_made_here_is_seen_at_once(services: Services, clock: Clock) -> None:
    bearer = f"Bearer {ADMIN_KEY}"
    assert (await services.accounts.authenticate(bearer)).user_group == "default"
    await services.accounts.set_group_limits("pro", price_ratio="0.5")
    await services.accounts.set_group("admin", "pro")
    principal = await services.accounts.authenticate(bearer)
    assert principal.user_group == "pro"
    assert str(principal.group.price_ratio) == "0.5"
