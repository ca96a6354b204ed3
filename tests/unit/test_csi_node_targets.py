from __future__ import annotations

import os
from pathlib import Path

import pytest

from stowage.agent.mounting import MountEntry
from stowage.csi.node import (
    mounted_from,
    published_elsewhere,
    remote_mount_arguments,
    remote_source,
)

pytestmark = pytest.mark.unit


def test_a_single_writer_volume_counts_only_the_pods_targets_it_is_bound_to(
    tmp_path: Path,
) -> None:
    volume = tmp_path / "volumes" / "ram" / "apps-data-x"
    volume.mkdir(parents=True)
    device = os.stat(volume).st_dev
    number = f"{os.major(device)}:{os.minor(device)}"
    path = str(volume)
    pods = "/var/lib/kubelet/pods"
    entries = [
        MountEntry(number, "/", path, "tmpfs"),  # the volume's own tmpfs
        MountEntry(number, "/", f"{pods}/a/mount", "tmpfs"),
        MountEntry(number, "/", f"/host{pods}/a/mount", "tmpfs"),  # the node's, seen again
        MountEntry(number, "/", f"{pods}/b/mount", "tmpfs"),
        MountEntry("0:999", "/", "/elsewhere", "tmpfs"),
    ]
    assert published_elsewhere(path, f"{pods}/b/mount", entries, Path("/host")) == [
        f"{pods}/a/mount"
    ]
    assert published_elsewhere(path, f"{pods}/a/mount", entries[:3], Path("/host")) == []


def test_a_directory_on_a_server_is_mounted_by_the_kernel_nfs_client_with_the_pvs_options() -> None:
    source = remote_source("10.77.0.2", "/exports/apps-data-x")
    assert source == "10.77.0.2:/exports/apps-data-x"
    assert remote_source("fd00::2", "/e") == "[fd00::2]:/e"
    assert remote_mount_arguments(source, "/t", ["nfsvers=4.1", "hard"], read_only=True) == [
        "-t", "nfs", "-o", "nfsvers=4.1,hard,ro", source, "/t",
    ]  # fmt: skip
    assert remote_mount_arguments(source, "/t", [], read_only=False) == [
        "-t", "nfs", source, "/t",
    ]  # fmt: skip


def test_a_single_writer_directory_on_a_server_counts_the_other_mounts_of_it() -> None:
    source = "10.77.0.2:/exports/a"
    entries = [
        MountEntry(device="0:50", root="/", mount_point="/pods/one", source=source),
        MountEntry(device="0:51", root="/", mount_point="/pods/two", source=source),
        MountEntry(device="0:52", root="/", mount_point="/pods/three", source=source + "b"),
    ]
    assert mounted_from(source, "/pods/one", entries) == ["/pods/two"]
    assert mounted_from(source, "/pods/one", entries[:1]) == []
