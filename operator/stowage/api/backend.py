"""StorageBackend (cluster-scoped): one storage system, offered to the cluster as a StorageClass."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, ClassVar

from pydantic import ConfigDict, Field, model_validator

from stowage.api.common import (
    DURATION_PATTERN,
    OBJECT_DEFAULT,
    SET_LIST,
    AbsolutePath,
    ApiModel,
    DnsSubdomain,
    Host,
    PositiveQuantity,
    ResourceNames,
    ResourceStatus,
    SecretReference,
    ServerAddress,
    cel,
    immutable,
    map_list,
    parse_duration,
    parse_quantity,
    validations,
)

# The name part of the node label `mount.stowage.io/<backend>` is at most 63 characters.
BACKEND_NAME_MAX_LENGTH = 63


class StorageType(StrEnum):
    """The storage types; the values are the field names on StorageBackendSpec."""

    EMPTY_DIR = "emptyDir"
    HOST_PATH = "hostPath"
    GIT_REPO = "gitRepo"
    GCE_PERSISTENT_DISK = "gcePersistentDisk"
    AWS_ELASTIC_BLOCK_STORE = "awsElasticBlockStore"
    CINDER = "cinder"
    NFS = "nfs"
    ISCSI = "iscsi"
    GLUSTERFS = "glusterfs"
    RBD = "rbd"
    CEPHFS = "cephfs"
    CIFS = "cifs"
    LVM = "lvm"


class FsType(StrEnum):
    EXT4 = "ext4"
    XFS = "xfs"
    EXT3 = "ext3"
    BTRFS = "btrfs"


def _fs_type_field() -> Any:
    return Field(
        default=FsType.EXT4,
        description="Filesystem created on each new volume: ext4, xfs, ext3 or btrfs.",
    )


HostList = Annotated[list[Host], Field(min_length=1, max_length=16)]
ServerAddressList = Annotated[list[ServerAddress], Field(min_length=1, max_length=16)]
NodeNames = Annotated[list[DnsSubdomain], Field(max_length=256)]
VOLUME_NAME_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.+-]*$"
# A Gluster volume, RADOS pool or CephFS filesystem name.
StorageObjectName = Annotated[str, Field(min_length=1, max_length=255, pattern=VOLUME_NAME_PATTERN)]


# --- node-local and ephemeral types ----------------------------------------


class EmptyDirMedium(StrEnum):
    DEFAULT = ""
    MEMORY = "Memory"


class EmptyDirSpec(ApiModel):
    """Ephemeral node-local storage: a size-limited directory or tmpfs per claim."""

    medium: EmptyDirMedium = Field(
        default=EmptyDirMedium.DEFAULT,
        description='Where the data lives: "" for a directory on the node\'s disk, "Memory" '
        "for a tmpfs of the claim's size (mounted under /var/lib/stowage/volumes/<backend>; "
        "writing beyond the size fails, and the memory counts against the node).",
        json_schema_extra=immutable("emptyDir.medium"),
    )
    base_path: AbsolutePath = Field(
        default="/var/lib/stowage/empty-dir",
        description='Directory on each node under which the per-claim directories of medium "" '
        "are made.",
        json_schema_extra=immutable("emptyDir.basePath"),
    )


class HostPathSpec(ApiModel):
    """Persistent node-local storage: one subdirectory per claim under a directory of the node."""

    path: AbsolutePath = Field(
        description="Directory on the nodes under which claim directories are created.",
        json_schema_extra=immutable("hostPath.path"),
    )
    nodes: NodeNames = Field(
        default_factory=list,
        description="Names of the nodes that offer this storage; empty means every node "
        "selected by mount.nodeSelector.",
        json_schema_extra=SET_LIST,
    )


class GitRepoSpec(ApiModel):
    """Files from a Git repository, cloned and kept in sync on the node for each claim."""

    repository: str = Field(
        min_length=1,
        max_length=2048,
        pattern=r"^((https?|git|ssh)://[^\s]+|[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:[^\s]+)$",
        description="URL of the repository (https://, http://, git://, ssh:// or user@host:path).",
        json_schema_extra=immutable("gitRepo.repository"),
    )
    revision: str = Field(
        default="HEAD",
        max_length=255,
        pattern=r"^[A-Za-z0-9_][A-Za-z0-9._/-]*$",
        description="Branch, tag or commit to check out.",
    )
    depth: int = Field(
        default=1,
        ge=0,
        description="History depth of the clone; 0 means the full history.",
    )
    sync_period: str = Field(
        default="5m",
        max_length=32,
        pattern=DURATION_PATTERN,
        description="How often checkouts are brought up to date, e.g. 30s, 5m, 1h (at least 10s).",
        json_schema_extra=validations(
            cel("duration(self) >= duration('10s')", "gitRepo.syncPeriod must be at least 10s")
        ),
    )
    credentials_secret_ref: SecretReference | None = Field(
        default=None,
        description="Secret with keys username and password (HTTPS) or ssh-privatekey (SSH).",
    )

    @property
    def sync_period_seconds(self) -> float:
        return parse_duration(self.sync_period)


# --- cloud block storage (delegated to CSI drivers) -------------------------


class GcePdType(StrEnum):
    STANDARD = "pd-standard"
    BALANCED = "pd-balanced"
    SSD = "pd-ssd"
    EXTREME = "pd-extreme"


class GceReplicationType(StrEnum):
    NONE = "none"
    REGIONAL = "regional-pd"


class ExistingGceDisk(ApiModel):
    """A disk that already exists, offered as a statically provisioned PersistentVolume."""

    pd_name: str = Field(
        min_length=1,
        max_length=63,
        pattern=r"^[a-z]([-a-z0-9]*[a-z0-9])?$",
        description="Name of the Persistent Disk.",
    )
    size: PositiveQuantity = Field(description="Size of the disk, e.g. 100Gi.")
    zone: str | None = Field(
        default=None, max_length=63, description="Zone of the disk, e.g. europe-west1-b."
    )

    @property
    def size_bytes(self) -> int:
        return parse_quantity(self.size)


class GcePersistentDiskSpec(ApiModel):
    """Google Compute Engine Persistent Disks through the CSI driver pd.csi.storage.gke.io."""

    type: GcePdType = Field(default=GcePdType.BALANCED, description="Disk type of new disks.")
    replication_type: GceReplicationType = Field(
        default=GceReplicationType.NONE,
        description="none for zonal disks, regional-pd for disks replicated over two zones.",
    )
    fs_type: FsType = _fs_type_field()
    existing_disks: list[ExistingGceDisk] = Field(
        default_factory=list,
        max_length=256,
        description="Disks that already exist, offered as static PersistentVolumes.",
        json_schema_extra=map_list("pdName"),
    )


class EbsVolumeType(StrEnum):
    GP2 = "gp2"
    GP3 = "gp3"
    IO1 = "io1"
    IO2 = "io2"
    ST1 = "st1"
    SC1 = "sc1"
    STANDARD = "standard"


class ExistingVolume(ApiModel):
    """A volume that already exists, offered as a statically provisioned PersistentVolume."""

    volume_id: str = Field(
        alias="volumeID",
        min_length=1,
        max_length=255,
        description="ID of the volume in the cloud.",
    )
    size: PositiveQuantity = Field(description="Size of the volume, e.g. 100Gi.")
    zone: str | None = Field(
        default=None, max_length=63, description="Availability zone of the volume."
    )

    @property
    def size_bytes(self) -> int:
        return parse_quantity(self.size)


EXISTING_VOLUMES_LIST = map_list("volumeID")


class AwsElasticBlockStoreSpec(ApiModel):
    """Amazon EBS volumes through the CSI driver ebs.csi.aws.com."""

    type: EbsVolumeType = Field(default=EbsVolumeType.GP3, description="EBS volume type.")
    iops: int | None = Field(
        default=None,
        ge=100,
        le=256000,
        description="Provisioned IOPS (gp3, io1, io2 only).",
    )
    throughput: int | None = Field(
        default=None,
        ge=125,
        le=2000,
        description="Provisioned throughput in MiB/s (gp3 only).",
    )
    encrypted: bool = Field(default=False, description="Encrypt new volumes.")
    kms_key_id: str | None = Field(
        default=None,
        max_length=2048,
        description="KMS key (ID or ARN) for encryption; the account default key when unset.",
    )
    fs_type: FsType = _fs_type_field()
    existing_volumes: list[ExistingVolume] = Field(
        default_factory=list,
        max_length=256,
        description="Volumes that already exist, offered as static PersistentVolumes.",
        json_schema_extra=EXISTING_VOLUMES_LIST,
    )

    model_config = ConfigDict(
        json_schema_extra=validations(
            cel(
                "!has(self.iops) || self.type in ['gp3', 'io1', 'io2']",
                "awsElasticBlockStore.iops applies to the types gp3, io1 and io2 only",
            ),
            cel(
                "!has(self.throughput) || self.type == 'gp3'",
                "awsElasticBlockStore.throughput applies to the type gp3 only",
            ),
            cel(
                "!has(self.kmsKeyId) || self.encrypted",
                "awsElasticBlockStore.kmsKeyId requires encrypted: true",
            ),
        )
    )


class CinderSpec(ApiModel):
    """OpenStack Cinder volumes through the CSI driver cinder.csi.openstack.org."""

    type: str | None = Field(
        default=None,
        max_length=255,
        description="Cinder volume type; the cloud's default type when unset.",
    )
    availability: str | None = Field(
        default=None,
        max_length=255,
        description="Availability zone of new volumes; chosen by the scheduler when unset.",
    )
    fs_type: FsType = _fs_type_field()
    existing_volumes: list[ExistingVolume] = Field(
        default_factory=list,
        max_length=256,
        description="Volumes that already exist, offered as static PersistentVolumes.",
        json_schema_extra=EXISTING_VOLUMES_LIST,
    )


# --- remote file and block storage ------------------------------------------


class NfsVersion(StrEnum):
    V3 = "3"
    V4 = "4"
    V4_1 = "4.1"
    V4_2 = "4.2"


class NfsSpec(ApiModel):
    """An NFS export; each claim gets a subdirectory of it."""

    servers: HostList = Field(
        description="NFS servers exporting the same path (tried in turn).",
        json_schema_extra=SET_LIST,
    )
    path: AbsolutePath = Field(
        description="Exported path on the servers.",
        json_schema_extra=immutable("nfs.path"),
    )
    version: NfsVersion = Field(default=NfsVersion.V4_1, description="NFS protocol version.")
    read_only: bool = Field(default=False, description="Mount the export read-only.")


class IscsiLun(ApiModel):
    """One LUN of the pool; a claim gets the smallest free LUN that fits."""

    lun: int = Field(ge=0, le=16383, description="LUN number on the target.")
    size: PositiveQuantity = Field(description="Size of the LUN, e.g. 10Gi.")

    @property
    def size_bytes(self) -> int:
        return parse_quantity(self.size)


class IscsiSpec(ApiModel):
    """An iSCSI target whose LUNs are handed out one per claim."""

    portals: ServerAddressList = Field(
        description="Target portals as host:port (port 3260 when omitted); the first is the "
        "primary, the others are used for multipath.",
        json_schema_extra=SET_LIST,
    )
    iqn: str = Field(
        max_length=223,
        pattern=r"^(iqn\.[0-9]{4}-[0-9]{2}\.[a-z0-9][a-z0-9.-]*(:[^\s]+)?|eui\.[0-9A-Fa-f]{16}"
        r"|naa\.[0-9A-Fa-f]{16}([0-9A-Fa-f]{16})?)$",
        description="Qualified name of the target, e.g. iqn.2024-01.org.example:storage.",
        json_schema_extra=immutable("iscsi.iqn"),
    )
    luns: list[IscsiLun] = Field(
        min_length=1,
        max_length=1024,
        description="The pool of LUNs that claims are served from.",
        json_schema_extra=map_list("lun"),
    )
    fs_type: FsType = _fs_type_field()
    chap_secret_ref: SecretReference | None = Field(
        default=None,
        description="Secret with the CHAP keys node.session.auth.username and "
        "node.session.auth.password; no CHAP when unset.",
    )
    initiator_name: str | None = Field(
        default=None,
        max_length=223,
        pattern=r"^(iqn\.[0-9]{4}-[0-9]{2}\.[a-z0-9][a-z0-9.-]*(:[^\s]+)?|eui\.[0-9A-Fa-f]{16})$",
        description="Initiator name used to log in; the node's own when unset.",
    )
    wipe_on_delete: bool = Field(
        default=False,
        description="Write zeros over the whole LUN when its volume is released, before "
        "reuse: the operator logs in (libiscsi, with the CHAP Secret) and deletes the volume, "
        "freeing the LUN, only once it is zeroed; a failed wipe keeps the volume and is "
        "retried.",
    )


class GlusterfsSpec(ApiModel):
    """A GlusterFS volume, mounted on the nodes through FUSE; a subdirectory per claim."""

    hosts: HostList = Field(
        description="Gluster servers holding the volume (each node picks one, the others "
        "are fallbacks).",
        json_schema_extra=SET_LIST,
    )
    volume: StorageObjectName = Field(
        description="Name of the Gluster volume.",
        json_schema_extra=immutable("glusterfs.volume"),
    )


class RbdImageFeature(StrEnum):
    LAYERING = "layering"
    EXCLUSIVE_LOCK = "exclusive-lock"
    OBJECT_MAP = "object-map"
    FAST_DIFF = "fast-diff"
    DEEP_FLATTEN = "deep-flatten"


class CephClientSpec(ApiModel):
    """How a Ceph client reaches the cluster (shared by rbd and cephfs)."""

    monitors: ServerAddressList = Field(
        description="Ceph monitors, as hosts or host:port.",
        json_schema_extra=SET_LIST,
    )
    user_secret_ref: SecretReference = Field(
        description="Secret with the keys userID (the Ceph user without 'client.') and userKey.",
    )


class RbdSpec(CephClientSpec):
    """A Ceph RBD pool; each claim is one RBD image."""

    pool: StorageObjectName = Field(
        description="RADOS pool that holds the images.",
        json_schema_extra=immutable("rbd.pool"),
    )
    image_features: list[RbdImageFeature] = Field(
        default_factory=lambda: [RbdImageFeature.LAYERING],
        max_length=5,
        description="Features enabled on new images.",
        json_schema_extra=SET_LIST,
    )
    fs_type: FsType = _fs_type_field()


class CephfsSpec(CephClientSpec):
    """A CephFS filesystem; each claim gets a directory with a quota."""

    fs_name: StorageObjectName = Field(
        default="cephfs",
        description="Name of the CephFS filesystem.",
        json_schema_extra=immutable("cephfs.fsName"),
    )
    path: AbsolutePath = Field(
        default="/",
        description="Directory of the filesystem that is mounted.",
        json_schema_extra=immutable("cephfs.path"),
    )


class CifsVersion(StrEnum):
    V2_1 = "2.1"
    V3_0 = "3.0"
    V3_1_1 = "3.1.1"


class CifsSpec(ApiModel):
    """An SMB/CIFS share; each claim gets a subdirectory of it."""

    servers: HostList = Field(
        description="SMB servers offering the share (tried in turn).",
        json_schema_extra=SET_LIST,
    )
    share: str = Field(
        min_length=1,
        max_length=80,
        pattern=r"^[^\\/:*?\"<>|\s][^\\/:*?\"<>|]*$",
        description="Name of the share on the servers.",
        json_schema_extra=immutable("cifs.share"),
    )
    secret_ref: SecretReference = Field(
        description="Secret with the keys username and password, and optionally domain.",
    )
    version: CifsVersion = Field(default=CifsVersion.V3_0, description="SMB protocol version.")


class LvmSpec(ApiModel):
    """An LVM volume group on the nodes; each claim is one logical volume."""

    volume_group: str = Field(
        min_length=1,
        max_length=127,
        pattern=r"^[A-Za-z0-9_+][A-Za-z0-9_.+-]*$",
        description="Name of the volume group, present on every node that offers this storage.",
        json_schema_extra=immutable("lvm.volumeGroup"),
    )
    nodes: NodeNames = Field(
        default_factory=list,
        description="Names of the nodes that offer this storage; empty means every node "
        "selected by mount.nodeSelector.",
        json_schema_extra=SET_LIST,
    )
    thin_pool: str | None = Field(
        default=None,
        max_length=127,
        pattern=r"^[A-Za-z0-9_+][A-Za-z0-9_.+-]*$",
        description="Thin pool in the volume group; thick logical volumes when unset.",
    )
    fs_type: FsType = _fs_type_field()


# --- shared sub-objects -----------------------------------------------------


class OnDelete(StrEnum):
    """What happens to a claim's data when its volume is released."""

    DELETE = "Delete"
    RETAIN = "Retain"
    ARCHIVE = "Archive"


