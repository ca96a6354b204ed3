"""The reconcilers' one door to the drivers and the object builders (what the node side
asks too is in `stowage.backends`, and re-exported here).

Translates between what the handlers hold (backend models, claim and volume bodies from the
caches) and the driver protocol (`BackendRef`, `ClaimRequest`, `ProvisionContext`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from stowage import objects
from stowage.api.backend import IscsiSpec, OnDelete, StorageBackend
from stowage.backends import (
    backend_ref,
    capacity_source,
    claim_request,
    claim_volume,
    has_directory_quota,
    has_helpers,
    host_mount,
    node_volume,
    planned_volume,
    prepared_on_node,
    remote_export,
    selected_node,
    storage_class,
)
from stowage.drivers import driver_for
from stowage.drivers.base import (
    ARCHIVE_AS_ANNOTATION,
    MOUNT_READY,
    NODE_ANNOTATION,
    PREPARE_LABEL,
    PREPARE_ON_ANNOTATION,
    PREPARED_BY_ANNOTATION,
    RELEASE_ANNOTATION,
    AccessMode,
    ProvisionedVolume,
    ReleasePlan,
    Unprovisionable,
    mount_label,
)
from stowage.drivers.iscsi import portal_address
from stowage.drivers.placement import bounded_assignment, rendezvous_order
from stowage.kube import Json
from stowage.objects.helper_daemonset import (
    HelperSettings,
    helper_credentials_secret,
    helper_daemonset,
    mount_order_config_map,
)

__all__ = [
    "HelperNotReady",
    "SecretNeed",
    "Unprovisionable",
    "allows_many_writers",
    "capacity_source",
    "claim_volume",
    "csi_driver_name",
    "has_directory_quota",
    "has_helpers",
    "helper",
    "helper_credentials",
    "helper_prepare_request",
    "helper_release_request",
    "host_mount",
    "is_prepared",
    "lun_to_wipe",
    "mount_order",
    "node_side_needs_credentials",
    "node_volume",
    "prepared_on_node",
    "release_volume",
    "remote_export",
    "secret_requirements",
    "static_volumes",
    "storage_class",
    "validate",
    "volume_for_claim",
    "volumes_are_nfs_exports",
]


class HelperNotReady(Unprovisionable):
    """No mount helper is ready where the claim's volume has to be made (yet)."""


@dataclass(frozen=True)
class SecretNeed:
    namespace: str
    name: str
    keys: tuple[str, ...]
    optional_keys: tuple[str, ...] = ()


def validate(name: str, model: StorageBackend) -> list[str]:
    driver = driver_for(model.spec.storage_type)
    return [str(problem) for problem in driver.validate(backend_ref(name, model))]


def secret_requirements(name: str, model: StorageBackend) -> list[SecretNeed]:
    driver = driver_for(model.spec.storage_type)
    return [
        SecretNeed(need.secret.namespace, need.secret.name, need.keys, need.optional_keys)
        for need in driver.secret_requirements(backend_ref(name, model))
    ]


def csi_driver_name(name: str, model: StorageBackend) -> str | None:
    return driver_for(model.spec.storage_type).csi_driver_name(backend_ref(name, model))


def static_volumes(name: str, model: StorageBackend) -> list[Json]:
    """PV manifests of the existing disks the backend lists (cloud types)."""
    ref = backend_ref(name, model)
    driver = driver_for(model.spec.storage_type)
    return [objects.static_persistent_volume(ref, volume) for volume in driver.static_volumes(ref)]


def allows_many_writers(model: StorageBackend) -> bool:
    """Whether the backend's claims may be ReadWriteMany."""
    return AccessMode.READ_WRITE_MANY in driver_for(model.spec.storage_type).access_modes


def volumes_are_nfs_exports(model: StorageBackend) -> bool:
    return driver_for(model.spec.storage_type).volumes_are_nfs_exports


