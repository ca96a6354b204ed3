"""nfs and iscsi: in-tree PVs the kubelet mounts itself."""

from __future__ import annotations

from typing import Any

import pytest

from stowage import objects
from stowage.api.backend import StorageBackend, StorageType
from stowage.drivers import driver_for
from stowage.drivers.base import (
    BackendRef,
    ClaimRequest,
    DataLocation,
    NodeRole,
    ProvisionContext,
    ProvisionedVolume,
    Unprovisionable,
)
from stowage.drivers.placement import rendezvous_choice

pytestmark = pytest.mark.unit

UID = "8f14e45f-ceea-467f-a0e6-7bdc2b1c9b33"
GI = 2**30


def backend(name: str, spec: dict[str, Any]) -> BackendRef:
    return BackendRef(name, StorageBackend.model_validate({"spec": spec}).spec)


def claim(size: int = 5 * GI, modes: tuple[str, ...] = ("ReadWriteOnce",), **facts: Any) -> Any:
    return ClaimRequest("team-a", "data", facts.pop("uid", UID), size, modes, **facts)


def built_volume(ref: BackendRef, request: ClaimRequest, ctx: ProvisionContext) -> Any:
    driver = driver_for(ref.spec.storage_type)
    plan = driver.plan(ref, request, ctx)
    return objects.persistent_volume(ref, request, plan, driver.persistent_volume_source(ref, plan))


# --- nfs ----------------------------------------------------------------------

NFS = {
    "nfs": {"servers": ["nfs-1.example.com", "nfs-2.example.com"], "path": "/exports/k8s"},
    "provisioning": {"basePath": "/claims"},
    "mount": {"options": ["noatime"], "nodeSelector": {"storage-net": "yes"}},
}


def test_nfs_volume_is_a_claim_directory_on_the_rendezvous_server() -> None:
    ref = backend("nfs-prod", NFS)
    volume = built_volume(ref, claim(modes=("ReadWriteMany",)), ProvisionContext())
    server = rendezvous_choice(UID, ["nfs-1.example.com", "nfs-2.example.com"])
    path = f"/exports/k8s/claims/team-a-data-{UID}"
    assert volume["spec"]["nfs"] == {"server": server, "path": path}
    assert volume["spec"]["mountOptions"] == ["noatime", "nfsvers=4.1"]
    assert volume["spec"]["accessModes"] == ["ReadWriteMany"]
    assert volume["spec"]["capacity"] == {"storage": "5Gi"}
    assert volume["metadata"]["annotations"]["stowage.io/path"] == path
    assert volume["metadata"]["annotations"]["stowage.io/server"] == server
    assert volume["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"] == [
        {"matchExpressions": [{"key": "storage-net", "operator": "In", "values": ["yes"]}]}
    ]


def test_an_nfs_backend_through_csi_has_its_directories_made_in_the_export_by_the_controller() -> (
    None
):
    ref = backend("nfs-csi", {**NFS, "provisioning": {"basePath": "/claims", "csi": True}})
    driver = driver_for(ref.spec.storage_type)
    assert driver.served_by_csi(ref)
    assert driver.csi_directory_root(ref) == "/exports/k8s"
    assert driver.node_role(ref) is NodeRole.NONE  # no helper: the node plugin mounts
    storage_class = driver.storage_class(ref)
    assert storage_class.provisioner == "csi.stowage.io"
    assert storage_class.mount_options == ("noatime", "nfsvers=4.1")
    export = driver.remote_export(ref, "any")
    assert (export.export, export.version) == ("/exports/k8s", "4.1")


def test_nfs_claims_spread_over_the_servers() -> None:
    ref = backend("nfs-prod", NFS)
    driver = driver_for(ref.spec.storage_type)
    servers = {
        driver.plan(
            ref, claim(uid=f"{index:08x}-0000-4000-8000-000000000000"), ProvisionContext()
        ).location.server
        for index in range(40)
    }
    assert servers == {"nfs-1.example.com", "nfs-2.example.com"}


