"""gcePersistentDisk: Google Persistent Disks through the CSI driver pd.csi.storage.gke.io."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from stowage.api.backend import FsType, GcePersistentDiskSpec, StorageType
from stowage.drivers.base import BackendRef
from stowage.drivers.csi import CloudCsiDriver, ExistingDisk

# The driver finds the project (and, without a zone, the disk) itself.
UNSPECIFIED = "UNSPECIFIED"


class GcePersistentDiskDriver(CloudCsiDriver[GcePersistentDiskSpec]):
    storage_type: ClassVar[StorageType] = StorageType.GCE_PERSISTENT_DISK
    spec_model = GcePersistentDiskSpec
    csi_driver: ClassVar[str] = "pd.csi.storage.gke.io"

    def csi_parameters(self, backend: BackendRef) -> dict[str, str]:
        spec = self.type_spec(backend)
        return {"type": spec.type.value, "replication-type": spec.replication_type.value}

    def fs_type(self, backend: BackendRef) -> FsType:
        return self.type_spec(backend).fs_type

    def existing_disks(self, backend: BackendRef) -> Sequence[ExistingDisk]:
        return [
            ExistingDisk(
                key=disk.pd_name,
                handle=f"projects/{UNSPECIFIED}/zones/{disk.zone or UNSPECIFIED}"
                f"/disks/{disk.pd_name}",
                size_bytes=disk.size_bytes,
                zone=disk.zone,
            )
            for disk in self.type_spec(backend).existing_disks
        ]
