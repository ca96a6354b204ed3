"""The helper's LVM work on its node: a logical volume per claim, created, activated, made
blank once, formatted; removed or renamed on release; the volume group's free bytes.

The helper container runs no udev: every command gets `LVM_CONFIG` (no udev synchronisation,
LVM makes the device nodes itself, in the node's /dev which the helper mounts) so that it never
waits for a udev that is not there. On a node without device-mapper, LVM is also told not to
use it (`global{activation=0}`): the metadata work (create, rename, remove an inactive LV, free
space) still works there, and activation fails with a message that names device-mapper.

An LV is created inactive and unzeroed (`-an -Zn`), tagged `UNWIPED_TAG`; once active, its
old signatures (a file system of an earlier LV on the same extents) are erased and the tag
dropped. So a helper that stops half-way creates nothing twice and never formats over, nor
hands out, what it did not blank itself: an LV of the claim's name that exists is reused as
it is.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence

from stowage.drivers.base import LogicalVolume
from stowage.drivers.common import describe_size

LVM_CONFIG = (
    "activation{udev_sync=0 udev_rules=0} "
    'devices{obtain_device_list_from_udev=0 external_device_info_source="none"}'
)
UNWIPED_TAG = "stowage-unwiped"
LVM_TIMEOUT = 60.0
# mkfs of a large volume takes a while.
MKFS_TIMEOUT = 600.0
# Lines of LVM's output that explain nothing about a failure.
NOISE = ("leaked on", "Activation disabled")


class LvmError(Exception):
    """An LVM step failed; the message says which, on which volume group, and why."""


def lvm_command(tool: str, *args: str, device_mapper: bool | None = None) -> list[str]:
    """The LVM command with the helper's settings; `device_mapper` defaults to this node's."""
    present = device_mapper_present() if device_mapper is None else device_mapper
    config = LVM_CONFIG if present else f"global{{activation=0}} {LVM_CONFIG}"
    return [tool, "--config", config, *args]


def create_command(volume: LogicalVolume, size_bytes: int) -> list[str]:
    """lvcreate, inactive and unzeroed, of `size_bytes` (whole extents: LVM takes only
    multiples of 512 bytes)."""
    common = ["-an", "-Zn", "--addtag", UNWIPED_TAG, "-n", volume.name]
    if volume.thin_pool:
        size = ["-V", f"{size_bytes}b", "--thinpool", volume.thin_pool]
        return lvm_command("lvcreate", *common, *size, volume.volume_group)
    return lvm_command("lvcreate", *common, "-L", f"{size_bytes}b", volume.volume_group)


def mkfs_command(fs_type: str, device: str) -> list[str]:
    return [f"mkfs.{fs_type}", "-q", device]


def _run(command: Sequence[str], timeout: float = LVM_TIMEOUT) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as error:
        raise LvmError(f"{command[0]} timed out after {timeout:.0f} s") from error
    except FileNotFoundError as error:
        raise LvmError(f"{command[0]} is not installed in the helper") from error


def _said(result: subprocess.CompletedProcess[str]) -> str:
    """LVM's own words, without its warnings about leaked descriptors and the like."""
    lines = [line.strip() for line in (result.stderr + result.stdout).splitlines()]
    kept = [line for line in lines if line and not any(noise in line for noise in NOISE)]
    return "; ".join(kept[-3:]) or f"exit status {result.returncode}"


def _checked(command: Sequence[str], what: str, timeout: float = LVM_TIMEOUT) -> str:
    result = _run(command, timeout)
    if result.returncode != 0:
        raise LvmError(f"{what}: {_said(result)}")
    return result.stdout


def volume_group_space(volume_group: str) -> tuple[int, int]:
    """The group's free bytes and extent size; LvmError when this node has no such group."""
    result = _run(
        lvm_command(
            "vgs",
            "--noheadings",
            "--units",
            "b",
            "--nosuffix",
            "-o",
            "vg_free,vg_extent_size",
            volume_group,
        )
    )
    if result.returncode != 0:
        raise LvmError(f"volume group {volume_group} is not on this node ({_said(result)})")
    free, extent = result.stdout.split()
    return int(free), int(extent)


def free_bytes(volume_group: str) -> int:
    return volume_group_space(volume_group)[0]


