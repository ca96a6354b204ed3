"""Acceptance tests of the test cluster itself: each fails if the feature it names breaks.

The last test (`cluster_lifecycle`) takes the cluster down, checks that nothing is left on
the machine, and brings it up again; the plugin orders it after every other test.
"""

from __future__ import annotations

import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from stowage.drivers.base import node_ready
from stowage_e2e import cluster as cluster_module
from stowage_e2e.cluster import settings
from stowage_e2e.fixtures import ClusterHandle, TestHostFactory
from stowage_e2e.hosts import TestHost
from stowage_e2e.images import TOOLS_CONTEXT, ImageBuilder
from stowage_e2e.install import OperatorLogs
from stowage_e2e.kube import Kube, KubectlError, pod

pytestmark = pytest.mark.e2e

SERVER_PORT = 8080


@pytest.fixture(scope="session")
def tools_image(image_builder: ImageBuilder) -> str:
    """Debian base + socat (e2e/images/tools, layer-cached)."""
    image_builder.build(TOOLS_CONTEXT, tag=settings().tools_image)
    return settings().tools_image


def test_the_node_and_the_vm_nodes_are_ready(kube: Kube) -> None:
    nodes = {n["metadata"]["name"]: n for n in kube.json("get", "nodes")["items"]}
    assert sorted(nodes) == sorted([settings().node_name, *settings().vm_node_names])
    for node in nodes.values():
        assert node_ready(node), node["status"]["conditions"]
    for name in settings().vm_node_names:
        info = nodes[name]["status"]["nodeInfo"]
        # Debian's stock kernel, not this machine's.
        assert info["kernelVersion"].startswith("6.1.0-") and info["kernelVersion"].endswith(
            "-cloud-amd64"
        ), info["kernelVersion"]
        taints = nodes[name]["spec"].get("taints") or []
        assert [t["key"] for t in taints] == [settings().vm_node_taint]


def test_server_version_is_the_pinned_kubernetes(kube: Kube) -> None:
    version = kube.json("version")
    assert version["serverVersion"]["gitVersion"] == settings().kube_version


def test_pod_runs_a_locally_built_image_and_logs_are_read_back(
    kube: Kube, namespace: str, image_builder: ImageBuilder, tmp_path: Path
) -> None:
    marker = uuid.uuid4().hex
    (tmp_path / "Dockerfile").write_text(
        f"ARG BASE_IMAGE\nFROM ${{BASE_IMAGE}}\nRUN echo {marker} > /marker\n"
    )
    tag = f"localhost/stowage/e2e-smoke:{marker[:12]}"
    image_builder.build(tmp_path, tag=tag)
    try:
        phase, logs = kube.run_pod("smoke", namespace, tag, ["sh", "-c", "cat /marker; echo done"])
    finally:
        kube.delete("pod", "smoke", namespace, wait=True)
        image_builder.remove(tag)
    assert phase == "Succeeded"
    assert logs.split() == [marker, "done"]


def mounted_at(path: Path) -> list[str]:
    """The filesystem types mounted at PATH in the host's mount table."""
    with open("/proc/mounts") as mounts:
        return [line.split()[2] for line in mounts if line.split()[1] == str(path)]


@pytest.fixture
def shared_dir(namespace: str) -> Iterator[Path]:
    """A directory under the rshared /var/lib/stowage; anything mounted below is undone after."""
    directory = settings().shared_host_dir / namespace
    yield directory
    subprocess.run(["umount", "-R", "-l", str(directory / "mnt")], check=False, capture_output=True)
    subprocess.run(["rm", "-rf", str(directory)], check=False)


def test_bidirectional_mount_propagates_to_host_and_other_pods(
    kube: Kube, namespace: str, shared_dir: Path
) -> None:
    base = settings().base_image
    volume = {"name": "shared", "hostPath": {"path": str(shared_dir), "type": "DirectoryOrCreate"}}
    mounter = pod(
        "mounter",
        base,
        [
            "sh",
            "-c",
            "mkdir -p /shared/mnt && mount -t tmpfs -o size=1m e2e-tmpfs /shared/mnt"
            " && echo from-the-mounter > /shared/mnt/proof && echo mounted && sleep 3600",
        ],
        privileged=True,
        volumes=[volume],
        volume_mounts=[
            {"name": "shared", "mountPath": "/shared", "mountPropagation": "Bidirectional"}
        ],
    )
    kube.apply(mounter, namespace)
    kube.wait_for_pod_ready("mounter", namespace)
    deadline = time.monotonic() + 30
    while "mounted" not in kube.logs("mounter", namespace) and time.monotonic() < deadline:
        time.sleep(0.5)

    assert mounted_at(shared_dir / "mnt") == ["tmpfs"]
    assert (shared_dir / "mnt" / "proof").read_text() == "from-the-mounter\n"

    phase, logs = kube.run_pod(
        "reader",
        namespace,
        base,
        ["cat", "/seen/mnt/proof"],
        volumes=[volume],
        volume_mounts=[
            {"name": "shared", "mountPath": "/seen", "mountPropagation": "HostToContainer"}
        ],
    )
    assert (phase, logs) == ("Succeeded", "from-the-mounter\n")


