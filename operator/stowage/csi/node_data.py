"""The node plugin's half of DeleteVolume: it deletes or archives the data of this node's
volumes whose BackendVolume records are being deleted, then lets the records go (the volumes
of this node, and those in a backend mount that the controller handed to it).

The record's finalizer `stowage.io/node-data` holds it until then; the backend's driver, with
provisioning.onDelete as it is when the volume is released, says what becomes of the data.
A backend that is gone leaves the data in place (nothing says what to do with it), and so does
a directory that is gone already. A release that fails (an archive of that name in the way, a
directory still busy) is a Warning Event `ReleaseFailed` on the record, and is tried again
with a growing pause until it succeeds or the record is gone.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from stowage.agent import node_volumes
from stowage.agent.claim_data import archive_directory_below, remove_directory_below
from stowage.api.volume import NODE_DATA_FINALIZER
from stowage.backoff import doubling_pause
from stowage.csi.backend_mounts import NotMounted, require_mounted
from stowage.csi.node import on_host
from stowage.csi.releasing import release_plan
from stowage.csi.volumes import NODE_LABEL, node_label, record_spec, releasing_done
from stowage.drivers.base import NodeVolume
from stowage.kube import ApiError, ConflictError, Json, Kube
from stowage.kube.events import post_event
from stowage.kube.resources import BACKEND_VOLUMES

log = logging.getLogger(__name__)

FIRST_RETRY_SECONDS = 2.0
LAST_RETRY_SECONDS = 30.0
RELEASE_TIMEOUT = 10.0  # for a backend mount to answer before its volume's data is released


def node_selector(node: str) -> str:
    return f"{NODE_LABEL}={node_label(node)}"


def is_releasing(record: Mapping[str, Any]) -> bool:
    metadata = record["metadata"]
    return bool(metadata.get("deletionTimestamp")) and NODE_DATA_FINALIZER in (
        metadata.get("finalizers") or ()
    )


class NodeData:
    def __init__(
        self, kube: Kube, node: str, host_root: Path = Path("/"), watch_seconds: int = 300
    ) -> None:
        self._kube = kube
        self._node = node
        self._host_root = host_root
        self._watch_seconds = watch_seconds
        self._releasing = threading.Lock()  # the watch and the retries release one at a time
        self._failed: dict[str, Failure] = {}

    def release(self, record: Json) -> None:
        """Carries out the release plan on the volume's directory, then removes the finalizer
        (only this one, and only from the version read)."""
        name = record["metadata"]["name"]
        spec = record_spec(record)
        plan = release_plan(self._kube, name, spec)
        if spec.backend_mount is not None:
            require_mounted(spec.backend_mount, spec.backend, self._node, RELEASE_TIMEOUT)
        root, path = on_host(self._host_root, spec.root), on_host(self._host_root, spec.path)
        work = NodeVolume(root, path, tmpfs_bytes=spec.tmpfs_bytes)
        done = plan.carry_out(
            partial(node_volumes.remove, work), partial(archive_directory_below, root, path)
        )
        if spec.checkout_path is not None:  # a checkout is never kept (gitRepo is ephemeral)
            done = remove_directory_below(root, spec.checkout_path) or done
        outcome = "done" if done else "nothing there"
        log.info("volume %s released (%s: %s)", name, plan.action.value, outcome)
        self._kube.merge_patch(BACKEND_VOLUMES, name, releasing_done(record))

    def release_due(self, record: Json) -> None:
        if not is_releasing(record):
            return
        name = record["metadata"]["name"]
        with self._releasing:
            try:
                self.release(record)
            except ConflictError:
                pass  # changed meanwhile: its next watch event brings the new version
            except (
                OSError,
                ValueError,
                ApiError,
                NotMounted,
                node_volumes.NodeVolumeError,
            ) as error:
                self._release_failed(record, str(error))
                return
            self._failed.pop(name, None)

    def _release_failed(self, record: Json, message: str) -> None:
        name = record["metadata"]["name"]
        before = self._failed.get(name)
        log.warning("volume %s not released yet: %s", name, message)
        if before is None or before.message != message:
            post_event(self._kube, record, warning=True, reason="ReleaseFailed", message=message)
        self._failed[name] = Failure.after(before, message)

    def retry_failed(self) -> None:
        """Tries again the releases that failed and whose pause is over; forgets the records
        that are gone."""
        now = time.monotonic()
        with self._releasing:
            due = [name for name, failure in self._failed.items() if failure.due <= now]
        for name in due:
            record = self._kube.get(BACKEND_VOLUMES, name)
            if record is not None and is_releasing(record):
                self.release_due(record)
            else:
                with self._releasing:
                    self._failed.pop(name, None)

    def _retry_until(self, stop: threading.Event) -> None:
        while not stop.wait(FIRST_RETRY_SECONDS / 2):
            try:
                self.retry_failed()
            except (ApiError, OSError) as error:
                log.warning("retrying releases on node %s: %s", self._node, error)

    def run(self, stop: threading.Event) -> None:
        """Watches this node's records until `stop`; each watch begins with the records that
        exist, so one missed while the plugin was down is released when it is back."""
        threading.Thread(target=self._retry_until, args=(stop,), daemon=True).start()
        while not stop.is_set():
            try:
                for event in self._kube.watch(
                    BACKEND_VOLUMES,
                    label_selector=node_selector(self._node),
                    seconds=self._watch_seconds,
                ):
                    if stop.is_set():
                        return
                    if event.get("type") in ("ADDED", "MODIFIED"):
                        self.release_due(event["object"])
            except (ApiError, OSError) as error:
                log.warning("watching volumes of node %s: %s", self._node, error)
                stop.wait(2.0)


@dataclass(frozen=True)
class Failure:
    """A release that failed: why, how many times in a row, and when to try again."""

    message: str
    attempts: int
    due: float

    @classmethod
    def after(cls, before: Failure | None, message: str) -> Failure:
        attempts = 1 if before is None else before.attempts + 1
        pause = doubling_pause(FIRST_RETRY_SECONDS, attempts, LAST_RETRY_SECONDS)
        return cls(message=message, attempts=attempts, due=time.monotonic() + pause)
