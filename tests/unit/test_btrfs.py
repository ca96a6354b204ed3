"""The pure parts of hostPath quotas on btrfs: which file systems have them, `btrfs` output."""

from __future__ import annotations

import pytest

from stowage.agent import btrfs

pytestmark = pytest.mark.unit

# `btrfs qgroup show -re --raw` of btrfs-progs 6.2, a limit on one subvolume.
SHOW_WITH_EXCLUSIVE = """\
Qgroupid    Referenced    Exclusive  Max referenced  Max exclusive   Path
--------    ----------    ---------  --------------  -------------   ----
0/5              16384        16384            none           none   <toplevel>
0/256         10960896     10960896        10485760           none   claim
"""
# `btrfs qgroup show -r --raw -f <subvolume>`.
SHOW_ONE = """\
Qgroupid    Referenced    Exclusive  Max referenced   Path
--------    ----------    ---------  --------------   ----
0/257                0            0        16777216   base/team-a-data-1234
"""


def test_only_btrfs_has_a_quota_stowage_can_set() -> None:
    assert btrfs.has_qgroups("btrfs\n")
    for other in ("ext2/ext3", "xfs", "tmpfs", "overlayfs", "nfs"):
        assert not btrfs.has_qgroups(other)


def test_the_refusal_names_the_file_system_and_the_ways_out() -> None:
    message = btrfs.no_quota_message("/srv/stowage", "ext2/ext3")
    assert message.startswith("/srv/stowage is on ext2/ext3, where stowage cannot limit")
    assert "btrfs" in message and "provisioning.enforceQuota: false" in message


def test_qgroup_limits_are_read_from_the_raw_listing() -> None:
    assert btrfs.parse_referenced_limits(SHOW_WITH_EXCLUSIVE) == {
        "0/5": None,
        "0/256": 10485760,
    }
    assert btrfs.parse_referenced_limits(SHOW_ONE) == {"0/257": 16777216}
    assert btrfs.parse_referenced_limits("") == {}


def test_the_subvolume_id_is_read_from_rootid() -> None:
    assert btrfs.parse_root_id("257\n") == 257
    with pytest.raises(ValueError):
        btrfs.parse_root_id("ERROR: not a btrfs filesystem")


def test_commands_get_the_descriptor_path_never_a_name_resolved_again() -> None:
    assert btrfs.fd_path(7) == "/proc/self/fd/7"
    assert btrfs.fd_path(7, "team-a-data") == "/proc/self/fd/7/team-a-data"
