"""The CSI driver csi.stowage.io in the cluster: the chart's controller (the Controller service
behind the csi-provisioner sidecar in the operator's pod) and node plugin (registered with this
machine's kubelet through its plugins_registry), serving a hostPath backend that sets
provisioning.csi.

A claim becomes a CSI PersistentVolume (no `hostPath` PV), a pod writes through the kubelet's
NodePublishVolume into the backend's directory on the node, and deleting the claim releases
the data as onDelete says, through the BackendVolume record and the node plugin. The same
on a VM node, whose kubelet has the same root directory, so one DaemonSet serves both."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from stowage.agent.mounting import is_mount_point, mount_table
from stowage.drivers.naming import claim_directory
from stowage_e2e import scenario
from stowage_e2e.cluster import settings
from stowage_e2e.helpers import finished_log, release_claim
from stowage_e2e.install import Images
from stowage_e2e.kube import Kube
from stowage_e2e.node_shell import NodeShell, output
from stowage_e2e.vm_nodes import VmNode

pytestmark = pytest.mark.e2e

DRIVER = "csi.stowage.io"
TOPOLOGY_KEY = "topology.stowage.io/node"


def topology_keys(csi_node: dict[str, Any]) -> list[str]:
    """The topology keys the kubelet registered for stowage's driver on the node."""
    drivers = csi_node.get("spec", {}).get("drivers") or []
    return [key for d in drivers if d["name"] == DRIVER for key in d.get("topologyKeys") or []]


def test_a_claim_of_a_csi_backend_is_a_csi_volume_on_its_node_and_delete_releases_it(
    kube: Kube,
    namespace: str,
    host_directory: Path,
    backend_factory: Callable[..., str],
    stowage_installed: Images,
) -> None:
    node = settings().node_name
    assert DRIVER in kube.text("get", "csidrivers", "-o", "name")
    kube.wait_for(
        "csinode",
        node,
        None,
        lambda csi_node: topology_keys(csi_node) == [TOPOLOGY_KEY],
        timeout=120,
        what=f"the kubelet of {node} registering {DRIVER}",
    )
    assert kube.get("node", node)["metadata"]["labels"][TOPOLOGY_KEY] == node

    name = backend_factory(
        "csi-hostpath",
        {
            "hostPath": {"path": str(host_directory), "nodes": [node]},
            "provisioning": {"csi": True, "directoryMode": "0770"},
        },
    )
    scenario.wait_ready(kube, name)
    storage_class = kube.get("storageclass", name)  # named after the backend
    assert storage_class["provisioner"] == DRIVER
    assert storage_class["parameters"] == {"stowage.io/backend": name}

    kube.apply(scenario.claim("data", name, "16Mi"), namespace)
    kube.apply(
        scenario.writer_pod("writer", "data", stowage_installed.operator, "through csi"),
        namespace,
    )
    assert finished_log(kube, namespace, "writer") == "through csi\n"

    volume = scenario.bound_volume(kube, "data", namespace)
    assert "hostPath" not in volume["spec"] and "local" not in volume["spec"]
    assert volume["spec"]["csi"]["driver"] == DRIVER
    handle = volume["spec"]["csi"]["volumeHandle"]
    assert handle == volume["metadata"]["name"]  # pvc-<claim uid>
    terms = volume["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"]
    assert terms == [
        {"matchExpressions": [{"key": TOPOLOGY_KEY, "operator": "In", "values": [node]}]}
    ]
    record = kube.get("backendvolume", handle)
    directory = Path(record["spec"]["path"])
    assert directory.parent == host_directory
    assert directory.name == claim_directory(namespace, "data", handle.removeprefix("pvc-"))
    assert (directory / "hello.txt").read_text() == "through csi\n"
    assert directory.stat().st_mode & 0o7777 == 0o770

    release_claim(kube, namespace)
    kube.text("wait", "--for=delete", f"backendvolume/{handle}", "--timeout=60s")
    assert not directory.exists()


