"""The driver protocol and the facts that flow through it: plain data, no I/O.

A driver answers questions about one storage type: is this spec usable, which Secrets does it
need, what StorageClass offers it, which concrete volume serves a claim, and what the
mount helper has to do on a node. Reading Secrets, nodes and volumes is the reconcilers' job;
they hand the facts in as the types below.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, ClassVar, Protocol

from stowage.api.backend import OnDelete, StorageBackendSpec, StorageType
from stowage.api.common import SecretReference, parse_quantity

PROVISIONER = "stowage.io/provisioner"
# The CSI driver's name: the provisioner of a StorageClass whose backend sets provisioning.csi.
CSI_DRIVER = "csi.stowage.io"
# The CSI driver's topology key: the node label the kubelet sets from NodeGetInfo, and the only
# key a StorageClass of the driver may name in allowedTopologies.
CSI_TOPOLOGY_KEY = "topology.stowage.io/node"
BACKEND_PARAMETER = "stowage.io/backend"
BACKEND_LABEL = "stowage.io/backend"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "stowage"
PROVISIONED_BY_ANNOTATION = "pv.kubernetes.io/provisioned-by"
SELECTED_NODE_ANNOTATION = "volume.kubernetes.io/selected-node"

HOSTNAME_LABEL = "kubernetes.io/hostname"
ZONE_LABEL = "topology.kubernetes.io/zone"
MOUNT_LABEL_PREFIX = "mount.stowage.io/"
MOUNT_READY = "ready"
MOUNT_FAILED = "failed"
# Why the helper on a node cannot use the backend, beside the mount label when it is `failed`.
MOUNT_FAILURE_ANNOTATION_PREFIX = "mount-failure.stowage.io/"
# Free bytes of a backend on a node, published by the mount helper (as TopoLVM does).
CAPACITY_ANNOTATION_PREFIX = "capacity.stowage.io/"

STOWAGE_ROOT = "/var/lib/stowage"


def mount_label(backend_name: str) -> str:
    """The node label the mount helper sets to `ready` where the backend is usable."""
    return MOUNT_LABEL_PREFIX + backend_name


def mount_failure_annotation(backend_name: str) -> str:
    return MOUNT_FAILURE_ANNOTATION_PREFIX + backend_name


def capacity_annotation(backend_name: str) -> str:
    return CAPACITY_ANNOTATION_PREFIX + backend_name


class VolumeKind(StrEnum):
    FILE = "file"
    BLOCK = "block"


class AccessMode(StrEnum):
    READ_WRITE_ONCE = "ReadWriteOnce"
    READ_ONLY_MANY = "ReadOnlyMany"
    READ_WRITE_MANY = "ReadWriteMany"
    READ_WRITE_ONCE_POD = "ReadWriteOncePod"


class VolumeMode(StrEnum):
    FILESYSTEM = "Filesystem"
    BLOCK = "Block"


class Unprovisionable(Exception):  # noqa: N818 - reads as a verdict: "raise Unprovisionable(why)"
    """The backend cannot serve this claim; the message tells the claim's owner why."""


@dataclass(frozen=True)
class BackendRef:
    """A StorageBackend as drivers see it: its name and its validated spec."""

    name: str
    spec: StorageBackendSpec


@dataclass(frozen=True)
class ClaimRequest:
    """The facts of a PersistentVolumeClaim that provisioning depends on."""

    namespace: str
    name: str
    uid: str
    requested_bytes: int
    access_modes: tuple[str, ...] = (AccessMode.READ_WRITE_ONCE,)
    volume_mode: str = VolumeMode.FILESYSTEM
    selected_node: str | None = None  # set by the scheduler for WaitForFirstConsumer
    storage_class: str = ""


@dataclass(frozen=True)
class VolumeGroupSpace:
    """The free extents of an LVM volume group."""

    volume_group: str


@dataclass(frozen=True)
class FileSystemSpace:
    """The free bytes of the file system holding a directory."""

    path: str


CapacitySource = VolumeGroupSpace | FileSystemSpace


