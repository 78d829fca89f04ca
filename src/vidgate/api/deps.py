"""What routes depend on: the process's services, the caller's identity, and its rate limit."""

from __future__ import annotations

import math
from typing import Annotated

from fastapi import Depends, Request

from vidgate.auth.accounts import require_admin
from vidgate.auth.model import Principal
from vidgate.errors import RateLimited
from vidgate.services import Services


def services_of(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


async def get_services(request: Request) -> Services:
    """The dependency (async, so FastAPI does not send it to a thread pool on every request)."""
    return services_of(request)


async def get_principal(request: Request) -> Principal:
    """The caller, authenticated and counted against its key's requests-per-minute limit.

    The Authorization header is read from the request rather than declared as a ``Header``
    parameter: it is not in the schema either way, and FastAPI's parameter handling cost
    every request more than the lookup of its key.
    """
    return await authorize(services_of(request), request.headers.get("authorization"))


async def authorize(services: Services, authorization: str | None) -> Principal:
    """``get_principal`` for a route that holds the services already."""
    principal = await services.accounts.authenticate(authorization)
    per_minute = principal.group.rate_limit_per_minute
    if per_minute is None:
        per_minute = services.settings.rate_limit_per_minute
    retry_after = await services.limiter.hit(principal.key_id, per_minute)
    if retry_after is not None:
        seconds = max(1, math.ceil(retry_after))
        raise RateLimited(
            f"This key is limited to {per_minute} requests a minute; retry in {seconds} s.",
            headers={"Retry-After": str(seconds)},
        )
    return principal


async def get_admin(principal: Annotated[Principal, Depends(get_principal)]) -> Principal:
    require_admin(principal)
    return principal


ServicesDep = Annotated[Services, Depends(get_services)]
PrincipalDep = Annotated[Principal, Depends(get_principal)]
AdminDep = Annotated[Principal, Depends(get_admin)]
