"""nfs end to end against a real NFS-Ganesha on a test host.

Before a claim's PV exists, a helper makes the claim's directory on the server the PV will name,
over NFS through libnfs (userspace: no node mounts the export). Release deletes, archives or
keeps it. The directories and data are checked with libnfs's own tools (nfs-ls, nfs-cp,
nfs-cat); this kernel has no NFS client, so no pod mounts a claim here (the kind path does).
"""

from __future__ import annotations

import shutil
import stat
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import pytest

from stowage_e2e import scenario
from stowage_e2e.fixtures import TestHostFactory
from stowage_e2e.helpers import (
    events_about,
    finished_log,
    needs_kernel_client,
    release_claim,
    wait_for_condition,
    wait_for_label,
)
from stowage_e2e.install import Images
from stowage_e2e.kube import Kube
from stowage_e2e.servers import SERVERS_DIR, NfsGanesha

pytestmark = pytest.mark.e2e


@pytest.fixture
def ganesha(test_hosts: TestHostFactory) -> Iterator[NfsGanesha]:
    host = test_hosts.one()
    shutil.rmtree(export_on_disk(host.name), ignore_errors=True)
    server = NfsGanesha.start(host, {str(export_on_disk(host.name)): "/export"})
    yield server
    server.stop()


def export_on_disk(host_name: str) -> Path:
    return SERVERS_DIR / host_name / "export"


def on_disk(server: NfsGanesha, path: str) -> Path:
    """Where a path of the export is on the server's disk."""
    return export_on_disk(server.host.name) / PurePosixPath(path).relative_to("/export")


def nfs_spec(server: str, export: str = "/export", **provisioning: Any) -> dict[str, Any]:
    return {
        "nfs": {"servers": [server], "path": export, "version": "4.1"},
        "storageClass": {"volumeBindingMode": "Immediate"},
        "provisioning": {"basePath": "/claims", **provisioning},
    }


def claim_directory(kube: Kube, namespace: str, server: NfsGanesha) -> PurePosixPath:
    """The bound claim's directory, as its PV names it; checked to be on `server`."""
    source = scenario.bound_volume(kube, "data", namespace)["spec"]["nfs"]
    assert source["server"] == server.host.ip
    return PurePosixPath(source["path"])


def test_a_claim_gets_its_own_directory_on_the_server_and_delete_removes_it(
    kube: Kube, namespace: str, backend_factory: Callable[..., str], ganesha: NfsGanesha
) -> None:
    owner = {"uid": 1000, "gid": 2000}
    spec = nfs_spec(ganesha.host.ip, directoryMode="0750", directoryOwner=owner)
    name = backend_factory("nfs", spec)
    wait_for_label(kube, name, "ready")  # a helper reaches the export over NFS
    scenario.wait_ready(kube, name)
    kube.apply(scenario.claim("data", name, "2Gi", "ReadWriteMany"), namespace)
    claim = scenario.wait_bound(kube, "data", namespace)

    directory = claim_directory(kube, namespace, ganesha)
    assert directory.parent == PurePosixPath("/export/claims")
    assert directory.name.endswith(claim["metadata"]["uid"])  # one directory per claim
    assert ganesha.list("/export/claims") == [directory.name]
    made = on_disk(ganesha, str(directory)).stat()
    assert (made.st_uid, made.st_gid, stat.S_IMODE(made.st_mode)) == (1000, 2000, 0o750)
    text = f"over NFSv4 at {uuid.uuid4()}\n"
    ganesha.write(f"{directory}/hello.txt", text)
    assert ganesha.read(f"{directory}/hello.txt") == text

    release_claim(kube, namespace)
    assert ganesha.list("/export/claims") == []


@pytest.mark.parametrize("on_delete", ["Archive", "Retain"])
def test_archive_renames_the_directory_and_retain_keeps_it(
    kube: Kube,
    namespace: str,
    backend_factory: Callable[..., str],
    ganesha: NfsGanesha,
    on_delete: str,
) -> None:
    name = backend_factory("nfs-keep", nfs_spec(ganesha.host.ip, onDelete=on_delete))
    scenario.wait_ready(kube, name)
    kube.apply(scenario.claim("data", name, "1Gi", "ReadWriteMany"), namespace)
    directory = claim_directory(kube, namespace, ganesha)
    ganesha.write(f"{directory}/kept.txt", "kept\n")

    release_claim(kube, namespace)
    kept = directory.name if on_delete == "Retain" else f"archived-{directory.name}"
    assert ganesha.list("/export/claims") == [kept]
    assert ganesha.read(f"/export/claims/{kept}/kept.txt") == "kept\n"


def test_a_missing_export_or_a_silent_server_is_not_ready_with_the_reason(
    kube: Kube,
    namespace: str,
    backend_factory: Callable[..., str],
    ganesha: NfsGanesha,
    test_hosts: TestHostFactory,
) -> None:
    missing = backend_factory("nfs-missing", nfs_spec(ganesha.host.ip, "/nope"))
    silent_host = test_hosts.one()  # nothing listens there
    silent = backend_factory("nfs-silent", nfs_spec(silent_host.ip))

    ready = wait_for_condition(kube, missing, "Ready", "MountFailed")
    print(f"\n{ready['message']}")
    assert ready["status"] == "False"
    assert f"{ganesha.host.ip} does not export /nope" in ready["message"]
    ready = wait_for_condition(kube, silent, "Ready", "MountFailed")
    print(ready["message"])
    silent_reason = "does not answer over NFS (nothing listens on port 2049: connection refused)"
    assert f"{silent_host.ip} {silent_reason}" in ready["message"]

    kube.apply(scenario.claim("data", missing, "1Gi", "ReadWriteMany"), namespace)
    kube.wait_for(
        "persistentvolumeclaim",
        "data",
        namespace,
        lambda _: bool(events_about(kube, namespace, "data", "ProvisioningFailed")),
        what="a ProvisioningFailed Event",
    )
    claim = kube.get("persistentvolumeclaim", "data", namespace)
    assert claim["status"]["phase"] == "Pending"  # no PV for a directory that could not be made
    kube.delete("persistentvolumeclaim", "data", namespace, wait=True)


@needs_kernel_client("NFS", "nfs", "nfs4", mounter="the kubelet")
def test_a_pod_writes_through_the_kubelets_nfs_mount_of_its_claim(
    kube: Kube,
    namespace: str,
    backend_factory: Callable[..., str],
    ganesha: NfsGanesha,
    stowage_images: Images,
) -> None:
    name = backend_factory("nfs-pod", nfs_spec(ganesha.host.ip))
    scenario.wait_ready(kube, name)
    kube.apply(scenario.claim("data", name, "1Gi", "ReadWriteMany"), namespace)
    directory = claim_directory(kube, namespace, ganesha)
    text = f"through the kubelet's nfs mount {uuid.uuid4()}"
    kube.apply(scenario.writer_pod("writer", "data", stowage_images.operator, text), namespace)
    assert finished_log(kube, namespace, "writer").strip() == text
    assert ganesha.read(f"{directory}/hello.txt").strip() == text  # another client reads it

    release_claim(kube, namespace)
    assert ganesha.list("/export/claims") == []
