"""GlusterFS end to end: three real Gluster servers, the in-cluster operator, its mount helper.

The helper (`stowage agent`, a privileged DaemonSet) mounts the volume through FUSE on the node,
labels the node, and makes each claim's directory; pods get `local` PVs below that mount.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from stowage.agent.mounting import server_of
from stowage.drivers.placement import rendezvous_order
from stowage.objects.helper_daemonset import helper_name
from stowage_e2e import scenario
from stowage_e2e.cluster import settings
from stowage_e2e.gluster import GLUSTERD_PORT, GlusterCluster, quota_pool
from stowage_e2e.helpers import (
    HELPERS_NAMESPACE,
    MOUNTS_DIR,
    OVERFILL,
    backend_events,
    claim_directory,
    events_about,
    finished_log,
    fuse_clients_of,
    mount_label_of,
    overfilled,
    release_claim,
    restart_helper,
    source_at,
    wait_for_label,
    wait_for_nodes,
)
from stowage_e2e.hosts import TestHost
from stowage_e2e.install import Images
from stowage_e2e.kube import Kube
from stowage_e2e.node_shell import NodeShell, mount_source_on
from stowage_e2e.vm_nodes import VmNode

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def gluster(cluster: object) -> Iterator[GlusterCluster]:
    """One replica-3 Gluster pool with quota for the module; each test has its own backend."""
    with quota_pool(3) as pool:
        yield pool


@pytest.fixture
def new_backend(backend_factory: Callable[..., str], gluster: GlusterCluster) -> Callable[..., str]:
    """Creates StorageBackends of the Gluster pool (each with its own helper and mount)."""

    def create(volume: str | None = None, **more: Any) -> str:
        spec: dict[str, Any] = {
            "glusterfs": {
                "hosts": [host.ip for host in gluster.hosts],
                "volume": volume or gluster.volume,
            },
            **more,
        }
        return backend_factory("gluster", spec)

    return create


@pytest.fixture
def gluster_backend(new_backend: Callable[..., str]) -> str:
    return new_backend()


def test_a_pod_writes_through_the_helper_mount_and_every_brick_has_the_file(
    kube: Kube,
    namespace: str,
    gluster: GlusterCluster,
    gluster_backend: str,
    stowage_images: Images,
) -> None:
    name = gluster_backend
    scenario.wait_ready(kube, name)
    wait_for_label(kube, name, "ready")
    assert source_at(MOUNTS_DIR / name) is not None

    kube.apply(scenario.claim("data", name, "1Gi", "ReadWriteMany"), namespace)
    text = f"through gluster {uuid.uuid4()}"
    kube.apply(scenario.writer_pod("writer", "data", stowage_images.operator, text), namespace)
    finished = kube.wait_for_pod_phase("writer", namespace, timeout=180)
    assert finished["status"]["phase"] == "Succeeded", finished["status"]
    assert kube.logs("writer", namespace).strip() == text

    relative = claim_directory(kube, namespace, name)
    for host in gluster.hosts:
        on_brick = gluster.brick(host) / relative / "hello.txt"
        assert on_brick.read_text().strip() == text, f"brick of {host.name}"

    release_claim(kube, namespace)
    kube.delete("storagebackend", name, wait=True)
    # The helper saw its backend go: unmounted, node label removed.
    wait_for_label(kube, name, None, timeout=60)
    assert source_at(MOUNTS_DIR / name) is None


def first_choice(gluster: GlusterCluster) -> tuple[TestHost, TestHost]:
    """The node's first and second server in the helper's failover order."""
    order = rendezvous_order(settings().node_name, [host.ip for host in gluster.hosts])
    by_ip = {host.ip: host for host in gluster.hosts}
    return by_ip[order[0]], by_ip[order[1]]


def assert_failed_over(
    kube: Kube, gluster: GlusterCluster, backend: str, dead: TestHost, serving: TestHost, how: str
) -> None:
    wait_for_label(kube, backend, "ready")
    source = source_at(MOUNTS_DIR / backend)
    assert source is not None and server_of("glusterfs", source) == serving.ip
    (failed_over,) = backend_events(kube, backend, "MountFailedOver")
    print(f"\n{failed_over['message']}")
    assert f"{dead.ip}:/{gluster.volume}: {how}" in failed_over["message"]
    # The helper's metrics file on the node (node-exporter's textfile collector reads it).
    metrics = (Path("/var/lib/stowage/metrics") / f"{backend}.prom").read_text()
    assert f'stowage_agent_mounted{{backend="{backend}",server="{serving.ip}"}} 1.0' in metrics
    assert f'stowage_agent_failovers_total{{backend="{backend}"}} 1.0' in metrics


def test_the_helper_mounts_through_the_next_server_when_the_first_is_black_holed(
    kube: Kube, gluster: GlusterCluster, new_backend: Callable[..., str]
) -> None:
    first, second = first_choice(gluster)
    first.cut_off()  # packets dropped: an unbounded connect would hang for minutes
    try:
        assert_failed_over(kube, gluster, new_backend(), first, second, "timeout")
    finally:
        first.restore()


def test_the_helper_moves_on_at_once_from_a_refusing_server(
    kube: Kube, gluster: GlusterCluster, new_backend: Callable[..., str]
) -> None:
    first, second = first_choice(gluster)
    first.refuse(GLUSTERD_PORT)  # what a stopped glusterd answers: connection refused
    try:
        assert_failed_over(kube, gluster, new_backend(), first, second, "refused")
    finally:
        first.allow(GLUSTERD_PORT)


def test_a_stale_mount_is_noticed_and_mounted_again(
    kube: Kube, kubeconfig: Path, gluster_backend: str
) -> None:
    name = gluster_backend
    wait_for_label(kube, name, "ready")
    mount_point = MOUNTS_DIR / name
    (mount_point / "before.txt").write_text("written before the client died\n")
    labels = subprocess.Popen(
        [
            "kubectl",
            "--kubeconfig",
            str(kubeconfig),
            "get",
            "node",
            settings().node_name,
            "--watch",
            "--output",
            f'jsonpath={{.metadata.labels.mount\\.stowage\\.io/{name}}}{{"\\n"}}',
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        (client,) = fuse_clients_of(mount_point)
        os.kill(client, signal.SIGKILL)  # the mount is left: ENOTCONN on every access
        kube.wait_for(
            "storagebackend",
            name,
            None,
            lambda _: bool(backend_events(kube, name, "MountStale")),
            timeout=120,
            what="a MountStale event",
        )
        wait_for_label(kube, name, "ready", timeout=120)
        assert (mount_point / "before.txt").read_text() == "written before the client died\n"
        assert fuse_clients_of(mount_point) and fuse_clients_of(mount_point) != [client]
    finally:
        labels.terminate()
    seen = [value for value in labels.communicate(timeout=10)[0].split() if value]
    assert "failed" in seen, f"the node label went {seen}"
    assert seen[-1] == "ready", seen


# Writes and reads back 1 MiB files for 45 s; any I/O error or mismatch fails the pod.
CHECKED_IO = """
set -eu
end=$(( $(date +%s) + 45 )); rounds=0
while [ "$(date +%s)" -lt "$end" ]; do
  head -c 1048576 /dev/urandom > /data/block.$rounds
  sum=$(md5sum < /data/block.$rounds)
  cp /data/block.$rounds /data/copy.$rounds
  [ "$(md5sum < /data/copy.$rounds)" = "$sum" ] || { echo "mismatch in round $rounds"; exit 1; }
  rm /data/block.$rounds /data/copy.$rounds
  rounds=$((rounds + 1))
