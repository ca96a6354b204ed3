"""BackendVolume (cluster-scoped): the record of one CSI volume stowage made from a backend.

The CSI controller creates it in CreateVolume and deletes it in DeleteVolume; its name is the
volume's ID. It holds what the ID cannot: the backend, the node of a node-local volume, where
the data lives and the size granted, so that a repeated CreateVolume is answered from it and a
DeleteVolume knows what to release. Where the data is released on a node (a node-local
volume's node, or for a volume in a backend mount, a node the controller picks among those
with the mount ready), the finalizer `stowage.io/node-data` keeps the record until that node's
plugin has done it (TopoLVM keeps a LogicalVolume the same way).
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from stowage.api.common import ApiModel, ResourceNames

NODE_DATA_FINALIZER = "stowage.io/node-data"


class BackendVolumeSpec(ApiModel):
    """Where a CSI volume's data is; set by the CSI controller at creation, then unchanged."""

    backend: str = Field(max_length=63, description="The StorageBackend the volume is from.")
    storage_type: str = Field(max_length=32, description="The backend's storage type.")
    capacity_bytes: int = Field(ge=0, description="Bytes granted to the volume.")
    root: str = Field(
        max_length=4096, description="The backend's directory the volume's directory is below."
    )
    path: str = Field(
        max_length=4096, description="The volume's directory as the node or server has it."
    )
    node: str | None = Field(
        default=None, max_length=253, description="The node that holds a node-local volume."
    )
    server: str | None = Field(
        default=None,
        max_length=253,
        description="The server whose export holds the volume's directory (nfs); `root` is "
        "the export, `path` the directory as clients mount it.",
    )
    backend_mount: str | None = Field(
        default=None,
        max_length=4096,
        description="The backend mount the volume's directory is in (glusterfs, cephfs, cifs): "
        "the backend's helpers mount it on every node that can use the volume, and the node "
        "plugin makes and releases the directory there.",
    )
    quota_bytes: int | None = Field(
        default=None,
        ge=1,
        description="The directory is limited to this many bytes (the backend's directory "
        "quota) when the node plugin makes it.",
    )
    checkout_path: str | None = Field(
        default=None,
        max_length=4096,
        description="The volume is a checkout of the backend's Git repository (gitRepo), kept "
        "in this directory of its node and bound read-only onto `path`: the node plugin "
        "fetches it at the first publish and brings it up to date every syncPeriod.",
    )
    read_only: bool = Field(default=False, description="The backend serves it read-only.")
    tmpfs_bytes: int | None = Field(
        default=None,
        ge=1,
        description="The volume is a tmpfs of this many bytes on its node (emptyDir medium "
        "Memory), mounted on the volume's directory when it is first published.",
    )
    directory_mode: str = Field(
        default="0777", pattern=r"^0?[0-7]{3,4}$", description="Mode of the new directory."
    )
    directory_uid: int | None = Field(
        default=None, ge=0, le=2**31 - 1, description="Owner of the new directory."
    )
    directory_gid: int | None = Field(
        default=None, ge=0, le=2**31 - 1, description="Group of the new directory."
    )
    claim_namespace: str | None = Field(
        default=None, max_length=63, description="Namespace of the claim it was made for."
    )
    claim_name: str | None = Field(
        default=None, max_length=253, description="Name of the claim it was made for."
    )


class BackendVolume(ApiModel):
    """One CSI volume of a StorageBackend."""

    resource: ClassVar[ResourceNames] = ResourceNames(
        kind="BackendVolume",
        plural="backendvolumes",
        singular="backendvolume",
        short_names=("bvol",),
        namespaced=False,
    )

    spec: BackendVolumeSpec = Field(description="Where the volume's data is.")
