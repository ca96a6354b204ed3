"""CSI requests in stowage's terms: volume IDs, the claim a request stands for, the record."""

from __future__ import annotations

import dataclasses

import pytest

from stowage.api.volume import NODE_DATA_FINALIZER
from stowage.csi import volumes
from stowage.csi.proto import csi_pb2
from stowage.drivers.base import ClaimRequest, DataLocation, NewDirectory, VolumePlan

pytestmark = pytest.mark.unit

Mode = csi_pb2.VolumeCapability.AccessMode.Mode
UID = "0e2f5a3c-4b1d-4f7e-9a65-1c2b3d4e5f60"


def capability(mode: Mode.ValueType, *, block: bool = False) -> csi_pb2.VolumeCapability:
    access = csi_pb2.VolumeCapability.AccessMode(mode=mode)
    if block:
        return csi_pb2.VolumeCapability(
            block=csi_pb2.VolumeCapability.BlockVolume(), access_mode=access
        )
    return csi_pb2.VolumeCapability(
        mount=csi_pb2.VolumeCapability.MountVolume(), access_mode=access
    )


def test_a_provisioner_name_is_the_volume_id_and_carries_the_claim_uid() -> None:
    assert volumes.volume_id(f"pvc-{UID}") == f"pvc-{UID}"
    assert volumes.claim_uid(f"pvc-{UID}") == UID


def test_other_names_become_object_names_that_stay_apart_and_within_128_bytes() -> None:
    upper, lower = volumes.volume_id("Sanity-Volume"), volumes.volume_id("sanity-volume")
    assert lower == "sanity-volume"
    assert upper != lower and upper.startswith("sanity-volume-")
    long = volumes.volume_id("x" * 300)
    assert len(long) <= volumes.VOLUME_ID_MAX_BYTES
    assert long != volumes.volume_id("x" * 301)
    assert volumes.claim_uid("Sanity-Volume") != volumes.claim_uid("sanity-volume")
    with pytest.raises(volumes.BadRequest, match="empty"):
        volumes.volume_id("")


def test_a_node_name_too_long_for_a_label_value_is_labelled_by_its_digest() -> None:
    assert volumes.node_label("stowage-vm1") == "stowage-vm1"
    long = "n" + ".node" * 60  # a valid node name of 301 characters
    assert len(volumes.node_label(long)) <= 63
    assert volumes.node_label(long) != volumes.node_label(long + "x")


@pytest.mark.parametrize(
    ("modes", "expected"),
    [
        ([Mode.SINGLE_NODE_WRITER], ("ReadWriteOnce",)),
        ([Mode.SINGLE_NODE_SINGLE_WRITER], ("ReadWriteOncePod",)),
        ([Mode.MULTI_NODE_READER_ONLY], ("ReadOnlyMany",)),
        ([Mode.MULTI_NODE_MULTI_WRITER, Mode.MULTI_NODE_SINGLE_WRITER], ("ReadWriteMany",)),
    ],
)
def test_csi_access_modes_are_the_kubernetes_ones(
    modes: list[Mode.ValueType], expected: tuple[str]
) -> None:
    assert volumes.access_modes([capability(mode) for mode in modes]) == expected


def test_a_capability_without_access_mode_or_type_or_with_both_types_is_refused() -> None:
    with pytest.raises(volumes.BadRequest, match="no access mode"):
        volumes.access_modes([capability(Mode.UNKNOWN)])
    with pytest.raises(volumes.BadRequest, match="neither mount nor block"):
        volumes.volume_mode([csi_pb2.VolumeCapability()])
    with pytest.raises(volumes.BadRequest, match="both mount and block"):
        volumes.volume_mode(
            [capability(Mode.SINGLE_NODE_WRITER), capability(Mode.SINGLE_NODE_WRITER, block=True)]
        )
    assert volumes.volume_mode([capability(Mode.SINGLE_NODE_WRITER, block=True)]) == "Block"


