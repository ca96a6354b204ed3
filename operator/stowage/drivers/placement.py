"""Rendezvous (highest-random-weight) hashing: a stable, evenly spread choice among names.

Every key ranks the candidates by a hash of (key, candidate); the first is its choice. Claims
spread evenly over NFS servers, nodes spread their mounts evenly over storage hosts, and
removing one candidate moves only the keys that had chosen it.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable


def _weight(key: str, candidate: str) -> int:
    digest = hashlib.blake2b(
        key.encode() + b"\0" + candidate.encode(), digest_size=8, person=b"stowage-hrw"
    ).digest()
    return int.from_bytes(digest, "big")


def rendezvous_order(key: str, candidates: Iterable[str]) -> list[str]:
    """The distinct candidates, most preferred for `key` first (the failover order)."""
    return sorted(set(candidates), key=lambda candidate: (_weight(key, candidate), candidate))[::-1]


def rendezvous_choice(key: str, candidates: Iterable[str]) -> str:
    """The candidate `key` goes to; ValueError when there is none."""
    order = rendezvous_order(key, candidates)
    if not order:
        raise ValueError("rendezvous choice among no candidates")
    return order[0]


def bounded_assignment(
    keys: Iterable[str], candidates: Iterable[str], slack: float = 1.05
) -> dict[str, list[str]]:
    """Each key's failover order, its first candidate chosen with bounded load.

    Rendezvous hashing alone leaves some candidates with ~12 % more keys than the mean at
    1,000 keys over 7 candidates. Here the keys, taken in a fixed order, each go to the first
    candidate of their rendezvous order that has fewer than `slack` times the mean (rounded
    up); the rest of the order is the rendezvous order. So no candidate gets more than that,
    and a key moves only when its candidate goes or fills up.
    """
    names = sorted(set(candidates))
    ordered_keys = sorted(set(keys))
    if not names:
        return {key: [] for key in ordered_keys}
    capacity = math.ceil(slack * len(ordered_keys) / len(names))
    load = dict.fromkeys(names, 0)
    assignment = {}
    for key in ordered_keys:
        order = rendezvous_order(key, names)
        chosen = next(name for name in order if load[name] < capacity)
        load[chosen] += 1
        assignment[key] = [chosen, *(name for name in order if name != chosen)]
    return assignment
