"""Provisioning benchmark: N claims at once against one backend, PVC -> Bound latency.

Runs against the cluster of --kubeconfig with the network guard on (`scripts/install.sh` first),
with stowage installed by its chart. It measures, in one run, the floor set by the API server
and the PV controller (claims bound to PVs made beforehand, no provisioner), then the
stowage.io/provisioner and the CSI driver (csi-provisioner plus stowage's Controller service)
on the same type, Immediate binding (every claim is provisioned at once, nothing waits for a
scheduler): hostPath, or nfs on an NFS-Ganesha test host. It creates the claims from a thread
pool and waits until all are Bound. Prints latency percentiles, the API server's write
requests per claim (from its /metrics `apiserver_request_total`, before and after) split by
resource, and for the CSI driver the CreateVolume times as csi-provisioner measured them
(`csi_sidecar_operations_seconds`): the driver's share of the latency. A benchmark, not a
test: it asserts nothing.

    .venv/bin/python bench/provision.py --kubeconfig "$KUBECONFIG" [--backend nfs|hostpath]

With --backend nfs-local it measures the stowage.io/provisioner alone with `stowage run`
started here (unless --operator-running), and counts the operator's own requests
(`stowage_api_requests_total`).
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
    PODS,
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
CHART_NAMESPACE = "stowage-system"
PROVISIONER_METRICS_PORT = 8090  # the chart's csi.provisioner.metricsPort
SIDECAR_BUCKETS = "csi_sidecar_operations_seconds_bucket"


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


def sidecar_create_seconds(api: Api) -> list[tuple[float, float]]:
    """The csi-provisioner's histogram of its CreateVolume calls (upper bound, cumulative
    count), from its /metrics through the API server's proxy to the operator's pod."""
    (pod,) = api.kube.list(
        PODS, namespace=CHART_NAMESPACE, label_selector="app.kubernetes.io/component=operator"
    )
    path = (
        f"/api/v1/namespaces/{CHART_NAMESPACE}/pods/{pod['metadata']['name']}:"
        f"{PROVISIONER_METRICS_PORT}/proxy/metrics"
    )
    buckets = []
    for labels, value in parse_samples(api.kubectl("get", "--raw", path), SIDECAR_BUCKETS):
        if labels.get("method_name", "").endswith("/CreateVolume"):
            bound = float("inf") if labels["le"] == "+Inf" else float(labels["le"])
            buckets.append((bound, value))
    return sorted(buckets)


def histogram_quantile(buckets: list[tuple[float, float]], fraction: float) -> float:
    """The bucket bound below which `fraction` of the observations are (Prometheus' way,
    without interpolation: an upper bound)."""
    total = buckets[-1][1]
    for bound, count in buckets:
        if count >= fraction * total:
            return bound
    return float("inf")


def report_driver_share(
    before: list[tuple[float, float]], after: list[tuple[float, float]]
) -> None:
    counts = dict(before)
    calls = [(bound, count - counts.get(bound, 0.0)) for bound, count in after]
    if not calls or calls[-1][1] == 0:
        return
    quantiles = ", ".join(
        f"p{int(q * 100)} <= {histogram_quantile(calls, q):g}" for q in (0.5, 0.99)
    )
    print(
        f"the driver's share: {calls[-1][1]:.0f} CreateVolume calls as csi-provisioner timed "
        f"them (s): {quantiles}; the rest of each claim's latency is the sidecar's queue, "
        "its API writes and the PV controller's binding"
    )


def run_against_floor(
    args: argparse.Namespace, api: Api, kube: Kube, backends: dict[str, dict[str, object]]
) -> None:
    """The floor set by the API server and the PV controller (claims bound to hostPath PVs
    made beforehand, no provisioner), then each of `backends` (label -> StorageBackend spec,
    Immediate binding), in one run against the chart's stowage."""
    suffix = uuid.uuid4().hex[:6]
    root = Path(tempfile.mkdtemp(prefix="stowage-bench-", dir="/var/tmp"))
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
    names = {label: f"bench-{index}-{suffix}" for index, label in enumerate(backends)}
    namespaces: list[str] = []
    try:
        for label, spec in backends.items():
            immediate = {**spec, "storageClass": {"volumeBindingMode": "Immediate"}}
            api.apply(storage_backend(names[label], immediate))
            api.wait_condition(names[label], status="True", reason="Available")

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
        for label, spec in backends.items():
            backend = names[label]
            namespace = namespace_for(kube, backend)
            namespaces.append(namespace)
            mode = "ReadWriteMany" if "nfs" in spec else "ReadWriteOnce"

            def create(
                name: str, namespace: str = namespace, backend: str = backend, mode: str = mode
            ) -> None:
                kube.create(PERSISTENT_VOLUME_CLAIMS, claim(name, namespace, backend, mode))

            provisioning = spec.get("provisioning")
            through_csi = isinstance(provisioning, dict) and bool(provisioning.get("csi"))
            before = sidecar_create_seconds(api) if through_csi else []
            measured = measure(
                api, kube, namespace, args.claims, args.clients, create, args.timeout
            )
            report(label, args.claims, measured)
            if through_csi:
                report_driver_share(before, sidecar_create_seconds(api))
    finally:
        for namespace in namespaces:
            kube.delete(NAMESPACES, namespace)
        for backend in names.values():
            kube.delete(STORAGE_BACKENDS, backend)
        for backend in names.values():
            wait_for(lambda b=backend: api.gone(STORAGE_BACKENDS, b), timeout=300, what="deleted")
        kube.delete(STORAGE_CLASSES, floor_class)
        for volume in kube.list(PERSISTENT_VOLUMES):
            if volume["spec"].get("storageClassName") == floor_class:
                kube.delete(PERSISTENT_VOLUMES, volume["metadata"]["name"])
        shutil.rmtree(root, ignore_errors=True)