def test_nfs_refuses_block_mode() -> None:
    with pytest.raises(Unprovisionable, match="cannot serve volumeMode Block"):
        built_volume(backend("nfs-prod", NFS), claim(volume_mode="Block"), ProvisionContext())


def test_read_only_nfs_serves_only_read_only_claims() -> None:
    spec = {**NFS, "nfs": {**NFS["nfs"], "readOnly": True}}
    ref = backend("nfs-ro", spec)
    volume = built_volume(ref, claim(modes=("ReadOnlyMany",)), ProvisionContext())
    assert volume["spec"]["nfs"]["readOnly"] is True
    assert volume["metadata"]["annotations"]["stowage.io/read-only"] == "true"
    with pytest.raises(Unprovisionable, match="read-only and cannot serve ReadWriteOnce"):
        built_volume(ref, claim(), ProvisionContext())


def test_nfs_version_belongs_in_the_spec_not_the_mount_options() -> None:
    spec = {**NFS, "mount": {"options": ["vers=3"]}}
    problems = driver_for(backend("n", spec).spec.storage_type).validate(backend("n", spec))
    assert [str(problem) for problem in problems] == [
        "mount.options: option vers: set nfs.version instead"
    ]


def test_nfs_directories_are_made_over_nfs_with_servers_in_the_nodes_order() -> None:
    ref = backend("nfs-prod", NFS)
    driver = driver_for(ref.spec.storage_type)
    assert driver.host_mount(ref, "node-1") is None  # no node mounts the export
    export = driver.remote_export(ref, "node-1")
    assert export is not None
    first = rendezvous_choice("node-1", ["nfs-1.example.com", "nfs-2.example.com"])
    assert export.servers[0] == first
    assert sorted(export.servers) == ["nfs-1.example.com", "nfs-2.example.com"]
    assert (export.export, export.version) == ("/exports/k8s", "4.1")


def test_nfs_refuses_directory_modes_with_special_bits() -> None:
    spec = {**NFS, "provisioning": {"directoryMode": "2775"}}
    problems = driver_for(StorageType.NFS).validate(backend("nfs-setgid", spec))
    assert [problem.field for problem in problems] == ["provisioning.directoryMode"]
    plain = {**NFS, "provisioning": {"directoryMode": "0775"}}
    assert driver_for(StorageType.NFS).validate(backend("nfs-plain", plain)) == []


# --- iscsi --------------------------------------------------------------------

ISCSI = {
    "iscsi": {
        "portals": ["10.0.0.10:3260", "10.0.0.11:3260"],
        "iqn": "iqn.2024-01.org.example:storage",
        "luns": [
            {"lun": 0, "size": "10Gi"},
            {"lun": 1, "size": "2Gi"},
            {"lun": 2, "size": "5Gi"},
            {"lun": 3, "size": "5Gi"},
            {"lun": 4, "size": "20Gi"},
        ],
        "fsType": "xfs",
        "chapSecretRef": {"name": "chap", "namespace": "storage"},
    }
}


def used(*luns: int) -> ProvisionContext:
    return ProvisionContext(
        volumes=tuple(ProvisionedVolume(f"pvc-{lun}", GI, DataLocation(lun=lun)) for lun in luns)
    )


def test_iscsi_volume_source_with_chap_and_multipath() -> None:
    ref = backend("san", ISCSI)
    volume = built_volume(ref, claim(size=4 * GI), ProvisionContext())
    assert volume["spec"]["iscsi"] == {
        "targetPortal": "10.0.0.10:3260",
        "portals": ["10.0.0.11:3260"],
        "iqn": "iqn.2024-01.org.example:storage",
        "lun": 2,
        "fsType": "xfs",
        "chapAuthSession": True,
        "secretRef": {"name": "chap", "namespace": "storage"},
    }
    assert volume["spec"]["capacity"] == {"storage": "5Gi"}  # the LUN's size, not the request
    assert volume["metadata"]["annotations"]["stowage.io/lun"] == "2"


