"""stowage as users run it: the operator installed by its chart serves claims on the real node.

hostPath is exercised end to end (a pod writes and reads its claim; the file is on the node);
the other types have their own modules.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from stowage_e2e import scenario
from stowage_e2e.install import METRICS_SERVICE, NAMESPACE, Images
from stowage_e2e.kube import Kube

pytestmark = pytest.mark.e2e

DATA_DIR = Path("/var/lib/stowage-e2e/data")
Backends = Callable[[dict[str, Any]], str]


@pytest.fixture
def backends(kube: Kube, stowage_installed: Images) -> Iterator[Backends]:
    """Applies StorageBackends; at the end removes their claims' PVs, then the backends."""
    made: list[str] = []

    def apply(manifest: dict[str, Any]) -> str:
        kube.apply(manifest)
        made.append(manifest["metadata"]["name"])
        return str(manifest["metadata"]["name"])

    yield apply
    for name in made:
        selector = f"stowage.io/backend={name}"
        for volume in kube.json("get", "persistentvolume", "-l", selector)["items"]:
            claim = volume["spec"].get("claimRef")
            if claim:
                # A finished pod still holds its claim (pvc-protection) until it is deleted.
                kube.run("delete", "pods", "--all", "--namespace", claim["namespace"])
                kube.delete("persistentvolumeclaim", claim["name"], claim["namespace"], wait=True)
        kube.run("delete", "persistentvolume", "-l", selector, "--wait=true")
        kube.delete("storagebackend", name, wait=True)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def test_a_pod_writes_and_reads_a_host_path_claim(
    kube: Kube, namespace: str, backends: Backends, stowage_installed: Images
) -> None:
    root = DATA_DIR / unique("host-path")
    name = backends(scenario.host_path_backend(unique("local"), str(root)))
    scenario.wait_ready(kube, name)
    kube.apply(scenario.claim("notes", name), namespace)
    text = f"written by a pod at {uuid.uuid4()}"
    kube.apply(scenario.writer_pod("writer", "notes", stowage_installed.operator, text), namespace)
    finished = kube.wait_for_pod_phase("writer", namespace, timeout=120)
    assert finished["status"]["phase"] == "Succeeded", finished["status"]
    assert kube.logs("writer", namespace).strip() == text

    bound = scenario.wait_bound(kube, "notes", namespace)
    volume = kube.get("persistentvolume", bound["spec"]["volumeName"])
    path = Path(volume["spec"]["hostPath"]["path"])
    assert path.parent == root
    assert path.name.endswith(bound["metadata"]["uid"])  # one directory per claim, never shared
    # The node is this machine: the data is where the PV says, outside any container.
    assert (path / "hello.txt").read_text().strip() == text


def test_metrics_through_the_service_count_the_provisioned_claims(
    kube: Kube, namespace: str, backends: Backends
) -> None:
    manifest = scenario.host_path_backend(unique("counted"), str(DATA_DIR / unique("counted")))
    manifest["spec"]["storageClass"] = {"volumeBindingMode": "Immediate"}
    name = backends(manifest)
    scenario.wait_ready(kube, name)
    count = 3
    for index in range(count):
        kube.apply(scenario.claim(f"counted-{index}", name), namespace)
    for index in range(count):
        scenario.wait_bound(kube, f"counted-{index}", namespace)
    kube.wait_for(
        "storagebackend",
        name,
        None,
        lambda backend: backend.get("status", {}).get("volumes") == count,
        what=f"status.volumes == {count}",
    )

    exposition = scenario.metrics(kube, NAMESPACE, METRICS_SERVICE)
    labels = {"backend": name}
    assert scenario.sample_value(exposition, "stowage_volumes_provisioned_total", labels) == count
    assert (
        scenario.sample_value(exposition, "stowage_provisioning_duration_seconds_count", labels)
        == count
    )
    assert scenario.sample_value(exposition, "stowage_backend_volumes", labels) == count
