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
import uuid
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from pathlib import Path

import pytest

from stowage.agent.btrfs import parse_root_id
from stowage.drivers.base import NODE_ANNOTATION
from stowage.drivers.common import describe_size
from stowage_e2e import scenario
from stowage_e2e.btrfs_volumes import btrfs_file_system, file_system_type, qgroup_limits, run
from stowage_e2e.helpers import (
    OVERFILL,
    finished_log,
    helper_pods,
    overfilled,
    release_claim,
    wait_for_capacity,
    wait_for_event,
    wait_for_label,
)
from stowage_e2e.install import Images
from stowage_e2e.kube import Kube
from stowage_e2e.node_shell import NodeShell
from stowage_e2e.vm_nodes import VmNode

pytestmark = pytest.mark.e2e

MIB = 2**20
SMALL_THEN_OVERFILL = "echo small > /data/small.txt && cat /data/small.txt\n" + OVERFILL


def quota_backend(base: Path, nodes: Sequence[str] = ()) -> dict[str, object]:
    """`nodes`: the only nodes that offer it (every node when empty)."""
    return {
        "hostPath": {"path": str(base), **({"nodes": list(nodes)} if nodes else {})},
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


def test_a_claim_goes_to_the_node_with_room_and_one_that_fits_nowhere_says_so(
    kube: Kube,
    namespace: str,
    backend_factory: Callable[..., str],
    two_vm_nodes: tuple[VmNode, VmNode],
    node_shell_of: Callable[[VmNode], NodeShell],
) -> None:
    """The two VM nodes list a base path on btrfs of 512 MiB and of 256 MiB; the helper there
    reports each one's free bytes, and claims (Immediate) go where they fit."""
    roomy, small = two_vm_nodes
    base = f"/var/lib/stowage-e2e/btrfs-{uuid.uuid4().hex[:8]}"
    sizes = {roomy.name: 512 * MIB, small.name: 256 * MIB}
    with ExitStack() as file_systems:
        for node in two_vm_nodes:
            shell = node_shell_of(node)
            file_systems.enter_context(btrfs_file_system(base, sizes[node.name], shell))
        spec = quota_backend(Path(base), [node.name for node in two_vm_nodes])
        name = backend_factory(
            "btrfstwo",
            {
                **spec,
                "mount": {"tolerations": [roomy.toleration]},
                "storageClass": {"volumeBindingMode": "Immediate"},
            },
        )
        free = {
            node.name: wait_for_capacity(kube, node.name, name, timeout=360)
            for node in two_vm_nodes
        }
        print(f"\nfree bytes reported: {free}")
        assert free[small.name] < 256 * MIB < free[roomy.name] < 512 * MIB
        assert len(helper_pods(kube, name)) == 2, "a helper on a node the backend does not list"

        def placed(claim: str, size: int) -> str:
            kube.apply(scenario.claim(claim, name, f"{size // MIB}Mi"), namespace)
            volume = scenario.bound_volume(kube, claim, namespace)
            return str(volume["metadata"]["annotations"][NODE_ANNOTATION])

        # Sizes from what was reported: more than the small node has, less than the roomy one.
        big = (free[small.name] // MIB + 1) * MIB
        assert placed("big", big) == roomy.name
        too_big = (free[roomy.name] // MIB + 1) * MIB
        kube.apply(scenario.claim("too-big", name, f"{too_big // MIB}Mi"), namespace)
        event = wait_for_event(
            kube, namespace, "persistentvolumeclaim", "too-big", "ProvisioningFailed"
        )
        # (The largest free is a little less than reported before: "big" is a subvolume now.)
        refusal = f"no node has {describe_size(too_big)} free in backend {name}: the largest free"
        assert refusal in event["message"], event["message"]
        assert f"on node {roomy.name}" in event["message"], event["message"]
        # Both fit 16 MiB; the node already holding a claim's bytes is passed over.
        assert placed("small", 16 * MIB) == small.name
        for claim in ("big", "too-big", "small"):
            kube.delete("persistentvolumeclaim", claim, namespace, wait=True)
        kube.run("wait", "--for=delete", "persistentvolume", "-l", f"stowage.io/backend={name}",
                 "--timeout=120s")  # fmt: skip
        kube.delete("storagebackend", name, wait=True)
