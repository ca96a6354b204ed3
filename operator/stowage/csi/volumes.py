"""CSI requests in stowage's terms, and back: pure functions, no I/O.

A CSI volume's ID is the name of its BackendVolume record, which holds the rest (the ID alone
must stay within the CSI spec's 128 bytes). The volume context, handed to every node call,
carries what the node plugin needs to publish the volume without asking the API server.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from stowage.api.common import API_VERSION
from stowage.api.volume import NODE_DATA_FINALIZER, BackendVolume, BackendVolumeSpec
from stowage.csi.proto import csi_pb2
from stowage.drivers.base import (
    CSI_TOPOLOGY_KEY,
    MOUNT_READY,
    AccessMode,
    ClaimRequest,
    NewDirectory,
    VolumeMode,
    VolumePlan,
    mount_label,
)
from stowage.kube import Json

# The node label the kubelet sets from NodeGetInfo's topology, and node-local volumes require.
TOPOLOGY_KEY = CSI_TOPOLOGY_KEY
# What the external-provisioner adds to CreateVolume's parameters with --extra-create-metadata.
CLAIM_NAME_PARAMETER = "csi.storage.k8s.io/pvc/name"
CLAIM_NAMESPACE_PARAMETER = "csi.storage.k8s.io/pvc/namespace"

# The labels of a record: its backend, and the node that holds its data (node_label).
BACKEND_LABEL = "stowage.io/backend"
NODE_LABEL = "stowage.io/node"

VOLUME_ID_MAX_BYTES = 128
_PROVISIONER_NAME = re.compile(
    r"^pvc-([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$"
)
_OBJECT_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DIGEST_LENGTH = 32

Mode = csi_pb2.VolumeCapability.AccessMode.Mode
# CSI access modes as Kubernetes names them (what a driver's access-mode rules are written in).
ACCESS_MODES: Mapping[int, AccessMode] = {
    Mode.SINGLE_NODE_WRITER: AccessMode.READ_WRITE_ONCE,
    Mode.SINGLE_NODE_MULTI_WRITER: AccessMode.READ_WRITE_ONCE,
    Mode.SINGLE_NODE_READER_ONLY: AccessMode.READ_WRITE_ONCE,
    Mode.SINGLE_NODE_SINGLE_WRITER: AccessMode.READ_WRITE_ONCE_POD,
    Mode.MULTI_NODE_READER_ONLY: AccessMode.READ_ONLY_MANY,
    Mode.MULTI_NODE_SINGLE_WRITER: AccessMode.READ_WRITE_MANY,
    Mode.MULTI_NODE_MULTI_WRITER: AccessMode.READ_WRITE_MANY,
}


class BadRequest(ValueError):  # noqa: N818 - reads as "raise BadRequest(why)"
    """The request cannot be served as given (INVALID_ARGUMENT); the message says why."""


def volume_id(name: str) -> str:
    """The ID (and record name) of the volume CreateVolume calls `name`: the name itself
    when it is a valid object name, else its readable part and a digest, so that names that
    differ only in case or punctuation stay apart."""
    if not name:
        raise BadRequest("the volume name is empty")
    if len(name) <= VOLUME_ID_MAX_BYTES and _OBJECT_NAME.match(name):
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:_DIGEST_LENGTH]
    readable = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    readable = readable[: VOLUME_ID_MAX_BYTES - _DIGEST_LENGTH - 1].rstrip("-")
    return f"{readable}-{digest}" if readable else digest


_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
LABEL_VALUE_MAX_LENGTH = 63


def node_label(node: str) -> str:
    """The value of a record's label `stowage.io/node`: the node's name, or a digest of a name
    too long for a label value (node names may have 253 characters)."""
    if len(node) <= LABEL_VALUE_MAX_LENGTH and _LABEL_VALUE.match(node):
        return node
    return "node-" + hashlib.sha256(node.encode()).hexdigest()[:40]


def claim_uid(name: str) -> str:
    """The claim UID in an external-provisioner's `pvc-<uid>` name; a digest of any other
    name (unique per name, as a UID is)."""
    match = _PROVISIONER_NAME.match(name)
    if match:
        return match[1]
    return hashlib.sha256(name.encode()).hexdigest()[:_DIGEST_LENGTH]


def access_modes(capabilities: Iterable[csi_pb2.VolumeCapability]) -> tuple[str, ...]:
    modes: list[str] = []
    for capability in capabilities:
        mode = ACCESS_MODES.get(capability.access_mode.mode)
        if mode is None:
            raise BadRequest("a volume capability has no access mode")
        if mode not in modes:
            modes.append(mode)
    return tuple(modes)


def volume_mode(capabilities: Iterable[csi_pb2.VolumeCapability]) -> VolumeMode:
    kinds = {capability.WhichOneof("access_type") for capability in capabilities}
    if None in kinds:
        raise BadRequest("a volume capability is neither mount nor block")
    if kinds == {"block"}:
        return VolumeMode.BLOCK
    if kinds == {"mount"}:
        return VolumeMode.FILESYSTEM
    raise BadRequest("a volume cannot be both mount and block")


def requested_bytes(capacity: csi_pb2.CapacityRange) -> int:
    """The bytes to grant: the required ones, else the limit, else nothing in particular."""
    if capacity.limit_bytes and capacity.required_bytes > capacity.limit_bytes:
        raise BadRequest("required_bytes is above limit_bytes")
    return capacity.required_bytes or capacity.limit_bytes


def preferred_node(requirement: csi_pb2.TopologyRequirement) -> str | None:
    """The node the scheduler chose (the first preferred topology, for WaitForFirstConsumer);
    None when the CO leaves the choice to the driver."""
    for topology in (*requirement.preferred, *requirement.requisite):
        node = topology.segments.get(TOPOLOGY_KEY)
        if node:
            return node
    return None


def claim_request(request: csi_pb2.CreateVolumeRequest) -> ClaimRequest:
    """The claim's facts as the drivers plan with them."""
    if not request.volume_capabilities:
        raise BadRequest("no volume capabilities given")
    parameters = request.parameters
    return ClaimRequest(
        namespace=parameters.get(CLAIM_NAMESPACE_PARAMETER, ""),
        name=parameters.get(CLAIM_NAME_PARAMETER, ""),
        uid=claim_uid(request.name),
        requested_bytes=requested_bytes(request.capacity_range),
        access_modes=access_modes(request.volume_capabilities),
        volume_mode=volume_mode(request.volume_capabilities),
        selected_node=preferred_node(request.accessibility_requirements),
    )