done
head -c 1048576 /dev/urandom > /data/final
echo "rounds without an error: $rounds; final $(md5sum < /data/final | cut -d' ' -f1)"
"""


def test_a_helper_restart_leaves_the_mount_and_the_workload_alone(
    kube: Kube, namespace: str, gluster_backend: str, stowage_images: Images
) -> None:
    name = gluster_backend
    wait_for_label(kube, name, "ready")
    mount_point = MOUNTS_DIR / name
    clients = fuse_clients_of(mount_point)
    assert clients
    kube.apply(scenario.claim("data", name, "1Gi", "ReadWriteMany"), namespace)
    kube.apply(scenario.script_pod("io", "data", stowage_images.operator, CHECKED_IO), namespace)
    kube.wait_for_pod_phase("io", namespace, phases=("Running",), timeout=180)

    restart_helper(kube, name)

    finished = kube.wait_for_pod_phase("io", namespace, timeout=120)
    log = kube.logs("io", namespace)
    assert finished["status"]["phase"] == "Succeeded", log
    assert "rounds without an error" in log
    assert fuse_clients_of(mount_point) == clients, "the new helper mounted again"
    assert not backend_events(kube, name, "MountNotDetached")
    kube.delete("pod", "io", namespace, wait=True)
    kube.delete("persistentvolumeclaim", "data", namespace, wait=True)


@pytest.mark.parametrize("on_delete", ["Delete", "Retain", "Archive"])
def test_a_released_claims_directory_is_deleted_kept_or_archived(
    kube: Kube,
    namespace: str,
    gluster: GlusterCluster,
    new_backend: Callable[..., str],
    stowage_images: Images,
    on_delete: str,
) -> None:
    name = new_backend(provisioning={"onDelete": on_delete})
    wait_for_label(kube, name, "ready")
    kube.apply(scenario.claim("data", name, "1Gi", "ReadWriteMany"), namespace)
    text = f"kept or not {uuid.uuid4()}"
    kube.apply(scenario.writer_pod("writer", "data", stowage_images.operator, text), namespace)
    finished = kube.wait_for_pod_phase("writer", namespace, timeout=180)
    assert finished["status"]["phase"] == "Succeeded", finished["status"]
    relative = claim_directory(kube, namespace, name)
    directory = gluster.brick(gluster.hosts[0]) / relative
    neighbour = MOUNTS_DIR / name / relative.parent / f"another-claim-{on_delete.lower()}"
    neighbour.mkdir()  # through the mount, as another claim's directory would be made
    assert (directory / "hello.txt").read_text().strip() == text

    release_claim(kube, namespace)

    archived = directory.parent / f"archived-{directory.name}"
    kept = {"Delete": None, "Retain": directory, "Archive": archived}[on_delete]
    for candidate in (directory, archived):
        assert candidate.exists() == (candidate == kept), f"{candidate} after {on_delete}"
    if kept is not None:
        assert (kept / "hello.txt").read_text().strip() == text
    assert neighbour.is_dir()


def test_a_server_going_down_while_a_pod_writes_costs_no_write(
    kube: Kube,
    namespace: str,
    gluster: GlusterCluster,
    gluster_backend: str,
    stowage_images: Images,
) -> None:
    name = gluster_backend
    wait_for_label(kube, name, "ready")
    source = source_at(MOUNTS_DIR / name)
    assert source is not None
    (down,) = [host for host in gluster.hosts if host.ip == server_of("glusterfs", source)]
    kube.apply(scenario.claim("data", name, "1Gi", "ReadWriteMany"), namespace)
    kube.apply(scenario.script_pod("io", "data", stowage_images.operator, CHECKED_IO), namespace)
    kube.wait_for_pod_phase("io", namespace, phases=("Running",), timeout=180)
    time.sleep(5)
    gluster.stop_host(down)  # the server the node mounted from: glusterd and its brick
    try:
        finished = kube.wait_for_pod_phase("io", namespace, timeout=180)
        log = kube.logs("io", namespace)
        assert finished["status"]["phase"] == "Succeeded", log
        assert mount_label_of(kube, name) == "ready"
    finally:
        gluster.start_host(down)
    final_sum = log.split("final ")[1].strip()
    relative = claim_directory(kube, namespace, name)
    survivors = [host for host in gluster.hosts if host != down]
    for host in survivors:
        assert md5_of(gluster.brick(host) / relative / "final") == final_sum, host.name
    # Back up, the server is healed to the same content.
    gluster.heal()
    deadline = time.monotonic() + 120
    missed = gluster.brick(down) / relative / "final"
    while not (missed.exists() and md5_of(missed) == final_sum):
        assert time.monotonic() < deadline, f"{down.name} not healed"
        time.sleep(2)
    kube.delete("pod", "io", namespace, wait=True)
    kube.delete("persistentvolumeclaim", "data", namespace, wait=True)


def md5_of(path: Path) -> str:
    return hashlib.md5(path.read_bytes(), usedforsecurity=False).hexdigest()


# Claims provisioned before any pod uses them (the default waits for the first consumer).
IMMEDIATE: dict[str, Any] = {"storageClass": {"volumeBindingMode": "Immediate"}}


def assert_owner_cannot_overfill(kube: Kube, namespace: str, pod: str, images: Images) -> None:
    """A pod as the directory's owner (1000:2000) sees the 10 MiB claim `data` in df, and the
    quota stops its 20 MiB write."""
    script_pod = scenario.script_pod(pod, "data", images.operator, OVERFILL)
    script_pod["spec"]["securityContext"] = {"runAsUser": 1000, "runAsGroup": 2000}
    kube.apply(script_pod, namespace)
    log = finished_log(kube, namespace, pod)
    size_kib, written, all_written = overfilled(log)
    assert size_kib == 10240  # df in the pod shows the claim's size
    assert not all_written and "Disk quota exceeded" in log
    assert written < 16 * 2**20, f"{written} bytes got into a 10 MiB claim"


def test_a_claim_gets_its_own_directory_first_and_cannot_write_beyond_its_size(
    kube: Kube,
    namespace: str,
    gluster: GlusterCluster,
    new_backend: Callable[..., str],
    stowage_images: Images,
) -> None:
    name = new_backend(
        provisioning={"directoryMode": "2770", "directoryOwner": {"uid": 1000, "gid": 2000}},
        **IMMEDIATE,
    )
    wait_for_label(kube, name, "ready")
    kube.apply(scenario.claim("data", name, "10Mi", "ReadWriteMany"), namespace)
    volume = scenario.bound_volume(kube, "data", namespace)
    relative = claim_directory(kube, namespace, name)
    made = (gluster.brick(gluster.hosts[0]) / relative).stat()
    assert (made.st_mode & 0o7777, made.st_uid, made.st_gid) == (0o2770, 1000, 2000)
    created = datetime.fromisoformat(volume["metadata"]["creationTimestamp"]).timestamp()
    assert int(made.st_mtime) <= created, "the directory was made after its PV"

    assert_owner_cannot_overfill(kube, namespace, "overfill", stowage_images)
    kube.delete("pod", "overfill", namespace, wait=True)
    kube.delete("persistentvolumeclaim", "data", namespace, wait=True)


def test_a_csi_claim_is_a_directory_of_the_helpers_mount_limited_to_its_size_and_released(
    kube: Kube,
    namespace: str,
    gluster: GlusterCluster,
    new_backend: Callable[..., str],
    stowage_images: Images,
) -> None:
    """Through stowage's CSI driver: the helpers keep the Gluster volume mounted and label
    their nodes; the PV requires that label, the node plugin makes the claim's directory in
    the mount with the backend's mode, owner and a quota of the claim's size when the first
    pod uses it, and deleting the claim deletes it on every brick."""
    owner = {"directoryMode": "2770", "directoryOwner": {"uid": 1000, "gid": 2000}}
    name = new_backend(provisioning={"csi": True, **owner})
    scenario.wait_ready(kube, name)
    wait_for_label(kube, name, "ready")
    kube.apply(scenario.claim("data", name, "10Mi", "ReadWriteMany"), namespace)
    assert_owner_cannot_overfill(kube, namespace, "writer", stowage_images)

    volume = scenario.bound_volume(kube, "data", namespace)
    assert volume["spec"]["csi"]["driver"] == "csi.stowage.io"
    (term,) = volume["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"]
    assert term["matchExpressions"] == [
        {"key": f"mount.stowage.io/{name}", "operator": "In", "values": ["ready"]}
    ]
    relative = claim_directory(kube, namespace, name)
    for host in gluster.hosts:
        made = (gluster.brick(host) / relative).stat()
        assert (made.st_mode & 0o7777, made.st_uid, made.st_gid) == (0o2770, 1000, 2000)
        assert (gluster.brick(host) / relative / "big").exists(), f"brick of {host.name}"

    release_claim(kube, namespace)
    for host in gluster.hosts:
        assert not (gluster.brick(host) / relative).exists(), f"brick of {host.name}"


def test_a_volume_without_quota_leaves_the_claim_pending_with_the_reason(
    kube: Kube, namespace: str, gluster: GlusterCluster, new_backend: Callable[..., str]
) -> None:
    gluster.create_volume("noquota")
    name = new_backend(volume="noquota", **IMMEDIATE)
    wait_for_label(kube, name, "ready")
    kube.apply(scenario.claim("data", name, "10Mi", "ReadWriteMany"), namespace)
    claim = kube.wait_for(
        "persistentvolumeclaim",
        "data",
        namespace,
        lambda _: bool(events_about(kube, namespace, "data", "PreparationFailed")),
        timeout=120,
        what="a PreparationFailed Event on the claim",
    )
    (failed,) = events_about(kube, namespace, "data", "PreparationFailed")
    print(f"\n{failed['message']}")
    assert "gluster volume quota noquota enable" in failed["message"]
    assert claim["status"]["phase"] == "Pending"
    kube.delete("persistentvolumeclaim", "data", namespace, wait=True)


def test_each_node_mounts_from_its_assigned_server_and_a_cut_off_node_alone_goes_failed(
    kube: Kube,
    namespace: str,
    gluster: GlusterCluster,
    two_vm_nodes: tuple[VmNode, VmNode],
    node_shell_of: Callable[[VmNode], NodeShell],
    new_backend: Callable[..., str],
) -> None:
    """The helper on this machine's node and on both VM nodes. One VM node cut off its three
    servers goes `failed` alone: pods of the claim are not scheduled there, the other VM node
    keeps serving; once reconnected it mounts again. (A lost node: test_nas_node_loss.py.)"""
    cut, other = two_vm_nodes
    this_node = settings().node_name
    name = new_backend(mount={"tolerations": [cut.toleration]}, **IMMEDIATE)
    mount_point = str(MOUNTS_DIR / name)
    for node in (this_node, cut.name, other.name):
        wait_for_label(kube, name, "ready", node=node)
    sources = {
        this_node: source_at(MOUNTS_DIR / name),
        **{vm.name: mount_source_on(node_shell_of(vm), mount_point) for vm in two_vm_nodes},
    }
    servers = {node: server_of("glusterfs", source or "") for node, source in sources.items()}
    print(f"\nfirst servers: {servers}")
    # Each node mounts from the first server of its order in the operator's balanced assignment.
    order = kube.get("configmap", helper_name(name), HELPERS_NAMESPACE)["data"]
    assert servers == {node: order[node].split(",")[0] for node in servers}, order
    assert len(set(servers.values())) >= 2, "three nodes on one server: not balanced"

    kube.apply(scenario.claim("data", name, "1Gi", "ReadWriteMany"), namespace)
    address = cut.address(kube)
    for host in gluster.hosts:
        host.cut_off_from(address)
    try:
        wait_for_label(kube, name, "failed", node=cut.name, timeout=420)
        state = wait_for_nodes(kube, name, {"mounted": 2, "failed": 1, "lost": 0})
        assert state["reason"] == "MountFailed" and cut.name in state["message"], state
        kube.apply(cut.place(scenario.writer_pod("on-cut", "data", settings().base_image, "x")),
                   namespace)  # fmt: skip
        kube.apply(
            other.place(scenario.writer_pod("on-other", "data", settings().base_image, "vm")),
            namespace,
        )
        finished = kube.wait_for_pod_phase("on-other", namespace, timeout=300)
        assert finished["status"]["phase"] == "Succeeded", finished["status"]
        written = gluster.brick(gluster.hosts[0]) / claim_directory(kube, namespace, name)
        assert (written / "hello.txt").read_text() == "vm\n"
        stuck = kube.get("pod", "on-cut", namespace)
        assert stuck["status"]["phase"] == "Pending", stuck["status"]
        (unschedulable,) = [c for c in stuck["status"]["conditions"] if c["type"] == "PodScheduled"]
        assert "didn't match PersistentVolume's node affinity" in unschedulable["message"], (
            unschedulable
        )
        kube.delete("pod", "on-cut", namespace, wait=True)
    finally:
        for host in gluster.hosts:
            host.reconnect(address)
    wait_for_label(kube, name, "ready", node=cut.name, timeout=420)  # mounted again

    assert wait_for_nodes(kube, name, {"mounted": 3, "failed": 0, "lost": 0})["status"] == "False"
    kube.delete("pod", "on-other", namespace, wait=True)
    kube.delete("persistentvolumeclaim", "data", namespace, wait=True)