@pytest.mark.parametrize(
    ("request_gi", "in_use", "expected_lun"),
    [
        (1, (), 1),  # 2Gi is the smallest that fits
        (3, (), 2),  # two 5Gi LUNs: the lower number
        (3, (2,), 3),
        (3, (2, 3), 0),
        (11, (), 4),
        (1, (1, 2, 3), 0),
    ],
)
def test_iscsi_takes_the_smallest_free_lun_that_fits(
    request_gi: int, in_use: tuple[int, ...], expected_lun: int
) -> None:
    ref = backend("san", ISCSI)
    plan = driver_for(ref.spec.storage_type).plan(ref, claim(size=request_gi * GI), used(*in_use))
    assert plan.location.lun == expected_lun


def test_iscsi_says_how_large_the_largest_free_lun_is() -> None:
    ref = backend("san", ISCSI)
    with pytest.raises(
        Unprovisionable, match=r"^no free LUN of at least 12Gi in pool: largest free is 10Gi$"
    ):
        driver_for(ref.spec.storage_type).plan(ref, claim(size=12 * GI), used(4))


def test_iscsi_says_when_every_lun_is_in_use() -> None:
    ref = backend("san", ISCSI)
    with pytest.raises(Unprovisionable, match="all 5 LUNs are in use"):
        driver_for(ref.spec.storage_type).plan(ref, claim(size=GI), used(0, 1, 2, 3, 4))


@pytest.mark.parametrize("modes", [("ReadWriteMany",), ("ReadOnlyMany",)])
def test_iscsi_refuses_multi_node_access(modes: tuple[str, ...]) -> None:
    ref = backend("san", ISCSI)
    with pytest.raises(Unprovisionable, match=f"cannot serve access mode {modes[0]}"):
        driver_for(ref.spec.storage_type).plan(ref, claim(modes=modes), ProvisionContext())


def test_iscsi_serves_raw_block_claims() -> None:
    ref = backend("san", ISCSI)
    volume = built_volume(ref, claim(size=GI, volume_mode="Block"), ProvisionContext())
    assert volume["spec"]["volumeMode"] == "Block"


def test_iscsi_needs_the_chap_keys_of_its_secret() -> None:
    ref = backend("san", ISCSI)
    [need] = driver_for(ref.spec.storage_type).secret_requirements(ref)
    assert (need.secret.namespace, need.secret.name) == ("storage", "chap")
    assert need.keys == ("node.session.auth.username", "node.session.auth.password")
    assert "node.session.auth.password_in" in need.optional_keys


def test_iscsi_without_chap_needs_no_secret_and_sets_no_chap() -> None:
    spec = {
        "iscsi": {key: value for key, value in ISCSI["iscsi"].items() if key != "chapSecretRef"}
    }
    ref = backend("san", spec)
    driver = driver_for(ref.spec.storage_type)
    assert driver.secret_requirements(ref) == []
    source = built_volume(ref, claim(size=GI), ProvisionContext())["spec"]["iscsi"]
    assert "secretRef" not in source and "chapAuthSession" not in source


def test_iscsi_validation_port_and_on_delete() -> None:
    spec = {
        "iscsi": {**ISCSI["iscsi"], "portals": ["10.0.0.10:99999", "[fd00::1]:3260"]},
        "provisioning": {"onDelete": "Archive"},
    }
    ref = backend("san", spec)
    problems = [str(problem) for problem in driver_for(ref.spec.storage_type).validate(ref)]
    assert problems[0] == "iscsi.portals[0]: port 99999 is not in 1-65535"
    assert problems[1].startswith("provisioning.onDelete: Archive is not possible for iSCSI LUNs")
    assert len(problems) == 2


def test_iscsi_accepts_wipe_on_delete_the_operator_carries_out() -> None:
    ref = backend("san", {"iscsi": {**ISCSI["iscsi"], "wipeOnDelete": True}})
    assert driver_for(ref.spec.storage_type).validate(ref) == []
