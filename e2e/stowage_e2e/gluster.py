"""A real GlusterFS trusted pool on test hosts: one glusterd per host, a replicated volume.

    cluster = GlusterCluster.start(hosts)          # replica = len(hosts), volume gv0
    cluster.brick(host) / "file"                   # what a brick holds, read on this machine
    cluster.create_volume("gv1"); cluster.enable_quota()
    cluster.stop_host(host); cluster.start_host(host)
    cluster.stop()
    with quota_pool(3) as cluster: ...             # on new test hosts, quota on; all removed after

Every glusterd runs in its host's network namespace and in a mount namespace of its own, where
private directories are bound over /var/lib/glusterd, /run and /var/log/glusterfs: the
hosts share this machine's file system but not Gluster's state. The brick processes glusterd
starts inherit both namespaces. The gluster CLI of a host runs inside the same namespaces.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from xml.etree import ElementTree

from stowage_e2e import hosts as test_hosts
from stowage_e2e.hosts import TestHost
from stowage_e2e.servers import SERVERS_DIR, require_packages, wait_for_port

GLUSTERD_PORT = 24007
# /run itself: glusterd.socket lives there, beside run/gluster.
PRIVATE_DIRS = {"lib": "/var/lib/glusterd", "run": "/run", "log": "/var/log/glusterfs"}


def _state_dir(host: TestHost) -> Path:
    return SERVERS_DIR / host.name / "gluster"


def _glusterd_command(host: TestHost) -> list[str]:
    state = _state_dir(host)
    binds = " && ".join(
        f"mkdir -p {target} && mount --bind {state / name} {target}"
        for name, target in PRIVATE_DIRS.items()
    )
    return [
        *host.exec_prefix(),
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        f"{binds} && exec glusterd -N -p {state / 'glusterd.pid'}",
    ]


@dataclass
class GlusterCluster:
    hosts: list[TestHost]
    volume: str
    _glusterd: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @classmethod
    def start(
        cls, hosts: Sequence[TestHost], volume: str = "gv0", replica: int | None = None
    ) -> GlusterCluster:
        require_packages("glusterfs-server", "glusterfs-client")
        cluster = cls(list(hosts), volume)
        try:
            for host in cluster.hosts:
                shutil.rmtree(_state_dir(host), ignore_errors=True)  # a new pool, new bricks
                cluster.start_host(host, wait_for_bricks=False)
            first, *others = cluster.hosts
            for other in others:
                cluster.gluster(first, "peer", "probe", other.ip)
            cluster._wait(lambda: cluster._peers_connected(first), "peers connected")
            cluster.create_volume(volume, replica)
        except BaseException:
            cluster.stop()
            raise
        return cluster

    def create_volume(self, volume: str, replica: int | None = None) -> None:
        """Creates and starts a volume with a brick on every host."""
        for host in self.hosts:
            self.brick(host, volume).mkdir(parents=True, exist_ok=True)
        bricks = [f"{host.ip}:{self.brick(host, volume)}" for host in self.hosts]
        count = replica or len(self.hosts)
        replication = ["replica", str(count)] if count > 1 else []
        first = self.hosts[0]
        self.gluster(first, "volume", "create", volume, *replication, *bricks, "force")
        self.gluster(first, "volume", "start", volume)
        self._wait(lambda: self._bricks_online(first, volume), f"all bricks of {volume} online")

    def enable_quota(self, volume: str | None = None) -> None:
        """Directory quotas on, enforced at once rather than on a timer (the admin's part)."""
        volume = volume or self.volume
        first = self.hosts[0]
        self.gluster(first, "volume", "quota", volume, "enable")
        for timeout in ("features.hard-timeout", "features.soft-timeout"):
            self.gluster(first, "volume", "set", volume, timeout, "0")

    def brick(self, host: TestHost, volume: str | None = None) -> Path:
        return _state_dir(host) / "bricks" / (volume or self.volume)

    def source(self, host: TestHost) -> str:
        return f"{host.ip}:/{self.volume}"

    def gluster(self, host: TestHost, *args: str) -> str:
        """The gluster CLI of `host` (inside its glusterd's namespaces)."""
        pid = self._glusterd[host.name].pid
        command = ["nsenter", "--target", str(pid), "--mount", "--net", "gluster", "--mode=script"]
        result = subprocess.run(
            [*command, *args], capture_output=True, text=True, timeout=60, check=False
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"gluster {' '.join(args)} on {host.name} failed: {result.stdout}{result.stderr}"
                f"\n{self.log(host)[-2000:]}"
            )
        return result.stdout

    def start_host(self, host: TestHost, *, wait_for_bricks: bool = True) -> None:
        """Starts the host's glusterd (which starts its bricks of started volumes)."""
        state = _state_dir(host)
        for name in PRIVATE_DIRS:
            (state / name).mkdir(parents=True, exist_ok=True)
        self._glusterd[host.name] = subprocess.Popen(
            _glusterd_command(host),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            wait_for_port(host, GLUSTERD_PORT)
        except TimeoutError:
            raise RuntimeError(
                f"glusterd on {host.name} did not start:\n{self.log(host)}"
            ) from None
        if wait_for_bricks:
            self._wait(lambda: self._bricks_online(host), f"bricks of {host.name} online")

    def stop_host(self, host: TestHost) -> None:
        """Stops glusterd and the bricks of `host`: its server refuses connections."""
        process = self._glusterd.pop(host.name, None)
        for pid in _pids_in_mount_namespace_of(process.pid if process else None):
            _kill(pid)
        if process is not None:
            _kill(process.pid)
            process.wait(timeout=15)

    def heal(self, timeout: float = 120) -> None:
        """Starts an index heal of the volume, once every self-heal daemon answers again
        (a restarted host's daemon takes a while to join)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.gluster(self.hosts[0], "volume", "heal", self.volume)
                return
            except RuntimeError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(3)

    def stop(self) -> None:
        for host in self.hosts:
            self.stop_host(host)

    def log(self, host: TestHost) -> str:
        log = _state_dir(host) / "log" / "glusterd.log"
        return log.read_text(errors="replace") if log.exists() else ""

    def _peers_connected(self, host: TestHost) -> bool:
        status = self.gluster(host, "peer", "status")
        return status.count("Peer in Cluster (Connected)") == len(self.hosts) - 1

    def _bricks_online(self, host: TestHost, volume: str | None = None) -> bool:
        volume = volume or self.volume
        status = ElementTree.fromstring(self.gluster(host, "volume", "status", volume, "--xml"))
        online = {
            node.findtext("path") for node in status.iter("node") if node.findtext("status") == "1"
        }
        return all(str(self.brick(h, volume)) in online for h in self.hosts)

    def _wait(self, probe: Callable[[], bool], what: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not probe():
            if time.monotonic() > deadline:
                logs = "\n".join(self.log(h)[-1500:] for h in self.hosts)
                raise TimeoutError(f"gluster: no {what} after {timeout} s\n{logs}")
            time.sleep(0.5)


def _pids_in_mount_namespace_of(pid: int | None) -> list[int]:
    """Processes sharing `pid`'s mount namespace: glusterd's bricks and helpers."""
    if pid is None:
        return []
    try:
        namespace = os.readlink(f"/proc/{pid}/ns/mnt")
    except OSError:
        return []
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != pid:
            try:
                if os.readlink(f"/proc/{entry}/ns/mnt") == namespace:
                    found.append(int(entry))
            except OSError:
                continue
    return found


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


@contextlib.contextmanager
def quota_pool(count: int) -> Iterator[GlusterCluster]:
    """A replica-`count` pool on new test hosts with quota on, as an admin would have it;
    the pool and its hosts are gone afterwards."""
    servers = test_hosts.create_hosts(count)
    try:
        pool = GlusterCluster.start(servers)
        pool.enable_quota()
        yield pool
        pool.stop()
    finally:
        for host in servers:
            test_hosts.remove_host(host)
