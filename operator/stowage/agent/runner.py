"""`stowage agent`: keeps one backend mounted on this node and its claims' directories made;
or, for types whose volumes live on one node (emptyDir, gitRepo, lvm), makes those of this node.

Every `interval` seconds: read the backend, make sure its mount is there and answers (else
mount it again through the failover order), label the node `mount.stowage.io/<backend>` with
`ready` or `failed`, make the directories (with their quota) of the claims the operator asks
this node to prepare before it creates their PVs, make any missing directory of a live volume,
and delete or archive the directories of released volumes that the operator handed over (PV
annotations). The FUSE clients are moved out of the container so that mounts outlive a helper
restart; a restarted agent adopts the healthy mount it finds. When the backend is gone, or the
agent is stopped while its backend is being deleted, it unmounts and removes the label.

Node-pinned types have no backend mount: the agent labels the node `ready` as it runs, makes
each volume the operator asks this node for (a directory, a tmpfs, a read-only checkout, a
logical volume, an RBD image; see stowage.agent.node_volumes), makes again what a node restart
took (tmpfs, bind mounts, LV activation and mounts, RBD attachments), brings checkouts up to
date every syncPeriod, wipes the volumes of this node that are released (an LV or an RBD image
may be archived instead), and for lvm annotates the node with the volume group's free bytes.
"""

from __future__ import annotations

import contextlib
import logging
import random
import shutil
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from types import FrameType

from stowage import backends
from stowage.agent import (
    ceph_fuse,
    cifs_mount,
    git_checkout,
    lvm,
    mounting,
    node_volumes,
    rbd,
)
from stowage.agent.capacity import free_bytes
from stowage.agent.claim_data import (
    archive_directory_below,
    make_directory_below,
    remove_directory_below,
)
from stowage.agent.credentials import CredentialsError, read_all
from stowage.agent.metrics import AgentMetrics
from stowage.agent.quota import DirectoryQuotas, QuotaError
from stowage.api.backend import OnDelete, StorageBackend
from stowage.api.common import parse_quantity
from stowage.backends import parse_backend
from stowage.clients import nfs
from stowage.drivers.base import (
    ARCHIVE_AS_ANNOTATION,
    BACKEND_LABEL,
    MOUNT_FAILED,
    MOUNT_READY,
    NODE_ANNOTATION,
    PATH_ANNOTATION,
    PREPARE_LABEL,
    PREPARE_ON_ANNOTATION,
    PREPARED_BY_ANNOTATION,
    RELEASE_ANNOTATION,
    RELEASED_BY_ANNOTATION,
    DataLocation,
    GitCheckout,
    HostMount,
    NewDirectory,
    NodeVolume,
    RemoteExport,
    Unprovisionable,
    capacity_annotation,
    mount_failure_annotation,
    mount_label,
)
from stowage.drivers.mounts import mount_point_of
from stowage.kube import ApiError, Json, Kube
from stowage.kube.events import post_event
from stowage.kube.resources import (
    CONFIG_MAPS,
    NODES,
    PERSISTENT_VOLUME_CLAIMS,
    PERSISTENT_VOLUMES,
    STORAGE_BACKENDS,
)
from stowage.objects.helper_daemonset import CREDENTIALS_DIR, helper_name

logger = logging.getLogger(__name__)

# Failed mounts are retried after interval * 2^failures (with jitter), at most this long.
MAX_MOUNT_BACKOFF = 60.0
# A fetch or checkout that takes longer is given up (and tried again on the next period).
GIT_TIMEOUT = 120.0
# What a claim's preparation may fail with; the claim gets an Event saying it.
PREPARATION_ERRORS = (
    OSError,
    ValueError,
    QuotaError,
    Unprovisionable,
    node_volumes.NodeVolumeError,
    git_checkout.GitError,
    lvm.LvmError,
    rbd.RbdError,
    CredentialsError,
)
# The helper's private state (in its container, not on the node): client configs, keyrings.
PRIVATE_STATE = Path("/run/stowage")


@dataclass(frozen=True)
class AgentSettings:
    backend: str
    node: str
    namespace: str = ""  # the helper's own: where the operator keeps the nodes' server order
    interval: float = 5.0
    probe_timeout: float = 2.0
    mount_timeout: float = 30.0
    stat_timeout: float = 5.0
    credentials: Path = Path(CREDENTIALS_DIR)
    state: Path = PRIVATE_STATE


