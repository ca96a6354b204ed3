"""Pure decisions of the StorageBackend reconciler: what the conditions say, what status to write,
whether the StorageClass has drifted. No I/O here: the handlers gather the facts and act.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from stowage.api.backend import StorageType
from stowage.api.common import API_VERSION, Condition
from stowage.drivers.base import mount_failure_annotation, mount_label, node_ready
from stowage.kube import Json
from stowage.status import DEGRADED, READY, desired, merge, transitions

APPLIED_HASH_ANNOTATION = "stowage.io/applied-hash"
# node_mounts' key for the nodes whose kubelet is not Ready.
NODE_LOST = "lost"
# A StorageClass can change none of these once created: a change means delete and recreate.
IMMUTABLE_STORAGE_CLASS_FIELDS = (
    "provisioner",
    "parameters",
    "reclaimPolicy",
    "volumeBindingMode",
    "mountOptions",
    "allowedTopologies",
)


class Reason:
    AVAILABLE = "Available"
    INVALID_SPEC = "InvalidSpec"
    SECRET_MISSING = "SecretMissing"
    SECRET_KEY_MISSING = "SecretKeyMissing"
    CSI_DRIVER_MISSING = "CSIDriverMissing"
    STORAGE_CLASS_CONFLICT = "StorageClassConflict"
    STORAGE_CLASS_FAILED = "StorageClassFailed"
    DELETION_WAITING = "DeletionWaitingForVolumes"
    AS_EXPECTED = "AsExpected"
    STATIC_VOLUMES_FAILED = "StaticVolumesFailed"
    HELPER_FAILED = "HelperFailed"
    MOUNT_FAILED = "MountFailed"
    NODE_LOST = "NodeLost"
    PORTAL_UNREACHABLE = "PortalUnreachable"


@dataclass(frozen=True)
class SecretFinding:
    namespace: str
    name: str
    keys_needed: tuple[str, ...]
    keys_present: frozenset[str] | None  # None: the Secret does not exist

    @property
    def missing_keys(self) -> tuple[str, ...]:
        present = self.keys_present or frozenset()
        return tuple(key for key in self.keys_needed if key not in present)


@dataclass(frozen=True)
class Facts:
    """What the handler found out about one backend."""

    spec_problems: tuple[str, ...] = ()
    secrets: tuple[SecretFinding, ...] = ()
    csi_driver: str | None = None
    csi_driver_installed: bool = True
    storage_class_name: str = ""
    storage_class_error: str | None = None
    storage_class_foreign: bool = False
    static_volume_errors: tuple[str, ...] = field(default_factory=tuple)
    helper_error: str | None = None
    mount_failed_nodes: tuple[str, ...] = ()
    mounted_nodes: tuple[str, ...] = ()
    # Nodes with a mount label whose kubelet is not Ready: what their helper said last is stale.
    lost_nodes: tuple[str, ...] = ()
    # "node: why" for failed nodes whose helper said why.
    mount_failures: tuple[str, ...] = ()
    # "portal: why" for each server the operator could not open a TCP connection to.
    unreachable_servers: tuple[str, ...] = ()


def ready_condition(facts: Facts, storage_type: StorageType | None) -> Condition:
    if facts.spec_problems:
        return desired(READY, False, Reason.INVALID_SPEC, "; ".join(facts.spec_problems))
    for secret in facts.secrets:
        where = f"{secret.namespace}/{secret.name}"
        if secret.keys_present is None:
            return desired(READY, False, Reason.SECRET_MISSING, f"Secret {where} does not exist")
        if secret.missing_keys:
            return desired(
                READY,
                False,
                Reason.SECRET_KEY_MISSING,
                f"Secret {where} has no key {', '.join(secret.missing_keys)}",
            )
    if facts.storage_class_foreign:
        return desired(
            READY,
            False,
            Reason.STORAGE_CLASS_CONFLICT,
            f"StorageClass {facts.storage_class_name} exists and does not belong to this "
            "backend; choose another spec.storageClass.name",
        )
    if facts.storage_class_error:
        return desired(READY, False, Reason.STORAGE_CLASS_FAILED, facts.storage_class_error)
    if facts.helper_error:
        return desired(READY, False, Reason.HELPER_FAILED, facts.helper_error)
    if facts.mount_failed_nodes and not facts.mounted_nodes:
        return desired(READY, False, Reason.MOUNT_FAILED, no_node_can_mount(facts))
    if facts.csi_driver and not facts.csi_driver_installed:
        return desired(
            READY,
            False,
            Reason.CSI_DRIVER_MISSING,
            f"CSIDriver {facts.csi_driver} is not installed; StorageClass "
            f"{facts.storage_class_name} delegates to it",
        )
    kind = storage_type.value if storage_type else "storage"
    return desired(
        READY,
        True,
        Reason.AVAILABLE,
        f"StorageClass {facts.storage_class_name} offers {kind} volumes",
    )


def no_node_can_mount(facts: Facts) -> str:
    failed = facts.mount_failed_nodes
    reasons = f": {'; '.join(facts.mount_failures[:3])}" if facts.mount_failures else ""
    return (
        f"the mount helper cannot use the backend on any node ({listed(failed)} failed)"
        f"{reasons}; claims wait until a node can"
    )


def degraded_condition(facts: Facts) -> Condition:
    if facts.static_volume_errors:
        return desired(
            DEGRADED, True, Reason.STATIC_VOLUMES_FAILED, "; ".join(facts.static_volume_errors)
        )
    if facts.mount_failed_nodes:
        failed = facts.mount_failed_nodes
        return desired(
            DEGRADED,
            True,
            Reason.MOUNT_FAILED,
            f"the mount helper cannot mount the backend on {len(failed)} node(s): "
            f"{listed(failed)}; their volumes are not scheduled there (see the backend's "
            "MountFailed Events)",
        )
    if facts.lost_nodes:
        return desired(
            DEGRADED,
            True,
            Reason.NODE_LOST,
            f"{len(facts.lost_nodes)} node(s) that used the backend are not Ready: "
            f"{listed(facts.lost_nodes)}; their mounts and volumes cannot be checked, and no new "
            "volume goes there until they are back",
        )
    if facts.unreachable_servers:
        return desired(
            DEGRADED,
            True,
            Reason.PORTAL_UNREACHABLE,
            f"no TCP connection from the operator to {'; '.join(facts.unreachable_servers)}; "
            "claims still get LUNs, but nodes cannot log in while it lasts",
        )
    return desired(DEGRADED, False, Reason.AS_EXPECTED, "")


def mount_failures(backend_name: str, nodes: Sequence[Mapping[str, Any]]) -> tuple[str, ...]:
    """`node: why` for each node whose helper says why it cannot use the backend."""
    annotation = mount_failure_annotation(backend_name)
    found = []
    for node in sorted(nodes, key=lambda node: str(node["metadata"]["name"])):
        why = (node["metadata"].get("annotations") or {}).get(annotation)
        if why:
            found.append(f"node {node['metadata']['name']}: {why}")
    return tuple(found)


def node_mounts(backend_name: str, nodes: Sequence[Mapping[str, Any]]) -> dict[str, list[str]]:
    """Node names by the value of their mount label for the backend (ready, failed), and
    under NODE_LOST those with a label whose kubelet is not Ready (whatever the label says)."""
    label = mount_label(backend_name)
    found: dict[str, list[str]] = {}
    for node in nodes:
        value = ((node.get("metadata") or {}).get("labels") or {}).get(label)
        if value:
            key = value if node_ready(node) else NODE_LOST
            found.setdefault(key, []).append(node["metadata"]["name"])
    return found


def listed(names: Sequence[str], most: int = 10) -> str:
    """`a, b, c and 7 more`: names for a condition message, never unbounded."""
    ordered = sorted(names)
    more = f" and {len(ordered) - most} more" if len(ordered) > most else ""
    return ", ".join(ordered[:most]) + more


def waiting_for_volumes(volume_names: Sequence[str]) -> Condition:
    return desired(
        READY,
        False,
        Reason.DELETION_WAITING,
        f"deletion waits for {len(volume_names)} PersistentVolume(s) provisioned from this "
        f"backend: {listed(volume_names)}",
    )


@dataclass(frozen=True)
class StatusUpdate:
    """The status fields that differ from the current status, and the conditions that changed."""

    fields: dict[str, Any]
    changed: list[Condition]


def status_update(
    current: Mapping[str, Any],
    conditions: Sequence[Condition],
    *,
    generation: int,
    now: str,
    **observed: Any,
) -> StatusUpdate:
    current_conditions = list(current.get("conditions") or [])
    changed = transitions(current_conditions, conditions)
    wanted: dict[str, Any] = {"observedGeneration": generation, **observed}
    if changed or any(
        c.get("observedGeneration") != generation
        for c in current_conditions
        if c.get("type") in {w.type for w in conditions}
    ):
        wanted["conditions"] = merge(current_conditions, conditions, generation=generation, now=now)
    fields = {key: value for key, value in wanted.items() if current.get(key) != value}
    return StatusUpdate(fields, changed)


def owner_reference(body: Mapping[str, Any]) -> Json:
    """A controller reference to a stowage resource (a StorageBackend unless the body says)."""
    metadata = body["metadata"]
    return {
        "apiVersion": API_VERSION,
        "kind": body.get("kind") or "StorageBackend",
        "name": metadata["name"],
        "uid": metadata["uid"],
        "controller": True,
    }


def content_hash(manifest: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(manifest, sort_keys=True).encode()).hexdigest()[:16]


def owned_manifest(manifest: Json, owner: Mapping[str, Any]) -> Json:
    """The manifest with the owner reference and a hash of its content (to notice drift)."""
    metadata = dict(manifest.get("metadata") or {})
    metadata["ownerReferences"] = [owner_reference(owner)]
    owned = {**manifest, "metadata": metadata}
    metadata["annotations"] = {
        **(metadata.get("annotations") or {}),
        APPLIED_HASH_ANNOTATION: content_hash(owned),
    }
    return owned


def is_owned_by(obj: Mapping[str, Any], owner: Mapping[str, Any]) -> bool:
    uid = owner["metadata"]["uid"]
    references = (obj.get("metadata") or {}).get("ownerReferences") or []
    return any(reference.get("uid") == uid for reference in references)


def needs_apply(desired_manifest: Mapping[str, Any], observed: Mapping[str, Any] | None) -> bool:
    if observed is None:
        return True
    wanted = desired_manifest["metadata"]["annotations"][APPLIED_HASH_ANNOTATION]
    annotations = (observed.get("metadata") or {}).get("annotations") or {}
    return bool(annotations.get(APPLIED_HASH_ANNOTATION) != wanted)


def immutable_fields_differ(
    desired_manifest: Mapping[str, Any], observed: Mapping[str, Any] | None
) -> bool:
    """Only fields the manifest sets count: the API server fills in defaults for the others."""
    if observed is None:
        return False
    return any(
        key in desired_manifest and desired_manifest[key] != observed.get(key)
        for key in IMMUTABLE_STORAGE_CLASS_FIELDS
    )
