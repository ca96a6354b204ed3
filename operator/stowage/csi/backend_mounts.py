"""The node plugin's work on volumes in a backend mount (glusterfs, cephfs, cifs).

The backend's helpers keep the backend mounted on their nodes (balanced server choice,
failover, stale-mount remounts, FUSE clients that outlive a restart: stowage.agent) and label
each node `mount.stowage.io/<backend>` with the mount's health, which the volumes' topology
requires. The node plugin makes a volume's directory in that mount the first time a pod on
the node uses it, limited to the volume's size where the backend has directory quotas, and
deletes or archives it when the controller hands the volume's release to this node. Neither
happens unless the mount is there and answers: a directory made in the empty mount point
would be the node's own, and a release there would find nothing and lose track of the data.
"""

from __future__ import annotations

from stowage import backends
from stowage.agent import mounting
from stowage.agent.claim_data import make_directory_below
from stowage.agent.quota import DirectoryQuotas, limit_in_force
from stowage.drivers.base import HostMount, NewDirectory, mount_label
from stowage.kube import Kube


class NotMounted(Exception):  # noqa: N818 - reads as a state: "raise NotMounted(why)"
    """The backend mount a volume is in is not usable on this node; the message says why."""


def require_mounted(mount_point: str, backend: str, node: str, timeout: float) -> None:
    where = f"StorageBackend {backend} on node {node} ({mount_point})"
    if not mounting.is_mount_point(mount_point):
        raise NotMounted(
            f"{where} is not mounted; the backend's helper there says why (its Events, the "
            f"node's label {mount_label(backend)})"
        )
    if not mounting.is_healthy(mount_point, timeout):
        raise NotMounted(f"{where} does not answer (stale); its helper mounts it again")


def make_directory(
    kube: Kube,
    backend: str,
    node: str,
    path: str,
    new: NewDirectory,
    quota_bytes: int | None,
    timeout: float,
) -> bool:
    """Makes the volume's directory `path` in the backend's mount on this node, and limits it
    to `quota_bytes` where it is new or its limit is not in force (a limit that failed
    before); whether it was made now."""
    mount = _host_mount(kube, backend, node)
    made = make_directory_below(mount.mount_point, path, new)
    if quota_bytes is not None and (
        made or not limit_in_force(mount.mount_point, path, quota_bytes)
    ):
        with DirectoryQuotas(mount, timeout) as quotas:
            quotas.limit(path, quota_bytes)
    return made


def _host_mount(kube: Kube, name: str, node: str) -> HostMount:
    """The backend's mount on this node as its helper makes it (where the quotas are set)."""
    model = backends.read_backend(kube, name)
    if isinstance(model, str):
        raise NotMounted(model)
    mount = backends.host_mount(name, model, node)
    if mount is None:
        raise NotMounted(f"StorageBackend {name} has no backend mount")
    return mount
