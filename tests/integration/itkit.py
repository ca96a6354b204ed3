"""Helpers of the integration tests: the cluster as the tests see it, the operator process."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

from stowage.kube import Json, Kube
from stowage.kube.resources import (
    EVENTS,
    PERSISTENT_VOLUME_CLAIMS,
    PERSISTENT_VOLUMES,
    STORAGE_BACKENDS,
    Resource,
)

T = TypeVar("T")

REPO_DIR = Path(__file__).resolve().parents[2]
KUBECTL = Path(os.environ.get("STOWAGE_CACHE", "/var/cache/stowage")) / "bin" / "kubectl"
TEST_FIELD_MANAGER = "integration-tests"
OPERATOR_COMMAND = [sys.executable, "-m", "stowage"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def wait_for(probe: Callable[[], T | None], *, timeout: float = 60, what: str = "condition") -> T:
    """Polls `probe` until it returns something truthy; fails naming `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(0.3)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} (last: {last!r})")


@dataclass
class Api:
    """The tests' view of the cluster: our own client for reads, kubectl for applies."""

    kubeconfig: Path
    kube: Kube

    def kubectl(self, *args: str, stdin: str | None = None, check: bool = True) -> str:
        result = subprocess.run(
            [str(KUBECTL), "--kubeconfig", str(self.kubeconfig), *args],
            input=stdin,
            capture_output=True,
            text=True,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)}: {result.stdout}{result.stderr}")
        return result.stdout + result.stderr

    def apply(self, *manifests: Json) -> str:
        return self.kubectl(
            "apply",
            "--server-side",
            f"--field-manager={TEST_FIELD_MANAGER}",
            "-f",
            "-",
            stdin=yaml.safe_dump_all(manifests),
        )

    def get(self, resource: Resource, name: str, namespace: str | None = None) -> Json | None:
        return self.kube.get(resource, name, namespace)

    def backend(self, name: str) -> Json | None:
        return self.get(STORAGE_BACKENDS, name)

    def condition(self, backend: str, type_: str = "Ready") -> Json | None:
        body = self.backend(backend) or {}
        conditions = (body.get("status") or {}).get("conditions") or []
        return next((c for c in conditions if c.get("type") == type_), None)

    def wait_condition(
        self, backend: str, *, status: str, reason: str | None = None, timeout: float = 60
    ) -> Json:
        def matches() -> Json | None:
            condition = self.condition(backend)
            if condition is None or condition["status"] != status:
                return None
            if reason is not None and condition["reason"] != reason:
                return None
            return condition

        return wait_for(matches, timeout=timeout, what=f"{backend} Ready={status} reason={reason}")

    def events(self, kind: str, name: str, namespace: str) -> list[Json]:
        selector = f"involvedObject.kind={kind},involvedObject.name={name}"
        listed = self.kube.request(
            "GET", EVENTS, EVENTS.collection(namespace), query={"fieldSelector": selector}
        )
        items: list[Json] = listed.get("items", [])
        return items

    def claim_phase(self, namespace: str, name: str) -> str | None:
        claim = self.get(PERSISTENT_VOLUME_CLAIMS, name, namespace) or {}
        phase: str | None = (claim.get("status") or {}).get("phase")
        return phase

    def volumes_of(self, backend: str) -> list[Json]:
        return self.kube.list(PERSISTENT_VOLUMES, label_selector=f"stowage.io/backend={backend}")

    def delete(self, resource: Resource, name: str, namespace: str | None = None) -> None:
        self.kube.delete(resource, name, namespace=namespace)

    def gone(self, resource: Resource, name: str, namespace: str | None = None) -> bool:
        return self.get(resource, name, namespace) is None


@dataclass
class OperatorProcess:
    """`stowage run` as a child process; its log is appended to one file across restarts."""

    kubeconfig: Path
    log_path: Path
    health_port: int = field(default_factory=free_port)
    metrics_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = self.log_path.open("ab")
        command = [
            *OPERATOR_COMMAND,
            "run",
            "--kubeconfig",
            str(self.kubeconfig),
            "--bind-address",
            "127.0.0.1",
            "--health-port",
            str(self.health_port),
            "--metrics-port",
            str(self.metrics_port),
            "--resync-interval",
            "2",
            "--log-level",
            "debug",
            # The mount helpers' DaemonSets go where a namespace surely exists; their image is
            # not in the cluster at this tier, so their pods never start.
            "--helper-namespace",
            "default",
        ]
        self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        wait_for(self.ready, timeout=60, what="the operator's /readyz")

    def ready(self) -> bool:
        if self.process is None or self.process.poll() is not None:
            raise AssertionError(f"the operator exited; log:\n{self.log()[-4000:]}")
        try:
            with urllib.request.urlopen(self.url(self.metrics_port, "/readyz"), timeout=2) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    def url(self, port: int, path: str) -> str:
        return f"http://127.0.0.1:{port}{path}"

    def get(self, port: int, path: str) -> str:
        with urllib.request.urlopen(self.url(port, path), timeout=5) as response:
            body: bytes = response.read()
            return body.decode()

    def metrics(self) -> str:
        return self.get(self.metrics_port, "/metrics")

    def kill(self) -> None:
        """SIGKILL: no cleanup, as when a node dies."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def storage_backend(name: str, spec: dict[str, Any]) -> Json:
    return {
        "apiVersion": "stowage.io/v1alpha1",
        "kind": "StorageBackend",
        "metadata": {"name": name},
        "spec": spec,
    }
