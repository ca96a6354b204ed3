"""The network guard: no test, benchmark or demo sends a packet off this machine.

While it is on, iptables chains of the suite's own (jumped to first from OUTPUT and FORWARD,
for IPv4 and IPv6) let through traffic to the allowed networks and packets of connections
that already exist, and count, log (kernel log, prefix `stowage-guard:`) and reject every new
connection to anywhere else, remembering each destination (`/proc/net/xt_recent/`). So a
test that reaches for a server outside fails fast, and the run that contains it fails at the
end with the destinations named.

The allowed networks are loopback, the test-host network (test hosts and VM nodes), the pod
and the service networks, all read from `e2e/scripts/common.sh`, the file that configures the
cluster itself; and whatever goes out on the cluster's own bridges (to test hosts, VM nodes
and pods only: the kernel's multicast reports there, say).

    python -m stowage_e2e.guard on       # (re)install the chains; leftovers of a run removed
    python -m stowage_e2e.guard report   # "blocked connections: N" and the destinations; 1 if N > 0
    python -m stowage_e2e.guard off      # remove the chains (nothing else is touched)

`network_guard()` is the same as a context manager, for the benchmarks.
"""

from __future__ import annotations

import ipaddress
import re
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from stowage_e2e.cluster import settings

CHAIN = "STOWAGE-GUARD"
BLOCK_CHAIN = "STOWAGE-GUARD-BLOCK"
HOOKS = ("OUTPUT", "FORWARD")
LOG_PREFIX = "stowage-guard: "
RECENT_DIR = Path("/proc/net/xt_recent")
RECENT_NAME = "stowage-guard"
# When the guard went on, in the kernel log's clock (seconds since boot).
SINCE_FILE = Path("/run/stowage-guard.since")
KERNEL_LOG_LINE = re.compile(
    r"^\[\s*(?P<time>[0-9.]+)\] stowage-guard: "
    r".*?DST=(?P<dst>\S+).*?PROTO=(?P<proto>\S+)(?P<rest>.*)"
)
PORT = re.compile(r"DPT=(\d+)")


@dataclass(frozen=True)
class Family:
    """iptables or ip6tables, with what differs between them."""

    command: str
    loopback: str
    recent_suffix: str

    @property
    def recent_name(self) -> str:
        return RECENT_NAME + self.recent_suffix


IPV4 = Family("iptables", "127.0.0.0/8", "")
IPV6 = Family("ip6tables", "::1/128", "-v6")
FAMILIES = (IPV4, IPV6)


def allowed_networks() -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """Where the suite may send traffic: loopback and the networks the cluster is made of."""
    s = settings()
    return tuple(
        ipaddress.ip_network(cidr)
        for cidr in (IPV4.loopback, IPV6.loopback, s.hosts_cidr, s.cluster_cidr, s.service_cidr)
    )


