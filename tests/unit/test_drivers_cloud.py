"""Cloud types: the StorageClass delegates to the CSI driver; existing disks become static PVs."""

from __future__ import annotations

from typing import Any

import pytest

from stowage import objects
from stowage.api.backend import StorageBackend
from stowage.drivers import driver_for
from stowage.drivers.base import BackendRef, ClaimRequest, ProvisionContext, Unprovisionable

pytestmark = pytest.mark.unit


def backend(name: str, spec: dict[str, Any]) -> BackendRef:
    return BackendRef(name, StorageBackend.model_validate({"spec": spec}).spec)


def storage_class(ref: BackendRef) -> dict[str, Any]:
    return objects.storage_class(ref, driver_for(ref.spec.storage_type))


def static_volumes(ref: BackendRef) -> list[dict[str, Any]]:
    driver = driver_for(ref.spec.storage_type)
    return [objects.static_persistent_volume(ref, volume) for volume in driver.static_volumes(ref)]


def problems(ref: BackendRef) -> list[str]:
    return [str(problem) for problem in driver_for(ref.spec.storage_type).validate(ref)]


def test_gce_storage_class_and_existing_disk() -> None:
    ref = backend(
        "gce",
        {
            "gcePersistentDisk": {
                "type": "pd-ssd",
                "replicationType": "regional-pd",
                "fsType": "xfs",
                "existingDisks": [
                    {"pdName": "db-data", "size": "200Gi", "zone": "europe-west1-b"},
                    {"pdName": "logs", "size": "10Gi"},
                ],
            },
            "mount": {"options": ["noatime"]},
            "storageClass": {"isDefault": True},
        },
    )
    driver = driver_for(ref.spec.storage_type)
    assert driver.csi_driver_name(ref) == "pd.csi.storage.gke.io"
    manifest = storage_class(ref)
    assert manifest["provisioner"] == "pd.csi.storage.gke.io"
    assert manifest["parameters"] == {
        "type": "pd-ssd",
        "replication-type": "regional-pd",
        "csi.storage.k8s.io/fstype": "xfs",
    }
    assert manifest["mountOptions"] == ["noatime"]
    assert manifest["allowVolumeExpansion"] is False
    assert manifest["metadata"]["annotations"] == {
        "storageclass.kubernetes.io/is-default-class": "true"
    }
    zonal, unzoned = static_volumes(ref)
    assert zonal["metadata"]["name"] == "gce-db-data"
    assert zonal["spec"]["csi"] == {
        "driver": "pd.csi.storage.gke.io",
        "volumeHandle": "projects/UNSPECIFIED/zones/europe-west1-b/disks/db-data",
        "fsType": "xfs",
    }
    assert zonal["spec"]["capacity"] == {"storage": "200Gi"}
    assert zonal["spec"]["persistentVolumeReclaimPolicy"] == "Retain"
    assert zonal["spec"]["storageClassName"] == "gce"
    assert "claimRef" not in zonal["spec"]
    assert "pv.kubernetes.io/provisioned-by" not in zonal["metadata"].get("annotations", {})
    assert zonal["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"] == [
        {
            "matchExpressions": [
                {
                    "key": "topology.kubernetes.io/zone",
                    "operator": "In",
                    "values": ["europe-west1-b"],
                }
            ]
        }
    ]
    assert unzoned["spec"]["csi"]["volumeHandle"] == (
        "projects/UNSPECIFIED/zones/UNSPECIFIED/disks/logs"
    )
    assert "nodeAffinity" not in unzoned["spec"]


def test_ebs_parameters_and_existing_volume() -> None:
    ref = backend(
        "ebs",
        {
            "awsElasticBlockStore": {
                "type": "gp3",
                "iops": 4000,
                "throughput": 250,
                "encrypted": True,
                "kmsKeyId": "arn:aws:kms:eu-west-1:111122223333:key/abcd",
                "existingVolumes": [
                    {"volumeID": "vol-0123456789abcdef0", "size": "50Gi", "zone": "eu-west-1a"}
                ],
            }
        },
    )
    manifest = storage_class(ref)
    assert manifest["provisioner"] == "ebs.csi.aws.com"
    assert manifest["parameters"] == {
        "type": "gp3",
        "encrypted": "true",
        "iops": "4000",
        "throughput": "250",
        "kmsKeyId": "arn:aws:kms:eu-west-1:111122223333:key/abcd",
        "csi.storage.k8s.io/fstype": "ext4",
    }
    [volume] = static_volumes(ref)
    assert volume["metadata"]["name"] == "ebs-vol-0123456789abcdef0"
    assert volume["spec"]["csi"]["volumeHandle"] == "vol-0123456789abcdef0"
    assert volume["spec"]["accessModes"] == ["ReadWriteOnce"]


def test_ebs_validation() -> None:
    ref = backend(
        "ebs",
        {
            "awsElasticBlockStore": {
                "type": "io2",
                "existingVolumes": [{"volumeID": "disk-1", "size": "1Gi"}],
            },
            "provisioning": {"onDelete": "Archive"},
        },
    )
    assert problems(ref) == [
        "awsElasticBlockStore.existingVolumes[0].volumeID: is not an EBS volume ID "
        "(vol- and 8 or 17 hexadecimal digits)",
        "awsElasticBlockStore.iops: is required for the type io2",
        "provisioning.onDelete: does not apply to disks the CSI driver ebs.csi.aws.com "
        "provisions; set storageClass.reclaimPolicy: Retain to keep released disks",
    ]


def test_cinder_parameters_only_what_is_set() -> None:
    plain = backend("os", {"cinder": {}})
    assert storage_class(plain)["parameters"] == {"csi.storage.k8s.io/fstype": "ext4"}
    ref = backend(
        "os",
        {
            "cinder": {
                "type": "ssd",
                "availability": "nova",
                "existingVolumes": [
                    {"volumeID": "2F1C7A8E-3B7D-4E6A-9C1B-0D2E3F4A5B6C", "size": "5Gi"},
                    {"volumeID": "not-a-uuid", "size": "5Gi"},
                ],
            }
        },
    )
    assert storage_class(ref)["provisioner"] == "cinder.csi.openstack.org"
    assert storage_class(ref)["parameters"] == {
        "type": "ssd",
        "availability": "nova",
        "csi.storage.k8s.io/fstype": "ext4",
    }
    assert problems(ref) == ["cinder.existingVolumes[1].volumeID: is not a Cinder volume UUID"]
    first, _ = static_volumes(ref)
    assert first["metadata"]["name"] == "os-2f1c7a8e-3b7d-4e6a-9c1b-0d2e3f4a5b6c"


@pytest.mark.parametrize("type_field", ["gcePersistentDisk", "awsElasticBlockStore", "cinder"])
def test_claims_of_cloud_types_are_never_provisioned_by_stowage(type_field: str) -> None:
    ref = backend("cloud", {type_field: {}})
    claim = ClaimRequest("team", "data", "0b6e2a5d-5c4f-4c65-9f3a-1a2b3c4d5e6f", 2**30)
    with pytest.raises(Unprovisionable, match="provisioned by the CSI driver"):
        driver_for(ref.spec.storage_type).plan(ref, claim, ProvisionContext())
    assert storage_class(ref).get("allowedTopologies") is None
    assert "stowage.io/backend" not in storage_class(ref)["parameters"]
    assert storage_class(ref)["metadata"]["labels"]["stowage.io/backend"] == "cloud"