class Agent:
    def __init__(self, kube: Kube, settings: AgentSettings) -> None:
        self._kube = kube
        self._settings = settings
        self._label: tuple[str | None, str | None] | None = None  # and the failure beside it
        self._mount: HostMount | None = None  # the last mount served, to release when it goes
        self._stopping = threading.Event()
        self._wake = threading.Event()  # work came early: run the next step now
        self._failed_mounts = 0
        self._next_mount_at = 0.0
        self._last_failure = ""
        self._detached_clients: list[int] = []
        self._metrics = AgentMetrics(settings.backend)
        self._last_claim_failure: dict[str, str] = {}  # by claim uid: one Event per failure
        self._reported_free: int | None = None  # the backend's free bytes, as last annotated
        self._synced: dict[str, float] = {}  # checkout path -> when it was last brought up to date

    def run(self) -> int:
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._stop)
        logger.info("agent for backend %s on node %s", self._settings.backend, self._settings.node)
        # Nodes that start together do not mount together.
        self._stopping.wait(random.uniform(0, self._settings.interval))
        threading.Thread(target=self.watch_claims, name="claim watch", daemon=True).start()
        while not self._stopping.is_set():
            try:
                self.step()
            except Exception:
                logger.exception("agent step failed; trying again")
            self._wake.wait(self._settings.interval)
            self._wake.clear()
        self.on_stop()
        return 0

    def _stop(self, signum: int, frame: FrameType | None) -> None:
        self._stopping.set()
        self._wake.set()

    def watch_claims(self) -> None:
        """Wakes the loop as soon as the operator asks this node for a claim's directory (the
        loop's own listing every interval covers the time the watch is down)."""
        selector = f"{PREPARE_LABEL}={self._settings.backend}"
        while not self._stopping.is_set():
            try:
                for event in self._kube.watch(PERSISTENT_VOLUME_CLAIMS, label_selector=selector):
                    if self._is_asked(event.get("object") or {}):
                        self._wake.set()
            except Exception as error:  # whatever broke it, watch again after a pause
                logger.warning("claim watch failed: %s", error)
                self._stopping.wait(self._settings.interval)

    def _is_asked(self, claim: Json) -> bool:
        annotations = (claim.get("metadata") or {}).get("annotations") or {}
        return annotations.get(
            PREPARE_ON_ANNOTATION
        ) == self._settings.node and not annotations.get(PREPARED_BY_ANNOTATION)

    def step(self) -> None:
        backend = self._kube.get(STORAGE_BACKENDS, self._settings.backend)
        if backend is None:
            self.release()
            return
        # A backend being deleted keeps its mount until the operator removes this DaemonSet
        # (after the last volume is gone): released volumes may still need their data work.
        model = parse_backend(backend)
        if isinstance(model, str):
            logger.warning("backend %s is invalid: %s", self._settings.backend, model)
            return
        mount = backends.host_mount(self._settings.backend, model, self._settings.node)
        if mount is None:
            export = backends.remote_export(self._settings.backend, model, self._settings.node)
            if export is not None:
                self.serve_remote_export(backend, model, export)
            elif backends.has_helpers(model):
                self.serve_node_volumes(backend, model)
            return
        if self._mount is not None and self._mount != mount:
            self.release()  # the spec changed what is mounted: mount it anew
        self._mount = mount
        source = mounting.mount_source(mount.mount_point)
        healthy = source is not None and mounting.is_healthy(
            mount.mount_point, self._settings.stat_timeout
        )
        if source is not None and healthy:
            self._metrics.adopted(mounting.server_of(mount.fs_type, source))
        else:
            healthy = self.remount(backend, mount, stale=source is not None)
        self._set_label(MOUNT_READY if healthy else MOUNT_FAILED)
        if healthy:
            self.keep_clients_beyond_restart(backend, mount.mount_point)
            with DirectoryQuotas(mount, self._settings.mount_timeout) as quotas:
                self.prepare_claims(
                    lambda claim: self.make_shared_directory(model, mount, quotas, claim)
                )
                self.serve_volumes(backend, model, mount, quotas)
        self._write_metrics()

    def remount(self, backend: Json, mount: HostMount, *, stale: bool) -> bool:
        if stale:
            message = f"node {self._settings.node}: mount {mount.mount_point} is stale"
            logger.warning("%s: unmounting it", message)
            mounting.unmount(mount.mount_point)
            self._set_label(MOUNT_FAILED)
            self._metrics.stale()
            self._event(backend, warning=True, reason="MountStale", message=message)
        if time.monotonic() < self._next_mount_at:
            return False  # backing off: failing servers are not hammered by every node
        try:
            client = self.mount_client(mount)
        except CredentialsError as error:
            failed = mounting.Attempt(mount.sources[0], f"mount failed: {error}", 0.0)
            result = mounting.MountResult(None, (failed,))
        else:
            result = mounting.mount_with_failover(
                mounting.in_order(mount, self._assigned_order()),
                probe_timeout=self._settings.probe_timeout,
                mount_timeout=self._settings.mount_timeout,
                client=client,
            )
        tried = "; ".join(f"{a.source}: {a.outcome} ({a.seconds:.1f} s)" for a in result.attempts)
        seconds = sum(attempt.seconds for attempt in result.attempts)
        if result.mounted_from is None:
            self._metrics.mount_failed(seconds)
            self._failed_mounts += 1
            delay = min(MAX_MOUNT_BACKOFF, self._settings.interval * 2**self._failed_mounts)
            self._next_mount_at = time.monotonic() + random.uniform(delay / 2, delay)
            message = f"node {self._settings.node}: no server could be mounted ({tried})"
            logger.error("%s; next try in up to %.0f s", message, delay)
            outcomes = "; ".join(f"{a.source}: {a.outcome}" for a in result.attempts)
            self._mount_failed(backend, f"no server could be mounted ({outcomes})", message)
            return False
        self._failed_mounts, self._next_mount_at, self._last_failure = 0, 0.0, ""
        server = mounting.server_of(mount.fs_type, result.mounted_from)
        self._metrics.mounted(server, result.failovers, seconds)
        message = f"node {self._settings.node}: mounted from {result.mounted_from} ({tried})"
        logger.info("%s", message)
        if result.failovers:
            self._event(backend, warning=True, reason="MountFailedOver", message=message)
        return True

    def mount_client(self, mount: HostMount) -> mounting.MountClient:
        """How this backend is mounted: CephFS by ceph-fuse with the key of the helper's
        Secret, CIFS by mount(8) with a credentials file of the Secret's user after smbclient
        checked the share, everything else by mount(8)."""
        clients = {"ceph": ceph_fuse.client, "cifs": cifs_mount.client}
        make = clients.get(mount.fs_type)
        if make is None:
            return mounting.MOUNT
        return make(mount, self._settings.credentials, self._state(), self._settings.mount_timeout)

    def _state(self) -> Path:
        return self._settings.state / self._settings.backend

    def _assigned_order(self) -> list[str]:
        """This node's server order as the operator balanced it over all nodes; empty (the
        node's own rendezvous order stands) when there is none yet."""
        if not self._settings.namespace:
            return []
        try:
            found = self._kube.get(
                CONFIG_MAPS, helper_name(self._settings.backend), self._settings.namespace
            )
        except ApiError as error:
            logger.warning("server order not read: %s", error)
            return []
        order: str = ((found or {}).get("data") or {}).get(self._settings.node, "")
        return [host for host in order.split(",") if host]

    def keep_clients_beyond_restart(self, backend: Json | None, mount_point: str) -> None:
        """Once per mount (also one adopted from an earlier agent): its FUSE clients must
        outlive this container, or every pod using the mount loses it when the agent restarts.
        """
        clients = mounting.fuse_client_pids(mount_point)
        if not clients or clients == self._detached_clients:
            return
        problem = mounting.detach_from_container(clients)
        self._detached_clients = clients
        if problem is None:
            logger.info("FUSE clients %s of %s detached from the helper", clients, mount_point)
            return
        message = (
            f"node {self._settings.node}: the FUSE clients of {mount_point} stay in the "
            f"helper container and stop with it ({problem})"
        )
        logger.warning("%s", message)
        self._event(backend, warning=True, reason="MountNotDetached", message=message)

    def prepare_claims(self, make: Callable[[Json], str]) -> None:
        """Makes the volume of each claim the operator asked this node to prepare (`make`
        returns its path), then says so on the claim (the operator creates the PV on that
        answer)."""
        claims = self._kube.list(
            PERSISTENT_VOLUME_CLAIMS, label_selector=f"{PREPARE_LABEL}={self._settings.backend}"
        )
        for claim in claims:
            if self._is_asked(claim):
                self.prepare_claim(claim, make)

    def prepare_claim(self, claim: Json, make: Callable[[Json], str]) -> None:
        metadata = claim["metadata"]
        described = f"{metadata['namespace']}/{metadata['name']}"
        try:
            path = make(claim)
        except PREPARATION_ERRORS as error:
            message = f"node {self._settings.node}: the volume of claim {described}: {error}"
            logger.error("%s", message)
            self._warn_claim(claim, "PreparationFailed", message)
            return
        self._last_claim_failure.pop(metadata["uid"], None)
        patch = {"metadata": {"annotations": {PREPARED_BY_ANNOTATION: self._settings.node}}}
        self._kube.merge_patch(
            PERSISTENT_VOLUME_CLAIMS, metadata["name"], patch, namespace=metadata["namespace"]
        )
        logger.info("claim %s: volume %s made", described, path)

    def _warn_claim(self, claim: Json, reason: str, message: str) -> None:
        """A Warning Event on the claim, once per message."""
        uid = claim["metadata"].get("uid", "")
        if self._last_claim_failure.get(uid) == message:
            return
        self._last_claim_failure[uid] = message
        involved = {"apiVersion": "v1", "kind": PERSISTENT_VOLUME_CLAIMS.kind, **claim}
        post_event(self._kube, involved, warning=True, reason=reason, message=message)

    def _claim_volume(self, model: StorageBackend, claim: Json, node: str | None = None) -> Json:
        """The claim's PV worked out from the claim, as the operator does: its annotations are
        the claim owner's to write and name nothing the helper acts on."""
        return backends.claim_volume(self._settings.backend, model, claim, node)

    def make_shared_directory(
        self, model: StorageBackend, mount: HostMount, quotas: DirectoryQuotas, claim: Json
    ) -> str:
        volume = self._claim_volume(model, claim)
        path: str = volume["spec"]["local"]["path"]
        capacity = parse_quantity(volume["spec"]["capacity"]["storage"])
        self.make_claim_directory(model, mount, quotas, path, capacity, limit_existing=True)
        return path

    def make_claim_directory(
        self,
        model: StorageBackend,
        mount: HostMount,
        quotas: DirectoryQuotas,
        path: str,
        capacity: int,
        *,
        limit_existing: bool,
    ) -> None:
        """Makes the directory with the backend's mode and owner; limits it to `capacity` when
        it is new (or `limit_existing`) and the backend's type and settings have quotas."""
        made = make_directory_below(mount.mount_point, path, self._new_directory(model))
        if (made or limit_existing) and backends.has_directory_quota(model):
            quotas.limit(path, capacity)

    def serve_volumes(
        self,
        backend: Json | None,
        model: StorageBackend,
        mount: HostMount,
        quotas: DirectoryQuotas,
    ) -> None:
        """Makes the directory of each live volume that lacks one (the operator normally had
        it made before the PV); deletes or archives that of each volume the operator handed
        over on release, then marks the PV done."""
        volumes = self._kube.list(
            PERSISTENT_VOLUMES, label_selector=f"{BACKEND_LABEL}={self._settings.backend}"
        )
        for volume in volumes:
            path = ((volume.get("spec") or {}).get("local") or {}).get("path")
            annotations = volume["metadata"].get("annotations") or {}
            if not path or annotations.get(RELEASED_BY_ANNOTATION):
                continue
            if RELEASE_ANNOTATION in annotations:
                undo = partial(release_below, mount.mount_point, path, annotations)
                self.release_volume(backend, volume, undo)
            elif (volume.get("status") or {}).get("phase") != "Released":
                capacity = parse_quantity(volume["spec"]["capacity"]["storage"])
                try:
                    self.make_claim_directory(
                        model, mount, quotas, path, capacity, limit_existing=False
                    )
                except (OSError, ValueError, QuotaError) as error:
                    logger.error(
                        "directory %s of volume %s: %s", path, volume["metadata"]["name"], error
                    )

    def release_volume(
        self, backend: Json | None, volume: Json, undo: Callable[[str], bool]
    ) -> None:
        """Carries out the release the operator asked for on the PV (`undo` does the action
        and says whether there was anything to do), then marks the PV done."""
        name = volume["metadata"]["name"]
        annotations = volume["metadata"].get("annotations") or {}
        action = annotations[RELEASE_ANNOTATION]
        path = annotations.get(PATH_ANNOTATION, "")
        try:
            found = undo(action)
        except (*PREPARATION_ERRORS, KeyError) as error:
            message = (
                f"volume {name}: {action} of {path} failed on node {self._settings.node}: {error}"
            )
            logger.error("%s: %s", message, error)
            self._event(backend, warning=True, reason="ReleaseFailed", message=message)
            return
        outcome = "done" if found else "nothing to do, the volume is gone"
        logger.info("volume %s: %s of %s: %s", name, action, path, outcome)
        patch = {"metadata": {"annotations": {RELEASED_BY_ANNOTATION: self._settings.node}}}
        self._kube.merge_patch(PERSISTENT_VOLUMES, name, patch)

    # --- directories on an NFS server (nfs) ----------------------------------------------

    def serve_remote_export(
        self, backend: Json, model: StorageBackend, export: RemoteExport
    ) -> None:
        """Labels the node ready while a server of the export answers here; makes the claim
        directories the operator asks this node for and deletes or archives those of released
        volumes, each on its volume's server."""
        with contextlib.closing(nfs.Sessions(export, self._settings.stat_timeout)) as sessions:
            answering, failures = sessions.first_answering()
            if answering is None:
                why = "; ".join(failures)
                logger.error("no server of the export answers: %s", why)
                self._mount_failed(backend, why, f"node {self._settings.node}: {why}")
                return
            self._last_failure = ""
            self._set_label(MOUNT_READY)
            self.prepare_claims(lambda claim: self.make_remote_directory(model, sessions, claim))
            for volume in self._released_volumes():
                annotations = volume["metadata"].get("annotations") or {}
                location = DataLocation.from_annotations(annotations)
                if location.server is None or location.path is None:
                    continue
                undo = partial(
                    release_remote, sessions, location.server, location.path, annotations
                )
                self.release_volume(backend, volume, undo)

    def make_remote_directory(
        self, model: StorageBackend, sessions: nfs.Sessions, claim: Json
    ) -> str:
        volume = self._claim_volume(model, claim)
        location = DataLocation.from_annotations(volume["metadata"].get("annotations") or {})
        if location.server is None or location.path is None:
            raise ValueError("the planned volume names no server and path")
        session = sessions.session(location.server)
        session.make_directory(location.path, self._new_directory(model))
        return f"{location.server}:{location.path}"

    def _released_volumes(self) -> list[Json]:
        """The backend's volumes the operator handed over for release, not released yet."""
        volumes = self._kube.list(
            PERSISTENT_VOLUMES, label_selector=f"{BACKEND_LABEL}={self._settings.backend}"
        )
        return [
            volume
            for volume in volumes
            if RELEASE_ANNOTATION in (annotations := volume["metadata"].get("annotations") or {})
            and not annotations.get(RELEASED_BY_ANNOTATION)
        ]

    # --- volumes of this node (emptyDir, gitRepo) -----------------------------------------

    def serve_node_volumes(self, backend: Json, model: StorageBackend) -> None:
        """Labels the node ready, makes the volumes the operator asks this node for, keeps
        this node's live volumes made and their checkouts in sync, wipes released ones."""
        self._set_label(MOUNT_READY)
        self.report_capacity(model)
        self.prepare_claims(lambda claim: self.make_node_volume(model, claim))
        volumes = self._kube.list(
            PERSISTENT_VOLUMES, label_selector=f"{BACKEND_LABEL}={self._settings.backend}"
        )
        for volume in volumes:
            annotations = volume["metadata"].get("annotations") or {}
            if annotations.get(NODE_ANNOTATION) != self._settings.node:
                continue
            if annotations.get(RELEASED_BY_ANNOTATION):
                continue
            work = backends.node_volume(self._settings.backend, model, volume)
            if work is None:
                continue
            if RELEASE_ANNOTATION in annotations:
                undo = partial(self.wipe, work, annotations)
                self.release_volume(backend, volume, undo)
            elif (volume.get("status") or {}).get("phase") != "Released":
                self.keep_node_volume(model, volume, work)
        fuse_mount = mount_point_of(self._settings.backend)
        if mounting.is_mount_point(fuse_mount):  # rbd-fuse: must outlive this container
            self.keep_clients_beyond_restart(backend, fuse_mount)

    def report_capacity(self, model: StorageBackend) -> None:
        """Annotates the node with the free bytes the backend has here (0 when this node has
        no such group or directory), for the operator's choice of node; when it changes."""
        source = backends.capacity_source(self._settings.backend, model)
        if source is None:
            return
        try:
            free = free_bytes(source)
        except (lvm.LvmError, OSError) as error:
            logger.warning("node %s: %s", self._settings.node, error)
            free = 0
        if free == self._reported_free:
            return
        annotation = capacity_annotation(self._settings.backend)
        patch = {"metadata": {"annotations": {annotation: str(free)}}}
        self._kube.merge_patch(NODES, self._settings.node, patch)
        self._reported_free = free

    def make_node_volume(self, model: StorageBackend, claim: Json) -> str:
        planned = self._claim_volume(model, claim, self._settings.node)
        work = backends.node_volume(self._settings.backend, model, planned)
        if work is None:
            raise ValueError(f"backend {self._settings.backend} has no volumes of a node")
        node_volumes.make(
            work,
            self._new_directory(model),
            self.sync_checkout,
            self._settings.mount_timeout,
            self.ceph_client(work),
        )
        return work.path

    def ceph_client(self, work: NodeVolume) -> rbd.RbdClient | None:
        """The Ceph client of an RBD image's volume (the user of the helper's copy of the
        backend's Secret; its rbd-fuse on the backend's mount point); None for other volumes."""
        if work.rbd_image is None:
            return None
        return rbd.client(
            work.rbd_image.monitors,
            self._settings.credentials,
            self._state(),
            mount_point_of(self._settings.backend),
            self._settings.mount_timeout,
        )

    def wipe(self, work: NodeVolume, annotations: dict[str, str], action: str) -> bool:
        return wipe(work, annotations, action, self.ceph_client(work))

    def keep_node_volume(self, model: StorageBackend, volume: Json, work: NodeVolume) -> None:
        """Makes again what is missing (after a node restart) and syncs a checkout when due;
        a failure is told on the volume's claim, and the pods keep what they have."""
        try:
            node_volumes.make(
                work,
                self._new_directory(model),
                self.sync_checkout,
                self._settings.mount_timeout,
                self.ceph_client(work),
            )
            checkout = work.checkout
            if checkout is not None and self._sync_due(checkout):
                self.sync_checkout(checkout)
        except PREPARATION_ERRORS as error:
            claim = (volume.get("spec") or {}).get("claimRef") or {}
            described = f"{claim.get('namespace')}/{claim.get('name')}"
            message = f"node {self._settings.node}: the volume of claim {described}: {error}"
            logger.error("%s", message)
            involved = {"metadata": {key: claim.get(key) for key in ("name", "namespace", "uid")}}
            self._warn_claim(involved, "VolumeFailed", message)
            return
        self._last_claim_failure.pop(
            ((volume.get("spec") or {}).get("claimRef") or {}).get("uid", ""), None
        )

    def _sync_due(self, checkout: GitCheckout) -> bool:
        last = self._synced.get(checkout.path)
        return last is None or time.monotonic() - last >= checkout.sync_seconds

    def sync_checkout(self, checkout: GitCheckout) -> None:
        """Brings the checkout up to date with the credentials of the helper's copy of the
        backend's Secret."""
        secret = None if checkout.credentials is None else read_all(self._settings.credentials)
        with git_checkout.credentials(secret, ssh=checkout.ssh) as environment:
            commit = git_checkout.sync(checkout, environment, GIT_TIMEOUT)
        self._synced[checkout.path] = time.monotonic()
        logger.info("checkout %s at %s", checkout.path, commit)

    @staticmethod
    def _new_directory(model: StorageBackend) -> NewDirectory:
        provisioning = model.spec.provisioning
        owner = provisioning.directory_owner
        return NewDirectory(
            provisioning.directory_mode_bits,
            None if owner is None else owner.uid,
            None if owner is None else owner.gid,
        )

    def release(self) -> None:
        """Unmounts what this agent mounted and removes the node label."""
        mount_point = mount_point_of(self._settings.backend)
        if mounting.is_mount_point(mount_point):  # also one a previous agent left
            mounting.unmount(mount_point)
            logger.info("unmounted %s", mount_point)
        self._mount = None
        shutil.rmtree(self._state(), ignore_errors=True)  # its keyring or credentials file
        self._set_label(None)
        if self._reported_free is not None:
            annotation = capacity_annotation(self._settings.backend)
            self._kube.merge_patch(
                NODES, self._settings.node, {"metadata": {"annotations": {annotation: None}}}
            )
            self._reported_free = None
        self._metrics.unmounted()
        self._metrics.remove()

    def _write_metrics(self) -> None:
        try:
            self._metrics.write()
        except OSError as error:
            logger.warning("metrics file not written: %s", error)

    def on_stop(self) -> None:
        """On the way out: release the node if the backend is going, else leave the mount."""
        if is_going(self._kube.get(STORAGE_BACKENDS, self._settings.backend)):
            self.release()

    def _mount_failed(self, backend: Json, why: str, message: str) -> None:
        """Labels the node failed with `why` beside it, and says `message` in an Event once
        per kind of failure."""
        if why != self._last_failure:
            self._last_failure = why
            self._event(backend, warning=True, reason="MountFailed", message=message)
        self._set_label(MOUNT_FAILED)

    def _set_label(self, value: str | None) -> None:
        """The node's mount label for the backend; when it is `failed`, the annotation beside
        it says why (for the backend's conditions)."""
        failure = (self._last_failure or None) if value == MOUNT_FAILED else None
        if (value, failure) == self._label:
            return
        backend = self._settings.backend
        patch = {
            "metadata": {
                "labels": {mount_label(backend): value},
                "annotations": {mount_failure_annotation(backend): failure},
            }
        }
        self._kube.merge_patch(NODES, self._settings.node, patch)
        self._label = (value, failure)

    def _event(self, backend: Json | None, *, warning: bool, reason: str, message: str) -> None:
        if backend is None:
            return
        involved = {"apiVersion": STORAGE_BACKENDS.api_version, "kind": "StorageBackend", **backend}
        post_event(self._kube, involved, warning=warning, reason=reason, message=message)


