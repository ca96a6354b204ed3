"""RBD end to end: a real one-node Ceph 16 on a test host, the in-cluster operator, its helper.

For each claim the helper on the chosen node creates an RBD image (`rbd create`, as the user of
the backend's Secret), attaches it as a block device and mounts its file system below
/var/lib/stowage/volumes; pods get a `local` PV of that mount. Where the node's kernel has the
rbd module (the VM node, Debian's kernel) the image is attached with `rbd map`; this machine's
kernel has none, so there the path is rbd-fuse (one per backend and node, showing the pool's
images as files) plus a loop device. The tests look at the pool through the cluster's admin
(`rbd info`).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from stowage_e2e import hosts, scenario
from stowage_e2e.ceph import RBD_CLIENT_CAPS, CephCluster
from stowage_e2e.cluster import settings
from stowage_e2e.helpers import (
    MOUNTS_DIR,
    backend_events,
    ceph_user_secret,
    fuse_clients_of,
    remove_backends,
    restart_helper,
    source_at,
    wait_for_label,
)
from stowage_e2e.install import Images
from stowage_e2e.kube import Kube
from stowage_e2e.node_shell import NodeShell, mount_source_on, output
from stowage_e2e.vm_nodes import AnyNode, VmNode

pytestmark = pytest.mark.e2e

MiB = 1024**2
HELPER_USER = "stowage-rbd"  # the user the backend's Secret names (caps: profile rbd)
POOL = "rbd"


@pytest.fixture(scope="module")
def ceph(cluster: object) -> Iterator[CephCluster]:
    """One Ceph cluster with an RBD pool for the module, on a test host of its own."""
    host = hosts.create_host()
    try:
        started = CephCluster.start(host)
        try:
            started.create_rbd_pool(POOL)
            yield started
        finally:
            started.stop()
    finally:
        hosts.remove_host(host)


@pytest.fixture
def new_backend(
    kube: Kube, namespace: str, ceph: CephCluster, stowage_installed: Images
) -> Iterator[Callable[..., str]]:
    """Creates rbd StorageBackends (each with its Secret and helper)."""
    created: list[str] = []

    def create(**more: Any) -> str:
        name = f"rbd-{uuid.uuid4().hex[:6]}"
        key = ceph.client_key(HELPER_USER, RBD_CLIENT_CAPS)
        kube.apply(ceph_user_secret(name, HELPER_USER, key), namespace)
        spec: dict[str, Any] = {
            "rbd": {
                "monitors": [ceph.mon_address],
                "pool": POOL,
                "userSecretRef": {"name": name, "namespace": namespace},
            },
            "provisioning": {"onDelete": "Delete"},
            **more,
        }
        kube.apply(scenario.storage_backend(name, spec))
        created.append(name)
        return name

    yield create
    remove_backends(kube, namespace, created)


WRITE = """
echo "{text}" > /data/hello.txt && sync && cat /data/hello.txt
df -k /data | tail -1 | awk '{{print "size_kib=" $2}}'
sleep 3600
"""


def wait_for_log(kube: Kube, namespace: str, pod: str, wanted: str, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while True:
        log = kube.logs(pod, namespace)
        if wanted in log or time.monotonic() > deadline:
            return log
        time.sleep(1)


def image_info(ceph: CephCluster, image: str) -> dict[str, Any] | None:
    try:
        info: dict[str, Any] = json.loads(ceph.rbd("info", f"{POOL}/{image}", "--format", "json"))
    except Exception:
        return None
    return info


def test_a_claim_is_an_image_mounted_through_rbd_fuse_and_a_loop_and_goes_with_delete(
    kube: Kube,
    namespace: str,
    ceph: CephCluster,
    new_backend: Callable[..., str],
    stowage_images: Images,
) -> None:
    name = new_backend()
    scenario.wait_ready(kube, name)
    wait_for_label(kube, name, "ready")

    kube.apply(scenario.claim("data", name, "20Mi"), namespace)
    text = f"through rbd-fuse {uuid.uuid4()}"
    pod = scenario.script_pod("writer", "data", stowage_images.operator, WRITE.format(text=text))
    kube.apply(pod, namespace)
    volume = scenario.bound_volume(kube, "data", namespace)
    annotations = volume["metadata"]["annotations"]
    image = annotations["stowage.io/block-volume"]
    path = Path(volume["spec"]["local"]["path"])
    kube.wait_for_pod_phase("writer", namespace, phases=("Running",), timeout=180)
    log = wait_for_log(kube, namespace, "writer", "size_kib=")
    print(f"\n{log}")
    assert log.splitlines()[0] == text

    # The image is in the pool with the claim's size; the node mounts it from a loop device
    # whose file rbd-fuse serves.
    info = image_info(ceph, image)
    assert info is not None and info["size"] == 20 * MiB
    fuse_mount = MOUNTS_DIR / name
    assert source_at(fuse_mount) == "rbd-fuse"
    (client,) = fuse_clients_of(fuse_mount)
    assert (source_at(path) or "").startswith("/dev/loop")
    assert (path / "hello.txt").read_text().strip() == text

    # A helper restart leaves rbd-fuse, the loop and the mount (and so the pod's data) alone.
    restart_helper(kube, name)
    assert fuse_clients_of(fuse_mount) == [client], "the new helper started rbd-fuse again"
    read = kube.text("--namespace", namespace, "exec", "writer", "--", "cat", "/data/hello.txt")
    assert read.strip() == text
    assert not backend_events(kube, name, "MountNotDetached")

    kube.delete("pod", "writer", namespace, wait=True)
    kube.delete("persistentvolumeclaim", "data", namespace, wait=True)
    kube.text("wait", "--for=delete", f"persistentvolume/{volume['metadata']['name']}",
              "--timeout=90s")  # fmt: skip
    assert image_info(ceph, image) is None, "Delete left the image in the pool"
    assert source_at(path) is None


def test_on_a_kernel_with_rbd_a_claim_is_a_mapped_image_and_goes_with_delete(
    kube: Kube,
    namespace: str,
    ceph: CephCluster,
    new_backend: Callable[..., str],
    kernel_node: VmNode | AnyNode,
    kernel_node_shell: NodeShell,
) -> None:
    name = new_backend(mount=kernel_node.mount_settings())
    scenario.wait_ready(kube, name)
    wait_for_label(kube, name, "ready", node=kernel_node.name)

    kube.apply(scenario.claim("data", name, "20Mi"), namespace)
    text = f"through rbd map {uuid.uuid4()}"
    pod = scenario.script_pod("writer", "data", settings().base_image, WRITE.format(text=text))
    kube.apply(kernel_node.place(pod), namespace)
    volume = scenario.bound_volume(kube, "data", namespace)
    image = volume["metadata"]["annotations"]["stowage.io/block-volume"]
    path = volume["spec"]["local"]["path"]
    kube.wait_for_pod_phase("writer", namespace, phases=("Running",), timeout=300)
    log = wait_for_log(kube, namespace, "writer", "size_kib=", timeout=120)
    print(f"\n{log}")
    assert log.splitlines()[0] == text

    # The kernel's rbd device of the image holds the mount; no rbd-fuse on that node.
    info = image_info(ceph, image)
    assert info is not None and info["size"] == 20 * MiB
    device = mount_source_on(kernel_node_shell, path) or ""
    assert device.startswith("/dev/rbd"), device
    rbd_id = device.removeprefix("/dev/rbd")
    assert output(kernel_node_shell, "cat", f"/sys/bus/rbd/devices/{rbd_id}/name").strip() == image
    assert mount_source_on(kernel_node_shell, str(MOUNTS_DIR / name)) is None
    assert output(kernel_node_shell, "cat", f"{path}/hello.txt").strip() == text

    kube.delete("pod", "writer", namespace, wait=True)
    kube.delete("persistentvolumeclaim", "data", namespace, wait=True)
    kube.text("wait", "--for=delete", f"persistentvolume/{volume['metadata']['name']}",
              "--timeout=120s")  # fmt: skip
    assert image_info(ceph, image) is None, "Delete left the image in the pool"
    assert mount_source_on(kernel_node_shell, path) is None
    assert output(kernel_node_shell, "ls", "/sys/bus/rbd/devices").split() == []
