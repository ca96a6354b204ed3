"""NASShare benchmark: apply-to-serving time, and NFS throughput through a share vs Ganesha on a
host. A benchmark, not a test: it asserts nothing.

Against the cluster in $KUBECONFIG (`make cluster-up` first): builds and installs stowage as
`make demo` does, makes a hostPath backend, then for each of --shares rounds applies a NASShare
and times (1) until it is Ready and (2) until a pod's first NFS read through it succeeds. Then it
reads a --size MiB file with libnfs's nfs-cp from a pod through the share's Service, and on
this machine from NFS-Ganesha on a test host (same Ganesha, same client, no Kubernetes between),
and prints both rates and their ratio.

    KUBECONFIG=... .venv/bin/python bench/nas_share.py [--shares 3] [--size 1024]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "operator"), str(REPO / "e2e")]

from stowage_e2e import hosts, scenario  # noqa: E402
from stowage_e2e.guard import network_guard  # noqa: E402
from stowage_e2e.images import ImageBuilder  # noqa: E402
from stowage_e2e.images_stowage import build_stowage_images  # noqa: E402
from stowage_e2e.install import Helm, install  # noqa: E402
from stowage_e2e.kube import Kube, pod  # noqa: E402
from stowage_e2e.servers import SERVERS_DIR, NfsGanesha  # noqa: E402

NAMESPACE = "stowage-bench-nas"
BACKEND = "bench-nas"


def exec_in(kube: Kube, name: str, *command: str) -> subprocess.CompletedProcess[str]:
    return kube.run(
        "exec", "--namespace", NAMESPACE, name, "--", *command, check=False, timeout=900
    )


def share(name: str, client_ip: str) -> dict[str, object]:
    return {
        "apiVersion": "stowage.io/v1alpha1",
        "kind": "NASShare",
        "metadata": {"name": name},
        "spec": {
            "backend": BACKEND,
            "size": "10Gi",
            "protocols": ["nfs"],
            "nfs": {"clients": [{"cidr": f"{client_ip}/32", "squash": "NoSquash"}]},
        },
    }


def make_file(path: Path, mib: int) -> None:
    command = ["dd", "if=/dev/urandom", f"of={path}", "bs=1M", f"count={mib}"]
    subprocess.run(command, check=True, capture_output=True)


def timed_copy(command: list[str]) -> float:
    started = time.monotonic()
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{command}: {result.stdout}{result.stderr}")
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shares", type=int, default=3, help="apply-to-serving rounds")
    parser.add_argument("--size", type=int, default=1024, help="MiB copied for throughput")
    args = parser.parse_args()
    kubeconfig = Path(os.environ["KUBECONFIG"])
    kube = Kube(kubeconfig)
    images = build_stowage_images(ImageBuilder())
    install(Helm(kubeconfig), images)
    kube.apply(scenario.host_path_backend(BACKEND, f"/var/lib/stowage-e2e/data/{BACKEND}"))
    scenario.wait_ready(kube, BACKEND)
    kube.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
    kube.wait_for("serviceaccount", "default", NAMESPACE, lambda _: True, timeout=60)
    kube.apply(pod("client", images.helper, ["sleep", "infinity"]), NAMESPACE)
    client_ip = kube.wait_for_pod_ready("client", NAMESPACE)["status"]["podIP"]

    ready, serving = [], []
    for _ in range(args.shares):
        name = f"files-{uuid.uuid4().hex[:6]}"
        applied = time.monotonic()
        kube.apply(share(name, client_ip), NAMESPACE)
        found = kube.wait_for(
            "nasshare", name, NAMESPACE, scenario.is_ready, timeout=300, interval=0.5
        )
        ready.append(time.monotonic() - applied)
        address, path = found["status"]["endpoints"]["nfs"].split(":", 1)
        while exec_in(kube, "client", "nfs-ls", f"nfs://{address}{path}?version=4").returncode:
            time.sleep(0.2)
        serving.append(time.monotonic() - applied)
    print(f"apply -> Ready:   median {statistics.median(ready):.1f} s, max {max(ready):.1f} s")
    print(f"apply -> serving: median {statistics.median(serving):.1f} s, max {max(serving):.1f} s")

    # Reads: libnfs 4.0 (Debian bookworm) cannot encode an NFSv4 WRITE of 4 KiB or more
    # ("ZDR error: Failed to encode COMPOUND4args"), so the file is put in place on the node
    # and read back through NFS.
    mib = args.size
    claim = kube.get("persistentvolumeclaim", f"stowage-nas-{name}-data", NAMESPACE)
    data = kube.get("persistentvolume", claim["spec"]["volumeName"])["spec"]["hostPath"]["path"]
    make_file(Path(data) / "share" / "big", mib)
    through_share = timed_copy(
        [
            "kubectl", "--kubeconfig", str(kubeconfig), "exec", "--namespace", NAMESPACE,
            "client", "--", "nfs-cp", f"nfs://{address}{path}/big?version=4", "/tmp/big",
        ]
    )  # fmt: skip
    exec_in(kube, "client", "rm", "-f", "/tmp/big")
    host = hosts.create_host()
    export = SERVERS_DIR / host.name / "export"
    ganesha = NfsGanesha.start(host, exports={str(export): "/export"})
    try:
        make_file(export / "big", mib)
        local = Path("/tmp/stowage-bench-big")
        direct = timed_copy(["nfs-cp", ganesha.url("/export/big"), str(local)])
        local.unlink()
    finally:
        ganesha.stop()
        hosts.remove_host(host)
    print(
        f"{mib} MiB read through the share (pod, Service, Ganesha): {mib / through_share:.0f} MiB/s"
    )
    print(f"{mib} MiB read straight from Ganesha on a test host: {mib / direct:.0f} MiB/s")
    print(f"ratio share/direct: {direct / through_share:.2f}")
    kube.run("delete", "namespace", NAMESPACE, "--wait=true", timeout=300)


if __name__ == "__main__":
    with network_guard():
        main()
