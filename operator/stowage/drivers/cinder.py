"""cinder: OpenStack Cinder volumes through the CSI driver cinder.csi.openstack.org."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import ClassVar

from stowage.api.backend import CinderSpec, FsType, StorageType
from stowage.drivers.base import BackendRef, Problem
from stowage.drivers.csi import CloudCsiDriver, ExistingDisk, existing_volume_disks

VOLUME_ID = re.compile(
    r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
)


class CinderDriver(CloudCsiDriver[CinderSpec]):
    storage_type: ClassVar[StorageType] = StorageType.CINDER
    spec_model = CinderSpec
    csi_driver: ClassVar[str] = "cinder.csi.openstack.org"

    def validate_type(self, backend: BackendRef) -> list[Problem]:
        return [
            Problem(f"cinder.existingVolumes[{index}].volumeID", "is not a Cinder volume UUID")
            for index, volume in enumerate(self.type_spec(backend).existing_volumes)
            if not VOLUME_ID.match(volume.volume_id)
        ]

    def csi_parameters(self, backend: BackendRef) -> dict[str, str]:
        spec = self.type_spec(backend)
        optional = {"type": spec.type, "availability": spec.availability}
        return {key: value for key, value in optional.items() if value is not None}

    def fs_type(self, backend: BackendRef) -> FsType:
        return self.type_spec(backend).fs_type

    def existing_disks(self, backend: BackendRef) -> Sequence[ExistingDisk]:
        return existing_volume_disks(self.type_spec(backend).existing_volumes)
