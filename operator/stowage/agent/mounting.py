"""Mounting a backend on this node through its servers in failover order, and checking it.

The order of the sources is the rendezvous order of the node name over the backend's hosts
(stowage.drivers.placement), so nodes spread evenly over the servers. Before a source is tried
its server is probed with a bounded TCP connect: a refused connection moves on at once, and a
black-holed server costs `probe_timeout`, not the kernel's connect timeout.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from stowage.clients.network import probe
from stowage.drivers.base import HostMount
from stowage.objects.helper_daemonset import HOST_CGROUP_ROOT

logger = logging.getLogger(__name__)

# The port each protocol's mount talks to first: Gluster's glusterd, SMB.
PROBE_PORTS = {"glusterfs": 24007, "cifs": 445}
# User-space clients that serve a mount for as long as they live.
FUSE_CLIENTS = frozenset({"glusterfs", "glusterfsd", "ceph-fuse", "rbd-fuse"})


@dataclass(frozen=True)
class Attempt:
    source: str
    # "mounted", "refused", "timeout", "unreachable", "mount failed: ...", or why the
    # client's check refused the source
    outcome: str
    seconds: float


@dataclass(frozen=True)
class MountResult:
    mounted_from: str | None
    attempts: tuple[Attempt, ...]

    @property
    def failovers(self) -> int:
        """How many servers were passed over before one served the mount."""
        return len(self.attempts) - 1 if self.mounted_from else len(self.attempts)


def server_of(fs_type: str, source: str) -> str:
    """`host:/volume` (glusterfs) or `//host/share` (cifs) -> host."""
    if source.startswith("//"):
        return source[2:].split("/", 1)[0]
    return source.split(":", 1)[0]


def volume_of(source: str) -> str:
    """`host:/volume` (glusterfs) -> volume."""
    return source.partition(":/")[2]


def mount_options(mount: HostMount, source: str) -> list[str]:
    """The backend's options; for Gluster, the other servers as backup volfile servers."""
    options = list(mount.options)
    if mount.fs_type == "glusterfs":
        others = [server_of(mount.fs_type, s) for s in mount.sources if s != source]
        if others:
            options.append("backup-volfile-servers=" + ":".join(others))
    return options


def mount_command(mount: HostMount, source: str) -> list[str]:
    command = ["mount", "-t", mount.fs_type]
    options = mount_options(mount, source)
    if options:
        command += ["-o", ",".join(options)]
    return [*command, source, mount.mount_point]


def last_words(output: str) -> str:
    """What a failed mount said, shortened."""
    return output.strip()[-300:]


def no_check(mount: HostMount, source: str) -> str | None:
    return None


@dataclass(frozen=True)
class MountClient:
    """How a type's mount is made: a check of the source before it is mounted (None, or why it
    cannot be), the command for one source, and why it failed (from the command's output).
    `mount(8)` with the kernel's or a mount helper's file system by default; CephFS
    (stowage.agent.ceph_fuse) and CIFS (stowage.agent.cifs_mount) have their own."""

    command: Callable[[HostMount, str], list[str]] = mount_command
    explain: Callable[[str], str] = last_words
    check: Callable[[HostMount, str], str | None] = no_check


MOUNT = MountClient()


def mount_with_failover(
    mount: HostMount,
    *,
    probe_timeout: float,
    mount_timeout: float,
    client: MountClient = MOUNT,
) -> MountResult:
    """Mounts from the first source whose server answers and whose mount succeeds."""
    os.makedirs(mount.mount_point, exist_ok=True)
    attempts: list[Attempt] = []
    port = PROBE_PORTS.get(mount.fs_type)
    for source in mount.sources:
        started = time.monotonic()
        if port is not None:
            reached = probe(server_of(mount.fs_type, source), port, probe_timeout)
            if reached != "ok":
                attempts.append(Attempt(source, reached, time.monotonic() - started))
                continue
        problem = client.check(mount, source)
        if problem is not None:
            attempts.append(Attempt(source, problem, time.monotonic() - started))
            continue
        outcome = run_mount(client.command(mount, source), mount_timeout, client.explain)
        attempts.append(Attempt(source, outcome, time.monotonic() - started))
        if outcome == "mounted":
            return MountResult(source, tuple(attempts))
    return MountResult(None, tuple(attempts))


