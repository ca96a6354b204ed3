"""Mount balance: how evenly nodes spread their mounts over a backend's storage hosts.

Each node mounts through the first host of the order the operator assigns it: rendezvous
hashing with a bound on each host's load (stowage.drivers.placement.bounded_assignment); the
plain rendezvous choice of each node by itself is shown beside it. For N simulated nodes over
3, 5 and 7 hosts this prints the max/mean mounts per host (goal <= 1.10)
and the fraction of nodes that move when one host is removed (ideal 1/hosts), and how
many nodes each remaining host receives. A benchmark, not a test: it asserts nothing.

    .venv/bin/python bench/mount_balance.py [--nodes 1000] [--hosts 3 5 7]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "operator"))

from stowage.drivers.placement import bounded_assignment, rendezvous_choice


def node_names(count: int) -> list[str]:
    """Names like a cloud's node names: a prefix and a number."""
    return [f"ip-10-0-{index // 250}-{index % 250}.ec2.internal" for index in range(count)]


def host_names(count: int) -> list[str]:
    return [f"gluster-{index}.storage.example.com" for index in range(1, count + 1)]


Choose = Callable[[list[str], list[str]], dict[str, str]]


def by_rendezvous(nodes: list[str], hosts: list[str]) -> dict[str, str]:
    """Each node on its own: the first host of its rendezvous order."""
    return {node: rendezvous_choice(node, hosts) for node in nodes}


def by_bounded_assignment(nodes: list[str], hosts: list[str]) -> dict[str, str]:
    """What the operator hands the helpers: rendezvous with a bound on each host's load."""
    return {node: order[0] for node, order in bounded_assignment(nodes, hosts).items()}


def report(nodes: list[str], hosts: list[str], choose: Choose) -> None:
    before = choose(nodes, hosts)
    per_host = Counter(before.values())
    mean = len(nodes) / len(hosts)
    spread = max(per_host.values()) / mean
    removed = hosts[0]
    after = choose(nodes, hosts[1:])
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
    for title, choose in (
        ("rendezvous alone (each node by itself)", by_rendezvous),
        (
            "bounded assignment (the operator's ConfigMap, what the helpers use)",
            by_bounded_assignment,
        ),
    ):
        print(f"\n{title}")
        for count in args.hosts:
            report(nodes, host_names(count), choose)


if __name__ == "__main__":
    main()
