"""Prometheus metrics of the operator, served on `/metrics` of the metrics port.

| metric | type | labels | meaning |
|---|---|---|---|
| `stowage_reconcile_total` | counter | resource, result | reconciles run (result: success, error) |
| `stowage_reconcile_duration_seconds` | histogram | resource | time of one reconcile |
| `stowage_provisioning_duration_seconds` | histogram | backend | claim handled → PV created |
| `stowage_claim_wait_seconds` | histogram | backend | claim created → its PV created |
| `stowage_provisioning_failures_total` | counter | backend, reason | claims not provisioned (yet) |
| `stowage_volumes_provisioned_total` | counter | backend | PVs created for claims |
| `stowage_volumes_reclaimed_total` | counter | backend, policy | released PVs handled |
| `stowage_backend_volumes` | gauge | backend | PVs of the backend (status.volumes) |
| `stowage_backend_ready` | gauge | backend | 1 while the backend's Ready condition is True |
| `stowage_api_requests_total` | counter | method, resource | API requests of the reconcilers (1) |

`resource` is the plural of the handled kind (storagebackends, persistentvolumeclaims,
persistentvolumes). (1) not counting kopf's watches and its own status patches.
Process and Python runtime metrics come along (`process_*`, `python_*`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

REGISTRY = CollectorRegistry()
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)
GCCollector(registry=REGISTRY)

# Provisioning is a handful of API calls: most of the interesting range is below a second.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

RECONCILES = Counter(
    "stowage_reconcile_total",
    "Reconciles run, by resource and result.",
    ["resource", "result"],
    registry=REGISTRY,
)
RECONCILE_DURATION = Histogram(
    "stowage_reconcile_duration_seconds",
    "Time of one reconcile, by resource.",
    ["resource"],
    buckets=LATENCY_BUCKETS,
    registry=REGISTRY,
)
PROVISIONING_DURATION = Histogram(
    "stowage_provisioning_duration_seconds",
    "Time from handling a claim to its PersistentVolume created.",
    ["backend"],
    buckets=LATENCY_BUCKETS,
    registry=REGISTRY,
)
CLAIM_WAIT = Histogram(
    "stowage_claim_wait_seconds",
    "Time from a claim's creation to its PersistentVolume created (1 s resolution of the API).",
    ["backend"],
    buckets=LATENCY_BUCKETS,
    registry=REGISTRY,
)
PROVISIONING_FAILURES = Counter(
    "stowage_provisioning_failures_total",
    "Claims not provisioned on an attempt, by reason.",
    ["backend", "reason"],
    registry=REGISTRY,
)
VOLUMES_PROVISIONED = Counter(
    "stowage_volumes_provisioned_total",
    "PersistentVolumes created for claims.",
    ["backend"],
    registry=REGISTRY,
)
VOLUMES_RECLAIMED = Counter(
    "stowage_volumes_reclaimed_total",
    "Released PersistentVolumes handled, by reclaim policy.",
    ["backend", "policy"],
    registry=REGISTRY,
)
BACKEND_VOLUMES = Gauge(
    "stowage_backend_volumes",
    "PersistentVolumes of the backend.",
    ["backend"],
    registry=REGISTRY,
)
BACKEND_READY = Gauge(
    "stowage_backend_ready",
    "1 while the backend's Ready condition is True, else 0.",
    ["backend"],
    registry=REGISTRY,
)
API_REQUESTS = Counter(
    "stowage_api_requests_total",
    "Kubernetes API requests made by the reconcilers, by HTTP method and resource.",
    ["method", "resource"],
    registry=REGISTRY,
)


@contextmanager
def reconciling(resource: str) -> Iterator[None]:
    """Counts and times one reconcile; an exception counts as an error and propagates."""
    started = time.monotonic()
    try:
        yield
    except BaseException:
        RECONCILES.labels(resource, "error").inc()
        raise
    else:
        RECONCILES.labels(resource, "success").inc()
    finally:
        RECONCILE_DURATION.labels(resource).observe(time.monotonic() - started)


def forget_backend(backend: str) -> None:
    """Drops the per-backend gauges of a deleted backend (counters keep their history)."""
    for gauge in (BACKEND_VOLUMES, BACKEND_READY):
        with suppress(KeyError):
            gauge.remove(backend)


def exposition() -> bytes:
    return generate_latest(REGISTRY)


async def serve(address: str, port: int, ready: Callable[[], bool]) -> web.AppRunner:
    """Starts `/metrics` and `/readyz` on the running event loop; the caller cleans it up."""

    async def metrics_page(_: web.Request) -> web.Response:
        return web.Response(body=exposition(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def readiness(_: web.Request) -> web.Response:
        if ready():
            return web.Response(text="ready\n")
        return web.Response(status=503, text="starting\n")

    app = web.Application()
    app.add_routes([web.get("/metrics", metrics_page), web.get("/readyz", readiness)])
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, address, port).start()
    return runner