def in_order(mount: HostMount, hosts: Sequence[str]) -> HostMount:
    """The mount with its sources tried in the order of `hosts` (unlisted ones last, as they
    were)."""
    rank = {host: index for index, host in enumerate(hosts)}

    def position(source: str) -> int:
        return rank.get(server_of(mount.fs_type, source), len(rank))

    return dataclasses.replace(mount, sources=tuple(sorted(mount.sources, key=position)))


def run_mount(
    command: Sequence[str], timeout: float, explain: Callable[[str], str] = last_words
) -> str:
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return "mount failed: timed out"
    if result.returncode != 0:
        return f"mount failed: {explain(result.stderr + result.stdout)}"
    return "mounted"


def unescaped(field: str) -> str:
    """A mountinfo path field: spaces, tabs, newlines and backslashes are octal escapes."""
    return re.sub(r"\\([0-7]{3})", lambda match: chr(int(match[1], 8)), field)


@dataclass(frozen=True)
class MountEntry:
    """A line of /proc/self/mountinfo."""

    device: str  # major:minor
    root: str  # the directory of the file system mounted here
    mount_point: str
    source: str  # `host:/volume`, `//host/share`, a device


def mount_entries(mountinfo: str) -> list[MountEntry]:
    entries = []
    for line in mountinfo.splitlines():
        fields = line.split()
        if "-" not in fields[5:]:
            continue
        source = fields[fields.index("-", 5) + 2]
        entries.append(
            MountEntry(fields[2], unescaped(fields[3]), unescaped(fields[4]), unescaped(source))
        )
    return entries


def mount_table() -> list[MountEntry]:
    """This process's mounts, read without touching the file systems behind them."""
    with open("/proc/self/mountinfo") as mountinfo:
        return mount_entries(mountinfo.read())


def mount_source(path: str) -> str | None:
    """The source mounted at `path`; None when nothing is mounted there."""
    found = None
    for entry in mount_table():
        if entry.mount_point == path:
            found = entry.source  # the last mount on top wins
    return found


def is_mount_point(path: str) -> bool:
    return mount_source(path) is not None


def is_healthy(path: str, timeout: float) -> bool:
    """The mount answers a stat within `timeout` (ENOTCONN, ESTALE or a hang: stale)."""
    try:
        result = subprocess.run(["stat", "-t", path], capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return False
    return result.returncode == 0


def fuse_client_pids(mount_point: str, proc: Path = Path("/proc")) -> list[int]:
    """Pids of the FUSE client processes (glusterfs, ceph-fuse) serving `mount_point`."""
    wanted = mount_point.encode()
    found = []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            arguments = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue  # the process is gone
        if Path(arguments[0].decode(errors="replace")).name in FUSE_CLIENTS and wanted in arguments:
            found.append(int(entry.name))
    return sorted(found)


def detach_from_container(
    pids: Sequence[int], host_cgroups: Path = Path(HOST_CGROUP_ROOT)
) -> str | None:
    """Moves `pids` out of the helper container's cgroups into the host's root cgroups.

    The container runtime kills every process of a container's cgroups when the container
    stops; a FUSE client killed with its helper would take every pod's mount with it
    (kadalu #913, ceph-csi #91). `host_cgroups` is the node's /sys/fs/cgroup (cgroup v1
    hierarchies below it, or the v2 tree itself). Returns why it failed, or None.
    """
    if not pids:
        return "no FUSE client process found"
    roots = sorted(host_cgroups.glob("cgroup.procs")) + sorted(host_cgroups.glob("*/cgroup.procs"))
    if not roots:
        return f"no cgroup hierarchy under {host_cgroups}"
    problems = []
    for procs in roots:
        for pid in pids:
            try:
                procs.write_text(f"{pid}\n")
            except OSError as error:
                problems.append(f"{procs.parent.name or 'cgroup'}: {error.strerror}")
                break
    return "; ".join(problems) or None


def unmount(path: str) -> None:
    """Lazily: a stale FUSE mount must not block the agent."""
    subprocess.run(["umount", "-l", path], capture_output=True, check=False)