def test_the_node_plugin_on_a_vm_node_makes_publishes_and_releases_a_volume_there(
    kube: Kube,
    namespace: str,
    host_directory: Path,
    backend_factory: Callable[..., str],
    vm_node: VmNode,
    node_shell_of: Callable[[VmNode], NodeShell],
) -> None:
    """The node plugin runs on every node, the tainted VM nodes too: a pod placed there gets
    its volume made, published and released by the plugin on that node, with Debian's kernel
    doing the bind mount, and nothing of it lands on this machine."""
    kube.wait_for(
        "csinode",
        vm_node.name,
        None,
        lambda csi_node: topology_keys(csi_node) == [TOPOLOGY_KEY],
        timeout=180,
        what=f"the kubelet of {vm_node.name} registering {DRIVER}",
    )
    name = backend_factory(
        "csi-vm-hostpath",
        {
            "hostPath": {
                "path": str(host_directory),
                "nodes": [settings().node_name, vm_node.name],
            },
            "provisioning": {"csi": True},
        },
    )
    scenario.wait_ready(kube, name)
    kube.apply(scenario.claim("data", name, "16Mi"), namespace)
    writer = scenario.writer_pod("writer", "data", settings().base_image, "on the vm")
    kube.apply(vm_node.place(writer), namespace)
    assert finished_log(kube, namespace, "writer", timeout=300) == "on the vm\n"

    volume = scenario.bound_volume(kube, "data", namespace)
    assert volume["spec"]["csi"]["driver"] == DRIVER
    terms = volume["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"]
    assert terms == [
        {"matchExpressions": [{"key": TOPOLOGY_KEY, "operator": "In", "values": [vm_node.name]}]}
    ]
    handle = volume["spec"]["csi"]["volumeHandle"]
    directory = kube.get("backendvolume", handle)["spec"]["path"]
    shell = node_shell_of(vm_node)
    assert output(shell, "cat", f"{directory}/hello.txt") == "on the vm\n"
    assert not Path(directory).exists()  # not on this machine

    release_claim(kube, namespace)
    kube.text("wait", "--for=delete", f"backendvolume/{handle}", "--timeout=90s")
    assert shell.run("test", "-e", directory).returncode == 1  # removed on the VM
    assert shell.run("test", "-d", str(host_directory)).returncode == 0


def test_an_in_memory_csi_volume_is_a_tmpfs_of_the_node_kept_for_the_next_pod(
    kube: Kube,
    namespace: str,
    backend_factory: Callable[..., str],
    stowage_installed: Images,
) -> None:
    """emptyDir medium Memory through the driver: the node plugin mounts the volume's tmpfs
    below /var/lib/stowage as the node's own mount (not its container's), so a second pod of
    the claim reads what the first wrote; the release unmounts it."""
    name = backend_factory(
        "csi-memory", {"emptyDir": {"medium": "Memory"}, "provisioning": {"csi": True}}
    )
    scenario.wait_ready(kube, name)
    kube.apply(scenario.claim("data", name, "8Mi"), namespace)
    kube.apply(
        scenario.writer_pod("writer", "data", stowage_installed.operator, "in memory"), namespace
    )
    assert finished_log(kube, namespace, "writer") == "in memory\n"
    handle = scenario.bound_volume(kube, "data", namespace)["spec"]["csi"]["volumeHandle"]
    directory = kube.get("backendvolume", handle)["spec"]["path"]
    assert [e.source for e in mount_table() if e.mount_point == directory] == ["tmpfs"]
    size = os.statvfs(directory)
    assert size.f_blocks * size.f_frsize == 8 << 20

    kube.delete("pod", "writer", namespace, wait=True)
    reader = scenario.script_pod(
        "reader", "data", stowage_installed.operator, "cat /data/hello.txt"
    )
    kube.apply(reader, namespace)
    assert finished_log(kube, namespace, "reader") == "in memory\n"

    release_claim(kube, namespace, pod="reader")
    kube.text("wait", "--for=delete", f"backendvolume/{handle}", "--timeout=60s")
    assert not is_mount_point(directory)
    assert not Path(directory).exists()
