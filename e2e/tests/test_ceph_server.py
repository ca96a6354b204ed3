"""A real one-node Ceph on a test host, and the data paths stowage's helper uses on it.

No Kubernetes here: the cluster (mon, mgr, BlueStore OSD on a file, MDS) runs in a test host's
network namespace; this machine is the client, as a node's mount helper would be.

- CephFS through ceph-fuse (this kernel has no ceph module): data written by one client is read
  back by a fresh one; a directory's `ceph.quota.max_bytes` (set with setfattr, or by
  `ceph fs subvolume create --size`) stops writes beyond it with EDQUOT, and `df` on a mount of
  that directory shows the quota as the file system size.
- RBD through rbd-fuse (this kernel has no rbd or nbd module): the image appears as a file,
  a loop device over it carries ext4, and what was written there is in the image in RADOS.
"""

from __future__ import annotations

import errno
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from stowage_e2e import hosts
from stowage_e2e.ceph import RBD_CLIENT_CAPS, CephCluster

pytestmark = pytest.mark.e2e

MiB = 1024**2
CLIENT = "stowage-e2e"
# "Quotas are imprecise" (the Ceph manual, CephFS quotas): ceph-fuse refuses writes once the
# usage the MDS reports reaches the quota, so a writer may get some data past the limit; how
# much "depends primarily on the amount of time, not the amount of data". Writers here must be
# refused before twice the quota, given one second per MiB once past it.
STOPPED_BEFORE = 2


@dataclass
class Started:
    ceph: CephCluster
    seconds: float  # from nothing (packages installed) to HEALTH_OK with CephFS active


@pytest.fixture(scope="module")
def started() -> Iterator[Started]:
    """One cluster for the module, on a test host of its own (no Kubernetes cluster needed)."""
    if os.geteuid() != 0:
        pytest.skip("test hosts are network namespaces and FUSE mounts: needs root")
    if not Path("/dev/fuse").exists():
        pytest.skip("no /dev/fuse: ceph-fuse and rbd-fuse cannot mount")
    host = hosts.create_host()
    try:
        began = time.monotonic()
        ceph = CephCluster.start(host)
        seconds = time.monotonic() - began
        try:
            yield Started(ceph, seconds)
        finally:
            ceph.stop()
    finally:
        hosts.remove_host(host)


@pytest.fixture
def ceph(started: Started) -> CephCluster:
    return started.ceph


@pytest.fixture(scope="module")
def keyring(started: Started) -> Path:
    """The helper's CephFS key: read-write with quota setting (`rwp`), nothing more."""
    return started.ceph.client_keyring(CLIENT)


def fill_until_refused(path: Path, quota: int, used: int = 0) -> tuple[int, OSError | None]:
    """Appends MiB after MiB of data to `path` (each synced) until a write fails or the
    directory (`used` bytes before) would hold twice `quota`; paced to one MiB a second once
    past the quota, to give the MDS's usage figures time to catch up. Returns the bytes
    written and the error that stopped it, if any."""
    block = os.urandom(MiB)
    written = 0
    try:
        with path.open("ab", buffering=0) as file:
            while used + written < STOPPED_BEFORE * quota:
                file.write(block)
                os.fsync(file.fileno())
                written += MiB
                if used + written > quota:
                    time.sleep(1)
    except OSError as error:
        return written, error
    return written, None


