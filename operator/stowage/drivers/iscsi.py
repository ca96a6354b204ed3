"""iscsi: LUNs of a target handed out one per claim (smallest free LUN that fits), in-tree PVs.

A LUN is free while no PV of the backend records it. Its data cannot outlive its PV (the next
claim gets the LUN), so keeping data is done with storageClass.reclaimPolicy: Retain, which keeps
the PV and with it the LUN. A LUN is handed on as it is, unless wipeOnDelete is true: then the
operator zeroes it (`stowage.clients.iscsi`, libiscsi) before it deletes the released PV, so that
the LUN is free again only once it is zeroed.
"""

from __future__ import annotations

from typing import Any, ClassVar

from stowage.api.backend import IscsiLun, IscsiSpec, OnDelete, StorageType
from stowage.drivers.base import (
    BackendRef,
    ClaimRequest,
    DataLocation,
    Problem,
    ProvisionContext,
    SecretRequirement,
    Unprovisionable,
    VolumeKind,
    VolumePlan,
)
from stowage.drivers.common import (
    FILESYSTEM_OR_BLOCK,
    SINGLE_WRITER_MODES,
    BaseDriver,
    describe_size,
    port_problems,
)

ISCSI_PORT = 3260
CHAP_KEYS = ("node.session.auth.username", "node.session.auth.password")
MUTUAL_CHAP_KEYS = ("node.session.auth.username_in", "node.session.auth.password_in")


def portal_address(portal: str) -> tuple[str, int]:
    """`host[:port]` or `[v6]:port` -> (host, port), port 3260 when omitted."""
    if portal.startswith("["):
        host, _, rest = portal[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") else ISCSI_PORT
    host, sep, port = portal.rpartition(":")
    if sep and host and ":" not in host and port.isdigit():
        return host, int(port)
    return portal, ISCSI_PORT


def smallest_free_lun(luns: list[IscsiLun], used: set[int], needed_bytes: int) -> IscsiLun:
    """The smallest LUN not in `used` that holds `needed_bytes` (lowest number on a tie)."""
    free = [lun for lun in luns if lun.lun not in used]
    if not free:
        raise Unprovisionable(f"no free LUN in pool: all {len(luns)} LUNs are in use")
    fitting = [lun for lun in free if lun.size_bytes >= needed_bytes]
    if not fitting:
        largest = max(lun.size_bytes for lun in free)
        raise Unprovisionable(
            f"no free LUN of at least {describe_size(needed_bytes)} in pool: "
            f"largest free is {describe_size(largest)}"
        )
    return min(fitting, key=lambda lun: (lun.size_bytes, lun.lun))


class IscsiDriver(BaseDriver[IscsiSpec]):
    storage_type: ClassVar[StorageType] = StorageType.ISCSI
    volume_kind: ClassVar[VolumeKind] = VolumeKind.BLOCK
    spec_model = IscsiSpec
    needs_host_mount: ClassVar[bool] = False
    kubelet_mounts: ClassVar[bool] = True
    access_modes: ClassVar[frozenset[str]] = SINGLE_WRITER_MODES
    access_modes_reason: ClassVar[str] = (
        "a LUN holds a single-node filesystem or block device; request ReadWriteOnce or "
        "ReadWriteOncePod"
    )
    volume_modes: ClassVar[frozenset[str]] = FILESYSTEM_OR_BLOCK

    def validate_type(self, backend: BackendRef) -> list[Problem]:
        problems = port_problems("iscsi.portals", self.type_spec(backend).portals)
        on_delete = backend.spec.provisioning.on_delete
        if on_delete is not OnDelete.DELETE:
            problems.append(
                Problem(
                    "provisioning.onDelete",
                    f"{on_delete} is not possible for iSCSI LUNs: a LUN returns to the pool "
                    "when its volume is deleted; set storageClass.reclaimPolicy: Retain to "
                    "keep a LUN's data",
                )
            )
        return problems

    def secret_requirements(self, backend: BackendRef) -> list[SecretRequirement]:
        chap = self.type_spec(backend).chap_secret_ref
        if chap is None:
            return []
        return [SecretRequirement(chap, CHAP_KEYS, optional_keys=MUTUAL_CHAP_KEYS)]

    def plan_checked(
        self, backend: BackendRef, claim: ClaimRequest, ctx: ProvisionContext
    ) -> VolumePlan:
        used = {volume.location.lun for volume in ctx.volumes if volume.location.lun is not None}
        lun = smallest_free_lun(self.type_spec(backend).luns, used, claim.requested_bytes)
        return VolumePlan(
            capacity_bytes=lun.size_bytes,
            access_modes=claim.access_modes,
            volume_mode=claim.volume_mode,
            location=DataLocation(lun=lun.lun),
            node_requirements=self.allowed_topology(backend),
            mount_options=self.mount_options(backend),
        )

    def persistent_volume_source(self, backend: BackendRef, plan: VolumePlan) -> dict[str, Any]:
        spec = self.type_spec(backend)
        primary, *others = spec.portals
        source: dict[str, Any] = {
            "targetPortal": primary,
            "iqn": spec.iqn,
            "lun": plan.location.lun,
            "fsType": spec.fs_type.value,
        }
        if others:
            source["portals"] = others
        if spec.initiator_name:
            source["initiatorName"] = spec.initiator_name
        if spec.chap_secret_ref:
            source["chapAuthSession"] = True
            source["secretRef"] = {
                "name": spec.chap_secret_ref.name,
                "namespace": spec.chap_secret_ref.namespace,
            }
        return {"iscsi": source}
