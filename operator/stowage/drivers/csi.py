"""Cloud block storage, delegated to the cloud's CSI driver.

The StorageClass names the CSI driver as provisioner, so its claims go to the driver's
external-provisioner and never reach stowage. Disks that already exist are offered as static
PVs (reclaim policy Retain: releasing a claim must never delete a disk stowage did not make).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from stowage.api.backend import ExistingVolume, FsType, OnDelete
from stowage.drivers.base import (
    ZONE_LABEL,
    BackendRef,
    ClaimRequest,
    NodeRequirement,
    Problem,
    ProvisionContext,
    StaticVolume,
    StorageClassParams,
    Unprovisionable,
    VolumeKind,
    VolumePlan,
)
from stowage.drivers.common import SINGLE_WRITER_MODES, BaseDriver, SpecT
from stowage.drivers.naming import bounded_name

FS_TYPE_PARAMETER = "csi.storage.k8s.io/fstype"


@dataclass(frozen=True)
class ExistingDisk:
    key: str  # the disk's name or ID, unique within the backend
    handle: str  # the CSI volume handle
    size_bytes: int
    zone: str | None


def existing_volume_disks(volumes: Sequence[ExistingVolume]) -> list[ExistingDisk]:
    """Volumes known by their cloud ID, which is also their CSI volume handle."""
    return [
        ExistingDisk(volume.volume_id, volume.volume_id, volume.size_bytes, volume.zone)
        for volume in volumes
    ]


class CloudCsiDriver(BaseDriver[SpecT]):
    volume_kind: ClassVar[VolumeKind] = VolumeKind.BLOCK
    needs_host_mount: ClassVar[bool] = False
    kubelet_mounts: ClassVar[bool] = True
    expandable: ClassVar[bool] = True  # by the CSI driver's resizer
    access_modes: ClassVar[frozenset[str]] = SINGLE_WRITER_MODES
    access_modes_reason: ClassVar[str] = "a cloud disk is attached to one node at a time"
    csi_driver: ClassVar[str]

    def csi_parameters(self, backend: BackendRef) -> dict[str, str]:
        """The driver's own StorageClass parameters (without the filesystem type)."""
        raise NotImplementedError

    def fs_type(self, backend: BackendRef) -> FsType:
        raise NotImplementedError

    def existing_disks(self, backend: BackendRef) -> Sequence[ExistingDisk]:
        raise NotImplementedError

    def validate(self, backend: BackendRef) -> list[Problem]:
        problems = super().validate(backend)
        if backend.spec.provisioning.on_delete is not OnDelete.DELETE:
            problems.append(
                Problem(
                    "provisioning.onDelete",
                    f"does not apply to disks the CSI driver {self.csi_driver} provisions; "
                    "set storageClass.reclaimPolicy: Retain to keep released disks",
                )
            )
        return problems

    def csi_driver_name(self, backend: BackendRef) -> str:
        return self.csi_driver

    def storage_class(self, backend: BackendRef) -> StorageClassParams:
        # No stowage.io/backend parameter and no allowedTopologies: CSI drivers refuse
        # parameters and topology keys they do not know. The StorageClass label names the
        # backend.
        return StorageClassParams(
            provisioner=self.csi_driver,
            parameters={
                **self.csi_parameters(backend),
                FS_TYPE_PARAMETER: self.fs_type(backend).value,
            },
            mount_options=self.mount_options(backend),
        )

    def plan(self, backend: BackendRef, claim: ClaimRequest, ctx: ProvisionContext) -> VolumePlan:
        raise Unprovisionable(
            f"claims of backend {backend.name} are provisioned by the CSI driver "
            f"{self.csi_driver}, not by stowage"
        )

    def static_volumes(self, backend: BackendRef) -> list[StaticVolume]:
        return [
            StaticVolume(
                name=bounded_name(backend.name, disk.key),
                capacity_bytes=disk.size_bytes,
                source={
                    "csi": {
                        "driver": self.csi_driver,
                        "volumeHandle": disk.handle,
                        "fsType": self.fs_type(backend).value,
                    }
                },
                node_requirements=(
                    (NodeRequirement(ZONE_LABEL, (disk.zone,)),) if disk.zone else ()
                ),
                mount_options=self.mount_options(backend),
            )
            for disk in self.existing_disks(backend)
        ]