def serve(kube: Kube, namespace: str, image: str, reply: str) -> dict[str, Any]:
    """A socat server pod answering REPLY on SERVER_PORT, and a ClusterIP Service for it."""
    kube.apply(
        pod(
            "server",
            image,
            ["socat", f"TCP-LISTEN:{SERVER_PORT},fork,reuseaddr", f"SYSTEM:echo {reply}"],
            restart_policy="Always",
            labels={"app": "server"},
            ports=[SERVER_PORT],
        ),
        namespace,
    )
    kube.apply(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "server"},
            "spec": {
                "selector": {"app": "server"},
                "ports": [{"port": 80, "targetPort": SERVER_PORT}],
            },
        },
        namespace,
    )
    kube.wait_for_pod_ready("server", namespace)
    service: dict[str, Any] = kube.get("service", "server", namespace)
    return service


def test_cluster_ip_service_reaches_a_server_pod_from_another_pod(
    kube: Kube, namespace: str, tools_image: str
) -> None:
    service = serve(kube, namespace, tools_image, "hello-through-the-service")
    cluster_ip = service["spec"]["clusterIP"]
    assert cluster_ip.startswith("10.96.")
    phase, logs = kube.run_pod(
        "client",
        namespace,
        tools_image,
        [
            "sh",
            "-c",
            f"for i in $(seq 20); do socat -T5 - TCP:{cluster_ip}:80,connect-timeout=3"
            " </dev/null && exit 0; sleep 1; done; exit 1",
        ],
    )
    assert phase == "Succeeded", logs
    assert "hello-through-the-service" in logs


def test_cluster_dns_resolves_services(kube: Kube, namespace: str) -> None:
    if not (settings().bin_dir / "coredns").exists():
        pytest.skip("CoreDNS is not built: the cluster has no DNS")
    phase, logs = kube.run_pod(
        "resolver",
        namespace,
        settings().base_image,
        ["getent", "hosts", "kubernetes.default.svc.cluster.local"],
    )
    assert (phase, logs.split()) == (
        "Succeeded",
        [settings().service_ip, "kubernetes.default.svc.cluster.local"],
    )


@pytest.fixture
def host_server(test_hosts: TestHostFactory) -> Iterator[TestHost]:
    """A test host with a socat server on SERVER_PORT that answers its own name."""
    host = test_hosts.one()
    server = host.popen(
        [
            "socat",
            f"TCP-LISTEN:{SERVER_PORT},bind={host.ip},fork,reuseaddr",
            f"SYSTEM:echo hello-from-{host.name}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if host.run(["socat", "-T2", "-", f"TCP:{host.ip}:{SERVER_PORT}"], check=False).stdout:
            break
        time.sleep(0.2)
    yield host
    server.kill()
    server.wait()


def read_from(ip: str, port: int, timeout: float = 3) -> str:
    with socket.create_connection((ip, port), timeout=timeout) as connection:
        connection.settimeout(timeout)
        return connection.recv(100).decode()


def test_pod_reaches_a_test_host(
    kube: Kube, namespace: str, tools_image: str, host_server: TestHost
) -> None:
    phase, logs = kube.run_pod(
        "client",
        namespace,
        tools_image,
        ["socat", "-T5", "-", f"TCP:{host_server.ip}:{SERVER_PORT},connect-timeout=5"],
    )
    assert (phase, logs) == ("Succeeded", f"hello-from-{host_server.name}\n")


def test_a_cut_off_host_times_out_and_a_restored_one_answers(host_server: TestHost) -> None:
    expected = f"hello-from-{host_server.name}\n"
    assert read_from(host_server.ip, SERVER_PORT) == expected

    host_server.cut_off()
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        read_from(host_server.ip, SERVER_PORT, timeout=2)
    assert time.monotonic() - started >= 1.9  # dropped, not refused

    host_server.restore()
    assert read_from(host_server.ip, SERVER_PORT) == expected

    host_server.refuse(SERVER_PORT)
    with pytest.raises(ConnectionRefusedError):
        read_from(host_server.ip, SERVER_PORT)
    host_server.allow(SERVER_PORT)
    assert read_from(host_server.ip, SERVER_PORT) == expected


def test_a_cut_off_host_times_out_from_a_pod(
    kube: Kube, namespace: str, tools_image: str, host_server: TestHost
) -> None:
    host_server.cut_off()
    phase, logs = kube.run_pod(
        "client",
        namespace,
        tools_image,
        [
            "sh",
            "-c",
            f"socat -T3 - TCP:{host_server.ip}:{SERVER_PORT},connect-timeout=3 2>&1; echo exit=$?",
        ],
    )
    assert phase == "Succeeded"
    assert "timed out" in logs.lower()
    assert "exit=1" in logs


@pytest.fixture
def pv_reader_role(kube: Kube, namespace: str) -> Iterator[str]:
    name = f"{namespace}-pv-reader"
    yield name
    kube.delete("clusterrolebinding", name)
    kube.delete("clusterrole", name)


def test_rbac_denies_then_allows_a_service_account_by_its_pod_token(
    kube: Kube, namespace: str, pv_reader_role: str
) -> None:
    kube.apply(
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "reader"}}, namespace
    )
    token_path = "/var/run/secrets/kubernetes.io/serviceaccount/token"
    phase, token = kube.run_pod(
        "token", namespace, settings().base_image, ["cat", token_path], service_account="reader"
    )
    assert phase == "Succeeded"
    as_reader = kube.with_token(token.strip())

    whoami = as_reader.json("auth", "whoami")
    assert whoami["status"]["userInfo"]["username"] == f"system:serviceaccount:{namespace}:reader"
    with pytest.raises(KubectlError, match="Forbidden"):
        as_reader.run("get", "persistentvolumes")

    kube.apply(
        [
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRole",
                "metadata": {"name": pv_reader_role},
                "rules": [
                    {"apiGroups": [""], "resources": ["persistentvolumes"], "verbs": ["list"]}
                ],
            },
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRoleBinding",
                "metadata": {"name": pv_reader_role},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": pv_reader_role,
                },
                "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": namespace}],
            },
        ]
    )
    deadline = time.monotonic() + 10
    while as_reader.run("get", "persistentvolumes", check=False).returncode != 0:
        assert time.monotonic() < deadline, "the ClusterRoleBinding never took effect"
        time.sleep(0.5)


