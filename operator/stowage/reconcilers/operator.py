"""`stowage run`: kopf configured for stowage, the handlers registered, the endpoints served.

kopf keeps its bookkeeping of StorageBackends in `status.kopf` (never in annotations, so GitOps
tools see no drift) and writes nothing onto claims and volumes: those are handled by
`on.event` handlers, which kopf does not persist anything for.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import kopf

from stowage import logging as stowage_logging
from stowage import metrics
from stowage.kube import Connection, Kube
from stowage.reconcilers import backends, indexes, nasshares, provisioner
from stowage.reconcilers.context import Runtime
from stowage.reconcilers.retry import Retrier
from stowage.settings import Settings

logger = logging.getLogger(__name__)

FINALIZER = "stowage.io/finalizer"


def kopf_settings(settings: Settings, executor: ThreadPoolExecutor) -> kopf.OperatorSettings:
    configured = kopf.OperatorSettings()
    configured.persistence.finalizer = FINALIZER
    configured.persistence.progress_storage = kopf.StatusProgressStorage(
        field="status.kopf.progress"
    )
    configured.persistence.diffbase_storage = kopf.StatusDiffBaseStorage(
        field="status.kopf.last-handled-configuration"
    )
    configured.posting.reporting_component = "stowage"
    configured.posting.event_name_prefix = "stowage-"
    configured.execution.executor = executor
    configured.networking.request_timeout = settings.api_timeout
    configured.networking.connect_timeout = min(10.0, settings.api_timeout)
    # Watches are re-established every few minutes so that a silently dead connection is noticed.
    configured.watching.server_timeout = 300
    configured.watching.client_timeout = 330
    # An unexpected error in a backend handler (e.g. the API server briefly away) is retried
    # sooner than kopf's default minute.
    configured.execution.default_backoff = 10
    # A backend deleted while its resync timer runs (e.g. an iSCSI portal probe) waits for the
    # timer to end; kopf checks for that every minute by default, which held deletions ~60 s.
    configured.background.cancellation_polling = 1.0
    return configured


def register_login(registry: kopf.OperatorRegistry, connection: Connection) -> None:
    """kopf's watches use the same credentials as our client (and the same --kubeconfig)."""

    @kopf.on.login(registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        configuration = connection.configuration
        token = connection.bearer_token
        return kopf.ConnectionInfo(
            server=configuration.host,
            ca_path=configuration.ssl_ca_cert,
            insecure=not configuration.verify_ssl,
            scheme="Bearer" if token else None,
            token=token,
            certificate_path=configuration.cert_file,
            private_key_path=configuration.key_file,
        )


def build_registry(runtime: Runtime, connection: Connection) -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()
    register_login(registry, connection)
    indexes.register(registry)
    backends.register(registry, runtime)
    provisioner.register(registry, runtime)
    nasshares.register(registry, runtime)
    return registry


async def operate(settings: Settings) -> None:
    connection = Connection.load(settings.kubeconfig, pool_size=settings.workers)
    executor = ThreadPoolExecutor(settings.workers, thread_name_prefix="stowage")
    kube = Kube(connection, timeout=settings.api_timeout)
    runtime = Runtime(settings=settings, kube=kube, retrier=Retrier(), executor=executor)
    registry = build_registry(runtime, connection)
    started = asyncio.Event()
    http = await metrics.serve(settings.bind_address, settings.metrics_port, started.is_set)
    retries = asyncio.create_task(runtime.retrier.serve(), name="stowage retries")
    logger.info(
        "stowage operator starting: health :%d/healthz, metrics :%d/metrics",
        settings.health_port,
        settings.metrics_port,
    )
    try:
        await kopf.operator(
            registry=registry,
            settings=kopf_settings(settings, executor),
            clusterwide=True,
            standalone=True,
            liveness_endpoint=f"http://{settings.bind_address}:{settings.health_port}/healthz",
            ready_flag=started,
        )
    finally:
        retries.cancel()
        await http.cleanup()
        executor.shutdown(wait=False, cancel_futures=True)
        kube.close()


def run_operator(settings: Settings) -> int:
    stowage_logging.configure(settings.log_format, settings.log_level)
    asyncio.run(operate(settings))
    return 0