def test_the_claim_of_a_request_has_its_size_node_and_the_provisioners_claim_names() -> None:
    request = csi_pb2.CreateVolumeRequest(
        name=f"pvc-{UID}",
        capacity_range=csi_pb2.CapacityRange(required_bytes=5 << 30),
        volume_capabilities=[capability(Mode.SINGLE_NODE_WRITER)],
        parameters={
            volumes.CLAIM_NAMESPACE_PARAMETER: "apps",
            volumes.CLAIM_NAME_PARAMETER: "data",
        },
        accessibility_requirements=csi_pb2.TopologyRequirement(
            requisite=[csi_pb2.Topology(segments={volumes.TOPOLOGY_KEY: "node-b"})],
            preferred=[csi_pb2.Topology(segments={volumes.TOPOLOGY_KEY: "node-a"})],
        ),
    )
    claim = volumes.claim_request(request)
    assert (claim.namespace, claim.name, claim.uid) == ("apps", "data", UID)
    assert claim.requested_bytes == 5 << 30
    assert claim.selected_node == "node-a"  # the scheduler's choice comes first in preferred
    assert claim.access_modes == ("ReadWriteOnce",)


def test_sizes_and_missing_capabilities() -> None:
    assert volumes.requested_bytes(csi_pb2.CapacityRange(limit_bytes=7)) == 7
    assert volumes.requested_bytes(csi_pb2.CapacityRange()) == 0
    with pytest.raises(volumes.BadRequest, match="above limit_bytes"):
        volumes.requested_bytes(csi_pb2.CapacityRange(required_bytes=8, limit_bytes=7))
    with pytest.raises(volumes.BadRequest, match="no volume capabilities"):
        volumes.claim_request(csi_pb2.CreateVolumeRequest(name="v"))


def node_plan(path: str, size: int) -> VolumePlan:
    return VolumePlan(
        capacity_bytes=size,
        access_modes=("ReadWriteOnce",),
        volume_mode="Filesystem",
        location=DataLocation(path=path, node="node-a"),
    )


def single_writer_claim() -> ClaimRequest:
    return volumes.claim_request(
        csi_pb2.CreateVolumeRequest(
            name=f"pvc-{UID}", volume_capabilities=[capability(Mode.SINGLE_NODE_WRITER)]
        )
    )


def test_the_record_of_a_node_volume_has_its_node_label_and_a_finalizer_for_its_release() -> None:
    plan = node_plan("/srv/a/apps-data-x", 1 << 20)
    claim = single_writer_claim()
    record = volumes.backend_volume(
        f"pvc-{UID}", "fast", "hostPath", volumes.NodeDirectory("/srv/a"), plan, claim, "0750",
        volumes.DirectoryOwner(uid=1000, gid=2000),
    )  # fmt: skip
    assert record["metadata"]["labels"] == {
        "stowage.io/backend": "fast",
        "stowage.io/node": "node-a",
    }
    assert record["metadata"]["finalizers"] == [NODE_DATA_FINALIZER]
    spec = volumes.record_spec(record)
    volume = volumes.csi_volume(f"pvc-{UID}", spec)
    assert dict(volume.volume_context) == {
        "backend": "fast",
        "storageType": "hostPath",
        "root": "/srv/a",
        "path": "/srv/a/apps-data-x",
        "directoryMode": "0750",
        "directoryUid": "1000",
        "directoryGid": "2000",
    }
    assert [dict(t.segments) for t in volume.accessible_topology] == [
        {volumes.TOPOLOGY_KEY: "node-a"}
    ]
    record["metadata"]["resourceVersion"] = "7"
    record["metadata"]["finalizers"].append("example.com/other")
    assert volumes.releasing_done(record) == {
        "metadata": {"finalizers": ["example.com/other"], "resourceVersion": "7"}
    }


