"""The API models read realistic manifests: the examples of every storage type and a NASShare."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from stowage.api.backend import (
    CephfsSpec,
    EmptyDirMedium,
    FsType,
    GitRepoSpec,
    IscsiSpec,
    NfsSpec,
    NfsVersion,
    OnDelete,
    ReclaimPolicy,
    StorageBackend,
    StorageType,
    VolumeBindingMode,
)
from stowage.api.common import API_VERSION
from stowage.api.nasshare import NASShare, NfsAccess, NfsSquash, ShareProtocol

pytestmark = pytest.mark.unit

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
BACKEND_EXAMPLES = sorted((EXAMPLES / "storagebackends").glob("*.yaml"))


def load(path: Path) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(path.read_text())
    return document


def backend(spec: dict[str, Any]) -> StorageBackend:
    return StorageBackend.model_validate({"spec": spec})


def test_there_is_one_example_per_storage_type() -> None:
    types = [backend(load(path)["spec"]).spec.storage_type for path in BACKEND_EXAMPLES]
    assert sorted(types) == sorted(StorageType)


@pytest.mark.parametrize("path", BACKEND_EXAMPLES, ids=lambda path: path.stem)
def test_every_example_parses_and_names_its_type(path: Path) -> None:
    manifest = load(path)
    assert manifest["apiVersion"] == API_VERSION
    assert manifest["kind"] == StorageBackend.resource.kind
    model = StorageBackend.model_validate(manifest)
    storage_type = model.spec.storage_type
    assert storage_type.value in manifest["spec"]
    assert path.stem == storage_type.value.lower()
    assert model.spec.type_spec is getattr(model.spec, _python_name(storage_type))


def _python_name(storage_type: StorageType) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in storage_type.value)


def test_nfs_manifest_with_defaults() -> None:
    model = backend({"nfs": {"servers": ["10.0.0.21"], "path": "/exports"}})
    nfs = model.spec.type_spec
    assert isinstance(nfs, NfsSpec)
    assert nfs.version is NfsVersion.V4_1
    assert nfs.read_only is False
    assert model.spec.provisioning.on_delete is OnDelete.DELETE
    assert model.spec.provisioning.base_path == "/"
    assert model.spec.storage_class.reclaim_policy is ReclaimPolicy.DELETE
    assert model.spec.storage_class.volume_binding_mode is VolumeBindingMode.WAIT_FOR_FIRST_CONSUMER
    assert model.spec.storage_class.resolved_name("nfs-shared") == "nfs-shared"
    assert model.spec.mount.options == []


def test_storage_class_name_overrides_the_backend_name() -> None:
    model = backend({"emptyDir": {}, "storageClass": {"name": "fast", "isDefault": True}})
    assert model.spec.storage_class.resolved_name("scratch") == "fast"
    assert model.spec.storage_class.is_default is True
    assert model.spec.type_spec.model_dump() == {
        "medium": EmptyDirMedium.DEFAULT,
        "base_path": "/var/lib/stowage/empty-dir",
    }


def test_iscsi_pool_sizes_are_bytes() -> None:
    model = StorageBackend.model_validate(load(EXAMPLES / "storagebackends" / "iscsi.yaml"))
    iscsi = model.spec.type_spec
    assert isinstance(iscsi, IscsiSpec)
    assert [lun.size_bytes for lun in iscsi.luns] == [10 * 2**30, 10 * 2**30, 50 * 2**30]
    assert iscsi.chap_secret_ref is not None
    assert iscsi.chap_secret_ref.namespace == "stowage-system"
    assert iscsi.wipe_on_delete is True


def test_git_sync_period_in_seconds() -> None:
    model = backend({"gitRepo": {"repository": "git://10.0.0.5/site.git", "syncPeriod": "1h30m"}})
    git = model.spec.type_spec
    assert isinstance(git, GitRepoSpec)
    assert git.sync_period_seconds == 5400
    assert git.revision == "HEAD"
    assert git.depth == 1


def test_cephfs_defaults_and_secret() -> None:
    secret = {"name": "ceph", "namespace": "ceph"}
    model = backend({"cephfs": {"monitors": ["mon:6789"], "userSecretRef": secret}})
    cephfs = model.spec.type_spec
    assert isinstance(cephfs, CephfsSpec)
    assert (cephfs.fs_name, cephfs.path) == ("cephfs", "/")
    assert cephfs.user_secret_ref.model_dump() == secret


def test_existing_volume_keeps_the_kubernetes_spelling_of_volume_id() -> None:
    model = StorageBackend.model_validate(
        load(EXAMPLES / "storagebackends" / "awselasticblockstore.yaml")
    )
    manifest = model.to_manifest()["spec"]["awsElasticBlockStore"]
    assert manifest["existingVolumes"][0]["volumeID"] == "vol-0123456789abcdef0"
    assert manifest["fsType"] == FsType.XFS


def test_a_round_trip_through_the_wire_form_is_lossless() -> None:
    for path in BACKEND_EXAMPLES:
        model = StorageBackend.model_validate(load(path))
        assert StorageBackend.model_validate(model.to_manifest()) == model


def test_integer_quantities_are_read_as_text() -> None:
    luns = [{"lun": 0, "size": 1073741824}, {"lun": 1, "size": "1Gi"}]
    model = backend({"iscsi": {"portals": ["t:3260"], "iqn": "iqn.2024-01.a.b:c", "luns": luns}})
    iscsi = model.spec.type_spec
    assert isinstance(iscsi, IscsiSpec)
    assert [lun.size for lun in iscsi.luns] == ["1073741824", "1Gi"]
    assert {lun.size_bytes for lun in iscsi.luns} == {2**30}


@pytest.mark.parametrize(
    ("spec", "complaint"),
    [
        ({}, "exactly one storage type"),
        ({"nfs": {"servers": ["a"], "path": "/x"}, "emptyDir": {}}, "exactly one storage type"),
        ({"nfs": {"servers": [], "path": "/x"}}, "servers"),
        ({"glusterfs": {"hosts": ["a"]}}, "volume"),
        ({"iscsi": {"portals": ["t"], "iqn": "iqn.2024-01.a.b:c", "luns": []}}, "luns"),
        ({"iscsi": {"portals": ["t"], "iqn": "nope", "luns": [{"lun": 0, "size": 1}]}}, "iqn"),
        (
            {
                "iscsi": {
                    "portals": ["t"],
                    "iqn": "iqn.2024-01.a.b",
                    "luns": [{"lun": 0, "size": 0}],
                }
            },
            "greater than zero",
        ),
        (
            {
                "iscsi": {
                    "portals": ["t"],
                    "iqn": "iqn.2024-01.a.b",
                    "luns": [{"lun": 0, "size": "x"}],
                }
            },
            "not a quantity",
        ),
        ({"rbd": {"monitors": ["m"], "pool": "kube"}}, "userSecretRef"),
        ({"gitRepo": {"repository": "-oProxyCommand=x"}}, "repository"),
        ({"gitRepo": {"repository": "https://h/r", "syncPeriod": "1d"}}, "syncPeriod"),
        (
            {
                "cifs": {
                    "servers": ["s"],
                    "share": "a/b",
                    "secretRef": {"name": "s", "namespace": "n"},
                }
            },
            "share",
        ),
        ({"lvm": {"volumeGroup": "-vg"}}, "volumeGroup"),
        ({"emptyDir": {"medium": "HugePages"}}, "medium"),
    ],
)
def test_invalid_backend_specs_are_refused(spec: dict[str, Any], complaint: str) -> None:
    with pytest.raises(ValidationError, match=complaint):
        backend(spec)


def nas_share_example() -> dict[str, Any]:
    return load(EXAMPLES / "nasshare.yaml")


def test_nas_share_example() -> None:
    share = NASShare.model_validate(nas_share_example())
    assert share.spec.protocols == [ShareProtocol.NFS, ShareProtocol.SMB]
    assert share.spec.size_bytes == 50 * 2**30
    assert share.spec.nfs is not None
    assert [(c.cidr, c.access, c.squash) for c in share.spec.nfs.clients] == [
        ("10.0.0.0/8", NfsAccess.READ_WRITE, NfsSquash.ROOT_SQUASH),
        ("192.168.10.0/24", NfsAccess.READ_ONLY, NfsSquash.ALL_SQUASH),
    ]
    assert share.spec.smb is not None
    assert share.spec.smb.users_secret_ref.name == "team-a-smb"
    assert share.spec.claim.resolved_name("team-a") == "team-a-share"
    assert share.spec.replicas == 1


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        ({"protocols": []}, "protocols"),
        ({"replicas": 3}, "replicas"),
        ({"size": "0"}, "greater than zero"),
        ({"size": "lots"}, "not a quantity"),
        ({"protocols": ["nfs", "afp"]}, "protocols"),
    ],
)
def test_invalid_nas_shares_are_refused(change: dict[str, Any], complaint: str) -> None:
    manifest = copy.deepcopy(nas_share_example())
    manifest["spec"].update(change)
    with pytest.raises(ValidationError, match=complaint):
        NASShare.model_validate(manifest)


def test_status_reads_what_the_operator_writes() -> None:
    manifest = load(EXAMPLES / "storagebackends" / "glusterfs.yaml")
    manifest["status"] = {
        "observedGeneration": 3,
        "conditions": [
            {"type": "Ready", "status": "True", "reason": "Mounted", "message": "3/3 mounted"}
        ],
        "nodes": {"mounted": 3, "failed": 0},
        "volumes": 12,
        "storageType": "glusterfs",
        "kopf": {"progress": {"anything": {"goes": 1}}},
    }
    status = StorageBackend.model_validate(manifest).status
    assert status is not None
    assert status.conditions[0].reason == "Mounted"
    assert status.storage_type is StorageType.GLUSTERFS
    assert status.kopf == {"progress": {"anything": {"goes": 1}}}