@dataclass(frozen=True)
class DirectoryOwner:
    uid: int | None = None
    gid: int | None = None


@dataclass(frozen=True)
class NodeDirectory:
    """Below which directory of its backend a volume's directory is made; with a tmpfs of
    `tmpfs_bytes` mounted on it (emptyDir medium Memory); in `backend_mount` (the backend as
    its helpers mount it on the nodes), limited to `quota_bytes` where the backend has quotas;
    a checkout kept in `checkout_path` and bound onto it (gitRepo).
    """

    root: str
    tmpfs_bytes: int | None = None
    backend_mount: str | None = None
    quota_bytes: int | None = None
    checkout_path: str | None = None


def backend_volume(
    name: str,
    backend: str,
    storage_type: str,
    directory: NodeDirectory,
    plan: VolumePlan,
    claim: ClaimRequest,
    mode: str,
    owner: DirectoryOwner,
) -> Json:
    """The BackendVolume record of a new volume. The record of a node-local volume, or of one
    in a backend mount, carries the finalizer that keeps it until a node has released the data
    (its node; for a backend mount, the node DeleteVolume hands it to), as the backend says
    when the volume is released (so an onDelete changed meanwhile counts)."""
    spec = BackendVolumeSpec(
        backend=backend,
        storage_type=storage_type,
        capacity_bytes=plan.capacity_bytes,
        root=directory.root,
        path=plan.location.path or directory.root,
        node=plan.location.node,
        server=plan.location.server,
        read_only=plan.location.read_only,
        tmpfs_bytes=directory.tmpfs_bytes,
        backend_mount=directory.backend_mount,
        quota_bytes=directory.quota_bytes,
        checkout_path=directory.checkout_path,
        directory_mode=mode,
        directory_uid=owner.uid,
        directory_gid=owner.gid,
        claim_namespace=claim.namespace or None,
        claim_name=claim.name or None,
    )
    metadata: dict[str, Any] = {"name": name, "labels": {BACKEND_LABEL: backend}}
    if plan.location.node:
        metadata["labels"][NODE_LABEL] = node_label(plan.location.node)
    if plan.location.node or directory.backend_mount:
        metadata["finalizers"] = [NODE_DATA_FINALIZER]
    return {
        "apiVersion": API_VERSION,
        "kind": BackendVolume.resource.kind,
        "metadata": metadata,
        "spec": spec.to_manifest(),
    }


