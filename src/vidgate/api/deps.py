"""What routes depend on: the services each one uses, the caller's identity, and its rate limit.

A route names the services it uses (``tasks: TasksDep``), not the whole ``Services`` bag; only
the lean poll route and the file download, which hand them on, take ``ServicesDep``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request

from vidgate.auth.accounts import AccountService, require_admin
from vidgate.auth.model import Principal
from vidgate.auth.worker_tokens import WorkerTokenService
from vidgate.billing.ledger import LedgerService
from vidgate.engines.health import EngineHealth
from vidgate.engines.registry import ModelRegistry
from vidgate.errors import RateLimited
from vidgate.media.uploads import Uploads
from vidgate.metrics import Metrics
from vidgate.queue.gateway import WorkerGateway
from vidgate.services import Services
from vidgate.settings import Settings
from vidgate.store.database import Database
from vidgate.tasks.idempotency import IdempotencyService
from vidgate.tasks.service import TaskService
from vidgate.webhooks.secret_store import WebhookSecrets
from vidgate.webhooks.service import CallbackService

T = TypeVar("T")


def services_of(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


async def get_services(request: Request) -> Services:
    """The dependency (async, so FastAPI does not send it to a thread pool on every request)."""
    return services_of(request)


def from_services(pick: Callable[[Services], T]) -> Any:
    """A dependency on one of the process's services."""

    async def dependency(request: Request) -> T:  # async: no thread-pool hop per request
        return pick(services_of(request))

    return Depends(dependency)


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
AccountsDep = Annotated[AccountService, from_services(lambda s: s.accounts)]
CallbacksDep = Annotated[CallbackService, from_services(lambda s: s.callbacks)]
DbDep = Annotated[Database, from_services(lambda s: s.db)]
GatewayDep = Annotated[WorkerGateway, from_services(lambda s: s.gateway)]
HealthDep = Annotated[EngineHealth, from_services(lambda s: s.health)]
IdempotencyDep = Annotated[IdempotencyService, from_services(lambda s: s.idempotency)]
LedgerDep = Annotated[LedgerService, from_services(lambda s: s.ledger)]
MetricsDep = Annotated[Metrics, from_services(lambda s: s.metrics)]
RegistryDep = Annotated[ModelRegistry, from_services(lambda s: s.registry)]
SettingsDep = Annotated[Settings, from_services(lambda s: s.settings)]
TasksDep = Annotated[TaskService, from_services(lambda s: s.tasks)]
UploadsDep = Annotated[Uploads, from_services(lambda s: s.uploads)]
WebhookSecretsDep = Annotated[WebhookSecrets, from_services(lambda s: s.webhook_secrets)]
WorkerTokensDep = Annotated[WorkerTokenService, from_services(lambda s: s.worker_tokens)]
