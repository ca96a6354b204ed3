"""Kubernetes Events (core/v1) about the objects the operator handles.

Messages are built by the reconcilers from names and reasons only: never from Secret data.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from stowage.kube.client import ApiError, Json, Kube
from stowage.kube.resources import EVENTS

COMPONENT = "stowage"
REPORTING_CONTROLLER = "stowage.io/operator"
# Events of cluster-scoped objects go to "default", as client-go's recorder does.
CLUSTER_EVENTS_NAMESPACE = "default"
MAX_MESSAGE = 1024
INSTANCE = os.environ.get("HOSTNAME") or socket.gethostname()

logger = logging.getLogger(__name__)


def event_manifest(
    involved: Mapping[str, Any], *, warning: bool, reason: str, message: str, now: datetime
) -> Json:
    metadata = involved.get("metadata", {})
    namespace = metadata.get("namespace") or CLUSTER_EVENTS_NAMESPACE
    timestamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {
            "name": f"{metadata.get('name', 'unknown')}.{time.time_ns():x}",
            "namespace": namespace,
        },
        "involvedObject": {
            "apiVersion": involved.get("apiVersion"),
            "kind": involved.get("kind"),
            "name": metadata.get("name"),
            "namespace": metadata.get("namespace"),
            "uid": metadata.get("uid"),
            "resourceVersion": metadata.get("resourceVersion"),
        },
        "type": "Warning" if warning else "Normal",
        "reason": reason,
        "message": message[:MAX_MESSAGE],
        "source": {"component": COMPONENT},
        "reportingComponent": REPORTING_CONTROLLER,
        "reportingInstance": INSTANCE,
        "firstTimestamp": timestamp,
        "lastTimestamp": timestamp,
        "count": 1,
    }


def post_event(
    kube: Kube, involved: Mapping[str, Any], *, warning: bool, reason: str, message: str
) -> None:
    """Best effort: an Event that cannot be written is logged, never fails the caller."""
    manifest = event_manifest(
        involved, warning=warning, reason=reason, message=message, now=datetime.now(UTC)
    )
    try:
        kube.create(EVENTS, manifest)
    except ApiError as error:
        if is_namespace_terminating(error):
            logger.debug("Event %s not posted: its namespace is being deleted", reason)
            return
        logger.warning("could not post Event %s (%s): %s", reason, message, error)


def is_namespace_terminating(error: ApiError) -> bool:
    """The namespace lifecycle admission refuses new objects in a namespace being deleted.

    An Event about a claim whose namespace is going away has no reader, so this refusal
    is expected, not an RBAC problem worth a warning.
    """
    return error.status == 403 and "because it is being terminated" in error.message
