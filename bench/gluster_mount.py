"""GlusterFS mounts on this machine: failover time and the agent's mount latency.

Three real Gluster servers run on three network-namespace test hosts (replica 3). The agent's
mount path (stowage.agent.mounting.mount_with_failover: a bounded TCP probe, then
`mount -t glusterfs` with backup-volfile-servers) is timed against a plain `mount -t glusterfs`
of the same volume, then with its first server black-holed (packets dropped), then refused
(glusterd's port closed), and a plain mount with backup-volfile-servers and its first
server black-holed. A benchmark, not a test: it
asserts nothing. Needs root (network namespaces, FUSE mounts).

    .venv/bin/python bench/gluster_mount.py [--rounds 5] [--probe-timeout 2]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "operator"), str(ROOT / "e2e")]

from stowage.agent import mounting  # noqa: E402
from stowage.drivers.base import HostMount  # noqa: E402
from stowage_e2e import hosts  # noqa: E402
from stowage_e2e.gluster import GLUSTERD_PORT, GlusterCluster  # noqa: E402
from stowage_e2e.guard import network_guard  # noqa: E402


def timed(action: Callable[[], object]) -> float:
    started = time.monotonic()
    action()
    return time.monotonic() - started


def plain_mount(source: str, mount_point: str) -> None:
    subprocess.run(["mount", "-t", "glusterfs", source, mount_point], check=True, timeout=120)


def plain_mount_with_backups(sources: tuple[str, ...], mount_point: str) -> None:
    """What an administrator would write: the other servers as backup volfile servers."""
    backups = ":".join(source.split(":", 1)[0] for source in sources[1:])
    options = f"backup-volfile-servers={backups}"
    command = ["mount", "-t", "glusterfs", "-o", options, sources[0], mount_point]
    subprocess.run(command, check=True, timeout=300)


def agent_mount(mount: HostMount, probe_timeout: float) -> mounting.MountResult:
    result = mounting.mount_with_failover(mount, probe_timeout=probe_timeout, mount_timeout=120)
    if result.mounted_from is None:
        raise RuntimeError(f"no server mounted: {result.attempts}")
    return result


@contextmanager
def mount_point() -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="stowage-bench-") as path:
        try:
            yield path
        finally:
            subprocess.run(["umount", path], capture_output=True, check=False)


def summary(label: str, seconds: list[float]) -> None:
    print(
        f"  {label:<44} median {statistics.median(seconds):6.2f} s"
        f"   min {min(seconds):6.2f} s   max {max(seconds):6.2f} s   (n={len(seconds)})"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--probe-timeout", type=float, default=2.0)
    args = parser.parse_args()

    test_hosts = [hosts.create_host() for _ in range(3)]
    cluster = GlusterCluster.start(test_hosts)
    try:
        first = test_hosts[0]
        sources = tuple(cluster.source(host) for host in test_hosts)
        with mount_point() as path:
            mount = HostMount("glusterfs", sources, (), path)

            def rounds(action: Callable[[], object]) -> list[float]:
                seconds = []
                for _ in range(args.rounds):
                    seconds.append(timed(action))
                    mounting.unmount(path)
                    time.sleep(0.2)
                return seconds

            print(f"GlusterFS replica 3 on {', '.join(h.ip for h in test_hosts)}")
            summary("plain mount -t glusterfs", rounds(lambda: plain_mount(sources[0], path)))
            summary("agent mount, all servers up", rounds(lambda: agent_mount(mount, 2.0)))
            first.cut_off()
            summary(
                "agent mount, first server black-holed",
                rounds(lambda: agent_mount(mount, args.probe_timeout)),
            )
            first.restore()
            first.refuse(GLUSTERD_PORT)
            summary(
                "agent mount, first server refusing",
                rounds(lambda: agent_mount(mount, args.probe_timeout)),
            )
            first.allow(GLUSTERD_PORT)
            first.cut_off()
            summary(
                "plain mount, first server black-holed",
                rounds(lambda: plain_mount_with_backups(sources, path)),
            )
            first.restore()
        print(f"probe timeout {args.probe_timeout} s per black-holed server (goal <= 5 s)")
    finally:
        cluster.stop()
        for host in test_hosts:
            hosts.remove_host(host)
    return 0


if __name__ == "__main__":
    with network_guard():
        status = main()
    sys.exit(status)
