"""A task's callback deliveries, and the account's webhook signing secret."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from vidgate.api.deps import CallbacksDep, PrincipalDep, TasksDep, WebhookSecretsDep
from vidgate.api.security_headers import no_store
from vidgate.webhooks.secret_store import SecretView
from vidgate.webhooks.service import Delivery

router = APIRouter(tags=["callbacks"])


class AttemptOut(BaseModel):
    number: int
    started: float = Field(description="Unix time the attempt began")
    duration_ms: int
    status_code: int | None
    error: str | None
    succeeded: bool


class DeliveryOut(BaseModel):
    object: str = "callback_delivery"
    webhook_id: str | None = Field(description="The webhook-id header: the same on every attempt")
    url: str | None
    status: str = Field(description="none (not finished yet), pending, delivered or failed")
    next_attempt: float | None
    attempts: list[AttemptOut]


class SecretOut(BaseModel):
    object: str = "webhook_secret"
    secret: str = Field(description="whsec_...: verify the webhook-signature header with it")
    previous_secret_valid_until: int | None = Field(
        description="During a rotation, the old secret still signs until then"
    )


def delivery_out(delivery: Delivery) -> DeliveryOut:
    callback = delivery.callback
    return DeliveryOut(
        webhook_id=callback.id if callback else None,
        url=callback.url if callback else None,
        status=callback.status if callback else "none",
        next_attempt=callback.next_attempt_at
        if callback and callback.status == "pending"
        else None,
        attempts=[
            AttemptOut(
                number=a.number,
                started=a.started_at,
                duration_ms=a.duration_ms,
                status_code=a.status_code,
                error=a.error,
                succeeded=a.succeeded,
            )
            for a in delivery.attempts
        ],
    )


def secret_out(view: SecretView) -> SecretOut:
    until = None if view.previous_expires_at is None else int(view.previous_expires_at)
    return SecretOut(secret=view.secret, previous_secret_valid_until=until)


@router.get("/v1/tasks/{task_id}/callbacks", response_model=DeliveryOut)
async def list_callbacks(
    task_id: str, principal: PrincipalDep, callbacks: CallbacksDep, tasks: TasksDep
) -> DeliveryOut:
    """Every attempt to deliver the task's callback: when, how long, and what came back."""
    task = await tasks.get(principal, task_id)  # 404 unless the caller owns it
    return delivery_out(await callbacks.delivery(task))


@router.post("/v1/tasks/{task_id}/callbacks/redeliver", response_model=DeliveryOut)
async def redeliver(
    task_id: str, principal: PrincipalDep, callbacks: CallbacksDep, tasks: TasksDep
) -> DeliveryOut:
    """Send the finished task's callback again (a fresh run of attempts, the same webhook-id)."""
    task = await tasks.get(principal, task_id)
    return delivery_out(await callbacks.redeliver(task))


@router.get("/v1/webhook-secret", response_model=SecretOut, dependencies=[Depends(no_store)])
async def get_secret(principal: PrincipalDep, webhook_secrets: WebhookSecretsDep) -> SecretOut:
    return secret_out(await webhook_secrets.current(principal.account_id))


@router.post(
    "/v1/webhook-secret/rotate", response_model=SecretOut, dependencies=[Depends(no_store)]
)
async def rotate_secret(principal: PrincipalDep, webhook_secrets: WebhookSecretsDep) -> SecretOut:
    """A new secret; the old one keeps signing beside it for the grace period."""
    return secret_out(await webhook_secrets.rotate(principal.account_id))