def probe_addresses(model: StorageBackend) -> list[tuple[str, str, int]]:
    """(as written, host, port) of the servers the operator checks with a TCP connect."""
    if model.spec.iscsi is None:
        return []
    return [(portal, *portal_address(portal)) for portal in model.spec.iscsi.portals]


def _helper_nodes(name: str, nodes: Sequence[Mapping[str, Any]]) -> list[str]:
    """The nodes whose helper of the backend is ready (node label mount.stowage.io/<name>)."""
    label = mount_label(name)
    return [
        node["metadata"]["name"]
        for node in nodes
        if (node["metadata"].get("labels") or {}).get(label) == MOUNT_READY
    ]


def helper_release_request(
    plan: ReleasePlan, model: StorageBackend, nodes: Sequence[Mapping[str, Any]]
) -> dict[str, str] | None:
    """The PV annotations that ask the backend's helpers to delete or archive the volume's
    directory; None when no host-side work is due (Retain, a type without helpers, or a
    node-pinned volume whose node is gone, and its data with it)."""
    if not has_helpers(model):
        return None
    if plan.action is OnDelete.RETAIN or not plan.location.path:
        return None
    if prepared_on_node(model) and plan.location.node not in {
        node["metadata"]["name"] for node in nodes
    }:
        return None
    request = {RELEASE_ANNOTATION: plan.action.value}
    if plan.archive_name:
        request[ARCHIVE_AS_ANNOTATION] = plan.archive_name
    return request


def helper_prepare_request(
    name: str,
    model: StorageBackend,
    volume: Mapping[str, Any],
    nodes: Sequence[Mapping[str, Any]],
    attempt: int,
) -> dict[str, str] | None:
    """The claim annotations that ask one helper to make the planned `volume` (a directory
    with its quota, a tmpfs, a checkout) before the PV is created; None for types without
    helpers.

    A node-pinned volume is made by the helper of its node. For a shared mount the node asked
    is one where the backend is mounted, chosen by a rendezvous hash of the volume name so that
    the work spreads over the nodes; each further attempt asks the next one, in case the last
    is gone. HelperNotReady when no node has the backend mounted."""
    if not has_helpers(model):
        return None
    planned = (volume["metadata"].get("annotations") or {}).get(NODE_ANNOTATION)
    if prepared_on_node(model) and planned:
        return {PREPARE_ON_ANNOTATION: planned}
    mounted = _helper_nodes(name, nodes)
    if not mounted:
        raise HelperNotReady(
            f"no node has StorageBackend {name} mounted "
            f"(node label {mount_label(name)}={MOUNT_READY})"
        )
    order = rendezvous_order(volume["metadata"]["name"], mounted)
    return {PREPARE_ON_ANNOTATION: order[attempt % len(order)]}


def is_prepared(model: StorageBackend, claim: Mapping[str, Any], volume: Mapping[str, Any]) -> bool:
    """A helper has made the planned `volume` of the claim: any helper for a shared mount,
    the helper of the volume's node for a node-pinned one."""
    prepared_by: str | None = ((claim.get("metadata") or {}).get("annotations") or {}).get(
        PREPARED_BY_ANNOTATION
    )
    if not prepared_by:
        return False
    if not prepared_on_node(model):
        return True
    planned: str | None = (volume["metadata"].get("annotations") or {}).get(NODE_ANNOTATION)
    return prepared_by == planned


def mount_order(
    name: str, model: StorageBackend, settings: HelperSettings, nodes: Sequence[Mapping[str, Any]]
) -> Json | None:
    """The ConfigMap of each node's server order for its helper (first: its server, chosen
    with bounded load over the nodes the backend mounts on); None for one server or none."""
    ref = backend_ref(name, model)
    hosts = list(driver_for(model.spec.storage_type).mount_sources(ref))
    if len(hosts) < 2:
        return None
    wanted = model.spec.mount.node_selector.items()
    names = [
        node["metadata"]["name"]
        for node in nodes
        if wanted <= ((node["metadata"].get("labels") or {}).items())
    ]
    order = {node: ",".join(hosts) for node, hosts in bounded_assignment(names, hosts).items()}
    return mount_order_config_map(ref, settings, order)


