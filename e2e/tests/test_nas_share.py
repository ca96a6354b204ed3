"""NASShare over NFS end to end: the in-cluster operator runs NFS-Ganesha for a share of a
hostPath backend; clients are pods reading and writing with libnfs (a userspace NFSv4 client:
this kernel has no NFS client, so the kubelet mounting the share's claim is not tried here).
"""

from __future__ import annotations

import subprocess
import threading
import time
import uuid
from collections.abc import Iterator

import pytest

from stowage_e2e import scenario
from stowage_e2e.cluster import settings
from stowage_e2e.fixtures import TestHostFactory
from stowage_e2e.hosts import TestHost
from stowage_e2e.install import NAMESPACE as INSTALL_NAMESPACE
from stowage_e2e.install import OPERATOR_DEPLOYMENT, Images
from stowage_e2e.kube import Kube, pod
from stowage_e2e.nas_shares import (
    SHARE,
    condition,
    lease_holder,
    nas_share,
    server_pods,
    wait_serving,
    wait_takeover,
    wait_with_standby,
)
from stowage_e2e.vm_nodes import AnyNode, VmNode

pytestmark = pytest.mark.e2e

DATA_ROOT = "/var/lib/stowage-e2e/data"


@pytest.fixture
def backend(kube: Kube, namespace: str, stowage_installed: Images) -> Iterator[str]:
    """A hostPath backend for the share's data; afterwards the share, its claims and their
    volumes are gone before the backend goes."""
    name = f"nas-{uuid.uuid4().hex[:6]}"
    kube.apply(scenario.host_path_backend(name, f"{DATA_ROOT}/{name}"))
    scenario.wait_ready(kube, name)
    yield name
    for kind in ("nasshare", "pod", "persistentvolumeclaim"):
        kube.run("delete", kind, "--all", "--namespace", namespace, "--wait=true")
    kube.run("delete", "persistentvolume", "-l", f"stowage.io/backend={name}", "--wait=true")
    kube.delete("storagebackend", name, wait=True)


class Client:
    """A pod with libnfs's tools, run against the share's Service."""

    def __init__(self, kube: Kube, namespace: str, name: str, image: str) -> None:
        self.kube, self.namespace, self.name = kube, namespace, name
        kube.apply(pod(name, image, ["sleep", "3600"]), namespace)
        self.ip = kube.wait_for_pod_ready(name, namespace)["status"]["podIP"]

    def run(self, *command: str) -> tuple[int, str]:
        result = self.kube.run(
            "exec", "--namespace", self.namespace, self.name, "--", *command, check=False
        )
        return result.returncode, (result.stdout + result.stderr).strip()

    def write(self, url: str, text: str) -> tuple[int, str]:
        return self.run("sh", "-c", f"printf '%s' '{text}' > /tmp/up && nfs-cp /tmp/up '{url}'")

    def read(self, url: str) -> tuple[int, str]:
        return self.run("nfs-cat", url)

    def smb(self, share: str, user: str, password: str, commands: str) -> tuple[int, str]:
        """smbclient with `commands` (its -c syntax), as `user`."""
        return self.run("smbclient", share, "--user", f"{user}%{password}", "-c", commands)


