"""The helper's RBD work on its node: an image per claim, created, attached as a block device,
detached and removed (or renamed) on release.

Where the kernel has the rbd module (`/sys/bus/rbd`), an image is attached with `rbd map`.
Elsewhere one rbd-fuse per backend and node shows the pool's images as files (below
/var/lib/stowage/mounts, a FUSE client that the helper moves out of its container so that it
outlives a helper restart, as ceph-fuse's), and the image's file is attached to a loop device.
rbd-fuse keeps every image it opened open, so on that path an image is removed (renamed)
through rbd-fuse itself: `rbd rm` would find it still watched.

The Ceph user and key are those of the backend's Secret, written as cephfs's are
(stowage.agent.ceph_fuse): a keyring (0600) beside a ceph.conf in the helper's private state,
never on a command line; what rbd says is passed on without any line that could hold the key.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from stowage.agent import ceph_fuse, mounting
from stowage.drivers.base import RbdImage

MiB = 2**20
RBD_TIMEOUT = 60.0
KERNEL_RBD = Path("/sys/bus/rbd")
# What `rbd info` says of an image that is not there.
MISSING = "(2) No such file or directory"


class RbdError(Exception):
    """An RBD step failed; the message says which, on which image, and why."""


@dataclass(frozen=True)
class RbdClient:
    """How the helper reaches the Ceph cluster: the config (with the keyring beside it), the
    user, and where rbd-fuse shows the pool's images on this node."""

    config: Path
    user: ceph_fuse.CephUser
    fuse_mount: str
    timeout: float = RBD_TIMEOUT

    def command(self, *args: str) -> list[str]:
        return ["rbd", "-c", str(self.config), "--id", self.user.name, *args]


def client(
    monitors: str, credentials: Path, state: Path, fuse_mount: str, timeout: float
) -> RbdClient:
    """The client of the helper's copy of the backend's Secret, its files written to `state`."""
    user = ceph_fuse.read_user(credentials)
    return RbdClient(
        ceph_fuse.write_client_files(monitors, user, state, timeout), user, fuse_mount, timeout
    )


def create_command(ceph: RbdClient, image: RbdImage) -> list[str]:
    """`rbd create` of the image's size in whole MiB, with its features."""
    features = [argument for name in image.features for argument in ("--image-feature", name)]
    size = f"{-(-image.size_bytes // MiB)}M"
    return ceph.command("create", image.spec, "--size", size, *features)


def fuse_command(ceph: RbdClient, pool: str) -> list[str]:
    """rbd-fuse of the pool on the backend's mount point (absolute paths: it daemonizes)."""
    return [
        "rbd-fuse",
        "-c",
        str(ceph.config),
        "--id",
        ceph.user.name,
        "-p",
        pool,
        ceph.fuse_mount,
    ]


def kernel_rbd_present(bus: Path = KERNEL_RBD) -> bool:
    return bus.is_dir()


def _run(command: Sequence[str], timeout: float) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as error:
        raise RbdError(
            f"{command[0]} {command[1] if len(command) > 1 else ''} timed out after {timeout:.0f} s"
        ) from error
    except FileNotFoundError as error:
        raise RbdError(f"{command[0]} is not installed in the helper") from error


def _checked(ceph: RbdClient, command: Sequence[str], what: str) -> str:
    result = _run(command, ceph.timeout)
    if result.returncode != 0:
        said = ceph_fuse.last_safe_line(result.stderr + result.stdout, ceph.user)
        raise RbdError(f"{what}: {said}")
    return result.stdout


def exists(ceph: RbdClient, image: RbdImage) -> bool:
    result = _run(ceph.command("info", image.spec, "--format", "json"), ceph.timeout)
    if result.returncode == 0:
        return True
    output = result.stderr + result.stdout
    if MISSING in output:
        return False
    raise RbdError(f"reading image {image.spec}: {ceph_fuse.last_safe_line(output, ceph.user)}")


def create(ceph: RbdClient, image: RbdImage) -> bool:
    """Creates the image unless it exists (then it is reused as it is): False then."""
    if exists(ceph, image):
        return False
    _checked(ceph, create_command(ceph, image), f"creating image {image.spec}")
    return True


