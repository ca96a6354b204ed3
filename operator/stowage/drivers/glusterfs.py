"""glusterfs: a Gluster volume mounted on every node through FUSE; a directory per claim."""

from __future__ import annotations

from typing import ClassVar

from stowage.api.backend import GlusterfsSpec, StorageType
from stowage.drivers.base import BackendRef
from stowage.drivers.local import SharedMountDriver


class GlusterfsDriver(SharedMountDriver[GlusterfsSpec]):
    storage_type: ClassVar[StorageType] = StorageType.GLUSTERFS
    spec_model = GlusterfsSpec
    fs_type: ClassVar[str] = "glusterfs"
    has_directory_quota: ClassVar[bool] = True

    def mount_sources(self, backend: BackendRef) -> dict[str, str]:
        spec = self.type_spec(backend)
        return {host: f"{host}:/{spec.volume}" for host in spec.hosts}