class DirectoryOwner(ApiModel):
    """Numeric owner of the claim directories the mount helper creates."""

    uid: int = Field(ge=0, le=2**31 - 1, description="Owning user id.")
    gid: int = Field(ge=0, le=2**31 - 1, description="Owning group id.")


class ProvisioningSpec(ApiModel):
    """How volumes are carved out of the backend."""

    base_path: AbsolutePath = Field(
        default="/",
        description="Directory inside the storage under which claim directories are created "
        "(file types).",
    )
    on_delete: OnDelete = Field(
        default=OnDelete.DELETE,
        description="What happens to the data of a released volume: Delete removes it, Retain "
        "leaves it in place, Archive renames it to archived-<name> (default Delete, as for "
        "dynamically provisioned volumes in Kubernetes).",
    )
    directory_mode: str = Field(
        default="0777",
        pattern=r"^0?[0-7]{3,4}$",
        description="Octal mode of each new claim directory (directory types; default 0777, "
        "writable by any pod user). Set when the directory is made, never changed afterwards.",
    )
    directory_owner: DirectoryOwner | None = Field(
        default=None,
        description="Owner of each new claim directory (directory types); root when unset.",
    )
    csi: bool = Field(
        default=False,
        description="Serve new claims through the CSI driver csi.stowage.io (its Controller "
        "service in the operator's pod, its Node service on each node) instead of the "
        "stowage.io/provisioner: the StorageClass names the driver, and each new PV is a CSI "
        "volume. Volumes made before keep being used and released as their reclaim settings "
        "say. Only types with a CSI path may set it: hostPath without enforceQuota so far.",
    )
    enforce_quota: bool | None = Field(
        default=None,
        description="Limit each claim's directory to the claim's size. Unset: on for the "
        "types with directory quotas (GlusterFS, CephFS), off for hostPath. GlusterFS needs "
        "quota enabled on the volume (gluster volume quota <volume> enable). true on hostPath "
        "makes each claim's directory a btrfs subvolume with a qgroup limit, made by a mount "
        "helper on the node; the base path must be on btrfs (no other file system has a quota "
        "stowage can set yet). A claim whose quota cannot be set stays Pending with a "
        "PreparationFailed Event.",
    )

    @property
    def directory_mode_bits(self) -> int:
        return int(self.directory_mode, 8)