def is_allowed(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    return any(ip.version == net.version and ip in net for net in allowed_networks())


def _networks_of(family: Family) -> list[str]:
    version = 6 if family is IPV6 else 4
    return [str(net) for net in allowed_networks() if net.version == version]


def allowed_interfaces() -> tuple[str, ...]:
    """Where packets go out to this machine alone: loopback and the cluster's bridges."""
    return ("lo", settings().hosts_bridge, settings().pod_bridge)


def guard_rules(family: Family) -> list[list[str]]:
    """The rules of CHAIN and BLOCK_CHAIN, as iptables arguments after `-A`."""
    allow = [[CHAIN, "-o", link, "-j", "RETURN"] for link in allowed_interfaces()]
    allow += [[CHAIN, "-d", cidr, "-j", "RETURN"] for cidr in _networks_of(family)]
    reject_udp = "icmp6-port-unreachable" if family is IPV6 else "icmp-port-unreachable"
    return [
        *allow,
        [CHAIN, "-m", "conntrack", "--ctstate", "NEW", "-j", BLOCK_CHAIN],
        [BLOCK_CHAIN, "-m", "recent", "--name", family.recent_name, "--rdest", "--set"],
        [BLOCK_CHAIN, "-j", "LOG", "--log-prefix", LOG_PREFIX],
        [BLOCK_CHAIN, "-p", "tcp", "-j", "REJECT", "--reject-with", "tcp-reset"],
        [BLOCK_CHAIN, "-j", "REJECT", "--reject-with", reject_udp],
    ]


@dataclass(frozen=True)
class Guard:
    """The guard's chains in one network namespace: this machine's (no prefix), or another one
    through `ip netns exec NAME` (the guard's own tests)."""

    prefix: tuple[str, ...] = ()

    def _run(self, *command: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [*self.prefix, *command], capture_output=True, text=True, check=False
        )
        if check and result.returncode != 0:
            raise RuntimeError(f"{' '.join(command)}: {result.stderr.strip()}")
        return result

    def _iptables(
        self, family: Family, *args: str, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        return self._run(family.command, "-w", *args, check=check)

    def _chain_exists(self, family: Family, chain: str) -> bool:
        return self._iptables(family, "-n", "-L", chain, check=False).returncode == 0

    def remove(self, family: Family) -> None:
        """Removes the guard's jumps and chains; touches no other rule."""
        for hook in HOOKS:
            while self._iptables(family, "-C", hook, "-j", CHAIN, check=False).returncode == 0:
                self._iptables(family, "-D", hook, "-j", CHAIN)
        chains = [c for c in (CHAIN, BLOCK_CHAIN) if self._chain_exists(family, c)]
        for chain in chains:
            self._iptables(family, "-F", chain)
        for chain in chains:
            self._iptables(family, "-X", chain)

    def install(self, family: Family) -> None:
        """The chains anew (leftovers of an interrupted run removed first)."""
        self.remove(family)
        for chain in (CHAIN, BLOCK_CHAIN):
            self._iptables(family, "-N", chain)
        for rule in guard_rules(family):
            self._iptables(family, "-A", *rule)
        for hook in HOOKS:
            self._iptables(family, "-I", hook, "1", "-j", CHAIN)
        recent = RECENT_DIR / family.recent_name  # forget the destinations of an earlier run
        self._run("sh", "-c", f"if [ -e {recent} ]; then echo / > {recent}; fi")

    def blocked_count(self, family: Family) -> int:
        """Packets that reached the block chain: each is a new connection refused."""
        if not self._chain_exists(family, BLOCK_CHAIN):
            return 0
        listing = self._iptables(family, "-n", "-v", "-x", "-L", BLOCK_CHAIN).stdout
        # Two header lines; the first rule (recent --set) sees every blocked packet.
        rules = [line.split() for line in listing.splitlines()[2:] if line.strip()]
        return int(rules[0][0]) if rules else 0

    def blocked_destinations(self, family: Family) -> list[str]:
        recent = self._run("cat", str(RECENT_DIR / family.recent_name), check=False).stdout
        return [
            line.split()[0].removeprefix("src=")
            for line in recent.splitlines()
            if line.startswith("src=")
        ]

    def on(self) -> None:
        for family in FAMILIES:
            self.install(family)
        if not self.prefix:
            SINCE_FILE.write_text(Path("/proc/uptime").read_text().split()[0])

    def off(self) -> None:
        for family in FAMILIES:
            self.remove(family)

    def is_on(self) -> bool:
        return self._chain_exists(IPV4, BLOCK_CHAIN)

    def destinations(self) -> list[str]:
        return [d for family in FAMILIES for d in self.blocked_destinations(family)]

    def blocked(self) -> int:
        return sum(self.blocked_count(family) for family in FAMILIES)

    def report(self) -> int:
        """Prints the summary line and what was blocked; returns the number of blocked packets."""
        total = self.blocked()
        print(f"blocked connections: {total}")
        if total:
            print("  destinations: " + ", ".join(self.destinations()))
            for line in kernel_log_lines()[-50:]:
                print(f"  kernel log: {line}")
        return total


def kernel_log_lines() -> list[str]:
    """What the kernel logged of connections blocked since the guard went on: protocol,
    destination and port."""
    since = float(SINCE_FILE.read_text()) if SINCE_FILE.exists() else 0.0
    dmesg = subprocess.run(["dmesg"], capture_output=True, text=True, check=False).stdout
    seen: dict[str, None] = {}
    for line in dmesg.splitlines():
        if (match := KERNEL_LOG_LINE.search(line)) and float(match["time"]) >= since:
            port = PORT.search(match["rest"])
            where = f"{match['dst']}:{port.group(1)}" if port else match["dst"]
            seen[f"{match['proto'].lower()} {where}"] = None
    return list(seen)


@contextmanager
def network_guard() -> Iterator[None]:
    """This machine's guard on for the block, the summary printed at its end, chains removed;
    SystemExit(1) after the block when anything was blocked."""
    guard = Guard()
    guard.on()
    try:
        yield
    finally:
        blocked = guard.report()
        guard.off()
    if blocked:
        raise SystemExit(1)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    guard = Guard()
    if args == ["on"]:
        guard.on()
        allowed = ", ".join(str(net) for net in allowed_networks())
        print(f"network guard on: new connections only to {allowed}")
        return 0
    if args == ["report"]:
        return 1 if guard.report() else 0
    if args == ["off"]:
        guard.off()
        return 0
    print("usage: python -m stowage_e2e.guard on|report|off", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
