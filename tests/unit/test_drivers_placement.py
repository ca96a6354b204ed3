"""Rendezvous hashing: even spread, stability, minimal movement when a candidate goes."""

from __future__ import annotations

import math
from collections import Counter

import pytest

from stowage.drivers.placement import bounded_assignment, rendezvous_choice, rendezvous_order

pytestmark = pytest.mark.unit

KEYS = [f"claim-{index:04d}" for index in range(1000)]


def servers(count: int) -> list[str]:
    return [f"10.0.0.{index + 1}" for index in range(count)]


@pytest.mark.parametrize("count", [3, 5, 7])
def test_1000_keys_spread_evenly(count: int) -> None:
    shares = Counter(rendezvous_choice(key, servers(count)) for key in KEYS)
    mean = len(KEYS) / count
    assert set(shares) == set(servers(count))
    # Even an ideal hash puts about 1.13 x the mean on the fullest of 7 servers with 1,000
    # keys (binomial noise); a broken or biased hash goes far beyond 1.25.
    assert max(shares.values()) / mean < 1.25
    assert min(shares.values()) / mean > 0.75


@pytest.mark.parametrize("count", [3, 5, 7])
def test_removing_one_candidate_moves_only_its_keys(count: int) -> None:
    before = {key: rendezvous_choice(key, servers(count)) for key in KEYS}
    removed = servers(count)[1]
    remaining = [server for server in servers(count) if server != removed]
    after = {key: rendezvous_choice(key, remaining) for key in KEYS}
    moved = [key for key in KEYS if before[key] != after[key]]
    assert all(before[key] == removed for key in moved)
    assert len(moved) == sum(1 for key in KEYS if before[key] == removed)
    assert 0.6 / count < len(moved) / len(KEYS) < 1.4 / count


def test_order_is_a_failover_order_independent_of_input_order() -> None:
    order = rendezvous_order("node-a", servers(5))
    assert sorted(order) == sorted(servers(5))
    assert rendezvous_order("node-a", list(reversed(servers(5)))) == order
    assert rendezvous_order("node-a", servers(5) + servers(5)) == order  # duplicates collapse
    assert order[0] == rendezvous_choice("node-a", servers(5))


def test_different_keys_get_different_orders() -> None:
    orders = {tuple(rendezvous_order(f"node-{index}", servers(3))) for index in range(50)}
    assert len(orders) == 6  # every permutation of three servers appears


def test_no_candidates_is_an_error() -> None:
    with pytest.raises(ValueError, match="no candidates"):
        rendezvous_choice("key", [])


def test_bounded_assignment_keeps_every_host_near_the_mean_and_orders_all_of_them() -> None:
    nodes = [f"ip-10-0-{index // 250}-{index % 250}.ec2.internal" for index in range(1000)]
    hosts = [f"gluster-{index}" for index in range(1, 8)]
    assignment = bounded_assignment(nodes, hosts)
    per_host = Counter(order[0] for order in assignment.values())
    assert max(per_host.values()) <= math.ceil(1.05 * 1000 / 7)
    assert all(sorted(order) == hosts for order in assignment.values())
    # A node keeps its rendezvous choice unless that host is full.
    kept = sum(order[0] == rendezvous_order(node, hosts)[0] for node, order in assignment.items())
    assert kept > 900
    assert bounded_assignment(reversed(nodes), hosts) == assignment  # order of input is no input


def test_removing_a_host_moves_about_its_own_nodes() -> None:
    nodes = [f"node-{index}" for index in range(1000)]
    hosts = [f"h{index}" for index in range(5)]
    before = bounded_assignment(nodes, hosts)
    after = bounded_assignment(nodes, hosts[1:])
    moved = [node for node in nodes if before[node][0] != after[node][0]]
    assert {node for node in nodes if before[node][0] == "h0"} <= set(moved)
    assert len(moved) < 1.2 * 1000 / 5
