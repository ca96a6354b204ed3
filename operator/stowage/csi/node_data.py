"""The node plugin's half of DeleteVolume: it deletes or archives the data of this node's
volumes whose BackendVolume records are being deleted, then lets the records go.

The record's finalizer `stowage.io/node-data` holds it until then; the backend's driver, with
provisioning.onDelete as it is when the volume is released, says what becomes of the data.
A backend that is gone leaves the data in place (nothing says what to do with it), and so does
a directory that is gone already.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from stowage.agent.claim_data import archive_directory_below, remove_directory_below
from stowage.api.backend import OnDelete
from stowage.api.volume import NODE_DATA_FINALIZER, BackendVolumeSpec
from stowage.backends import backend_ref, parse_backend
from stowage.csi.node import on_host
from stowage.csi.volumes import NODE_LABEL, node_label, record_spec, releasing_done
from stowage.drivers import driver_for
from stowage.drivers.base import DataLocation, ProvisionedVolume, ReleasePlan
from stowage.kube import ApiError, ConflictError, Json, Kube
from stowage.kube.resources import BACKEND_VOLUMES, STORAGE_BACKENDS

log = logging.getLogger(__name__)


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

    def release_plan(self, name: str, spec: BackendVolumeSpec) -> ReleasePlan:
        """What the backend's driver says becomes of the data now (the backend's onDelete, or
        Delete for an ephemeral type); Retain when the backend is gone or invalid."""
        location = DataLocation(path=spec.path, node=spec.node)
        body = self._kube.get(STORAGE_BACKENDS, spec.backend)
        model = parse_backend(body) if body is not None else None
        if model is None or isinstance(model, str):
            return ReleasePlan(action=OnDelete.RETAIN, location=location)
        volume = ProvisionedVolume(name=name, capacity_bytes=spec.capacity_bytes, location=location)
        driver = driver_for(model.spec.storage_type)
        return driver.release(backend_ref(spec.backend, model), volume)

    def release(self, record: Json) -> None:
        """Carries out the release plan on the volume's directory, then removes the finalizer
        (only this one, and only from the version read)."""
        name = record["metadata"]["name"]
        spec = record_spec(record)
        plan = self.release_plan(name, spec)
        root, path = on_host(self._host_root, spec.root), on_host(self._host_root, spec.path)
        if plan.action is OnDelete.DELETE:
            done = remove_directory_below(root, path)
        elif plan.action is OnDelete.ARCHIVE:
            if plan.archive_name is None:
                raise ValueError(f"the release plan of volume {name} names no archive")
            done = archive_directory_below(root, path, plan.archive_name)
        else:
            done = False
        outcome = "done" if done else "nothing there"
        log.info("volume %s released (%s: %s)", name, plan.action.value, outcome)
        self._kube.merge_patch(BACKEND_VOLUMES, name, releasing_done(record))

    def release_due(self, record: Json) -> None:
        if not is_releasing(record):
            return
        try:
            self.release(record)
        except ConflictError:
            pass  # changed meanwhile: its next watch event brings the new version
        except (OSError, ValueError, ApiError) as error:
            log.warning("volume %s not released yet: %s", record["metadata"]["name"], error)

    def run(self, stop: threading.Event) -> None:
        """Watches this node's records until `stop`; each watch begins with the records that
        exist, so one missed while the plugin was down is released when it is back."""
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
