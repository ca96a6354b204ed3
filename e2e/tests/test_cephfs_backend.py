"""CephFS end to end: a real one-node Ceph 16 on a test host, the in-cluster operator, its helper.

The helper (`stowage agent`) mounts the file system with ceph-fuse (this kernel has no ceph
module) as a user whose key comes from the backend's Secret, labels the node, and makes each
claim's directory with `ceph.quota.max_bytes`; pods get `local` PVs below that mount. The test
looks at CephFS through a ceph-fuse mount of its own, as another client of the cluster.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from stowage_e2e import hosts, scenario
from stowage_e2e.ceph import CephCluster
from stowage_e2e.helpers import (
    MOUNTS_DIR,
    assert_secret_nowhere,
    backend_events,
    claim_directory,
    finished_log,
    fuse_clients_of,
    release_claim,
    restart_helper,
    source_at,
    wait_for_condition,
    wait_for_label,
)
from stowage_e2e.install import Images
from stowage_e2e.kube import Kube

pytestmark = pytest.mark.e2e

MiB = 1024**2
HELPER_USER = "stowage-helper"  # the user the backend's Secret names (caps: rwp on the fs)
CHECK_USER = "e2e-check"  # the test's own view of CephFS
QUOTA = 12 * MiB


@pytest.fixture(scope="module")
def ceph(cluster: object) -> Iterator[CephCluster]:
    """One Ceph cluster for the module, on a test host of its own."""
    host = hosts.create_host()
    try:
        started = CephCluster.start(host)
        try:
            yield started
        finally:
            started.stop()
    finally:
        hosts.remove_host(host)


@pytest.fixture(scope="module")
def cephfs_root(ceph: CephCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The whole CephFS, mounted here by ceph-fuse as a client of the test's own."""
    keyring = ceph.client_keyring(CHECK_USER)
    with ceph.fuse_mount(tmp_path_factory.mktemp("cephfs") / "root", CHECK_USER, keyring) as root:
        yield root


@pytest.fixture
def new_backend(
    ceph: CephCluster, secret_backend_factory: Callable[..., str]
) -> Callable[..., str]:
    """Creates cephfs StorageBackends (each with its Secret, helper and mount)."""

    def create(key: str, csi: bool = False) -> str:
        def spec_of(secret: dict[str, str]) -> dict[str, Any]:
            return {
                "cephfs": {
                    "monitors": [ceph.mon_address],
                    "fsName": ceph.fs_name,
                    "userSecretRef": secret,
                },
                "provisioning": {"basePath": "/k8s", "onDelete": "Delete", "csi": csi},
                "storageClass": {"volumeBindingMode": "Immediate"},
            }

        return secret_backend_factory("cephfs", {"userID": HELPER_USER, "userKey": key}, spec_of)

    return create


# As the claim's owner: a file, how big the volume looks, then 30 MiB into a 12 MiB claim.
WRITE_AND_OVERFILL = """
echo "{text}" > /data/hello.txt && cat /data/hello.txt
df -k /data | tail -1 | awk '{{print "size_kib=" $2}}'
dd if=/dev/zero of=/data/big bs=1M count=30 oflag=sync 2>/tmp/dd.err && echo "wrote 30 MiB"
cat /tmp/dd.err
echo "written=$(stat -c %s /data/big)"
"""


def write_beyond_the_quota(kube: Kube, namespace: str, images: Images, in_cephfs: Path) -> str:
    """A pod writes a file and then 30 MiB into the 12 MiB claim `data`, whose directory is
    `in_cephfs` to the test's own client; what the file says."""
    text = f"through ceph-fuse {uuid.uuid4()}"
    script = WRITE_AND_OVERFILL.format(text=text)
    kube.apply(scenario.script_pod("writer", "data", images.operator, script), namespace)
    log = finished_log(kube, namespace, "writer")
    assert log.splitlines()[0] == text
    assert (in_cephfs / "hello.txt").read_text().strip() == text  # another client sees it
    # The helper's one ceph-fuse serves the whole file system, so df shows the file system's
    # size, not the claim's (ceph-fuse 16 reports the quota of its mount root only).
    size_kib = int(log.split("size_kib=")[1].split()[0])
    assert size_kib * 1024 > QUOTA
    # Writes beyond the quota fail; CephFS quotas are approximate (the client learns the usage
    # from the MDS), so some data may get past the limit, but never twice the claim.
    assert "wrote 30 MiB" not in log and "Disk quota exceeded" in log
    written = int(log.split("written=")[1].split()[0])
    # Refused at the write that would pass the quota (the usage counts hello.txt too).
    assert QUOTA - MiB <= written < 2 * QUOTA, written
    assert (in_cephfs / "big").stat().st_size == written
    return text


