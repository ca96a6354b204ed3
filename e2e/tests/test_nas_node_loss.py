"""A NASShare with `replicas: 2` on the two VM nodes, and the active server's node lost.

The share's data is a claim of an nfs backend (NFS-Ganesha on a test host), so the standby on
the other node serves the same files. A pod on the standby's node mounts the share's claim
with Debian's kernel NFS client and, every 0.3 s, writes a new file and appends a line to a file
it holds open for the whole test, fsyncing both. The active server's VM is then killed (its
qemu SIGKILLed: the node is lost, not drained). The client's outage is printed; every write
the kernel acknowledged must be on the backend's disk, and the open file must still take
writes after the takeover (the client reclaimed its open state on the new server).
"""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import pytest

from stowage_e2e import scenario
from stowage_e2e.cluster import settings
from stowage_e2e.helpers import wait_for_nodes
from stowage_e2e.kube import Kube, pod
from stowage_e2e.nas_shares import (
    SHARE,
    condition,
    lease_holder,
    nas_share,
    server_pods,
    wait_takeover,
    wait_with_standby,
)
from stowage_e2e.servers import NfsGanesha, export_on_disk
from stowage_e2e.vm_nodes import VmNode

pytestmark = pytest.mark.e2e

SERVER_LABEL = "stowage-e2e/nas-server"

# Prints `file N` once /share/seq-N is written and fsynced, and `line N` once line N of the
# open file is; dies (failing the pod) on any error the kernel returns.
CLIENT = r"""
use IO::Handle;
$| = 1;
open(my $held, ">>", "/share/open.log") or die "open.log: $!";
for (my $i = 1; !-e "/tmp/stop"; $i++) {
  open(my $file, ">", "/share/seq-$i") or die "seq-$i: $!";
  print $file "$i\n";
  $file->flush; $file->sync or die "fsync seq-$i: $!";
  close($file) or die "close seq-$i: $!";
  print "file $i\n";
  print $held "$i\n";
  $held->flush; $held->sync or die "fsync open.log: $!";
  print "line $i\n";
  select(undef, undef, undef, 0.3);
}
close($held) or die "close open.log: $!";
print "done\n";
"""


@pytest.fixture
def server_nodes(
    kube: Kube, two_vm_nodes: tuple[VmNode, VmNode]
) -> Iterator[tuple[VmNode, VmNode]]:
    """The two VM nodes, labelled as the only ones the share's backend (and so its servers)
    may use."""
    for node in two_vm_nodes:
        kube.run("label", "node", node.name, f"{SERVER_LABEL}=yes", "--overwrite")
    yield two_vm_nodes
    for node in two_vm_nodes:
        kube.run("label", "node", node.name, f"{SERVER_LABEL}-", check=False)


SHARE_LABEL = "stowage.io/nasshare"  # on the share's server pods


@pytest.fixture
def clients_go_first(
    kube: Kube, namespace: str, server_nodes: tuple[VmNode, VmNode]
) -> Iterator[None]:
    """After the test: the lost node is back (its pods cannot be removed while it is away),
    then the clients and the share go, before the backend does."""
    yield
    for node in server_nodes:
        node.start()  # a no-op when its qemu runs
    for node in server_nodes:
        node.wait_ready(kube)
    # The clients alone first: their kernel NFS mounts unmount only while a server answers
    # (deleting the server pods with them left a client Terminating, in 1 run of 6).
    kube.run("delete", "pod", "--selector", f"!{SHARE_LABEL}", "--namespace", namespace)
    kube.run("delete", "nasshare", "--all", "--namespace", namespace)


def acknowledged(kube: Kube, namespace: str, name: str) -> list[tuple[float, str, int]]:
    """The client's acknowledgements so far: (when, "file" or "line", N)."""
    log = kube.text("logs", "--timestamps", "--namespace", namespace, name)
    found = []
    for line in log.splitlines():
        stamp, _, text = line.partition(" ")
        kind, _, number = text.partition(" ")
        if kind in ("file", "line") and number.isdigit():
            when = datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
            found.append((when, kind, int(number)))
    return found


def wait_acknowledged_after(
    kube: Kube, namespace: str, name: str, moment: float, count: int, timeout: float
) -> list[tuple[float, str, int]]:
    deadline = time.monotonic() + timeout
    while True:
        acks = acknowledged(kube, namespace, name)
        if sum(1 for when, _, _ in acks if when > moment) >= count:
            return acks
        if time.monotonic() > deadline:
            last = acks[-3:] if acks else "nothing"
            pytest.fail(f"the client did not write {count} times after {moment}: last {last}")
        time.sleep(2)


