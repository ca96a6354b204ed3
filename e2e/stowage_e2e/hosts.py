"""Test hosts: network namespaces with their own IP on the `stowage-hosts` bridge.

Each host is a network namespace `stowage-h<N>` with address 172.30.0.<10+N>, its default
route via the node (172.30.0.1), reachable from this machine and from pods (pod CIDR and
host CIDR are routed through the node). The storage servers of the e2e suite run inside
them (`host.run(...)`, `host.popen(...)`); these addresses and loopback are the only
traffic targets the suite may use.

Faults are made inside the host's namespace, so they vanish with it:
`cut_off()` drops every packet in and out (connections time out), `restore()` undoes it,
`refuse(port)` answers TCP connections to PORT with a reset.

    python -m stowage_e2e.hosts create 3        # prints name and IP of each
    python -m stowage_e2e.hosts list
    python -m stowage_e2e.hosts run stowage-h1 -- ip addr
    python -m stowage_e2e.hosts cut|restore stowage-h1
    python -m stowage_e2e.hosts refuse|allow stowage-h1 2049
    python -m stowage_e2e.hosts remove stowage-h1 | remove-all
"""

from __future__ import annotations

import argparse
import ipaddress
import re
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from stowage_e2e.cluster import settings

PREFIX = "stowage-h"
VETH_PREFIX = "sth-"
FIRST_HOST_OFFSET = 10
MAX_HOSTS = 200
CUT_COMMENT = "stowage-e2e-cut"
NETNS_ETC = Path("/etc/netns")
REFUSE_COMMENT = "stowage-e2e-refuse"