def host_path_backends(root: Path) -> dict[str, dict[str, object]]:
    """Each backend in a directory of its own below `root`."""

    def spec(directory: str) -> dict[str, object]:
        return {"hostPath": {"path": str(root / directory), "nodes": [settings().node_name]}}

    return {
        "hostPath (stowage.io/provisioner)": spec("in-tree"),
        "hostPath (CSI: csi-provisioner + stowage)": {
            **spec("csi"),
            "provisioning": {"csi": True},
        },
    }


def nfs_backends(server: str) -> dict[str, dict[str, object]]:
    spec = {"nfs": {"servers": [server], "path": "/bench"}}
    return {
        "nfs (stowage.io/provisioner)": {**spec, "provisioning": {"basePath": "/in-tree"}},
        "nfs (CSI: csi-provisioner + stowage)": {
            **spec,
            "provisioning": {"basePath": "/csi", "csi": True},
        },
    }


def run(args: argparse.Namespace) -> None:
    kube = Kube(Connection.load(args.kubeconfig, pool_size=args.clients), timeout=60)
    api = Api(args.kubeconfig, kube)
    if args.backend == "nfs-local":
        crds = subprocess.run(
            [sys.executable, "-m", "stowage", "crds"], capture_output=True, text=True, check=True
        ).stdout
        api.kubectl("apply", "--server-side", "--force-conflicts", "-f", "-", stdin=crds)
        api.kubectl("wait", "--for=condition=Established", "crd/storagebackends.stowage.io")
        run_nfs(args, api, kube)
        return
    # The CSI variants need the chart's operator, csi-provisioner and node plugin.
    install(Helm(args.kubeconfig), build_stowage_images(ClusterImageBuilder()))
    if args.backend == "hostpath":
        root = Path(tempfile.mkdtemp(prefix="stowage-bench-hostpath-", dir="/var/tmp"))
        try:
            run_against_floor(args, api, kube, host_path_backends(root))
        finally:
            shutil.rmtree(root, ignore_errors=True)
        return
    host = hosts.create_host()
    ganesha = NfsGanesha.start(host, exports={str(SERVERS_DIR / host.name / "export"): "/bench"})
    try:
        run_against_floor(args, api, kube, nfs_backends(host.ip))
    finally:
        ganesha.stop()
        hosts.remove_host(host)


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
        choices=("nfs", "hostpath", "nfs-local"),
        default="nfs",
        help="nfs, hostpath: the floor (pre-bound PVs), the stowage.io/provisioner and the CSI "
        "driver in one run, with stowage installed by its chart (nfs: on an NFS-Ganesha test "
        "host); nfs-local: the stowage.io/provisioner alone, `stowage run` started here, with "
        "its own API requests counted",
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