def releasing_done(record: Mapping[str, Any]) -> Json:
    """The merge patch that lets the record go: its other finalizers only, and only for the
    version read (a conflict means it changed meanwhile)."""
    metadata = record["metadata"]
    kept = [name for name in metadata.get("finalizers") or () if name != NODE_DATA_FINALIZER]
    return {
        "metadata": {"finalizers": kept or None, "resourceVersion": metadata["resourceVersion"]}
    }


def record_spec(record: Mapping[str, Any]) -> BackendVolumeSpec:
    return BackendVolumeSpec.model_validate(record["spec"])


def new_directory(spec: BackendVolumeSpec) -> NewDirectory:
    """Mode and owner of the volume's directory when it is made."""
    return NewDirectory(
        mode=int(spec.directory_mode, 8), uid=spec.directory_uid, gid=spec.directory_gid
    )


def volume_context(spec: BackendVolumeSpec) -> dict[str, str]:
    """What NodePublishVolume reads: the record's spec, flattened to strings (`server` for a
    directory on a server, which the node mounts from there)."""
    context = {
        "backend": spec.backend,
        "storageType": spec.storage_type,
        "root": spec.root,
        "path": spec.path,
        "directoryMode": spec.directory_mode,
    }
    if spec.directory_uid is not None:
        context["directoryUid"] = str(spec.directory_uid)
    if spec.directory_gid is not None:
        context["directoryGid"] = str(spec.directory_gid)
    if spec.server is not None:
        context["server"] = spec.server
    if spec.read_only:
        context["readOnly"] = "true"
    if spec.tmpfs_bytes is not None:
        context["tmpfsBytes"] = str(spec.tmpfs_bytes)
    if spec.backend_mount is not None:
        context["backendMount"] = spec.backend_mount
    if spec.quota_bytes is not None:
        context["quotaBytes"] = str(spec.quota_bytes)
    if spec.checkout_path is not None:
        context["checkoutPath"] = spec.checkout_path
    return context


def accessible_topology(spec: BackendVolumeSpec) -> list[csi_pb2.Topology]:
    """Where the volume can be used: its node; for a volume in a backend mount, the nodes
    whose helper has the mount healthy (the label it keeps on them, which the scheduler then
    matches, so that a node whose mount fails gets no pods of the volume); anywhere else."""
    if spec.node is not None:
        return [csi_pb2.Topology(segments={TOPOLOGY_KEY: spec.node})]
    if spec.backend_mount is not None:
        return [csi_pb2.Topology(segments={mount_label(spec.backend): MOUNT_READY})]
    return []


def csi_volume(name: str, spec: BackendVolumeSpec) -> csi_pb2.Volume:
    return csi_pb2.Volume(
        volume_id=name,
        capacity_bytes=spec.capacity_bytes,
        volume_context=volume_context(spec),
        accessible_topology=accessible_topology(spec),
    )
