"""NASShare (namespaced): an NFS and/or SMB service exporting a directory of a StorageBackend."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, ClassVar

from pydantic import ConfigDict, Field

from stowage.api.common import (
    OBJECT_DEFAULT,
    SET_LIST,
    ApiModel,
    DnsLabel,
    DnsSubdomain,
    LocalSecretReference,
    PositiveQuantity,
    ResourceNames,
    ResourceStatus,
    cel,
    immutable,
    map_list,
    parse_quantity,
    validations,
)

# Objects made for a share are named `stowage-nas-<share>` and must stay DNS-1035 labels
# (at most 63 characters), as Service names must.
NAS_SHARE_NAME_MAX_LENGTH = 63 - len("stowage-nas-")


class ShareProtocol(StrEnum):
    NFS = "nfs"
    SMB = "smb"


class NfsAccess(StrEnum):
    READ_WRITE = "ReadWrite"
    READ_ONLY = "ReadOnly"


class NfsSquash(StrEnum):
    ROOT_SQUASH = "RootSquash"
    NO_SQUASH = "NoSquash"
    ALL_SQUASH = "AllSquash"


class NfsClientRule(ApiModel):
    """Which clients may mount the NFS export, and how."""

    cidr: str = Field(
        max_length=64,
        description="Client network in CIDR notation, e.g. 10.0.0.0/8 or 2001:db8::/32.",
        json_schema_extra=validations(
            cel("isCIDR(self)", "nfs.clients[].cidr must be a CIDR such as 10.0.0.0/8")
        ),
    )
    access: NfsAccess = Field(default=NfsAccess.READ_WRITE, description="ReadWrite or ReadOnly.")
    squash: NfsSquash = Field(
        default=NfsSquash.ROOT_SQUASH,
        description="RootSquash maps root to nobody, AllSquash maps everyone, NoSquash none.",
    )


class NfsExportSpec(ApiModel):
    """Settings of the NFS export (NFS-Ganesha, NFSv4)."""

    clients: list[NfsClientRule] = Field(
        min_length=1,
        max_length=64,
        description="Client rules; a client matching none of them is refused.",
        json_schema_extra=map_list("cidr"),
    )


SmbUserName = Annotated[
    str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
]


class SmbShareSpec(ApiModel):
    """Settings of the SMB share (Samba)."""

    users_secret_ref: LocalSecretReference = Field(
        description="Secret in the share's namespace: each key is a user name, its value the "
        "password.",
    )
    read_only_users: list[SmbUserName] = Field(
        default_factory=list,
        max_length=256,
        description="Users (keys of the Secret) that may only read.",
        json_schema_extra=SET_LIST,
    )
    browseable: bool = Field(default=True, description="List the share when browsing the server.")


class ServiceType(StrEnum):
    CLUSTER_IP = "ClusterIP"
    NODE_PORT = "NodePort"
    LOAD_BALANCER = "LoadBalancer"


class ShareServiceSpec(ApiModel):
    """The Service through which clients reach the share."""

    type: ServiceType = Field(
        default=ServiceType.CLUSTER_IP, description="ClusterIP, NodePort or LoadBalancer."
    )


class ShareClaimSpec(ApiModel):
    """The ReadWriteMany claim made for in-cluster consumers of the share."""

    name: DnsSubdomain | None = Field(
        default=None, description="Name of the PersistentVolumeClaim; the share's name when unset."
    )

    def resolved_name(self, share_name: str) -> str:
        return self.name or share_name


class NASShareSpec(ApiModel):
    """Desired state of a NASShare."""

    backend: DnsLabel = Field(
        description="Name of the StorageBackend the share's data lives on.",
        json_schema_extra=immutable("backend"),
    )
    size: PositiveQuantity = Field(description="Capacity of the share, e.g. 50Gi.")
    protocols: list[ShareProtocol] = Field(
        min_length=1,
        max_length=2,
        description="Protocols to serve: nfs, smb or both.",
        json_schema_extra=SET_LIST,
    )
    nfs: NfsExportSpec | None = Field(
        default=None, description="NFS export settings; required when protocols has nfs."
    )
    smb: SmbShareSpec | None = Field(
        default=None, description="SMB share settings; required when protocols has smb."
    )
    service: ShareServiceSpec = Field(
        default_factory=ShareServiceSpec,
        description="The Service through which clients reach the share.",
        json_schema_extra=OBJECT_DEFAULT,
    )
    replicas: int = Field(
        default=1,
        ge=1,
        le=2,
        description="Server pods (2 for a standby that takes over quickly).",
    )
    claim: ShareClaimSpec = Field(
        default_factory=ShareClaimSpec,
        description="The ReadWriteMany claim made for in-cluster consumers.",
        json_schema_extra=OBJECT_DEFAULT,
    )

    model_config = ConfigDict(
        json_schema_extra=validations(
            cel(
                "!('nfs' in self.protocols) || has(self.nfs)",
                "spec.nfs is required when protocols contains nfs",
            ),
            cel(
                "!('smb' in self.protocols) || has(self.smb)",
                "spec.smb is required when protocols contains smb",
            ),
        )
    )

    @property
    def size_bytes(self) -> int:
        return parse_quantity(self.size)


class ShareEndpoints(ApiModel):
    """Where clients reach the share."""

    nfs: str | None = Field(default=None, description="NFS endpoint as host:/path.")
    smb: str | None = Field(default=None, description="SMB endpoint as //host/share.")


class NASShareStatus(ResourceStatus):
    """Observed state of a NASShare, written by the operator."""

    endpoints: ShareEndpoints | None = Field(
        default=None, description="Where clients reach the share."
    )
    capacity: str | None = Field(default=None, description="Capacity provisioned for the share.")


class NASShare(ApiModel):
    """An NFS and/or SMB service exporting a directory of a StorageBackend."""

    resource: ClassVar[ResourceNames] = ResourceNames(
        kind="NASShare",
        plural="nasshares",
        singular="nasshare",
        short_names=("nas",),
        namespaced=True,
    )

    spec: NASShareSpec = Field(description="Desired state of the share.")
    status: NASShareStatus | None = Field(default=None, description="Observed state of the share.")