class TolerationOperator(StrEnum):
    EXISTS = "Exists"
    EQUAL = "Equal"


class TaintEffect(StrEnum):
    NO_SCHEDULE = "NoSchedule"
    PREFER_NO_SCHEDULE = "PreferNoSchedule"
    NO_EXECUTE = "NoExecute"


class Toleration(ApiModel):
    """A Kubernetes toleration (core/v1 Toleration)."""

    key: str | None = Field(
        default=None,
        max_length=316,
        description="Taint key the toleration applies to; empty with Exists matches all taints.",
    )
    operator: TolerationOperator = Field(
        default=TolerationOperator.EQUAL, description="Exists or Equal."
    )
    value: str | None = Field(
        default=None,
        max_length=63,
        description="Taint value to match with the Equal operator.",
    )
    effect: TaintEffect | None = Field(
        default=None,
        description="Taint effect to match; all effects when unset.",
    )
    toleration_seconds: int | None = Field(
        default=None,
        description="How long a NoExecute taint is tolerated before eviction.",
    )

    model_config = ConfigDict(
        json_schema_extra=validations(
            cel(
                "self.operator != 'Exists' || !has(self.value) || self.value == ''",
                "tolerations: value must be empty when operator is Exists",
            )
        )
    )


MountOption = Annotated[
    str,
    Field(min_length=1, max_length=256, pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.=:/+@-]*$"),
]


