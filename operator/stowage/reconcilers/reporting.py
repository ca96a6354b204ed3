"""Status and Events of a stowage resource: conditions and observed fields into the status
patch, and one Event for each condition that changed."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import kopf

from stowage.api.common import Condition
from stowage.kube.events import post_event
from stowage.kube.resources import Resource
from stowage.reconcilers.backend_state import status_update
from stowage.reconcilers.context import Runtime
from stowage.status import DEGRADED, now_rfc3339

logger = logging.getLogger(__name__)


async def report(
    runtime: Runtime,
    resource: Resource,
    body: Mapping[str, Any],
    patch: kopf.Patch,
    conditions: list[Condition],
    observed: dict[str, Any],
) -> None:
    update = status_update(
        body.get("status") or {},
        conditions,
        generation=int(body["metadata"].get("generation") or 0),
        now=now_rfc3339(),
        **observed,
    )
    for key, value in update.fields.items():
        patch.status[key] = value
    for condition in update.changed:
        await announce(runtime, resource, body, condition)


async def announce(
    runtime: Runtime, resource: Resource, body: Mapping[str, Any], condition: Condition
) -> None:
    healthy = condition.status.value == ("False" if condition.type == DEGRADED else "True")
    if not condition.message and healthy:
        return
    metadata = body["metadata"]
    where = (
        f"{metadata['namespace']}/{metadata['name']}" if resource.namespaced else metadata["name"]
    )
    logger.info(
        "%s %s: %s=%s (%s) %s",
        resource.kind,
        where,
        condition.type,
        condition.status.value,
        condition.reason,
        condition.message,
    )
    involved = {"apiVersion": resource.api_version, "kind": resource.kind, **body}
    await runtime.call(
        post_event,
        runtime.kube,
        involved,
        warning=not healthy,
        reason=condition.reason,
        message=condition.message,
    )