def node_ready(node: Mapping[str, Any]) -> bool:
    """The node's kubelet says it is Ready (not NotReady, nor Unknown: a lost node)."""
    conditions = (node.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


@dataclass(frozen=True)
class CandidateNode:
    """A node a node-local volume could be placed on."""

    name: str
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    schedulable: bool = True

    @classmethod
    def from_manifest(cls, node: Mapping[str, Any]) -> CandidateNode:
        metadata = node.get("metadata") or {}
        return cls(
            name=metadata["name"],
            labels=dict(metadata.get("labels") or {}),
            annotations=dict(metadata.get("annotations") or {}),
            schedulable=node_ready(node)
            and not (node.get("spec") or {}).get("unschedulable", False),
        )

    def free_bytes(self, backend_name: str) -> int | None:
        """Free capacity of the backend on this node as the helper last reported it."""
        reported = self.annotations.get(capacity_annotation(backend_name))
        if reported is None:
            return None
        try:
            return parse_quantity(reported)
        except ValueError:
            return None


# PV annotations that record where a volume's data lives, for release and for the helpers.
PATH_ANNOTATION = "stowage.io/path"
SERVER_ANNOTATION = "stowage.io/server"
NODE_ANNOTATION = "stowage.io/node"
LUN_ANNOTATION = "stowage.io/lun"
BLOCK_VOLUME_ANNOTATION = "stowage.io/block-volume"
READ_ONLY_ANNOTATION = "stowage.io/read-only"
# A released volume's data work handed to the mount helpers: the request (Delete or Archive),
# the archive's directory name, and the node whose helper did it.
RELEASE_ANNOTATION = "stowage.io/release"
ARCHIVE_AS_ANNOTATION = "stowage.io/archive-as"
RELEASED_BY_ANNOTATION = "stowage.io/released-by"
# A claim's directory made by a mount helper before its PV exists: the operator labels the
# claim with the backend and names the node to do it; that node's helper answers with its
# name, then the operator creates the PV and removes all three.
PREPARE_LABEL = "stowage.io/prepare"
PREPARE_ON_ANNOTATION = "stowage.io/prepare-on"
PREPARED_BY_ANNOTATION = "stowage.io/prepared-by"


@dataclass(frozen=True)
class DataLocation:
    """Where a volume's data lives. Written to the PV as annotations, read back on release.

    `path` is the directory as its user reaches it: on the server for NFS, on the node for
    local volumes. `block_volume` names a per-claim RBD image or LVM logical volume.
    """

    path: str | None = None
    server: str | None = None
    node: str | None = None
    lun: int | None = None
    block_volume: str | None = None
    read_only: bool = False

    def annotations(self) -> dict[str, str]:
        recorded = {
            PATH_ANNOTATION: self.path,
            SERVER_ANNOTATION: self.server,
            NODE_ANNOTATION: self.node,
            LUN_ANNOTATION: None if self.lun is None else str(self.lun),
            BLOCK_VOLUME_ANNOTATION: self.block_volume,
            READ_ONLY_ANNOTATION: "true" if self.read_only else None,
        }
        return {key: value for key, value in recorded.items() if value is not None}

    @classmethod
    def from_annotations(cls, annotations: Mapping[str, str]) -> DataLocation:
        lun = annotations.get(LUN_ANNOTATION)
        return cls(
            path=annotations.get(PATH_ANNOTATION),
            server=annotations.get(SERVER_ANNOTATION),
            node=annotations.get(NODE_ANNOTATION),
            lun=int(lun) if lun is not None and lun.isdigit() else None,
            block_volume=annotations.get(BLOCK_VOLUME_ANNOTATION),
            read_only=annotations.get(READ_ONLY_ANNOTATION) == "true",
        )


@dataclass(frozen=True)
class ProvisionedVolume:
    """A PersistentVolume that already exists for the backend."""

    name: str
    capacity_bytes: int
    location: DataLocation
    claim_namespace: str | None = None
    claim_name: str | None = None
    claim_uid: str | None = None

    @classmethod
    def from_manifest(cls, volume: Mapping[str, Any]) -> ProvisionedVolume:
        metadata = volume.get("metadata") or {}
        spec = volume.get("spec") or {}
        claim = spec.get("claimRef") or {}
        capacity = (spec.get("capacity") or {}).get("storage", "0")
        return cls(
            name=metadata["name"],
            capacity_bytes=parse_quantity(capacity),
            location=DataLocation.from_annotations(metadata.get("annotations") or {}),
            claim_namespace=claim.get("namespace"),
            claim_name=claim.get("name"),
            claim_uid=claim.get("uid"),
        )


@dataclass(frozen=True)
class ProvisionContext:
    """What exists around a claim: the backend's volumes and the cluster's nodes."""

    volumes: tuple[ProvisionedVolume, ...] = ()
    nodes: tuple[CandidateNode, ...] = ()

    @classmethod
    def from_manifests(
        cls, volumes: Iterable[Mapping[str, Any]], nodes: Iterable[Mapping[str, Any]]
    ) -> ProvisionContext:
        return cls(
            volumes=tuple(ProvisionedVolume.from_manifest(volume) for volume in volumes),
            nodes=tuple(CandidateNode.from_manifest(node) for node in nodes),
        )


@dataclass(frozen=True)
class NodeRequirement:
    """The node label `key` must have one of `values` (a nodeSelector `In` expression)."""

    key: str
    values: tuple[str, ...]


@dataclass(frozen=True)
class VolumePlan:
    """The concrete volume chosen for a claim."""

    capacity_bytes: int
    access_modes: tuple[str, ...]
    volume_mode: str
    location: DataLocation
    node_requirements: tuple[NodeRequirement, ...] = ()  # all must hold
    mount_options: tuple[str, ...] = ()


@dataclass(frozen=True)
class StaticVolume:
    """A volume that exists outside Kubernetes (a cloud disk), offered as a static PV."""

    name: str
    capacity_bytes: int
    source: dict[str, Any]
    node_requirements: tuple[NodeRequirement, ...] = ()
    mount_options: tuple[str, ...] = ()


@dataclass(frozen=True)
class Problem:
    """Something wrong with a spec that the schema cannot express; `field` is its path."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


@dataclass(frozen=True)
class SecretRequirement:
    """A Secret the backend needs and the keys it must hold (values never leave the cluster)."""

    secret: SecretReference
    keys: tuple[str, ...]
    optional_keys: tuple[str, ...] = ()


@dataclass(frozen=True)
class StorageClassParams:
    """What the driver contributes to the backend's StorageClass."""

    provisioner: str
    parameters: dict[str, str]
    mount_options: tuple[str, ...] = ()
    # One topology term: the scheduler only picks nodes whose labels satisfy every requirement.
    allowed_topology: tuple[NodeRequirement, ...] = ()


@dataclass(frozen=True)
class HostMount:
    """How the mount helper mounts the backend on a node (sources in failover order)."""

    fs_type: str
    sources: tuple[str, ...]
    options: tuple[str, ...]
    mount_point: str
    # Settings of a user-space client the type implies (ceph-fuse: Ceph config options).
    client_settings: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class RemoteExport:
    """An NFS export whose claim directories the helper makes through a userspace client,
    with no mount on the node (the kubelet mounts each claim's directory itself)."""

    servers: tuple[str, ...]  # in the node's failover order
    export: str  # the exported path, as clients mount it
    version: str  # the backend's NFS version


@dataclass(frozen=True)
class GitCheckout:
    """A checkout the helper clones into `path` and brings up to date every `sync_seconds`."""

    repository: str
    revision: str
    depth: int  # 0: the full history
    sync_seconds: float
    path: str  # the working tree, bound read-only onto the volume's path
    credentials: SecretReference | None = None
    ssh: bool = False  # the credentials are an SSH key, not a username and password


@dataclass(frozen=True)
class LogicalVolume:
    """An LVM logical volume the helper creates in `volume_group` (in `thin_pool`, if set).

    `fs_type` set: formatted (when blank) and mounted on the NodeVolume's path; None: a Block
    volume, the PV's path is the device itself.
    """

    volume_group: str
    name: str
    size_bytes: int
    fs_type: str | None = None
    thin_pool: str | None = None

    @property
    def device(self) -> str:
        return f"/dev/{self.volume_group}/{self.name}"

    @property
    def full_name(self) -> str:
        return f"{self.volume_group}/{self.name}"


@dataclass(frozen=True)
class RbdImage:
    """A Ceph RBD image the helper creates in `pool` and attaches as a block device of its
    node (`rbd map`, or rbd-fuse plus a loop device where the kernel has no rbd module).

    `fs_type` set: formatted (when blank) and mounted on the NodeVolume's path; None: a Block
    volume. `monitors` and the helper's copy of the backend's Secret reach the cluster.
    """

    monitors: str  # comma-separated, as ceph.conf's `mon host` takes them
    pool: str
    name: str
    size_bytes: int
    features: tuple[str, ...] = ()
    fs_type: str | None = None

    @property
    def spec(self) -> str:
        return f"{self.pool}/{self.name}"


# Directories above a claim's (the backend's base path) are the helpers' alone.
PARENT_DIRECTORY_MODE = 0o755


@dataclass(frozen=True)
class NewDirectory:
    """Mode and owner a claim's directory gets when it is made (never changed afterwards)."""

    mode: int = 0o777
    uid: int | None = None
    gid: int | None = None


@dataclass(frozen=True)
class NodeVolume:
    """What the mount helper on the volume's node makes for it, and removes on release.

    The helper works only below `root`. `path` (the PV's) is a directory, with a tmpfs of
    `tmpfs_bytes` mounted on it, with `checkout` bound read-only onto it, or with the file
    system of `logical_volume` or `rbd_image` mounted on it; or, for a Block logical volume,
    its device. A `persistent` directory (hostPath) is deleted or archived on release as
    provisioning.onDelete says; with `quota_bytes` it is a subvolume limited to that many
    bytes (stowage.agent.btrfs).
    """

    root: str
    path: str
    tmpfs_bytes: int | None = None
    checkout: GitCheckout | None = None
    logical_volume: LogicalVolume | None = None
    rbd_image: RbdImage | None = None
    persistent: bool = False
    quota_bytes: int | None = None


@dataclass(frozen=True)
class ReleasePlan:
    """What happens to a released volume's data; the helpers (or nobody) carry it out."""

    action: OnDelete
    location: DataLocation
    archive_name: str | None = None  # the new name of the claim directory for Archive

    def carry_out(self, remove: Callable[[], bool], archive: Callable[[str], bool]) -> bool:
        """Deletes the data (`remove`) or renames it to the archive's name (`archive`), as
        planned; whether there was anything to do (False for Retain)."""
        if self.action is OnDelete.DELETE:
            return remove()
        if self.action is OnDelete.ARCHIVE:
            if self.archive_name is None:
                raise ValueError("the release plan names no archive")
            return archive(self.archive_name)
        return False


class NodeRole(enum.Enum):
    """What the mount helpers do for a backend's volumes on the nodes."""

    NONE = "none"  # nothing: the kubelet or a cloud CSI driver mounts (iscsi, cloud types)
    SHARED_MOUNT = "shared-mount"  # the backend mounted on every node, volumes in it
    REMOTE_EXPORT = "remote-export"  # claim directories made on the server over the network
    NODE_WORK = "node-work"  # each volume made on its node before its PV exists


class Driver(Protocol):
    storage_type: ClassVar[StorageType]
    volume_kind: ClassVar[VolumeKind]
    needs_host_mount: ClassVar[bool]  # a mount-helper DaemonSet is required
    access_modes: ClassVar[frozenset[str]]  # the access modes its claims may ask for
    # The helper on the volume's node makes each volume before its PV exists (emptyDir, gitRepo).
    prepared_on_node: ClassVar[bool]
    # Each volume is an NFS export of its own (nfs): a NASShare proxies it.
    volumes_are_nfs_exports: ClassVar[bool]
    # The helpers can limit a claim's directory of a shared mount to the claim's size.
    has_directory_quota: ClassVar[bool]

    def prepares_on_node(self, backend: BackendRef) -> bool:
        """Whether the helper on each volume's node makes it before its PV exists: the type's
        `prepared_on_node`, or for hostPath the backend's setting."""
        ...

    def node_role(self, backend: BackendRef) -> NodeRole:
        """What the helpers do on the nodes: a backend with a role other than NONE gets
        them."""
        ...

    def mount_sources(self, backend: BackendRef) -> dict[str, str]:
        """The mount source of each storage host of a shared mount; empty for other roles."""
        ...

    def validate(self, backend: BackendRef) -> list[Problem]:
        """Problems beyond the schema (pure: no Secrets or nodes are read)."""
        ...

    def secret_requirements(self, backend: BackendRef) -> list[SecretRequirement]: ...

    def storage_class(self, backend: BackendRef) -> StorageClassParams: ...

    def csi_driver_name(self, backend: BackendRef) -> str | None:
        """The CSI driver that provisions and mounts for the backend (cloud types only)."""
        ...

    def plan(self, backend: BackendRef, claim: ClaimRequest, ctx: ProvisionContext) -> VolumePlan:
        """The volume for the claim; raises Unprovisionable when the type cannot serve it."""
        ...

    def check_claim(self, backend: BackendRef, claim: ClaimRequest) -> None:
        """Raises Unprovisionable when the type cannot serve the claim's size, access modes or
        volume mode (the checks `plan` begins with)."""
        ...

    def persistent_volume_source(self, backend: BackendRef, plan: VolumePlan) -> dict[str, Any]:
        """The volume-source part of the PV spec, e.g. `{"nfs": {...}}`."""
        ...

    def static_volumes(self, backend: BackendRef) -> list[StaticVolume]: ...

    def host_mount(self, backend: BackendRef, node: str) -> HostMount | None:
        """The backend-wide mount on `node`, if the type has one."""
        ...

    def remote_export(self, backend: BackendRef, node: str) -> RemoteExport | None:
        """The export in which the helper on `node` makes claim directories over the network,
        if the type's directories are made that way (nfs)."""
        ...

    def node_volume(self, backend: BackendRef, volume: ProvisionedVolume) -> NodeVolume | None:
        """What the helper on the volume's node makes for it (`prepared_on_node` types)."""
        ...

    def host_directories(self, backend: BackendRef) -> tuple[str, ...]:
        """Node directories outside /var/lib/stowage that the helper works in."""
        ...

    def listed_nodes(self, backend: BackendRef) -> Sequence[str]:
        """The nodes the spec names as the only ones offering the backend (its volumes go
        there, its helper runs there alone); empty: every node mount.nodeSelector selects."""
        ...

    def capacity_source(self, backend: BackendRef) -> CapacitySource | None:
        """What the helper measures the free bytes of on its node (reported as the node
        annotation `capacity.stowage.io/<backend>`, weighed when a node is chosen); None for
        types whose volumes take no room of a node."""
        ...

    def release(self, backend: BackendRef, volume: ProvisionedVolume) -> ReleasePlan: ...

    def csi_directory_root(self, backend: BackendRef) -> str | None:
        """The directory below which each CSI volume's directory is made: on the volume's node
        by its node plugin (hostPath, emptyDir), in the backend mount by the node plugin of
        the node that first publishes it (glusterfs, cephfs, cifs), or in the export on the
        volume's server by the CSI controller (nfs, whose `remote_export` says so); None for
        the types the CSI
        driver does not serve yet (served by the in-tree provisioner until their CSI path
        exists)."""
        ...

    def csi_backend_mount(self, backend: BackendRef) -> str | None:
        """The backend mount the CSI volumes' directories are in, which the backend's helpers
        keep on the nodes (shared-mount types); None for types without one."""
        ...

    def served_by_csi(self, backend: BackendRef) -> bool:
        """The backend asks for the CSI driver (provisioning.csi), and this driver has a CSI
        path for its volumes."""
        ...
