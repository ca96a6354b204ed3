"""Types served as `local` PVs: the mount helper prepares a host path, the kubelet bind-mounts it.

Two placements:
- `SharedMountDriver` (glusterfs, cephfs, cifs): the helper mounts the backend on every node;
  a claim is a directory in it, usable on any node whose mount is healthy, i.e. labelled
  `mount.stowage.io/<backend>=ready`. Through CSI, the helpers keep the mount and the node
  plugin makes the volume's directory there on its first publish (stowage.csi.node).
- `NodePinnedDriver` (hostPath, emptyDir, gitRepo, lvm, rbd): the data is made for one node
  (a directory of that node, an LV of its volume group, an RBD image mapped there: an ext4
  image must never be mounted on two nodes at once), so the PV is pinned with
  `kubernetes.io/hostname`.
"""

from __future__ import annotations

import posixpath
from typing import Any, ClassVar

from stowage.drivers.base import (
    HOSTNAME_LABEL,
    MOUNT_READY,
    STOWAGE_ROOT,
    BackendRef,
    CandidateNode,
    CapacitySource,
    ClaimRequest,
    DataLocation,
    FileSystemSpace,
    HostMount,
    NodeRequirement,
    NodeRole,
    NodeVolume,
    Problem,
    ProvisionContext,
    ProvisionedVolume,
    VolumeKind,
    VolumePlan,
    mount_label,
)
from stowage.drivers.common import SINGLE_WRITER_MODES, BaseDriver, SpecT
from stowage.drivers.mounts import backend_mount_point, failover_mount
from stowage.drivers.naming import claim_directory, is_within, path_under
from stowage.drivers.nodes import choose_node

READ_ONLY_MOUNT = ("ro",)
# Host directories a backend must never hand out subdirectories of.
SYSTEM_DIRECTORIES = ("/", "/bin", "/boot", "/etc", "/lib", "/lib64", "/root", "/sbin", "/usr")
SYSTEM_TREES = (
    "/dev",
    "/proc",
    "/sys",
    "/run",
    "/var/run",
    "/var/lib/kubelet",
    "/var/lib/containerd",
    "/var/lib/docker",
    "/var/lib/etcd",
    f"{STOWAGE_ROOT}/mounts",
    f"{STOWAGE_ROOT}/volumes",
)


def system_directory_problems(field: str, path: str) -> list[Problem]:
    normalized = posixpath.normpath(path)
    inside_tree = any(is_within(normalized, tree) for tree in SYSTEM_TREES)
    if normalized in SYSTEM_DIRECTORIES or inside_tree:
        return [
            Problem(
                field,
                f"{normalized} is a system directory; choose a directory of its own, "
                "e.g. /srv/stowage",
            )
        ]
    return []


class LocalVolumeDriver(BaseDriver[SpecT]):
    needs_host_mount: ClassVar[bool] = True

    def persistent_volume_source(self, backend: BackendRef, plan: VolumePlan) -> dict[str, Any]:
        return {"local": {"path": plan.location.path}}


class SharedMountDriver(LocalVolumeDriver[SpecT]):
    volume_kind: ClassVar[VolumeKind] = VolumeKind.FILE
    fs_type: ClassVar[str]
    role: ClassVar[NodeRole] = NodeRole.SHARED_MOUNT

    def mount_sources(self, backend: BackendRef) -> dict[str, str]:
        """The mount source of each storage host."""
        raise NotImplementedError

    def node_role(self, backend: BackendRef) -> NodeRole:
        # Through CSI too: the helpers keep the backend mounted, the node plugin serves the
        # volumes' directories in it.
        return self.role

    def csi_backend_mount(self, backend: BackendRef) -> str | None:
        return backend_mount_point(backend)

    def csi_directory_root(self, backend: BackendRef) -> str | None:
        return path_under(backend_mount_point(backend), backend.spec.provisioning.base_path)

    def type_mount_options(self, backend: BackendRef) -> tuple[str, ...]:
        """Options the type's fields imply; the helper adds credentials from the Secret."""
        return ()

    def host_mount(self, backend: BackendRef, node: str) -> HostMount:
        return failover_mount(
            backend,
            node,
            self.fs_type,
            self.mount_sources(backend),
            self.type_mount_options(backend),
        )

    def plan_checked(
        self, backend: BackendRef, claim: ClaimRequest, ctx: ProvisionContext
    ) -> VolumePlan:
        directory = claim_directory(claim.namespace, claim.name, claim.uid)
        path = path_under(
            backend_mount_point(backend), backend.spec.provisioning.base_path, directory
        )
        return VolumePlan(
            capacity_bytes=claim.requested_bytes,
            access_modes=claim.access_modes,
            volume_mode=claim.volume_mode,
            location=DataLocation(path=path),
            node_requirements=(
                *self.allowed_topology(backend),
                NodeRequirement(mount_label(backend.name), (MOUNT_READY,)),
            ),
        )