def test_a_claim_is_a_directory_with_a_quota_in_cephfs_and_goes_with_delete(
    kube: Kube,
    namespace: str,
    ceph: CephCluster,
    cephfs_root: Path,
    new_backend: Callable[..., str],
    stowage_images: Images,
) -> None:
    key = ceph.client_key(HELPER_USER)
    name = new_backend(key)
    scenario.wait_ready(kube, name)
    wait_for_label(kube, name, "ready")
    mount_point = MOUNTS_DIR / name
    assert source_at(mount_point) == "ceph-fuse"
    (client,) = fuse_clients_of(mount_point)
    command_line = Path(f"/proc/{client}/cmdline").read_bytes().decode()
    assert key not in command_line, "the key is on ceph-fuse's command line"

    kube.apply(scenario.claim("data", name, "12Mi", "ReadWriteMany"), namespace)
    relative = claim_directory(kube, namespace, name)
    in_cephfs = cephfs_root / relative
    assert in_cephfs.is_dir()
    assert int(os.getxattr(in_cephfs, "ceph.quota.max_bytes")) == QUOTA

    text = write_beyond_the_quota(kube, namespace, stowage_images, in_cephfs)

    # A helper restart leaves ceph-fuse (and so every pod's mount) alone.
    restart_helper(kube, name)
    assert fuse_clients_of(mount_point) == [client], "the new helper mounted again"
    assert (mount_point / relative / "hello.txt").read_text().strip() == text
    assert not backend_events(kube, name, "MountNotDetached")

    volume = scenario.bound_volume(kube, "data", namespace)["metadata"]["name"]
    kube.delete("pod", "writer", namespace, wait=True)
    kube.delete("persistentvolumeclaim", "data", namespace, wait=True)
    kube.text("wait", "--for=delete", f"persistentvolume/{volume}", "--timeout=90s")
    assert not in_cephfs.exists(), "Delete left the claim's directory in CephFS"
    assert (cephfs_root / relative.parent).is_dir()

    assert_secret_nowhere(kube, name, key, "the Ceph key")
    kube.delete("storagebackend", name, wait=True)
    wait_for_label(kube, name, None, timeout=60)
    assert source_at(mount_point) is None
    assert not fuse_clients_of(mount_point)


def test_a_wrong_key_is_a_failed_mount_with_the_reason(
    kube: Kube, namespace: str, ceph: CephCluster, new_backend: Callable[..., str]
) -> None:
    ceph.client_key(HELPER_USER)  # the user exists; the Secret holds another key
    wrong = subprocess.run(
        ["ceph-authtool", "--gen-print-key"], capture_output=True, text=True, check=True
    ).stdout.strip()
    name = new_backend(wrong)
    wait_for_label(kube, name, "failed", timeout=120)
    (failed, *_) = backend_events(kube, name, "MountFailed")
    print(f"\n{failed['message']}")
    assert f"the Ceph monitors refused client.{HELPER_USER}: wrong userKey" in failed["message"]
    assert wrong not in failed["message"]
    degraded = wait_for_condition(kube, name, "Degraded", "MountFailed")
    print(degraded)
    assert_secret_nowhere(kube, name, wrong, "the Ceph key")


def test_a_csi_claim_is_a_directory_with_a_quota_in_cephfs_and_goes_with_delete(
    kube: Kube,
    namespace: str,
    ceph: CephCluster,
    cephfs_root: Path,
    new_backend: Callable[..., str],
    stowage_images: Images,
) -> None:
    """Through stowage's CSI driver: the node plugin makes the claim's directory in the
    helper's ceph-fuse mount with `ceph.quota.max_bytes` at the first publish, and deleting
    the claim deletes it in CephFS."""
    key = ceph.client_key(HELPER_USER)
    name = new_backend(key, csi=True)
    scenario.wait_ready(kube, name)
    wait_for_label(kube, name, "ready")
    kube.apply(scenario.claim("data", name, "12Mi", "ReadWriteMany"), namespace)
    volume = scenario.bound_volume(kube, "data", namespace)
    assert volume["spec"]["csi"]["driver"] == "csi.stowage.io"
    (term,) = volume["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"]
    assert term["matchExpressions"] == [
        {"key": f"mount.stowage.io/{name}", "operator": "In", "values": ["ready"]}
    ]
    in_cephfs = cephfs_root / claim_directory(kube, namespace, name)
    write_beyond_the_quota(kube, namespace, stowage_images, in_cephfs)
    assert int(os.getxattr(in_cephfs, "ceph.quota.max_bytes")) == QUOTA

    release_claim(kube, namespace)
    assert not in_cephfs.exists(), "Delete left the claim's directory in CephFS"
    assert in_cephfs.parent.is_dir()
    assert_secret_nowhere(kube, name, key, "the Ceph key")
