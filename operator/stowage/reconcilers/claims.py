"""Pure facts about claims and volumes for the external-provisioner protocol."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from stowage import objects
from stowage.backends import selected_node
from stowage.drivers.base import (
    BACKEND_PARAMETER,
    PROVISIONED_BY_ANNOTATION,
    PROVISIONER,
)

__all__ = ["BACKEND_PARAMETER", "PROVISIONED_BY_ANNOTATION", "PROVISIONER"]

STORAGE_PROVISIONER_ANNOTATIONS = (
    "volume.kubernetes.io/storage-provisioner",
    "volume.beta.kubernetes.io/storage-provisioner",
)
WAIT_FOR_FIRST_CONSUMER = "WaitForFirstConsumer"


def _annotations(obj: Mapping[str, Any]) -> Mapping[str, str]:
    annotations: Mapping[str, str] = (obj.get("metadata") or {}).get("annotations") or {}
    return annotations


def is_ours(claim: Mapping[str, Any]) -> bool:
    """The PV controller has handed the claim to our provisioner."""
    annotations = _annotations(claim)
    return any(annotations.get(key) == PROVISIONER for key in STORAGE_PROVISIONER_ANNOTATIONS)


def needs_volume(claim: Mapping[str, Any]) -> bool:
    """Ours, Pending, not bound to a volume yet and not being deleted."""
    return (
        is_ours(claim)
        and (claim.get("status") or {}).get("phase", "Pending") == "Pending"
        and not (claim.get("spec") or {}).get("volumeName")
        and not (claim.get("metadata") or {}).get("deletionTimestamp")
    )


def volume_name(claim: Mapping[str, Any]) -> str:
    """Derived from the claim's UID: a retry can never make a second volume."""
    return objects.volume_name(claim["metadata"]["uid"])


def waits_for_consumer(claim: Mapping[str, Any], storage_class: Mapping[str, Any]) -> bool:
    """WaitForFirstConsumer and the scheduler has not picked a node yet."""
    return (
        storage_class.get("volumeBindingMode") == WAIT_FOR_FIRST_CONSUMER
        and selected_node(claim) is None
    )


def backend_of_class(storage_class: Mapping[str, Any]) -> str | None:
    parameters: Mapping[str, str] = storage_class.get("parameters") or {}
    return parameters.get(BACKEND_PARAMETER)


def is_provisioned_by_us(volume: Mapping[str, Any]) -> bool:
    return _annotations(volume).get(PROVISIONED_BY_ANNOTATION) == PROVISIONER


def claim_key(claim: Mapping[str, Any]) -> str:
    metadata = claim["metadata"]
    return f"claim/{metadata['namespace']}/{metadata['name']}/{metadata['uid']}"


def describe_claim(claim: Mapping[str, Any]) -> str:
    metadata = claim["metadata"]
    return f"{metadata['namespace']}/{metadata['name']}"
