"""The dynamic provisioner (the external-provisioner protocol, as sig-storage-lib does it).

The PV controller of kube-controller-manager hands a claim to us by annotating it with
`volume.kubernetes.io/storage-provisioner: stowage.io/provisioner`; we create the volume
`pvc-<claim uid>` pre-bound to the claim, and the PV controller binds the two. Released volumes
with reclaim policy Delete are released on the data side and deleted.

For backends with mount helpers the claim's directory (and its quota) is made before the PV
exists: the claim is labelled `stowage.io/prepare=<backend>` and annotated with the node whose
helper is to make it; the helper answers on the claim, which is a claim event of its own.

Per claim: one PV create and one Event, no reads (kopf's indexes hold the rest), plus two claim
patches where a helper prepares the directory.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import kopf

from stowage import metrics
from stowage.api.backend import IscsiSpec
from stowage.backends import parse_backend
from stowage.clients.iscsi import WipeError
from stowage.drivers.base import (
    BACKEND_LABEL,
    PATH_ANNOTATION,
    PREPARE_LABEL,
    PREPARE_ON_ANNOTATION,
    PREPARED_BY_ANNOTATION,
    RELEASE_ANNOTATION,
    RELEASED_BY_ANNOTATION,
)
from stowage.drivers.common import describe_size
from stowage.kube import AlreadyExistsError, ApiError, Json
from stowage.kube.events import post_event
from stowage.kube.resources import PERSISTENT_VOLUME_CLAIMS, PERSISTENT_VOLUMES, Resource
from stowage.reconcilers import driving, indexes
from stowage.reconcilers.claims import (
    PROVISIONED_BY_ANNOTATION,
    PROVISIONER,
    backend_of_class,
    claim_key,
    describe_claim,
    needs_volume,
    volume_name,
    waits_for_consumer,
)
from stowage.reconcilers.context import Runtime
from stowage.reconcilers.indexes import Caches
from stowage.reconcilers.retry import Retry
from stowage.reconcilers.wiping import Wiper
from stowage.status import is_ready

logger = logging.getLogger(__name__)

PROVISIONING_FAILED = "ProvisioningFailed"
PROVISIONING_SUCCEEDED = "ProvisioningSucceeded"
VOLUME_DELETED = "VolumeDeleted"
LUN_WIPED = "LunWiped"
WIPE_FAILED = "WipeFailed"
# How soon a claim is tried again, by why it failed (doubling up to five minutes).
QUICK_RETRY = 2.0
# A released volume whose directory the helpers have not yet removed is looked at again
# this often (the helper's own PV update normally comes first).
HELPER_RELEASE_RETRY = 30.0
SLOW_RETRY = 30.0
# A helper asked to prepare a claim's directory that has not answered in this time is taken to
# be gone: the next mounted node is asked.
HELPER_PREPARE_TIMEOUT = 20.0


@dataclass(frozen=True)
class Failure:
    reason: str  # metric label
    message: str  # Event message
    retry_after: float


@dataclass(frozen=True)
class Asking:
    attempt: int
    node: str
    since: float


class InFlight:
    """Volumes created but not yet in the index, planned around as if they were.

    Claims are handled concurrently and the index learns of a new PV only from the watch: a
    claim planned in between would otherwise get the same LUN (or count the same free space)
    as the one before it. Planning is synchronous, so reading and adding need no lock.
    """

    def __init__(self) -> None:
        self._by_backend: dict[str, dict[str, Json]] = {}

    def with_indexed(self, backend: str, indexed: list[Json]) -> list[Json]:
        pending = self._by_backend.get(backend, {})
        for name in {volume["metadata"]["name"] for volume in indexed} & pending.keys():
            del pending[name]  # the index has it now
        return [*indexed, *pending.values()]

    def add(self, backend: str, volume: Json) -> None:
        self._by_backend.setdefault(backend, {})[volume["metadata"]["name"]] = volume

    def discard(self, backend: str, volume: Json) -> None:
        self._by_backend.get(backend, {}).pop(volume["metadata"]["name"], None)


class Provisioner:
    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime
        self._in_flight = InFlight()
        # The last failure Event per claim: the same message is not posted again on each retry.
        self._last_event: dict[str, str] = {}
        # Which helper is asked to prepare each claim's directory, since when.
        self._asking: dict[str, Asking] = {}
        # Released iSCSI volumes whose LUN is being zeroed, or is zeroed (by volume UID).
        self._wiper = Wiper(runtime.kube)
        self._wiped: set[str] = set()

    async def on_claim(self, claim: Mapping[str, Any], deleted: bool, caches: Caches) -> None:
        key = claim_key(claim)
        if deleted or not needs_volume(claim):
            self._runtime.retrier.forget(key)
            self._last_event.pop(key, None)
            self._asking.pop(key, None)
            if not deleted and is_being_prepared(claim):
                await self._forget_preparation(dict(claim))
            return
        snapshot = copy.deepcopy(dict(claim))

        async def attempt() -> Retry | None:
            return await self.provision(snapshot, caches)

        await self._runtime.retrier.run_now(key, attempt)

    async def provision(self, claim: Json, caches: Caches) -> Retry | None:
        started = time.monotonic()
        storage_class_name = (claim.get("spec") or {}).get("storageClassName") or ""
        storage_class = indexes.one(caches.storage_classes, storage_class_name)
        if storage_class is None:
            return await self._failed(
                claim,
                "",
                Failure(
                    "StorageClassNotFound",
                    f"StorageClass {storage_class_name} not found",
                    QUICK_RETRY,
                ),
            )
        if waits_for_consumer(claim, storage_class):
            return None  # the scheduler's node choice will come as a new event
        backend_name = backend_of_class(storage_class) or ""
        existing = indexes.all_of(caches.volumes_by_backend, backend_name)
        if any(v["metadata"]["name"] == volume_name(claim) for v in existing):
            # Created on an earlier event; the PV controller binds it.
            await self._forget_preparation(claim)
            return None
        outcome = self._plan(claim, backend_name, caches)
        if isinstance(outcome, Failure):
            return await self._failed(claim, backend_name, outcome)
        waiting = await self._prepared_by_helper(claim, backend_name, caches, outcome)
        if waiting is not None:
            return waiting
        self._in_flight.add(backend_name, outcome)
        try:
            await self._runtime.call(self._runtime.kube.create, PERSISTENT_VOLUMES, outcome)
        except AlreadyExistsError:
            logger.debug(
                "volume %s of claim %s exists already",
                outcome["metadata"]["name"],
                describe_claim(claim),
            )
            return None
        except ApiError as error:
            self._in_flight.discard(backend_name, outcome)
            return await self._failed(
                claim,
                backend_name,
                Failure("ApiError", f"creating the volume: {error}", QUICK_RETRY),
            )
        self._succeeded(claim, backend_name, outcome, started)
        await self._forget_preparation(claim)
        await self._event(
            claim,
            warning=False,
            reason=PROVISIONING_SUCCEEDED,
            message=f"Successfully provisioned volume {outcome['metadata']['name']} from "
            f"StorageBackend {backend_name}",
        )
        return None

    def _plan(self, claim: Json, backend_name: str, caches: Caches) -> Json | Failure:
        """The volume to create, or why there is none (from the caches only, no I/O)."""
        backend = indexes.one(caches.backends, backend_name)
        if backend is None:
            return Failure(
                "BackendNotFound", f"StorageBackend {backend_name} not found", QUICK_RETRY
            )
        if (backend.get("metadata") or {}).get("deletionTimestamp"):
            return Failure(
                "BackendDeleting", f"StorageBackend {backend_name} is being deleted", SLOW_RETRY
            )
        if not is_ready(backend.get("status")):
            return Failure(
                "BackendNotReady", f"StorageBackend {backend_name} is not ready", QUICK_RETRY
            )
        model = parse_backend(backend)
        if isinstance(model, str):
            return Failure("InvalidBackend", model, SLOW_RETRY)
        try:
            return driving.volume_for_claim(
                backend_name,
                model,
                claim,
                volumes=[
                    *self._in_flight.with_indexed(
                        backend_name, indexes.all_of(caches.volumes_by_backend, backend_name)
                    ),
                    *self._wiper.volumes_of(backend_name),  # their LUN is in use until zeroed
                ],
                nodes=indexes.values(caches.nodes),
            )
        except driving.HelperNotReady as error:
            return Failure("NotMounted", str(error), QUICK_RETRY)
        except driving.Unprovisionable as error:
            return Failure("Unprovisionable", str(error), SLOW_RETRY)

    async def _prepared_by_helper(
        self, claim: Json, backend_name: str, caches: Caches, volume: Json
    ) -> Retry | None:
        """None once the claim's planned `volume` is made on the node side (or the type needs
        no helper for it); otherwise asks a helper, or the next one when the last did not
        answer in time."""
        model = parse_backend(indexes.one(caches.backends, backend_name) or {})
        if isinstance(model, str) or not driving.has_helpers(model):
            return None
        metadata = claim["metadata"]
        annotations = metadata.get("annotations") or {}
        key = claim_key(claim)
        if driving.is_prepared(model, claim, volume):
            self._asking.pop(key, None)
            return None
        now = time.monotonic()
        asking = self._asking.get(key)
        attempt = 0 if asking is None else asking.attempt
        if asking is not None and now - asking.since >= HELPER_PREPARE_TIMEOUT:
            attempt += 1
        try:
            request = driving.helper_prepare_request(
                backend_name, model, volume, indexes.values(caches.nodes), attempt
            )
        except driving.HelperNotReady as error:
            return await self._failed(
                claim, backend_name, Failure("NotMounted", str(error), QUICK_RETRY)
            )
        if request is None:
            return None
        node = request[PREPARE_ON_ANNOTATION]
        if asking is None or (asking.attempt, asking.node) != (attempt, node):
            self._asking[key] = Asking(attempt, node, now)
        labels = metadata.get("labels") or {}
        if (
            labels.get(PREPARE_LABEL) != backend_name
            or PREPARED_BY_ANNOTATION in annotations  # by a node no longer asked
            or any(annotations.get(name) != value for name, value in request.items())
        ):
            patch = {
                "metadata": {
                    "labels": {PREPARE_LABEL: backend_name},
                    "annotations": {**request, PREPARED_BY_ANNOTATION: None},
                }
            }
            try:
                await self._patch_claim(claim, patch)
            except ApiError as error:
                logger.warning("asking a helper to prepare %s failed: %s", key, error)
                return Retry("ApiError", QUICK_RETRY)
            logger.info(
                "claim %s: asked the helper on %s to make its volume",
                describe_claim(claim),
                node,
            )
        return Retry("WaitingForHelper", HELPER_PREPARE_TIMEOUT)

    async def _forget_preparation(self, claim: Json) -> None:
        """Takes the preparation label and annotations off the claim once its PV exists."""
        if not is_being_prepared(claim):
            return
        patch = {
            "metadata": {
                "labels": {PREPARE_LABEL: None},
                "annotations": {PREPARE_ON_ANNOTATION: None, PREPARED_BY_ANNOTATION: None},
            }
        }
        try:
            await self._patch_claim(claim, patch)
        except ApiError as error:  # harmless: helpers only look at claims they are asked for
            logger.warning("claim %s keeps its preparation marks: %s", describe_claim(claim), error)

    async def _patch_claim(self, claim: Json, patch: Json) -> None:
        metadata = claim["metadata"]
        await self._runtime.call(
            self._runtime.kube.merge_patch,
            PERSISTENT_VOLUME_CLAIMS,
            metadata["name"],
            patch,
            namespace=metadata["namespace"],
        )

    def _succeeded(self, claim: Json, backend: str, volume: Json, started: float) -> None:
        self._last_event.pop(claim_key(claim), None)
        metrics.VOLUMES_PROVISIONED.labels(backend).inc()
        metrics.PROVISIONING_DURATION.labels(backend).observe(time.monotonic() - started)
        created = datetime.fromisoformat(claim["metadata"]["creationTimestamp"])
        metrics.CLAIM_WAIT.labels(backend).observe(
            max(0.0, (datetime.now(UTC) - created).total_seconds())
        )
        logger.info(
            "provisioned volume %s for claim %s from backend %s",
            volume["metadata"]["name"],
            describe_claim(claim),
            backend,
        )

    async def _failed(self, claim: Json, backend: str, failure: Failure) -> Retry:
        metrics.PROVISIONING_FAILURES.labels(backend, failure.reason).inc()
        key = claim_key(claim)
        logger.info(
            "claim %s not provisioned (%s): %s",
            describe_claim(claim),
            failure.reason,
            failure.message,
        )
        if self._last_event.get(key) != failure.message:
            self._last_event[key] = failure.message
            await self._event(
                claim, warning=True, reason=PROVISIONING_FAILED, message=failure.message
            )
        return Retry(failure.reason, failure.retry_after)

    async def _event(
        self,
        body: Json,
        *,
        warning: bool,
        reason: str,
        message: str,
        resource: Resource = PERSISTENT_VOLUME_CLAIMS,
    ) -> None:
        involved = {"apiVersion": "v1", "kind": resource.kind, **body}
        await self._runtime.call(
            post_event,
            self._runtime.kube,
            involved,
            warning=warning,
            reason=reason,
            message=message,
        )

    async def on_volume(self, volume: Mapping[str, Any], deleted: bool, caches: Caches) -> None:
        metadata = volume["metadata"]
        key = f"volume/{metadata['name']}/{metadata['uid']}"
        spec = volume.get("spec") or {}
        released = (volume.get("status") or {}).get("phase") == "Released"
        if deleted:  # gone before any plan saw it in the index: no longer planned around
            backend = (metadata.get("labels") or {}).get(BACKEND_LABEL, "")
            self._in_flight.discard(backend, dict(volume))
        if deleted or not released or spec.get("persistentVolumeReclaimPolicy") != "Delete":
            self._runtime.retrier.forget(key)
            self._last_event.pop(f"wipe/{metadata['uid']}", None)
            self._wiped.discard(metadata["uid"])
            return
        snapshot = copy.deepcopy(dict(volume))

        async def attempt() -> Retry | None:
            return await self.reclaim(snapshot, caches)

        await self._runtime.retrier.run_now(key, attempt)

    async def reclaim(self, volume: Json, caches: Caches) -> Retry | None:
        """Releases the data of a Released volume (reclaim policy Delete), then deletes it."""
        metadata = volume["metadata"]
        annotations = metadata.get("annotations") or {}
        backend_name = (metadata.get("labels") or {}).get(BACKEND_LABEL, "")
        backend = indexes.one(caches.backends, backend_name)
        model = parse_backend(backend) if backend is not None else None
        if model is not None and not isinstance(model, str):
            wiping = driving.lun_to_wipe(model, volume)
            # A volume being deleted (its Released event came first) is not wiped again.
            terminating = bool(metadata.get("deletionTimestamp"))
            if wiping is not None and metadata["uid"] not in self._wiped and not terminating:
                if self._wiper.is_running(metadata["uid"]):
                    return None  # that wipe deletes the volume when it is done
                failed = await self._wipe(volume, *wiping)
                if failed is not None:
                    return failed
            release = driving.release_volume(backend_name, model, volume)
            request = driving.helper_release_request(release, model, indexes.values(caches.nodes))
            if request is not None and not annotations.get(RELEASED_BY_ANNOTATION):
                return await self._hand_release_to_helpers(volume, request)
            logger.info(
                "volume %s released: data %s (%s)",
                metadata["name"],
                release.action.value,
                release.location.path or release.location.block_volume or "no host-side data",
            )
        else:
            logger.warning(
                "volume %s: backend %s is gone, deleting the volume without releasing its data",
                metadata["name"],
                backend_name,
            )
        try:
            deleted = await self._runtime.call(
                self._runtime.kube.delete, PERSISTENT_VOLUMES, metadata["name"], uid=metadata["uid"]
            )
        except ApiError as error:
            logger.warning("deleting volume %s failed: %s", metadata["name"], error)
            return Retry("ApiError", QUICK_RETRY)
        if deleted:
            metrics.VOLUMES_RECLAIMED.labels(backend_name, "Delete").inc()
            logger.info("deleted released volume %s of backend %s", metadata["name"], backend_name)
        return None

    async def _wipe(self, volume: Json, spec: IscsiSpec, lun: int) -> Retry | None:
        """Zeroes the volume's LUN; while that fails the volume stays (Released), its LUN in
        use, with a Warning Event on it saying why."""
        metadata = volume["metadata"]
        key = f"wipe/{metadata['uid']}"
        try:
            wiped = await self._wiper.wipe(volume, spec, lun)
        except (WipeError, ApiError) as error:
            message = f"LUN {lun} not zeroed, the volume stays until it is: {error}"
            logger.warning("volume %s: %s", metadata["name"], message)
            if self._last_event.get(key) != message:
                self._last_event[key] = message
                await self._event(
                    volume,
                    warning=True,
                    reason=WIPE_FAILED,
                    message=message,
                    resource=PERSISTENT_VOLUMES,
                )
            return Retry(WIPE_FAILED, SLOW_RETRY)
        self._last_event.pop(key, None)
        self._wiped.add(metadata["uid"])
        message = (
            f"LUN {lun} of {spec.iqn} zeroed through {wiped.portal}: "
            f"{describe_size(wiped.size_bytes)} in {wiped.seconds:.1f} s "
            f"({wiped.mib_per_second:.0f} MiB/s)"
        )
        logger.info("volume %s: %s", metadata["name"], message)
        await self._event(
            volume, warning=False, reason=LUN_WIPED, message=message, resource=PERSISTENT_VOLUMES
        )
        return None

    async def _hand_release_to_helpers(self, volume: Json, request: dict[str, str]) -> Retry:
        """Asks the backend's helpers (through the PV) to delete or archive the directory; the
        PV is deleted once a helper has marked it done, which is a PV event of its own."""
        metadata = volume["metadata"]
        annotations = metadata.get("annotations") or {}
        if any(annotations.get(key) != value for key, value in request.items()):
            try:
                await self._runtime.call(
                    self._runtime.kube.merge_patch,
                    PERSISTENT_VOLUMES,
                    metadata["name"],
                    {"metadata": {"annotations": request}},
                )
            except ApiError as error:
                logger.warning(
                    "asking the helpers to release %s failed: %s", metadata["name"], error
                )
                return Retry("ApiError", QUICK_RETRY)
            logger.info(
                "volume %s released: the mount helpers %s its directory %s",
                metadata["name"],
                request[RELEASE_ANNOTATION],
                annotations.get(PATH_ANNOTATION, ""),
            )
        return Retry("WaitingForHelper", HELPER_RELEASE_RETRY)


def is_being_prepared(claim: Mapping[str, Any]) -> bool:
    return PREPARE_LABEL in ((claim.get("metadata") or {}).get("labels") or {})


def register(registry: kopf.OperatorRegistry, runtime: Runtime) -> None:
    provisioner = Provisioner(runtime)

    @kopf.on.event(
        PERSISTENT_VOLUME_CLAIMS.api_version,
        PERSISTENT_VOLUME_CLAIMS.plural,
        id="provision",
        registry=registry,
    )
    async def claim_event(event: kopf.RawEvent, body: kopf.Body, **kwargs: Any) -> None:
        with metrics.reconciling(PERSISTENT_VOLUME_CLAIMS.plural):
            await provisioner.on_claim(
                body, deleted=event.get("type") == "DELETED", caches=Caches.of(kwargs)
            )

    @kopf.on.event(
        PERSISTENT_VOLUMES.api_version,
        PERSISTENT_VOLUMES.plural,
        annotations={PROVISIONED_BY_ANNOTATION: PROVISIONER},
        id="reclaim",
        registry=registry,
    )
    async def volume_event(event: kopf.RawEvent, body: kopf.Body, **kwargs: Any) -> None:
        with metrics.reconciling(PERSISTENT_VOLUMES.plural):
            await provisioner.on_volume(
                body, deleted=event.get("type") == "DELETED", caches=Caches.of(kwargs)
            )
