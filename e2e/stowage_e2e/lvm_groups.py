"""A throwaway LVM volume group on a loop device backed by a sparse file, for the lvm tests
(integration on this machine, e2e on a node with device-mapper, through its `NodeShell`).
Everything it made is removed by exact name (the group with its LVs, the physical volume, the
loop device), whatever happened."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from stowage.agent import lvm
from stowage_e2e.node_shell import LocalShell, NodeShell, output

# Room for the LVM label and metadata besides the group's extents.
METADATA_BYTES = 4 * 2**20
# The tests' groups: 16 extents of 4 MiB.
TEST_GROUP_BYTES = 64 * 2**20


LOCAL = LocalShell()


def _lvm(tool: str, *args: str, shell: NodeShell) -> list[str]:
    # The node's own device-mapper, not this machine's, decides whether LVs are activated.
    device_mapper = None if isinstance(shell, LocalShell) else True
    return lvm.lvm_command(tool, *args, device_mapper=device_mapper)


@contextmanager
def loop_volume_group(
    directory: Path, name: str, size_bytes: int, shell: NodeShell = LOCAL
) -> Iterator[str]:
    """Volume group `name` of `size_bytes` of extents (4 MiB each), on a loop device of a
    sparse file in the node's `directory`; yields the loop device."""
    image = str(directory / f"{name}.img")
    output(shell, "mkdir", "-p", str(directory))
    output(shell, "truncate", "--size", str(size_bytes + METADATA_BYTES), image)
    loop = ""
    try:
        loop = output(shell, "losetup", "--find", "--show", image).strip()
        output(shell, *_lvm("pvcreate", loop, shell=shell))
        output(shell, *_lvm("vgcreate", name, loop, shell=shell))
        yield loop
    finally:
        shell.run(*_lvm("vgremove", "-f", name, shell=shell))
        if loop:
            shell.run(*_lvm("pvremove", "-f", loop, shell=shell))
            shell.run("losetup", "-d", loop)
        shell.run("rm", "-f", image)


@contextmanager
def throwaway_volume_group(directory: Path, shell: NodeShell = LOCAL) -> Iterator[str]:
    """A volume group of TEST_GROUP_BYTES with a name of its own; yields the name."""
    name = f"stowagetest-{uuid.uuid4().hex[:8]}"
    with loop_volume_group(directory, name, TEST_GROUP_BYTES, shell):
        yield name


@pytest.fixture
def volume_group(tmp_path: Path) -> Iterator[str]:
    """A throwaway volume group for one test (a pytest fixture of the repository's conftest)."""
    with throwaway_volume_group(tmp_path) as name:
        yield name


def lv_sizes(volume_group: str, shell: NodeShell = LOCAL) -> dict[str, int]:
    """The group's LVs and their sizes in bytes."""
    columns = ["--noheadings", "--units", "b", "--nosuffix", "-o", "lv_name,lv_size"]
    listed = output(shell, *_lvm("lvs", *columns, volume_group, shell=shell))
    return {name: int(size) for name, size in (line.split() for line in listed.splitlines())}
