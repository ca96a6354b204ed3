"""A throwaway LVM volume group on a loop device backed by a sparse file, for the lvm tests
(integration here, e2e on a node with device-mapper). Everything it made is removed by exact
name (the group with its LVs, the physical volume, the loop device), whatever happened."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from stowage.agent import lvm

# Room for the LVM label and metadata besides the group's extents.
METADATA_BYTES = 4 * 2**20
# The tests' groups: 16 extents of 4 MiB.
TEST_GROUP_BYTES = 64 * 2**20


def _run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, check=False)


@contextmanager
def loop_volume_group(directory: Path, name: str, size_bytes: int) -> Iterator[str]:
    """Volume group `name` of `size_bytes` of extents (4 MiB each), on a loop device of a
    sparse file in `directory`; yields the loop device."""
    image = directory / f"{name}.img"
    with open(image, "wb") as sparse:
        sparse.truncate(size_bytes + METADATA_BYTES)
    attached = _run("losetup", "--find", "--show", str(image))
    if attached.returncode != 0:
        raise RuntimeError(f"losetup: {attached.stderr.strip()}")
    loop = attached.stdout.strip()
    try:
        for command in (
            lvm.lvm_command("pvcreate", loop),
            lvm.lvm_command("vgcreate", name, loop),
        ):
            made = _run(*command)
            if made.returncode != 0:
                raise RuntimeError(f"{command[0]}: {made.stderr.strip()}")
        yield loop
    finally:
        _run(*lvm.lvm_command("vgremove", "-f", name))
        _run(*lvm.lvm_command("pvremove", "-f", loop))
        _run("losetup", "-d", loop)
        image.unlink(missing_ok=True)


@contextmanager
def throwaway_volume_group(directory: Path) -> Iterator[str]:
    """A volume group of TEST_GROUP_BYTES with a name of its own; yields the name."""
    name = f"stowagetest-{uuid.uuid4().hex[:8]}"
    with loop_volume_group(directory, name, TEST_GROUP_BYTES):
        yield name


@pytest.fixture
def volume_group(tmp_path: Path) -> Iterator[str]:
    """A throwaway volume group for one test (a pytest fixture of the repository's conftest)."""
    with throwaway_volume_group(tmp_path) as name:
        yield name


def lv_sizes(volume_group: str) -> dict[str, int]:
    """The group's LVs and their sizes in bytes."""
    listed = _run(
        *lvm.lvm_command(
            "lvs",
            "--noheadings",
            "--units",
            "b",
            "--nosuffix",
            "-o",
            "lv_name,lv_size",
            volume_group,
        )
    )
    if listed.returncode != 0:
        raise RuntimeError(f"lvs: {listed.stderr.strip()}")
    return {name: int(size) for name, size in (line.split() for line in listed.stdout.splitlines())}
