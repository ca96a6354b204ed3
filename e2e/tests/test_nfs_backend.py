"""nfs end to end against a real NFS-Ganesha on a test host.

Before a claim's PV exists, a helper makes the claim's directory on the server the PV will name,
over NFS through libnfs (userspace: no node mounts the export). Release deletes, archives or
keeps it. The directories and data are checked with libnfs's own tools (nfs-ls, nfs-cp,
nfs-cat). Pods mount claims through the kubelet's kernel NFS client on the VM node (Debian's
kernel; this machine's has no NFS client).
"""

from __future__ import annotations

import hashlib
import stat
import uuid
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any

import pytest

from stowage_e2e import scenario
from stowage_e2e.cluster import settings
from stowage_e2e.fixtures import TestHostFactory
from stowage_e2e.helpers import (
    events_about,
    finished_log,
    release_claim,
    wait_for_condition,
    wait_for_label,
)
from stowage_e2e.kube import Kube
from stowage_e2e.servers import NfsGanesha, export_on_disk
from stowage_e2e.vm_nodes import AnyNode, VmNode

pytestmark = pytest.mark.e2e


def on_disk(server: NfsGanesha, path: str) -> Path:
    """Where a path of the export is on the server's disk."""
    return export_on_disk(server.host.name) / PurePosixPath(path).relative_to("/export")


def nfs_spec(server: str, export: str = "/export", **provisioning: Any) -> dict[str, Any]:
    return {
        "nfs": {"servers": [server], "path": export, "version": "4.1"},
        "storageClass": {"volumeBindingMode": "Immediate"},
        "provisioning": {"basePath": "/claims", **provisioning},
    }


def claim_directory(kube: Kube, namespace: str, server: NfsGanesha) -> PurePosixPath:
    """The bound claim's directory, as its PV names it; checked to be on `server`."""
    source = scenario.bound_volume(kube, "data", namespace)["spec"]["nfs"]
    assert source["server"] == server.host.ip
    return PurePosixPath(source["path"])


def test_a_claim_gets_its_own_directory_on_the_server_and_delete_removes_it(
    kube: Kube, namespace: str, backend_factory: Callable[..., str], ganesha: NfsGanesha
) -> None:
    owner = {"uid": 1000, "gid": 2000}
    spec = nfs_spec(ganesha.host.ip, directoryMode="0750", directoryOwner=owner)
    name = backend_factory("nfs", spec)
    wait_for_label(kube, name, "ready")  # a helper reaches the export over NFS
    scenario.wait_ready(kube, name)
    kube.apply(scenario.claim("data", name, "2Gi", "ReadWriteMany"), namespace)
    claim = scenario.wait_bound(kube, "data", namespace)

    directory = claim_directory(kube, namespace, ganesha)
    assert directory.parent == PurePosixPath("/export/claims")
    assert directory.name.endswith(claim["metadata"]["uid"])  # one directory per claim
    assert ganesha.list("/export/claims") == [directory.name]
    made = on_disk(ganesha, str(directory)).stat()
    assert (made.st_uid, made.st_gid, stat.S_IMODE(made.st_mode)) == (1000, 2000, 0o750)
    text = f"over NFSv4 at {uuid.uuid4()}\n"
    ganesha.write(f"{directory}/hello.txt", text)
    assert ganesha.read(f"{directory}/hello.txt") == text

    release_claim(kube, namespace)
    assert ganesha.list("/export/claims") == []


@pytest.mark.parametrize("on_delete", ["Archive", "Retain"])
def test_archive_renames_the_directory_and_retain_keeps_it(
    kube: Kube,
    namespace: str,
    backend_factory: Callable[..., str],
    ganesha: NfsGanesha,
    on_delete: str,
) -> None:
    name = backend_factory("nfs-keep", nfs_spec(ganesha.host.ip, onDelete=on_delete))
    scenario.wait_ready(kube, name)
    kube.apply(scenario.claim("data", name, "1Gi", "ReadWriteMany"), namespace)
    directory = claim_directory(kube, namespace, ganesha)
    ganesha.write(f"{directory}/kept.txt", "kept\n")

    release_claim(kube, namespace)
    kept = directory.name if on_delete == "Retain" else f"archived-{directory.name}"
    assert ganesha.list("/export/claims") == [kept]
    assert ganesha.read(f"/export/claims/{kept}/kept.txt") == "kept\n"


