"""Mount helpers, claims and Events as a test sees them: shared by the backend e2e tests.

backend_factory (test fixture) a factory of StorageBackends, deleted after the test
secret_backend_factory (test fixture) the same for backends whose spec names a Secret
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from stowage.agent.mounting import fuse_client_pids, mount_source
from stowage.drivers.base import BACKEND_LABEL, capacity_annotation, mount_label
from stowage.objects.helper_daemonset import helper_name
from stowage_e2e import scenario
from stowage_e2e.cluster import settings
from stowage_e2e.install import Images
from stowage_e2e.kube import Kube

HELPERS_NAMESPACE = "stowage-system"
MOUNTS_DIR = Path("/var/lib/stowage/mounts")

# As the claim's owner: how big the volume looks, then 20 MiB into it (see `overfilled`).
OVERFILL = """
df -k /data | tail -1 | awk '{print "size_kib=" $2}'
if dd if=/dev/zero of=/data/big bs=1M count=20 2>/tmp/dd.err; then echo "wrote 20 MiB"; fi
cat /tmp/dd.err
echo "written=$(stat -c %s /data/big)"
"""


def label_value(node: dict[str, Any], backend: str) -> str | None:
    labels: dict[str, str] = node["metadata"].get("labels") or {}
    return labels.get(mount_label(backend))


def mount_label_of(kube: Kube, backend: str) -> str | None:
    return label_value(kube.get("node", settings().node_name), backend)


def wait_for_label(
    kube: Kube, backend: str, value: str | None, timeout: float = 180, node: str | None = None
) -> None:
    """Waits until the node's (the first node's, unless named) mount label of `backend` is
    `value` (None: removed). A VM node gets at least 6 minutes: the first helper there after
    its boot starts a 790 MB image under emulation, slower still while the other VM is busy."""
    if node in settings().vm_node_names:
        timeout = max(timeout, 360)
    kube.wait_for(
        "node",
        node or settings().node_name,
        None,
        lambda node: label_value(node, backend) == value,
        timeout=timeout,
        what=f"{mount_label(backend)}={value}",
    )


def capacity_of(node: dict[str, Any], backend: str) -> int | None:
    """The free bytes of `backend` the node's helper annotated on it (None: none yet)."""
    value = (node["metadata"].get("annotations") or {}).get(capacity_annotation(backend))
    return None if value is None else int(value)


def wait_for_capacity(
    kube: Kube, node: str, backend: str, free: int | None = None, timeout: float = 120
) -> int:
    """The free bytes the helper on `node` reports for `backend`, once they are `free` (or
    once there are any, if None)."""
    found = kube.wait_for(
        "node",
        node,
        None,
        lambda body: (
            (capacity_of(body, backend) is not None)
            and (free is None or capacity_of(body, backend) == free)
        ),
        timeout=timeout,
        what=f"node {node} annotated with {free or 'its'} free bytes of {backend}",
    )
    return capacity_of(found, backend) or 0


def events_about(kube: Kube, namespace: str, name: str, reason: str) -> list[dict[str, Any]]:
    events = kube.json(
        "--namespace",
        namespace,
        "get",
        "events",
        "--field-selector",
        f"involvedObject.name={name},reason={reason}",
        "--output",
        "json",
    )
    return list(events["items"])


def backend_events(kube: Kube, backend: str, reason: str) -> list[dict[str, Any]]:
    return events_about(kube, "default", backend, reason)


def wait_for_event(
    kube: Kube, namespace: str, kind: str, name: str, reason: str, timeout: float = 120
) -> dict[str, Any]:
    """Waits for an Event of `reason` about the object; returns the first one."""
    kube.wait_for(
        kind,
        name,
        namespace,
        lambda _: bool(events_about(kube, namespace, name, reason)),
        timeout=timeout,
        what=f"a {reason} Event",
    )
    return events_about(kube, namespace, name, reason)[0]


def wait_for_condition(
    kube: Kube, backend: str, kind: str, reason: str, timeout: float = 90
) -> dict[str, Any]:
    """The backend's condition of `kind` once its reason is `reason`."""

    def condition(body: dict[str, Any]) -> dict[str, Any] | None:
        conditions = body.get("status", {}).get("conditions", [])
        return next((c for c in conditions if c["type"] == kind and c["reason"] == reason), None)

    found = kube.wait_for(
        "storagebackend",
        backend,
        None,
        lambda body: condition(body) is not None,
        timeout=timeout,
        what=f"{kind} {reason}",
    )
    return condition(found) or {}


def kernel_has_client(*file_systems: str) -> bool:
    """Whether this kernel can mount any of `file_systems` (the kubelet's and the helper's
    kernel mounts need it; modules cannot be loaded on the project's test machines)."""
    return bool(set(file_systems) & set(Path("/proc/filesystems").read_text().split()))


def finished_log(kube: Kube, namespace: str, pod: str, timeout: float = 180) -> str:
    """Waits for the pod to finish; its log, once it has succeeded."""
    finished = kube.wait_for_pod_phase(pod, namespace, timeout=timeout)
    log = kube.logs(pod, namespace)
    print(f"\n{log}")
    assert finished["status"]["phase"] == "Succeeded", log
    return log


def overfilled(log: str) -> tuple[int, int, bool]:
    """What OVERFILL saw: the volume's size in KiB, the bytes written, whether all 20 MiB
    went in."""
    size_kib = int(log.split("size_kib=")[1].split()[0])
    written = int(log.split("written=")[1].split()[0])
    return size_kib, written, "wrote 20 MiB" in log


def source_at(path: Path) -> str | None:
    return mount_source(str(path))


