"""Behaviour every driver shares: claim checks, the StorageClass, release, spec checks."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any, ClassVar, Generic, TypeVar

from stowage.api.backend import OnDelete, StorageType
from stowage.api.common import ApiModel, format_quantity
from stowage.drivers.base import (
    BACKEND_PARAMETER,
    CSI_DRIVER,
    CSI_TOPOLOGY_KEY,
    HOSTNAME_LABEL,
    PROVISIONER,
    AccessMode,
    BackendRef,
    CapacitySource,
    ClaimRequest,
    HostMount,
    NodeRequirement,
    NodeRole,
    NodeVolume,
    Problem,
    ProvisionContext,
    ProvisionedVolume,
    ReleasePlan,
    RemoteExport,
    SecretRequirement,
    StaticVolume,
    StorageClassParams,
    Unprovisionable,
    VolumeKind,
    VolumeMode,
    VolumePlan,
)
from stowage.drivers.naming import archive_name

SpecT = TypeVar("SpecT", bound=ApiModel)

ALL_ACCESS_MODES = frozenset(AccessMode)
SINGLE_WRITER_MODES = frozenset({AccessMode.READ_WRITE_ONCE, AccessMode.READ_WRITE_ONCE_POD})
FILESYSTEM_ONLY = frozenset({VolumeMode.FILESYSTEM})
FILESYSTEM_OR_BLOCK = frozenset(VolumeMode)

_PORT = re.compile(r":([0-9]+)$")


def describe_size(size_bytes: int) -> str:
    return format_quantity(size_bytes)


class BaseDriver(Generic[SpecT]):
    """Defaults for a stowage-provisioned type; subclasses say what differs."""

    storage_type: ClassVar[StorageType]
    volume_kind: ClassVar[VolumeKind]
    needs_host_mount: ClassVar[bool] = True
    spec_model: type[SpecT]
    access_modes: ClassVar[frozenset[str]] = ALL_ACCESS_MODES
    # Why the other access modes are refused, in words for the claim's owner.
    access_modes_reason: ClassVar[str] = ""
    volume_modes: ClassVar[frozenset[str]] = FILESYSTEM_ONLY
    # The kubelet mounts the PV itself (in-tree or CSI), so mount options belong on the PV.
    kubelet_mounts: ClassVar[bool] = False
    # The data is recreated on demand: a released volume is always deleted.
    ephemeral: ClassVar[bool] = False
    # Claims can grow (a resizer exists for the type's volumes).
    expandable: ClassVar[bool] = False
    # The helper on the volume's node makes each volume before its PV exists.
    prepared_on_node: ClassVar[bool] = False
    # What the helpers do on the nodes, unless they make each volume on its node.
    role: ClassVar[NodeRole] = NodeRole.NONE
    # The helpers can limit a claim's directory of a shared mount to the claim's size.
    has_directory_quota: ClassVar[bool] = False
    # Each volume is an NFS export of its own (what a NAS server must proxy, not re-export).
    volumes_are_nfs_exports: ClassVar[bool] = False

    def prepares_on_node(self, backend: BackendRef) -> bool:
        return self.prepared_on_node

    def type_spec(self, backend: BackendRef) -> SpecT:
        spec = backend.spec.type_spec
        if not isinstance(spec, self.spec_model):
            raise TypeError(
                f"backend {backend.name} is of type {backend.spec.storage_type}, "
                f"not {self.storage_type}"
            )
        return spec

    # --- spec ---------------------------------------------------------------

    def validate(self, backend: BackendRef) -> list[Problem]:
        problems = self.validate_type(backend)
        on_delete = backend.spec.provisioning.on_delete
        if self.ephemeral and on_delete is not OnDelete.DELETE:
            problems.append(
                Problem(
                    "provisioning.onDelete",
                    f"{self.storage_type} volumes are recreated on demand and are always "
                    f"deleted on release; {on_delete} is not possible",
                )
            )
        if backend.spec.provisioning.csi and not self.served_by_csi(backend):
            problems.append(
                Problem(
                    "provisioning.csi",
                    f"stowage's CSI driver does not serve {self.storage_type} volumes of this "
                    "spec yet (hostPath without enforceQuota, emptyDir, gitRepo, nfs, glusterfs, "
                    "cephfs and cifs so far); set it to false",
                )
            )
        if backend.spec.storage_class.allow_volume_expansion and not self.expandable:
            problems.append(
                Problem(
                    "storageClass.allowVolumeExpansion",
                    f"stowage cannot grow {self.storage_type} volumes; set it to false",
                )
            )
        return problems

    def validate_type(self, backend: BackendRef) -> list[Problem]:
        """Checks of the type's own fields."""
        return []

    def secret_requirements(self, backend: BackendRef) -> list[SecretRequirement]:
        return []

    # --- StorageClass -------------------------------------------------------

    def storage_class(self, backend: BackendRef) -> StorageClassParams:
        csi = backend.spec.provisioning.csi
        topology = self.allowed_topology(backend)
        return StorageClassParams(
            provisioner=CSI_DRIVER if csi else PROVISIONER,
            parameters={BACKEND_PARAMETER: backend.name},
            mount_options=self.mount_options(backend),
            allowed_topology=csi_topology(topology) if csi else topology,
        )

    def csi_driver_name(self, backend: BackendRef) -> str | None:
        return CSI_DRIVER if backend.spec.provisioning.csi else None

    def mount_options(self, backend: BackendRef) -> tuple[str, ...]:
        """Options of the kubelet's mount of each PV. Types mounted by the helper use theirs in
        `host_mount`: on a local PV the kubelet only bind-mounts."""
        if not self.kubelet_mounts:
            return ()
        return (*backend.spec.mount.options, *self.protocol_mount_options(backend))

    def protocol_mount_options(self, backend: BackendRef) -> tuple[str, ...]:
        """Options the type's own fields imply (e.g. the NFS version)."""
        return ()

    def allowed_topology(self, backend: BackendRef) -> tuple[NodeRequirement, ...]:
        """Node requirements for every volume of the backend (mount.nodeSelector)."""
        return tuple(
            NodeRequirement(key, (value,))
            for key, value in sorted(backend.spec.mount.node_selector.items())
        )

    # --- claims -------------------------------------------------------------

    def plan(self, backend: BackendRef, claim: ClaimRequest, ctx: ProvisionContext) -> VolumePlan:
        self.type_spec(backend)  # refuses a backend of another type
        self.check_claim(backend, claim)
        return self.plan_checked(backend, claim, ctx)

    def plan_checked(
        self, backend: BackendRef, claim: ClaimRequest, ctx: ProvisionContext
    ) -> VolumePlan:
        raise NotImplementedError

    def check_claim(self, backend: BackendRef, claim: ClaimRequest) -> None:
        """Refuses claims whose size, access modes or volume mode the type cannot serve."""
        if claim.requested_bytes <= 0:
            raise Unprovisionable("the claim requests no storage: set resources.requests.storage")
        unknown = sorted(set(claim.access_modes) - ALL_ACCESS_MODES)
        if unknown:
            raise Unprovisionable(f"unknown access mode(s): {', '.join(unknown)}")
        if not claim.access_modes:
            raise Unprovisionable("the claim requests no access mode: set accessModes")
        refused = [mode for mode in claim.access_modes if mode not in self.access_modes]
        if refused:
            raise Unprovisionable(
                f"{self.storage_type} backend {backend.name} cannot serve access mode "
                f"{', '.join(refused)}: {self.access_modes_reason}"
            )
        if claim.volume_mode not in self.volume_modes:
            served = " or ".join(sorted(self.volume_modes))
            raise Unprovisionable(
                f"{self.storage_type} backend {backend.name} cannot serve volumeMode "
                f"{claim.volume_mode}: it offers volumeMode {served}"
            )

    def static_volumes(self, backend: BackendRef) -> list[StaticVolume]:
        return []

    def node_role(self, backend: BackendRef) -> NodeRole:
        if self.served_by_csi(backend):
            return NodeRole.NONE  # the CSI node plugin makes and releases the volumes
        return NodeRole.NODE_WORK if self.prepares_on_node(backend) else self.role

    def mount_sources(self, backend: BackendRef) -> dict[str, str]:
        return {}

    def host_mount(self, backend: BackendRef, node: str) -> HostMount | None:
        return None

    def remote_export(self, backend: BackendRef, node: str) -> RemoteExport | None:
        return None

    def node_volume(self, backend: BackendRef, volume: ProvisionedVolume) -> NodeVolume | None:
        return None

    def host_directories(self, backend: BackendRef) -> tuple[str, ...]:
        return ()

    def listed_nodes(self, backend: BackendRef) -> Sequence[str]:
        return ()

    def capacity_source(self, backend: BackendRef) -> CapacitySource | None:
        return None

    def csi_directory_root(self, backend: BackendRef) -> str | None:
        return None

    def csi_backend_mount(self, backend: BackendRef) -> str | None:
        return None

    def served_by_csi(self, backend: BackendRef) -> bool:
        """The backend asks for the CSI driver, and the driver has a path for its volumes."""
        return backend.spec.provisioning.csi and self.csi_directory_root(backend) is not None

    def persistent_volume_source(self, backend: BackendRef, plan: VolumePlan) -> dict[str, Any]:
        raise NotImplementedError

    def release(self, backend: BackendRef, volume: ProvisionedVolume) -> ReleasePlan:
        action = OnDelete.DELETE if self.ephemeral else backend.spec.provisioning.on_delete
        archived = None
        if action is OnDelete.ARCHIVE:
            named = volume.location.block_volume or volume.location.path or volume.name
            archived = archive_name(named)
        return ReleasePlan(action=action, location=volume.location, archive_name=archived)