class MountSpec(ApiModel):
    """Where and how the storage is mounted on the nodes."""

    options: list[MountOption] = Field(
        default_factory=list,
        max_length=32,
        description="Mount options, one per item (e.g. noatime, vers=4.2).",
    )
    node_selector: dict[str, str] = Field(
        default_factory=dict,
        description="Labels of the nodes that mount the storage; every node when empty.",
    )
    tolerations: list[Toleration] = Field(
        default_factory=list,
        max_length=32,
        description="Tolerations of the mount-helper pods, to reach tainted nodes.",
    )


class ReclaimPolicy(StrEnum):
    DELETE = "Delete"
    RETAIN = "Retain"


class VolumeBindingMode(StrEnum):
    IMMEDIATE = "Immediate"
    WAIT_FOR_FIRST_CONSUMER = "WaitForFirstConsumer"


class StorageClassSpec(ApiModel):
    """The StorageClass through which the backend is offered."""

    name: DnsSubdomain | None = Field(
        default=None,
        description="Name of the StorageClass; the backend's name when unset.",
    )
    is_default: bool = Field(
        default=False,
        description="Mark the StorageClass as the cluster's default.",
    )
    reclaim_policy: ReclaimPolicy = Field(
        default=ReclaimPolicy.DELETE,
        description="Reclaim policy of the volumes: Delete or Retain.",
    )
    volume_binding_mode: VolumeBindingMode = Field(
        default=VolumeBindingMode.WAIT_FOR_FIRST_CONSUMER,
        description="Immediate, or WaitForFirstConsumer to provision on the node a pod runs on.",
    )
    allow_volume_expansion: bool = Field(
        default=False,
        description="Allow claims to grow.",
    )

    def resolved_name(self, backend_name: str) -> str:
        return self.name or backend_name


