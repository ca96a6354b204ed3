"""Provisioning benchmark: N claims at once against one backend, PVC -> Bound latency.

Runs against the cluster of --kubeconfig with the network guard on (`scripts/install.sh` first):
applies the CRDs, starts `stowage run` (unless --operator-running), starts NFS-Ganesha on a
test host, makes an NFS backend of it (Immediate binding: every claim is provisioned at
once, nothing waits for a scheduler), creates the claims from a thread pool, and waits until all
are Bound. Prints latency percentiles and the API server's write requests per claim (from its
/metrics `apiserver_request_total`, before and after), split by resource, and the operator's own
requests (`stowage_api_requests_total`). A benchmark, not a test: it asserts nothing.

    .venv/bin/python bench/provision.py --kubeconfig "$KUBECONFIG" [--claims 200]

With --backend hostpath it measures, in one run on the chart-installed stowage, the floor set by
the API server and the PV controller (claims bound to PVs made beforehand, no provisioner), the
stowage.io/provisioner and the CSI driver (csi-provisioner plus stowage's Controller service),
all hostPath with Immediate binding.
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "operator"), str(REPO / "e2e"), str(REPO / "tests" / "integration")]

from itkit import Api, OperatorProcess, storage_backend, wait_for  # noqa: E402

from stowage.kube import Connection, Json, Kube  # noqa: E402
from stowage.kube.resources import (  # noqa: E402
    NAMESPACES,
    PERSISTENT_VOLUME_CLAIMS,
    PERSISTENT_VOLUMES,
    STORAGE_BACKENDS,
    STORAGE_CLASSES,
)
from stowage_e2e import hosts  # noqa: E402
from stowage_e2e.cluster import settings  # noqa: E402
from stowage_e2e.guard import network_guard  # noqa: E402
from stowage_e2e.images import ImageBuilder as ClusterImageBuilder  # noqa: E402
from stowage_e2e.images_stowage import build_stowage_images  # noqa: E402
from stowage_e2e.install import Helm, install  # noqa: E402
from stowage_e2e.servers import SERVERS_DIR, NfsGanesha  # noqa: E402

WRITE_VERBS = {"POST", "PUT", "PATCH", "DELETE", "APPLY"}
SAMPLE = re.compile(r"^(?P<name>[a-z_]+)\{(?P<labels>[^}]*)\} (?P<value>[0-9.e+]+)$")
LABEL = re.compile(r'(\w+)="([^"]*)"')


def parse_samples(text: str, metric: str) -> list[tuple[dict[str, str], float]]:
    samples = []
    for line in text.splitlines():
        match = SAMPLE.match(line)
        if match and match["name"] == metric:
            samples.append((dict(LABEL.findall(match["labels"])), float(match["value"])))
    return samples


def api_server_writes(api: Api) -> Counter[str]:
    """Write requests the API server has served so far, by resource."""
    text = api.kubectl("get", "--raw", "/metrics")
    writes: Counter[str] = Counter()
    for labels, value in parse_samples(text, "apiserver_request_total"):
        if labels.get("verb") in WRITE_VERBS:
            writes[labels.get("resource", "?")] += int(value)
    return writes


def operator_requests(operator: OperatorProcess | None) -> Counter[str]:
    writes: Counter[str] = Counter()
    if operator is None:
        return writes
    for labels, value in parse_samples(operator.metrics(), "stowage_api_requests_total"):
        writes[f"{labels['method']} {labels['resource']}"] += int(value)
    return writes


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def claim(
    name: str, namespace: str, storage_class: str, access_mode: str = "ReadWriteOnce"
) -> Json:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "storageClassName": storage_class,
            "accessModes": [access_mode],
            "resources": {"requests": {"storage": "1Gi"}},
        },
    }


@dataclass(frozen=True)
class Measured:
    elapsed: float
    latencies: list[float]
    writes: Counter[str]
    ours: Counter[str]


def measure(
    api: Api,
    kube: Kube,
    namespace: str,
    count: int,
    clients: int,
    create: Callable[[str], None],
    timeout: float,
    operator: OperatorProcess | None = None,
) -> Measured:
    """Creates `count` claims with `create` from `clients` threads; PVC created -> Bound."""
    writes_before, ours_before = api_server_writes(api), operator_requests(operator)
    names = [f"claim-{i:04d}" for i in range(count)]
    created: dict[str, float] = {}

    def timed(name: str) -> None:
        create(name)
        created[name] = time.monotonic()

    started = time.monotonic()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(timed, names))
    bound: dict[str, float] = {}

    def all_bound() -> bool:
        now = time.monotonic()
        for item in kube.list(PERSISTENT_VOLUME_CLAIMS, namespace=namespace):
            if (item.get("status") or {}).get("phase") == "Bound":
                bound.setdefault(item["metadata"]["name"], now)
        return len(bound) == len(names)

    wait_for(all_bound, timeout=timeout, what=f"{count} claims Bound")
    elapsed = time.monotonic() - started
    time.sleep(2)  # let trailing Events and status writes land in the counts
    return Measured(
        elapsed=elapsed,
        latencies=[bound[name] - created[name] for name in names],
        writes=api_server_writes(api) - writes_before,
        ours=operator_requests(operator) - ours_before,
    )


def namespace_for(kube: Kube, prefix: str) -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:6]}"
    kube.create(NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    return name


def run_nfs(args: argparse.Namespace, api: Api, kube: Kube) -> None:
    operator = None
    if not args.operator_running:
        log = Path(tempfile.mkdtemp(prefix="stowage-bench-")) / "operator.log"
        operator = OperatorProcess(args.kubeconfig, log)
        operator.start()
        print(f"operator log: {log}")
    backend = f"bench-{uuid.uuid4().hex[:6]}"
    host = hosts.create_host()
    ganesha = NfsGanesha.start(host, exports={str(SERVERS_DIR / host.name / "export"): "/bench"})
    namespace = ""
    try:
        api.apply(
            storage_backend(
                backend,
                {
                    "nfs": {"servers": [host.ip], "path": "/bench"},
                    "storageClass": {"volumeBindingMode": "Immediate"},
                },
            )
        )
        api.wait_condition(backend, status="True", reason="Available")
        namespace = namespace_for(kube, backend)

        def create(name: str) -> None:
            kube.create(PERSISTENT_VOLUME_CLAIMS, claim(name, namespace, backend, "ReadWriteMany"))

        measured = measure(
            api, kube, namespace, args.claims, args.clients, create, args.timeout, operator
        )
        report("nfs (stowage.io/provisioner)", args.claims, measured)
    finally:
        if namespace:
            kube.delete(NAMESPACES, namespace)
        kube.delete(STORAGE_BACKENDS, backend)
        if operator is not None:
            wait_for(
                lambda: api.gone(STORAGE_BACKENDS, backend),
                timeout=300,
                what="the bench backend deleted",
            )
            operator.stop()
        ganesha.stop()
        hosts.remove_host(host)


def prebound_volume(name: str, namespace: str, storage_class: str, path: str) -> Json:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": f"{namespace}-{name}"},
        "spec": {
            "capacity": {"storage": "1Gi"},
            "accessModes": ["ReadWriteOnce"],
            "storageClassName": storage_class,
            "persistentVolumeReclaimPolicy": "Delete",
            "hostPath": {"path": f"{path}/{name}", "type": "DirectoryOrCreate"},
            "claimRef": {"namespace": namespace, "name": name},
        },
    }


def run_host_path(args: argparse.Namespace, api: Api, kube: Kube) -> None:
    """The floor and both provisioners of hostPath, in one run against the chart's stowage:
    claims bound to PVs made beforehand with no provisioner, the stowage.io/provisioner, and
    the CSI driver (csi-provisioner and stowage's Controller service)."""
    suffix = uuid.uuid4().hex[:6]
    root = Path(tempfile.mkdtemp(prefix="stowage-bench-", dir="/var/tmp"))
    node = settings().node_name
    floor_class = f"bench-floor-{suffix}"
    kube.create(
        STORAGE_CLASSES,
        {
            "apiVersion": "storage.k8s.io/v1",
            "kind": "StorageClass",
            "metadata": {"name": floor_class},
            "provisioner": "kubernetes.io/no-provisioner",
        },
    )
    backends = {
        "hostPath (stowage.io/provisioner)": f"bench-intree-{suffix}",
        "hostPath (CSI: csi-provisioner + stowage)": f"bench-csi-{suffix}",
    }
    namespaces: list[str] = []
    try:
        for label, backend in backends.items():
            spec: dict[str, object] = {
                "hostPath": {"path": str(root / backend), "nodes": [node]},
                "storageClass": {"volumeBindingMode": "Immediate"},
            }
            if "CSI" in label:
                spec["provisioning"] = {"csi": True}
            api.apply(storage_backend(backend, spec))
            api.wait_condition(backend, status="True", reason="Available")

        floor = namespace_for(kube, "bench-floor")
        namespaces.append(floor)

        def create_prebound(name: str) -> None:
            volume = prebound_volume(name, floor, floor_class, str(root / "floor"))
            kube.create(PERSISTENT_VOLUMES, volume)
            kube.create(PERSISTENT_VOLUME_CLAIMS, claim(name, floor, floor_class))

        measured = measure(
            api, kube, floor, args.claims, args.clients, create_prebound, args.timeout
        )
        report("floor: pre-bound hostPath PVs, no provisioner", args.claims, measured)
        for label, backend in backends.items():
            namespace = namespace_for(kube, backend)
            namespaces.append(namespace)

            def create(name: str, namespace: str = namespace, backend: str = backend) -> None:
                kube.create(PERSISTENT_VOLUME_CLAIMS, claim(name, namespace, backend))

            measured = measure(
                api, kube, namespace, args.claims, args.clients, create, args.timeout
            )
            report(label, args.claims, measured)
    finally:
        for namespace in namespaces:
            kube.delete(NAMESPACES, namespace)
        for backend in backends.values():
            kube.delete(STORAGE_BACKENDS, backend)
        for backend in backends.values():
            wait_for(lambda b=backend: api.gone(STORAGE_BACKENDS, b), timeout=300, what="deleted")
        kube.delete(STORAGE_CLASSES, floor_class)
        for volume in kube.list(PERSISTENT_VOLUMES):
            if volume["spec"].get("storageClassName") == floor_class:
                kube.delete(PERSISTENT_VOLUMES, volume["metadata"]["name"])
        shutil.rmtree(root, ignore_errors=True)


def run(args: argparse.Namespace) -> None:
    kube = Kube(Connection.load(args.kubeconfig, pool_size=args.clients), timeout=60)
    api = Api(args.kubeconfig, kube)
    if args.backend == "hostpath":
        # The CSI variant needs the chart's operator, csi-provisioner and node plugin.
        install(Helm(args.kubeconfig), build_stowage_images(ClusterImageBuilder()))
        run_host_path(args, api, kube)
        return
    crds = subprocess.run(
        [sys.executable, "-m", "stowage", "crds"], capture_output=True, text=True, check=True
    ).stdout
    api.kubectl("apply", "--server-side", "--force-conflicts", "-f", "-", stdin=crds)
    api.kubectl("wait", "--for=condition=Established", "crd/storagebackends.stowage.io")
    run_nfs(args, api, kube)


def report(label: str, claims: int, measured: Measured) -> None:
    elapsed, latencies, writes, ours = (
        measured.elapsed,
        measured.latencies,
        measured.writes,
        measured.ours,
    )
    print(f"\n{label}: {claims} claims Bound in {elapsed:.2f} s ({claims / elapsed:.1f} claims/s)")
    print(
        "PVC created -> Bound (s): "
        + ", ".join(f"p{int(q * 100)} {percentile(latencies, q):.3f}" for q in (0.5, 0.95, 0.99))
        + f", max {max(latencies):.3f}, mean {statistics.fmean(latencies):.3f}"
    )
    total = sum(writes.values())
    print(f"API server write requests: {total} = {total / claims:.2f} per claim, by resource:")
    for resource, count in writes.most_common():
        print(f"  {resource:28s} {count:6d}  {count / claims:5.2f}/claim")
    if ours:
        print("the operator's own requests (all verbs):")
        for key, count in ours.most_common():
            print(f"  {key:28s} {count:6d}  {count / claims:5.2f}/claim")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kubeconfig", type=Path, required=True)
    parser.add_argument("--claims", type=int, default=200)
    parser.add_argument("--clients", type=int, default=20, help="threads creating claims")
    parser.add_argument("--timeout", type=float, default=300)
    parser.add_argument(
        "--backend",
        choices=("nfs", "hostpath"),
        default="nfs",
        help="nfs: an NFS-Ganesha backend, `stowage run` started here; hostpath: the floor "
        "(pre-bound PVs), the stowage.io/provisioner and the CSI driver in one run, with "
        "stowage installed by its chart",
    )
    parser.add_argument(
        "--operator-running",
        action="store_true",
        help="an operator already runs against the cluster: do not start one",
    )
    with network_guard():
        run(parser.parse_args())


if __name__ == "__main__":
    main()
