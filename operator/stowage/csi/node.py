"""The CSI Node service, in the mount helper on each node: it hands a volume's data to a pod.

A volume whose context names a server (nfs) is mounted from there onto the kubelet's target
path by the node's kernel NFS client, with the PV's mount options. A volume in a backend mount
(glusterfs, cephfs, cifs) has its directory made there, with its quota, the first time it is
published on a node whose helper has the mount healthy (stowage.csi.backend_mounts), then
bind-mounted like a node directory. A node-directory volume's
directory is made below its backend's root the first time the volume
is published on its node (as the in-tree hostPath DirectoryOrCreate did, and with the mode and
owner the backend sets), with the tmpfs of its size mounted on it where the volume is one
(emptyDir medium Memory), then bind-mounted onto the kubelet's target path; read-only where the
CO or the backend says so. Unpublish unmounts and removes the target. Both are idempotent.

A tmpfs lives below /var/lib/stowage, which the plugin mounts Bidirectional at its own path:
it is the node's mount, so it outlives the plugin's container and keeps its data from one pod
to the next until the volume is released (stowage.csi.node_data).
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Sequence
from functools import partial
from pathlib import Path

import grpc

from stowage.agent import mounting, node_volumes
from stowage.agent.quota import QuotaError
from stowage.csi import backend_mounts
from stowage.csi.checkouts import CheckoutError, Checkouts
from stowage.csi.proto import csi_pb2, csi_pb2_grpc
from stowage.csi.server import require
from stowage.csi.volumes import TOPOLOGY_KEY
from stowage.drivers.base import STOWAGE_ROOT, NewDirectory, NodeVolume
from stowage.kube import Kube

RPC = csi_pb2.NodeServiceCapability.RPC
CAPABILITIES = (RPC.SINGLE_NODE_MULTI_WRITER,)
READ_ONLY_MODES = frozenset(
    {
        csi_pb2.VolumeCapability.AccessMode.SINGLE_NODE_READER_ONLY,
        csi_pb2.VolumeCapability.AccessMode.MULTI_NODE_READER_ONLY,
    }
)
SINGLE_WRITER = csi_pb2.VolumeCapability.AccessMode.SINGLE_NODE_SINGLE_WRITER
MOUNT_TIMEOUT = 30.0


class MountError(Exception):
    pass


def run_mount(arguments: Sequence[str]) -> None:
    outcome = mounting.run_mount(["mount", *arguments], MOUNT_TIMEOUT)
    if outcome != "mounted":
        raise MountError(f"mount {' '.join(arguments)}: {outcome}")


def bind(source: str, target: str, *, read_only: bool) -> None:
    if not read_only:
        run_mount(["--bind", source, target])
        return
    # A bind mount takes `ro` only on a remount of itself, and a remount stays in the mount
    # namespace it is made in: the node's copy of a target below the plugin's Bidirectional
    # kubelet directory, which the pod gets, would stay writable. A bind of a read-only mount
    # is read-only from the start, and so is every copy that propagation makes of it.
    with tempfile.TemporaryDirectory(prefix="stowage-read-only-") as staging:
        run_mount(["--bind", source, staging])
        try:
            run_mount(["-o", "remount,bind,ro", staging])
            run_mount(["--bind", staging, target])
        finally:
            unmount(staging)


def unmount(target: str) -> None:
    result = subprocess.run(["umount", target], capture_output=True, text=True, check=False)
    if result.returncode != 0 and mounting.is_mount_point(target):
        raise MountError(f"umount {target}: {result.stderr.strip()}")


def bind_targets(path: str, entries: Sequence[mounting.MountEntry]) -> list[str]:
    """Where the directory `path` is mounted (bind mounts of it), from the mount table."""
    device = os.stat(path).st_dev
    number = f"{os.major(device)}:{os.minor(device)}"
    containing = [
        entry
        for entry in entries
        if entry.device == number
        and (path == entry.mount_point or path.startswith(entry.mount_point.rstrip("/") + "/"))
    ]
    if not containing:
        return []
    holder = max(containing, key=lambda entry: len(entry.mount_point))
    inner = os.path.normpath(os.path.join(holder.root, os.path.relpath(path, holder.mount_point)))
    return [e.mount_point for e in entries if e.device == number and e.root == inner]


def published_elsewhere(
    path: str, target: str, entries: Sequence[mounting.MountEntry], host_root: Path
) -> list[str]:
    """The other targets `path` is bound to: not the tmpfs mounted on `path` itself, nor the
    node's mounts seen again below `host_root` (a plugin started after them has them there)."""
    seen_again = "" if host_root == Path("/") else str(host_root).rstrip("/") + "/"
    return [
        other
        for other in bind_targets(path, entries)
        if other not in (target, path) and not (seen_again and other.startswith(seen_again))
    ]


