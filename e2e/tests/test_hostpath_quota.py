"""hostPath with provisioning.enforceQuota: true, end to end: the in-cluster operator and the
backend's helper on the node, a base path on a btrfs file system (a file on the node, loop
mounted by the test; the kernel's btrfs, nothing faked).

The helper makes each claim's directory a btrfs subvolume with a qgroup limit of the claim's
size before the PV exists; a pod writing beyond it gets "Disk quota exceeded"; Delete removes
the subvolume and its qgroup. A base path on another file system (the node's ext4) leaves the
claim Pending with a PreparationFailed Event saying why.
"""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest

from stowage.agent.btrfs import parse_root_id
from stowage_e2e import scenario
from stowage_e2e.btrfs_volumes import file_system_type, qgroup_limits, run
from stowage_e2e.helpers import (
    OVERFILL,
    finished_log,
    overfilled,
    release_claim,
    wait_for_event,
    wait_for_label,
)
from stowage_e2e.install import Images
from stowage_e2e.kube import Kube

pytestmark = pytest.mark.e2e

MIB = 2**20
SMALL_THEN_OVERFILL = "echo small > /data/small.txt && cat /data/small.txt\n" + OVERFILL


def quota_backend(base: Path) -> dict[str, object]:
    return {
        "hostPath": {"path": str(base)},
        "provisioning": {"basePath": "/claims", "enforceQuota": True},
    }


def test_a_claim_is_a_subvolume_limited_to_its_size_and_delete_removes_it(
    kube: Kube,
    namespace: str,
    btrfs_base: Path,
    backend_factory: Callable[..., str],
    stowage_images: Images,
) -> None:
    name = backend_factory("btrfs", quota_backend(btrfs_base))
    scenario.wait_ready(kube, name)
    wait_for_label(kube, name, "ready")  # the helper runs on the node

    kube.apply(scenario.claim("data", name, "10Mi"), namespace)
    pod = scenario.script_pod("writer", "data", stowage_images.operator, SMALL_THEN_OVERFILL)
    kube.apply(pod, namespace)
    log = finished_log(kube, namespace, "writer")
    assert "small\n" in log  # a small write goes in
    _, written, all_written = overfilled(log)
    assert not all_written and "Disk quota exceeded" in log
    assert 8 * MIB <= written <= 11 * MIB, f"{written} bytes got into a 10 MiB claim"

    volume = scenario.bound_volume(kube, "data", namespace)
    directory = Path(volume["spec"]["hostPath"]["path"])
    assert directory.parent == btrfs_base / "claims"
    assert (directory / "small.txt").read_text() == "small\n"
    root_id = parse_root_id(run("btrfs", "inspect-internal", "rootid", str(directory)))
    assert root_id > 5  # a subvolume of its own, not the file system's top level
    assert qgroup_limits(btrfs_base)[f"0/{root_id}"] == 10 * MIB
    print(f"\nsubvolume {root_id}: limit 10 MiB, {written} bytes written before EDQUOT")

    release_claim(kube, namespace)
    assert not directory.exists()
    assert f"0/{root_id}" not in qgroup_limits(btrfs_base)


def test_a_base_path_without_quota_leaves_the_claim_pending_with_the_reason(
    kube: Kube,
    namespace: str,
    backend_factory: Callable[..., str],
) -> None:
    plain = Path(tempfile.mkdtemp(prefix="stowage-no-quota-", dir="/var/tmp"))
    try:
        spec = {**quota_backend(plain), "storageClass": {"volumeBindingMode": "Immediate"}}
        name = backend_factory("noquota", spec)
        wait_for_label(kube, name, "ready")
        kube.apply(scenario.claim("data", name, "10Mi"), namespace)
        claim_kind = "persistentvolumeclaim"
        event = wait_for_event(kube, namespace, claim_kind, "data", "PreparationFailed")
        print(f"\n{event['message']}")
        fs_type = file_system_type(plain)
        assert f"{plain} is on {fs_type}, where stowage cannot limit" in event["message"]
        claim = kube.get(claim_kind, "data", namespace)
        assert claim["status"]["phase"] == "Pending"
        assert not list((plain / "claims").glob("*"))  # no unlimited directory either
        kube.delete(claim_kind, "data", namespace, wait=True)
    finally:
        subprocess.run(["rm", "-rf", str(plain)], check=False)