def test_a_share_serves_allowed_clients_refuses_others_and_takes_new_rules_in_place(
    kube: Kube, namespace: str, backend: str, stowage_installed: Images
) -> None:
    allowed = Client(kube, namespace, "allowed", stowage_installed.helper)
    other = Client(kube, namespace, "other", stowage_installed.helper)
    rules = [
        {"cidr": f"{allowed.ip}/32", "access": "ReadWrite", "squash": "NoSquash"},
        {"cidr": "192.0.2.0/24", "access": "ReadOnly"},
    ]
    kube.apply(nas_share(backend, rules), namespace)
    share = wait_serving(kube, namespace)
    endpoint = share["status"]["endpoints"]["nfs"]
    address, path = endpoint.split(":", 1)
    url = f"nfs://{address}{path}/greeting.txt?version=4"
    print(f"\nendpoint {endpoint}")

    assert allowed.write(url, "hello over NFS")[0] == 0
    assert allowed.read(url) == (0, "hello over NFS")
    refused = other.read(url)
    assert refused[0] != 0, refused
    print(f"refused: {refused[1]}")

    # Pods get a ReadWriteMany claim bound to the export through the Service.
    claim = scenario.wait_bound(kube, SHARE, namespace)
    volume = kube.get("persistentvolume", claim["spec"]["volumeName"])
    assert volume["spec"]["nfs"] == {"server": address, "path": path}
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]

    (server,) = [p["metadata"]["uid"] for p in server_pods(kube, namespace)]
    # The other pod becomes a read-only client: it reads, cannot write, and the server is
    # the same process (rules are reloaded, not restarted). Not squashed: nfs-cp made the file
    # readable by its owner, root, only.
    rules.append({"cidr": f"{other.ip}/32", "access": "ReadOnly", "squash": "NoSquash"})
    kube.apply(nas_share(backend, rules), namespace)
    started = time.monotonic()
    while (attempt := other.read(url))[0] != 0:
        if time.monotonic() - started > 150:
            state = server_state(kube, namespace)
            pytest.fail(f"the new rule did not let {other.ip} in: {attempt}\n{state}")
        time.sleep(3)
    print(f"new rule in force after {time.monotonic() - started:.0f} s")
    assert other.read(url) == (0, "hello over NFS")
    denied = other.write(f"nfs://{address}{path}/intruder.txt?version=4", "no")
    assert denied[0] != 0, denied
    (current,) = server_pods(kube, namespace)
    assert current["metadata"]["uid"] == server, "the server pod was replaced"
    assert current["status"]["containerStatuses"][0]["restartCount"] == 0
    assert allowed.read(url) == (0, "hello over NFS")

    kube.delete("nasshare", SHARE, namespace, wait=True)
    kube.text("wait", "--for=delete", f"persistentvolume/{volume['metadata']['name']}")


def server_state(kube: Kube, namespace: str) -> str:
    """What the server serves and says, for a failure message."""
    (server,) = server_pods(kube, namespace)
    name = server["metadata"]["name"]
    served = kube.run(
        "exec",
        "--namespace",
        namespace,
        name,
        "--",
        "cat",
        "/etc/stowage-nas/ganesha.conf",
        check=False,
    ).stdout
    annotations = server["metadata"].get("annotations")
    log = kube.logs(name, namespace)[-3000:]
    return f"pod annotations {annotations}\n{served}\n{log}"


def test_one_share_over_nfs_and_smb_with_users_from_a_secret_that_never_leaks(
    kube: Kube, namespace: str, backend: str, stowage_installed: Images
) -> None:
    passwords = {user: f"{user}-{uuid.uuid4().hex}" for user in ("alice", "bob")}
    kube.apply(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "smb-users"},
            "stringData": passwords,
        },
        namespace,
    )
    client = Client(kube, namespace, "client", stowage_installed.helper)
    rules = [{"cidr": f"{client.ip}/32", "access": "ReadWrite", "squash": "NoSquash"}]
    smb = {"usersSecretRef": {"name": "smb-users"}, "readOnlyUsers": ["bob"]}
    applied = time.monotonic()
    kube.apply(nas_share(backend, rules, smb), namespace)
    share = wait_serving(kube, namespace)
    print(f"\nReady {time.monotonic() - applied:.0f} s after apply: {share['status']['endpoints']}")
    address, path = share["status"]["endpoints"]["nfs"].split(":", 1)
    unc = share["status"]["endpoints"]["smb"]
    assert unc == f"//{address}/{SHARE}"

    # NFS to SMB and back.
    assert client.write(f"nfs://{address}{path}/from-nfs.txt?version=4", "written over NFS")[0] == 0
    fetched = client.smb(unc, "alice", passwords["alice"], "get from-nfs.txt /tmp/got")
    assert fetched[0] == 0, fetched
    assert client.run("cat", "/tmp/got") == (0, "written over NFS")
    client.run("sh", "-c", "printf 'written over SMB' > /tmp/put")
    put = client.smb(unc, "alice", passwords["alice"], "put /tmp/put from-smb.txt")
    assert put[0] == 0, put
    assert client.read(f"nfs://{address}{path}/from-smb.txt?version=4") == (0, "written over SMB")

    wrong = client.smb(unc, "alice", "not-the-password", "ls")
    assert wrong[0] != 0 and "NT_STATUS_LOGON_FAILURE" in wrong[1], wrong
    assert client.smb(unc, "bob", passwords["bob"], "get from-smb.txt /tmp/bob")[0] == 0
    denied = client.smb(unc, "bob", passwords["bob"], "put /tmp/put by-bob.txt")
    assert denied[0] != 0 and "NT_STATUS_ACCESS_DENIED" in denied[1], denied

    # No password anywhere but in the Secret.
    (server,) = server_pods(kube, namespace)
    seen = {
        "ConfigMap": kube.text("get", "configmap", "--namespace", namespace, "--output", "yaml"),
        "NASShare": kube.text("get", "nasshare", SHARE, "--namespace", namespace, "-o", "yaml"),
        "Events": kube.text("get", "events", "--namespace", namespace, "--output", "yaml"),
        "operator log": kube.text(
            "logs", "--namespace", INSTALL_NAMESPACE, f"deployment/{OPERATOR_DEPLOYMENT}"
        ),
        "smb log": kube.logs(server["metadata"]["name"], namespace, container="smb"),
        "nfs log": kube.logs(server["metadata"]["name"], namespace, container="nfs"),
    }
    for where, text in seen.items():
        for user, password in passwords.items():
            assert password not in text, f"{user}'s password in the {where}"
    assert "SMB users: alice, bob" in seen["smb log"]


