"""A throwaway btrfs file system on a loop device backed by a file under /var/tmp, for the
hostPath quota tests (integration and e2e: the node is this machine). Everything it made is
removed by exact name (the mount, the loop device, the file), whatever happened."""

from __future__ import annotations

import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from stowage.agent.btrfs import parse_referenced_limits
from stowage_e2e.servers import require_packages

IMAGE_BYTES = 256 * 2**20  # btrfs wants more than 114 MiB with its default profiles


def run(*command: str) -> str:
    return subprocess.run(command, capture_output=True, text=True, check=True).stdout


@pytest.fixture
def btrfs_base() -> Iterator[Path]:
    """The mount point of a new btrfs file system (quota not enabled yet)."""
    require_packages("btrfs-progs")
    work = Path(tempfile.mkdtemp(prefix="stowage-btrfs-", dir="/var/tmp"))
    image, mount_point = work / "btrfs.img", work / "base"
    mount_point.mkdir()
    with image.open("wb") as blank:
        blank.truncate(IMAGE_BYTES)
    run("mkfs.btrfs", "--quiet", str(image))
    device = run("losetup", "--find", "--show", str(image)).strip()
    try:
        run("mount", "-t", "btrfs", device, str(mount_point))
        yield mount_point
    finally:
        unmount(mount_point)
        subprocess.run(["losetup", "--detach", device], capture_output=True, check=False)
        subprocess.run(["rm", "-rf", str(work)], check=False)


def unmount(mount_point: Path, attempts: int = 30) -> None:
    """Unmounts what the test mounted; lazily if a helper still holds it after 30 s (the loop
    device is then freed when the last user goes)."""
    for _ in range(attempts):
        done = subprocess.run(["umount", str(mount_point)], capture_output=True, check=False)
        if done.returncode == 0 or not mount_point.is_mount():
            return
        time.sleep(1)
    subprocess.run(["umount", "-l", str(mount_point)], capture_output=True, check=False)


def qgroup_limits(path: Path) -> dict[str, int | None]:
    """The limit of each qgroup of the file system of `path`, as `btrfs qgroup show` has it."""
    return parse_referenced_limits(run("btrfs", "qgroup", "show", "-r", "--raw", str(path)))


def file_system_type(path: Path) -> str:
    return run("stat", "--file-system", "--format=%T", str(path)).strip()
