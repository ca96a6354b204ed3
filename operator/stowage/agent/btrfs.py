"""hostPath quotas: a claim's directory as a btrfs subvolume with a qgroup limit of its size.

A btrfs qgroup counts the bytes a subvolume refers to; with a limit, writing beyond it fails
with EDQUOT ("Disk quota exceeded"). Quota is switched on for the whole file system once
(`btrfs quota enable`), before the first subvolume is made, so that each new subvolume gets
its own qgroup. Other file systems have no quota stowage can set here: XFS project quota
would be the next one (not built), ext4 has none per directory.

Every path handed to `btrfs` is /proc/self/fd/N of a descriptor reached the way
stowage.agent.claim_data walks (O_NOFOLLOW from the backend's root), passed to the child,
so a symlink planted below the root cannot send it elsewhere. A subvolume is deleted by its
name relative to its parent's descriptor (BTRFS_IOC_SNAP_DESTROY): `btrfs subvolume delete`
would resolve the path to a name again.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import stat
import struct
import subprocess
from collections.abc import Iterator

from stowage.agent import mounting
from stowage.agent.claim_data import opened_directory, settle
from stowage.agent.quota import QuotaError
from stowage.drivers.base import NewDirectory
from stowage.drivers.naming import parts_below

BTRFS_TIMEOUT = 120.0
# The inode number of every subvolume's root directory (BTRFS_FIRST_FREE_OBJECTID).
SUBVOLUME_ROOT_INODE = 256
# _IOW(BTRFS_IOCTL_MAGIC, 15, struct btrfs_ioctl_vol_args): a 64-bit fd and a 4088-byte name.
SNAP_DESTROY = 0x5000940F
VOLUME_ARGUMENTS = "q4088s"
_DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW


class BtrfsError(QuotaError):
    """A btrfs command failed; the message has its last words."""


def has_qgroups(fs_type: str) -> bool:
    """Whether stowage can limit a claim's directory on a file system of this type
    (`stat -f -c %T` names): only btrfs, through qgroups."""
    return fs_type.strip() == "btrfs"


def no_quota_message(path: str, fs_type: str) -> str:
    return (
        f"{path} is on {fs_type}, where stowage cannot limit a claim's directory; put the "
        "base path on btrfs (a subvolume with a qgroup limit per claim) or set "
        "provisioning.enforceQuota: false"
    )


def parse_root_id(output: str) -> int:
    """The subvolume id `btrfs inspect-internal rootid` prints."""
    return int(output.strip())


def parse_referenced_limits(output: str) -> dict[str, int | None]:
    """Each qgroup's `Max referenced` in bytes (None: no limit) from `btrfs qgroup show -r
    --raw`, whose columns are Qgroupid, Referenced, Exclusive, Max referenced[, Path]."""
    limits: dict[str, int | None] = {}
    for line in output.splitlines():
        fields = line.split()
        if len(fields) < 4 or "/" not in fields[0] or not fields[1].isdigit():
            continue
        limits[fields[0]] = None if fields[3] == "none" else int(fields[3])
    return limits


def fd_path(descriptor: int, name: str = "") -> str:
    return f"/proc/self/fd/{descriptor}" + (f"/{name}" if name else "")


def run_btrfs(arguments: list[str], descriptor: int) -> str:
    """`btrfs arguments…` with `descriptor` open in the child (named by fd_path); its output."""
    return _run(["btrfs", *arguments], descriptor)


def _run(command: list[str], descriptor: int) -> str:
    try:
        done = subprocess.run(
            command,
            pass_fds=(descriptor,),
            capture_output=True,
            text=True,
            timeout=BTRFS_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise BtrfsError(f"{command[0]} {command[1]}: {error}") from error
    if done.returncode != 0:
        words = mounting.last_words(done.stderr or done.stdout)
        raise BtrfsError(f"{' '.join(command[:3])}: {words}")
    return done.stdout


def fs_type_of(descriptor: int) -> str:
    return _run(["stat", "--file-system", "--format=%T", fd_path(descriptor)], descriptor).strip()


def enable_quota(descriptor: int) -> None:
    """Switches quota on for the file system of `descriptor` unless it is on already."""
    try:
        run_btrfs(["qgroup", "show", "--raw", fd_path(descriptor)], descriptor)
    except BtrfsError:
        run_btrfs(["quota", "enable", fd_path(descriptor)], descriptor)


def root_id_of(subvolume: int) -> int:
    return parse_root_id(run_btrfs(["inspect-internal", "rootid", fd_path(subvolume)], subvolume))


def is_subvolume(parent: int, name: str) -> bool:
    """Whether `name` in the directory `parent` is the root of a subvolume (another device
    number than its parent, inode 256); False for anything else, symlinks included."""
    found = os.stat(name, dir_fd=parent, follow_symlinks=False)
    return (
        stat.S_ISDIR(found.st_mode)
        and found.st_ino == SUBVOLUME_ROOT_INODE
        and found.st_dev != os.fstat(parent).st_dev
    )


@contextlib.contextmanager
def _opened(parent: int, name: str) -> Iterator[int]:
    descriptor = os.open(name, _DIRECTORY, dir_fd=parent)
    try:
        yield descriptor
    finally:
        os.close(descriptor)


def limit(subvolume: int, limit_bytes: int) -> None:
    """Limits the subvolume's qgroup to `limit_bytes` and checks that the limit is in force."""
    run_btrfs(["qgroup", "limit", str(limit_bytes), fd_path(subvolume)], subvolume)
    qgroup = f"0/{root_id_of(subvolume)}"
    shown = run_btrfs(["qgroup", "show", "-r", "--raw", "-f", fd_path(subvolume)], subvolume)
    if parse_referenced_limits(shown).get(qgroup) != limit_bytes:
        raise BtrfsError(f"qgroup {qgroup} does not show the limit of {limit_bytes} bytes")


def make_subvolume_below(root: str, path: str, new: NewDirectory, limit_bytes: int) -> bool:
    """Makes `path` inside `root` a subvolume limited to `limit_bytes`, with the mode and
    owner of `new`; False if a subvolume was there already (left as it is). QuotaError when
    the file system is no btrfs, or something else is at `path`."""
    *parents, name = parts_below(root, path)
    with opened_directory(root, parents, create=True) as parent:
        with contextlib.suppress(FileNotFoundError):
            if is_subvolume(parent, name):
                return False
            raise QuotaError(f"{path} exists and is no btrfs subvolume: it cannot be limited")
        fs_type = fs_type_of(parent)
        if not has_qgroups(fs_type):
            raise QuotaError(no_quota_message(root, fs_type))
        enable_quota(parent)
        run_btrfs(["subvolume", "create", fd_path(parent, name)], parent)
        with _opened(parent, name) as subvolume:
            settle(subvolume, new)
            limit(subvolume, limit_bytes)
    return True


def remove_subvolume_below(root: str, path: str) -> bool:
    """Deletes the subvolume `path` inside `root` with everything in it, and its qgroup;
    False if it was gone."""
    *parents, name = parts_below(root, path)
    try:
        with opened_directory(root, parents) as parent:
            if not is_subvolume(parent, name):
                raise QuotaError(f"{path} is no btrfs subvolume")
            with _opened(parent, name) as subvolume:
                root_id = root_id_of(subvolume)
            destroy = struct.pack(VOLUME_ARGUMENTS, 0, os.fsencode(name))
            fcntl.ioctl(parent, SNAP_DESTROY, bytearray(destroy), True)
            forget_qgroup(parent, root_id)
    except FileNotFoundError:
        return False
    return True


def forget_qgroup(parent: int, root_id: int) -> None:
    """Waits until the deleted subvolume is cleaned up, then destroys its qgroup (recent
    kernels remove it themselves: then there is nothing to destroy)."""
    run_btrfs(["subvolume", "sync", fd_path(parent), str(root_id)], parent)
    try:
        run_btrfs(["qgroup", "destroy", f"0/{root_id}", fd_path(parent)], parent)
    except BtrfsError as error:
        if "No such file or directory" not in str(error):
            raise