def df_bytes(mount: Path) -> int:
    """Total size of the file system at `mount` as `df` shows it."""
    output = subprocess.run(
        ["df", "--block-size=1", "--output=size", str(mount)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return int(output.splitlines()[-1])


def test_cluster_healthy_with_cephfs_active(started: Started) -> None:
    ceph = started.ceph
    status = ceph.ceph_json("status")
    assert status["health"]["status"] == "HEALTH_OK", status["health"]
    assert ceph.pgs_active_clean()
    assert status["osdmap"]["num_up_osds"] == status["osdmap"]["num_in_osds"] == 1
    fs = ceph.ceph_json("fs", "get", ceph.fs_name)["mdsmap"]
    assert [info["state"] for info in fs["info"].values()] == ["up:active"]
    rss = {name: size // MiB for name, size in ceph.daemon_rss().items()}
    print(f"ceph bootstrap {started.seconds:.1f} s, daemon RSS MiB {rss}")
    assert started.seconds < 180


def test_cephfs_data_path_through_ceph_fuse(
    ceph: CephCluster, keyring: Path, tmp_path: Path
) -> None:
    """What one client writes, a new client (no shared cache) reads back from the cluster."""
    payload = os.urandom(3 * MiB + 17)
    with ceph.fuse_mount(tmp_path / "writer", CLIENT, keyring) as mount:
        (mount / "claims" / "data-path").mkdir(parents=True)
        (mount / "claims" / "data-path" / "blob").write_bytes(payload)
    with ceph.fuse_mount(tmp_path / "reader", CLIENT, keyring) as mount:
        assert (mount / "claims" / "data-path" / "blob").read_bytes() == payload
    data_pool = f"cephfs.{ceph.fs_name}.data"
    objects = subprocess.run(
        ["rados", "-c", str(ceph.config), "-p", data_pool, "ls"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert objects, f"no objects in {data_pool} after writing 3 MiB"


def test_directory_quota_set_by_client_stops_writes_and_sets_df(
    ceph: CephCluster, keyring: Path, tmp_path: Path
) -> None:
    """The claim directory as the helper makes it: mkdir, then `ceph.quota.max_bytes` with
    setfattr (the client's `p` cap). 12 MiB: df reports in 4 MiB blocks."""
    quota = 12 * MiB
    with ceph.fuse_mount(tmp_path / "root", CLIENT, keyring) as root:
        claim = root / "claims" / "quota-dir"
        claim.mkdir(parents=True)
        subprocess.run(
            ["setfattr", "-n", "ceph.quota.max_bytes", "-v", str(quota), str(claim)], check=True
        )
        read_back = subprocess.run(
            ["getfattr", "--only-values", "-n", "ceph.quota.max_bytes", str(claim)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert int(read_back) == quota
        with ceph.fuse_mount(tmp_path / "claim", CLIENT, keyring, "/claims/quota-dir") as mount:
            assert df_bytes(mount) == quota
            written, error = fill_until_refused(mount / "big", quota)
            assert error is not None, f"wrote {written} bytes into a {quota}-byte quota"
            assert error.errno == errno.EDQUOT, error
            used = (mount / "big").stat().st_size
            more, again = fill_until_refused(mount / "more", quota, used)
            assert again is not None, f"{more} more bytes written beside {used} bytes"
            assert again.errno == errno.EDQUOT, again
            used += (mount / "more").stat().st_size
        # The client of the whole file system (the parent's mount) is held to it too.
        assert sum(f.stat().st_size for f in claim.iterdir()) == used
        beside, refused = fill_until_refused(claim / "from-parent", quota, used)
        assert refused is not None, f"{beside} more bytes written beside {used} bytes"
        assert refused.errno == errno.EDQUOT, refused
        print(f"quota {quota}: refused at {written} B, then after {more} B, then {beside} B more")


def test_subvolume_with_size_is_a_quota(ceph: CephCluster, keyring: Path, tmp_path: Path) -> None:
    """The admin's way: `ceph fs subvolume create --size` sets the same quota attribute."""
    quota = 8 * MiB
    ceph.ceph("fs", "subvolume", "create", ceph.fs_name, "claim-sv", "--size", str(quota))
    path = ceph.ceph("fs", "subvolume", "getpath", ceph.fs_name, "claim-sv").strip()
    info = ceph.ceph_json("fs", "subvolume", "info", ceph.fs_name, "claim-sv")
    assert info["bytes_quota"] == quota
    with ceph.fuse_mount(tmp_path / "sv", CLIENT, keyring, path) as mount:
        assert df_bytes(mount) == quota
        written, error = fill_until_refused(mount / "big", quota)
        assert error is not None, f"wrote {written} bytes into a {quota}-byte quota"
        assert error.errno == errno.EDQUOT, error


def test_rbd_image_through_rbd_fuse_and_loop_device(ceph: CephCluster, tmp_path: Path) -> None:
    """An image per claim: rbd-fuse shows it as a file, losetup makes it a block device,
    ext4 on it; the file written there is read back from the image's export afterwards."""
    if subprocess.run(["losetup", "--find"], capture_output=True, check=False).returncode:
        pytest.skip("no free loop device on this machine")
    ceph.create_rbd_pool("rbd")
    ceph.rbd("create", "--size", "128M", "rbd/claim-rbd")
    rbd_keyring = ceph.client_keyring(f"{CLIENT}-rbd", RBD_CLIENT_CAPS)
    payload = os.urandom(64 * 1024).hex()
    with ceph.rbd_fuse_mount(tmp_path / "images", f"{CLIENT}-rbd", rbd_keyring, "rbd") as images:
        image = images / "claim-rbd"
        assert image.stat().st_size == 128 * MiB
        device = subprocess.run(
            ["losetup", "--find", "--show", str(image)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        try:
            subprocess.run(["mkfs.ext4", "-q", device], check=True)
            mount = tmp_path / "fs"
            mount.mkdir()
            subprocess.run(["mount", device, str(mount)], check=True)
            try:
                (mount / "hello").write_text(payload)
                assert (mount / "hello").read_text() == payload
            finally:
                subprocess.run(["umount", str(mount)], check=True)
        finally:
            subprocess.run(["losetup", "--detach", device], check=True)
    exported = tmp_path / "claim-rbd.img"
    ceph.rbd("export", "--no-progress", "rbd/claim-rbd", str(exported))
    content = subprocess.run(
        ["debugfs", "-R", "cat /hello", str(exported)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert content == payload
