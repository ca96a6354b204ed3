"""The free bytes a backend has on this node, measured as its driver's capacity source says."""

from __future__ import annotations

import os

from stowage.agent import lvm
from stowage.drivers.base import CapacitySource, FileSystemSpace, VolumeGroupSpace


def free_bytes(source: CapacitySource) -> int:
    """LvmError when the node has no such volume group, OSError when no such directory."""
    match source:
        case VolumeGroupSpace(volume_group=group):
            return lvm.free_bytes(group)
        case FileSystemSpace(path=path):
            stats = os.statvfs(path)
            return stats.f_bavail * stats.f_frsize
