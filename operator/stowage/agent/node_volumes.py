"""Volumes the helper makes on its own node (emptyDir, gitRepo, lvm, rbd, hostPath with quota):
a directory, a btrfs subvolume limited to the claim's size, a tmpfs of the claim's size on a
directory, a checkout bound onto it, or the file system of a logical volume or an RBD image
mounted on it (a Block LV is the device alone); and their removal or archive on release.

A checkout is bound as it is: a read-only remount here would stay the helper's own (mount
flags do not propagate to the node's copy). Pods get it read-only from the PV's mount option
`ro`, which the kubelet applies to its bind mount (stowage.drivers.local).

The tmpfs and bind mounts are made below /var/lib/stowage, which the helper has mounted
Bidirectional: they are the node's mounts, so the kubelet sees them, and they outlive the
helper container (no process serves them). A restarted helper finds them mounted and leaves
them alone.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable

from stowage.agent import btrfs, lvm, mounting, rbd
from stowage.agent.claim_data import (
    archive_directory_below,
    make_directory_below,
    remove_directory_below,
)
from stowage.drivers.base import GitCheckout, NewDirectory, NodeVolume

# Checkouts are the helper's: readable by every pod user, writable by none.
CHECKOUT_MODE = 0o755
ROOT_MODE = 0o755


class NodeVolumeError(Exception):
    """A mount the volume needs failed; the message says which and why."""


def tmpfs_command(volume: NodeVolume, new: NewDirectory) -> list[str]:
    """`mount -t tmpfs` of the volume's size, with the claim directory's mode and owner."""
    options = [f"size={volume.tmpfs_bytes}", f"mode={new.mode:o}"]
    if new.uid is not None:
        options.append(f"uid={new.uid}")
    if new.gid is not None:
        options.append(f"gid={new.gid}")
    return ["mount", "-t", "tmpfs", "-o", ",".join(options), "tmpfs", volume.path]


def _mount(command: list[str], what: str, timeout: float) -> None:
    outcome = mounting.run_mount(command, timeout)
    if outcome != "mounted":
        raise NodeVolumeError(f"{what}: {outcome}")


def make(
    volume: NodeVolume,
    new: NewDirectory,
    sync_checkout: Callable[[GitCheckout], None],
    mount_timeout: float,
    ceph: rbd.RbdClient | None = None,
) -> None:
    """Makes what is missing of the volume: its directory, then its tmpfs, its checkout
    (fetched by `sync_checkout`) bound onto it, or its LV or RBD image (through `ceph`)
    mounted on it. A volume mounted already is left as it is."""
    logical = volume.logical_volume
    if logical is not None and logical.fs_type is None:
        lvm.prepare(logical)  # a Block volume: the device is the volume
        return
    # The root is the backend's own (below /var/lib/stowage, or the admin's emptyDir.basePath):
    # made as it is, unlike the directories below it.
    os.makedirs(volume.root, mode=ROOT_MODE, exist_ok=True)
    if volume.quota_bytes is not None:
        btrfs.make_subvolume_below(volume.root, volume.path, new, volume.quota_bytes)
        return
    make_directory_below(volume.root, volume.path, new)
    if mounting.is_mount_point(volume.path):
        return
    if volume.tmpfs_bytes is not None:
        _mount(tmpfs_command(volume, new), f"tmpfs on {volume.path}", mount_timeout)
    if logical is not None:
        formatted = lvm.prepare(logical)
        _mount_device(volume, logical.device, str(logical.fs_type), formatted, new, mount_timeout)
    image = volume.rbd_image
    if image is not None:
        if ceph is None:
            raise ValueError("an RBD image needs the backend's Ceph client")
        rbd.create(ceph, image)
        device = rbd.attach(ceph, image)
        fs_type = str(image.fs_type)
        formatted = lvm.format_blank(fs_type, device)
        _mount_device(volume, device, fs_type, formatted, new, mount_timeout)
    if volume.checkout is not None:
        make_directory_below(volume.root, volume.checkout.path, NewDirectory(CHECKOUT_MODE))
        sync_checkout(volume.checkout)
        bind = ["mount", "--bind", volume.checkout.path, volume.path]
        _mount(bind, f"binding the checkout onto {volume.path}", mount_timeout)


def _mount_device(
    volume: NodeVolume,
    device: str,
    fs_type: str,
    formatted: bool,
    new: NewDirectory,
    mount_timeout: float,
) -> None:
    """Mounts the device's file system on the volume's path; a new (`formatted`) file
    system's root gets the claim directory's mode and owner."""
    command = ["mount", "-t", fs_type, device, volume.path]
    _mount(command, f"{device} on {volume.path}", mount_timeout)
    if formatted:
        os.chmod(volume.path, new.mode)
        if new.uid is not None or new.gid is not None:
            os.chown(
                volume.path, -1 if new.uid is None else new.uid, -1 if new.gid is None else new.gid
            )


def _unmount_checked(path: str) -> None:
    """Unmounts, not lazily: an LV still in use must not be removed behind its user."""
    if not mounting.is_mount_point(path):
        return
    outcome = subprocess.run(["umount", path], capture_output=True, text=True, check=False)
    if outcome.returncode != 0:
        raise NodeVolumeError(f"unmounting {path}: {mounting.last_words(outcome.stderr)}")


def remove(volume: NodeVolume, ceph: rbd.RbdClient | None = None) -> bool:
    """Unmounts the volume and deletes its directory, checkout, logical volume or RBD image
    (through `ceph`); False if nothing was there."""
    if volume.quota_bytes is not None:
        return btrfs.remove_subvolume_below(volume.root, volume.path)
    image = volume.rbd_image
    if image is not None:
        if ceph is None:
            raise ValueError("an RBD image needs the backend's Ceph client")
        _unmount_checked(volume.path)
        found = remove_directory_below(volume.root, volume.path)
        return rbd.remove(ceph, image) or found
    logical = volume.logical_volume
    if logical is not None:
        if logical.fs_type is None:
            return lvm.remove(logical)
        _unmount_checked(volume.path)
        found = remove_directory_below(volume.root, volume.path)
        return lvm.remove(logical) or found
    if mounting.is_mount_point(volume.path):
        mounting.unmount(volume.path)
    found = remove_directory_below(volume.root, volume.path)
    if volume.checkout is not None:
        found = remove_directory_below(volume.root, volume.checkout.path) or found
    return found


def archive(volume: NodeVolume, new_name: str, ceph: rbd.RbdClient | None = None) -> bool:
    """Unmounts a logical volume or RBD image and renames it `new_name` (its data kept for
    the admin), or renames a persistent directory (a subvolume too) `new_name` beside it;
    False if it was gone. Other node volumes are recreated on demand, never archived."""
    if volume.persistent:
        return archive_directory_below(volume.root, volume.path, new_name)
    image = volume.rbd_image
    if image is not None and ceph is not None:
        _unmount_checked(volume.path)
        remove_directory_below(volume.root, volume.path)
        return rbd.rename(ceph, image, new_name)
    logical = volume.logical_volume
    if logical is None:
        raise ValueError("these volumes can only be deleted on release")
    if logical.fs_type is not None:
        _unmount_checked(volume.path)
        remove_directory_below(volume.root, volume.path)
    return lvm.rename(logical, new_name)