def fuse_clients_of(mount_point: Path) -> list[int]:
    return fuse_client_pids(str(mount_point))


def claim_directory(kube: Kube, namespace: str, backend: str) -> Path:
    """The bound claim `data`'s directory, relative to the backend mount (as on each brick)."""
    spec = scenario.bound_volume(kube, "data", namespace)["spec"]
    path = spec["csi"]["volumeAttributes"]["path"] if "csi" in spec else spec["local"]["path"]
    return Path(path).relative_to(MOUNTS_DIR / backend)


def ceph_user_secret(name: str, user: str, key: str) -> dict[str, Any]:
    """The Secret a Ceph backend's `userSecretRef` names."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name},
        "stringData": {"userID": user, "userKey": key},
    }


def remove_backends(kube: Kube, namespace: str, names: list[str]) -> None:
    """Deletes a test's backends, after its pods and claims: a failed test may leave them, and a
    backend's deletion waits for its volumes."""
    for kind in ("pods", "persistentvolumeclaims"):
        kube.run("--namespace", namespace, "delete", kind, "--all", "--wait=true")
    for name in names:
        kube.delete("storagebackend", name, wait=True)


def release_claim(kube: Kube, namespace: str, pod: str = "writer", claim: str = "data") -> None:
    """Deletes the pod and the claim; waits until its volume is gone (which the operator does
    once a helper has released the volume's data)."""
    volume = scenario.bound_volume(kube, claim, namespace)["metadata"]["name"]
    kube.delete("pod", pod, namespace, wait=True)
    kube.delete("persistentvolumeclaim", claim, namespace, wait=True)
    kube.text("wait", "--for=delete", f"persistentvolume/{volume}", "--timeout=90s")


def helper_pods(kube: Kube, backend: str) -> list[str]:
    pods = kube.json(
        "--namespace",
        HELPERS_NAMESPACE,
        "get",
        "pods",
        "--selector",
        f"{BACKEND_LABEL}={backend}",
        "--output",
        "json",
    )
    return [
        pod["metadata"]["name"]
        for pod in pods["items"]
        if "deletionTimestamp" not in pod["metadata"]
    ]


def restart_helper(kube: Kube, backend: str) -> None:
    """Deletes the backend's helper pod and waits for its replacement to be ready."""
    (helper,) = helper_pods(kube, backend)
    kube.delete("pod", helper, HELPERS_NAMESPACE, wait=True)
    kube.wait_for(
        "daemonset",
        helper_name(backend),
        HELPERS_NAMESPACE,
        lambda daemonset: daemonset.get("status", {}).get("numberReady") == 1,
        timeout=120,
        what="a new helper pod ready",
    )
    assert helper_pods(kube, backend) != [helper]


def wait_for_nodes(kube: Kube, backend: str, counts: dict[str, int]) -> dict[str, Any]:
    """The backend's Degraded condition once its status counts the nodes so."""
    found = kube.wait_for(
        "storagebackend",
        backend,
        None,
        lambda body: (body.get("status") or {}).get("nodes") == counts,
        timeout=120,
        what=f"status.nodes {counts}",
    )
    (condition,) = [c for c in found["status"]["conditions"] if c["type"] == "Degraded"]
    return dict(condition)


@pytest.fixture
def backend_factory(
    kube: Kube, namespace: str, stowage_installed: Images
) -> Iterator[Callable[..., str]]:
    """`backend_factory(prefix, spec)`: a StorageBackend of that spec, named `<prefix>-<random>`;
    after the test, the namespace's pods and claims go, then the backends."""
    created: list[str] = []

    def create(prefix: str, spec: dict[str, Any]) -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:6]}"
        kube.apply(scenario.storage_backend(name, spec))
        created.append(name)
        return name

    yield create
    remove_backends(kube, namespace, created)


def assert_secret_nowhere(kube: Kube, backend: str, secret: str, what: str) -> None:
    """`secret` (`what` it is) is not in the backend (status), Events, ConfigMaps, the logs of
    the backend's helpers or of the operator."""
    places = {
        "backend": kube.text("get", "storagebackend", backend, "--output", "yaml"),
        "events": kube.text("get", "events", "--all-namespaces", "--output", "yaml"),
        "configmaps": kube.text("get", "configmaps", "--all-namespaces", "--output", "yaml"),
    }
    for pod in helper_pods(kube, backend):
        places[pod] = kube.logs(pod, HELPERS_NAMESPACE)
    operator = kube.text(
        "--namespace", "stowage-system", "logs", "deployment/stowage-operator", "--tail=-1"
    )
    places["operator"] = operator
    leaked = [place for place, text in places.items() if secret in text]
    assert not leaked, f"{what} is in {leaked}"


@pytest.fixture
def secret_backend_factory(
    kube: Kube, namespace: str, stowage_installed: Images
) -> Iterator[Callable[..., str]]:
    """`secret_backend_factory(prefix, secret_data, spec_of)`: a Secret `<prefix>-<random>` of
    `secret_data` in the test's namespace and a StorageBackend of that name whose spec
    `spec_of(secret_reference)` gives; after the test, the namespace's pods and claims go,
    then the backends."""
    created: list[str] = []

    def create(
        prefix: str,
        secret_data: dict[str, str],
        spec_of: Callable[[dict[str, str]], dict[str, Any]],
    ) -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:6]}"
        secret = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name},
            "stringData": secret_data,
        }
        kube.apply(secret, namespace)
        spec = spec_of({"name": name, "namespace": namespace})
        kube.apply(scenario.storage_backend(name, spec))
        created.append(name)
        return name

    yield create
    remove_backends(kube, namespace, created)
