"""stowage's main job on the cluster in $KUBECONFIG (`make demo` brings up the local one first).

Builds and imports the images, installs the chart, starts NFS-Ganesha on a test host, applies
a hostPath and an NFS StorageBackend, claims from both, runs a pod that writes to the hostPath
claim, and prints what a user sees. Everything stays up to explore; `make cluster-down` ends it.

    python -m stowage_e2e.demo
"""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

from stowage_e2e import hosts, scenario
from stowage_e2e.images import ImageBuilder
from stowage_e2e.images_stowage import build_stowage_images
from stowage_e2e.install import Helm, install
from stowage_e2e.kube import Kube
from stowage_e2e.servers import SERVERS_DIR, NfsGanesha

NAMESPACE = "stowage-demo"
HOST_PATH_BACKEND = "demo-local"
NFS_BACKEND = "demo-nfs"
HOST_PATH_ROOT = "/var/lib/stowage-e2e/data/demo"
DEMO_HOST_INDEX = hosts.MAX_HOSTS - 1


def step(message: str) -> None:
    print(f"\n=== {message} ({time.strftime('%H:%M:%S')})", flush=True)


def nfs_server() -> NfsGanesha:
    """NFS-Ganesha on the demo's own test host (replaced if a previous demo left one)."""
    host = hosts.TestHost(DEMO_HOST_INDEX)
    if host in hosts.existing_hosts():
        hosts.remove_host(host)
    host = hosts.create_host(DEMO_HOST_INDEX)
    return NfsGanesha.start(host, {str(SERVERS_DIR / host.name / "export"): "/export"})


def main() -> None:
    started = time.monotonic()
    kubeconfig = Path(os.environ["KUBECONFIG"])
    kube = Kube(kubeconfig)

    step("building the operator and helper images, importing them into the cluster")
    images = build_stowage_images(ImageBuilder())

    step("helm upgrade --install stowage charts/stowage")
    install(Helm(kubeconfig), images)

    step("NFS-Ganesha on a test host")
    ganesha = nfs_server()
    print(f"serving nfs://{ganesha.host.ip}/export from {ganesha.host.name}")

    step("StorageBackends: hostPath and NFS")
    kube.apply(scenario.host_path_backend(HOST_PATH_BACKEND, HOST_PATH_ROOT))
    nfs = scenario.nfs_backend(NFS_BACKEND, ganesha.host.ip, "/export")
    nfs["spec"]["storageClass"] = {"volumeBindingMode": "Immediate"}
    kube.apply(nfs)
    for backend in (HOST_PATH_BACKEND, NFS_BACKEND):
        scenario.wait_ready(kube, backend)

    step(f"claims and a writer pod in namespace {NAMESPACE}")
    kube.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
    kube.wait_for("serviceaccount", "default", NAMESPACE, lambda _: True, timeout=60)
    kube.apply(scenario.claim("notes", HOST_PATH_BACKEND), NAMESPACE)
    kube.apply(scenario.claim("shared", NFS_BACKEND, "5Gi", "ReadWriteMany"), NAMESPACE)
    kube.delete("pod", "writer", NAMESPACE, wait=True)
    text = f"hello from a pod, {uuid.uuid4().hex[:8]}"
    kube.apply(scenario.writer_pod("writer", "notes", images.operator, text), NAMESPACE)
    kube.wait_for_pod_phase("writer", NAMESPACE, timeout=180)
    volume = scenario.bound_volume(kube, "notes", NAMESPACE)
    nfs_volume = scenario.bound_volume(kube, "shared", NAMESPACE)
    for backend in (HOST_PATH_BACKEND, NFS_BACKEND):  # counted on the next resync
        kube.wait_for(
            "storagebackend",
            backend,
            None,
            lambda found: found.get("status", {}).get("volumes", 0) >= 1,
            what="its volume counted",
        )

    step("kubectl get storagebackends,pvc,pv")
    print(kube.text("get", "storagebackends"))
    print(kube.text("get", "pvc", "--namespace", NAMESPACE))
    demo_volumes = f"stowage.io/backend in ({HOST_PATH_BACKEND},{NFS_BACKEND})"
    print(kube.text("get", "pv", "-l", demo_volumes))

    step("the data")
    print(f"the pod's log:        {kube.logs('writer', NAMESPACE).strip()}")
    on_node = Path(volume["spec"]["hostPath"]["path"]) / "hello.txt"
    print(f"on the node, {on_node}:\n                      {on_node.read_text().strip()}")
    source = nfs_volume["spec"]["nfs"]
    print(f"the NFS claim's PV:   nfs://{source['server']}{source['path']}")
    parent = source["path"].rsplit("/", 1)[0] or "/"
    print(f"its directory on the server, listed over NFSv4 by libnfs: {ganesha.list(parent)}")

    print(f"\ndemo done in {time.monotonic() - started:.0f} s; KUBECONFIG={kubeconfig}")
    print("explore with kubectl; `make cluster-down` removes everything")


if __name__ == "__main__":
    main()