def data_directory(server: NfsGanesha) -> Path:
    """The directory of the share's data claim on the backend's disk."""
    (held,) = export_on_disk(server.host.name).rglob("open.log")
    return held.parent


def test_the_standby_on_the_other_node_keeps_every_acknowledged_write_when_the_active_s_node_goes(
    kube: Kube,
    namespace: str,
    ganesha: NfsGanesha,
    server_nodes: tuple[VmNode, VmNode],
    backend_factory: Callable[..., str],
    clients_go_first: None,
) -> None:
    placement = {
        "nodeSelector": {SERVER_LABEL: "yes"},
        "tolerations": [server_nodes[0].toleration],
    }
    backend = backend_factory(
        "nas-data",
        {
            "nfs": {"servers": [ganesha.host.ip], "path": "/export", "version": "4.1"},
            "provisioning": {"basePath": "/claims"},
            "mount": placement,
        },
    )
    scenario.wait_ready(kube, backend, timeout=420)
    applied = time.monotonic()
    kube.apply(
        nas_share(backend, [{"cidr": "0.0.0.0/0", "squash": "NoSquash"}], replicas=2), namespace
    )
    share = wait_with_standby(kube, namespace, timeout=600)
    print(f"\nReady with a standby {time.monotonic() - applied:.0f} s after apply")
    nodes = {node.name: node for node in server_nodes}
    on_node = {p["metadata"]["name"]: p["spec"]["nodeName"] for p in server_pods(kube, namespace)}
    assert sorted(on_node.values()) == sorted(nodes), f"not one server on each VM node: {on_node}"
    active = lease_holder(kube, namespace)
    assert active in condition(share, "Ready")["message"]
    (standby,) = set(on_node) - {active}
    lost, survivor = nodes[on_node[active]], nodes[on_node[standby]]

    client = "writer-" + uuid.uuid4().hex[:4]
    manifest = pod(
        client,
        settings().base_image,
        ["perl", "-e", CLIENT],
        volumes=[{"name": "share", "persistentVolumeClaim": {"claimName": SHARE}}],
        volume_mounts=[{"name": "share", "mountPath": "/share"}],
    )
    kube.apply(survivor.place(manifest), namespace)
    kube.wait_for_pod_ready(client, namespace, timeout=300)
    wait_acknowledged_after(kube, namespace, client, 0, 10, timeout=120)

    killed = time.time()
    lost.kill()
    successor = wait_takeover(kube, namespace, active, timeout=120)
    assert successor == standby, f"{successor} took over, not the standby {standby}"
    print(f"{standby} on {survivor.name} took over {time.time() - killed:.0f} s after the kill")
    degraded = kube.wait_for(
        "nasshare",
        SHARE,
        namespace,
        lambda s: lost.name in condition(s, "Degraded")["message"],
        timeout=180,
        what=f"Degraded naming the lost node {lost.name}",
    )
    assert condition(degraded, "Degraded")["status"] == "True"
    assert standby in condition(degraded, "Ready")["message"]
    # The data backend's helpers: the lost node is reported, the survivor's mount is not.
    state = wait_for_nodes(kube, backend, {"mounted": 1, "failed": 0, "lost": 1})
    assert state["reason"] == "NodeLost" and lost.name in state["message"], state
    print(
        f"Degraded {time.time() - killed:.0f} s after the kill: {condition(degraded, 'Degraded')}"
    )
    acks = wait_acknowledged_after(kube, namespace, client, killed, 20, timeout=300)
    resumed = next(when for when, _, _ in acks if when > killed)
    kube.run("exec", "--namespace", namespace, client, "--", "touch", "/tmp/stop")
    finished = kube.wait_for_pod_phase(client, namespace, timeout=120)
    assert finished["status"]["phase"] == "Succeeded", kube.logs(client, namespace)[-2000:]

    acks = acknowledged(kube, namespace, client)
    times = [when for when, _, _ in acks]
    longest = max(later - earlier for earlier, later in itertools.pairwise(times))
    print(
        f"client resumed {resumed - killed:.1f} s after the kill; longest wait for one write "
        f"{longest:.1f} s; {len(acks)} acknowledged writes"
    )
    directory = data_directory(ganesha)
    files = [n for _, kind, n in acks if kind == "file"]
    for number in files:
        assert (directory / f"seq-{number}").read_text() == f"{number}\n"
    on_disk = (directory / "open.log").read_text().split()
    lines = [str(n) for _, kind, n in acks if kind == "line"]
    assert on_disk[: len(lines)] == lines, "an acknowledged line of the open file is missing"

    # The lost node back: its server pod is the standby again.
    lost.start()
    lost.wait_ready(kube)
    wait_with_standby(kube, namespace, timeout=420)