# --- the resource -----------------------------------------------------------

_TYPE_FIELDS = [storage_type.value for storage_type in StorageType]


class StorageBackendSpec(ApiModel):
    """Desired state of a StorageBackend: exactly one storage type plus shared settings."""

    empty_dir: EmptyDirSpec | None = Field(
        default=None, description="Ephemeral node-local storage (directory or tmpfs)."
    )
    host_path: HostPathSpec | None = Field(
        default=None, description="Persistent node-local storage under a host directory."
    )
    git_repo: GitRepoSpec | None = Field(
        default=None, description="Files checked out from a Git repository."
    )
    gce_persistent_disk: GcePersistentDiskSpec | None = Field(
        default=None, description="Google Compute Engine Persistent Disks (CSI)."
    )
    aws_elastic_block_store: AwsElasticBlockStoreSpec | None = Field(
        default=None, description="Amazon Elastic Block Store volumes (CSI)."
    )
    cinder: CinderSpec | None = Field(default=None, description="OpenStack Cinder volumes (CSI).")
    nfs: NfsSpec | None = Field(default=None, description="An NFS export.")
    iscsi: IscsiSpec | None = Field(default=None, description="LUNs of an iSCSI target.")
    glusterfs: GlusterfsSpec | None = Field(default=None, description="A GlusterFS volume.")
    rbd: RbdSpec | None = Field(default=None, description="Images in a Ceph RBD pool.")
    cephfs: CephfsSpec | None = Field(default=None, description="A CephFS filesystem.")
    cifs: CifsSpec | None = Field(default=None, description="An SMB/CIFS share.")
    lvm: LvmSpec | None = Field(default=None, description="An LVM volume group on the nodes.")
    provisioning: ProvisioningSpec = Field(
        default_factory=ProvisioningSpec,
        description="How volumes are carved out of the backend.",
        json_schema_extra=OBJECT_DEFAULT,
    )
    mount: MountSpec = Field(
        default_factory=MountSpec,
        description="Where and how the storage is mounted on the nodes.",
        json_schema_extra=OBJECT_DEFAULT,
    )
    storage_class: StorageClassSpec = Field(
        default_factory=StorageClassSpec,
        description="The StorageClass through which the backend is offered.",
        json_schema_extra=OBJECT_DEFAULT,
    )

    model_config = ConfigDict(
        json_schema_extra=validations(
            cel(
                "[" + ", ".join(f"has(self.{name})" for name in _TYPE_FIELDS) + "]"
                ".filter(isSet, isSet).size() == 1",
                "spec: exactly one storage type must be set (" + ", ".join(_TYPE_FIELDS) + ")",
            ),
            cel(
                " && ".join(f"has(self.{name}) == has(oldSelf.{name})" for name in _TYPE_FIELDS),
                "spec: the storage type is immutable; create a new StorageBackend instead",
            ),
        )
    )

    @model_validator(mode="after")
    def _exactly_one_type(self) -> StorageBackendSpec:
        present = [name for name in _TYPE_FIELDS if self._type_field(name) is not None]
        if len(present) != 1:
            raise ValueError(
                f"exactly one storage type must be set, found {present or 'none'} "
                f"(one of {', '.join(_TYPE_FIELDS)})"
            )
        return self

    def _type_field(self, alias: str) -> ApiModel | None:
        value: ApiModel | None = getattr(self, _FIELD_BY_ALIAS[alias])
        return value

    @property
    def storage_type(self) -> StorageType:
        """The one storage type that is set."""
        for storage_type in StorageType:
            if self._type_field(storage_type.value) is not None:
                return storage_type
        raise AssertionError("unreachable: validated to have exactly one type")

    @property
    def type_spec(self) -> ApiModel:
        """The spec model of the storage type that is set."""
        spec = self._type_field(self.storage_type.value)
        assert spec is not None
        return spec


