"""A real one-node Ceph cluster on a test host: mon, mgr, one BlueStore OSD, an MDS, CephFS.

    ceph = CephCluster.start(host)                 # HEALTH_OK, CephFS "cephfs" active
    ceph.ceph("fs", "subvolume", "create", "cephfs", "claim-1")   # the admin CLI
    keyring = ceph.client_keyring("stowage")       # a cephx key for the CephFS (rwp)
    with ceph.fuse_mount(target, "stowage", keyring): ...         # ceph-fuse on this machine
    ceph.create_rbd_pool("rbd")
    ceph.stop()                                    # every daemon killed, all state removed

Bootstrapped by hand as the "manual deployment" chapter of the Ceph manual does it (no
cephadm, no systemd, no ceph-volume): keyrings with ceph-authtool, a monmap with monmaptool,
`ceph-mon --mkfs`, `ceph osd new` + `ceph-osd --mkfs`. Every daemon runs in the foreground
(`-f`) inside the host's network namespace with `public addr` = the host's IP, so clients on
this machine reach the cluster over the bridge like a remote one. Configuration, keyrings,
daemon data, admin sockets and logs live under /var/lib/stowage-e2e/servers/<host>/ceph: nothing
touches /etc/ceph or /var/lib/ceph, so a Ceph of the machine itself could not interfere.

The OSD is BlueStore on a sparse file (`<osd data>/block`, made by `ceph-osd --mkfs` with
`bluestore_block_create`), as Ceph's own vstart.sh does: `ceph-volume lvm` needs LVM and
device-mapper, which this kernel lacks, and `ceph-volume raw` needs a block device; a file needs
neither and still runs the object store production clusters run (memstore keeps every object
in RAM: another code path, and a memory bill that grows with each test's data).
Sizes are for one small node: pools of size 1, few PGs, low memory targets.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stowage_e2e.hosts import TestHost
from stowage_e2e.servers import SERVERS_DIR, require_packages, wait_for_port

PACKAGES = (
    "ceph-mon",
    "ceph-mgr",
    "ceph-osd",
    "ceph-mds",
    "ceph-common",
    "ceph-fuse",
    "rbd-fuse",
    "attr",  # setfattr/getfattr: CephFS quotas are virtual extended attributes
)
MON_PORT = 3300  # msgr2; 6789 (msgr1) is bound too
MON_ID = "a"
MGR_ID = "x"
MDS_ID = "a"
OSD_BLOCK_BYTES = 4 * 1024**3  # sparse: only what is written takes disk space
# The smallest osd_memory_target Ceph accepts (896 MiB); the OSD's cache autotuning aims there.
OSD_MEMORY_TARGET = 896 * 1024**2
RBD_CLIENT_CAPS = {"mon": "profile rbd", "osd": "profile rbd", "mgr": "profile rbd"}
START_TIMEOUT = 180.0


def cephfs_client_caps(fs_name: str) -> dict[str, str]:
    """Caps of a client of one CephFS that may also set quotas (the `p` in `rwp`), as
    `ceph fs authorize <fs> client.<name> / rwp` grants them: the helper needs exactly this."""
    return {"mon": "allow r", "mds": "allow rwp", "osd": f"allow rw tag cephfs data={fs_name}"}


def state_dir(host: TestHost) -> Path:
    return SERVERS_DIR / host.name / "ceph"


def ceph_config(host: TestHost, fsid: str, state: Path) -> str:
    """The cluster's ceph.conf, read by every daemon and by the admin CLI.

    Health settings that a one-node test cluster trips for no real reason are off: pools
    without replicas, a nearly full disk of this machine (the mon compares free space in
    percent), insecure global_id reclaim (every client here is current).
    """
    return f"""[global]
fsid = {fsid}
mon host = [v2:{host.ip}:3300,v1:{host.ip}:6789]
mon initial members = {MON_ID}
public addr = {host.ip}
auth cluster required = cephx
auth service required = cephx
auth client required = cephx
auth allow insecure global id reclaim = false
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
mon data avail warn = 2
mon data avail crit = 1
run dir = {state}/run
admin socket = {state}/run/$cluster-$name.asok
log file = {state}/log/$cluster-$name.log
mon data = {state}/mon/$cluster-$id
mgr data = {state}/mgr/$cluster-$id
osd data = {state}/osd/$cluster-$id
mds data = {state}/mds/$cluster-$id

