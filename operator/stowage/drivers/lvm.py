"""lvm: one logical volume per claim in a volume group of the chosen node (like TopoLVM).

The node is the scheduler's choice (WaitForFirstConsumer) or the one with room and the fewest
bytes allocated. Block claims get the LV device itself; filesystem claims get it formatted and
mounted by the helper.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from stowage.api.backend import LvmSpec, StorageType
from stowage.drivers.base import BackendRef, ClaimRequest, DataLocation, VolumeKind, VolumeMode
from stowage.drivers.common import FILESYSTEM_OR_BLOCK
from stowage.drivers.local import NodePinnedDriver
from stowage.drivers.mounts import claim_volume_path

# LVM allocates whole extents; 4 MiB is the default extent size of vgcreate.
EXTENT_BYTES = 4 * 2**20


def round_up_to_extents(size_bytes: int) -> int:
    return -(-size_bytes // EXTENT_BYTES) * EXTENT_BYTES


class LvmDriver(NodePinnedDriver[LvmSpec]):
    storage_type: ClassVar[StorageType] = StorageType.LVM
    volume_kind: ClassVar[VolumeKind] = VolumeKind.BLOCK
    spec_model = LvmSpec
    volume_modes: ClassVar[frozenset[str]] = FILESYSTEM_OR_BLOCK
    access_modes_reason: ClassVar[str] = (
        "a logical volume lives on one node; request ReadWriteOnce or ReadWriteOncePod"
    )

    def listed_nodes(self, backend: BackendRef) -> Sequence[str]:
        return self.type_spec(backend).nodes

    def capacity_for(self, backend: BackendRef, claim: ClaimRequest) -> int:
        return round_up_to_extents(claim.requested_bytes)

    def locate(
        self, backend: BackendRef, claim: ClaimRequest, directory: str, node: str
    ) -> DataLocation:
        if claim.volume_mode == VolumeMode.BLOCK:
            path = f"/dev/{self.type_spec(backend).volume_group}/{directory}"
        else:
            path = claim_volume_path(backend, directory)
        return DataLocation(path=path, node=node, block_volume=directory)