_FIELD_BY_ALIAS = {
    (info.alias or name): name for name, info in StorageBackendSpec.model_fields.items()
}


class NodeMountCounts(ApiModel):
    """How many nodes have the storage mounted."""

    mounted: int = Field(default=0, ge=0, description="Nodes where the mount is healthy.")
    failed: int = Field(default=0, ge=0, description="Nodes where the mount failed.")
    lost: int = Field(
        default=0, ge=0, description="Nodes with the backend whose kubelet is not Ready."
    )


class StorageBackendStatus(ResourceStatus):
    """Observed state of a StorageBackend, written by the operator."""

    nodes: NodeMountCounts | None = Field(
        default=None, description="Mount state on the nodes (types with host mounts)."
    )
    volumes: int | None = Field(
        default=None, ge=0, description="Number of PersistentVolumes provisioned."
    )
    storage_type: StorageType | None = Field(
        default=None, description="The storage type of the backend (for kubectl get)."
    )


class StorageBackend(ApiModel):
    """A storage system offered to the cluster through a StorageClass."""

    resource: ClassVar[ResourceNames] = ResourceNames(
        kind="StorageBackend",
        plural="storagebackends",
        singular="storagebackend",
        short_names=("sb",),
        namespaced=False,
    )

    spec: StorageBackendSpec = Field(description="Desired state of the backend.")
    status: StorageBackendStatus | None = Field(
        default=None, description="Observed state of the backend."
    )
