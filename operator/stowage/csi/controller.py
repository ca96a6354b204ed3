"""The CSI Controller service, in the operator's pod behind the csi-provisioner sidecar.

CreateVolume plans the volume with the backend's driver (the same plan the in-tree provisioner
makes) and records it as a BackendVolume named by the volume's ID; a repeated call is answered
from the record. A volume whose directory is in an export on a server (nfs) has it made there
first (stowage.csi.remote_data). DeleteVolume releases such a directory, then deletes
the record; where data is to be released on a node, the record's finalizer holds it until that
node's plugin has released the data (a volume in a backend mount is handed to a node that has
the mount ready). DeleteVolume waits
a little for that, and answers UNAVAILABLE while it is not done, so that the provisioner
retries.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Sequence

import grpc
from google.protobuf import wrappers_pb2

from stowage.api.backend import OnDelete, StorageBackend
from stowage.api.volume import BackendVolumeSpec
from stowage.backends import backend_ref, has_directory_quota, parse_backend, read_backend
from stowage.csi import remote_data, volumes
from stowage.csi.proto import csi_pb2, csi_pb2_grpc
from stowage.csi.releasing import release_plan
from stowage.csi.server import require
from stowage.drivers import driver_for
from stowage.drivers.base import (
    BACKEND_PARAMETER,
    MOUNT_READY,
    CandidateNode,
    ClaimRequest,
    ProvisionContext,
    ProvisionedVolume,
    RemoteExport,
    Unprovisionable,
    mount_label,
    node_ready,
)
from stowage.drivers.placement import rendezvous_choice
from stowage.kube import AlreadyExistsError, ApiError, ConflictError, Json, Kube
from stowage.kube.resources import BACKEND_VOLUMES, NODES, STORAGE_BACKENDS

log = logging.getLogger(__name__)

RPC = csi_pb2.ControllerServiceCapability.RPC
# How long DeleteVolume waits for a node to release a volume's data before it answers
# UNAVAILABLE (the provisioner then retries, backing off).
RELEASE_WAIT = 10.0
RELEASE_POLL = 0.2
CAPABILITIES = (RPC.CREATE_DELETE_VOLUME, RPC.GET_CAPACITY, RPC.SINGLE_NODE_MULTI_WRITER)


class Failed(Exception):  # noqa: N818 - raised as "raise Failed(code, why)"
    """Ends the call with `code` and a message for the CO's Events."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code


