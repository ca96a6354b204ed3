"""Small kubectl helpers for the e2e tests: run, apply, wait for a pod, read its logs."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

Manifest = Mapping[str, Any]
FINAL_PHASES = frozenset({"Succeeded", "Failed"})


class KubectlError(AssertionError):
    """A kubectl command failed; the message carries its output."""

    def __init__(self, args: Sequence[str], result: subprocess.CompletedProcess[str]) -> None:
        output = f"{result.stdout}{result.stderr}"
        super().__init__(f"kubectl {' '.join(args)} failed ({result.returncode}):\n{output}")
        self.result = result


def kubectl_binary() -> str:
    cache = Path(os.environ.get("STOWAGE_CACHE", "/var/cache/stowage"))
    built = cache / "bin" / "kubectl"
    if built.exists():
        return str(built)
    found = shutil.which("kubectl")
    if found is None:
        raise FileNotFoundError("no kubectl: run `bash e2e/scripts/build-binaries.sh`")
    return found


def to_yaml(manifests: Manifest | Iterable[Manifest] | str) -> str:
    if isinstance(manifests, str):
        return manifests
    if isinstance(manifests, Mapping):
        return yaml.safe_dump(dict(manifests))
    return yaml.safe_dump_all([dict(m) for m in manifests])


@dataclass(frozen=True)
class Kube:
    """kubectl against one cluster."""

    kubeconfig: Path

    def with_token(self, token: str) -> Kube:
        """The same cluster as the holder of a bearer token (a ServiceAccount's, say)."""
        config = yaml.safe_load(self.kubeconfig.read_text())
        current = next(c for c in config["contexts"] if c["name"] == config["current-context"])
        cluster = next(c for c in config["clusters"] if c["name"] == current["context"]["cluster"])
        token_config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [cluster],
            "users": [{"name": "token", "user": {"token": token}}],
            "contexts": [
                {"name": "token", "context": {"cluster": cluster["name"], "user": "token"}}
            ],
            "current-context": "token",
        }
        digest = hashlib.sha256(token.encode()).hexdigest()[:16]
        path = Path(tempfile.gettempdir()) / f"stowage-e2e-token-{digest}.kubeconfig"
        path.write_text(yaml.safe_dump(token_config))
        path.chmod(0o600)
        return Kube(path)

    def run(
        self,
        *args: str,
        stdin: str | None = None,
        check: bool = True,
        timeout: float = 120,
    ) -> subprocess.CompletedProcess[str]:
        command = [kubectl_binary(), "--kubeconfig", str(self.kubeconfig)]
        result = subprocess.run(
            [*command, *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise KubectlError(args, result)
        return result

    def text(self, *args: str, stdin: str | None = None) -> str:
        return self.run(*args, stdin=stdin).stdout

    def json(self, *args: str) -> Any:
        return json.loads(self.run(*args, "--output", "json").stdout)

    def apply(
        self, manifests: Manifest | Iterable[Manifest] | str, namespace: str | None = None
    ) -> str:
        ns = ["--namespace", namespace] if namespace else []
        return self.text("apply", *ns, "--filename", "-", stdin=to_yaml(manifests))

    def delete(
        self, kind: str, name: str, namespace: str | None = None, wait: bool = False
    ) -> None:
        ns = ["--namespace", namespace] if namespace else []
        self.run("delete", kind, name, *ns, "--ignore-not-found", f"--wait={str(wait).lower()}")

    def get(self, kind: str, name: str, namespace: str | None = None) -> Any:
        ns = ["--namespace", namespace] if namespace else []
        return self.json("get", kind, name, *ns)

    def wait_for(
        self,
        kind: str,
        name: str,
        namespace: str | None,
        condition: Any,
        *,
        timeout: float = 120,
        interval: float = 1,
        what: str = "condition",
    ) -> Any:
        """Polls the object until condition(obj) is true; returns the object."""
        deadline = time.monotonic() + timeout
        obj: Any = None
        while True:
            result = self.run(
                "get",
                kind,
                name,
                *(["--namespace", namespace] if namespace else []),
                "--output",
                "json",
                check=False,
            )
            if result.returncode == 0:
                obj = json.loads(result.stdout)
                if condition(obj):
                    return obj
            if time.monotonic() >= deadline:
                raise TimeoutError(
                    f"{kind}/{name}: no {what} after {timeout:.0f} s; last: {obj}"
                    + (f"\nEvents in {namespace}:\n{self.events(namespace)}" if namespace else "")
                )
            time.sleep(interval)

    def events(self, namespace: str) -> str:
        """The namespace's Events, oldest first, for a failure's message."""
        result = self.run(
            "get", "events", "--namespace", namespace, "--sort-by", ".lastTimestamp", check=False
        )
        return result.stdout or result.stderr

    def wait_for_pod_phase(
        self,
        name: str,
        namespace: str,
        phases: Iterable[str] = FINAL_PHASES,
        timeout: float = 120,
    ) -> Any:
        wanted = frozenset(phases)
        return self.wait_for(
            "pod",
            name,
            namespace,
            lambda pod: pod.get("status", {}).get("phase") in wanted,
            timeout=timeout,
            what=f"phase in {sorted(wanted)}",
        )

    def wait_for_pod_ready(self, name: str, namespace: str, timeout: float = 120) -> Any:
        def ready(pod: Any) -> bool:
            conditions = pod.get("status", {}).get("conditions", [])
            return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

        return self.wait_for("pod", name, namespace, ready, timeout=timeout, what="Ready")

    def logs(self, name: str, namespace: str, container: str | None = None) -> str:
        extra = ["--container", container] if container else []
        return self.text("logs", name, "--namespace", namespace, *extra)

    def run_pod(
        self,
        name: str,
        namespace: str,
        image: str,
        command: Sequence[str],
        *,
        timeout: float = 120,
        **pod_spec: Any,
    ) -> tuple[str, str]:
        """Runs a one-shot pod to its end; returns (phase, logs)."""
        self.apply(pod(name, image, command, **pod_spec), namespace)
        final = self.wait_for_pod_phase(name, namespace, timeout=timeout)
        return final["status"]["phase"], self.logs(name, namespace)


def pod(
    name: str,
    image: str,
    command: Sequence[str],
    *,
    restart_policy: str = "Never",
    privileged: bool = False,
    volumes: Sequence[Mapping[str, Any]] = (),
    volume_mounts: Sequence[Mapping[str, Any]] = (),
    labels: Mapping[str, str] | None = None,
    service_account: str | None = None,
    ports: Sequence[int] = (),
) -> dict[str, Any]:
    """A one-container pod manifest running a local image (never pulled)."""
    container: dict[str, Any] = {
        "name": "main",
        "image": image,
        "imagePullPolicy": "Never",
        "command": list(command),
    }
    if privileged:
        container["securityContext"] = {"privileged": True}
    if volume_mounts:
        container["volumeMounts"] = [dict(m) for m in volume_mounts]
    if ports:
        container["ports"] = [{"containerPort": port} for port in ports]
    spec: dict[str, Any] = {
        "restartPolicy": restart_policy,
        "terminationGracePeriodSeconds": 1,
        "containers": [container],
    }
    if volumes:
        spec["volumes"] = [dict(v) for v in volumes]
    if service_account:
        spec["serviceAccountName"] = service_account
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": dict(labels or {})},
        "spec": spec,
    }
