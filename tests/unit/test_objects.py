"""The StorageClass and PersistentVolume manifests, and reading facts back from them."""

from __future__ import annotations

from typing import Any

import pytest

from stowage import objects
from stowage.api.backend import StorageBackend
from stowage.drivers import driver_for
from stowage.drivers.base import (
    BackendRef,
    CandidateNode,
    ClaimRequest,
    DataLocation,
    ProvisionContext,
    ProvisionedVolume,
)

pytestmark = pytest.mark.unit

UID = "8f14e45f-ceea-467f-a0e6-7bdc2b1c9b33"
HOST_PATH = {
    "hostPath": {"path": "/srv/stowage"},
    "storageClass": {
        "name": "local-fast",
        "reclaimPolicy": "Retain",
        "volumeBindingMode": "WaitForFirstConsumer",
    },
}


def backend(name: str, spec: dict[str, Any]) -> BackendRef:
    return BackendRef(name, StorageBackend.model_validate({"spec": spec}).spec)


def test_storage_class_of_a_stowage_type() -> None:
    ref = backend("local", HOST_PATH)
    assert objects.storage_class(ref, driver_for(ref.spec.storage_type)) == {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {
            "name": "local-fast",
            "labels": {"stowage.io/backend": "local", "app.kubernetes.io/managed-by": "stowage"},
        },
        "provisioner": "stowage.io/provisioner",
        "parameters": {"stowage.io/backend": "local"},
        "reclaimPolicy": "Retain",
        "volumeBindingMode": "WaitForFirstConsumer",
        "allowVolumeExpansion": False,
    }


def test_storage_class_name_defaults_to_the_backend_and_default_class_is_annotated() -> None:
    ref = backend(
        "shared", {"nfs": {"servers": ["n"], "path": "/e"}, "storageClass": {"isDefault": True}}
    )
    manifest = objects.storage_class(ref, driver_for(ref.spec.storage_type))
    assert manifest["metadata"]["name"] == "shared"
    assert manifest["metadata"]["annotations"] == {
        "storageclass.kubernetes.io/is-default-class": "true"
    }


def test_persistent_volume_pre_bound_to_its_claim() -> None:
    ref = backend("local", HOST_PATH)
    driver = driver_for(ref.spec.storage_type)
    claim = ClaimRequest(
        "team-a",
        "data",
        UID,
        3 * 2**30,
        ("ReadWriteOncePod",),
        "Filesystem",
        "node-a",
        "local-fast",
    )
    plan = driver.plan(ref, claim, ProvisionContext())
    volume = objects.persistent_volume(ref, claim, plan, driver.persistent_volume_source(ref, plan))
    path = f"/srv/stowage/team-a-data-{UID}"
    assert volume == {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {
            "name": f"pvc-{UID}",
            "labels": {"stowage.io/backend": "local", "app.kubernetes.io/managed-by": "stowage"},
            "annotations": {
                "pv.kubernetes.io/provisioned-by": "stowage.io/provisioner",
                "stowage.io/path": path,
                "stowage.io/node": "node-a",
            },
        },
        "spec": {
            "capacity": {"storage": "3Gi"},
            "accessModes": ["ReadWriteOncePod"],
            "volumeMode": "Filesystem",
            "persistentVolumeReclaimPolicy": "Retain",
            "storageClassName": "local-fast",
            "hostPath": {"path": path, "type": "DirectoryOrCreate"},
            "nodeAffinity": {
                "required": {
                    "nodeSelectorTerms": [
                        {
                            "matchExpressions": [
                                {
                                    "key": "kubernetes.io/hostname",
                                    "operator": "In",
                                    "values": ["node-a"],
                                }
                            ]
                        }
                    ]
                }
            },
            "claimRef": {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "namespace": "team-a",
                "name": "data",
                "uid": UID,
            },
        },
    }
    # What release handling reads back from the volume is what the plan decided.
    facts = ProvisionedVolume.from_manifest(volume)
    assert facts.location == plan.location
    assert (facts.claim_namespace, facts.claim_name, facts.claim_uid) == ("team-a", "data", UID)
    assert facts.capacity_bytes == 3 * 2**30


def test_a_claim_without_a_class_name_gets_the_backends_class() -> None:
    ref = backend("local", HOST_PATH)
    driver = driver_for(ref.spec.storage_type)
    claim = ClaimRequest("team-a", "data", UID, 2**30, selected_node="node-a")
    plan = driver.plan(ref, claim, ProvisionContext())
    volume = objects.persistent_volume(ref, claim, plan, driver.persistent_volume_source(ref, plan))
    assert volume["spec"]["storageClassName"] == "local-fast"
    assert volume["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert type(volume["spec"]["accessModes"][0]) is str  # plain JSON, not enum members


def test_location_annotations_round_trip() -> None:
    location = DataLocation(
        path="/x", server="s", node="n", lun=7, block_volume="img", read_only=True
    )
    assert DataLocation.from_annotations(location.annotations()) == location
    assert DataLocation.from_annotations({}) == DataLocation()
    assert DataLocation.from_annotations({"stowage.io/lun": "seven"}).lun is None


def test_candidate_node_from_manifest() -> None:
    node = CandidateNode.from_manifest(
        {
            "metadata": {
                "name": "node-a",
                "labels": {"kubernetes.io/hostname": "node-a"},
                "annotations": {"capacity.stowage.io/fast": "20Gi", "capacity.stowage.io/bad": "x"},
            },
            "spec": {"unschedulable": True},
        }
    )
    assert node.schedulable is False
    assert node.free_bytes("fast") == 20 * 2**30
    assert node.free_bytes("bad") is None
    assert node.free_bytes("other") is None


def test_context_from_manifests() -> None:
    ctx = ProvisionContext.from_manifests(
        volumes=[
            {
                "metadata": {"name": "pvc-1", "annotations": {"stowage.io/lun": "3"}},
                "spec": {"capacity": {"storage": "5Gi"}},
            }
        ],
        nodes=[{"metadata": {"name": "node-a"}}],
    )
    assert ctx.volumes[0].location.lun == 3
    assert ctx.volumes[0].claim_uid is None
    assert [node.name for node in ctx.nodes] == ["node-a"]