def test_a_missing_export_or_a_silent_server_is_not_ready_with_the_reason(
    kube: Kube,
    namespace: str,
    backend_factory: Callable[..., str],
    ganesha: NfsGanesha,
    test_hosts: TestHostFactory,
) -> None:
    missing = backend_factory("nfs-missing", nfs_spec(ganesha.host.ip, "/nope"))
    silent_host = test_hosts.one()  # nothing listens there
    silent = backend_factory("nfs-silent", nfs_spec(silent_host.ip))

    ready = wait_for_condition(kube, missing, "Ready", "MountFailed")
    print(f"\n{ready['message']}")
    assert ready["status"] == "False"
    assert f"{ganesha.host.ip} does not export /nope" in ready["message"]
    ready = wait_for_condition(kube, silent, "Ready", "MountFailed")
    print(ready["message"])
    silent_reason = "does not answer over NFS (nothing listens on port 2049: connection refused)"
    assert f"{silent_host.ip} {silent_reason}" in ready["message"]

    kube.apply(scenario.claim("data", missing, "1Gi", "ReadWriteMany"), namespace)
    kube.wait_for(
        "persistentvolumeclaim",
        "data",
        namespace,
        lambda _: bool(events_about(kube, namespace, "data", "ProvisioningFailed")),
        what="a ProvisioningFailed Event",
    )
    claim = kube.get("persistentvolumeclaim", "data", namespace)
    assert claim["status"]["phase"] == "Pending"  # no PV for a directory that could not be made
    kube.delete("persistentvolumeclaim", "data", namespace, wait=True)


def written_on_the_node(
    kube: Kube,
    namespace: str,
    node: VmNode | AnyNode,
    server: NfsGanesha,
    directory: PurePosixPath,
) -> str:
    """A pod on `node` writes 2 MiB to the claim `data`; they are read back the same on the
    server by another client (libnfs). The line of the pod's mount of /data, from
    /proc/mounts."""
    script = (
        "dd if=/dev/urandom of=/data/random bs=1M count=2 status=none"
        " && sha256sum /data/random | cut -d' ' -f1 && grep ' /data ' /proc/mounts"
    )
    writer = scenario.script_pod("writer", "data", settings().base_image, script)
    kube.apply(node.place(writer), namespace)
    digest, mount = finished_log(kube, namespace, "writer", timeout=300).strip().splitlines()
    on_server = server.read_bytes(f"{directory}/random")
    assert len(on_server) == 2 * 2**20
    assert hashlib.sha256(on_server).hexdigest() == digest
    return mount


def test_a_pod_writes_through_the_kubelets_nfs_mount_of_its_claim(
    kube: Kube,
    namespace: str,
    backend_factory: Callable[..., str],
    ganesha: NfsGanesha,
    kernel_node: VmNode | AnyNode,
) -> None:
    """The kubelet of a node with Debian's kernel mounts the claim (kernel NFS); 2 MiB
    written there are read back on the server by another client (libnfs)."""
    name = backend_factory("nfs-pod", nfs_spec(ganesha.host.ip))
    scenario.wait_ready(kube, name)
    kube.apply(scenario.claim("data", name, "1Gi", "ReadWriteMany"), namespace)
    directory = claim_directory(kube, namespace, ganesha)
    mount = written_on_the_node(kube, namespace, kernel_node, ganesha, directory)
    assert mount.split()[2].startswith("nfs"), mount  # the kernel's client, not a FUSE one

    kube.delete("pod", "writer", namespace, wait=True)
    release_claim(kube, namespace)
    assert ganesha.list("/export/claims") == []


def test_a_csi_claim_is_a_directory_on_the_server_mounted_by_the_nodes_kernel_and_released(
    kube: Kube,
    namespace: str,
    backend_factory: Callable[..., str],
    ganesha: NfsGanesha,
    kernel_node: VmNode | AnyNode,
) -> None:
    """Through stowage's CSI driver: the controller in the operator's pod makes the claim's
    directory on the server before the PV exists (libnfs), the node plugin on a node with
    Debian's kernel mounts it into the pod (kernel NFS, the PV's mount options), and deleting
    the claim deletes the directory on the server."""
    name = backend_factory("nfs-csi", nfs_spec(ganesha.host.ip, csi=True))
    scenario.wait_ready(kube, name)
    kube.apply(scenario.claim("data", name, "1Gi", "ReadWriteMany"), namespace)
    volume = scenario.bound_volume(kube, "data", namespace)
    assert volume["spec"]["csi"]["driver"] == "csi.stowage.io"
    assert "nfsvers=4.1" in volume["spec"]["mountOptions"]
    context = volume["spec"]["csi"]["volumeAttributes"]
    assert context["server"] == ganesha.host.ip
    directory = PurePosixPath(context["path"])
    assert ganesha.list("/export/claims") == [directory.name]  # made before any pod

    mount = written_on_the_node(kube, namespace, kernel_node, ganesha, directory)
    assert mount.split()[0] == f"{ganesha.host.ip}:{directory}"
    assert mount.split()[2] == "nfs4" and "vers=4.1" in mount.split()[3], mount

    release_claim(kube, namespace)
    assert ganesha.list("/export/claims") == []
