"""Commands run on a node itself, as its root: its devices, mounts, LVM and files.

`LocalShell` is this machine (the local provider's first node; a kind node shares this
machine's kernel and devices). `PodShell` reaches a node the tests have no other way into (a
VM node): a privileged pod with the node's PID namespace there, which enters PID 1's
namespaces for each command, as `kubectl debug node` does.
"""

from __future__ import annotations

import subprocess
from typing import Any, Protocol

from stowage_e2e.cluster import settings
from stowage_e2e.kube import Kube

SHELL_NAMESPACE = "stowage-e2e-nodes"
HOSTNAME_LABEL = "kubernetes.io/hostname"


class NodeShell(Protocol):
    def run(self, *command: str) -> subprocess.CompletedProcess[str]:
        """`command` on the node, its output captured; never raises for its exit status."""
        ...


class LocalShell:
    def run(self, *command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(command, capture_output=True, text=True, check=False)


def shell_pod(node: str, image: str, tolerations: list[dict[str, str]]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": f"shell-{node}"},
        "spec": {
            "nodeSelector": {HOSTNAME_LABEL: node},
            "tolerations": tolerations,
            "hostPID": True,
            "terminationGracePeriodSeconds": 1,
            "containers": [
                {
                    "name": "shell",
                    "image": image,
                    "imagePullPolicy": "Never",
                    "command": ["sleep", "infinity"],
                    "securityContext": {"privileged": True},
                }
            ],
        },
    }


class PodShell:
    def __init__(self, kube: Kube, node: str, tolerations: list[dict[str, str]]) -> None:
        self._kube = kube
        self.pod = f"shell-{node}"
        kube.run("create", "namespace", SHELL_NAMESPACE, check=False)
        kube.apply(shell_pod(node, settings().base_image, tolerations), SHELL_NAMESPACE)
        kube.wait_for_pod_ready(self.pod, SHELL_NAMESPACE, timeout=300)

    def run(self, *command: str) -> subprocess.CompletedProcess[str]:
        enter = ["nsenter", "--target", "1", "--mount", "--uts", "--ipc", "--net", "--"]
        return self._kube.run(
            "exec", "--namespace", SHELL_NAMESPACE, self.pod, "--", *enter, *command, check=False
        )

    def remove(self) -> None:
        self._kube.delete("namespace", SHELL_NAMESPACE, wait=False)


def output(shell: NodeShell, *command: str) -> str:
    """What `command` printed on the node; RuntimeError with its words when it failed."""
    done = shell.run(*command)
    if done.returncode != 0:
        raise RuntimeError(f"{command[0]}: {(done.stderr or done.stdout).strip()}")
    return done.stdout


def mount_source_on(shell: NodeShell, path: str) -> str | None:
    """The source of the mount at `path` on the node, None when nothing is mounted there."""
    found = shell.run("findmnt", "--noheadings", "--output", "SOURCE", "--mountpoint", path)
    if found.returncode != 0:
        return None
    return found.stdout.strip() or None