def test_the_record_of_a_directory_on_a_server_names_the_server_for_the_node_to_mount() -> None:
    plan = dataclasses.replace(
        node_plan("/exports/a", 1 << 20), location=DataLocation(path="/exports/a", server="n2")
    )
    remote = volumes.backend_volume(
        "v", "nfs", "nfs", volumes.NodeDirectory("/exports"), plan, single_writer_claim(),
        "0750", volumes.DirectoryOwner(uid=7),
    )  # fmt: skip
    assert "finalizers" not in remote["metadata"]  # no node holds its data
    assert "stowage.io/node" not in remote["metadata"]["labels"]
    spec = volumes.record_spec(remote)
    volume = volumes.csi_volume("v", spec)
    assert volume.volume_context["server"] == "n2"
    assert volume.volume_context["path"] == "/exports/a"
    assert not volume.accessible_topology  # any node can mount it
    assert volumes.new_directory(spec) == NewDirectory(mode=0o750, uid=7, gid=None)


def test_a_volume_in_a_backend_mount_is_usable_where_the_mount_is_ready_and_handed_over() -> None:
    path = "/var/lib/stowage/mounts/gv/apps-data-x"
    plan = dataclasses.replace(node_plan(path, 10 << 20), location=DataLocation(path=path))
    directory = volumes.NodeDirectory(
        "/var/lib/stowage/mounts/gv",
        backend_mount="/var/lib/stowage/mounts/gv",
        quota_bytes=10 << 20,
    )
    record = volumes.backend_volume(
        "v", "gv", "glusterfs", directory, plan, single_writer_claim(), "2770",
        volumes.DirectoryOwner(),
    )  # fmt: skip
    # No node holds it; the finalizer waits for the node DeleteVolume hands it to.
    assert record["metadata"]["finalizers"] == [NODE_DATA_FINALIZER]
    assert "stowage.io/node" not in record["metadata"]["labels"]
    volume = volumes.csi_volume("v", volumes.record_spec(record))
    assert volume.volume_context["backendMount"] == "/var/lib/stowage/mounts/gv"
    assert volume.volume_context["quotaBytes"] == str(10 << 20)
    assert volume.volume_context["path"] == path
    assert [dict(t.segments) for t in volume.accessible_topology] == [
        {"mount.stowage.io/gv": "ready"}
    ]


def test_a_tmpfs_volume_tells_the_node_plugin_its_size() -> None:
    plan = node_plan("/var/lib/stowage/volumes/ram/apps-data-x", 8 << 20)
    claim = single_writer_claim()
    directory = volumes.NodeDirectory("/var/lib/stowage/volumes/ram", tmpfs_bytes=8 << 20)
    record = volumes.backend_volume(
        f"pvc-{UID}", "ram", "emptyDir", directory, plan, claim, "0777", volumes.DirectoryOwner()
    )
    volume = volumes.csi_volume(f"pvc-{UID}", volumes.record_spec(record))
    assert volume.volume_context["tmpfsBytes"] == str(8 << 20)
    assert volume.volume_context["path"] == "/var/lib/stowage/volumes/ram/apps-data-x"


def test_a_checkout_volume_tells_the_node_plugin_where_its_checkout_is_kept() -> None:
    root = "/var/lib/stowage/volumes/site"
    plan = node_plan(f"{root}/apps-data-x", 1 << 20)
    directory = volumes.NodeDirectory(root, checkout_path=f"{root}/.checkouts/apps-data-x")
    record = volumes.backend_volume(
        "v", "site", "gitRepo", directory, plan, single_writer_claim(), "0755",
        volumes.DirectoryOwner(),
    )  # fmt: skip
    volume = volumes.csi_volume("v", volumes.record_spec(record))
    assert volume.volume_context["checkoutPath"] == f"{root}/.checkouts/apps-data-x"
    assert record["metadata"]["finalizers"] == [NODE_DATA_FINALIZER]  # its node removes it
