"""lvm backends end to end without a node: the volume the helper makes for each claim, its
helper's DaemonSet, the LVM commands it runs, the node choice by the free space helpers report,
and what happens on release."""

from __future__ import annotations

from typing import Any

import pytest

from stowage.agent import lvm, runner
from stowage.api.backend import StorageBackend
from stowage.drivers.base import LogicalVolume, NodeVolume, VolumeGroupSpace
from stowage.objects.helper_daemonset import HelperSettings
from stowage.reconcilers import driving

pytestmark = pytest.mark.unit

HELPERS = HelperSettings("stowage-helpers", "localhost/stowage/helper:dev", "Never", "helper-sa")
MiB = 2**20


def model(on_delete: str = "Delete", **lvm_spec: Any) -> StorageBackend:
    spec = {"lvm": {"volumeGroup": "vg-data", **lvm_spec}, "provisioning": {"onDelete": on_delete}}
    return StorageBackend.model_validate({"spec": spec})


def claim(backend: StorageBackend, mode: str = "Filesystem", size: str = "10M") -> dict[str, Any]:
    return {
        "metadata": {"namespace": "apps", "name": "db", "uid": "1234-abcd"},
        "spec": {
            "storageClassName": driving.storage_class("fast", backend)["metadata"]["name"],
            "accessModes": ["ReadWriteOnce"],
            "volumeMode": mode,
            "resources": {"requests": {"storage": size}},
        },
    }


def node(name: str, free: str | None = None) -> dict[str, Any]:
    annotations = {} if free is None else {"capacity.stowage.io/fast": free}
    return {
        "metadata": {
            "name": name,
            "labels": {"mount.stowage.io/fast": "ready"},
            "annotations": annotations,
        },
        "status": {"conditions": [{"type": "Ready", "status": "True"}]},
    }


def work_for(backend: StorageBackend, mode: str) -> tuple[dict[str, Any], NodeVolume]:
    volume = driving.claim_volume("fast", backend, claim(backend, mode), "node-a")
    work = driving.node_volume("fast", backend, volume)
    assert work is not None
    return volume, work


def test_a_filesystem_claim_is_an_lv_formatted_as_the_spec_says_and_mounted_on_its_path() -> None:
    volume, work = work_for(model(fsType="xfs"), "Filesystem")
    path = volume["spec"]["local"]["path"]
    assert path == "/var/lib/stowage/volumes/fast/apps-db-1234-abcd"
    assert work == NodeVolume(
        "/var/lib/stowage/volumes/fast",
        path,
        logical_volume=LogicalVolume("vg-data", "apps-db-1234-abcd", 12 * MiB, "xfs"),
    )
    # The PV is pinned to the node whose helper makes the LV.
    terms = volume["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"]
    assert terms == [
        {
            "matchExpressions": [
                {"key": "kubernetes.io/hostname", "operator": "In", "values": ["node-a"]}
            ]
        }
    ]


def test_a_block_claim_is_the_lv_device_itself() -> None:
    volume, work = work_for(model(thinPool="pool0"), "Block")
    assert volume["spec"]["local"]["path"] == "/dev/vg-data/apps-db-1234-abcd"
    assert work.path == "/dev/vg-data/apps-db-1234-abcd"
    assert work.logical_volume == LogicalVolume(
        "vg-data", "apps-db-1234-abcd", 12 * MiB, None, "pool0"
    )


def test_the_lvm_helper_works_in_the_nodes_dev_and_reports_a_thick_groups_free_space() -> None:
    daemonset = driving.helper("fast", model(), HELPERS)
    assert daemonset is not None
    pod = daemonset["spec"]["template"]["spec"]
    assert {"name": "host-directory-0", "mountPath": "/dev"} in pod["containers"][0]["volumeMounts"]
    assert driving.capacity_source("fast", model()) == VolumeGroupSpace("vg-data")
    # A thin pool's room is not the group's: not reported, not weighed.
    assert driving.capacity_source("fast", model(thinPool="pool0")) is None


def test_the_node_choice_follows_the_free_space_the_helpers_report() -> None:
    backend = model()
    nodes = [node("full", "8Mi"), node("roomy", "1Gi"), node("unreported")]
    chosen = set()
    for index in range(8):
        asked = claim(backend, size="100Mi")
        asked["metadata"]["uid"] = f"{index}-abcd"
        volume = driving.volume_for_claim("fast", backend, asked, volumes=(), nodes=nodes)
        chosen.add(volume["metadata"]["annotations"]["stowage.io/node"])
    assert chosen <= {"roomy", "unreported"} and "full" not in chosen
    with pytest.raises(driving.Unprovisionable, match="no node has 100Mi free in backend fast"):
        driving.volume_for_claim(
            "fast", backend, claim(backend, size="100Mi"), volumes=(), nodes=nodes[:1]
        )


