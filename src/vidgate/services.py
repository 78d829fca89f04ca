"""The services one process runs on, built from Settings and closed together."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from vidgate.auth.accounts import AccountService, CreatedAccount
from vidgate.auth.rate_limit import RateLimiter
from vidgate.auth.worker_tokens import WorkerTokenService
from vidgate.billing.ledger import LedgerService
from vidgate.clock import Clock
from vidgate.engines.base import Engine
from vidgate.engines.config import load_model_config
from vidgate.engines.factory import build_engines
from vidgate.engines.health import EngineHealth
from vidgate.engines.preview import PreviewEngine
from vidgate.engines.registry import ModelRegistry
from vidgate.extras import require_extras
from vidgate.media.destination import Resolver
from vidgate.media.egress import EgressPolicy
from vidgate.media.files import FileStore, LocalFileStore, check_key
from vidgate.media.scratch import ScratchSpace, private_dir
from vidgate.media.signing import UrlSigner
from vidgate.media.uploads import Uploads
from vidgate.metrics import Metrics
from vidgate.queue.gateway import WorkerGateway
from vidgate.queue.local_runs import LocalRuns
from vidgate.queue.reaper import Reaper
from vidgate.queue.runner import BackgroundRunner, Timings
from vidgate.settings import Settings
from vidgate.store.database import Database
from vidgate.tasks.idempotency import IdempotencyService
from vidgate.tasks.presenter import TaskPresenter
from vidgate.tasks.service import TaskService
from vidgate.tasks.signals import TaskSignals
from vidgate.tasks.transitions import TaskTransitions
from vidgate.webhooks.dispatcher import CallbackDispatcher
from vidgate.webhooks.secret_store import WebhookSecrets
from vidgate.webhooks.service import CallbackService

log = logging.getLogger(__name__)


@dataclass
class Services:
    settings: Settings
    db: Database
    accounts: AccountService
    ledger: LedgerService
    clock: Clock
    signals: TaskSignals
    transitions: TaskTransitions
    tasks: TaskService
    runs: LocalRuns
    reaper: Reaper
    registry: ModelRegistry
    engines: Mapping[str, Engine]
    files: FileStore
    signer: UrlSigner
    uploads: Uploads
    presenter: TaskPresenter
    egress: EgressPolicy
    limiter: RateLimiter
    webhook_secrets: WebhookSecrets
    dispatcher: CallbackDispatcher
    callbacks: CallbackService
    idempotency: IdempotencyService
    metrics: Metrics
    health: EngineHealth
    worker_tokens: WorkerTokenService
    gateway: WorkerGateway
    scratch: ScratchSpace

    def background(self, *, workers: int, background: bool = True) -> BackgroundRunner:
        """This process's workers (``workers`` of them) and, with ``background``, its sweeps
        and callback dispatcher."""
        return BackgroundRunner(
            self.runs,
            self.engines,
            self.signals,
            self.reaper,
            self.dispatcher,
            scratch=self.files.scratch_dir(),
            health=self.health,
            housekeeping=(self.idempotency.forget_expired, self.uploads.purge_expired),
            timings=Timings(
                poll_interval=self.settings.poll_interval_seconds,
                shutdown_grace=self.settings.shutdown_grace_seconds,
                retention_seconds=self.settings.retention_days * 86400,
            ),
            workers=workers,
            background=background,
        )

    async def close(self) -> None:
        for engine in self.engines.values():
            closing = getattr(engine, "aclose", None)
            if closing is not None:
                await closing()
        await self.limiter.aclose()
        await self.egress.aclose()
        await self.db.close()
        self.scratch.release()


async def open_services(
    settings: Settings,
    *,
    registry: ModelRegistry | None = None,
    engines: Mapping[str, Engine] | None = None,
    resolver: Resolver | None = None,
) -> Services:
    """Migrate the database, then wire every service to it.

    ``resolver`` replaces DNS for outbound requests (tests use it to play a hostile resolver).
    """
    require_extras(settings)  # a missing vidgate[postgres|s3|redis]: one line, before any use
    if private_dir(settings.data_dir):
        log.warning(
            "data dir %s was readable by others; it holds the signing and webhook secrets, "
            "so it is now owner-only (0700)",
            settings.data_dir,
        )
    db = Database(settings.resolved_database_url)
    await db.migrate()
    files, scratch = await _file_store(settings)
    # Work files that killed processes left behind (kill -9, a crash): never a live one's.
    swept = await asyncio.to_thread(scratch.sweep)
    if swept:
        log.info("swept %d scratch folder(s) or file(s) left by stopped processes", swept)
    egress = EgressPolicy(
        allow=settings.egress_allow, ca_bundle=settings.egress_ca_bundle, resolver=resolver
    )
    accounts = AccountService(db, cache_seconds=settings.auth_cache_seconds)
    signer = UrlSigner(await accounts.signing_secret(), settings.base_url)
    if registry is None:
        config = load_model_config(settings.models, environ=settings.environment())
        registry = config.registry
        for name, reason in config.skipped.items():
            log.info("engine %s is not configured: %s", name, reason)
        image_url = _input_urls(settings, signer) if settings.public_url else None
        engines = engines or build_engines(config.engines, image_url=image_url)
    engines = engines or {"preview": PreviewEngine()}
    missing = {spec.engine for spec in registry} - set(engines)
    if missing:
        raise ValueError(f"models name engines that are not configured: {sorted(missing)}")
    presenter = TaskPresenter(
        signer, registry, url_ttl_seconds=settings.result_url_ttl_seconds, files=files
    )
    # In dependency order, each given its collaborators: nothing is patched in afterwards.
    clock = Clock()
    webhook_secrets = WebhookSecrets(
        db, rotation_grace_seconds=settings.webhook_rotation_grace_seconds
    )
    dispatcher = CallbackDispatcher(
        db, egress, webhook_secrets, concurrency=settings.callback_concurrency
    )
    signals = TaskSignals(db, callbacks_due=dispatcher.notify)
    transitions = TaskTransitions(
        db,
        registry,
        files,
        presenter,
        signals,
        clock=clock,
        lease_seconds=settings.lease_seconds,
    )
    uploads = Uploads(files, signer, clock=clock)
    tasks = TaskService(
        db,
        registry,
        files,
        egress,
        presenter,
        signals,
        transitions,
        read_upload=uploads.read,
        max_active_tasks=settings.max_active_tasks,
        clock=clock,
    )
    health = EngineHealth()
    return Services(
        scratch=scratch,
        settings=settings,
        db=db,
        accounts=accounts,
        ledger=LedgerService(db),
        clock=clock,
        signals=signals,
        transitions=transitions,
        tasks=tasks,
        runs=LocalRuns(transitions, signals, files, registry),
        reaper=Reaper(db, transitions, files, clock=clock),
        registry=registry,
        engines=engines,
        files=files,
        signer=signer,
        uploads=uploads,
        presenter=presenter,
        egress=egress,
        limiter=RateLimiter(settings.redis_url),
        webhook_secrets=webhook_secrets,
        dispatcher=dispatcher,
        callbacks=CallbackService(db, dispatcher.notify, clock=clock),
        idempotency=IdempotencyService(db),
        metrics=Metrics(db, health, engines),
        health=health,
        worker_tokens=WorkerTokenService(db),
        gateway=WorkerGateway(
            transitions,
            signals,
            registry,
            files,
            poll_interval=settings.poll_interval_seconds,
            max_result_bytes=settings.worker_result_max_bytes,
        ),
    )


async def bootstrap(services: Services) -> CreatedAccount | None:
    settings = services.settings
    return await services.accounts.bootstrap(
        key=settings.bootstrap_key, credits=Decimal(str(settings.bootstrap_credits))
    )


async def _file_store(settings: Settings) -> tuple[FileStore, ScratchSpace]:
    """The bucket when VIDGATE_S3_BUCKET is set, else the data dir; and the scratch space
    its work files live in."""
    if not settings.s3_bucket:
        local = LocalFileStore(settings.files_dir)
        return local, local.scratch
    from vidgate.media.s3 import MAX_PRESIGN_SECONDS, S3FileStore  # boto3 only when used

    presign = settings.s3_result_urls == "presigned"
    if presign and settings.result_url_ttl_seconds + 3600 > MAX_PRESIGN_SECONDS:
        raise ValueError(
            "VIDGATE_RESULT_URL_TTL_SECONDS is at most 601200 with VIDGATE_S3_RESULT_URLS="
            "presigned: S3 refuses presigned URLs that live longer than 7 days"
        )
    scratch = ScratchSpace(settings.data_dir / "tmp")
    store = S3FileStore(
        settings.s3_bucket,
        scratch=scratch.folder(),
        prefix=settings.s3_prefix,
        endpoint_url=settings.s3_endpoint_url,
        public_endpoint_url=settings.s3_public_endpoint_url,
        region=settings.s3_region,
        access_key_id=settings.s3_access_key_id,
        secret_access_key=settings.s3_secret_access_key,
        addressing_style=settings.s3_addressing_style,
        presign=presign,
    )
    await asyncio.to_thread(store.check)
    return store, scratch


def _input_urls(settings: Settings, signer: UrlSigner) -> Callable[[Path], str]:
    """Signed public URLs of stored inputs, for engines whose upstream fetches images by URL.

    A worker keeps each input at ``<work dir>/<key>``, with the stored file's modification
    time. The expiry comes from that time, not the clock, so a retried upstream create sends
    the same body (an upstream honouring Idempotency-Key would otherwise refuse it as a
    different one).
    """

    def image_url(path: Path) -> str:
        key = check_key("/".join(path.parts[-3:]))  # inputs/<task>/<n>.<ext>
        earliest = int(path.stat().st_mtime) + settings.result_url_ttl_seconds
        return signer.sign(key, expires=-(-earliest // 3600) * 3600)

    return image_url
