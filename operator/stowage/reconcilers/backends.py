"""The StorageBackend reconciler: StorageClass, static volumes, status and Events.

Level-triggered: the same `reconcile` runs on resume, create, update and every resync interval,
and writes only what differs (the StorageClass when its content hash changed, the status fields
that changed). The operator writes the status of a backend, never its spec.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Mapping
from typing import Any

import kopf

from stowage import metrics
from stowage.api.backend import StorageBackend
from stowage.api.common import Condition
from stowage.backends import parse_backend
from stowage.drivers.base import MOUNT_FAILED, MOUNT_READY
from stowage.kube import AlreadyExistsError, ApiError, InvalidError, Json
from stowage.kube.resources import (
    CONFIG_MAPS,
    DAEMON_SETS,
    PERSISTENT_VOLUMES,
    SECRETS,
    STORAGE_BACKENDS,
    STORAGE_CLASSES,
)
from stowage.kube.secrets import secret_data, secret_keys
from stowage.objects.helper_daemonset import HelperSettings
from stowage.reconcilers import driving, indexes
from stowage.reconcilers.applying import apply_drifted
from stowage.reconcilers.backend_state import (
    NODE_LOST,
    Facts,
    SecretFinding,
    degraded_condition,
    immutable_fields_differ,
    is_owned_by,
    mount_failures,
    needs_apply,
    node_mounts,
    owned_manifest,
    ready_condition,
    waiting_for_volumes,
)
from stowage.reconcilers.claims import is_provisioned_by_us
from stowage.reconcilers.context import Runtime
from stowage.reconcilers.indexes import Caches, Index
from stowage.reconcilers.reporting import report

logger = logging.getLogger(__name__)


def is_unbound_static_volume(volume: Mapping[str, Any]) -> bool:
    """A PV the backend made for an existing disk, not bound now (Available or Released).

    Deleting such a PV object never touches the disk (its reclaim policy is Retain). Volumes
    provisioned for claims hold data stowage manages: deletion waits for those.
    """
    provisioned = is_provisioned_by_us(volume)
    phase = (volume.get("status") or {}).get("phase")
    return not provisioned and phase != "Bound"


PROBE_TIMEOUT = 2.0


async def tcp_probe(host: str, port: int, timeout: float = PROBE_TIMEOUT) -> str | None:
    """None when a TCP connection opens within `timeout`, else why not (refused, timeout)."""
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except TimeoutError:
        return f"no answer within {timeout:g} s"
    except ConnectionRefusedError:
        return "connection refused"
    except OSError as error:
        return error.strerror or type(error).__name__
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return None


async def unreachable_servers(addresses: list[tuple[str, str, int]]) -> tuple[str, ...]:
    """`portal: why` for each address that refuses or ignores a TCP connect (all at once)."""
    results = await asyncio.gather(*(tcp_probe(host, port) for _, host, port in addresses))
    return tuple(
        f"{shown}: {why}" for (shown, _, _), why in zip(addresses, results, strict=True) if why
    )


class BackendReconciler:
    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime

    async def reconcile(
        self,
        body: Mapping[str, Any],
        patch: kopf.Patch,
        storage_classes: Index,
        csi_drivers: Index,
        volumes: list[Json],
        records: list[Json],
        nodes: list[Json],
    ) -> None:
        """`volumes`: the backend's PVs of the stowage.io/provisioner; `records`: the
        BackendVolumes of its CSI volumes."""
        name = body["metadata"]["name"]
        model = parse_backend(body)
        observed: dict[str, Any] = {"volumes": len(volumes) + len(records)}
        if isinstance(model, str):
            facts = Facts(spec_problems=(model,))
            storage_type = None
        else:
            facts = await self._gather(body, model, storage_classes, csi_drivers, volumes, nodes)
            storage_type = model.spec.storage_type
            observed["storageType"] = storage_type.value
            if driving.has_helpers(model):
                mounts = node_mounts(name, nodes)
                failed = tuple(mounts.get(MOUNT_FAILED, ()))
                lost = tuple(mounts.get(NODE_LOST, ()))
                observed["nodes"] = {
                    "mounted": len(mounts.get(MOUNT_READY, ())),
                    "failed": len(failed),
                    "lost": len(lost),
                }
                facts = dataclasses.replace(
                    facts,
                    mount_failed_nodes=failed,
                    mounted_nodes=tuple(mounts.get(MOUNT_READY, ())),
                    lost_nodes=lost,
                    mount_failures=mount_failures(name, nodes),
                )
        conditions = [ready_condition(facts, storage_type), degraded_condition(facts)]
        await self._report(body, patch, conditions, observed)
        metrics.BACKEND_VOLUMES.labels(name).set(len(volumes))
        metrics.BACKEND_READY.labels(name).set(1 if conditions[0].status.value == "True" else 0)

    async def _gather(
        self,
        body: Mapping[str, Any],
        model: StorageBackend,
        storage_classes: Index,
        csi_drivers: Index,
        volumes: list[Json],
        nodes: list[Json],
    ) -> Facts:
        name = body["metadata"]["name"]
        problems = tuple(driving.validate(name, model))
        if problems:
            return Facts(spec_problems=problems)
        secrets = tuple(
            [
                SecretFinding(
                    requirement.namespace,
                    requirement.name,
                    requirement.keys,
                    await self._runtime.call(
                        secret_keys, self._runtime.kube, requirement.namespace, requirement.name
                    ),
                )
                for requirement in driving.secret_requirements(name, model)
            ]
        )
        class_manifest = owned_manifest(driving.storage_class(name, model), body)
        class_name = class_manifest["metadata"]["name"]
        observed_class = indexes.one(storage_classes, class_name)
        foreign = observed_class is not None and not is_owned_by(observed_class, body)
        class_error = None
        if not foreign:
            class_error = await self._sync_storage_class(class_manifest, observed_class)
        csi_driver = driving.csi_driver_name(name, model)
        static_errors = await self._sync_static_volumes(body, model, volumes)
        helper_error = await self._sync_helper(body, model, nodes)
        unreachable = await unreachable_servers(driving.probe_addresses(model))
        return Facts(
            secrets=secrets,
            csi_driver=csi_driver,
            csi_driver_installed=csi_driver is None
            or indexes.one(csi_drivers, csi_driver) is not None,
            storage_class_name=class_name,
            storage_class_error=class_error,
            storage_class_foreign=foreign,
            static_volume_errors=static_errors,
            helper_error=helper_error,
            unreachable_servers=unreachable,
        )

    async def _sync_storage_class(self, manifest: Json, observed: Json | None) -> str | None:
        """Applies the StorageClass if it drifted; recreates it if an immutable field changed."""
        if not needs_apply(manifest, observed):
            return None
        kube = self._runtime.kube
        name = manifest["metadata"]["name"]
        try:
            if observed is not None and immutable_fields_differ(manifest, observed):
                logger.info("StorageClass %s: immutable fields changed, recreating it", name)
                await self._runtime.call(
                    kube.delete, STORAGE_CLASSES, name, uid=observed["metadata"]["uid"]
                )
            await self._runtime.call(kube.apply, STORAGE_CLASSES, manifest)
        except InvalidError as error:
            return f"StorageClass {name} was refused: {error.message}"
        except ApiError as error:
            return f"StorageClass {name} could not be written: {error}"
        logger.info("StorageClass %s applied", name)
        return None

    async def _sync_helper(
        self, body: Mapping[str, Any], model: StorageBackend, nodes: list[Json]
    ) -> str | None:
        """Applies the backend's mount-helper DaemonSet, and the ConfigMap of each node's
        server order, when they are missing or drifted; and the node side's copy of the
        backend's credentials."""
        name = body["metadata"]["name"]
        try:
            await self._sync_helper_credentials(body, model)
        except ApiError as error:
            return f"the node side's copy of the credentials: {error}"
        desired_helper = driving.helper(name, model, self._helpers())
        if desired_helper is None:
            return None
        order = driving.mount_order(name, model, self._helpers(), nodes)
        daemonset = owned_manifest(desired_helper, body)
        metadata = daemonset["metadata"]
        try:
            if order is not None:
                await apply_drifted(self._runtime, CONFIG_MAPS, owned_manifest(order, body))
            await apply_drifted(self._runtime, DAEMON_SETS, daemonset)
        except ApiError as error:
            return f"helper of {metadata['namespace']}/{metadata['name']}: {error}"
        return None

    async def _sync_helper_credentials(
        self, body: Mapping[str, Any], model: StorageBackend
    ) -> None:
        """Copies the keys the node side needs from the backend's Secret into its own (in the
        helper namespace, which the helpers' pods mount and the CSI node plugin reads); the
        copy follows changes of the original.
        A missing original is reported by the Ready condition; the helpers then say why
        they cannot mount."""
        name = body["metadata"]["name"]
        if not driving.node_side_needs_credentials(name, model):
            return
        data: dict[str, str] = {}
        for need in driving.secret_requirements(name, model):
            keys = (*need.keys, *need.optional_keys)
            found = await self._runtime.call(
                secret_data, self._runtime.kube, need.namespace, need.name, keys
            )
            if found is None:
                return
            data.update(found)
        manifest = driving.helper_credentials(name, model, self._helpers(), data)
        if manifest is not None:
            await apply_drifted(self._runtime, SECRETS, owned_manifest(manifest, body))

    def _helpers(self) -> HelperSettings:
        settings = self._runtime.settings
        return HelperSettings(
            namespace=settings.helpers_namespace,
            image=settings.helper_image,
            image_pull_policy=settings.helper_image_pull_policy,
            service_account=settings.helper_service_account,
        )

    async def _sync_static_volumes(
        self, body: Mapping[str, Any], model: StorageBackend, volumes: list[Json]
    ) -> tuple[str, ...]:
        """Creates the PVs of existing disks that are missing; never changes existing ones."""
        existing = {volume["metadata"]["name"] for volume in volumes}
        errors = []
        for manifest in driving.static_volumes(body["metadata"]["name"], model):
            if manifest["metadata"]["name"] in existing:
                continue
            owned = owned_manifest(manifest, body)
            try:
                await self._runtime.call(self._runtime.kube.create, PERSISTENT_VOLUMES, owned)
            except AlreadyExistsError:
                continue
            except ApiError as error:
                errors.append(f"PersistentVolume {manifest['metadata']['name']}: {error.message}")
        return tuple(errors)

    async def _report(
        self,
        body: Mapping[str, Any],
        patch: kopf.Patch,
        conditions: list[Condition],
        observed: dict[str, Any],
    ) -> None:
        await report(self._runtime, STORAGE_BACKENDS, body, patch, conditions, observed)

    async def finalize(
        self,
        body: Mapping[str, Any],
        patch: kopf.Patch,
        storage_classes: Index,
        volumes: list[Json],
        records: list[Json],
    ) -> None:
        """Waits while volumes of the backend exist (PVs, and CSI volumes by their records), then
        removes its helpers and StorageClass."""
        name = body["metadata"]["name"]
        unclaimed_static = [v for v in volumes if is_unbound_static_volume(v)]
        for volume in unclaimed_static:
            await self._runtime.call(
                self._runtime.kube.delete,
                PERSISTENT_VOLUMES,
                volume["metadata"]["name"],
                uid=volume["metadata"]["uid"],
            )
        in_use = [v["metadata"]["name"] for v in volumes if v not in unclaimed_static]
        in_use += [record["metadata"]["name"] for record in records]
        if in_use:
            await self._report(
                body, patch, [waiting_for_volumes(in_use)], {"volumes": len(volumes) + len(records)}
            )
            raise kopf.TemporaryError(
                f"{len(in_use)} volume(s) still exist", delay=self._runtime.settings.resync_interval
            )
        model = parse_backend(body)
        helper = None if isinstance(model, str) else driving.helper(name, model, self._helpers())
        if helper is not None:
            # The agents see their backend going, unmount and remove their node labels.
            await self._runtime.call(
                self._runtime.kube.delete,
                DAEMON_SETS,
                helper["metadata"]["name"],
                namespace=helper["metadata"]["namespace"],
            )
        for storage_class in indexes.values(storage_classes):
            if is_owned_by(storage_class, body):
                await self._runtime.call(
                    self._runtime.kube.delete,
                    STORAGE_CLASSES,
                    storage_class["metadata"]["name"],
                    uid=storage_class["metadata"]["uid"],
                )
        metrics.forget_backend(body["metadata"]["name"])
        logger.info("StorageBackend %s finalized", body["metadata"]["name"])


