"""The lvm helper's node work against real LVM: a volume group on a loop device made from a
sparse file, and the helper's own functions (stowage.agent.lvm, node_volumes, the agent's
claim preparation against the real API server).

What runs here: LV creation (extent-rounded, idempotent), the refusal of a claim too large or of
a missing volume group, the PreparationFailed Event on the claim, the free-space report,
removal and archive. This machine has no device-mapper, so no LV can be activated: activation,
wiping, mkfs and the mount are called for real and must fail with a message naming
device-mapper; they run end to end only where a kernel has device-mapper (the kind path).
Needs root and lvm2; everything made is removed by exact name, whatever happens.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from itkit import Api, unique

from stowage.agent import lvm, node_volumes
from stowage.agent.runner import Agent, AgentSettings
from stowage.api.backend import StorageBackend
from stowage.drivers.base import LogicalVolume, NewDirectory, NodeVolume
from stowage.kube.resources import NODES, PERSISTENT_VOLUME_CLAIMS
from stowage.reconcilers import driving
from stowage_e2e.lvm_groups import TEST_GROUP_BYTES, lv_sizes

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="LVM on a loop device needs root"),
    pytest.mark.skipif(shutil.which("lvcreate") is None, reason="lvm2 is not installed"),
]

MiB = 2**20
VG_BYTES = TEST_GROUP_BYTES


def block_lv(
    volume_group: str, name: str = "apps-data-1234", size: int = 10 * MiB
) -> LogicalVolume:
    return LogicalVolume(volume_group=volume_group, name=name, size_bytes=size)


def test_an_lv_is_created_once_with_the_claims_size_rounded_to_extents(volume_group: str) -> None:
    volume = block_lv(volume_group, size=10_000_000)  # not even a multiple of 512
    assert lvm.create(volume) is True
    assert lv_sizes(volume_group) == {volume.name: 12 * MiB}  # three 4 MiB extents
    assert lvm.free_bytes(volume_group) == VG_BYTES - 12 * MiB

    assert lvm.create(volume) is False  # the same claim again: the LV is reused
    assert lv_sizes(volume_group) == {volume.name: 12 * MiB}


def test_a_claim_too_large_or_a_missing_group_is_refused_in_words(volume_group: str) -> None:
    with pytest.raises(
        lvm.LvmError, match=f"Insufficient free space in volume group {volume_group}"
    ):
        lvm.create(block_lv(volume_group, size=VG_BYTES + MiB))
    with pytest.raises(lvm.LvmError, match="volume group no-such-vg is not on this node"):
        lvm.create(block_lv("no-such-vg"))
    assert lv_sizes(volume_group) == {}


def test_removal_frees_the_space_and_archive_keeps_the_lv_under_its_new_name(
    volume_group: str,
) -> None:
    kept, removed = block_lv(volume_group, "apps-kept-1"), block_lv(volume_group, "apps-gone-2")
    lvm.create(kept)
    lvm.create(removed)
    assert lvm.free_bytes(volume_group) == VG_BYTES - 24 * MiB  # 10 MiB is 12 MiB in extents

    gone = NodeVolume(f"/dev/{volume_group}", removed.device, logical_volume=removed)
    assert node_volumes.remove(gone) is True
    assert node_volumes.remove(gone) is False  # nothing left to do
    assert lvm.free_bytes(volume_group) == VG_BYTES - 12 * MiB

    archived = NodeVolume(f"/dev/{volume_group}", kept.device, logical_volume=kept)
    assert node_volumes.archive(archived, "archived-apps-kept-1") is True
    assert lv_sizes(volume_group) == {"archived-apps-kept-1": 12 * MiB}


def test_activation_mkfs_and_mount_need_device_mapper(volume_group: str, tmp_path: Path) -> None:
    if lvm.device_mapper_present():
        pytest.skip("this kernel has device-mapper: the whole path runs in the e2e suite")
    formatted = dataclasses.replace(block_lv(volume_group), fs_type="ext4")
    volume = NodeVolume(str(tmp_path), str(tmp_path / formatted.name), logical_volume=formatted)
    with pytest.raises(lvm.LvmError, match="no device-mapper") as failure:
        node_volumes.make(volume, NewDirectory(0o770), lambda checkout: None, mount_timeout=10)
    assert f"{volume_group}/{formatted.name} cannot be activated" in str(failure.value)
    # Every step before activation was done, and will not be done twice.
    assert lv_sizes(volume_group) == {formatted.name: 12 * MiB}
    assert not os.path.ismount(volume.path)


@pytest.mark.parametrize("fs_type", ["ext4", "xfs"])
def test_a_blank_device_is_formatted_once_and_never_over_its_data(
    fs_type: str, tmp_path: Path
) -> None:
    """The step after activation, on a plain file standing for the LV's device (mkfs and
    blkid need no device-mapper)."""
    device = tmp_path / "device"
    with open(device, "wb") as sparse:
        sparse.truncate(320 * MiB)  # mkfs.xfs wants 300 MiB at least
    assert lvm.format_blank(fs_type, str(device)) is True
    assert lvm.has_file_system(str(device))
    made = fs_identity(device)
    assert made.endswith(f" {fs_type}")
    assert lvm.format_blank(fs_type, str(device)) is False  # formatted already: left as it is
    assert fs_identity(device) == made


def fs_identity(device: Path) -> str:
    """The file system's UUID and type (a new mkfs would change the UUID)."""
    found = subprocess.run(
        ["blkid", "-p", "-o", "value", "-s", "TYPE", "-s", "UUID", str(device)],
        capture_output=True,
        text=True,
        check=True,
    )
    return " ".join(found.stdout.split())