[mon]
keyring = $mon_data/keyring
mon memory target = 268435456

[mgr]
keyring = $mgr_data/keyring

[osd]
keyring = $osd_data/keyring
osd objectstore = bluestore
bluestore block create = true
bluestore block size = {OSD_BLOCK_BYTES}
osd memory target = {OSD_MEMORY_TARGET}
osd op num shards = 1

[mds]
keyring = $mds_data/keyring
mds cache memory limit = 134217728

[client.admin]
keyring = {state}/ceph.client.admin.keyring
"""


def client_config(host: TestHost, fsid: str, state: Path) -> str:
    """What a client needs: where the mon is, the fsid, and private places for its admin
    socket and log (the default /var/run/ceph may not exist and is shared)."""
    return f"""[global]
fsid = {fsid}
mon host = [v2:{host.ip}:3300,v1:{host.ip}:6789]
auth client required = cephx
admin socket = {state}/run/$cluster-$name.$pid.asok
log file = {state}/log/$cluster-$name.$pid.log
"""


def _run(command: Sequence[str], *, timeout: float = 60, stdin: str | None = None) -> str:
    result = subprocess.run(
        list(command), input=stdin, capture_output=True, text=True, timeout=timeout, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"{' '.join(command)} failed ({result.returncode}): {result.stdout}{result.stderr}"
        )
    return result.stdout


@dataclass
class CephCluster:
    """The cluster on one test host and the daemons this object started."""

    host: TestHost
    state: Path
    fsid: str
    fs_name: str
    _daemons: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @classmethod
    def start(cls, host: TestHost, fs_name: str = "cephfs") -> CephCluster:
        """A new cluster (any old state of the host removed), healthy, its CephFS active."""
        require_packages(*PACKAGES)
        state = state_dir(host)
        shutil.rmtree(state, ignore_errors=True)
        for name in ("run", "log", "mon", "mgr", "osd", "mds", "clients"):
            (state / name).mkdir(parents=True)
        cluster = cls(host, state, str(uuid.uuid4()), fs_name)
        try:
            cluster.config.write_text(ceph_config(host, cluster.fsid, state))
            cluster.client_config.write_text(client_config(host, cluster.fsid, state))
            cluster._start_mon()
            cluster._start_mgr()
            cluster._start_osd()
            cluster._start_mds()
            cluster._create_filesystem()
            cluster.wait_healthy()
        except BaseException:
            cluster.stop()
            raise
        return cluster

    @property
    def config(self) -> Path:
        return self.state / "ceph.conf"

    @property
    def client_config(self) -> Path:
        # Named ceph.conf: Ceph takes $cluster from the file name, and it must stay "ceph".
        return self.state / "clients" / "ceph.conf"

    @property
    def admin_keyring(self) -> Path:
        return self.state / "ceph.client.admin.keyring"

    @property
    def mon_address(self) -> str:
        return f"{self.host.ip}:{MON_PORT}"

    def ceph(self, *args: str, stdin: str | None = None, timeout: float = 60) -> str:
        """The admin CLI (client.admin), run on this machine against the host's mon."""
        command = ["ceph", "-c", str(self.config), "--connect-timeout", "15", *args]
        try:
            return _run(command, timeout=timeout, stdin=stdin)
        except RuntimeError as error:
            raise RuntimeError(f"{error}\n{self.log('mon.' + MON_ID)[-1500:]}") from None

    def ceph_json(self, *args: str) -> Any:
        return json.loads(self.ceph(*args, "--format", "json"))

    def client_key(self, name: str, caps: Mapping[str, str] | None = None) -> str:
        """The cephx secret of `client.<name>`, made with `caps` (default: a client of the
        CephFS) if new, as an admin would hand it to stowage in a Secret."""
        caps = caps if caps is not None else cephfs_client_caps(self.fs_name)
        cap_args = [word for service, cap in caps.items() for word in (service, cap)]
        self.ceph("auth", "get-or-create", f"client.{name}", *cap_args)
        return self.ceph("auth", "print-key", f"client.{name}").strip()

    def client_keyring(self, name: str, caps: Mapping[str, str] | None = None) -> Path:
        """A keyring file holding `client.<name>`'s key, for ceph-fuse and rbd-fuse."""
        key = self.client_key(name, caps)
        path = self.state / "clients" / f"ceph.client.{name}.keyring"
        path.write_text(f"[client.{name}]\n\tkey = {key}\n")
        path.chmod(0o600)
        return path

    def create_rbd_pool(self, pool: str = "rbd") -> None:
        """A replicated pool tagged for RBD, as `rbd pool init` leaves it."""
        self.ceph("osd", "pool", "create", pool, "8")
        _run(["rbd", "-c", str(self.config), "pool", "init", pool])

    def rbd(self, *args: str) -> str:
        """The rbd CLI as client.admin."""
        return _run(["rbd", "-c", str(self.config), *args])

    def health(self) -> str:
        return str(self.ceph_json("health")["status"])

    def pgs_active_clean(self) -> bool:
        """Every PG active+clean. HEALTH_OK alone is not enough: until the OSD's first PG
        stats reach the mgr, PGs are "unknown" and the health check does not count them."""
        summary = self.ceph_json("pg", "stat")["pg_summary"]
        by_state = {state["name"]: state["num"] for state in summary["num_pg_by_state"]}
        return bool(summary["num_pgs"]) and by_state.get("active+clean") == summary["num_pgs"]

    def wait_healthy(self, timeout: float = START_TIMEOUT) -> None:
        self._wait(
            lambda: self.health() == "HEALTH_OK" and self.pgs_active_clean(),
            "HEALTH_OK with every PG active+clean",
            timeout,
        )

    def daemon_rss(self) -> dict[str, int]:
        """Resident memory of each daemon in bytes, as the kernel counts it (`ip netns exec`
        execs the daemon, so the Popen's pid is the daemon's)."""
        sizes = {}
        for name, process in self._daemons.items():
            status = Path(f"/proc/{process.pid}/status").read_text()
            line = next(line for line in status.splitlines() if line.startswith("VmRSS:"))
            sizes[name] = int(line.split()[1]) * 1024
        return sizes

    def log(self, daemon: str) -> str:
        """The log of `daemon` (`mon.a`, `osd.0`, ...), or its console output if it has none."""
        for path in (self.state / "log" / f"ceph-{daemon}.log", self.state / "log" / daemon):
            if path.exists():
                return path.read_text(errors="replace")
        return ""

    def stop(self) -> None:
        """Stops every daemon this object started and removes the cluster's state."""
        for name in reversed(list(self._daemons)):
            _stop(self._daemons.pop(name))
        shutil.rmtree(self.state, ignore_errors=True)
        with contextlib.suppress(OSError):
            self.state.parent.rmdir()  # the host's directory, unless other servers use it

    @contextlib.contextmanager
    def fuse_mount(
        self, target: Path, client: str, keyring: Path, path: str = "/"
    ) -> Iterator[Path]:
        """CephFS (or its directory `path`) mounted at `target` on this machine by ceph-fuse
        as `client.<client>`, unmounted afterwards. ceph-fuse enforces quotas itself, and `df`
        on the mount shows the quota of `path` when it has one (client_quota_df, on by
        default), in 4 MiB blocks: sizes that are not multiples of 4 MiB are rounded down."""
        command = [*self._fuse_client("ceph-fuse", client, keyring), "--client_fs", self.fs_name]
        with _fuse_mounted([*command, "-r", path], target, self._pid_file(target)):
            yield target

    @contextlib.contextmanager
    def rbd_fuse_mount(self, target: Path, client: str, keyring: Path, pool: str) -> Iterator[Path]:
        """The images of `pool` as files under `target`, by rbd-fuse as `client.<client>`."""
        command = [*self._fuse_client("rbd-fuse", client, keyring), "-p", pool]
        with _fuse_mounted(command, target, self._pid_file(target)):
            yield target

    def _fuse_client(self, program: str, client: str, keyring: Path) -> list[str]:
        """Absolute paths only: the FUSE clients daemonize into /."""
        return [program, "-c", str(self.client_config), "--id", client, "-k", str(keyring)]

    def _pid_file(self, target: Path) -> Path:
        return self.state / "run" / f"fuse-{abs(hash(str(target)))}.pid"

    def _admin_daemon_keyring(self, daemon: str, caps: Mapping[str, str]) -> Path:
        """`daemon`'s key, made by the admin, in the keyring file of its data directory."""
        kind, daemon_id = daemon.split(".", 1)
        data = self.state / kind / f"ceph-{daemon_id}"
        data.mkdir(parents=True, exist_ok=True)
        cap_args = [word for service, cap in caps.items() for word in (service, cap)]
        keyring = self.ceph("auth", "get-or-create", daemon, *cap_args)
        (data / "keyring").write_text(keyring)
        return data

    def _spawn(self, daemon: str, *args: str) -> None:
        """Starts a daemon in the foreground in the host's network namespace; its console
        output (what it prints before its log opens) goes to log/<daemon>."""
        kind, daemon_id = daemon.split(".", 1)
        with (self.state / "log" / daemon).open("wb") as console:
            self._daemons[daemon] = self.host.popen(
                [f"ceph-{kind}", "-f", "-c", str(self.config), "-i", daemon_id, *args],
                stdin=subprocess.DEVNULL,
                stdout=console,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def _start_mon(self) -> None:
        """Keyrings, monmap, `ceph-mon --mkfs`, then the mon; done when the CLI gets answers."""
        keyring = self.state / "mon.keyring"
        tool = ["ceph-authtool", "--create-keyring"]
        _run([*tool, str(keyring), "--gen-key", "-n", "mon.", "--cap", "mon", "allow *"])
        admin_caps = [
            w for service in ("mon", "osd", "mds", "mgr") for w in ("--cap", service, "allow *")
        ]
        _run([*tool, str(self.admin_keyring), "--gen-key", "-n", "client.admin", *admin_caps])
        _run(["ceph-authtool", str(keyring), "--import-keyring", str(self.admin_keyring)])
        monmap = self.state / "monmap"
        _run(
            [
                "monmaptool",
                "--create",
                "--fsid",
                self.fsid,
                "--addv",
                MON_ID,
                f"[v2:{self.host.ip}:3300,v1:{self.host.ip}:6789]",
                str(monmap),
            ]
        )
        _run(
            [
                "ceph-mon",
                "-c",
                str(self.config),
                "--mkfs",
                "-i",
                MON_ID,
                "--monmap",
                str(monmap),
                "--keyring",
                str(keyring),
            ]
        )
        self._spawn(f"mon.{MON_ID}")
        try:
            wait_for_port(self.host, MON_PORT, timeout=60)
        except TimeoutError:
            raise RuntimeError(f"ceph-mon did not start:\n{self._console('mon.a')}") from None
        self._wait(self._mon_answers, "answer from the mon", 60)

    def _start_mgr(self) -> None:
        """The mgr: without it pools get no PG stats, `ceph -s` stays in HEALTH_WARN, and
        `ceph fs volume`/`subvolume` (the volumes module) does not exist."""
        caps = {"mon": "allow profile mgr", "osd": "allow *", "mds": "allow *"}
        self._admin_daemon_keyring(f"mgr.{MGR_ID}", caps)
        self._spawn(f"mgr.{MGR_ID}")
        self._wait(lambda: bool(self.ceph_json("mgr", "stat")["available"]), "active mgr")

    def _start_osd(self) -> None:
        """OSD 0 registered with `ceph osd new` (its key in the mon), BlueStore made on a
        sparse file by `ceph-osd --mkfs`, then started; done when it is up and in."""
        osd_uuid = str(uuid.uuid4())
        secret = _run(["ceph-authtool", "--gen-print-key"]).strip()
        osd_id = self.ceph(
            "osd", "new", osd_uuid, "-i", "-", stdin=json.dumps({"cephx_secret": secret})
        ).strip()
        data = self.state / "osd" / f"ceph-{osd_id}"
        data.mkdir(parents=True)
        _run(
            [
                "ceph-authtool",
                "--create-keyring",
                str(data / "keyring"),
                "--name",
                f"osd.{osd_id}",
                "--add-key",
                secret,
            ]
        )
        _run(
            ["ceph-osd", "-c", str(self.config), "-i", osd_id, "--mkfs", "--osd-uuid", osd_uuid],
            timeout=120,
        )
        self._spawn(f"osd.{osd_id}")
        self._wait(lambda: self.ceph_json("osd", "stat")["num_up_osds"] == 1, "OSD up", 120)

    def _start_mds(self) -> None:
        caps = {
            "mon": "allow profile mds",
            "osd": "allow rwx",
            "mds": "allow",
            "mgr": "allow profile mds",
        }
        self._admin_daemon_keyring(f"mds.{MDS_ID}", caps)
        self._spawn(f"mds.{MDS_ID}")
        self._wait(lambda: self._mds_count() >= 1, "MDS registered (standby)")

    def _create_filesystem(self) -> None:
        """`ceph fs volume create` (pools cephfs.<fs>.meta/.data, the file system; it starts
        no MDS without an orchestrator: ours is already standing by), no standby wanted."""
        self.ceph("fs", "volume", "create", self.fs_name)
        self.ceph("fs", "set", self.fs_name, "standby_count_wanted", "0")
        self._wait(self._fs_active, f"CephFS {self.fs_name} active", 120)

    def _mon_answers(self) -> bool:
        try:
            self.ceph("mon", "stat", timeout=20)
        except (RuntimeError, subprocess.TimeoutExpired):
            return False
        return True

    def _mds_count(self) -> int:
        fs_map = self.ceph_json("fs", "dump")
        in_filesystems = sum(len(fs["mdsmap"]["info"]) for fs in fs_map["filesystems"])
        return in_filesystems + len(fs_map["standbys"])

    def _fs_active(self) -> bool:
        fs_map = self.ceph_json("fs", "dump")
        for fs in fs_map["filesystems"]:
            if fs["mdsmap"]["fs_name"] == self.fs_name:
                states = [info["state"] for info in fs["mdsmap"]["info"].values()]
                return "up:active" in states
        return False

    def _console(self, daemon: str) -> str:
        return self.log(daemon)[-3000:]

    def _wait(self, probe: Callable[[], bool], what: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not probe():
            for name, process in self._daemons.items():
                if process.poll() is not None:
                    raise RuntimeError(
                        f"ceph: {name} exited ({process.returncode}) while waiting for {what}:\n"
                        f"{self._console(name)}"
                    )
            if time.monotonic() > deadline:
                status = self.ceph("status")
                raise TimeoutError(f"ceph: no {what} after {timeout} s\n{status}")
            time.sleep(1)


@contextlib.contextmanager
def _fuse_mounted(command: Sequence[str], target: Path, pid_file: Path) -> Iterator[None]:
    """Runs a daemonizing FUSE client (it returns once mounted) on `target`; afterwards
    unmounts and waits for the client to exit (or kills it), so no client outlives the test."""
    target.mkdir(parents=True, exist_ok=True)
    _run([*command, "--pid-file", str(pid_file), str(target)])
    try:
        if not target.is_mount():
            raise RuntimeError(f"{command[0]} returned but {target} is not mounted")
        yield
    finally:
        pid = int(pid_file.read_text()) if pid_file.exists() else None
        unmount(target)
        if pid is not None:
            _wait_for_exit(pid, timeout=30)


def unmount(target: Path) -> None:
    """Unmounts a FUSE mount; lazily if it is busy, so a failed test leaves no mount behind."""
    if subprocess.run(["umount", str(target)], capture_output=True, check=False).returncode:
        subprocess.run(["umount", "-l", str(target)], capture_output=True, check=False)


def _wait_for_exit(pid: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while Path(f"/proc/{pid}").exists():
        if time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            return
        time.sleep(0.2)


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL after 15 s; each daemon leads its own session."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=15)
