"""What a user does with stowage, as manifests: backends, claims, a pod that uses a claim.

`make demo` (stowage_e2e.demo) and the in-cluster e2e tests play the same scenario, so the
demo shows exactly what the tests check.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from stowage_e2e.kube import Kube

Manifest = dict[str, Any]
API_VERSION = "stowage.io/v1alpha1"


def storage_backend(name: str, spec: Mapping[str, Any]) -> Manifest:
    return {
        "apiVersion": API_VERSION,
        "kind": "StorageBackend",
        "metadata": {"name": name},
        "spec": dict(spec),
    }


def host_path_backend(name: str, path: str) -> Manifest:
    return storage_backend(
        name, {"hostPath": {"path": path}, "provisioning": {"onDelete": "Retain"}}
    )


def nfs_backend(name: str, server: str, export: str) -> Manifest:
    return storage_backend(name, {"nfs": {"servers": [server], "path": export, "version": "4.1"}})


def claim(
    name: str, storage_class: str, size: str = "1Gi", access_mode: str = "ReadWriteOnce"
) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": name},
        "spec": {
            "storageClassName": storage_class,
            "accessModes": [access_mode],
            "resources": {"requests": {"storage": size}},
        },
    }


def writer_pod(name: str, claim_name: str, image: str, text: str) -> Manifest:
    """Writes TEXT into the claim, then prints what it reads back from the volume."""
    script = f"echo {json.dumps(text)} > /data/hello.txt && cat /data/hello.txt"
    return script_pod(name, claim_name, image, script)


def script_pod(name: str, claim_name: str, image: str, script: str) -> Manifest:
    """Runs the shell SCRIPT once, with the claim mounted at /data."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 1,
            # The kubelet makes a hostPath claim's directory root-owned (0755).
            "securityContext": {"runAsUser": 0},
            "containers": [
                {
                    "name": "writer",
                    "image": image,
                    "imagePullPolicy": "Never",
                    "command": ["sh", "-c", script],
                    "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                }
            ],
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": claim_name}}],
        },
    }


def is_ready(backend: Manifest) -> bool:
    conditions = backend.get("status", {}).get("conditions", [])
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def wait_ready(kube: Kube, backend: str, timeout: float = 60) -> Manifest:
    found: Manifest = kube.wait_for(
        "storagebackend", backend, None, is_ready, timeout=timeout, what="Ready=True"
    )
    return found


def wait_bound(kube: Kube, claim_name: str, namespace: str, timeout: float = 60) -> Manifest:
    found: Manifest = kube.wait_for(
        "persistentvolumeclaim",
        claim_name,
        namespace,
        lambda c: c.get("status", {}).get("phase") == "Bound",
        timeout=timeout,
        what="phase Bound",
    )
    return found


def bound_volume(kube: Kube, claim_name: str, namespace: str) -> Manifest:
    bound = wait_bound(kube, claim_name, namespace)
    volume: Manifest = kube.get("persistentvolume", bound["spec"]["volumeName"])
    return volume


def metrics(kube: Kube, namespace: str, service: str, port: str = "metrics") -> str:
    """/metrics of a Service, fetched through the API server's service proxy."""
    path = f"/api/v1/namespaces/{namespace}/services/http:{service}:{port}/proxy/metrics"
    return kube.text("get", "--raw", path)


def sample_value(exposition: str, name: str, labels: Mapping[str, str]) -> float:
    """The value of one sample in Prometheus text format; 0 when absent."""
    wanted = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
    for line in exposition.splitlines():
        if line.startswith("#") or not line.startswith(name + "{"):
            continue
        sample, _, value = line.rpartition(" ")
        found = sample[len(name) + 1 : -1].split(",")
        if ",".join(sorted(found)) == wanted:
            return float(value)
    return 0.0
