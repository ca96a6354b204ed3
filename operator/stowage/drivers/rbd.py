"""rbd: one RBD image per claim, mapped and mounted by the helper on the claim's node.

Pinned to one node: the image carries a single-node filesystem (ext4, xfs) that must never be
mounted on two nodes at once. Block mode is not offered: the device the helper maps is not
known when the PV is written.
"""

from __future__ import annotations

from typing import ClassVar

from stowage.api.backend import RbdSpec, StorageType
from stowage.drivers.base import (
    BackendRef,
    ClaimRequest,
    DataLocation,
    Problem,
    SecretRequirement,
    VolumeKind,
)
from stowage.drivers.ceph import ceph_problems, ceph_user
from stowage.drivers.local import NodePinnedDriver
from stowage.drivers.mounts import claim_volume_path


class RbdDriver(NodePinnedDriver[RbdSpec]):
    storage_type: ClassVar[StorageType] = StorageType.RBD
    volume_kind: ClassVar[VolumeKind] = VolumeKind.BLOCK
    spec_model = RbdSpec
    access_modes_reason: ClassVar[str] = (
        "an RBD image holds a single-node filesystem; request ReadWriteOnce or ReadWriteOncePod"
    )

    def validate_type(self, backend: BackendRef) -> list[Problem]:
        return ceph_problems("rbd", self.type_spec(backend).monitors, backend)

    def secret_requirements(self, backend: BackendRef) -> list[SecretRequirement]:
        return ceph_user(self.type_spec(backend).user_secret_ref)

    def locate(
        self, backend: BackendRef, claim: ClaimRequest, directory: str, node: str
    ) -> DataLocation:
        return DataLocation(
            path=claim_volume_path(backend, directory), node=node, block_volume=directory
        )