class Controller(csi_pb2_grpc.ControllerServicer):
    def __init__(self, kube: Kube) -> None:
        self._kube = kube

    # Not offered (no capability names them): the generated servicer's UNIMPLEMENTED.
    ControllerPublishVolume = csi_pb2_grpc.ControllerServicer.ControllerPublishVolume
    ControllerUnpublishVolume = csi_pb2_grpc.ControllerServicer.ControllerUnpublishVolume
    ListVolumes = csi_pb2_grpc.ControllerServicer.ListVolumes
    ControllerListVolumeHealth = csi_pb2_grpc.ControllerServicer.ControllerListVolumeHealth
    ControllerGetVolumeHealth = csi_pb2_grpc.ControllerServicer.ControllerGetVolumeHealth
    CreateSnapshot = csi_pb2_grpc.ControllerServicer.CreateSnapshot
    DeleteSnapshot = csi_pb2_grpc.ControllerServicer.DeleteSnapshot
    ListSnapshots = csi_pb2_grpc.ControllerServicer.ListSnapshots
    GetSnapshot = csi_pb2_grpc.ControllerServicer.GetSnapshot
    ControllerExpandVolume = csi_pb2_grpc.ControllerServicer.ControllerExpandVolume
    ControllerGetVolume = csi_pb2_grpc.ControllerServicer.ControllerGetVolume
    ControllerModifyVolume = csi_pb2_grpc.ControllerServicer.ControllerModifyVolume

    def add_to(self, server: grpc.Server) -> None:
        csi_pb2_grpc.add_ControllerServicer_to_server(self, server)

    def ControllerGetCapabilities(
        self, request: csi_pb2.ControllerGetCapabilitiesRequest, context: grpc.ServicerContext
    ) -> csi_pb2.ControllerGetCapabilitiesResponse:
        return csi_pb2.ControllerGetCapabilitiesResponse(
            capabilities=[
                csi_pb2.ControllerServiceCapability(rpc=RPC(type=capability))
                for capability in CAPABILITIES
            ]
        )

    def CreateVolume(
        self, request: csi_pb2.CreateVolumeRequest, context: grpc.ServicerContext
    ) -> csi_pb2.CreateVolumeResponse:
        try:
            return csi_pb2.CreateVolumeResponse(volume=self._create(request))
        except volumes.BadRequest as error:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(error))
        except Failed as error:
            context.abort(error.code, str(error))
        raise AssertionError("abort raises")

    def _create(self, request: csi_pb2.CreateVolumeRequest) -> csi_pb2.Volume:
        name = volumes.volume_id(request.name)
        claim = volumes.claim_request(request)
        backend_name = request.parameters.get(BACKEND_PARAMETER)
        if not backend_name:
            raise volumes.BadRequest(f"parameter {BACKEND_PARAMETER} is not set")
        model = self._backend(backend_name)
        driver = driver_for(model.spec.storage_type)
        ref = backend_ref(backend_name, model)
        root = driver.csi_directory_root(ref)
        if root is None or not driver.served_by_csi(ref):
            raise Failed(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"StorageBackend {backend_name} ({model.spec.storage_type.value}) is not served "
                "through CSI (provisioning.csi is not set, or the type has no CSI path yet): "
                "its StorageClass uses the stowage.io/provisioner",
            )
        # A claim always asks for a size; a bare CSI call need not (then 0: no size of its own).
        sized = dataclasses.replace(claim, requested_bytes=claim.requested_bytes or 1)
        nodes = self._candidate_nodes(claim.selected_node)
        try:
            plan = driver.plan(ref, sized, ProvisionContext.from_manifests((), nodes))
        except Unprovisionable as error:
            # No node or server can hold it now (a CO retries); a bad request was refused above.
            raise Failed(grpc.StatusCode.RESOURCE_EXHAUSTED, str(error)) from error
        plan = dataclasses.replace(plan, capacity_bytes=claim.requested_bytes)
        work = driver.node_volume(ref, ProvisionedVolume(name, plan.capacity_bytes, plan.location))
        tmpfs_bytes = work.tmpfs_bytes if work is not None else None
        if tmpfs_bytes == 0:
            raise volumes.BadRequest(
                f"StorageBackend {backend_name} makes each volume a tmpfs of the volume's "
                "size: give the volume a size (capacity_range)"
            )
        provisioning = model.spec.provisioning
        owner = provisioning.directory_owner
        quota = plan.capacity_bytes if has_directory_quota(model) and plan.capacity_bytes else None
        checkout = work.checkout if work is not None else None
        directory = volumes.NodeDirectory(
            root,
            tmpfs_bytes,
            driver.csi_backend_mount(ref),
            quota,
            checkout.path if checkout is not None else None,
        )
        record = volumes.backend_volume(
            name,
            backend_name,
            model.spec.storage_type.value,
            directory,
            plan,
            claim,
            provisioning.directory_mode,
            volumes.DirectoryOwner(owner.uid, owner.gid) if owner else volumes.DirectoryOwner(),
        )
        # Before the record: a volume that cannot be made leaves no record behind, which no
        # DeleteVolume would ever come for once its claim is gone.
        self._make_remote_directory(
            name, driver.remote_export(ref, name), volumes.record_spec(record)
        )
        try:
            created = self._kube.create(BACKEND_VOLUMES, record)
        except AlreadyExistsError:
            # A repeated call (the CO retries after a timeout): answered from the record.
            existing = self._kube.get(BACKEND_VOLUMES, name)
            if existing is None:
                raise Failed(grpc.StatusCode.ABORTED, f"volume {name} was just deleted") from None
            return volumes.csi_volume(name, self._existing(name, existing, claim.requested_bytes))
        where = plan.location.node or plan.location.server or "the mount of its backend's helpers"
        log.info("volume %s of backend %s on %s", name, backend_name, where)
        return volumes.csi_volume(name, volumes.record_spec(created))

    @staticmethod
    def _make_remote_directory(
        name: str, export: RemoteExport | None, spec: BackendVolumeSpec
    ) -> None:
        """Makes the volume's directory on its server, for a type whose directories are in an
        export (a directory there already is left as it is)."""
        if export is None or spec.server is None:
            return
        try:
            remote_data.make_directory(export, spec.server, spec.path, volumes.new_directory(spec))
        except (OSError, ValueError) as error:
            raise Failed(
                grpc.StatusCode.UNAVAILABLE,
                f"volume {name}: making its directory on {spec.server}: {error}",
            ) from error

    def _candidate_nodes(self, selected: str | None) -> Sequence[Json]:
        """The scheduler's node alone when it chose one (WaitForFirstConsumer, or the CO's
        preferred topology), else every node."""
        if selected is None:
            return self._kube.list(NODES)
        node = self._kube.get(NODES, selected)
        return [node] if node is not None else []

    def _existing(self, name: str, record: Json, requested: int) -> BackendVolumeSpec:
        spec = volumes.record_spec(record)
        if record["metadata"].get("deletionTimestamp"):
            raise Failed(grpc.StatusCode.ABORTED, f"volume {name} is being deleted")
        if requested and requested != spec.capacity_bytes:
            raise Failed(
                grpc.StatusCode.ALREADY_EXISTS,
                f"volume {name} exists with {spec.capacity_bytes} bytes, not {requested}",
            )
        return spec

    def _backend(self, name: str) -> StorageBackend:
        body = self._kube.get(STORAGE_BACKENDS, name)
        if body is None:
            raise Failed(grpc.StatusCode.NOT_FOUND, f"StorageBackend {name} does not exist")
        model = parse_backend(body)
        if isinstance(model, str):
            raise Failed(
                grpc.StatusCode.FAILED_PRECONDITION, f"StorageBackend {name} is invalid: {model}"
            )
        problems = driver_for(model.spec.storage_type).validate(backend_ref(name, model))
        if problems:
            joined = "; ".join(str(problem) for problem in problems)
            raise Failed(
                grpc.StatusCode.FAILED_PRECONDITION, f"StorageBackend {name} is invalid: {joined}"
            )
        return model

    def GetCapacity(
        self, request: csi_pb2.GetCapacityRequest, context: grpc.ServicerContext
    ) -> csi_pb2.GetCapacityResponse:
        """The free bytes of the backend on the topology's node as its node plugin last
        reported them; with no node, the most any one node has (a volume lies on one node);
        0 where nothing was reported (no backend named, or a type that takes no room)."""
        backend_name = request.parameters.get(BACKEND_PARAMETER)
        if not backend_name:
            return csi_pb2.GetCapacityResponse()
        try:
            self._backend(backend_name)
        except Failed as error:
            context.abort(error.code, str(error))
        node_name = request.accessible_topology.segments.get(volumes.TOPOLOGY_KEY)
        if node_name:
            found = self._kube.get(NODES, node_name)
            nodes = [found] if found is not None else []
        else:
            nodes = self._kube.list(NODES)
        reported = (CandidateNode.from_manifest(node).free_bytes(backend_name) for node in nodes)
        available = max((free for free in reported if free is not None), default=0)
        return csi_pb2.GetCapacityResponse(
            available_capacity=available,
            maximum_volume_size=wrappers_pb2.Int64Value(value=available),
        )

    def DeleteVolume(
        self, request: csi_pb2.DeleteVolumeRequest, context: grpc.ServicerContext
    ) -> csi_pb2.DeleteVolumeResponse:
        require(context, ("the volume ID", request.volume_id))
        record = self._kube.get(BACKEND_VOLUMES, request.volume_id)
        if record is None:
            return csi_pb2.DeleteVolumeResponse()  # deleted already, or never made
        spec = volumes.record_spec(record)
        try:
            self._release_remote(request.volume_id, spec)
            releasing_node = self._releasing_node(record, spec)
        except Failed as error:
            context.abort(error.code, str(error))
        if not record["metadata"].get("deletionTimestamp"):
            try:
                self._kube.delete(BACKEND_VOLUMES, request.volume_id)
            except ApiError as error:
                context.abort(grpc.StatusCode.UNAVAILABLE, f"deleting the record: {error}")
        remaining = self._released(request.volume_id)
        if remaining is not None and not self._node_gone(remaining):
            context.abort(
                grpc.StatusCode.UNAVAILABLE,
                f"volume {request.volume_id}: waiting for the node plugin on "
                f"{releasing_node or 'its node'} to release its data",
            )
        return csi_pb2.DeleteVolumeResponse()

    def _releasing_node(self, record: Json, spec: BackendVolumeSpec) -> str | None:
        """The node whose plugin releases the volume's data: a node-local volume's node; for
        a volume in a backend mount, the node it was handed to if that node still has the
        mount ready, else one that has (labelled on the record, which that node's plugin
        watches). UNAVAILABLE while no node has the mount."""
        if spec.backend_mount is None:
            return spec.node
        name = record["metadata"]["name"]
        mounted = self._kube.list(
            NODES, label_selector=f"{mount_label(spec.backend)}={MOUNT_READY}"
        )
        ready: list[str] = [node["metadata"]["name"] for node in mounted if node_ready(node)]
        handed_to = (record["metadata"].get("labels") or {}).get(volumes.NODE_LABEL)
        for node in ready:
            if volumes.node_label(node) == handed_to:
                return node
        if not ready:
            raise Failed(
                grpc.StatusCode.UNAVAILABLE,
                f"volume {name}: no ready node has StorageBackend {spec.backend} mounted to "
                f"release its directory {spec.path}",
            )
        chosen = rendezvous_choice(name, ready)
        patch = {"metadata": {"labels": {volumes.NODE_LABEL: volumes.node_label(chosen)}}}
        try:
            self._kube.merge_patch(BACKEND_VOLUMES, name, patch)
        except ApiError as error:
            raise Failed(
                grpc.StatusCode.UNAVAILABLE, f"volume {name}: handing it to {chosen}: {error}"
            ) from error
        log.info("volume %s: released by the node plugin on %s", name, chosen)
        return chosen

    def _release_remote(self, name: str, spec: BackendVolumeSpec) -> None:
        """Deletes or archives the directory of a volume on a server as its backend says,
        before the record goes (the record is what a retry finds it by)."""
        if spec.server is None:
            return
        plan = release_plan(self._kube, name, spec)
        if plan.action is OnDelete.RETAIN:
            log.info("volume %s: its directory %s on %s is kept", name, spec.path, spec.server)
            return
        ref = backend_ref(spec.backend, self._backend(spec.backend))
        export = driver_for(ref.spec.storage_type).remote_export(ref, name)
        if export is None:
            raise Failed(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"volume {name}: StorageBackend {spec.backend} no longer has an export",
            )
        try:
            found = remote_data.release(export, spec.server, spec.path, plan)
        except (OSError, ValueError) as error:
            raise Failed(
                grpc.StatusCode.UNAVAILABLE,
                f"volume {name}: {plan.action.value} of {spec.path} on {spec.server}: {error}",
            ) from error
        outcome = "done" if found else "nothing there"
        log.info("volume %s released (%s: %s)", name, plan.action.value, outcome)

    def _released(self, name: str) -> Json | None:
        """Waits up to RELEASE_WAIT seconds for the node plugin to release the record (a
        fraction of a second when it runs), so that DeleteVolume mostly answers at once;
        the record if it is still there."""
        deadline = time.monotonic() + RELEASE_WAIT
        while (record := self._kube.get(BACKEND_VOLUMES, name)) is not None:
            if time.monotonic() >= deadline:
                return record
            time.sleep(RELEASE_POLL)
        return None

    def _node_gone(self, record: Json) -> bool:
        """Lets a record go whose node no longer exists: its data went with the node, and
        no plugin will ever release it. False while the node exists."""
        node = volumes.record_spec(record).node
        if node is None or self._kube.get(NODES, node) is not None:
            return False
        name = record["metadata"]["name"]
        try:
            self._kube.merge_patch(BACKEND_VOLUMES, name, volumes.releasing_done(record))
        except ConflictError:
            return False  # changed meanwhile: the next call looks again
        log.warning("volume %s: node %s is gone, and its data with it", name, node)
        return True

    def ValidateVolumeCapabilities(
        self, request: csi_pb2.ValidateVolumeCapabilitiesRequest, context: grpc.ServicerContext
    ) -> csi_pb2.ValidateVolumeCapabilitiesResponse:
        require(
            context,
            ("the volume ID", request.volume_id),
            ("the volume capabilities", request.volume_capabilities),
        )
        record = self._kube.get(BACKEND_VOLUMES, request.volume_id)
        if record is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f"volume {request.volume_id} does not exist")
        spec = volumes.record_spec(record)
        problem = unsupported(spec, request.volume_capabilities, self._kube)
        if problem:
            return csi_pb2.ValidateVolumeCapabilitiesResponse(message=problem)
        return csi_pb2.ValidateVolumeCapabilitiesResponse(
            confirmed=csi_pb2.ValidateVolumeCapabilitiesResponse.Confirmed(
                volume_context=request.volume_context,
                volume_capabilities=request.volume_capabilities,
                parameters=request.parameters,
            )
        )


def unsupported(
    spec: BackendVolumeSpec,
    capabilities: Sequence[csi_pb2.VolumeCapability],
    kube: Kube,
) -> str | None:
    """Why the volume cannot be used with `capabilities`, as its backend's driver judges the
    same access modes and volume mode in a claim; None when it can."""
    model = read_backend(kube, spec.backend)
    if isinstance(model, str):
        return f"StorageBackend {spec.backend} is gone or invalid"
    try:
        claim = ClaimRequest(
            namespace="",
            name="",
            uid="0",
            requested_bytes=spec.capacity_bytes or 1,
            access_modes=volumes.access_modes(capabilities),
            volume_mode=volumes.volume_mode(capabilities),
        )
        driver_for(model.spec.storage_type).check_claim(backend_ref(spec.backend, model), claim)
    except (volumes.BadRequest, Unprovisionable) as error:
        return str(error)
    return None
