"""Provisioning benchmark: N claims at once against one backend, PVC -> Bound latency.

Runs against the cluster of --kubeconfig with the network guard on (`scripts/install.sh` first):
applies the CRDs, starts `stowage run` (unless --operator-running), starts NFS-Ganesha on a
test host, makes an NFS backend of it (Immediate binding: every claim is provisioned at
once, nothing waits for a scheduler), creates the claims from a thread pool, and waits until all
are Bound. Prints latency percentiles and the API server's write requests per claim (from its
/metrics `apiserver_request_total`, before and after), split by resource, and the operator's own
requests (`stowage_api_requests_total`). A benchmark, not a test: it asserts nothing.

    .venv/bin/python bench/provision.py --kubeconfig "$KUBECONFIG" [--claims 200]
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "operator"), str(REPO / "e2e"), str(REPO / "tests" / "integration")]

from itkit import Api, OperatorProcess, storage_backend, wait_for  # noqa: E402

from stowage.kube import Connection, Json, Kube  # noqa: E402
from stowage.kube.resources import NAMESPACES, PERSISTENT_VOLUME_CLAIMS, STORAGE_BACKENDS  # noqa: E402
from stowage_e2e import hosts  # noqa: E402
from stowage_e2e.guard import network_guard  # noqa: E402
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


def claim(name: str, namespace: str, storage_class: str) -> Json:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "storageClassName": storage_class,
            "accessModes": ["ReadWriteMany"],
            "resources": {"requests": {"storage": "1Gi"}},
        },
    }


def run(args: argparse.Namespace) -> None:
    kube = Kube(Connection.load(args.kubeconfig, pool_size=args.clients), timeout=60)
    api = Api(args.kubeconfig, kube)
    crds = subprocess.run(
        [sys.executable, "-m", "stowage", "crds"], capture_output=True, text=True, check=True
    ).stdout
    api.kubectl("apply", "--server-side", "--force-conflicts", "-f", "-", stdin=crds)
    api.kubectl("wait", "--for=condition=Established", "crd/storagebackends.stowage.io")
    operator = None
    if not args.operator_running:
        log = Path(tempfile.mkdtemp(prefix="stowage-bench-")) / "operator.log"
        operator = OperatorProcess(args.kubeconfig, log)
        operator.start()
        print(f"operator log: {log}")
    suffix = uuid.uuid4().hex[:6]
    backend, namespace = f"bench-{suffix}", f"bench-{suffix}"
    host = hosts.create_host()
    ganesha = NfsGanesha.start(host, exports={str(SERVERS_DIR / host.name / "export"): "/bench"})
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
        kube.create(
            NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}
        )
        writes_before, ours_before = api_server_writes(api), operator_requests(operator)
        names = [f"claim-{i:04d}" for i in range(args.claims)]
        created: dict[str, float] = {}

        def create(name: str) -> None:
            kube.create(PERSISTENT_VOLUME_CLAIMS, claim(name, namespace, backend))
            created[name] = time.monotonic()

        started = time.monotonic()
        with ThreadPoolExecutor(args.clients) as pool:
            list(pool.map(create, names))
        bound: dict[str, float] = {}

        def all_bound() -> bool:
            now = time.monotonic()
            for item in kube.list(PERSISTENT_VOLUME_CLAIMS, namespace=namespace):
                if (item.get("status") or {}).get("phase") == "Bound":
                    bound.setdefault(item["metadata"]["name"], now)
            return len(bound) == len(names)

        wait_for(all_bound, timeout=args.timeout, what=f"{args.claims} claims Bound")
        elapsed = time.monotonic() - started
        time.sleep(2)  # let trailing Events and status writes land in the counts
        writes = api_server_writes(api) - writes_before
        ours = operator_requests(operator) - ours_before
        latencies = [bound[name] - created[name] for name in names]
        report(args.claims, elapsed, latencies, writes, ours)
    finally:
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


def report(
    claims: int,
    elapsed: float,
    latencies: list[float],
    writes: Counter[str],
    ours: Counter[str],
) -> None:
    print(f"\n{claims} claims Bound in {elapsed:.2f} s ({claims / elapsed:.1f} claims/s)")
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
        "--operator-running",
        action="store_true",
        help="an operator already runs against the cluster: do not start one",
    )
    with network_guard():
        run(parser.parse_args())


if __name__ == "__main__":
    main()
