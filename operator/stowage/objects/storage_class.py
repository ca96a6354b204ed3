"""The StorageClass through which a backend is offered."""

from __future__ import annotations

from typing import Any

from stowage.drivers.base import BackendRef, Driver
from stowage.objects.metadata import backend_labels

DEFAULT_CLASS_ANNOTATION = "storageclass.kubernetes.io/is-default-class"


def storage_class(backend: BackendRef, driver: Driver) -> dict[str, Any]:
    params = driver.storage_class(backend)
    spec = backend.spec.storage_class
    metadata: dict[str, Any] = {
        "name": spec.resolved_name(backend.name),
        "labels": backend_labels(backend.name),
    }
    if spec.is_default:
        # Left out rather than "false": applying without it gives the annotation up.
        metadata["annotations"] = {DEFAULT_CLASS_ANNOTATION: "true"}
    manifest: dict[str, Any] = {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": metadata,
        "provisioner": params.provisioner,
        "parameters": dict(params.parameters),
        "reclaimPolicy": spec.reclaim_policy.value,
        "volumeBindingMode": spec.volume_binding_mode.value,
        "allowVolumeExpansion": spec.allow_volume_expansion,
    }
    if params.mount_options:
        manifest["mountOptions"] = list(params.mount_options)
    if params.allowed_topology:
        manifest["allowedTopologies"] = [
            {
                "matchLabelExpressions": [
                    {"key": requirement.key, "values": list(requirement.values)}
                    for requirement in params.allowed_topology
                ]
            }
        ]
    return manifest
