"""What becomes of a CSI volume's data when the volume is deleted, as its backend says now:
asked by the node plugin (node-local data) and the CSI controller (data on a server) alike."""

from __future__ import annotations

from stowage.api.backend import OnDelete
from stowage.api.volume import BackendVolumeSpec
from stowage.backends import backend_ref, read_backend
from stowage.drivers import driver_for
from stowage.drivers.base import DataLocation, ProvisionedVolume, ReleasePlan
from stowage.kube import Kube


def release_plan(kube: Kube, name: str, spec: BackendVolumeSpec) -> ReleasePlan:
    """The backend's driver's plan for the volume (the backend's onDelete as it is when the
    volume is released, or Delete for an ephemeral type); Retain when the backend is gone or
    invalid, since nothing then says what to do with the data."""
    location = DataLocation(path=spec.path, server=spec.server, node=spec.node)
    model = read_backend(kube, spec.backend)
    if isinstance(model, str):
        return ReleasePlan(action=OnDelete.RETAIN, location=location)
    volume = ProvisionedVolume(name=name, capacity_bytes=spec.capacity_bytes, location=location)
    return driver_for(model.spec.storage_type).release(backend_ref(spec.backend, model), volume)