def test_clients_outside_the_cluster_are_told_apart_by_their_own_address(
    kube: Kube, namespace: str, backend: str, test_hosts: TestHostFactory
) -> None:
    """Through a NodePort: the rules see the test host's address, not the node's."""
    inside, outside = test_hosts.create(2)
    manifest = nas_share(backend, [{"cidr": f"{inside.ip}/32", "squash": "NoSquash"}])
    manifest["spec"]["service"] = {"type": "NodePort"}
    kube.apply(manifest, namespace)
    wait_serving(kube, namespace)
    service = kube.get("service", f"stowage-nas-{SHARE}", namespace)
    (port,) = [p["nodePort"] for p in service["spec"]["ports"] if p["name"] == "nfs"]
    node_ip = settings().node_ip
    url = f"nfs://{node_ip}/{SHARE}?version=4&nfsport={port}"

    def listing(host: TestHost) -> subprocess.CompletedProcess[str]:
        return host.run(["nfs-ls", url], check=False)

    assert listing(inside).returncode == 0, listing(inside).stderr
    refused = listing(outside)
    assert refused.returncode != 0 and "NOENT" in refused.stdout + refused.stderr, refused
    manifest["spec"]["nfs"]["clients"].append({"cidr": f"{outside.ip}/32"})
    kube.apply(manifest, namespace)
    started = time.monotonic()
    while listing(outside).returncode != 0:
        assert time.monotonic() - started < 60, "the host let in by the new rule is still refused"
        time.sleep(2)
    print(f"\n{outside.ip} let in {time.monotonic() - started:.0f} s after the new rule")


# Writes a new small file every 0.3 s until /tmp/stop exists, and tells each result with the
# time: `<epoch seconds> ok|fail <n>`. A write stuck on a vanished server is given up after 3 s.
WRITER = """i=0; end=$(($(date +%s) + 110))
while [ ! -e /tmp/stop ] && [ "$(date +%s)" -lt "$end" ]; do
  i=$((i + 1)); printf '%s' "$i" > /tmp/n
  if timeout 3 nfs-cp /tmp/n "nfs://$SERVER$EXPORT/seq-$i.txt?version=4" >/dev/null 2>&1
  then echo "$(date +%s.%N) ok $i"; else echo "$(date +%s.%N) fail $i"; fi
  sleep 0.3
done"""


