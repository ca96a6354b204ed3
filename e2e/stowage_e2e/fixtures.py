"""The pytest plugin of the e2e tier (registered by the repository's conftest.py).

Fixtures:
    cluster        (session) the cluster, brought up once (reused when already up) and
                   removed at the end when this session brought it up, unless
                   STOWAGE_KEEP_CLUSTER=1 or --keep-cluster
    kubeconfig     (session) Path of its admin kubeconfig
    kube           (session) a `Kube` (kubectl helpers) on it
    namespace      (test)    a fresh namespace, deleted after the test
    host_directory (test)    a new directory on this machine's node (a hostPath backend's
                   root), removed after the test
    test_hosts     (test)    a factory of network-namespace test hosts, removed after the test
    image_builder  (session) builds Dockerfiles and imports the images into the cluster
    unreachable_host (session) a test host that is cut off: a server there never answers
    ganesha        (test)    NFS-Ganesha on a new test host, exporting `/export` (empty)
    vm_node        (test)    the first VM worker node (Debian's kernel); put back as it was
                   (booted, connected, Ready) after any test that killed or cut it off
    kernel_node    (test)    where pods and helpers get the kernel NFS, CIFS, iSCSI, RBD
                   clients and device-mapper: the VM node here, any node on kind
    kernel_node_shell (test) commands as root on that node (its devices, mounts, LVM)
    node_shell_of  (session) the same for any VM node
    two_vm_nodes   (test)    two VM nodes (STOWAGE_VM_NODES >= 2), put back as vm_node is

While the network guard is on (`make test`), a module whose tests made a new connection off
this machine fails, naming the destinations (`no_packet_leaves`).

Tests marked `@pytest.mark.cluster_lifecycle` (they take the cluster down and up again)
run after every other test of the session.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from stowage_e2e import cluster as cluster_module
from stowage_e2e import hosts as hosts_module
from stowage_e2e.guard import Guard
from stowage_e2e.images import ImageBuilder
from stowage_e2e.kube import Kube
from stowage_e2e.node_shell import LocalShell, NodeShell, PodShell
from stowage_e2e.servers import NfsGanesha, export_on_disk
from stowage_e2e.vm_nodes import AnyNode, VmNode, vm_nodes

LIFECYCLE_MARKER = "cluster_lifecycle"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--keep-cluster",
        action="store_true",
        default=False,
        help="leave the e2e cluster running after the session (also STOWAGE_KEEP_CLUSTER=1)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{LIFECYCLE_MARKER}: takes the e2e cluster down and up again; runs after all other tests",
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Lifecycle tests last (stable order otherwise)."""
    items.sort(key=lambda item: item.get_closest_marker(LIFECYCLE_MARKER) is not None)


def keep_cluster(config: pytest.Config) -> bool:
    return bool(config.getoption("--keep-cluster")) or os.environ.get("STOWAGE_KEEP_CLUSTER") == "1"


@pytest.fixture(scope="module", autouse=True)
def no_packet_leaves(request: pytest.FixtureRequest) -> Iterator[None]:
    guard = Guard()
    if not guard.is_on():
        yield
        return
    blocked, destinations = guard.blocked(), set(guard.destinations())
    yield
    more = guard.blocked() - blocked
    if more:
        new = sorted(set(guard.destinations()) - destinations) or guard.destinations()
        pytest.fail(
            f"{request.module.__name__} made {more} new connection(s) off this machine, "
            f"refused by the network guard; destinations: {', '.join(new)}"
        )


@dataclass
class ClusterHandle:
    """The session's cluster."""

    kubeconfig: Path
    provider: str
    brought_up_here: bool

    def kube(self) -> Kube:
        return Kube(self.kubeconfig)


@pytest.fixture(scope="session")
def cluster(request: pytest.FixtureRequest) -> Iterator[ClusterHandle]:
    provider = cluster_module.provider()
    was_up = cluster_module.is_up()
    handle = ClusterHandle(cluster_module.up(), provider, brought_up_here=not was_up)
    yield handle
    if handle.brought_up_here and provider != "existing" and not keep_cluster(request.config):
        cluster_module.down()


@pytest.fixture(scope="session")
def kubeconfig(cluster: ClusterHandle) -> Path:
    return cluster.kubeconfig


@pytest.fixture(scope="session")
def kube(cluster: ClusterHandle) -> Kube:
    return cluster.kube()


def _namespace_name(test_name: str) -> str:
    slug = re.sub(r"[^a-z0-9-]+", "-", test_name.lower()).strip("-")[:40].strip("-")
    return f"e2e-{slug}-{uuid.uuid4().hex[:5]}"


