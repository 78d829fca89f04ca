"""What routes depend on: the process's services and the caller's identity."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request

from vidgate.services import Services
from vidgate.store.account_rows import Principal


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


async def get_principal(
    request: Request,
    authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> Principal:
    return await get_services(request).accounts.authenticate(authorization)


ServicesDep = Annotated[Services, Depends(get_services)]
PrincipalDep = Annotated[Principal, Depends(get_principal)]
