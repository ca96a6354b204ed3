"""A StorageBackend as both sides see it: the model parsed from its body, and what its driver
says it is and does. The operator's reconcilers (through `stowage.reconcilers.driving`) and the
node side (the mount helpers) both ask here, so the node side needs nothing of the operator's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import ValidationError

from stowage import objects
from stowage.api.backend import StorageBackend
from stowage.api.common import parse_quantity
from stowage.drivers import driver_for
from stowage.drivers.base import (
    SELECTED_NODE_ANNOTATION,
    BackendRef,
    CapacitySource,
    ClaimRequest,
    HostMount,
    NodeRole,
    NodeVolume,
    ProvisionContext,
    ProvisionedVolume,
    RemoteExport,
    Unprovisionable,
)
from stowage.kube import Json, Kube
from stowage.kube.resources import STORAGE_BACKENDS


def describe_validation_error(error: ValidationError) -> str:
    """Where and what, without echoing input values."""
    parts = []
    for problem in error.errors(include_input=False, include_url=False):
        location = ".".join(str(part) for part in problem["loc"]) or "spec"
        parts.append(f"{location}: {problem['msg']}")
    return "; ".join(parts)


def parse_backend(body: Mapping[str, Any]) -> StorageBackend | str:
    """The backend model, or a message saying why the spec is not acceptable."""
    try:
        return StorageBackend.model_validate({"spec": body.get("spec") or {}})
    except ValidationError as error:
        return describe_validation_error(error)


def read_backend(kube: Kube, name: str) -> StorageBackend | str:
    """The StorageBackend `name` as the API server has it now, or why there is none to go by
    (it is gone, or its spec is not acceptable)."""
    body = kube.get(STORAGE_BACKENDS, name)
    if body is None:
        return f"StorageBackend {name} is gone"
    return parse_backend(body)


def backend_ref(name: str, model: StorageBackend) -> BackendRef:
    return BackendRef(name=name, spec=model.spec)


def _nameless(model: StorageBackend) -> BackendRef:
    """A reference to the backend for questions its name does not change."""
    return BackendRef(name="", spec=model.spec)


def node_role(model: StorageBackend) -> NodeRole:
    """What the mount helpers do for the backend's volumes on the nodes."""
    return driver_for(model.spec.storage_type).node_role(_nameless(model))


def has_helpers(model: StorageBackend) -> bool:
    """Whether the backend gets mount-helper DaemonSets: every role but NONE."""
    return node_role(model) is not NodeRole.NONE


def prepared_on_node(model: StorageBackend) -> bool:
    """Whether the helper on each volume's node makes it before its PV exists (emptyDir,
    gitRepo, lvm, rbd; hostPath with enforceQuota)."""
    return node_role(model) is NodeRole.NODE_WORK


def has_directory_quota(model: StorageBackend) -> bool:
    """Whether the helpers limit each claim's directory of a shared mount to the claim's size."""
    driver = driver_for(model.spec.storage_type)
    return (
        node_role(model) is NodeRole.SHARED_MOUNT
        and driver.has_directory_quota
        and model.spec.provisioning.enforce_quota is not False
    )


def host_mount(name: str, model: StorageBackend, node: str) -> HostMount | None:
    """How the helper mounts the backend on `node`; None for types without a backend mount."""
    return driver_for(model.spec.storage_type).host_mount(backend_ref(name, model), node)


def remote_export(name: str, model: StorageBackend, node: str) -> RemoteExport | None:
    """Where the helper on `node` makes claim directories over the network; None for types
    whose directories are made otherwise."""
    return driver_for(model.spec.storage_type).remote_export(backend_ref(name, model), node)


def node_volume(name: str, model: StorageBackend, volume: Mapping[str, Any]) -> NodeVolume | None:
    """What the helper on a node-pinned volume's node makes for it; None for other types."""
    driver = driver_for(model.spec.storage_type)
    return driver.node_volume(backend_ref(name, model), ProvisionedVolume.from_manifest(volume))


def capacity_source(name: str, model: StorageBackend) -> CapacitySource | None:
    """What the helpers measure the free bytes of on their nodes."""
    return driver_for(model.spec.storage_type).capacity_source(backend_ref(name, model))


def storage_class(name: str, model: StorageBackend) -> Json:
    return objects.storage_class(backend_ref(name, model), driver_for(model.spec.storage_type))


def selected_node(claim: Mapping[str, Any]) -> str | None:
    """The scheduler's node for a WaitForFirstConsumer claim, once it chose one."""
    annotations: Mapping[str, str] = (claim.get("metadata") or {}).get("annotations") or {}
    return annotations.get(SELECTED_NODE_ANNOTATION)


def claim_request(claim: Mapping[str, Any], node: str | None = None) -> ClaimRequest:
    """The claim's facts; `node` (when given) stands for the scheduler's choice."""
    metadata = claim["metadata"]
    spec = claim.get("spec") or {}
    requests = (spec.get("resources") or {}).get("requests") or {}
    return ClaimRequest(
        namespace=metadata["namespace"],
        name=metadata["name"],
        uid=metadata["uid"],
        requested_bytes=parse_quantity(requests.get("storage", "0")),
        access_modes=tuple(spec.get("accessModes") or ()),
        volume_mode=spec.get("volumeMode") or "Filesystem",
        selected_node=node or selected_node(claim),
        storage_class=spec.get("storageClassName") or "",
    )


def planned_volume(
    name: str,
    model: StorageBackend,
    request: ClaimRequest,
    volumes: Sequence[Mapping[str, Any]],
    nodes: Sequence[Mapping[str, Any]],
) -> Json:
    """The PV manifest the driver plans for the claim; Unprovisionable when it cannot."""
    driver = driver_for(model.spec.storage_type)
    ref = backend_ref(name, model)
    plan = driver.plan(ref, request, ProvisionContext.from_manifests(volumes, nodes))
    source = driver.persistent_volume_source(ref, plan)
    return objects.persistent_volume(ref, request, plan, source)


def claim_volume(
    name: str, model: StorageBackend, claim: Mapping[str, Any], node: str | None = None
) -> Json:
    """The PV of a claim as the helper on `node` works it out (for a node-pinned type, the
    volume on that node; shared mounts need no cluster facts); Unprovisionable when the claim
    is not of the backend's class."""
    wanted = storage_class(name, model)["metadata"]["name"]
    if (claim.get("spec") or {}).get("storageClassName") != wanted:
        raise Unprovisionable(f"the claim is not of StorageClass {wanted}")
    return planned_volume(name, model, claim_request(claim, node), volumes=(), nodes=())
