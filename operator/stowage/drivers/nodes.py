"""The node a node-local volume goes to: the scheduler's pick, else a capacity-aware choice."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from stowage.drivers.base import (
    BackendRef,
    CandidateNode,
    ClaimRequest,
    ProvisionContext,
    Unprovisionable,
)
from stowage.drivers.common import describe_size
from stowage.drivers.placement import rendezvous_order


def _matches_selector(backend: BackendRef, node: CandidateNode) -> bool:
    selector = backend.spec.mount.node_selector
    return all(node.labels.get(key) == value for key, value in selector.items())


def _refusal(
    backend: BackendRef, listed: Sequence[str], node_name: str, node: CandidateNode | None
) -> str | None:
    """Why `node_name` does not offer the backend, or None if it does (or cannot be told)."""
    if listed and node_name not in listed:
        return f"it is not listed in {backend.spec.storage_type}.nodes"
    if node is not None and not _matches_selector(backend, node):
        return "its labels do not match mount.nodeSelector"
    return None


def offers(backend: BackendRef, listed: Sequence[str], node: CandidateNode) -> bool:
    """The node offers the backend: listed in its nodes (when it lists any) and matching
    mount.nodeSelector."""
    return _refusal(backend, listed, node.name, node) is None


def _check_fits(backend: BackendRef, node: CandidateNode, needed_bytes: int) -> None:
    free = node.free_bytes(backend.name)
    if free is not None and free < needed_bytes:
        raise Unprovisionable(
            f"node {node.name} has {describe_size(free)} free in backend {backend.name}, "
            f"the claim needs {describe_size(needed_bytes)}"
        )


def choose_node(
    backend: BackendRef,
    claim: ClaimRequest,
    ctx: ProvisionContext,
    listed: Sequence[str],
    needed_bytes: int,
) -> CandidateNode:
    """The node for the claim's volume.

    `listed` are the nodes the backend names explicitly (empty: all that match
    mount.nodeSelector). With WaitForFirstConsumer the scheduler has chosen already; else the
    nodes with room are ranked by bytes already allocated there, then by rendezvous hash of
    the claim UID, so that volumes spread.
    """
    known = {node.name: node for node in ctx.nodes}
    if claim.selected_node is not None:
        node = known.get(claim.selected_node)
        refusal = _refusal(backend, listed, claim.selected_node, node)
        if refusal:
            raise Unprovisionable(
                f"the scheduler chose node {claim.selected_node} for the claim, but it does "
                f"not offer backend {backend.name}: {refusal}"
            )
        chosen = node or CandidateNode(name=claim.selected_node)
        _check_fits(backend, chosen, needed_bytes)
        return chosen

    offering = [
        node
        for node in ctx.nodes
        if node.schedulable and _refusal(backend, listed, node.name, node) is None
    ]
    if not offering:
        raise Unprovisionable(
            f"no schedulable node offers backend {backend.name} (check "
            f"{backend.spec.storage_type}.nodes and mount.nodeSelector)"
        )
    fitting = [
        node
        for node in offering
        if (free := node.free_bytes(backend.name)) is None or free >= needed_bytes
    ]
    if not fitting:
        roomiest = max(offering, key=lambda node: node.free_bytes(backend.name) or 0)
        raise Unprovisionable(
            f"no node has {describe_size(needed_bytes)} free in backend {backend.name}: "
            f"the largest free is {describe_size(roomiest.free_bytes(backend.name) or 0)} "
            f"on node {roomiest.name}"
        )
    allocated: Counter[str] = Counter()
    for volume in ctx.volumes:
        if volume.location.node is not None:
            allocated[volume.location.node] += volume.capacity_bytes
    rank = {name: index for index, name in enumerate(rendezvous_order(claim.uid, known))}
    return min(fitting, key=lambda node: (allocated[node.name], rank[node.name]))