def csi_topology(requirements: Iterable[NodeRequirement]) -> tuple[NodeRequirement, ...]:
    """The requirements a CSI StorageClass can state: the provisioner refuses keys its driver
    does not report, so the nodes named by hostname become the driver's node key and other
    node labels (mount.nodeSelector) are left to CreateVolume, which refuses other nodes."""
    return tuple(
        NodeRequirement(CSI_TOPOLOGY_KEY, requirement.values)
        for requirement in requirements
        if requirement.key == HOSTNAME_LABEL
    )


# --- checks several types share ---------------------------------------------


def port_problems(field: str, addresses: Iterable[str]) -> list[Problem]:
    """Ports out of range in `host:port` addresses (the schema only bounds the digits)."""
    problems = []
    for index, address in enumerate(addresses):
        match = _PORT.search(address) if not address.endswith("]") else None
        if match and not 0 < int(match[1]) <= 65535:
            problems.append(Problem(f"{field}[{index}]", f"port {match[1]} is not in 1-65535"))
    return problems


def option_names(options: Iterable[str]) -> dict[str, str]:
    """Mount options by name (`vers=4.1` -> `vers`), with their full text."""
    return {option.split("=", 1)[0]: option for option in options}


def forbidden_option_problems(
    backend: BackendRef, names: Iterable[str], reason: str
) -> list[Problem]:
    """mount.options that set what the type sets from its own fields or from a Secret."""
    given = option_names(backend.spec.mount.options)
    # Only the option's name is repeated: its value may be a credential.
    return [Problem("mount.options", f"option {name}: {reason}") for name in names if name in given]
