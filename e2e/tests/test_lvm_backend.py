"""lvm end to end: the in-cluster operator and the backend's helper on a node with
device-mapper (the VM node with Debian's kernel here; any node on kind, which shares the Docker
host's kernel and devices).

A volume group is made on a loop device of that node, through its shell. The helper creates
an LV per claim, formats and mounts it (Filesystem) or hands its device over (Block), reports
the group's free bytes on the node, and removes the LV on release. Archive and Retain rename or
keep an LV's metadata, which needs no kernel: tests/integration/test_lvm_node.py has them.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from stowage.drivers.base import NODE_ANNOTATION
from stowage_e2e import scenario
from stowage_e2e.cluster import settings
from stowage_e2e.helpers import (
    finished_log,
    release_claim,
    restart_helper,
    wait_for_capacity,
    wait_for_event,
    wait_for_label,
)
from stowage_e2e.kube import Kube
from stowage_e2e.lvm_groups import (
    TEST_GROUP_BYTES,
    loop_volume_group,
    lv_sizes,
    throwaway_volume_group,
)
from stowage_e2e.node_shell import NodeShell, mount_source_on, output
from stowage_e2e.vm_nodes import AnyNode, VmNode

pytestmark = pytest.mark.e2e

MiB = 2**20
VG_BYTES = TEST_GROUP_BYTES
GROUPS_DIR = Path("/var/lib/stowage-e2e/lvm")
IMMEDIATE = {"volumeBindingMode": "Immediate"}


@pytest.fixture
def volume_group(kernel_node_shell: NodeShell) -> Iterator[str]:
    """A throwaway volume group on the kernel node."""
    with throwaway_volume_group(GROUPS_DIR, kernel_node_shell) as name:
        yield name


def lvm_backend(
    backend_factory: Callable[..., str],
    node: VmNode | AnyNode,
    prefix: str,
    lvm: dict[str, Any],
    **spec: Any,
) -> str:
    """An lvm backend whose helper runs on `node` alone; its name once that helper is ready."""
    return str(backend_factory(prefix, {"lvm": lvm, "mount": node.mount_settings(), **spec}))


def test_a_filesystem_claim_is_a_mounted_lv_that_outlives_a_helper_restart_and_goes_on_release(
    kube: Kube,
    namespace: str,
    backend_factory: Callable[..., str],
    volume_group: str,
    kernel_node: VmNode | AnyNode,
    kernel_node_shell: NodeShell,
) -> None:
    shell, node = kernel_node_shell, kernel_node.name
    lvm = {"volumeGroup": volume_group, "fsType": "ext4"}
    name = lvm_backend(backend_factory, kernel_node, "lvm", lvm)
    wait_for_label(kube, name, "ready", node=node)
    wait_for_capacity(kube, node, name, VG_BYTES)

    kube.apply(scenario.claim("data", name, "10Mi"), namespace)
    text = f"lvm {uuid.uuid4()}"
    writer = scenario.writer_pod("writer", "data", settings().base_image, text)
    kube.apply(kernel_node.place(writer), namespace)
    assert finished_log(kube, namespace, "writer", timeout=300).strip() == text

    volume = scenario.bound_volume(kube, "data", namespace)
    assert volume["metadata"]["annotations"][NODE_ANNOTATION] == node
    lv = volume["metadata"]["annotations"]["stowage.io/block-volume"]
    assert lv_sizes(volume_group, shell) == {lv: 12 * MiB}  # 10 MiB in whole 4 MiB extents
    device = f"/dev/{volume_group}/{lv}"
    assert output(shell, "blkid", "--output", "value", "--match-tag", "TYPE", device) == "ext4\n"
    path = volume["spec"]["local"]["path"]
    source = mount_source_on(shell, path) or ""
    assert output(shell, "readlink", "-f", source) == output(shell, "readlink", "-f", device)
    assert output(shell, "cat", f"{path}/hello.txt").strip() == text
    wait_for_capacity(kube, node, name, VG_BYTES - 12 * MiB)

    restart_helper(kube, name)
    assert mount_source_on(shell, path) is not None
    assert output(shell, "cat", f"{path}/hello.txt").strip() == text

    release_claim(kube, namespace)
    assert mount_source_on(shell, path) is None
    assert lv_sizes(volume_group, shell) == {}


def test_a_block_claim_is_the_lv_device_in_the_pod(
    kube: Kube,
    namespace: str,
    backend_factory: Callable[..., str],
    volume_group: str,
    kernel_node: VmNode | AnyNode,
    kernel_node_shell: NodeShell,
) -> None:
    name = lvm_backend(backend_factory, kernel_node, "lvmblock", {"volumeGroup": volume_group})
    wait_for_label(kube, name, "ready", node=kernel_node.name)
    claim = scenario.claim("data", name, "8Mi")
    claim["spec"]["volumeMode"] = "Block"
    kube.apply(claim, namespace)
    script = (
        "echo block-data | dd of=/dev/xvda bs=512 conv=sync 2>/dev/null && head -c 10 /dev/xvda"
    )
    pod = scenario.script_pod("writer", "data", settings().base_image, script)
    container = pod["spec"]["containers"][0]
    del container["volumeMounts"]
    container["volumeDevices"] = [{"name": "data", "devicePath": "/dev/xvda"}]
    kube.apply(kernel_node.place(pod), namespace)
    assert finished_log(kube, namespace, "writer", timeout=300).startswith("block-data")
    volume = scenario.bound_volume(kube, "data", namespace)
    lv = volume["metadata"]["annotations"]["stowage.io/block-volume"]
    device = f"/dev/{volume_group}/{lv}"
    assert volume["spec"]["local"]["path"] == device
    assert lv_sizes(volume_group, kernel_node_shell) == {lv: 8 * MiB}
    # What the pod wrote is on the node's LV itself.
    assert output(kernel_node_shell, "head", "-c", "10", device) == "block-data"
    release_claim(kube, namespace)
    assert lv_sizes(volume_group, kernel_node_shell) == {}


def test_a_claim_goes_to_the_node_whose_group_has_room_and_one_that_fits_nowhere_says_so(
    kube: Kube,
    namespace: str,
    backend_factory: Callable[..., str],
    two_vm_nodes: tuple[VmNode, VmNode],
    node_shell_of: Callable[[VmNode], NodeShell],
) -> None:
    """Two VM nodes with a group of the same name, 64 MiB on one and 32 MiB on the other."""
    roomy, small = two_vm_nodes
    group = f"stowagetest-{uuid.uuid4().hex[:8]}"
    sizes = {roomy.name: 64 * MiB, small.name: 32 * MiB}
    with ExitStack() as groups:
        for node in two_vm_nodes:
            groups.enter_context(
                loop_volume_group(GROUPS_DIR, group, sizes[node.name], node_shell_of(node))
            )
        name = backend_factory(
            "lvmtwo",
            {
                "lvm": {"volumeGroup": group},
                "mount": {"tolerations": [roomy.toleration]},
                "storageClass": IMMEDIATE,
            },
        )
        for node in two_vm_nodes:
            wait_for_label(kube, name, "ready", node=node.name)
            wait_for_capacity(kube, node.name, name, sizes[node.name])

        def placed(claim: str, size: str) -> str:
            kube.apply(scenario.claim(claim, name, size), namespace)
            volume = scenario.bound_volume(kube, claim, namespace)
            return str(volume["metadata"]["annotations"][NODE_ANNOTATION])

        assert placed("big", "48Mi") == roomy.name  # only the roomy group has 48 MiB
        wait_for_capacity(kube, roomy.name, name, 16 * MiB)
        kube.apply(scenario.claim("too-big", name, "40Mi"), namespace)
        event = wait_for_event(
            kube, namespace, "persistentvolumeclaim", "too-big", "ProvisioningFailed"
        )
        assert (
            f"no node has 40Mi free in backend {name}: the largest free is 32Mi on node "
            f"{small.name}" in event["message"]
        ), event["message"]
        assert placed("small", "24Mi") == small.name  # 16 MiB left on the roomy node
        assert sorted(lv_sizes(group, node_shell_of(small)).values()) == [24 * MiB]
        assert sorted(lv_sizes(group, node_shell_of(roomy)).values()) == [48 * MiB]
        for claim in ("big", "too-big", "small"):
            kube.delete("persistentvolumeclaim", claim, namespace, wait=True)
        kube.run("wait", "--for=delete", "persistentvolume", "-l", f"stowage.io/backend={name}",
                 "--timeout=120s")  # fmt: skip