def remote_source(server: str, path: str) -> str:
    """The NFS mount source of the directory `path` on `server` (an IPv6 address bracketed)."""
    return f"[{server}]:{path}" if ":" in server else f"{server}:{path}"


def remote_mount_arguments(
    source: str, target: str, flags: Sequence[str], *, read_only: bool
) -> list[str]:
    """mount(8)'s arguments for the kernel's NFS client: the PV's mount options (the
    StorageClass's, with the backend's NFS version), and `ro` where the volume is read-only."""
    options = [*flags, "ro"] if read_only else list(flags)
    return ["-t", "nfs", *(["-o", ",".join(options)] if options else []), source, target]


def mounted_from(source: str, target: str, entries: Sequence[mounting.MountEntry]) -> list[str]:
    """The mount points other than `target` where `source` is mounted."""
    return [
        entry.mount_point
        for entry in entries
        if entry.source == source and entry.mount_point != target
    ]


def new_directory(context: dict[str, str]) -> NewDirectory:
    uid, gid = context.get("directoryUid"), context.get("directoryGid")
    return NewDirectory(
        mode=int(context.get("directoryMode", "0777"), 8),
        uid=int(uid) if uid is not None else None,
        gid=int(gid) if gid is not None else None,
    )


def publishes_read_only(request: csi_pb2.NodePublishVolumeRequest) -> bool:
    return (
        request.readonly
        or request.volume_context.get("readOnly") == "true"
        or request.volume_capability.access_mode.mode in READ_ONLY_MODES
    )


def on_host(host_root: Path, path: str) -> str:
    """`path` of the node as this process reaches it: below /var/lib/stowage at its own path
    (mounted Bidirectional, so that mounts made there are the node's), anything else below
    `host_root` (where the node's / is mounted)."""
    if path == STOWAGE_ROOT or path.startswith(STOWAGE_ROOT + "/"):
        return path
    return os.path.join(host_root, path.lstrip("/"))


def node_volume(root: str, path: str, context: dict[str, str]) -> NodeVolume:
    """The node work of a volume with this volume context: its directory, and its tmpfs."""
    tmpfs_bytes = context.get("tmpfsBytes")
    return NodeVolume(root, path, tmpfs_bytes=int(tmpfs_bytes) if tmpfs_bytes else None)


