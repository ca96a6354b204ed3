"""The CSI plugin process: Identity with the Controller service (in the operator's pod), the
Node service (in the node plugin on each node), or both, on one unix socket.

A node plugin given the kubelet's directory also serves the kubelet's plugin registration on
`<kubelet dir>/plugins_registry/csi.stowage.io-reg.sock`, naming its CSI socket by the path
both see (the plugin mounts the kubelet's directory at the same path)."""

from __future__ import annotations

import contextlib
import signal
import threading
from dataclasses import dataclass
from pathlib import Path

from stowage.csi import DRIVER_NAME
from stowage.csi.identity import Identity
from stowage.csi.registration import Registration, registration_socket
from stowage.csi.server import WORKERS, Service, serving
from stowage.kube import Kube

CONTROLLER_WORKERS = 32


@dataclass(frozen=True)
class PluginSettings:
    controller: bool
    node: str | None = None  # serve the Node service as this node
    endpoint: Path | None = None  # default: the kubelet's plugin directory of the driver
    kubelet_dir: Path | None = None  # register with this node's kubelet
    host_root: Path = Path("/")  # where the node's / is mounted in the node plugin
    # where the operator keeps the node side's copies of backends' Secrets (the node plugin's)
    credentials_namespace: str = "stowage-system"

    @property
    def socket(self) -> Path:
        if self.endpoint is not None:
            return self.endpoint
        if self.kubelet_dir is None:
            raise ValueError("an endpoint or the kubelet's directory is needed")
        return self.kubelet_dir / "plugins" / DRIVER_NAME / "csi.sock"


def run_plugin(kube: Kube, settings: PluginSettings, stop: threading.Event) -> None:
    """Serves until `stop` is set."""
    services: list[Service] = [Identity(ready=lambda: True).add_to]
    workers: list[threading.Thread] = []
    if settings.controller:
        from stowage.csi.controller import Controller

        services.append(Controller(kube).add_to)
    if settings.node is not None:
        from stowage.csi.checkouts import Checkouts
        from stowage.csi.node import Node
        from stowage.csi.node_capacity import NodeCapacity
        from stowage.csi.node_data import NodeData

        checkouts = Checkouts(kube, settings.node, settings.credentials_namespace)
        services.append(Node(kube, settings.node, checkouts, settings.host_root).add_to)
        tasks = [work(kube, settings.node, settings.host_root) for work in (NodeData, NodeCapacity)]
        for task in (*tasks, checkouts):
            workers.append(threading.Thread(target=task.run, args=(stop,), daemon=True))
    with contextlib.ExitStack() as stack:
        # The controller serves the provisioner's many workers: each call waits on the API.
        calls = CONTROLLER_WORKERS if settings.controller else WORKERS
        stack.enter_context(serving(settings.socket, *services, workers=calls))
        if settings.node is not None and settings.kubelet_dir is not None:
            registry = settings.kubelet_dir / "plugins_registry"
            registration = Registration(str(settings.socket))
            stack.enter_context(serving(registration_socket(registry), registration.add_to))
        for worker in workers:
            worker.start()
        stop.wait()


def run_until_signalled(kube: Kube, settings: PluginSettings) -> int:
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    run_plugin(kube, settings, stop)
    return 0
