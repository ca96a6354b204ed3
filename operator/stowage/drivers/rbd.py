"""rbd: one RBD image per claim, created and attached by the helper on the claim's node.

Pinned to one node: the image carries a single-node filesystem (ext4, xfs) that must never be
mounted on two nodes at once. The helper on the chosen node creates the image before the PV
exists (stowage.agent.rbd), `rbd map`s it where the kernel has the rbd module, else exposes
the pool's images as files with one rbd-fuse per backend and node and attaches the image's
file to a loop device; it formats the device once (when blank) and mounts it below
/var/lib/stowage/volumes, so that the mount is the node's and outlives the helper. On release
the image is unmounted and detached, then removed (Delete), renamed `archived-<name>`
(Archive) or left (Retain).

Block mode is not offered: the device (a loop or rbd device) is only known once attached, after
the PV's path is written.
"""

from __future__ import annotations

from typing import ClassVar

from stowage.api.backend import RbdSpec, StorageType
from stowage.drivers.base import (
    BackendRef,
    ClaimRequest,
    DataLocation,
    NodeVolume,
    Problem,
    RbdImage,
    SecretRequirement,
    VolumeKind,
)
from stowage.drivers.ceph import ceph_problems, ceph_user
from stowage.drivers.local import NodePinnedDriver
from stowage.drivers.mounts import claim_volume_path, claim_volumes_root

MiB = 2**20


def round_up_to_mib(size_bytes: int) -> int:
    """RBD image sizes are given in whole MiB here."""
    return -(-size_bytes // MiB) * MiB


class RbdDriver(NodePinnedDriver[RbdSpec]):
    storage_type: ClassVar[StorageType] = StorageType.RBD
    volume_kind: ClassVar[VolumeKind] = VolumeKind.BLOCK
    spec_model = RbdSpec
    prepared_on_node: ClassVar[bool] = True
    access_modes_reason: ClassVar[str] = (
        "an RBD image holds a single-node filesystem; request ReadWriteOnce or ReadWriteOncePod"
    )

    def validate_type(self, backend: BackendRef) -> list[Problem]:
        return ceph_problems("rbd", self.type_spec(backend).monitors, backend)

    def secret_requirements(self, backend: BackendRef) -> list[SecretRequirement]:
        return ceph_user(self.type_spec(backend).user_secret_ref)

    def capacity_for(self, backend: BackendRef, claim: ClaimRequest) -> int:
        return round_up_to_mib(claim.requested_bytes)

    def locate(
        self, backend: BackendRef, claim: ClaimRequest, directory: str, node: str
    ) -> DataLocation:
        return DataLocation(
            path=claim_volume_path(backend, directory), node=node, block_volume=directory
        )

    def block_node_volume(
        self, backend: BackendRef, path: str, name: str, capacity_bytes: int
    ) -> NodeVolume | None:
        spec = self.type_spec(backend)
        image = RbdImage(
            monitors=",".join(spec.monitors),
            pool=spec.pool,
            name=name,
            size_bytes=round_up_to_mib(capacity_bytes),
            features=tuple(feature.value for feature in spec.image_features),
            fs_type=spec.fs_type.value,
        )
        return NodeVolume(claim_volumes_root(backend), path, rbd_image=image)

    def host_directories(self, backend: BackendRef) -> tuple[str, ...]:
        # The node's /dev: the loop (or rbd) devices the helper attaches must be the node's.
        return ("/dev",)
