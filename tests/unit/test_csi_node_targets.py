from __future__ import annotations

import os
from pathlib import Path

import pytest

from stowage.agent.mounting import MountEntry
from stowage.csi.node import published_elsewhere

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
