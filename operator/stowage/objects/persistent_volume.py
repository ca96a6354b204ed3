"""PersistentVolumes: one per provisioned claim, and one per existing cloud disk."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from stowage.api.backend import ReclaimPolicy
from stowage.api.common import format_quantity
from stowage.drivers.base import (
    PROVISIONED_BY_ANNOTATION,
    PROVISIONER,
    AccessMode,
    BackendRef,
    ClaimRequest,
    NodeRequirement,
    StaticVolume,
    VolumeMode,
    VolumePlan,
)
from stowage.objects.metadata import backend_labels, node_affinity

VOLUME_NAME_PREFIX = "pvc-"


def volume_name(claim_uid: str) -> str:
    """Derived from the claim's UID, so a retried create can never make a second volume."""
    return VOLUME_NAME_PREFIX + claim_uid


def _spec(
    *,
    capacity_bytes: int,
    access_modes: Sequence[str],
    volume_mode: str,
    reclaim_policy: ReclaimPolicy,
    storage_class: str,
    source: dict[str, Any],
    mount_options: Sequence[str],
    node_requirements: Sequence[NodeRequirement],
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "capacity": {"storage": format_quantity(capacity_bytes)},
        "accessModes": [str(mode) for mode in access_modes],
        "volumeMode": str(volume_mode),
        "persistentVolumeReclaimPolicy": reclaim_policy.value,
        "storageClassName": storage_class,
        **source,
    }
    if mount_options:
        spec["mountOptions"] = list(mount_options)
    if node_requirements:
        spec["nodeAffinity"] = node_affinity(node_requirements)
    return spec


def persistent_volume(
    backend: BackendRef, claim: ClaimRequest, plan: VolumePlan, source: dict[str, Any]
) -> dict[str, Any]:
    """The PV for a claim, pre-bound to it (claimRef with its UID)."""
    class_spec = backend.spec.storage_class
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {
            "name": volume_name(claim.uid),
            "labels": backend_labels(backend.name),
            "annotations": {
                PROVISIONED_BY_ANNOTATION: PROVISIONER,
                **plan.location.annotations(),
            },
        },
        "spec": {
            **_spec(
                capacity_bytes=plan.capacity_bytes,
                access_modes=plan.access_modes,
                volume_mode=plan.volume_mode,
                reclaim_policy=class_spec.reclaim_policy,
                storage_class=claim.storage_class or class_spec.resolved_name(backend.name),
                source=source,
                mount_options=plan.mount_options,
                node_requirements=plan.node_requirements,
            ),
            "claimRef": {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "namespace": claim.namespace,
                "name": claim.name,
                "uid": claim.uid,
            },
        },
    }


def static_persistent_volume(backend: BackendRef, volume: StaticVolume) -> dict[str, Any]:
    """The PV of a disk that existed before: any claim of the class may bind it; Retain, so
    that releasing it never deletes the disk."""
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": volume.name, "labels": backend_labels(backend.name)},
        "spec": _spec(
            capacity_bytes=volume.capacity_bytes,
            access_modes=(AccessMode.READ_WRITE_ONCE.value,),
            volume_mode=VolumeMode.FILESYSTEM.value,
            reclaim_policy=ReclaimPolicy.RETAIN,
            storage_class=backend.spec.storage_class.resolved_name(backend.name),
            source=volume.source,
            mount_options=volume.mount_options,
            node_requirements=volume.node_requirements,
        ),
    }