def release_directory(
    annotations: dict[str, str],
    remove: Callable[[], bool],
    archive: Callable[[str], bool],
    action: str,
) -> bool:
    """Deletes a claim's directory or archives it under the name the operator chose; says
    whether there was anything to do."""
    if action == OnDelete.DELETE.value:
        return remove()
    if action == OnDelete.ARCHIVE.value:
        return archive(annotations[ARCHIVE_AS_ANNOTATION])
    raise ValueError(f"unknown release action {action!r}")


def release_remote(
    sessions: nfs.Sessions,
    server: str,
    path: str,
    annotations: dict[str, str],
    action: str,
) -> bool:
    """Deletes or archives a claim's directory on its NFS server."""
    session = sessions.session(server)
    return release_directory(
        annotations, partial(session.remove_tree, path), partial(session.archive, path), action
    )


def release_below(root: str, path: str, annotations: dict[str, str], action: str) -> bool:
    """Deletes or archives a claim's directory below a backend mount."""
    return release_directory(
        annotations,
        partial(remove_directory_below, root, path),
        partial(archive_directory_below, root, path),
        action,
    )


def wipe(
    volume: NodeVolume,
    annotations: dict[str, str],
    action: str,
    ceph: rbd.RbdClient | None = None,
) -> bool:
    """Unmounts and deletes a node's volume; a logical volume, an RBD image or a persistent
    directory may be archived instead."""
    if action == OnDelete.DELETE.value:
        return node_volumes.remove(volume, ceph)
    archivable = (
        volume.logical_volume is not None or volume.rbd_image is not None or volume.persistent
    )
    if action == OnDelete.ARCHIVE.value and archivable:
        return node_volumes.archive(volume, annotations[ARCHIVE_AS_ANNOTATION], ceph)
    raise ValueError(f"release action {action!r}: these volumes can only be deleted")


def is_going(backend: Json | None) -> bool:
    return backend is None or bool(backend["metadata"].get("deletionTimestamp"))
