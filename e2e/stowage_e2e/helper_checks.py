"""What the e2e tests of backends served by the mount helper check: the node's mount label,
the helper's mount and FUSE clients, claim directories, Events, releasing a claim."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from stowage.agent.mounting import fuse_client_pids, mount_source
from stowage.drivers.base import BACKEND_LABEL, mount_label
from stowage.objects.helper_daemonset import helper_name
from stowage_e2e import scenario
from stowage_e2e.cluster import settings
from stowage_e2e.kube import Kube

MOUNTS_DIR = Path("/var/lib/stowage/mounts")
HELPERS_NAMESPACE = "stowage-system"


def label_value(node: dict[str, Any], backend: str) -> str | None:
    labels: dict[str, str] = node["metadata"].get("labels") or {}
    return labels.get(mount_label(backend))


def mount_label_of(kube: Kube, backend: str) -> str | None:
    return label_value(kube.get("node", settings().node_name), backend)


def wait_for_label(kube: Kube, backend: str, value: str | None, timeout: float = 180) -> None:
    """Waits until the node's mount label of `backend` is `value` (None: removed)."""
    kube.wait_for(
        "node",
        settings().node_name,
        None,
        lambda node: label_value(node, backend) == value,
        timeout=timeout,
        what=f"{mount_label(backend)}={value}",
    )


def source_at(path: Path) -> str | None:
    return mount_source(str(path))


def claim_directory(kube: Kube, namespace: str, backend: str) -> Path:
    """The bound claim `data`'s directory, relative to the backend mount (as on each brick)."""
    volume = scenario.bound_volume(kube, "data", namespace)
    return Path(volume["spec"]["local"]["path"]).relative_to(MOUNTS_DIR / backend)


def events_about(kube: Kube, namespace: str, name: str, reason: str) -> list[dict[str, Any]]:
    events = kube.json(
        "--namespace",
        namespace,
        "get",
        "events",
        "--field-selector",
        f"involvedObject.name={name},reason={reason}",
        "--output",
        "json",
    )
    return list(events["items"])


def backend_events(kube: Kube, backend: str, reason: str) -> list[dict[str, Any]]:
    return events_about(kube, "default", backend, reason)


def release_claim(kube: Kube, namespace: str) -> None:
    """Deletes the writer pod and the claim `data`; waits until its volume is gone (which the
    operator does once a helper has released the volume's directory)."""
    volume = scenario.bound_volume(kube, "data", namespace)["metadata"]["name"]
    kube.delete("pod", "writer", namespace, wait=True)
    kube.delete("persistentvolumeclaim", "data", namespace, wait=True)
    kube.text("wait", "--for=delete", f"persistentvolume/{volume}", "--timeout=90s")


def fuse_clients_of(mount_point: Path) -> list[int]:
    return fuse_client_pids(str(mount_point))


def helper_pods(kube: Kube, backend: str) -> list[str]:
    pods = kube.json(
        "--namespace",
        HELPERS_NAMESPACE,
        "get",
        "pods",
        "--selector",
        f"{BACKEND_LABEL}={backend}",
        "--output",
        "json",
    )
    return [
        pod["metadata"]["name"]
        for pod in pods["items"]
        if "deletionTimestamp" not in pod["metadata"]
    ]


def restart_helper(kube: Kube, backend: str) -> None:
    """Deletes the backend's (one) helper pod and waits until its replacement is ready."""
    (helper,) = helper_pods(kube, backend)
    kube.delete("pod", helper, HELPERS_NAMESPACE, wait=True)
    kube.wait_for(
        "daemonset",
        helper_name(backend),
        HELPERS_NAMESPACE,
        lambda daemonset: daemonset.get("status", {}).get("numberReady") == 1,
        timeout=120,
        what="a new helper pod ready",
    )
    assert helper_pods(kube, backend) != [helper]
