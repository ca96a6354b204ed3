"""Metrics of one mount helper, written as a Prometheus text file on its node.

The helpers share the node's network (their FUSE clients must outlive the pod), so several
backends' helpers on one node cannot each listen on a metrics port. Each writes
`/var/lib/stowage/metrics/<backend>.prom` instead, for node-exporter's textfile collector
(`--collector.textfile.directory=/var/lib/stowage/metrics`).

| metric | type | labels | meaning |
|---|---|---|---|
| `stowage_agent_mounted` | gauge | backend, server | 1 for the server this node's mount came from |
| `stowage_agent_mounts_total` | counter | backend, server | mounts made (adopted: not counted) |
| `stowage_agent_mount_failures_total` | counter | backend | mount rounds no server served |
| `stowage_agent_failovers_total` | counter | backend | servers passed over before one served |
| `stowage_agent_remounts_total` | counter | backend | stale mounts found and mounted again |
| `stowage_agent_mount_duration_seconds` | histogram | backend | one mount round, probes included |
"""

from __future__ import annotations

import contextlib
import os

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, write_to_textfile

from stowage.drivers.base import STOWAGE_ROOT
from stowage.drivers.naming import path_under

METRICS_DIRECTORY = path_under(STOWAGE_ROOT, "metrics")


class AgentMetrics:
    def __init__(self, backend: str) -> None:
        self.backend = backend
        self.registry = CollectorRegistry()
        labels = ["backend"]
        self._mounted = Gauge(
            "stowage_agent_mounted",
            "1 for the server this node's mount came from",
            [*labels, "server"],
            registry=self.registry,
        )
        self._mounts = Counter(
            "stowage_agent_mounts",
            "Mounts made",
            [*labels, "server"],
            registry=self.registry,
        )
        self._failures = Counter(
            "stowage_agent_mount_failures",
            "Mount rounds in which no server served",
            labels,
            registry=self.registry,
        )
        self._failovers = Counter(
            "stowage_agent_failovers",
            "Servers passed over before one served",
            labels,
            registry=self.registry,
        )
        self._remounts = Counter(
            "stowage_agent_remounts",
            "Stale mounts found and mounted again",
            labels,
            registry=self.registry,
        )
        self._duration = Histogram(
            "stowage_agent_mount_duration_seconds",
            "One mount round, probes included",
            labels,
            buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15, 30, 60),
            registry=self.registry,
        )
        self._server: str | None = None
        # The families show up (at zero) before the first event.
        for counter in (self._failures, self._failovers, self._remounts):
            counter.labels(backend)

    def mounted(self, server: str, failovers: int, seconds: float) -> None:
        self.unmounted()
        self._server = server
        self._mounted.labels(self.backend, server).set(1)
        self._mounts.labels(self.backend, server).inc()
        self._failovers.labels(self.backend).inc(failovers)
        self._duration.labels(self.backend).observe(seconds)

    def adopted(self, server: str) -> None:
        if server != self._server:
            self.unmounted()
            self._server = server
            self._mounted.labels(self.backend, server).set(1)

    def mount_failed(self, seconds: float) -> None:
        self.unmounted()
        self._failures.labels(self.backend).inc()
        self._duration.labels(self.backend).observe(seconds)

    def stale(self) -> None:
        self._remounts.labels(self.backend).inc()

    def unmounted(self) -> None:
        if self._server is not None:
            self._mounted.labels(self.backend, self._server).set(0)
            self._server = None

    def write(self, directory: str = METRICS_DIRECTORY) -> None:
        """Replaces the backend's file atomically (prometheus_client writes, then renames)."""
        os.makedirs(directory, exist_ok=True)
        write_to_textfile(os.path.join(directory, f"{self.backend}.prom"), self.registry)

    def remove(self, directory: str = METRICS_DIRECTORY) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(directory, f"{self.backend}.prom"))
