"""Rendezvous (highest-random-weight) hashing: a stable, evenly spread choice among names.

Every key ranks the candidates by a hash of (key, candidate); the first is its choice. Claims
spread evenly over NFS servers, nodes spread their mounts evenly over storage hosts, and
removing one candidate moves only the keys that had chosen it.
"""

from __future__ import annotations

import hashlib
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