def helper(name: str, model: StorageBackend, settings: HelperSettings) -> Json | None:
    """The backend's mount-helper DaemonSet; None when its type has none (`has_helpers`)."""
    if not has_helpers(model):
        return None
    ref = backend_ref(name, model)
    driver = driver_for(model.spec.storage_type)
    credentials = bool(secret_requirements(name, model))
    return helper_daemonset(
        ref,
        settings,
        driver.host_directories(ref),
        credentials=credentials,
        nodes=driver.listed_nodes(ref),
    )


def node_side_needs_credentials(name: str, model: StorageBackend) -> bool:
    """The backend's helpers, or the CSI node plugin (which fetches gitRepo checkouts), use
    keys of its Secret."""
    if not secret_requirements(name, model):
        return False
    served_by_csi = driver_for(model.spec.storage_type).served_by_csi(backend_ref(name, model))
    return has_helpers(model) or served_by_csi


def helper_credentials(
    name: str, model: StorageBackend, settings: HelperSettings, data: dict[str, str]
) -> Json | None:
    """The node side's copy of the backend's credentials (`data`: the keys of its Secret that
    the type needs, base64 as read); None for backends whose node side needs none."""
    if not node_side_needs_credentials(name, model):
        return None
    return helper_credentials_secret(backend_ref(name, model), settings, data)


def _pinned_node(name: str, claim: Mapping[str, Any]) -> str | None:
    """The node a node-pinned claim's volume goes to before any choice is made: the
    scheduler's (WaitForFirstConsumer), else the one whose helper was asked to make it."""
    metadata = claim.get("metadata") or {}
    being_prepared = (metadata.get("labels") or {}).get(PREPARE_LABEL) == name
    asked = (metadata.get("annotations") or {}).get(PREPARE_ON_ANNOTATION)
    return selected_node(claim) or (asked if being_prepared else None)


def volume_for_claim(
    name: str,
    model: StorageBackend,
    claim: Mapping[str, Any],
    *,
    volumes: Sequence[Mapping[str, Any]],
    nodes: Sequence[Mapping[str, Any]],
) -> Json:
    """The PV manifest for the claim; raises Unprovisionable when the backend cannot serve it
    (HelperNotReady when it waits for a mount helper).

    Where helpers make node-pinned volumes only nodes with a ready helper are candidates, and
    a node already asked to make the volume keeps it."""
    node = None
    if prepared_on_node(model):
        node = _pinned_node(name, claim)
        ready = set(_helper_nodes(name, nodes))
        if node is not None and node not in ready:
            raise HelperNotReady(
                f"the mount helper of StorageBackend {name} is not ready on node {node} "
                f"(node label {mount_label(name)}={MOUNT_READY})"
            )
        nodes = [candidate for candidate in nodes if candidate["metadata"]["name"] in ready]
        if not nodes:
            raise HelperNotReady(
                f"no node runs a ready mount helper of StorageBackend {name} "
                f"(node label {mount_label(name)}={MOUNT_READY})"
            )
    return planned_volume(name, model, claim_request(claim, node), volumes, nodes)


def release_volume(name: str, model: StorageBackend, volume: Mapping[str, Any]) -> ReleasePlan:
    """What becomes of a released volume's data (the mount helpers carry it out)."""
    driver = driver_for(model.spec.storage_type)
    return driver.release(backend_ref(name, model), ProvisionedVolume.from_manifest(volume))


def lun_to_wipe(model: StorageBackend, volume: Mapping[str, Any]) -> tuple[IscsiSpec, int] | None:
    """The iSCSI backend and LUN to zero before the released `volume` may be deleted; None when
    the backend does not wipe (or the volume records no LUN)."""
    spec = model.spec.iscsi
    if spec is None or not spec.wipe_on_delete:
        return None
    lun = ProvisionedVolume.from_manifest(volume).location.lun
    return None if lun is None else (spec, lun)