def register(registry: kopf.OperatorRegistry, runtime: Runtime) -> None:
    reconciler = BackendReconciler(runtime)
    selector = (STORAGE_BACKENDS.api_version, STORAGE_BACKENDS.plural)

    @kopf.on.resume(*selector, id="reconcile", registry=registry)
    @kopf.on.create(*selector, id="reconcile", registry=registry)
    @kopf.on.update(*selector, id="reconcile", registry=registry)
    @kopf.timer(
        *selector,
        id="resync",
        interval=runtime.settings.resync_interval,
        initial_delay=runtime.settings.resync_interval,
        registry=registry,
    )
    async def reconcile_backend(
        body: kopf.Body, name: str, patch: kopf.Patch, **kwargs: Any
    ) -> None:
        caches = Caches.of(kwargs)
        with metrics.reconciling(STORAGE_BACKENDS.plural):
            await reconciler.reconcile(
                body,
                patch,
                caches.storage_classes,
                caches.csi_drivers,
                indexes.all_of(caches.volumes_by_backend, name),
                indexes.all_of(caches.records_by_backend, name),
                indexes.values(caches.nodes),
            )

    @kopf.on.delete(*selector, id="finalize", registry=registry)
    async def finalize_backend(
        body: kopf.Body, name: str, patch: kopf.Patch, **kwargs: Any
    ) -> None:
        caches = Caches.of(kwargs)
        with metrics.reconciling(STORAGE_BACKENDS.plural):
            await reconciler.finalize(
                body,
                patch,
                caches.storage_classes,
                indexes.all_of(caches.volumes_by_backend, name),
                indexes.all_of(caches.records_by_backend, name),
            )
