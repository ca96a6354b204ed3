"""emptyDir: ephemeral node-local storage, a directory or a tmpfs per claim.

The helper on the chosen node makes the claim's directory under emptyDir.basePath, or for
medium Memory mounts a tmpfs of the claim's size under /var/lib/stowage/volumes/<backend> (the
Bidirectional mount through which the node, and so the kubelet, sees it). It wipes the volume
when it is released, whatever provisioning.onDelete says. With provisioning.csi the CSI node
plugin does the same: it makes the directory (and mounts the tmpfs) on first publish, and
wipes it on release.
"""

from __future__ import annotations

from typing import ClassVar

from stowage.api.backend import EmptyDirMedium, EmptyDirSpec, StorageType
from stowage.drivers.base import (
    BackendRef,
    CapacitySource,
    ClaimRequest,
    DataLocation,
    NodeVolume,
    ProvisionedVolume,
)
from stowage.drivers.local import NodeDirectoryDriver
from stowage.drivers.mounts import claim_volume_path, claim_volumes_root


class EmptyDirDriver(NodeDirectoryDriver[EmptyDirSpec]):
    storage_type: ClassVar[StorageType] = StorageType.EMPTY_DIR
    spec_model = EmptyDirSpec
    ephemeral: ClassVar[bool] = True
    prepared_on_node: ClassVar[bool] = True

    def root_directory(self, backend: BackendRef) -> tuple[str, str]:
        return "emptyDir.basePath", self.type_spec(backend).base_path

    def in_memory(self, backend: BackendRef) -> bool:
        return self.type_spec(backend).medium is EmptyDirMedium.MEMORY

    def locate(
        self, backend: BackendRef, claim: ClaimRequest, directory: str, node: str
    ) -> DataLocation:
        if self.in_memory(backend):
            return DataLocation(path=claim_volume_path(backend, directory), node=node)
        return super().locate(backend, claim, directory, node)

    def node_volume(self, backend: BackendRef, volume: ProvisionedVolume) -> NodeVolume | None:
        path = volume.location.path
        if path is None:
            return None
        if self.in_memory(backend):
            return NodeVolume(claim_volumes_root(backend), path, tmpfs_bytes=volume.capacity_bytes)
        return NodeVolume(self.root_directory(backend)[1], path)

    def csi_directory_root(self, backend: BackendRef) -> str | None:
        if self.in_memory(backend):
            return claim_volumes_root(backend)  # the node plugin mounts tmpfs there
        return self.root_directory(backend)[1]

    def capacity_source(self, backend: BackendRef) -> CapacitySource | None:
        return None if self.in_memory(backend) else super().capacity_source(backend)

    def host_directories(self, backend: BackendRef) -> tuple[str, ...]:
        return () if self.in_memory(backend) else super().host_directories(backend)
