"""In-memory indexes fed by kopf's watch streams: the operator's informer caches.

Handlers read these instead of listing the API: a claim is provisioned with one write and no
read. kopf fills every index from its initial listing before it calls any other handler.
Each index maps a key to a `kopf.Store` of plain-dict copies of the objects.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from typing import Any

import kopf

from stowage.drivers.base import BACKEND_LABEL
from stowage.kube import Json
from stowage.kube.resources import (
    BACKEND_VOLUMES,
    CSI_DRIVERS,
    NODES,
    PERSISTENT_VOLUMES,
    STORAGE_BACKENDS,
    STORAGE_CLASSES,
    Resource,
)

Index = kopf.Index[str, Json]


def _snapshot(body: Mapping[str, Any]) -> Json:
    return copy.deepcopy(dict(body))


def volumes_by_backend(body: kopf.Body, labels: kopf.Labels, **_: Any) -> dict[str, Json]:
    return {str(labels[BACKEND_LABEL]): _snapshot(body)}


def records_by_backend(body: kopf.Body, labels: kopf.Labels, **_: Any) -> dict[str, Json]:
    """The BackendVolume records of the CSI driver's volumes, by backend."""
    return {str(labels[BACKEND_LABEL]): _snapshot(body)}


def storage_classes(body: kopf.Body, name: str, **_: Any) -> dict[str, Json]:
    return {name: _snapshot(body)}


def backends(body: kopf.Body, name: str, **_: Any) -> dict[str, Json]:
    return {name: _snapshot(body)}


def nodes(body: kopf.Body, name: str, **_: Any) -> dict[str, Json]:
    return {name: _snapshot(body)}


def csi_drivers(body: kopf.Body, name: str, **_: Any) -> dict[str, Json]:
    return {name: {"name": name}}


def register(registry: kopf.OperatorRegistry) -> None:
    def index(resource: Resource, **filters: Any) -> Any:
        return kopf.index(resource.api_version, resource.plural, registry=registry, **filters)

    index(PERSISTENT_VOLUMES, labels={BACKEND_LABEL: kopf.PRESENT})(volumes_by_backend)
    index(BACKEND_VOLUMES, labels={BACKEND_LABEL: kopf.PRESENT})(records_by_backend)
    index(STORAGE_CLASSES)(storage_classes)
    index(STORAGE_BACKENDS)(backends)
    index(NODES)(nodes)
    index(CSI_DRIVERS)(csi_drivers)


@dataclass(frozen=True)
class Caches:
    """The indexes, as kopf hands them to every handler (by the indexing functions' names)."""

    storage_classes: Index
    backends: Index
    volumes_by_backend: Index
    records_by_backend: Index
    nodes: Index
    csi_drivers: Index

    @classmethod
    def of(cls, handler_kwargs: Mapping[str, Any]) -> Caches:
        return cls(**{f.name: handler_kwargs[f.name] for f in fields(cls)})


def one(index: Index, key: str) -> Json | None:
    """The single object stored under a name-keyed index, if any."""
    store = index.get(key)
    return next(iter(store), None) if store else None


def all_of(index: Index, key: str) -> list[Json]:
    store: Iterable[Json] = index.get(key) or ()
    return list(store)


def values(index: Index) -> list[Json]:
    return [item for store in index.values() for item in store]