def lvm_backend(name: str, volume_group: str) -> tuple[dict[str, Any], StorageBackend]:
    manifest = {"metadata": {"name": name}, "spec": {"lvm": {"volumeGroup": volume_group}}}
    return manifest, StorageBackend.model_validate({"spec": manifest["spec"]})


def block_claim(
    backend: str, model: StorageBackend, namespace: str, node: str, name: str, size: str
) -> dict[str, Any]:
    """A claim of the backend's class that the operator has asked the helper on `node` to
    make a volume for."""
    storage_class = driving.storage_class(backend, model)["metadata"]["name"]
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {
            "namespace": namespace,
            "name": name,
            "labels": {"stowage.io/prepare": backend},
            "annotations": {"stowage.io/prepare-on": node},
        },
        "spec": {
            "storageClassName": storage_class,
            "accessModes": ["ReadWriteOnce"],
            "volumeMode": "Block",
            "resources": {"requests": {"storage": size}},
        },
    }


@pytest.fixture
def node(api: Api) -> Iterator[str]:
    """A node of the cluster, for the helper to report on; its annotations are put back."""
    name: str = api.kube.list(NODES)[0]["metadata"]["name"]
    yield name
    annotations = (api.get(NODES, name) or {})["metadata"].get("annotations") or {}
    reported = {key: None for key in annotations if key.startswith("capacity.stowage.io/lvm-")}
    if reported:
        api.kube.merge_patch(NODES, name, {"metadata": {"annotations": reported}})


def test_the_helper_reports_free_space_and_tells_the_claim_why_its_volume_failed(
    volume_group: str, api: Api, namespace: str, node: str
) -> None:
    """Against the real API server: the claims, the node and the Events are real objects."""
    backend = unique("lvm")
    manifest, model = lvm_backend(backend, volume_group)
    for name, size in (("fits", "8Mi"), ("huge", "1Gi")):
        api.kube.create(
            PERSISTENT_VOLUME_CLAIMS, block_claim(backend, model, namespace, node, name, size)
        )
    agent = Agent(api.kube, AgentSettings(backend=backend, node=node))

    agent.serve_node_volumes(manifest, model)

    def reported() -> str:
        annotations = (api.get(NODES, node) or {})["metadata"].get("annotations") or {}
        return str(annotations.get(f"capacity.stowage.io/{backend}"))

    assert reported() == str(VG_BYTES)

    def failures(claim: str) -> list[dict[str, Any]]:
        """The helper's Events on the claim (the cluster's own say its class is unknown)."""
        events = api.events("PersistentVolumeClaim", claim, namespace)
        return [event for event in events if event["reason"] == "PreparationFailed"]

    (huge,) = failures("huge")
    assert "Insufficient free space in volume group" in huge["message"]
    if not lvm.device_mapper_present():
        # The fitting claim's LV was created; its activation is what this kernel cannot do.
        (fits,) = failures("fits")
        assert "no device-mapper" in fits["message"]
        assert list(lv_sizes(volume_group).values()) == [8 * MiB]
    # Neither claim is marked made: the operator creates no PV for them.
    for name in ("fits", "huge"):
        claim = api.get(PERSISTENT_VOLUME_CLAIMS, name, namespace) or {}
        assert "stowage.io/prepared-by" not in (claim["metadata"].get("annotations") or {})

    agent.serve_node_volumes(manifest, model)  # the next round: no second LV
    assert len(lv_sizes(volume_group)) == 1
    assert reported() == str(VG_BYTES - 8 * MiB)
