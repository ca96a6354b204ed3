"""lvm end to end: the in-cluster operator and the backend's helper on a node with
device-mapper (the kind path on a Docker host, or any cluster whose node is this machine).

A volume group is made on a loop device of the machine running the tests (the node's kernel
and devices: the local provider's node is this machine, a kind node shares the Docker host's
kernel and devices). The helper creates an LV per claim, formats and mounts it (Filesystem) or
hands its device over (Block), reports the group's free bytes on the node, and removes the LV
on release. Skipped where the kernel has no device-mapper (this project's own VMs), and so not
run there: see the README's Support table.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from stowage.agent import lvm
from stowage.agent.mounting import mount_source
from stowage.drivers.base import NODE_ANNOTATION
from stowage_e2e import scenario
from stowage_e2e.cluster import settings
from stowage_e2e.helpers import (
    events_about,
    finished_log,
    release_claim,
    restart_helper,
    wait_for_event,
    wait_for_label,
)
from stowage_e2e.install import Images
from stowage_e2e.kube import Kube
from stowage_e2e.lvm_groups import TEST_GROUP_BYTES, lv_sizes

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        not lvm.device_mapper_present(),
        reason="this kernel has no device-mapper: LVs cannot be activated here",
    ),
    pytest.mark.skipif(
        os.geteuid() != 0 or shutil.which("lvcreate") is None, reason="needs root and lvm2"
    ),
]

MiB = 2**20
VG_BYTES = TEST_GROUP_BYTES


def node_annotations(kube: Kube) -> dict[str, str]:
    node: dict[str, Any] = kube.get("node", settings().node_name)
    return dict(node["metadata"].get("annotations") or {})


def wait_for_capacity(kube: Kube, backend: str, free: int) -> None:
    kube.wait_for(
        "node",
        settings().node_name,
        None,
        lambda node: (
            (node["metadata"].get("annotations") or {}).get(f"capacity.stowage.io/{backend}")
            == str(free)
        ),
        timeout=120,
        what=f"the node annotated with {free} free bytes of {backend}",
    )


def test_a_filesystem_claim_is_a_mounted_lv_that_outlives_a_helper_restart_and_goes_on_release(
    kube: Kube,
    namespace: str,
    backend_factory: Callable[..., str],
    stowage_images: Images,
    volume_group: str,
) -> None:
    name = backend_factory("lvm", {"lvm": {"volumeGroup": volume_group, "fsType": "ext4"}})
    wait_for_label(kube, name, "ready")
    wait_for_capacity(kube, name, VG_BYTES)

    kube.apply(scenario.claim("data", name, "10Mi"), namespace)
    text = f"lvm {uuid.uuid4()}"
    kube.apply(scenario.writer_pod("writer", "data", stowage_images.operator, text), namespace)
    assert finished_log(kube, namespace, "writer").strip() == text

    volume = scenario.bound_volume(kube, "data", namespace)
    assert volume["metadata"]["annotations"][NODE_ANNOTATION] == settings().node_name
    lv = volume["metadata"]["annotations"]["stowage.io/block-volume"]
    assert lv_sizes(volume_group) == {lv: 12 * MiB}  # 10 MiB in whole 4 MiB extents
    path = Path(volume["spec"]["local"]["path"])
    assert mount_source(str(path)) is not None  # the LV's file system, the node's mount
    assert (path / "hello.txt").read_text().strip() == text
    wait_for_capacity(kube, name, VG_BYTES - 12 * MiB)

    restart_helper(kube, name)
    assert mount_source(str(path)) is not None
    assert (path / "hello.txt").read_text().strip() == text

    release_claim(kube, namespace)
    assert mount_source(str(path)) is None
    assert lv_sizes(volume_group) == {}


def test_a_block_claim_is_the_lv_device_in_the_pod(
    kube: Kube,
    namespace: str,
    backend_factory: Callable[..., str],
    stowage_images: Images,
    volume_group: str,
) -> None:
    name = backend_factory("lvmblock", {"lvm": {"volumeGroup": volume_group}})
    wait_for_label(kube, name, "ready")
    claim = scenario.claim("data", name, "8Mi")
    claim["spec"]["volumeMode"] = "Block"
    kube.apply(claim, namespace)
    script = (
        "echo block-data | dd of=/dev/xvda bs=512 conv=sync 2>/dev/null && head -c 10 /dev/xvda"
    )
    pod = scenario.script_pod("writer", "data", stowage_images.operator, script)
    container = pod["spec"]["containers"][0]
    del container["volumeMounts"]
    container["volumeDevices"] = [{"name": "data", "devicePath": "/dev/xvda"}]
    kube.apply(pod, namespace)
    assert finished_log(kube, namespace, "writer").startswith("block-data")
    volume = scenario.bound_volume(kube, "data", namespace)
    lv = volume["metadata"]["annotations"]["stowage.io/block-volume"]
    assert volume["spec"]["local"]["path"] == f"/dev/{volume_group}/{lv}"
    assert lv_sizes(volume_group) == {lv: 8 * MiB}
    release_claim(kube, namespace)
    assert lv_sizes(volume_group) == {}


def test_a_claim_larger_than_the_group_stays_pending_with_an_event_that_says_why(
    kube: Kube,
    namespace: str,
    backend_factory: Callable[..., str],
    volume_group: str,
) -> None:
    # Immediate: the operator chooses the node itself, by the free space the helper reports.
    immediate = {"volumeBindingMode": "Immediate"}
    name = backend_factory(
        "lvmfull", {"lvm": {"volumeGroup": volume_group}, "storageClass": immediate}
    )
    wait_for_label(kube, name, "ready")
    wait_for_capacity(kube, name, VG_BYTES)
    kube.apply(scenario.claim("data", name, "1Gi"), namespace)
    event = wait_for_event(kube, namespace, "persistentvolumeclaim", "data", "ProvisioningFailed")
    assert f"free in backend {name}" in event["message"], event["message"]
    assert not events_about(kube, namespace, "data", "PreparationFailed")
    assert lv_sizes(volume_group) == {}