def test_rbac_denies_a_token_from_the_token_request_api(kube: Kube, namespace: str) -> None:
    kube.apply(
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "nobody"}}, namespace
    )
    token = kube.text("create", "token", "nobody", "--namespace", namespace).strip()
    result = kube.with_token(token).run("get", "persistentvolumes", check=False)
    assert result.returncode != 0
    assert "forbidden" in result.stderr.lower()
    bogus = kube.with_token(token[:-4] + "AAAA").run("get", "pv", check=False)
    assert "Unauthorized" in bogus.stderr


CRD_NAME = "widgets.e2e.stowage.io"


@pytest.fixture
def widget_crd(kube: Kube) -> Iterator[None]:
    int_schema = {"type": "integer", "minimum": 0}
    kube.apply(
        {
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": CRD_NAME},
            "spec": {
                "group": "e2e.stowage.io",
                "scope": "Namespaced",
                "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
                "versions": [
                    {
                        "name": "v1",
                        "served": True,
                        "storage": True,
                        "schema": {
                            "openAPIV3Schema": {
                                "type": "object",
                                "properties": {
                                    "spec": {
                                        "type": "object",
                                        "required": ["min", "max"],
                                        "properties": {"min": int_schema, "max": int_schema},
                                        "x-kubernetes-validations": [
                                            {
                                                "rule": "self.min <= self.max",
                                                "message": "min must not exceed max",
                                            }
                                        ],
                                    }
                                },
                            }
                        },
                    }
                ],
            },
        }
    )
    kube.run("wait", "--for", "condition=Established", f"crd/{CRD_NAME}", "--timeout", "60s")
    yield
    kube.delete("crd", CRD_NAME)


def widget(name: str, low: int, high: int) -> dict[str, Any]:
    return {
        "apiVersion": "e2e.stowage.io/v1",
        "kind": "Widget",
        "metadata": {"name": name},
        "spec": {"min": low, "max": high},
    }


def test_crd_cel_rule_rejects_a_bad_object_with_its_message(
    kube: Kube, namespace: str, widget_crd: None
) -> None:
    kube.apply(widget("good", 1, 2), namespace)
    with pytest.raises(KubectlError, match="min must not exceed max"):
        kube.apply(widget("bad", 3, 2), namespace)
    with pytest.raises(KubectlError, match="should be greater than or equal to 0"):
        kube.apply(widget("negative", -1, 2), namespace)
    names = [
        item["metadata"]["name"] for item in kube.json("get", "widgets", "-n", namespace)["items"]
    ]
    assert names == ["good"]