def round_to_extents(size_bytes: int, extent_bytes: int) -> int:
    return -(-size_bytes // extent_bytes) * extent_bytes


def tags_of(volume: LogicalVolume) -> set[str] | None:
    """The LV's tags; None when it does not exist."""
    result = _run(lvm_command("lvs", "--noheadings", "-o", "lv_tags", volume.full_name))
    if result.returncode != 0:
        return None
    return {tag for tag in result.stdout.strip().split(",") if tag}


def create(volume: LogicalVolume) -> bool:
    """Creates the LV unless one of its name exists (that one is kept as it is): False then.
    A missing volume group or too little room is an LvmError that says so."""
    free, extent = volume_group_space(volume.volume_group)
    if tags_of(volume) is not None:
        return False
    needed = round_to_extents(volume.size_bytes, extent)
    if not volume.thin_pool and needed > free:
        raise LvmError(
            f"Insufficient free space in volume group {volume.volume_group}: the claim needs "
            f"{describe_size(needed)}, {describe_size(free)} is free"
        )
    _checked(create_command(volume, needed), f"creating {volume.full_name}")
    return True


def device_mapper_present() -> bool:
    """The kernel's word (/proc/misc), not /dev/mapper/control: LVM makes that node itself
    even where the kernel has no device-mapper."""
    try:
        with open("/proc/misc") as misc:
            return any(line.split()[-1:] == ["device-mapper"] for line in misc)
    except OSError:
        return False


def activate(volume: LogicalVolume) -> None:
    """Activates the LV (its device appears); a node without device-mapper is told as such."""
    if os.path.exists(volume.device):
        return
    if not device_mapper_present():
        raise LvmError(
            f"{volume.full_name} cannot be activated: this node's kernel has no device-mapper "
            "(the dm_mod module), which LVM needs to make the device"
        )
    _checked(lvm_command("lvchange", "-ay", volume.full_name), f"activating {volume.full_name}")


def blank_once(volume: LogicalVolume) -> None:
    """Erases old signatures from an LV this helper created and has not blanked yet."""
    if UNWIPED_TAG not in (tags_of(volume) or set()):
        return
    _checked(["wipefs", "--all", "--force", volume.device], f"wiping {volume.device}")
    _checked(
        lvm_command("lvchange", "--deltag", UNWIPED_TAG, volume.full_name),
        f"marking {volume.full_name} blank",
    )


def has_file_system(device: str) -> bool:
    result = _run(["blkid", "-p", "-o", "value", "-s", "TYPE", device])
    if result.returncode == 2:  # nothing found
        return False
    if result.returncode != 0:
        raise LvmError(f"reading {device}: {_said(result)}")
    return bool(result.stdout.strip())


def format_blank(fs_type: str, device: str) -> bool:
    """Makes a file system of `fs_type` on the device unless it has one (its data is never
    formatted over); True when it made it."""
    if has_file_system(device):
        return False
    _checked(mkfs_command(fs_type, device), f"mkfs.{fs_type} on {device}", MKFS_TIMEOUT)
    return True


def prepare(volume: LogicalVolume) -> bool:
    """The LV created, active and blanked, formatted when it has a file system type; True
    when its file system is new (its root gets the claim directory's mode and owner)."""
    if not os.path.exists(volume.device):  # else created and active: a helper's round is cheap
        create(volume)
        activate(volume)
    blank_once(volume)
    return volume.fs_type is not None and format_blank(volume.fs_type, volume.device)


def _exists(volume: LogicalVolume) -> bool:
    return tags_of(volume) is not None


def remove(volume: LogicalVolume) -> bool:
    """Removes the LV; False when it is gone already."""
    if not _exists(volume):
        return False
    _checked(lvm_command("lvremove", "-y", volume.full_name), f"removing {volume.full_name}")
    return True


def rename(volume: LogicalVolume, new_name: str) -> bool:
    """Deactivates the LV and renames it (Archive); False when it is gone already."""
    if not _exists(volume):
        return False
    if os.path.exists(volume.device):
        _checked(
            lvm_command("lvchange", "-an", volume.full_name),
            f"deactivating {volume.full_name}",
        )
    _checked(
        lvm_command("lvrename", volume.volume_group, volume.name, new_name),
        f"renaming {volume.full_name} to {new_name}",
    )
    return True
