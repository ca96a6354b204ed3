"""The mount-helper DaemonSet of a backend: `stowage agent` on every node that may use it.

Privileged, on the host network (mount traffic leaves from the node, as the kubelet's own
mounts do), with `/var/lib/stowage` mounted `Bidirectional` so that what the agent mounts
there is seen by the kubelet and, through `local` PVs, by pods.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from stowage.drivers.base import STOWAGE_ROOT, BackendRef
from stowage.drivers.naming import bounded_name
from stowage.objects.metadata import backend_labels, mount_placement

COMPONENT_LABEL = "app.kubernetes.io/component"
HELPER_COMPONENT = "helper"
# DaemonSet pods are named <daemonset>-<5 characters>; pod names end up in labels.
MAX_NAME_LENGTH = 57
# Where the helper container sees the node's /sys/fs/cgroup.
HOST_CGROUP_ROOT = "/host/sys/fs/cgroup"
# Where the helper container sees the credentials of its backend (a Secret volume of the
# operator's copy of the keys the backend's Secret holds, one file a key).
CREDENTIALS_DIR = "/etc/stowage/credentials"


@dataclass(frozen=True)
class HelperSettings:
    """Where and as what the operator runs the helpers (from the operator's settings)."""

    namespace: str
    image: str
    image_pull_policy: str
    service_account: str


def helper_name(backend_name: str) -> str:
    return bounded_name("stowage-helper", backend_name, max_length=MAX_NAME_LENGTH)


def host_directory_volumes(
    directories: Sequence[str],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Volumes and mounts of node directories the helper works in besides /var/lib/stowage,
    each at its own path (the helper makes directories there, it mounts nothing)."""
    volumes: list[dict[str, Any]] = []
    mounts: list[dict[str, Any]] = []
    for index, directory in enumerate(directories):
        name = f"host-directory-{index}"
        volumes.append({"name": name, "hostPath": {"path": directory, "type": "DirectoryOrCreate"}})
        mounts.append({"name": name, "mountPath": directory})
    return volumes, mounts


def helper_daemonset(
    backend: BackendRef,
    helper: HelperSettings,
    host_directories: Sequence[str] = (),
    *,
    credentials: bool = False,
    nodes: Sequence[str] = (),
) -> dict[str, Any]:
    """`credentials`: the backend's type needs a Secret's keys to mount; the pod gets the copy
    that `helper_credentials_secret` makes, in CREDENTIALS_DIR, readable by the agent alone.
    `nodes`: the only nodes the backend lists (none: every node its mount settings allow)."""
    name = helper_name(backend.name)
    extra_volumes, extra_mounts = host_directory_volumes(host_directories)
    selector = {COMPONENT_LABEL: HELPER_COMPONENT, **backend_labels(backend.name)}
    mount = backend.spec.mount
    pod_spec: dict[str, Any] = {
        "serviceAccountName": helper.service_account,
        "hostNetwork": True,
        # The agent moves its FUSE clients out of the container's cgroups (through the host's
        # cgroup tree, stowage.agent.mounting); a pid namespace of the container's own would
        # still kill them when the container stops.
        "hostPID": True,
        "dnsPolicy": "ClusterFirstWithHostNet",
        "terminationGracePeriodSeconds": 30,
        "containers": [
            {
                "name": "agent",
                "image": helper.image,
                "imagePullPolicy": helper.image_pull_policy,
                "args": ["agent", "--backend", backend.name],
                "env": [
                    {
                        "name": "NODE_NAME",
                        "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}},
                    },
                    {
                        "name": "POD_NAMESPACE",
                        "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}},
                    },
                    {"name": "STOWAGE_LOG_FORMAT", "value": "json"},
                ],
                "securityContext": {"privileged": True},
                "volumeMounts": [
                    {
                        "name": "stowage",
                        "mountPath": STOWAGE_ROOT,
                        "mountPropagation": "Bidirectional",
                    },
                    {"name": "host-cgroups", "mountPath": HOST_CGROUP_ROOT},
                    *extra_mounts,
                ],
            }
        ],
        "volumes": [
            {
                "name": "stowage",
                "hostPath": {"path": STOWAGE_ROOT, "type": "DirectoryOrCreate"},
            },
            {"name": "host-cgroups", "hostPath": {"path": "/sys/fs/cgroup", "type": "Directory"}},
            *extra_volumes,
        ],
    }
    if credentials:
        pod_spec["containers"][0]["volumeMounts"].append(
            {"name": "credentials", "mountPath": CREDENTIALS_DIR, "readOnly": True}
        )
        # Optional: without the copy (its Secret is missing) the agent says so and the pod runs.
        secret = {"secretName": name, "optional": True, "defaultMode": 0o400}
        pod_spec["volumes"].append({"name": "credentials", "secret": secret})
    pod_spec.update(mount_placement(mount))
    if nodes:
        # By name, as the DaemonSet controller itself pins each pod (not every node's
        # hostname label is its name); a field selector takes one name, so a term a node.
        terms = [
            {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node]}]}
            for node in sorted(nodes)
        ]
        pod_spec["affinity"] = {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}
            }
        }
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": name, "namespace": helper.namespace, "labels": selector},
        "spec": {
            "selector": {"matchLabels": selector},
            "updateStrategy": {"type": "RollingUpdate"},
            "template": {"metadata": {"labels": selector}, "spec": pod_spec},
        },
    }


def mount_order_config_map(
    backend: BackendRef, helper: HelperSettings, order: dict[str, str]
) -> dict[str, Any]:
    """Each node's server order ("host,host,..."), read by its helper when it mounts."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": helper_name(backend.name),
            "namespace": helper.namespace,
            "labels": {COMPONENT_LABEL: HELPER_COMPONENT, **backend_labels(backend.name)},
        },
        "data": order,
    }


def helper_credentials_secret(
    backend: BackendRef, helper: HelperSettings, data: dict[str, str]
) -> dict[str, Any]:
    """The helpers' copy of the keys of the backend's Secret (base64 `data`, as read): a Secret
    in the helper namespace, where pods can mount it, named like the DaemonSet."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": helper_name(backend.name),
            "namespace": helper.namespace,
            "labels": {COMPONENT_LABEL: HELPER_COMPONENT, **backend_labels(backend.name)},
        },
        "type": "Opaque",
        "data": dict(data),
    }
