"""The StorageBackend reconciler's decisions, from facts to conditions and status writes."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from stowage.api.backend import StorageType
from stowage.backends import parse_backend
from stowage.reconcilers.backend_state import (
    APPLIED_HASH_ANNOTATION,
    Facts,
    SecretFinding,
    degraded_condition,
    immutable_fields_differ,
    is_owned_by,
    mount_failures,
    needs_apply,
    node_mounts,
    owned_manifest,
    ready_condition,
    status_update,
    waiting_for_volumes,
)
from stowage.status import READY, desired

pytestmark = pytest.mark.unit

BACKEND: dict[str, Any] = {
    "metadata": {"name": "files", "uid": "u-1", "generation": 4},
    "spec": {"hostPath": {"path": "/srv/k8s"}},
}
T0 = "2025-01-01T00:00:00Z"


def ready(facts: Facts) -> tuple[str, str, str]:
    condition = ready_condition(facts, StorageType.HOST_PATH)
    return condition.status.value, condition.reason, condition.message


def test_invalid_spec_is_described_without_echoing_values() -> None:
    both = {"hostPath": {"path": "/a"}, "nfs": {"servers": ["nas"], "path": "/secret-path"}}
    problem = parse_backend({"spec": both})
    assert isinstance(problem, str)
    assert "exactly one storage type" in problem
    assert "/secret-path" not in problem
    assert parse_backend({"spec": {"nfs": {"servers": ["nas"]}}}) == "spec.nfs.path: Field required"
    assert not isinstance(parse_backend(BACKEND), str)


def test_missing_secret_and_missing_key_are_named() -> None:
    missing = SecretFinding("storage", "chap", ("username", "password"), None)
    assert ready(Facts(secrets=(missing,), storage_class_name="files")) == (
        "False",
        "SecretMissing",
        "Secret storage/chap does not exist",
    )
    partial = SecretFinding("storage", "chap", ("username", "password"), frozenset({"username"}))
    assert ready(Facts(secrets=(partial,), storage_class_name="files"))[1:] == (
        "SecretKeyMissing",
        "Secret storage/chap has no key password",
    )


def test_csi_driver_missing_then_ready() -> None:
    facts = Facts(
        csi_driver="pd.csi.storage.gke.io", csi_driver_installed=False, storage_class_name="disks"
    )
    status, reason, message = ready(facts)
    assert (status, reason) == ("False", "CSIDriverMissing")
    assert "pd.csi.storage.gke.io" in message
    installed = Facts(csi_driver="pd.csi.storage.gke.io", storage_class_name="disks")
    assert ready(installed)[:2] == ("True", "Available")


def test_a_foreign_storage_class_is_a_conflict() -> None:
    assert ready(Facts(storage_class_foreign=True, storage_class_name="std"))[1] == (
        "StorageClassConflict"
    )


def test_status_update_writes_only_what_changed() -> None:
    conditions = [desired(READY, True, "Available", "ok")]
    first = status_update({}, conditions, generation=4, now=T0, volumes=2, storageType="hostPath")
    assert set(first.fields) == {"observedGeneration", "conditions", "volumes", "storageType"}
    assert [c.reason for c in first.changed] == ["Available"]
    current = dict(first.fields)
    again = status_update(
        current, conditions, generation=4, now=T0, volumes=2, storageType="hostPath"
    )
    assert again.fields == {}
    assert again.changed == []
    more_volumes = status_update(
        current, conditions, generation=4, now=T0, volumes=3, storageType="hostPath"
    )
    assert more_volumes.fields == {"volumes": 3}
    new_generation = status_update(
        current, conditions, generation=5, now=T0, volumes=2, storageType="hostPath"
    )
    assert new_generation.fields["observedGeneration"] == 5
    assert new_generation.fields["conditions"][0]["observedGeneration"] == 5
    assert new_generation.changed == []


def test_owned_manifest_hash_notices_drift_and_ownership() -> None:
    manifest = {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {"name": "files"},
        "provisioner": "stowage.io/provisioner",
    }
    owned = owned_manifest(manifest, BACKEND)
    assert is_owned_by(owned, BACKEND)
    assert not is_owned_by(manifest, BACKEND)
    assert needs_apply(owned, None)
    assert not needs_apply(owned, owned)
    changed = owned_manifest({**manifest, "allowVolumeExpansion": True}, BACKEND)
    assert (
        changed["metadata"]["annotations"][APPLIED_HASH_ANNOTATION]
        != (owned["metadata"]["annotations"][APPLIED_HASH_ANNOTATION])
    )
    assert needs_apply(changed, owned)
    assert not immutable_fields_differ(changed, owned)
    recreate = owned_manifest({**manifest, "parameters": {"stowage.io/backend": "x"}}, BACKEND)
    assert immutable_fields_differ(recreate, owned)
    # Defaults the API server fills in do not count as a difference.
    assert not immutable_fields_differ(owned, {**owned, "reclaimPolicy": "Delete"})


def test_deletion_wait_names_the_volumes() -> None:
    condition = waiting_for_volumes([f"pvc-{i}" for i in range(12)])
    assert condition.reason == "DeletionWaitingForVolumes"
    assert condition.message.startswith("deletion waits for 12 PersistentVolume(s)")
    assert "pvc-0" in condition.message
    assert "and 2 more" in condition.message


def test_nodes_where_the_helper_failed_make_the_backend_degraded() -> None:
    nodes = [
        {
            "metadata": {"name": f"node-{i}", "labels": {"mount.stowage.io/files": state}},
            "status": {"conditions": [{"type": "Ready", "status": "True"}]},
        }
        for i, state in enumerate(["ready", "failed", "ready", "failed"])
    ] + [{"metadata": {"name": "unlabelled"}}]
    mounts = node_mounts("files", nodes)
    assert mounts == {"ready": ["node-0", "node-2"], "failed": ["node-1", "node-3"]}
    condition = degraded_condition(Facts(mount_failed_nodes=tuple(mounts["failed"])))
    assert (condition.status.value, condition.reason) == ("True", "MountFailed")
    assert "on 2 node(s): node-1, node-3" in condition.message
    healthy = degraded_condition(Facts())
    assert (healthy.status.value, healthy.reason) == ("False", "AsExpected")


def test_a_backend_no_node_can_use_is_not_ready_and_says_why() -> None:
    annotation = "mount-failure.stowage.io/files"
    nodes = [
        {
            "metadata": {
                "name": name,
                "labels": {"mount.stowage.io/files": "failed"},
                "annotations": {annotation: f"10.0.0.1 does not export /gone ({name})"},
            },
            "status": {"conditions": [{"type": "Ready", "status": "True"}]},
        }
        for name in ("node-b", "node-a")
    ]
    failed = tuple(node_mounts("files", nodes)["failed"])
    facts = Facts(mount_failed_nodes=failed, mount_failures=mount_failures("files", nodes))
    condition = ready_condition(facts, StorageType.NFS)
    assert (condition.status.value, condition.reason) == ("False", "MountFailed")
    assert "cannot use the backend on any node (node-a, node-b failed)" in condition.message
    assert "node node-a: 10.0.0.1 does not export /gone (node-a)" in condition.message
    one_ready = dataclasses.replace(facts, mounted_nodes=("node-c",))
    assert ready_condition(one_ready, StorageType.NFS).status.value == "True"


def test_a_node_that_is_not_ready_is_reported_lost_whatever_its_label_says() -> None:
    def node(name: str, label: str, ready: str) -> dict[str, Any]:
        return {
            "metadata": {"name": name, "labels": {"mount.stowage.io/files": label}},
            "status": {"conditions": [{"type": "Ready", "status": ready}]},
        }

    nodes = [
        node("a", "ready", "True"),
        node("b", "ready", "Unknown"),
        node("c", "failed", "False"),
    ]
    mounts = node_mounts("files", nodes)
    assert mounts == {"ready": ["a"], "lost": ["b", "c"]}
    facts = Facts(mounted_nodes=("a",), lost_nodes=tuple(mounts["lost"]))
    condition = degraded_condition(facts)
    assert (condition.status.value, condition.reason) == ("True", "NodeLost")
    assert condition.message.startswith("2 node(s) that used the backend are not Ready: b, c;")
    assert ready_condition(facts, StorageType.GLUSTERFS).status.value == "True"
