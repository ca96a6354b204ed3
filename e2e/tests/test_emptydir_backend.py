"""emptyDir end to end: the in-cluster operator and the backend's helper on the node.

The helper makes each claim's volume on the node the claim is planned for before the PV
exists: a directory under emptyDir.basePath, or (medium Memory) a tmpfs of the claim's size
under /var/lib/stowage/volumes/<backend>; it wipes the volume when the claim goes.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from stowage.agent.mounting import mount_source
from stowage.drivers.base import NODE_ANNOTATION
from stowage_e2e import scenario
from stowage_e2e.cluster import settings
from stowage_e2e.helpers import (
    OVERFILL,
    finished_log,
    overfilled,
    release_claim,
    restart_helper,
    wait_for_label,
)
from stowage_e2e.install import Images
from stowage_e2e.kube import Kube

pytestmark = pytest.mark.e2e

MEMORY = {"emptyDir": {"medium": "Memory"}}

# A file that must still be there after a helper restart, then OVERFILL.
FILL_AND_KEEP = "echo kept > /data/kept.txt\n" + OVERFILL


def volume_path(kube: Kube, namespace: str, claim: str = "data") -> Path:
    volume = scenario.bound_volume(kube, claim, namespace)
    assert volume["metadata"]["annotations"][NODE_ANNOTATION] == settings().node_name
    return Path(volume["spec"]["local"]["path"])


def test_a_claim_is_a_directory_on_the_node_that_release_wipes(
    kube: Kube,
    namespace: str,
    backend_factory: Callable[..., str],
    stowage_images: Images,
) -> None:
    name = backend_factory("scratch", {"emptyDir": {}})
    scenario.wait_ready(kube, name)
    wait_for_label(kube, name, "ready")  # the helper runs on the node

    kube.apply(scenario.claim("data", name, "1Gi"), namespace)
    text = f"scratch {uuid.uuid4()}"
    kube.apply(scenario.writer_pod("writer", "data", stowage_images.operator, text), namespace)
    finished = kube.wait_for_pod_phase("writer", namespace, timeout=180)
    assert finished["status"]["phase"] == "Succeeded", finished["status"]
    assert kube.logs("writer", namespace).strip() == text

    directory = volume_path(kube, namespace)
    assert directory.parent == Path("/var/lib/stowage/empty-dir")
    assert (directory / "hello.txt").read_text().strip() == text
    assert mount_source(str(directory)) is None  # a plain directory of the node's disk

    release_claim(kube, namespace)
    assert not directory.exists()


def test_a_memory_claim_is_a_tmpfs_of_its_size_that_outlives_a_helper_restart(
    kube: Kube,
    namespace: str,
    backend_factory: Callable[..., str],
    stowage_images: Images,
) -> None:
    name = backend_factory("memory", MEMORY)
    wait_for_label(kube, name, "ready")
    kube.apply(scenario.claim("data", name, "10Mi"), namespace)
    pod = scenario.script_pod("writer", "data", stowage_images.operator, FILL_AND_KEEP)
    kube.apply(pod, namespace)
    log = finished_log(kube, namespace, "writer")
    size_kib, written, all_written = overfilled(log)
    assert size_kib == 10240  # df in the pod shows the claim's size
    assert not all_written and "No space left on device" in log
    assert written <= 10 * 2**20, f"{written} bytes got into a 10 MiB claim"

    directory = volume_path(kube, namespace)
    assert mount_source(str(directory)) == "tmpfs"  # the node's own mount, not the helper's
    restart_helper(kube, name)
    assert mount_source(str(directory)) == "tmpfs"
    assert (directory / "kept.txt").read_text() == "kept\n"

    release_claim(kube, namespace)
    assert mount_source(str(directory)) is None
    assert not directory.exists()


def ephemeral_pod(name: str, storage_class: str, image: str, script: str) -> dict[str, Any]:
    """A pod whose volume is a generic ephemeral volume of the class (its claim lives and
    goes with the pod)."""
    pod = scenario.script_pod(name, "unused", image, script)
    pod["spec"]["volumes"] = [
        {
            "name": "data",
            "ephemeral": {
                "volumeClaimTemplate": {
                    "spec": {
                        "storageClassName": storage_class,
                        "accessModes": ["ReadWriteOnce"],
                        "resources": {"requests": {"storage": "8Mi"}},
                    }
                }
            },
        }
    ]
    return pod


def test_a_generic_ephemeral_volume_is_scratch_space_with_a_hard_limit(
    kube: Kube,
    namespace: str,
    backend_factory: Callable[..., str],
    stowage_images: Images,
) -> None:
    name = backend_factory("ephemeral", MEMORY)
    wait_for_label(kube, name, "ready")
    script = FILL_AND_KEEP + "cat /data/kept.txt\n"
    kube.apply(ephemeral_pod("scratch", name, stowage_images.operator, script), namespace)
    log = finished_log(kube, namespace, "scratch")
    size_kib, _, all_written = overfilled(log)
    assert size_kib == 8192 and not all_written and "No space left on device" in log
    assert log.strip().endswith("kept")

    claim = "scratch-data"  # <pod>-<volume>, made by the ephemeral volume controller
    directory = volume_path(kube, namespace, claim)
    volume = scenario.bound_volume(kube, claim, namespace)["metadata"]["name"]
    kube.delete("pod", "scratch", namespace, wait=True)  # the claim goes with its pod
    kube.text("wait", "--for=delete", f"persistentvolume/{volume}", "--timeout=90s")
    assert mount_source(str(directory)) is None
    assert not directory.exists()
