"""The VM worker nodes of the local cluster, as the tests use them.

A VM node (e2e/cluster/local/vm.sh, vm_nodes.sh) runs Debian's stock kernel under qemu: the
kernel NFS, CIFS, iSCSI and RBD clients and device-mapper that this machine's kernel lacks, and
a second node. It is tainted, so a pod runs there only when it asks to (`place`), and a
backend's helper only when its `mount` says so (`mount_settings`).

Faults, as a test makes them: `kill()` SIGKILLs the VM's qemu (the node is lost, not drained),
`start()` boots it again on the same disk, `cut_off()` drops every packet to and from it,
`restore()` undoes that (`TestHost.cut_off_from(node.address(kube))` cuts it off one host).
"""

from __future__ import annotations

import copy
import subprocess
from dataclasses import dataclass
from typing import Any

from stowage.drivers.base import node_ready
from stowage_e2e.cluster import E2E_DIR, settings
from stowage_e2e.kube import Kube

LOCAL_SH = E2E_DIR / "cluster" / "local" / "local.sh"
HOSTNAME_LABEL = "kubernetes.io/hostname"


@dataclass(frozen=True)
class VmNode:
    name: str

    def _vm(self, command: str) -> None:
        subprocess.run(["bash", str(LOCAL_SH), "vm", command, self.name], check=True)

    def kill(self) -> None:
        self._vm("kill")

    def start(self) -> None:
        self._vm("start")

    def cut_off(self) -> None:
        self._vm("cut")

    def restore(self) -> None:
        self._vm("restore")

    def address(self, kube: Kube) -> str:
        """The node's InternalIP: its address on the test-host bridge."""
        addresses = kube.json("get", "node", self.name)["status"]["addresses"]
        return str(next(a["address"] for a in addresses if a["type"] == "InternalIP"))

    def ready(self, kube: Kube) -> bool:
        return node_ready(kube.json("get", "node", self.name))

    def wait_ready(self, kube: Kube, timeout: float = 420) -> None:
        kube.wait_for("node", self.name, None, node_ready, timeout=timeout, what="Ready")

    @property
    def toleration(self) -> dict[str, str]:
        return {"key": settings().vm_node_taint, "operator": "Exists", "effect": "NoSchedule"}

    def place(self, manifest: dict[str, Any]) -> dict[str, Any]:
        """A copy of a Pod manifest (or of a workload's, at its template) that runs here."""
        placed = copy.deepcopy(manifest)
        spec = placed["spec"]
        if "template" in spec:
            spec = spec["template"]["spec"]
        spec.setdefault("nodeSelector", {})[HOSTNAME_LABEL] = self.name
        spec.setdefault("tolerations", []).append(self.toleration)
        return placed

    def mount_settings(self) -> dict[str, Any]:
        """A backend's `mount` that puts its helper here alone."""
        return {"nodeSelector": {HOSTNAME_LABEL: self.name}, "tolerations": [self.toleration]}


@dataclass(frozen=True)
class AnyNode:
    """Placement where every node has the kernel clients (kind's nodes run the host's kernel)."""

    @property
    def name(self) -> str:
        return settings().node_name

    def place(self, manifest: dict[str, Any]) -> dict[str, Any]:
        return copy.deepcopy(manifest)

    def mount_settings(self) -> dict[str, Any]:
        return {}


def vm_nodes() -> list[VmNode]:
    return [VmNode(name) for name in settings().vm_node_names]