def test_with_two_replicas_the_standby_takes_over_when_the_active_server_goes(
    kube: Kube, namespace: str, backend: str, stowage_installed: Images
) -> None:
    client = Client(kube, namespace, "writer", stowage_installed.helper)
    rules = [{"cidr": f"{client.ip}/32", "squash": "NoSquash"}]
    kube.apply(nas_share(backend, rules, replicas=2), namespace)
    share = wait_with_standby(kube, namespace, timeout=300)
    active = lease_holder(kube, namespace)
    assert active in condition(share, "Ready")["message"]
    pods = {p["metadata"]["name"]: p for p in server_pods(kube, namespace)}
    (standby,) = set(pods) - {active}
    standby_ready = next(c for c in pods[standby]["status"]["conditions"] if c["type"] == "Ready")
    assert standby_ready["status"] == "False", "the standby serves too"

    address, export = share["status"]["endpoints"]["nfs"].split(":", 1)
    lines: list[str] = []
    script = f"SERVER={address}; EXPORT={export}\n{WRITER}"
    writer = threading.Thread(
        target=lambda: lines.extend(client.run("sh", "-c", script)[1].split("\n"))
    )
    writer.start()
    time.sleep(6)
    killed = time.time()
    kube.run("delete", "pod", active, "--namespace", namespace, "--wait=false")
    # The standby, or the pod the Deployment starts in place of the deleted one, whichever
    # asks first after the deleted pod released the Lease.
    successor = wait_takeover(kube, namespace, active)
    print(f"\n{successor} took over ({'the standby' if successor == standby else 'a new pod'})")
    time.sleep(40)  # the grace period, and writes after it
    client.run("touch", "/tmp/stop")
    writer.join(timeout=30)

    results = [line.split() for line in lines if line.count(" ") == 2]
    before = [float(t) for t, result, _ in results if result == "ok" and float(t) < killed]
    after = [float(t) for t, result, _ in results if result == "ok" and float(t) > killed]
    assert before, f"no write succeeded before the kill: {lines[:5]}"
    assert after, f"the client never resumed: {lines[-5:]}"
    print(f"\nNFS client without service for {after[0] - before[-1]:.1f} s (active pod deleted)")
    # Nothing the client was told was written is lost.
    written = {f"seq-{n}.txt" for _, result, n in results if result == "ok"}
    listing = client.run("nfs-ls", f"nfs://{address}{export}?version=4")
    assert listing[0] == 0, listing
    assert written <= set(listing[1].split()), written - set(listing[1].split())
    final = kube.wait_for(
        "nasshare",
        SHARE,
        namespace,
        lambda s: successor in condition(s, "Ready")["message"],
        timeout=60,
        what=f"Ready naming {successor} as the active server",
    )
    assert condition(final, "Ready")["status"] == "True"


def test_pods_mount_the_share_s_claim_and_see_each_other_s_files(
    kube: Kube,
    namespace: str,
    backend: str,
    stowage_installed: Images,
    kernel_node: VmNode | AnyNode,
) -> None:
    """The kubelet of a node with Debian's kernel mounts the ReadWriteMany claim (kernel NFS,
    through the share's Service, from the other node than the server's); a second pod there
    reads what the first wrote."""
    kube.apply(nas_share(backend, [{"cidr": "0.0.0.0/0", "squash": "NoSquash"}]), namespace)
    wait_serving(kube, namespace)
    volume = {"name": "share", "persistentVolumeClaim": {"claimName": SHARE}}
    mount = {"name": "share", "mountPath": "/share"}
    image = settings().base_image
    script = (
        "echo from-pod > /share/hello.txt && cat /share/hello.txt && grep ' /share ' /proc/mounts"
    )
    for name, command in (
        ("writer", ["sh", "-c", script]),
        ("reader", ["cat", "/share/hello.txt"]),
    ):
        manifest = pod(name, image, command, volumes=[volume], volume_mounts=[mount])
        kube.apply(kernel_node.place(manifest), namespace)
        final = kube.wait_for_pod_phase(name, namespace, timeout=300)
        log = kube.logs(name, namespace)
        print(f"\n{name}: {log}")
        assert final["status"]["phase"] == "Succeeded", log
        assert log.splitlines()[0] == "from-pod"
        if name == "writer":
            assert log.splitlines()[1].split()[2].startswith("nfs")  # the kernel's client