def test_lvcreate_makes_an_inactive_unzeroed_lv_of_whole_extents_marked_unwiped() -> None:
    thick = LogicalVolume("vg-data", "apps-db-1", 10_000_000)
    command = lvm.create_command(thick, 12 * MiB)
    assert command[0] == "lvcreate"
    assert command[3:] == [
        "-an", "-Zn", "--addtag", "stowage-unwiped", "-n", "apps-db-1",
        "-L", f"{12 * MiB}b", "vg-data",
    ]  # fmt: skip
    thin = LogicalVolume("vg-data", "apps-db-1", 10_000_000, thin_pool="pool0")
    assert lvm.create_command(thin, 12 * MiB)[-4:] == [
        "-V", f"{12 * MiB}b", "--thinpool", "pool0", "vg-data",
    ][-4:]  # fmt: skip
    assert lvm.round_to_extents(10_000_000, 4 * MiB) == 12 * MiB
    assert lvm.round_to_extents(8 * MiB, 4 * MiB) == 8 * MiB


def test_lvm_waits_for_no_udev_and_without_device_mapper_does_only_metadata_work() -> None:
    with_dm = lvm.lvm_command("lvs", "vg-data", device_mapper=True)
    without = lvm.lvm_command("lvs", "vg-data", device_mapper=False)
    assert "udev_sync=0" in with_dm[2] and "udev_rules=0" in with_dm[2]
    assert "activation=0" not in with_dm[2]
    assert without[2].startswith("global{activation=0}")
    assert with_dm[3:] == without[3:] == ["vg-data"]


def test_activation_without_device_mapper_is_refused_naming_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(lvm, "device_mapper_present", lambda: False)
    with pytest.raises(lvm.LvmError, match=r"vg-data/lv1 cannot be activated: .* no device-mapper"):
        lvm.activate(LogicalVolume("vg-data", "lv1", MiB))


def test_a_released_lv_is_removed_or_archived_as_the_backend_says(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for on_delete, expected in (("Delete", "Delete"), ("Archive", "Archive"), ("Retain", None)):
        backend = model(on_delete)
        volume = driving.volume_for_claim(
            "fast", backend, claim(backend), volumes=(), nodes=[node("node-a")]
        )
        plan = driving.release_volume("fast", backend, volume)
        request = driving.helper_release_request(plan, backend, [node("node-a")])
        assert (request or {}).get("stowage.io/release") == expected
        if expected == "Archive":
            assert request is not None
            assert request["stowage.io/archive-as"] == "archived-apps-db-1234-abcd"

    done: list[tuple[str, str]] = []
    monkeypatch.setattr(lvm, "rename", lambda volume, name: done.append(("rename", name)) or True)
    monkeypatch.setattr(lvm, "remove", lambda volume: done.append(("remove", volume.name)) or True)
    block = LogicalVolume("vg-data", "apps-db-1", MiB)
    work = NodeVolume("/dev/vg-data", block.device, logical_volume=block)
    archive = {"stowage.io/archive-as": "archived-apps-db-1"}
    assert runner.wipe(work, archive, "Archive") is True
    assert runner.wipe(work, {}, "Delete") is True
    assert done == [("rename", "archived-apps-db-1"), ("remove", "apps-db-1")]
    # A directory volume (emptyDir) has nothing to archive.
    with pytest.raises(ValueError, match="can only be deleted"):
        runner.wipe(NodeVolume("/srv", "/srv/x"), archive, "Archive")


def test_lvm_failures_are_told_in_lvms_words_without_its_noise() -> None:
    result = lvm.subprocess.CompletedProcess(
        ["lvcreate"],
        5,
        "",
        "File descriptor 10 (/dev/null) leaked on lvcreate invocation.\n"
        "  WARNING: Activation disabled. No device-mapper interaction will be attempted.\n"
        '  Volume group "vg-data" has insufficient free space (21 extents): 125 required.\n',
    )
    assert lvm._said(result) == (
        'Volume group "vg-data" has insufficient free space (21 extents): 125 required.'
    )
