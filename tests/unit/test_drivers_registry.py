"""Every storage type has a driver, and the facts each driver declares hold together."""

from __future__ import annotations

from typing import Any

import pytest

from stowage.api.backend import StorageBackend, StorageType
from stowage.drivers import DRIVERS, driver_for
from stowage.drivers.base import (
    BackendRef,
    ClaimRequest,
    NodeRole,
    ProvisionContext,
    VolumeKind,
)

pytestmark = pytest.mark.unit

SECRET = {"name": "creds", "namespace": "storage"}
# The smallest valid spec of each type.
MINIMAL: dict[StorageType, dict[str, Any]] = {
    StorageType.EMPTY_DIR: {},
    StorageType.HOST_PATH: {"path": "/srv/stowage"},
    StorageType.GIT_REPO: {"repository": "https://git.example.com/x.git"},
    StorageType.GCE_PERSISTENT_DISK: {},
    StorageType.AWS_ELASTIC_BLOCK_STORE: {},
    StorageType.CINDER: {},
    StorageType.NFS: {"servers": ["nfs"], "path": "/exports"},
    StorageType.ISCSI: {
        "portals": ["10.0.0.1"],
        "iqn": "iqn.2024-01.org.example:t",
        "luns": [{"lun": 0, "size": "1Gi"}],
    },
    StorageType.GLUSTERFS: {"hosts": ["g1"], "volume": "gv0"},
    StorageType.RBD: {"monitors": ["m1"], "pool": "k8s", "userSecretRef": SECRET},
    StorageType.CEPHFS: {"monitors": ["m1"], "userSecretRef": SECRET},
    StorageType.CIFS: {"servers": ["s1"], "share": "k8s", "secretRef": SECRET},
    StorageType.LVM: {"volumeGroup": "vg0"},
}
CLOUD = {StorageType.GCE_PERSISTENT_DISK, StorageType.AWS_ELASTIC_BLOCK_STORE, StorageType.CINDER}
BLOCK = CLOUD | {StorageType.ISCSI, StorageType.RBD, StorageType.LVM}


def backend(storage_type: StorageType, **shared: Any) -> BackendRef:
    spec = {storage_type.value: MINIMAL[storage_type], **shared}
    return BackendRef("b", StorageBackend.model_validate({"spec": spec}).spec)


def test_one_driver_per_type() -> None:
    assert set(DRIVERS) == set(StorageType)
    for storage_type in StorageType:
        assert driver_for(storage_type).storage_type is storage_type


@pytest.mark.parametrize("storage_type", list(StorageType))
def test_minimal_specs_are_valid_and_declare_consistent_facts(storage_type: StorageType) -> None:
    driver = driver_for(storage_type)
    ref = backend(storage_type)
    assert driver.validate(ref) == []
    expected_kind = VolumeKind.BLOCK if storage_type in BLOCK else VolumeKind.FILE
    assert driver.volume_kind is expected_kind
    is_cloud = storage_type in CLOUD
    assert (driver.csi_driver_name(ref) is not None) == is_cloud
    assert (driver.storage_class(ref).provisioner == "stowage.io/provisioner") != is_cloud
    assert driver.needs_host_mount == (storage_type not in CLOUD | {StorageType.ISCSI})


# What the mount helpers do on the nodes for each type (of its smallest spec).
ROLES = {
    **dict.fromkeys(CLOUD | {StorageType.ISCSI, StorageType.HOST_PATH}, NodeRole.NONE),
    **dict.fromkeys(
        (StorageType.GLUSTERFS, StorageType.CEPHFS, StorageType.CIFS), NodeRole.SHARED_MOUNT
    ),
    StorageType.NFS: NodeRole.REMOTE_EXPORT,
    **dict.fromkeys(
        (StorageType.EMPTY_DIR, StorageType.GIT_REPO, StorageType.LVM, StorageType.RBD),
        NodeRole.NODE_WORK,
    ),
}


@pytest.mark.parametrize("storage_type", list(StorageType))
def test_each_type_plays_one_role_on_the_nodes(storage_type: StorageType) -> None:
    driver = driver_for(storage_type)
    role = driver.node_role(backend(storage_type))
    assert role is ROLES[storage_type]
    assert bool(driver.mount_sources(backend(storage_type))) == (role is NodeRole.SHARED_MOUNT)


def test_a_host_path_with_quotas_has_its_volumes_made_on_their_node() -> None:
    ref = backend(StorageType.HOST_PATH, provisioning={"enforceQuota": True})
    assert driver_for(StorageType.HOST_PATH).node_role(ref) is NodeRole.NODE_WORK


@pytest.mark.parametrize(
    "storage_type",
    sorted(
        set(StorageType)
        - {StorageType.GCE_PERSISTENT_DISK, StorageType.AWS_ELASTIC_BLOCK_STORE, StorageType.CINDER}
    ),
)
def test_stowage_types_cannot_grow_volumes(storage_type: StorageType) -> None:
    ref = backend(storage_type, storageClass={"allowVolumeExpansion": True})
    assert [str(problem) for problem in driver_for(storage_type).validate(ref)] == [
        f"storageClass.allowVolumeExpansion: stowage cannot grow {storage_type} volumes; "
        "set it to false"
    ]


def test_a_driver_refuses_a_backend_of_another_type() -> None:
    claim = ClaimRequest("team", "data", "0b6e2a5d", 2**30)
    with pytest.raises(TypeError, match="is of type nfs, not glusterfs"):
        driver_for(StorageType.GLUSTERFS).plan(backend(StorageType.NFS), claim, ProvisionContext())
