"""lvm: one logical volume per claim in a volume group of the chosen node (like TopoLVM).

The node is the scheduler's choice (WaitForFirstConsumer) or the one with room (the volume
group's free bytes, which each node's helper reports as the node annotation
`capacity.stowage.io/<backend>`) and the fewest bytes allocated. The helper on that node
creates the LV before the PV exists (stowage.agent.lvm): Block claims get the LV device itself;
filesystem claims get it formatted with lvm.fsType and mounted below /var/lib/stowage/volumes,
so that the mount is the node's and outlives the helper. On release the LV is removed
(Delete), renamed `archived-<name>` (Archive) or left (Retain).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from stowage.api.backend import LvmSpec, StorageType
from stowage.drivers.base import (
    BackendRef,
    CapacitySource,
    ClaimRequest,
    DataLocation,
    LogicalVolume,
    NodeVolume,
    VolumeGroupSpace,
    VolumeKind,
    VolumeMode,
)
from stowage.drivers.common import FILESYSTEM_OR_BLOCK
from stowage.drivers.local import NodePinnedDriver
from stowage.drivers.mounts import claim_volume_path, claim_volumes_root

# LVM allocates whole extents; 4 MiB is the default extent size of vgcreate.
EXTENT_BYTES = 4 * 2**20


def round_up_to_extents(size_bytes: int) -> int:
    return -(-size_bytes // EXTENT_BYTES) * EXTENT_BYTES


class LvmDriver(NodePinnedDriver[LvmSpec]):
    storage_type: ClassVar[StorageType] = StorageType.LVM
    volume_kind: ClassVar[VolumeKind] = VolumeKind.BLOCK
    spec_model = LvmSpec
    volume_modes: ClassVar[frozenset[str]] = FILESYSTEM_OR_BLOCK
    prepared_on_node: ClassVar[bool] = True
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

    def block_node_volume(
        self, backend: BackendRef, path: str, name: str, capacity_bytes: int
    ) -> NodeVolume | None:
        spec = self.type_spec(backend)
        device = f"/dev/{spec.volume_group}/{name}"
        logical = LogicalVolume(
            volume_group=spec.volume_group,
            name=name,
            size_bytes=capacity_bytes,
            # The PV's path tells the volume mode: the device itself for Block.
            fs_type=None if path == device else spec.fs_type.value,
            thin_pool=spec.thin_pool,
        )
        if logical.fs_type is None:
            return NodeVolume(f"/dev/{spec.volume_group}", path, logical_volume=logical)
        return NodeVolume(claim_volumes_root(backend), path, logical_volume=logical)

    def host_directories(self, backend: BackendRef) -> tuple[str, ...]:
        # The node's /dev: the LV device nodes the helper makes must be the node's, where the
        # kubelet finds a Block volume's device.
        return ("/dev",)

    def capacity_source(self, backend: BackendRef) -> CapacitySource | None:
        # A thin pool's free space is not the volume group's; its claims are not weighed.
        spec = self.type_spec(backend)
        return None if spec.thin_pool else VolumeGroupSpace(spec.volume_group)
