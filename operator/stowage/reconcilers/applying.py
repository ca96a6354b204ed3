"""Owned objects written only when they drifted (the applied-hash annotation tells), or only
when they are missing."""

from __future__ import annotations

import logging

from stowage.kube import AlreadyExistsError, Json
from stowage.kube.resources import Resource
from stowage.reconcilers.backend_state import needs_apply
from stowage.reconcilers.context import Runtime

logger = logging.getLogger(__name__)


async def apply_drifted(runtime: Runtime, resource: Resource, manifest: Json) -> Json | None:
    """The object as it is now, applied (server-side) first if it is missing or drifted."""
    metadata = manifest["metadata"]
    namespace = metadata.get("namespace")
    current: Json | None = await runtime.call(
        runtime.kube.get, resource, metadata["name"], namespace
    )
    if needs_apply(manifest, current):
        current = await runtime.call(runtime.kube.apply, resource, manifest)
        where = f"{namespace}/{metadata['name']}" if namespace else metadata["name"]
        logger.info("%s %s applied", resource.kind, where)
    return current


async def create_missing(runtime: Runtime, resource: Resource, manifest: Json) -> Json:
    """The object as it is now, created from `manifest` if it did not exist: for objects that
    others change after their creation."""
    metadata = manifest["metadata"]
    namespace = metadata.get("namespace")
    current: Json | None = await runtime.call(
        runtime.kube.get, resource, metadata["name"], namespace
    )
    if current is not None:
        return current
    try:
        created: Json = await runtime.call(runtime.kube.create, resource, manifest)
    except AlreadyExistsError:
        return await create_missing(runtime, resource, manifest)
    where = f"{namespace}/{metadata['name']}" if namespace else metadata["name"]
    logger.info("%s %s created", resource.kind, where)
    return created