def _run(command: Sequence[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(list(command), capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed: {result.stderr.strip()}")
    return result


def _network() -> ipaddress.IPv4Network:
    return ipaddress.IPv4Network(settings().hosts_cidr)


def _address(index: int) -> str:
    return str(_network().network_address + FIRST_HOST_OFFSET + index)


@dataclass(frozen=True)
class TestHost:
    """One test host; all methods act on its network namespace."""

    index: int

    __test__ = False  # not a pytest test class

    @property
    def name(self) -> str:
        return f"{PREFIX}{self.index}"

    @property
    def ip(self) -> str:
        return _address(self.index)

    @property
    def veth(self) -> str:
        return f"{VETH_PREFIX}{self.index}"

    def exec_prefix(self) -> list[str]:
        return ["ip", "netns", "exec", self.name]

    def run(
        self, command: Sequence[str], *, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        """Runs COMMAND inside the host, waiting for it; output captured as text."""
        return subprocess.run(
            [*self.exec_prefix(), *command],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=check,
        )

    def popen(self, command: Sequence[str], **kwargs: object) -> subprocess.Popen[bytes]:
        """Starts COMMAND inside the host in the background (a server, say).

        `remove()` kills whatever still runs in the host.
        """
        return subprocess.Popen([*self.exec_prefix(), *command], **kwargs)  # type: ignore[call-overload, no-any-return]

    def _iptables(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return _run([*self.exec_prefix(), "iptables", "-w", *args], check=check)

    def _ensure_rule(self, chain: str, rule: Sequence[str]) -> None:
        if self._iptables("-C", chain, *rule, check=False).returncode != 0:
            self._iptables("-I", chain, "1", *rule)

    def _drop_rule(self, chain: str, rule: Sequence[str]) -> None:
        while self._iptables("-C", chain, *rule, check=False).returncode == 0:
            self._iptables("-D", chain, *rule)

    def _cut_rules(self) -> list[tuple[str, list[str]]]:
        comment = ["-m", "comment", "--comment", CUT_COMMENT]
        return [
            ("INPUT", ["!", "-i", "lo", *comment, "-j", "DROP"]),
            ("OUTPUT", ["!", "-o", "lo", *comment, "-j", "DROP"]),
        ]

    def _refuse_rule(self, port: int) -> list[str]:
        return [
            "-p",
            "tcp",
            "--dport",
            str(port),
            "-m",
            "comment",
            "--comment",
            REFUSE_COMMENT,
            "-j",
            "REJECT",
            "--reject-with",
            "tcp-reset",
        ]

    def cut_off(self) -> None:
        """Drops every packet to and from the host: peers see timeouts, not refusals."""
        for chain, rule in self._cut_rules():
            self._ensure_rule(chain, rule)

    def restore(self) -> None:
        """Undoes `cut_off()`."""
        for chain, rule in self._cut_rules():
            self._drop_rule(chain, rule)

    def _peer_rules(self, address: str) -> list[tuple[str, list[str]]]:
        comment = ["-m", "comment", "--comment", CUT_COMMENT]
        return [
            ("INPUT", ["-s", address, *comment, "-j", "DROP"]),
            ("OUTPUT", ["-d", address, *comment, "-j", "DROP"]),
        ]

    def cut_off_from(self, address: str) -> None:
        """Drops every packet between the host and `address` alone (a VM node, say)."""
        for chain, rule in self._peer_rules(address):
            self._ensure_rule(chain, rule)

    def reconnect(self, address: str) -> None:
        """Undoes `cut_off_from(address)`."""
        for chain, rule in self._peer_rules(address):
            self._drop_rule(chain, rule)

    def refuse(self, port: int) -> None:
        """TCP connections to PORT get a reset (connection refused)."""
        self._ensure_rule("INPUT", self._refuse_rule(port))

    def allow(self, port: int) -> None:
        """Undoes `refuse(port)`."""
        self._drop_rule("INPUT", self._refuse_rule(port))

    def is_cut_off(self) -> bool:
        chain, rule = self._cut_rules()[0]
        return self._iptables("-C", chain, *rule, check=False).returncode == 0


def _namespaces() -> list[str]:
    listing = _run(["ip", "netns", "list"]).stdout
    return [line.split()[0] for line in listing.splitlines() if line.strip()]


def existing_hosts() -> list[TestHost]:
    pattern = re.compile(rf"^{re.escape(PREFIX)}(\d+)$")
    indexes = sorted(int(m.group(1)) for ns in _namespaces() if (m := pattern.match(ns)))
    return [TestHost(index) for index in indexes]


def ensure_bridge() -> None:
    """The bridge with the node's address on it (the cluster makes it too; either may be first)."""
    s = settings()
    if _run(["ip", "link", "show", s.hosts_bridge], check=False).returncode != 0:
        _run(["ip", "link", "add", s.hosts_bridge, "type", "bridge"])
    prefix = _network().prefixlen
    _run(["ip", "addr", "replace", f"{s.node_ip}/{prefix}", "dev", s.hosts_bridge])
    _run(["ip", "link", "set", s.hosts_bridge, "up"])
    _run(["sysctl", "-qw", "net.ipv4.ip_forward=1"])


def create_host(index: int | None = None) -> TestHost:
    """A new host: namespace, veth pair on the bridge, address, default route via the node."""
    ensure_bridge()
    taken = {host.index for host in existing_hosts()}
    if index is None:
        index = next(i for i in range(1, MAX_HOSTS) if i not in taken)
    elif index in taken:
        raise ValueError(f"test host {PREFIX}{index} exists")
    host = TestHost(index)
    s = settings()
    try:
        _run(["ip", "netns", "add", host.name])
        write_resolv_conf(host)
        _run(
            [
                "ip",
                "link",
                "add",
                host.veth,
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                host.name,
            ]
        )
        _run(["ip", "link", "set", host.veth, "master", s.hosts_bridge, "up"])
        inside = host.exec_prefix()
        _run([*inside, "ip", "link", "set", "lo", "up"])
        _run([*inside, "ip", "addr", "add", f"{host.ip}/{_network().prefixlen}", "dev", "eth0"])
        _run([*inside, "ip", "link", "set", "eth0", "up"])
        _run([*inside, "ip", "route", "add", "default", "via", s.node_ip])
        # An earlier host of this address had another MAC: this machine must not send to it
        # (a stale neighbour entry is only probed again after seconds).
        _run(["ip", "neigh", "flush", "to", host.ip], check=False)
    except Exception:
        remove_host(host)
        raise
    return host


def create_hosts(count: int) -> list[TestHost]:
    return [create_host() for _ in range(count)]


def netns_etc(host: TestHost) -> Path:
    """What `ip netns exec` binds over /etc for the host's processes."""
    return NETNS_ETC / host.name


def write_resolv_conf(host: TestHost) -> None:
    """The host's servers ask the cluster's DNS (which answers for the cluster only), never
    this machine's resolver: glusterd and git daemon look up their peers' names."""
    etc = netns_etc(host)
    etc.mkdir(parents=True, exist_ok=True)
    (etc / "resolv.conf").write_text(f"nameserver {settings().node_ip}\n")


def remove_host(host: TestHost) -> None:
    """Kills what runs in the host, then removes its namespace, veth and /etc files."""
    pids = _run(["ip", "netns", "pids", host.name], check=False).stdout.split()
    for pid in pids:
        _run(["kill", "-KILL", pid], check=False)
    _run(["ip", "netns", "delete", host.name], check=False)
    _run(["ip", "link", "delete", host.veth], check=False)
    shutil.rmtree(netns_etc(host), ignore_errors=True)


def remove_all() -> None:
    for host in existing_hosts():
        remove_host(host)


def _host(name: str) -> TestHost:
    for host in existing_hosts():
        if host.name == name:
            return host
    raise SystemExit(f"no test host {name}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m stowage_e2e.hosts",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("create").add_argument("count", type=int)
    sub.add_parser("list")
    run = sub.add_parser("run")
    run.add_argument("name")
    run.add_argument("argv", nargs=argparse.REMAINDER)
    for command in ("cut", "restore", "remove"):
        sub.add_parser(command).add_argument("name")
    for command in ("refuse", "allow"):
        port_parser = sub.add_parser(command)
        port_parser.add_argument("name")
        port_parser.add_argument("port", type=int)
    sub.add_parser("remove-all")
    args = parser.parse_args(argv)

    if args.command == "create":
        for host in create_hosts(args.count):
            print(host.name, host.ip)
    elif args.command == "list":
        for host in existing_hosts():
            print(host.name, host.ip, "cut-off" if host.is_cut_off() else "up")
    elif args.command == "run":
        command = args.argv[1:] if args.argv[:1] == ["--"] else args.argv
        return subprocess.run([*_host(args.name).exec_prefix(), *command], check=False).returncode
    elif args.command == "cut":
        _host(args.name).cut_off()
    elif args.command == "restore":
        _host(args.name).restore()
    elif args.command == "refuse":
        _host(args.name).refuse(args.port)
    elif args.command == "allow":
        _host(args.name).allow(args.port)
    elif args.command == "remove":
        remove_host(_host(args.name))
    elif args.command == "remove-all":
        remove_all()
    return 0


if __name__ == "__main__":
    sys.exit(main())
