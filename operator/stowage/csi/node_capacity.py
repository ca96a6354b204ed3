"""The node plugin's report of room: the free bytes each CSI backend has on its node.

Written as the node annotation `capacity.stowage.io/<backend>`, the one the mount helpers
write for their backends, and removed when the backend is gone or no longer offered there:
CreateVolume weighs it when it places a volume (a node without room for the claim is refused
with the reason), and GetCapacity answers from it. A backend's root that does not exist yet
(no volume was published there) is measured at its nearest existing parent: the file system
the root will be made on.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

from stowage.agent.capacity import free_bytes
from stowage.backends import backend_ref, parse_backend
from stowage.csi.node import on_host
from stowage.drivers import driver_for
from stowage.drivers.base import (
    CAPACITY_ANNOTATION_PREFIX,
    CandidateNode,
    CapacitySource,
    FileSystemSpace,
    capacity_annotation,
)
from stowage.drivers.nodes import offers
from stowage.kube import ApiError, Json, Kube
from stowage.kube.resources import NODES, STORAGE_BACKENDS

log = logging.getLogger(__name__)

REPORT_SECONDS = 15.0


def existing_parent(path: str) -> str:
    while not os.path.exists(path) and path != os.path.dirname(path):
        path = os.path.dirname(path)
    return path


def measured(source: CapacitySource, host_root: Path) -> CapacitySource:
    """The source as this process reaches it on the node."""
    if isinstance(source, FileSystemSpace):
        return FileSystemSpace(existing_parent(on_host(host_root, source.path)))
    return source


def reported_free(
    backends: list[Json], node: CandidateNode, host_root: Path
) -> dict[str, str | None]:
    """The node's capacity annotations as they should be: the free bytes here of each CSI
    backend it offers (0 when the directory cannot be measured), and None (removed) for a CSI
    backend it no longer offers and for any backend that is gone."""
    names = {body["metadata"]["name"] for body in backends}
    annotations: dict[str, str | None] = {
        key: None
        for key in node.annotations
        if key.startswith(CAPACITY_ANNOTATION_PREFIX)
        and key.removeprefix(CAPACITY_ANNOTATION_PREFIX) not in names
    }
    for body in backends:
        name = body["metadata"]["name"]
        model = parse_backend(body)
        if isinstance(model, str):
            continue
        ref = backend_ref(name, model)
        driver = driver_for(model.spec.storage_type)
        source = driver.capacity_source(ref)
        if not driver.served_by_csi(ref) or source is None:
            continue
        if not offers(ref, driver.listed_nodes(ref), node):
            annotations[capacity_annotation(name)] = None
            continue
        try:
            free = free_bytes(measured(source, host_root))
        except OSError as error:
            log.warning("backend %s on node %s: %s", name, node.name, error)
            free = 0
        annotations[capacity_annotation(name)] = str(free)
    return annotations


class NodeCapacity:
    def __init__(self, kube: Kube, node: str, host_root: Path = Path("/")) -> None:
        self._kube = kube
        self._node = node
        self._host_root = host_root

    def report(self) -> None:
        """Annotates the node with what changed since the last report."""
        body = self._kube.get(NODES, self._node)
        if body is None:
            return
        node = CandidateNode.from_manifest(body)
        found = reported_free(self._kube.list(STORAGE_BACKENDS), node, self._host_root)
        changed = {key: value for key, value in found.items() if node.annotations.get(key) != value}
        if changed:
            patch = {"metadata": {"annotations": changed}}
            self._kube.merge_patch(NODES, self._node, patch)

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                self.report()
            except (ApiError, OSError) as error:
                log.warning("reporting the capacity of node %s: %s", self._node, error)
            stop.wait(REPORT_SECONDS)
