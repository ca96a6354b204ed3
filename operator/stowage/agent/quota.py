"""Directory quotas: a claim's directory limited to the claim's size, where the type has them.

GlusterFS keeps a directory's limit in the extended attribute `trusted.glusterfs.quota.limit-set`
of the directory on every brick. The quota translator takes a change of it only from a client
that identifies as glusterd's own quota mount (client pid -5), which is what
`gluster volume quota … limit-usage` does on a pool member. The helper is no pool member, so it
mounts the volume that way itself (an auxiliary mount, inside the helper container, for the
length of one pass) and sets the attribute there. Once a limit is set the volume reports it as
the directory's size (quota-deem-statfs, on by default with quota), which is how the helper
checks that the limit is enforced, and not just stored on a volume without quota.

CephFS takes `ceph.quota.max_bytes` on the directory through the ordinary mount.
"""

from __future__ import annotations

import os
import struct
import tempfile
from types import TracebackType

from stowage.agent import mounting
from stowage.agent.claim_data import opened_directory
from stowage.drivers.base import HostMount
from stowage.drivers.naming import parts_below

GLUSTER_LIMIT_ATTRIBUTE = "trusted.glusterfs.quota.limit-set"
GLUSTER_QUOTA_CLIENT_PID = -5  # GF_CLIENT_PID_QUOTA_MOUNT
GLUSTER_DEFAULT_SOFT_LIMIT = -1  # the volume's soft-limit percentage applies
CEPH_LIMIT_ATTRIBUTE = "ceph.quota.max_bytes"


class QuotaError(Exception):
    """The limit could not be set, or is not enforced; the message says what to do."""


def gluster_limit_value(limit_bytes: int) -> bytes:
    """The value of the limit attribute: hard limit and soft-limit percentage, 64-bit big-endian."""
    return struct.pack(">qq", limit_bytes, GLUSTER_DEFAULT_SOFT_LIMIT)


def limit_in_force(mount_point: str, path: str, limit_bytes: int) -> bool:
    """The directory `path` below the mount reports `limit_bytes` as its size, which is how a
    limit in force shows (Gluster's quota-deem-statfs, ceph-fuse's quota df)."""
    with opened_directory(mount_point, parts_below(mount_point, path)) as directory:
        reported = os.fstatvfs(directory)
    return reported.f_blocks * reported.f_frsize == limit_bytes


class DirectoryQuotas:
    """Sets the limits of claim directories below one backend mount.

    Use it as a context manager around one pass: the Gluster auxiliary mount is made on the
    first limit and unmounted at the end.
    """

    def __init__(self, mount: HostMount, mount_timeout: float) -> None:
        self._mount = mount
        self._mount_timeout = mount_timeout
        self._auxiliary: str | None = None

    def __enter__(self) -> DirectoryQuotas:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._auxiliary is not None:
            mounting.unmount(self._auxiliary)
            os.rmdir(self._auxiliary)
            self._auxiliary = None

    def limit(self, path: str, limit_bytes: int) -> None:
        """Limits the directory `path` (below the backend mount) to `limit_bytes`."""
        parts = parts_below(self._mount.mount_point, path)
        if self._mount.fs_type == "glusterfs":
            self._limit_gluster(path, parts, limit_bytes)
        elif self._mount.fs_type == "ceph":
            with opened_directory(self._mount.mount_point, parts) as directory:
                os.setxattr(directory, CEPH_LIMIT_ATTRIBUTE, str(limit_bytes).encode())
        else:
            raise QuotaError(f"{self._mount.fs_type} has no directory quotas")

    def _limit_gluster(self, path: str, parts: list[str], limit_bytes: int) -> None:
        with opened_directory(self._gluster_auxiliary_mount(), parts) as directory:
            os.setxattr(directory, GLUSTER_LIMIT_ATTRIBUTE, gluster_limit_value(limit_bytes))
        if not limit_in_force(self._mount.mount_point, path, limit_bytes):
            volume = mounting.volume_of(self._mount.sources[0])
            raise QuotaError(
                f"the limit is set but not enforced: Gluster volume {volume} needs quota "
                f"(gluster volume quota {volume} enable; features.quota-deem-statfs on)"
            )

    def _gluster_auxiliary_mount(self) -> str:
        if self._auxiliary is not None:
            return self._auxiliary
        source = mounting.mount_source(self._mount.mount_point)
        if source is None:
            raise QuotaError(f"{self._mount.mount_point} is not mounted")
        server, volume = mounting.server_of("glusterfs", source), mounting.volume_of(source)
        directory = tempfile.mkdtemp(prefix="stowage-quota-")
        command = [
            "glusterfs",
            f"--volfile-server={server}",
            f"--volfile-id={volume}",
            f"--client-pid={GLUSTER_QUOTA_CLIENT_PID}",
            directory,
        ]
        outcome = mounting.run_mount(command, self._mount_timeout)
        if outcome != "mounted":
            os.rmdir(directory)
            raise QuotaError(f"quota mount of {source}: {outcome}")
        self._auxiliary = directory
        return directory
