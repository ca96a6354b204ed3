"""NASShare over NFS end to end: the in-cluster operator runs NFS-Ganesha for a share of a
hostPath backend; clients are pods reading and writing with libnfs (a userspace NFSv4 client:
this kernel has no NFS client, so the kubelet mounting the share's claim is not tried here).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from stowage_e2e import scenario
from stowage_e2e.install import Images
from stowage_e2e.kube import Kube, pod

pytestmark = pytest.mark.e2e

DATA_ROOT = "/var/lib/stowage-e2e/data"
SHARE = "files"


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


def nas_share(backend: str, clients: list[dict[str, str]]) -> dict[str, Any]:
    return {
        "apiVersion": "stowage.io/v1alpha1",
        "kind": "NASShare",
        "metadata": {"name": SHARE},
        "spec": {
            "backend": backend,
            "size": "1Gi",
            "protocols": ["nfs"],
            "nfs": {"clients": clients},
        },
    }


def wait_serving(kube: Kube, namespace: str, timeout: float = 180) -> dict[str, Any]:
    return kube.wait_for(
        "nasshare",
        SHARE,
        namespace,
        scenario.is_ready,
        timeout=timeout,
        what=f"NASShare {SHARE} Ready",
    )


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


def server_pods(kube: Kube, namespace: str) -> list[dict[str, Any]]:
    pods = kube.json(
        "get", "pods", "--namespace", namespace, "--selector", f"stowage.io/nasshare={SHARE}"
    )
    return [p for p in pods["items"] if "deletionTimestamp" not in p["metadata"]]


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
