"""Labels and selectors shared by every object made for a backend."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from stowage.api.backend import MountSpec
from stowage.drivers.base import BACKEND_LABEL, MANAGED_BY, MANAGED_BY_LABEL, NodeRequirement


def backend_labels(backend_name: str) -> dict[str, str]:
    return {BACKEND_LABEL: backend_name, MANAGED_BY_LABEL: MANAGED_BY}


def match_expressions(requirements: Sequence[NodeRequirement]) -> list[dict[str, Any]]:
    return [
        {"key": requirement.key, "operator": "In", "values": list(requirement.values)}
        for requirement in requirements
    ]


def node_affinity(requirements: Sequence[NodeRequirement]) -> dict[str, Any]:
    """A PV nodeAffinity with one term: every requirement must hold."""
    return {
        "required": {"nodeSelectorTerms": [{"matchExpressions": match_expressions(requirements)}]}
    }


def mount_placement(mount: MountSpec) -> dict[str, Any]:
    """The pod-spec fields that put a pod where a backend's `mount` says its storage is
    mounted: its nodeSelector and its tolerations (none when unset)."""
    placement: dict[str, Any] = {}
    if mount.node_selector:
        placement["nodeSelector"] = dict(mount.node_selector)
    if mount.tolerations:
        placement["tolerations"] = [toleration.to_manifest() for toleration in mount.tolerations]
    return placement