class Node(csi_pb2_grpc.NodeServicer):
    """`host_root`: where the node's root directory is mounted in the plugin's container (the
    data's paths are the node's; the kubelet's target paths are mounted at their own path).
    `checkouts`: this node's gitRepo checkouts."""

    def __init__(
        self, kube: Kube, node_id: str, checkouts: Checkouts, host_root: Path = Path("/")
    ) -> None:
        self._kube = kube
        self._node_id = node_id
        self._checkouts = checkouts
        self._host_root = host_root

    # Not offered (no capability names them): the generated servicer's UNIMPLEMENTED.
    NodeStageVolume = csi_pb2_grpc.NodeServicer.NodeStageVolume
    NodeUnstageVolume = csi_pb2_grpc.NodeServicer.NodeUnstageVolume
    NodeGetVolumeStats = csi_pb2_grpc.NodeServicer.NodeGetVolumeStats
    NodeGetVolumeHealth = csi_pb2_grpc.NodeServicer.NodeGetVolumeHealth
    NodeGetStorageHealth = csi_pb2_grpc.NodeServicer.NodeGetStorageHealth
    NodeExpandVolume = csi_pb2_grpc.NodeServicer.NodeExpandVolume

    def add_to(self, server: grpc.Server) -> None:
        csi_pb2_grpc.add_NodeServicer_to_server(self, server)

    def NodeGetInfo(
        self, request: csi_pb2.NodeGetInfoRequest, context: grpc.ServicerContext
    ) -> csi_pb2.NodeGetInfoResponse:
        return csi_pb2.NodeGetInfoResponse(
            node_id=self._node_id,
            accessible_topology=csi_pb2.Topology(segments={TOPOLOGY_KEY: self._node_id}),
        )

    def NodeGetCapabilities(
        self, request: csi_pb2.NodeGetCapabilitiesRequest, context: grpc.ServicerContext
    ) -> csi_pb2.NodeGetCapabilitiesResponse:
        return csi_pb2.NodeGetCapabilitiesResponse(
            capabilities=[
                csi_pb2.NodeServiceCapability(rpc=RPC(type=capability))
                for capability in CAPABILITIES
            ]
        )

    def NodePublishVolume(
        self, request: csi_pb2.NodePublishVolumeRequest, context: grpc.ServicerContext
    ) -> csi_pb2.NodePublishVolumeResponse:
        require(
            context,
            ("the volume ID", request.volume_id),
            ("the target path", request.target_path),
            ("the volume capability", request.HasField("volume_capability")),
        )
        if request.volume_capability.HasField("block"):
            context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"volume {request.volume_id} is a directory and cannot be published as a block "
                "device",
            )
        volume = dict(request.volume_context)
        root, path = volume.get("root"), volume.get("path")
        if not root or not path:
            context.abort(
                grpc.StatusCode.NOT_FOUND,
                f"volume {request.volume_id}: its context names no directory "
                "(not a volume of this driver)",
            )
        target = request.target_path
        single_writer = request.volume_capability.access_mode.mode == SINGLE_WRITER
        try:
            if mounting.is_mount_point(target):
                return csi_pb2.NodePublishVolumeResponse()
            server, backend_mount = volume.get("server"), volume.get("backendMount")
            if server:
                source = remote_source(server, path)
                elsewhere = mounted_from(source, target, mounting.mount_table())
            elif backend_mount:
                self._make_in_backend_mount(backend_mount, path, volume)
                elsewhere = published_elsewhere(
                    path, target, mounting.mount_table(), self._host_root
                )
            else:
                root, path = on_host(self._host_root, root), on_host(self._host_root, path)
                self._make_on_node(request.volume_id, root, path, volume)
                elsewhere = published_elsewhere(
                    path, target, mounting.mount_table(), self._host_root
                )
            if single_writer and elsewhere:
                context.abort(
                    grpc.StatusCode.FAILED_PRECONDITION,
                    f"volume {request.volume_id} is single-writer (ReadWriteOncePod) and "
                    f"published at {elsewhere[0]} already",
                )
            os.makedirs(target, exist_ok=True)
            read_only = publishes_read_only(request)
            if server:
                flags = request.volume_capability.mount.mount_flags
                run_mount(remote_mount_arguments(source, target, flags, read_only=read_only))
            else:
                bind(path, target, read_only=read_only)
        except backend_mounts.NotMounted as error:
            context.abort(
                grpc.StatusCode.FAILED_PRECONDITION, f"volume {request.volume_id}: {error}"
            )
        except (
            OSError,
            ValueError,
            MountError,
            QuotaError,
            CheckoutError,
            node_volumes.NodeVolumeError,
        ) as error:
            context.abort(grpc.StatusCode.INTERNAL, f"volume {request.volume_id}: {error}")
        return csi_pb2.NodePublishVolumeResponse()

    def _make_on_node(self, name: str, root: str, path: str, volume: dict[str, str]) -> None:
        """Makes what is missing of a node-local volume: its directory, its tmpfs, or its
        checkout (fetched now the first time) bound onto it."""
        backend = volume.get("backend", "")
        if volume.get("checkoutPath"):
            work = self._checkouts.node_volume(backend, name, path)
        else:
            work = node_volume(root, path, volume)
        sync = partial(self._checkouts.sync, backend)
        node_volumes.make(work, new_directory(volume), sync, MOUNT_TIMEOUT)

    def _make_in_backend_mount(self, mount_point: str, path: str, volume: dict[str, str]) -> None:
        backend = volume.get("backend", "")
        backend_mounts.require_mounted(mount_point, backend, self._node_id, MOUNT_TIMEOUT)
        quota = volume.get("quotaBytes")
        backend_mounts.make_directory(
            self._kube,
            backend,
            self._node_id,
            path,
            new_directory(volume),
            int(quota) if quota else None,
            MOUNT_TIMEOUT,
        )

    def NodeUnpublishVolume(
        self, request: csi_pb2.NodeUnpublishVolumeRequest, context: grpc.ServicerContext
    ) -> csi_pb2.NodeUnpublishVolumeResponse:
        require(
            context, ("the volume ID", request.volume_id), ("the target path", request.target_path)
        )
        target = request.target_path
        try:
            while mounting.is_mount_point(target):
                unmount(target)
            if os.path.isdir(target):
                os.rmdir(target)
        except (OSError, MountError) as error:
            context.abort(grpc.StatusCode.INTERNAL, f"volume {request.volume_id}: {error}")
        return csi_pb2.NodeUnpublishVolumeResponse()