class NodePinnedDriver(LocalVolumeDriver[SpecT]):
    access_modes: ClassVar[frozenset[str]] = SINGLE_WRITER_MODES
    access_modes_reason: ClassVar[str] = (
        "its volumes live on one node, so only ReadWriteOnce or ReadWriteOncePod can be served"
    )

    def capacity_for(self, backend: BackendRef, claim: ClaimRequest) -> int:
        return claim.requested_bytes

    def locate(
        self, backend: BackendRef, claim: ClaimRequest, directory: str, node: str
    ) -> DataLocation:
        raise NotImplementedError

    def node_volume(self, backend: BackendRef, volume: ProvisionedVolume) -> NodeVolume | None:
        """The volume's block volume (LV, RBD image), as `block_node_volume` describes it."""
        path = volume.location.path
        name = volume.location.block_volume
        if path is None or name is None:
            return None
        return self.block_node_volume(backend, path, name, volume.capacity_bytes)

    def block_node_volume(
        self, backend: BackendRef, path: str, name: str, capacity_bytes: int
    ) -> NodeVolume | None:
        """What the helper makes of the block volume `name` whose PV has `path`; None for
        types without block volumes."""
        return None

    def allowed_topology(self, backend: BackendRef) -> tuple[NodeRequirement, ...]:
        """mount.nodeSelector, the listed nodes, and, where the helper makes the volumes, the
        nodes whose helper runs (so that the scheduler picks no node without one)."""
        listed = self.listed_nodes(backend)
        by_name = (NodeRequirement(HOSTNAME_LABEL, tuple(sorted(listed))),) if listed else ()
        helper = (
            (NodeRequirement(mount_label(backend.name), (MOUNT_READY,)),)
            if self.prepares_on_node(backend)
            else ()
        )
        return (*super().allowed_topology(backend), *by_name, *helper)

    def plan_checked(
        self, backend: BackendRef, claim: ClaimRequest, ctx: ProvisionContext
    ) -> VolumePlan:
        directory = claim_directory(claim.namespace, claim.name, claim.uid)
        capacity = self.capacity_for(backend, claim)
        node = choose_node(backend, claim, ctx, self.listed_nodes(backend), capacity)
        location = self.locate(backend, claim, directory, node.name)
        return VolumePlan(
            capacity_bytes=capacity,
            access_modes=claim.access_modes,
            volume_mode=claim.volume_mode,
            location=location,
            node_requirements=(NodeRequirement(HOSTNAME_LABEL, (hostname_of(node),)),),
            # The kubelet's bind mount of a local PV takes mount options: `ro` makes it
            # read-only in every pod (a remount by the helper would not reach the node's copy).
            mount_options=READ_ONLY_MOUNT if location.read_only else (),
        )


def hostname_of(node: CandidateNode) -> str:
    """The node's `kubernetes.io/hostname` label, which is not always its name."""
    return node.labels.get(HOSTNAME_LABEL, node.name)


class NodeDirectoryDriver(NodePinnedDriver[SpecT]):
    """A directory per claim under a root directory of the chosen node."""

    volume_kind: ClassVar[VolumeKind] = VolumeKind.FILE

    def root_directory(self, backend: BackendRef) -> tuple[str, str]:
        """The spec field that names the root, and the root."""
        raise NotImplementedError

    def validate_type(self, backend: BackendRef) -> list[Problem]:
        return system_directory_problems(*self.root_directory(backend))

    def host_directories(self, backend: BackendRef) -> tuple[str, ...]:
        root = self.root_directory(backend)[1]
        return () if is_within(root, STOWAGE_ROOT) else (root,)

    def capacity_source(self, backend: BackendRef) -> CapacitySource | None:
        # Through CSI the node plugin measures the root on its node (stowage.csi.node_capacity).
        return (
            FileSystemSpace(self.root_directory(backend)[1])
            if self.served_by_csi(backend)
            else None
        )

    def locate(
        self, backend: BackendRef, claim: ClaimRequest, directory: str, node: str
    ) -> DataLocation:
        _, root = self.root_directory(backend)
        path = path_under(root, backend.spec.provisioning.base_path, directory)
        return DataLocation(path=path, node=node)