def ensure_fuse(ceph: RbdClient, pool: str) -> None:
    """rbd-fuse of the pool mounted and answering on the backend's mount point."""
    if mounting.is_mount_point(ceph.fuse_mount):
        if mounting.is_healthy(ceph.fuse_mount, ceph.timeout / 4):
            return
        mounting.unmount(ceph.fuse_mount)  # stale: its client is gone
    os.makedirs(ceph.fuse_mount, exist_ok=True)
    outcome = mounting.run_mount(
        fuse_command(ceph, pool),
        ceph.timeout,
        lambda output: ceph_fuse.last_safe_line(output, ceph.user),
    )
    if outcome != "mounted":
        raise RbdError(f"rbd-fuse of pool {pool} on {ceph.fuse_mount}: {outcome}")


def image_file(ceph: RbdClient, image: RbdImage) -> str:
    return os.path.join(ceph.fuse_mount, image.name)


def parse_loop_of(output: str) -> str | None:
    """The device of `losetup -j FILE`'s first line (`/dev/loop0: [0052]:2 (/path)`)."""
    for line in output.splitlines():
        device, separator, _ = line.partition(": ")
        if separator and device.startswith("/dev/"):
            return device
    return None


def parse_mapped(output: str, image: RbdImage) -> str | None:
    """The device of the image in `rbd device list --format json`."""
    for mapped in json.loads(output or "[]"):
        if mapped.get("pool") == image.pool and mapped.get("name") == image.name:
            device: str = mapped["device"]
            return device
    return None


def _loop_of(ceph: RbdClient, path: str) -> str | None:
    return parse_loop_of(_checked(ceph, ["losetup", "-j", path], f"listing loops of {path}"))


def _mapped(ceph: RbdClient, image: RbdImage) -> str | None:
    listed = _checked(ceph, ceph.command("device", "list", "--format", "json"), "rbd device list")
    return parse_mapped(listed, image)


def attach(ceph: RbdClient, image: RbdImage) -> str:
    """The image's block device on this node, attached if it was not: its path."""
    if kernel_rbd_present():
        device = _mapped(ceph, image)
        if device is None:
            device = _checked(ceph, ceph.command("map", image.spec), f"mapping {image.spec}")
        return device.strip()
    ensure_fuse(ceph, image.pool)
    path = image_file(ceph, image)
    if not os.path.exists(path):
        raise RbdError(f"rbd-fuse on {ceph.fuse_mount} does not show image {image.spec}")
    device = _loop_of(ceph, path)
    if device is None:
        attached = ["losetup", "--find", "--show", path]
        device = _checked(ceph, attached, f"attaching {path} to a loop device").strip()
    return device


def detach(ceph: RbdClient, image: RbdImage) -> None:
    """Detaches the image's device (rbd unmap, or the loop device), if it has one."""
    if kernel_rbd_present():
        device = _mapped(ceph, image)
        if device is not None:
            _checked(ceph, ceph.command("unmap", device), f"unmapping {device}")
        return
    if not mounting.is_mount_point(ceph.fuse_mount):
        return  # no rbd-fuse here: no loop device can show its files
    device = _loop_of(ceph, image_file(ceph, image))
    if device is not None:
        _checked(ceph, ["losetup", "-d", device], f"detaching {device}")


def remove(ceph: RbdClient, image: RbdImage) -> bool:
    """Detaches and removes the image; False when it was gone already."""
    detach(ceph, image)
    if kernel_rbd_present():
        if not exists(ceph, image):
            return False
        _checked(ceph, ceph.command("rm", "--no-progress", image.spec), f"removing {image.spec}")
        return True
    ensure_fuse(ceph, image.pool)
    try:
        os.unlink(image_file(ceph, image))  # rbd-fuse removes the image it holds open
    except FileNotFoundError:
        return False
    except OSError as error:
        raise RbdError(f"removing image {image.spec} through rbd-fuse: {error.strerror}") from None
    return True


def rename(ceph: RbdClient, image: RbdImage, new_name: str) -> bool:
    """Detaches the image and renames it (Archive); False when it was gone already."""
    detach(ceph, image)
    if kernel_rbd_present():
        if not exists(ceph, image):
            return False
        _checked(
            ceph,
            ceph.command("mv", image.spec, f"{image.pool}/{new_name}"),
            f"renaming {image.spec} to {new_name}",
        )
        return True
    ensure_fuse(ceph, image.pool)
    try:
        os.rename(image_file(ceph, image), os.path.join(ceph.fuse_mount, new_name))
    except FileNotFoundError:
        return False
    except OSError as error:
        raise RbdError(f"renaming {image.spec} to {new_name}: {error.strerror}") from None
    return True
