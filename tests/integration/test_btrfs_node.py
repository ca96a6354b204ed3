"""The hostPath quota work of the helper against a real btrfs (a loop-mounted file, see
stowage_e2e.btrfs_volumes): a claim's subvolume with its qgroup limit, writes stopped by the
kernel at the limit, removal with the qgroup, archive, the refusal of a base path without
quota, and no step redirected by a symlink planted below the base path.

Needs root (mount, losetup).
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from stowage.agent import btrfs, node_volumes
from stowage.agent.quota import QuotaError
from stowage.drivers.base import NewDirectory, NodeVolume
from stowage_e2e.btrfs_volumes import qgroup_limits, run

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="a loop-mounted btrfs needs root"),
]

MiB = 2**20
OWNED = NewDirectory(0o770, 1000, 2000)


def claim_volume(base: Path, name: str = "apps-data-1234", size: int = 4 * MiB) -> NodeVolume:
    return NodeVolume(str(base), str(base / "claims" / name), persistent=True, quota_bytes=size)


def fill(path: Path, size: int) -> int:
    """Writes up to `size` bytes in 1 MiB pieces; how many went in before EDQUOT."""
    written = 0
    with path.open("wb") as out:
        try:
            while written < size:
                written += out.write(b"\0" * MiB)
                out.flush()
                os.fsync(out.fileno())
        except OSError as error:
            assert error.errno == errno.EDQUOT
    return path.stat().st_size


def test_a_claim_is_a_subvolume_that_stops_writes_at_its_size(btrfs_base: Path) -> None:
    volume = claim_volume(btrfs_base)
    node_volumes.make(volume, OWNED, lambda checkout: None, 5.0)
    directory = Path(volume.path)
    made = directory.stat()
    assert (made.st_mode & 0o7777, made.st_uid, made.st_gid) == (0o770, 1000, 2000)
    root_id = btrfs.parse_root_id(run("btrfs", "inspect-internal", "rootid", str(directory)))
    assert qgroup_limits(btrfs_base)[f"0/{root_id}"] == 4 * MiB
    assert fill(directory / "big", 8 * MiB) <= 4 * MiB

    # Again (a helper's later pass): left as it is, data and all.
    node_volumes.make(volume, NewDirectory(), lambda checkout: None, 5.0)
    assert (directory / "big").exists()

    assert node_volumes.remove(volume) is True
    assert not directory.exists()
    assert f"0/{root_id}" not in qgroup_limits(btrfs_base)
    assert node_volumes.remove(volume) is False


def test_archive_renames_the_subvolume_beside_with_its_data(btrfs_base: Path) -> None:
    volume = claim_volume(btrfs_base)
    node_volumes.make(volume, OWNED, lambda checkout: None, 5.0)
    (Path(volume.path) / "kept.txt").write_text("kept")
    assert node_volumes.archive(volume, "archived-apps-data-1234") is True
    assert (btrfs_base / "claims" / "archived-apps-data-1234" / "kept.txt").read_text() == "kept"
    assert not Path(volume.path).exists()


def test_a_base_path_without_quota_is_refused_and_gets_no_directory(tmp_path: Path) -> None:
    volume = claim_volume(tmp_path)
    fs_type = run("stat", "--file-system", "--format=%T", str(tmp_path)).strip()
    with pytest.raises(QuotaError, match=f"{tmp_path} is on {fs_type}, where stowage cannot"):
        node_volumes.make(volume, OWNED, lambda checkout: None, 5.0)
    assert not Path(volume.path).exists()


def test_a_planted_symlink_sends_the_helper_nowhere(btrfs_base: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (btrfs_base / "claims").symlink_to(outside)
    volume = claim_volume(btrfs_base)
    with pytest.raises(OSError, match=r"Too many levels of symbolic links|Not a directory"):
        node_volumes.make(volume, OWNED, lambda checkout: None, 5.0)
    with pytest.raises(OSError):
        node_volumes.remove(volume)
    assert list(outside.iterdir()) == []

    (btrfs_base / "claims").unlink()
    (btrfs_base / "claims").mkdir()
    (btrfs_base / "claims" / "apps-data-1234").symlink_to(outside)
    with pytest.raises(QuotaError, match="is no btrfs subvolume"):
        node_volumes.make(volume, OWNED, lambda checkout: None, 5.0)
    with pytest.raises(QuotaError, match="is no btrfs subvolume"):
        node_volumes.remove(volume)
    assert outside.is_dir() and list(outside.iterdir()) == []
