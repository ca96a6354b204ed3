"""A throwaway btrfs file system on a loop device backed by a file, for the hostPath quota
tests (integration and e2e on this machine's node; on a VM node through its `NodeShell`).
Everything it made is removed by exact name (the mount, the loop device, the file), whatever
happened."""

from __future__ import annotations

import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from stowage.agent.btrfs import parse_referenced_limits
from stowage_e2e.node_shell import LocalShell, NodeShell, output
from stowage_e2e.servers import require_packages

IMAGE_BYTES = 256 * 2**20  # btrfs wants more than 114 MiB with its default profiles


def run(*command: str) -> str:
    return subprocess.run(command, capture_output=True, text=True, check=True).stdout


@contextmanager
def btrfs_file_system(
    mount_point: str, size_bytes: int = IMAGE_BYTES, shell: NodeShell | None = None
) -> Iterator[str]:
    """A new btrfs file system of `size_bytes` (quota not enabled) mounted at `mount_point` of
    the node (this machine unless `shell` says another), from `<mount_point>.img`."""
    node = shell or LocalShell()
    image = f"{mount_point}.img"
    output(node, "mkdir", "-p", mount_point)
    output(node, "truncate", "--size", str(size_bytes), image)
    device = ""
    try:
        output(node, "mkfs.btrfs", "--quiet", image)
        device = output(node, "losetup", "--find", "--show", image).strip()
        output(node, "mount", "-t", "btrfs", device, mount_point)
        yield mount_point
    finally:
        unmount(node, mount_point)
        if device:
            node.run("losetup", "--detach", device)
        node.run("rm", "-f", image)
        node.run("rmdir", mount_point)


@pytest.fixture
def btrfs_base() -> Iterator[Path]:
    """The mount point of a new btrfs file system on this machine (quota not enabled yet)."""
    require_packages("btrfs-progs")
    work = Path(tempfile.mkdtemp(prefix="stowage-btrfs-", dir="/var/tmp"))
    try:
        with btrfs_file_system(str(work / "base")) as mount_point:
            yield Path(mount_point)
    finally:
        subprocess.run(["rm", "-rf", str(work)], check=False)


def unmount(shell: NodeShell, mount_point: str, attempts: int = 30) -> None:
    """Unmounts what the test mounted; lazily if a helper still holds it after 30 s (the loop
    device is then freed when the last user goes)."""
    for _ in range(attempts):
        if shell.run("umount", mount_point).returncode == 0:
            return
        if shell.run("mountpoint", "--quiet", mount_point).returncode != 0:
            return
        time.sleep(1)
    shell.run("umount", "-l", mount_point)


def qgroup_limits(path: Path) -> dict[str, int | None]:
    """The limit of each qgroup of the file system of `path`, as `btrfs qgroup show` has it."""
    return parse_referenced_limits(run("btrfs", "qgroup", "show", "-r", "--raw", str(path)))


def file_system_type(path: Path) -> str:
    return run("stat", "--file-system", "--format=%T", str(path)).strip()