@pytest.fixture
def namespace(kube: Kube, request: pytest.FixtureRequest) -> Iterator[str]:
    name = _namespace_name(request.node.name)
    kube.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    # Pods need the namespace's default ServiceAccount, which a controller creates.
    kube.wait_for("serviceaccount", "default", name, lambda _: True, timeout=60)
    yield name
    kube.delete("namespace", name, wait=False)


@pytest.fixture
def host_directory() -> Iterator[Path]:
    directory = Path(tempfile.mkdtemp(prefix="stowage-e2e-", dir="/var/tmp"))
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


@dataclass
class TestHostFactory:
    """Creates test hosts for one test and removes them afterwards."""

    created: list[hosts_module.TestHost] = field(default_factory=list)

    __test__ = False  # not a pytest test class

    def create(self, count: int = 1) -> list[hosts_module.TestHost]:
        new = hosts_module.create_hosts(count)
        self.created.extend(new)
        return new

    def one(self) -> hosts_module.TestHost:
        return self.create(1)[0]

    def cleanup(self) -> None:
        for host in self.created:
            hosts_module.remove_host(host)
        self.created.clear()


@pytest.fixture
def test_hosts(cluster: ClusterHandle) -> Iterator[TestHostFactory]:
    if cluster.provider != "local":
        pytest.skip("test hosts live on this machine: local provider only")
    factory = TestHostFactory()
    yield factory
    factory.cleanup()


@pytest.fixture(scope="session")
def unreachable_host(cluster: ClusterHandle) -> Iterator[hosts_module.TestHost]:
    """A test host that drops every packet: connections to it time out. The address to give
    a backend whose servers must not answer (nothing outside this machine is ever asked)."""
    if cluster.provider != "local":
        pytest.skip("test hosts live on this machine: local provider only")
    host = hosts_module.create_host()
    host.cut_off()
    yield host
    hosts_module.remove_host(host)


@pytest.fixture
def ganesha(test_hosts: TestHostFactory) -> Iterator[NfsGanesha]:
    host = test_hosts.one()
    shutil.rmtree(export_on_disk(host.name), ignore_errors=True)
    server = NfsGanesha.start(host, {str(export_on_disk(host.name)): "/export"})
    yield server
    server.stop()


@pytest.fixture(scope="session")
def vm_node_session(cluster: ClusterHandle) -> VmNode:
    if cluster.provider != "local":
        pytest.skip("VM nodes are the local provider's")
    nodes = vm_nodes()
    if not nodes:
        pytest.skip("STOWAGE_VM_NODES=0: the cluster has no VM node")
    return nodes[0]


@pytest.fixture
def vm_node(vm_node_session: VmNode, kube: Kube) -> Iterator[VmNode]:
    vm_node_session.wait_ready(kube)
    yield vm_node_session
    vm_node_session.restore()
    vm_node_session.start()  # a no-op when its qemu runs
    vm_node_session.wait_ready(kube)


@pytest.fixture
def kernel_node(cluster: ClusterHandle, request: pytest.FixtureRequest) -> VmNode | AnyNode:
    if cluster.provider == "local":
        node: VmNode = request.getfixturevalue("vm_node")
        return node
    return AnyNode()


@pytest.fixture(scope="session")
def node_shell_of(kube: Kube) -> Iterator[Callable[[VmNode], NodeShell]]:
    """`node_shell_of(vm_node)`: commands as root on that VM node, through a shell pod made
    when first asked for (the pods go after the session)."""
    shells: dict[str, PodShell] = {}

    def shell_of(node: VmNode) -> NodeShell:
        if node.name not in shells:
            shells[node.name] = PodShell(kube, node.name, [node.toleration])
        return shells[node.name]

    yield shell_of
    for shell in shells.values():
        shell.remove()


@pytest.fixture
def kernel_node_shell(
    kernel_node: VmNode | AnyNode, node_shell_of: Callable[[VmNode], NodeShell]
) -> NodeShell:
    if isinstance(kernel_node, AnyNode):
        return LocalShell()  # kind's nodes share this machine's kernel and devices
    return node_shell_of(kernel_node)


@pytest.fixture
def two_vm_nodes(cluster: ClusterHandle, kube: Kube) -> Iterator[tuple[VmNode, VmNode]]:
    """The first two VM nodes; both booted and Ready again after the test."""
    nodes = vm_nodes() if cluster.provider == "local" else []
    if len(nodes) < 2:
        pytest.skip("needs two VM nodes: the cluster was made with STOWAGE_VM_NODES < 2")
    pair = (nodes[0], nodes[1])
    for node in pair:
        node.wait_ready(kube)
    yield pair
    for node in pair:
        node.restore()
        node.start()  # a no-op when its qemu runs
    for node in pair:
        node.wait_ready(kube)


@pytest.fixture(scope="session")
def image_builder(cluster: ClusterHandle) -> ImageBuilder:
    builder = ImageBuilder()
    builder.ensure_base()
    return builder
