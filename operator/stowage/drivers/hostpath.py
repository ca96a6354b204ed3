"""hostPath: persistent node-local storage, a directory per claim (like local-path-provisioner).

The PV is an in-tree `hostPath` source of type DirectoryOrCreate, pinned to its node. Without
quota the kubelet makes the claim's directory itself when the first pod starts, so a claim is
usable without a mount helper. With `provisioning.enforceQuota: true` the helper on the chosen
node makes it before the PV exists: a btrfs subvolume limited to the claim's size (a base path
on another file system is refused on the claim: stowage.agent.btrfs), deleted or archived on
release as provisioning.onDelete says.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from stowage.api.backend import HostPathSpec, StorageType
from stowage.drivers.base import (
    BackendRef,
    CapacitySource,
    FileSystemSpace,
    NodeVolume,
    ProvisionedVolume,
    VolumePlan,
)
from stowage.drivers.local import NodeDirectoryDriver


class HostPathDriver(NodeDirectoryDriver[HostPathSpec]):
    storage_type: ClassVar[StorageType] = StorageType.HOST_PATH
    spec_model = HostPathSpec

    def prepares_on_node(self, backend: BackendRef) -> bool:
        return backend.spec.provisioning.enforce_quota is True

    def root_directory(self, backend: BackendRef) -> tuple[str, str]:
        return "hostPath.path", self.type_spec(backend).path

    def capacity_source(self, backend: BackendRef) -> CapacitySource | None:
        # With quota the helpers measure it. Subvolumes are thin: the claims' sizes are not
        # taken off, only what is written.
        if self.prepares_on_node(backend):
            return FileSystemSpace(self.root_directory(backend)[1])
        return super().capacity_source(backend)

    def listed_nodes(self, backend: BackendRef) -> Sequence[str]:
        return self.type_spec(backend).nodes

    def persistent_volume_source(self, backend: BackendRef, plan: VolumePlan) -> dict[str, Any]:
        return {"hostPath": {"path": plan.location.path, "type": "DirectoryOrCreate"}}

    def csi_directory_root(self, backend: BackendRef) -> str | None:
        # A quota'd subvolume is made before the volume is handed out: not through CSI yet.
        return None if self.prepares_on_node(backend) else self.root_directory(backend)[1]

    def node_volume(self, backend: BackendRef, volume: ProvisionedVolume) -> NodeVolume | None:
        path = volume.location.path
        if path is None or not self.prepares_on_node(backend):
            return None
        root = self.root_directory(backend)[1]
        return NodeVolume(root, path, persistent=True, quota_bytes=volume.capacity_bytes)
