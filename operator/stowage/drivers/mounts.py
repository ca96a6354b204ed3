"""Host paths and mounts the mount helper makes, as data."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from stowage.drivers.base import STOWAGE_ROOT, BackendRef, HostMount
from stowage.drivers.naming import path_under
from stowage.drivers.placement import rendezvous_order


def backend_mount_point(backend: BackendRef) -> str:
    """Where the helper mounts the whole backend on a node."""
    return mount_point_of(backend.name)


def mount_point_of(backend_name: str) -> str:
    return path_under(STOWAGE_ROOT, "mounts", backend_name)


def claim_volumes_root(backend: BackendRef) -> str:
    """The directory of the backend's per-claim volumes on a node (mounts made there by the
    helper reach the node through the Bidirectional mount of /var/lib/stowage)."""
    return path_under(STOWAGE_ROOT, "volumes", backend.name)


def claim_volume_path(backend: BackendRef, directory: str) -> str:
    """Where the helper mounts a per-claim volume (LV, RBD image, tmpfs, checkout) on its node."""
    return path_under(claim_volumes_root(backend), directory)


def failover_mount(
    backend: BackendRef,
    node: str,
    fs_type: str,
    source_by_host: Mapping[str, str],
    options: Sequence[str],
) -> HostMount:
    """The backend mount on `node`; its sources in rendezvous order of their hosts for the
    node name, the order in which the helper tries them."""
    return HostMount(
        fs_type=fs_type,
        sources=tuple(source_by_host[host] for host in rendezvous_order(node, source_by_host)),
        options=(*options, *backend.spec.mount.options),
        mount_point=backend_mount_point(backend),
    )
