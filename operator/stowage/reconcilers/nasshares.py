"""The NASShare reconciler: NFS and SMB servers for a piece of a StorageBackend, and a claim
for pods.

Level-triggered like the backends: each pass applies what drifted (the data claim, the
ConfigMap with the server configuration, the server Deployment, the Service; the hash
annotation tells), creates the PV and claim for pods (NFS) once the Service has its address, and
reports conditions, endpoints and capacity. Changing the client rules or the read-only users
changes only the ConfigMap, and a change of the users' Secret only that Secret: the running
servers reload them. Deleting the share deletes the PV; the objects in the namespace go with
their owner, and the data with the data claim, as the backend's onDelete says.

The operator never reads the users' Secret: only the SMB server container mounts it.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import kopf
from pydantic import ValidationError

from stowage import metrics
from stowage.api.common import Condition
from stowage.api.nasshare import NASShare, ShareProtocol
from stowage.backends import describe_validation_error, parse_backend
from stowage.drivers.base import node_ready
from stowage.kube import ApiError, Json
from stowage.kube.resources import (
    CONFIG_MAPS,
    DEPLOYMENTS,
    LEASES,
    NAS_SHARES,
    PERSISTENT_VOLUME_CLAIMS,
    PERSISTENT_VOLUMES,
    PODS,
    ROLE_BINDINGS,
    ROLES,
    SERVICE_ACCOUNTS,
    SERVICES,
)
from stowage.objects import nas
from stowage.reconcilers import driving, indexes
from stowage.reconcilers.applying import apply_drifted, create_missing
from stowage.reconcilers.backend_state import owned_manifest
from stowage.reconcilers.context import Runtime
from stowage.reconcilers.indexes import Caches
from stowage.reconcilers.reporting import report
from stowage.status import DEGRADED, READY, desired, is_ready

logger = logging.getLogger(__name__)

# How often a share is looked at again: servers starting and Services getting addresses are
# not events of the share itself.
RECHECK_INTERVAL = 5.0


class Reason:
    SERVING = "Serving"
    INVALID_SPEC = "InvalidSpec"
    BACKEND_NOT_FOUND = "BackendNotFound"
    BACKEND_NOT_READY = "BackendNotReady"
    SERVER_STARTING = "ServerStarting"
    SERVER_NOT_RUNNING = "ServerNotRunning"
    CLAIM_NOT_BOUND = "ClaimNotBound"
    APPLY_FAILED = "ApplyFailed"
    AS_EXPECTED = "AsExpected"
    NO_STANDBY = "NoStandby"


def as_expected() -> Condition:
    return desired(DEGRADED, False, Reason.AS_EXPECTED, "")


@dataclass(frozen=True)
class Outcome:
    ready: Condition
    endpoints: dict[str, str] | None = None
    degraded: Condition = field(default_factory=as_expected)


def parse_share(body: Mapping[str, Any]) -> nas.ShareRef | str:
    metadata = body["metadata"]
    try:
        model = NASShare.model_validate({"spec": body.get("spec") or {}})
    except ValidationError as error:
        return describe_validation_error(error)
    return nas.ShareRef(metadata["namespace"], metadata["name"], metadata["uid"], model.spec)


def lost_nodes(nodes: Iterable[Json]) -> frozenset[str]:
    """Nodes whose kubelet is not Ready: their pods still say Running until evicted."""
    return frozenset(node["metadata"]["name"] for node in nodes if not node_ready(node))


def standby_check(
    share: nas.ShareRef, pods: list[Json], lost: frozenset[str] = frozenset()
) -> Condition:
    """Degraded when fewer server pods run than asked for: no standby to take over. A pod on
    a lost node is not running, whatever its last reported phase."""
    running = 0
    on_lost_nodes: set[str] = set()
    for pod in pods:
        if (pod.get("status") or {}).get("phase") != "Running" or pod["metadata"].get(
            "deletionTimestamp"
        ):
            continue
        node = (pod.get("spec") or {}).get("nodeName")
        if node in lost:
            on_lost_nodes.add(node)
        else:
            running += 1
    if running >= share.spec.replicas:
        return as_expected()
    lost_note = f" (node {', '.join(sorted(on_lost_nodes))} lost)" if on_lost_nodes else ""
    return desired(
        DEGRADED,
        True,
        Reason.NO_STANDBY,
        f"{running} of {share.spec.replicas} server pods running{lost_note}: "
        "no standby to take over",
    )


def not_ready(reason: str, message: str) -> Outcome:
    return Outcome(desired(READY, False, reason, message))


class ShareReconciler:
    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime

    async def reconcile(self, body: Mapping[str, Any], patch: kopf.Patch, caches: Caches) -> None:
        share = parse_share(body)
        observed: dict[str, Any] = {}
        if isinstance(share, str):
            outcome = not_ready(Reason.INVALID_SPEC, share)
        else:
            outcome = await self._serve(body, share, caches)
            observed["capacity"] = share.spec.size
            observed["endpoints"] = outcome.endpoints
        conditions = [outcome.ready, outcome.degraded]
        await report(self._runtime, NAS_SHARES, body, patch, conditions, observed)

    async def _serve(self, body: Mapping[str, Any], share: nas.ShareRef, caches: Caches) -> Outcome:
        backend = indexes.one(caches.backends, share.spec.backend)
        if backend is None:
            return not_ready(
                Reason.BACKEND_NOT_FOUND, f"StorageBackend {share.spec.backend} not found"
            )
        model = parse_backend(backend)
        if isinstance(model, str) or not is_ready(backend.get("status")):
            return not_ready(
                Reason.BACKEND_NOT_READY, f"StorageBackend {share.spec.backend} is not ready"
            )
        share = dataclasses.replace(share, data_over_nfs=driving.volumes_are_nfs_exports(model))
        storage_class = driving.storage_class(share.spec.backend, model)["metadata"]["name"]
        settings = self._runtime.settings
        shared = driving.allows_many_writers(model)
        server = nas.server_deployment(
            share,
            settings.helper_image,
            settings.helper_image_pull_policy,
            model.spec.mount,
            shared_data=shared,
        )
        try:
            claims = [nas.data_claim(share, storage_class, shared=shared)]
            if nas.serves(share, ShareProtocol.NFS):
                claims.append(nas.share_claim(share))
            applied_claims = [
                await apply_drifted(
                    self._runtime, PERSISTENT_VOLUME_CLAIMS, owned_manifest(manifest, body)
                )
                for manifest in claims
            ]
            await apply_drifted(
                self._runtime, CONFIG_MAPS, owned_manifest(nas.config_map(share), body)
            )
            lease = await self._server_identity(body, share)
            deployment = await apply_drifted(
                self._runtime, DEPLOYMENTS, owned_manifest(server, body)
            )
            service = await apply_drifted(
                self._runtime, SERVICES, owned_manifest(nas.service(share), body)
            )
            pods = await self._hurry_rules(share)
        except ApiError as error:
            return not_ready(Reason.APPLY_FAILED, str(error))
        address = ((service or {}).get("spec") or {}).get("clusterIP")
        if not address or address == "None":
            return not_ready(Reason.SERVER_STARTING, "the Service has no address yet")
        if nas.serves(share, ShareProtocol.NFS):
            try:
                volume = nas.share_volume(share, address)
                await create_missing(self._runtime, PERSISTENT_VOLUMES, volume)
            except ApiError as error:
                return not_ready(
                    Reason.APPLY_FAILED, f"PersistentVolume {share.volume_name}: {error}"
                )
        endpoints = nas.endpoints(share, address)
        available = ((deployment or {}).get("status") or {}).get("availableReplicas")
        if not available:
            trouble = nas.server_trouble(pods)
            if trouble:
                return Outcome(desired(READY, False, Reason.SERVER_NOT_RUNNING, trouble), endpoints)
            return Outcome(
                desired(READY, False, Reason.SERVER_STARTING, "the servers are starting"),
                endpoints,
            )
        # applied_claims[0] is the servers' data claim; a second one is the pods' share claim.
        unbound = next(filter(None, (nas.unbound(share, c) for c in applied_claims[1:])), None)
        if unbound:
            # Pods made before the claim is bound may wait for the scheduler's next full retry.
            return Outcome(desired(READY, False, Reason.CLAIM_NOT_BOUND, unbound), endpoints)
        served = ", ".join(endpoints.values())
        active = (lease.get("spec") or {}).get("holderIdentity")
        if active:
            served += f" from server pod {active}"
        ready = desired(READY, True, Reason.SERVING, f"serving {served}")
        return Outcome(
            ready, endpoints, standby_check(share, pods, lost_nodes(indexes.values(caches.nodes)))
        )

    async def _server_identity(self, body: Mapping[str, Any], share: nas.ShareRef) -> Json:
        """The server pods' ServiceAccount and its right to hold the share's Lease; the Lease
        as it is now."""
        runtime = self._runtime
        account = nas.server_service_account(share)
        await apply_drifted(runtime, SERVICE_ACCOUNTS, owned_manifest(account, body))
        await apply_drifted(runtime, ROLES, owned_manifest(nas.server_role(share), body))
        binding = nas.server_role_binding(share)
        await apply_drifted(runtime, ROLE_BINDINGS, owned_manifest(binding, body))
        return await create_missing(
            self._runtime, LEASES, owned_manifest(nas.server_lease(share), body)
        )

    async def _hurry_rules(self, share: nas.ShareRef) -> list[Json]:
        """Marks each server pod with the rules it should serve, and returns the pods. The
        kubelet refreshes a pod's ConfigMap files when the pod changes (otherwise only on its
        periodic sync, a minute or more), and the server reloads them as soon as they change."""
        rules = nas.rules_fingerprint(share)
        pods = await self._runtime.call(
            self._runtime.kube.list,
            PODS,
            namespace=share.namespace,
            label_selector=nas.server_selector(share),
        )
        for pod in pods:
            annotations = pod["metadata"].get("annotations") or {}
            if annotations.get(nas.RULES_ANNOTATION) != rules:
                patch = {"metadata": {"annotations": {nas.RULES_ANNOTATION: rules}}}
                await self._runtime.call(
                    self._runtime.kube.merge_patch,
                    PODS,
                    pod["metadata"]["name"],
                    patch,
                    namespace=share.namespace,
                )
        return list(pods)

    async def finalize(self, body: Mapping[str, Any]) -> None:
        """The PV is the one object the namespace's garbage collection cannot reach."""
        volume = nas.share_volume_name(body["metadata"]["uid"])
        await self._runtime.call(self._runtime.kube.delete, PERSISTENT_VOLUMES, volume)
        logger.info(
            "NASShare %s/%s finalized", body["metadata"]["namespace"], body["metadata"]["name"]
        )


def register(registry: kopf.OperatorRegistry, runtime: Runtime) -> None:
    reconciler = ShareReconciler(runtime)
    selector = (NAS_SHARES.api_version, NAS_SHARES.plural)

    @kopf.on.resume(*selector, id="reconcile", registry=registry)
    @kopf.on.create(*selector, id="reconcile", registry=registry)
    @kopf.on.update(*selector, id="reconcile", registry=registry)
    @kopf.timer(
        *selector,
        id="recheck",
        interval=RECHECK_INTERVAL,
        initial_delay=RECHECK_INTERVAL,
        registry=registry,
    )
    async def reconcile_share(body: kopf.Body, patch: kopf.Patch, **kwargs: Any) -> None:
        with metrics.reconciling(NAS_SHARES.plural):
            await reconciler.reconcile(body, patch, Caches.of(kwargs))

    @kopf.on.delete(*selector, id="finalize", registry=registry)
    async def finalize_share(body: kopf.Body, **kwargs: Any) -> None:
        with metrics.reconciling(NAS_SHARES.plural):
            await reconciler.finalize(body)
