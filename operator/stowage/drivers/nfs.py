"""nfs: an NFS export; each claim gets a subdirectory, mounted by the kubelet (in-tree `nfs`).

The claim's server is chosen by rendezvous hash of its UID, so claims spread over the servers.
The helpers make and remove claim directories on the claim's server through a userspace NFS
client (stowage.clients.nfs): no node mounts the export for it. Through the CSI driver
(provisioning.csi), the CSI controller makes and releases them the same way, and the node
plugin mounts each volume's directory with the node's kernel NFS client.
"""

from __future__ import annotations

from typing import Any, ClassVar

from stowage.api.backend import NfsSpec, StorageType
from stowage.drivers.base import (
    AccessMode,
    BackendRef,
    ClaimRequest,
    DataLocation,
    NodeRole,
    Problem,
    ProvisionContext,
    RemoteExport,
    Unprovisionable,
    VolumeKind,
    VolumePlan,
)
from stowage.drivers.common import BaseDriver, forbidden_option_problems
from stowage.drivers.naming import claim_directory, path_under
from stowage.drivers.placement import rendezvous_choice, rendezvous_order

VERSION_OPTIONS = ("vers", "nfsvers")
SPECIAL_MODE_BITS = 0o7000


class NfsDriver(BaseDriver[NfsSpec]):
    storage_type: ClassVar[StorageType] = StorageType.NFS
    volume_kind: ClassVar[VolumeKind] = VolumeKind.FILE
    spec_model = NfsSpec
    kubelet_mounts: ClassVar[bool] = True
    volumes_are_nfs_exports: ClassVar[bool] = True
    role: ClassVar[NodeRole] = NodeRole.REMOTE_EXPORT

    def validate_type(self, backend: BackendRef) -> list[Problem]:
        problems = forbidden_option_problems(backend, VERSION_OPTIONS, "set nfs.version instead")
        if backend.spec.provisioning.directory_mode_bits & SPECIAL_MODE_BITS:
            problems.append(
                Problem(
                    "provisioning.directoryMode",
                    "nfs claim directories are made over NFS with the mode given at creation, "
                    "which cannot carry set-id or sticky bits: use a mode of three octal digits",
                )
            )
        return problems

    def protocol_mount_options(self, backend: BackendRef) -> tuple[str, ...]:
        return (f"nfsvers={self.type_spec(backend).version.value}",)

    def plan_checked(
        self, backend: BackendRef, claim: ClaimRequest, ctx: ProvisionContext
    ) -> VolumePlan:
        spec = self.type_spec(backend)
        writers = [mode for mode in claim.access_modes if mode != AccessMode.READ_ONLY_MANY]
        if spec.read_only and writers:
            raise Unprovisionable(
                f"nfs backend {backend.name} is read-only and cannot serve "
                f"{', '.join(writers)}: request ReadOnlyMany"
            )
        directory = claim_directory(claim.namespace, claim.name, claim.uid)
        return VolumePlan(
            capacity_bytes=claim.requested_bytes,
            access_modes=claim.access_modes,
            volume_mode=claim.volume_mode,
            location=DataLocation(
                path=path_under(spec.path, backend.spec.provisioning.base_path, directory),
                server=rendezvous_choice(claim.uid, spec.servers),
                read_only=spec.read_only,
            ),
            node_requirements=self.allowed_topology(backend),
            mount_options=self.mount_options(backend),
        )

    def persistent_volume_source(self, backend: BackendRef, plan: VolumePlan) -> dict[str, Any]:
        source: dict[str, Any] = {"server": plan.location.server, "path": plan.location.path}
        if plan.location.read_only:
            source["readOnly"] = True
        return {"nfs": source}

    def csi_directory_root(self, backend: BackendRef) -> str | None:
        return self.type_spec(backend).path

    def remote_export(self, backend: BackendRef, node: str) -> RemoteExport:
        spec = self.type_spec(backend)
        return RemoteExport(
            servers=tuple(rendezvous_order(node, spec.servers)),
            export=spec.path,
            version=spec.version.value,
        )