@pytest.fixture
def manual_pv(kube: Kube, namespace: str) -> Iterator[str]:
    name = f"{namespace}-pv"
    kube.apply(
        {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {"name": name},
            "spec": {
                "capacity": {"storage": "1Gi"},
                "accessModes": ["ReadWriteOnce"],
                "storageClassName": name,
                "persistentVolumeReclaimPolicy": "Retain",
                "hostPath": {"path": str(settings().shared_host_dir / name)},
            },
        }
    )
    yield name
    kube.delete("pv", name)


def test_pvc_is_bound_to_a_precreated_pv_by_the_controller_manager(
    kube: Kube, namespace: str, manual_pv: str
) -> None:
    kube.apply(
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": "claim"},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "storageClassName": manual_pv,
                "resources": {"requests": {"storage": "512Mi"}},
            },
        },
        namespace,
    )
    claim = kube.wait_for(
        "pvc",
        "claim",
        namespace,
        lambda c: c.get("status", {}).get("phase") == "Bound",
        timeout=60,
        what="Bound",
    )
    assert claim["spec"]["volumeName"] == manual_pv
    volume = kube.get("pv", manual_pv)
    assert volume["status"]["phase"] == "Bound"
    assert volume["spec"]["claimRef"]["uid"] == claim["metadata"]["uid"]


# --- the lifecycle: runs last -------------------------------------------------------------


CLUSTER_PROGRAMS = frozenset(
    {
        "qemu-system-x86_64",  # the VM nodes (their disks are under the state dir)
        "etcd",
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
        "kubelet",
        "kube-proxy",
        "containerd",
        "containerd-shim-runc-v2",
        "coredns",
    }
)


def residue() -> dict[str, list[str]]:
    """Everything of the local cluster still on this machine."""
    s = settings()
    state, shared, sock = str(s.state_dir), str(s.shared_host_dir), str(s.containerd_sock)
    processes = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            argv = cmdline.read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        text = " ".join(argv)
        # The cluster's daemons and shims (clients that merely use its kubeconfig do not count).
        if Path(argv[0]).name in CLUSTER_PROGRAMS and (state in text or sock in text):
            processes.append(text.strip())
    with open("/proc/mounts") as mounts:
        mount_points = [line.split()[1] for line in mounts]
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    chains = subprocess.run(["iptables-save"], capture_output=True, text=True).stdout
    return {
        "processes": processes,
        "mounts": [m for m in mount_points if m.startswith((state, shared))],
        "netns": [n for n in netns.split() if n.startswith("stowage-")],
        "links": [
            name
            for line in links.splitlines()
            for name in [line.split(": ")[1].split("@")[0]]
            if name in (s.hosts_bridge, "stowage-cni0") or name.startswith(("sth-", "stv-"))
        ],
        "routes": [
            line
            for line in subprocess.run(
                ["ip", "route", "show", s.cluster_cidr], capture_output=True, text=True
            ).stdout.splitlines()
        ],
        "iptables": [line for line in chains.splitlines() if line.startswith(":KUBE-")],
        "cgroups": [str(p) for p in Path("/sys/fs/cgroup").glob("*/kubepods")],
        "dirs": [
            str(p)
            for p in (s.state_dir, s.shared_host_dir, Path("/run/containerd/s"))
            if p.exists()
        ],
    }


@pytest.mark.cluster_lifecycle
def test_down_leaves_nothing_behind_and_up_works_again(
    cluster: ClusterHandle,
    kube: Kube,
    test_hosts: TestHostFactory,
    tools_image: str,
    operator_logs: OperatorLogs,
) -> None:
    if cluster.provider != "local":
        pytest.skip("only the local provider's residue can be checked on this machine")
    # `down` ends the session's operator pod: keep its log for the no-403 check.
    operator_logs.collect()
    # Leave something of everything behind: a running pod with a volume, a test host.
    host = test_hosts.one()
    kube.apply(pod("lingerer", tools_image, ["sleep", "3600"]), "default")
    kube.wait_for_pod_ready("lingerer", "default")
    before = residue()
    assert before["processes"] and before["mounts"] and host.name in before["netns"]

    cluster_module.down()
    assert residue() == {key: [] for key in before}

    assert cluster_module.up() == cluster.kubeconfig
    nodes = kube.json("get", "nodes")["items"]
    expected = [settings().node_name, *settings().vm_node_names]
    assert sorted(n["metadata"]["name"] for n in nodes) == sorted(expected)
    kube.wait_for(
        "serviceaccount", "default", "default", lambda _: True, timeout=60, what="default SA"
    )
    # The images of the build store are imported again on demand.
    kube.run(
        "run",
        "after-up",
        "--image",
        settings().base_image,
        "--image-pull-policy",
        "Never",
        "--restart",
        "Never",
        "--",
        "true",
    )
    kube.wait_for_pod_phase("after-up", "default", phases={"Succeeded"})
    kube.delete("pod", "after-up", "default")
