"""Mount balance: how evenly nodes spread their mounts over a backend's storage hosts.

Each node mounts through the first host of its rendezvous order (stowage.drivers.placement).
For N simulated nodes over 3, 5 and 7 hosts this prints the max/mean mounts per host (goal
<= 1.10) and the fraction of nodes that move when one host is removed (ideal 1/hosts), and how
many nodes each remaining host receives. A benchmark, not a test: it asserts nothing.

    .venv/bin/python bench/mount_balance.py [--nodes 1000] [--hosts 3 5 7]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "operator"))

from stowage.drivers.placement import rendezvous_choice


def node_names(count: int) -> list[str]:
    """Names like a cloud's node names: a prefix and a number."""
    return [f"ip-10-0-{index // 250}-{index % 250}.ec2.internal" for index in range(count)]


def host_names(count: int) -> list[str]:
    return [f"gluster-{index}.storage.example.com" for index in range(1, count + 1)]


def report(nodes: list[str], hosts: list[str]) -> None:
    before = {node: rendezvous_choice(node, hosts) for node in nodes}
    per_host = Counter(before.values())
    mean = len(nodes) / len(hosts)
    spread = max(per_host.values()) / mean
    removed = hosts[0]
    remaining = hosts[1:]
    after = {node: rendezvous_choice(node, remaining) for node in nodes}
    moved = [node for node in nodes if before[node] != after[node]]
    received = Counter(after[node] for node in moved)
    only_removed_moved = all(before[node] == removed for node in moved)
    print(
        f"{len(hosts)} hosts: mounts per host {sorted(per_host.values())}, "
        f"max/mean {spread:.3f}, stdev {statistics.pstdev(per_host.values()):.1f}"
    )
    print(
        f"  remove {removed}: {len(moved)} of {len(nodes)} nodes move "
        f"({len(moved) / len(nodes):.3f}, ideal {1 / len(hosts):.3f}); "
        f"only its own nodes moved: {only_removed_moved}; "
        f"taken over per host {sorted(received.values())}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--hosts", type=int, nargs="+", default=[3, 5, 7])
    args = parser.parse_args()
    nodes = node_names(args.nodes)
    for count in args.hosts:
        report(nodes, host_names(count))


if __name__ == "__main__":
    main()
