"""The CSI driver as its callers see it: `stowage csi` serving the Controller and Node services
of this machine's node on a unix socket, against the real API server, checked by csi-sanity
(kubernetes-csi/csi-test, a suite stowage did not write) and by a volume's whole life here.

The Node service bind-mounts directories on this machine: these tests run as root, as the node
plugin does."""

from __future__ import annotations

import dataclasses
import json
import os
import stat
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path, PurePosixPath
from typing import Any

import grpc
import pytest
import yaml
from itkit import OPERATOR_COMMAND, Api, OperatorProcess, storage_backend, unique, wait_for

from stowage.agent.mounting import is_mount_point, mount_table
from stowage.csi import DRIVER_NAME
from stowage.csi.proto import csi_pb2, csi_pb2_grpc
from stowage.csi.volumes import CLAIM_NAME_PARAMETER, CLAIM_NAMESPACE_PARAMETER, TOPOLOGY_KEY
from stowage.drivers.base import MOUNT_READY, mount_label
from stowage.kube.resources import (
    BACKEND_VOLUMES,
    CSI_DRIVERS,
    NODES,
    STORAGE_BACKENDS,
    STORAGE_CLASSES,
)
from stowage_e2e.cluster import settings
from stowage_e2e.servers import NfsGanesha, export_on_disk

pytestmark = pytest.mark.integration

BACKEND_PARAMETER = "stowage.io/backend"
SANITY_TIMEOUT = 600
Mode = csi_pb2.VolumeCapability.AccessMode.Mode


@pytest.fixture
def plugin(api: Api, crds: list[str], tmp_path: Path) -> Iterator[Path]:
    """`stowage csi --controller --node <this node>`, its socket's path, its log printed after."""
    socket = tmp_path / "csi.sock"
    log_path = tmp_path / "plugin.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                *OPERATOR_COMMAND,
                "csi",
                "--controller",
                "--node",
                settings().node_name,
                "--endpoint",
                str(socket),
                "--kubeconfig",
                str(api.kubeconfig),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for(lambda: socket.is_socket() or process.poll() is not None, what="the socket")
        assert process.poll() is None, log_path.read_text()
        yield socket
    finally:
        process.terminate()
        process.wait(timeout=20)
        print(f"plugin log:\n{log_path.read_text(errors='replace')[-6000:]}")


@pytest.fixture
def backend(api: Api, tmp_path: Path) -> Iterator[Callable[..., tuple[str, Path]]]:
    """`make(on_delete, storage_type="hostPath")`: a backend of a node-directory type with
    that onDelete (a hostPath backend of this node alone; "memory": emptyDir medium Memory);
    its name and root."""
    made: list[str] = []

    def make(on_delete: str, storage_type: str = "hostPath") -> tuple[str, Path]:
        name = unique(f"csi-{storage_type.lower()}")
        root = tmp_path / "root" / name
        type_specs: dict[str, tuple[str, dict[str, Any]]] = {
            "hostPath": ("hostPath", {"path": str(root), "nodes": [settings().node_name]}),
            "emptyDir": ("emptyDir", {"basePath": str(root)}),
            "memory": ("emptyDir", {"medium": "Memory"}),
        }
        field, type_spec = type_specs[storage_type]
        if storage_type == "memory":
            root = Path("/var/lib/stowage/volumes") / name
        spec = {
            field: type_spec,
            "provisioning": {"csi": True, "onDelete": on_delete, "directoryMode": "0750"},
        }
        api.kube.create(STORAGE_BACKENDS, storage_backend(name, spec))
        made.append(name)
        return name, root

    yield make
    for name in made:
        api.kube.delete(STORAGE_BACKENDS, name)


@pytest.fixture
def nfs_backend(api: Api, ganesha: NfsGanesha) -> Iterator[Callable[[str], str]]:
    """`make(on_delete)`: a CSI backend of the `ganesha` fixture's export; its name."""
    made: list[str] = []

    def make(on_delete: str) -> str:
        name = unique("csi-nfs")
        spec = {
            "nfs": {"servers": [ganesha.host.ip], "path": "/export", "version": "4.1"},
            "provisioning": {
                "csi": True,
                "onDelete": on_delete,
                "basePath": "/claims",
                "directoryMode": "0750",
            },
        }
        api.kube.create(STORAGE_BACKENDS, storage_backend(name, spec))
        made.append(name)
        return name

    yield make
    for name in made:
        api.kube.delete(STORAGE_BACKENDS, name)


@pytest.fixture
def services(plugin: Path) -> Iterator[tuple[Any, Any]]:
    channel = grpc.insecure_channel(f"unix://{plugin}")
    yield csi_pb2_grpc.ControllerStub(channel), csi_pb2_grpc.NodeStub(channel)
    channel.close()


def mount_capability(mode: Mode.ValueType = Mode.SINGLE_NODE_WRITER) -> csi_pb2.VolumeCapability:
    return csi_pb2.VolumeCapability(
        mount=csi_pb2.VolumeCapability.MountVolume(),
        access_mode=csi_pb2.VolumeCapability.AccessMode(mode=mode),
    )


@dataclass(frozen=True)
class SpecResult:
    name: str
    state: str  # passed, failed, skipped, pending
    message: str  # why it failed or was skipped


def spec_results(report: Path) -> list[SpecResult]:
    """The specs of Ginkgo's JSON report (--ginkgo.json-report)."""
    results = []
    for suite in json.loads(report.read_text()):
        for spec in suite.get("SpecReports") or []:
            if spec.get("LeafNodeType") != "It":
                continue
            name = " ".join([*spec.get("ContainerHierarchyTexts", []), spec["LeafNodeText"]])
            message = (spec.get("Failure") or {}).get("Message", "")
            results.append(SpecResult(name, spec["State"], message.strip()))
    return results


# Why csi-sanity may skip a spec here: the driver does not offer what the spec tests. The
# README's CSI section gives the same list; a skip for any other reason fails.
JUSTIFIED_SKIPS = {
    # attachRequired: false, volumes are reached from the node they are published on
    "ControllerPublishVolume not supported": "no attach",
    "ControllerUnpublishVolume not supported": "no attach",
    "Controller Publish, UnpublishVolume not supported": "no attach",
    # directory volumes need no per-node staging
    "NodeStageVolume not supported": "no staging",
    "NodeUnstageVolume not supported": "no staging",
    # the day-2 operations of issue 16
    "ControllerExpandVolume not supported": "expansion",
    "NodeExpandVolume not supported": "expansion",
    "CreateSnapshot not supported": "snapshots",
    "DeleteSnapshot not supported": "snapshots",
    "ListSnapshots not supported": "snapshots",
    "GetSnapshot not supported": "snapshots",
    "Snapshot not supported": "snapshots",
    "Volume Cloning not supported": "clones",
    "NodeGetVolume not supported": "usage (NodeGetVolumeStats)",
    "ControllerGetVolumeHealth not supported": "health",
    "ControllerListVolumeHealth not supported": "health",
    "NodeGetVolumeHealth not supported": "health",
    "NodeGetStorageHealth not supported": "health",
    # not offered: no consumer of them here
    "ListVolumes not supported": "ListVolumes",
    "Modify volume not supported": "no mutable parameters",
    "Modify Volume not supported": "no mutable parameters",
    "ControllerModifyVolume not supported": "no mutable parameters",
    "GroupControllerService not supported": "no group snapshots",
}


def csi_sanity(plugin: Path, backend: str, tmp_path: Path, left_out: str = "") -> Counter[str]:
    """csi-sanity against the plugin with volumes of `backend`: the counts of its specs'
    states, after checking that none failed and that every skip is one the README gives.
    `left_out`: the specs whose names hold it are not run (`not run` in the counts)."""
    parameters = tmp_path / "parameters.yaml"
    parameters.write_text(yaml.safe_dump({BACKEND_PARAMETER: backend}))
    report = tmp_path / "csi-sanity.json"
    result = subprocess.run(
        [
            str(settings().bin_dir / "csi-sanity"),
            f"--csi.endpoint={plugin}",
            f"--csi.mountdir={tmp_path / 'target'}",
            f"--csi.stagingdir={tmp_path / 'staging'}",
            f"--csi.testvolumeparameters={parameters}",
            f"--csi.testvolumesize={64 << 20}",  # within the room CreateVolume weighs
            f"--ginkgo.json-report={report}",
            "--ginkgo.no-color",
            *([f"--ginkgo.skip={left_out}"] if left_out else []),
        ],
        capture_output=True,
        text=True,
        timeout=SANITY_TIMEOUT,
    )
    (tmp_path / "csi-sanity.log").write_text(result.stdout + result.stderr)
    results = [
        dataclasses.replace(spec, state="not run")
        if left_out and left_out in spec.name and spec.state == "skipped" and not spec.message
        else spec
        for spec in spec_results(report)
    ]
    states = Counter(spec.state for spec in results)
    skips = Counter(spec.message for spec in results if spec.state == "skipped")
    by_feature = Counter(JUSTIFIED_SKIPS.get(reason, reason) for reason in skips.elements())
    print(f"csi-sanity: {dict(states)}; skipped, by what is not offered: {dict(by_feature)}")
    failed = [f"{spec.name}: {spec.message}" for spec in results if spec.state == "failed"]
    assert not failed, "\n".join(failed)
    assert result.returncode == 0, result.stdout[-4000:]
    unjustified = [reason for reason in skips if reason not in JUSTIFIED_SKIPS]
    assert not unjustified, f"skipped for reasons the README does not give: {unjustified}"
    assert states["passed"] > 0 and set(states) <= {"passed", "skipped", "pending", "not run"}
    return states


def test_csi_sanity_passes_on_a_hostpath_backend(
    plugin: Path, backend: Callable[..., tuple[str, Path]], tmp_path: Path
) -> None:
    name, _ = backend("Retain")
    csi_sanity(plugin, name, tmp_path)


# What csi-sanity's Node Service specs do (NodePublishVolume) needs a kernel NFS client, which
# this machine's kernel lacks; the e2e test of a CSI nfs claim publishes through the VM node's.
NODE_SPECS = "Node Service"


def test_csi_sanity_passes_on_an_nfs_backend_with_a_real_server_controller_side(
    plugin: Path, nfs_backend: Callable[[str], str], ganesha: NfsGanesha, tmp_path: Path
) -> None:
    states = csi_sanity(plugin, nfs_backend("Delete"), tmp_path, left_out=NODE_SPECS)
    assert ganesha.list("/export/claims") == []  # every volume it made was deleted
    assert states["passed"] >= 10


def create(
    controller: Any, name: str, backend: str, size: int, node: str = "", **extra: str
) -> Any:
    """CreateVolume as the provisioner calls it for a pod scheduled to `node` (this one's by
    default)."""
    segments = {TOPOLOGY_KEY: node or settings().node_name}
    return controller.CreateVolume(
        csi_pb2.CreateVolumeRequest(
            name=name,
            capacity_range=csi_pb2.CapacityRange(required_bytes=size),
            volume_capabilities=[mount_capability()],
            parameters={BACKEND_PARAMETER: backend, **extra},
            accessibility_requirements=csi_pb2.TopologyRequirement(
                preferred=[csi_pb2.Topology(segments=segments)]
            ),
        )
    ).volume


def publish(node: Any, volume: Any, target: Path, *, readonly: bool = False) -> None:
    node.NodePublishVolume(
        csi_pb2.NodePublishVolumeRequest(
            volume_id=volume.volume_id,
            target_path=str(target),
            volume_capability=mount_capability(),
            volume_context=volume.volume_context,
            readonly=readonly,
        )
    )


def unpublish(node: Any, volume: Any, target: Path) -> None:
    node.NodeUnpublishVolume(
        csi_pb2.NodeUnpublishVolumeRequest(volume_id=volume.volume_id, target_path=str(target))
    )


def deleted(controller: Any, volume_id: str) -> bool:
    try:
        controller.DeleteVolume(csi_pb2.DeleteVolumeRequest(volume_id=volume_id))
    except grpc.RpcError as error:
        assert error.code() == grpc.StatusCode.UNAVAILABLE, error.details()
        return False
    return True


@pytest.mark.parametrize(
    ("storage_type", "on_delete"),
    [("hostPath", "Delete"), ("hostPath", "Archive"), ("emptyDir", "Delete")],
)
def test_a_volume_is_recorded_published_with_its_data_and_released_as_the_backend_says(
    api: Api,
    services: tuple[Any, Any],
    backend: Callable[..., tuple[str, Path]],
    tmp_path: Path,
    storage_type: str,
    on_delete: str,
) -> None:
    controller, node = services
    name, root = backend(on_delete, storage_type)
    claim_uid = "0e2f5a3c-4b1d-4f7e-9a65-1c2b3d4e5f60"
    volume = create(
        controller,
        f"pvc-{claim_uid}",
        name,
        64 << 20,
        **{CLAIM_NAMESPACE_PARAMETER: "apps", CLAIM_NAME_PARAMETER: "data"},
    )
    assert volume.volume_id == f"pvc-{claim_uid}"
    assert volume.capacity_bytes == 64 << 20
    assert [dict(t.segments) for t in volume.accessible_topology] == [
        {TOPOLOGY_KEY: settings().node_name}
    ]
    record = api.kube.get(BACKEND_VOLUMES, volume.volume_id)
    assert record is not None
    directory = root / f"apps-data-{claim_uid}"
    assert record["spec"]["node"] == settings().node_name
    assert record["spec"]["path"] == str(directory)
    columns = api.kubectl("get", "backendvolumes", volume.volume_id, "-o", "wide")
    assert name in columns and settings().node_name in columns and str(directory) in columns

    # Asked again, the same volume; asked with another size, refused.
    assert create(controller, f"pvc-{claim_uid}", name, 64 << 20) == volume
    with pytest.raises(grpc.RpcError) as refused:
        create(controller, f"pvc-{claim_uid}", name, 128 << 20)
    assert refused.value.code() == grpc.StatusCode.ALREADY_EXISTS

    target = tmp_path / "pod" / "mount"
    publish(node, volume, target)
    publish(node, volume, target)  # idempotent
    (target / "hello.txt").write_text("kept\n")
    assert (directory / "hello.txt").read_text() == "kept\n"
    assert directory.stat().st_mode & 0o7777 == 0o750
    unpublish(node, volume, target)
    unpublish(node, volume, target)
    assert not target.exists()

    read_only = tmp_path / "pod" / "read-only"
    publish(node, volume, read_only, readonly=True)
    assert (read_only / "hello.txt").read_text() == "kept\n"
    with pytest.raises(OSError, match="Read-only file system"):
        (read_only / "new.txt").write_text("refused\n")
    unpublish(node, volume, read_only)

    wait_for(lambda: deleted(controller, volume.volume_id), what="DeleteVolume to succeed")
    assert api.kube.get(BACKEND_VOLUMES, volume.volume_id) is None
    assert not directory.exists()
    archived = root / f"archived-apps-data-{claim_uid}"
    if on_delete == "Archive":
        assert (archived / "hello.txt").read_text() == "kept\n"
    else:
        assert not archived.exists()
    assert deleted(controller, volume.volume_id)  # deleted already: still OK


def written_volume(services: tuple[Any, Any], backend: str, text: str, target: Path) -> Any:
    """A new volume of `backend` whose file `data` holds `text`, written through a publish."""
    controller, node = services
    volume = create(controller, unique("written"), backend, 1 << 20)
    publish(node, volume, target)
    (target / "data").write_text(text)
    unpublish(node, volume, target)
    return volume


def test_a_retained_volume_keeps_its_data(
    api: Api, services: tuple[Any, Any], backend: Callable[..., tuple[str, Path]], tmp_path: Path
) -> None:
    controller, _ = services
    name, root = backend("Retain")
    volume = written_volume(services, name, "retained\n", tmp_path / "mount")
    started = time.monotonic()
    wait_for(lambda: deleted(controller, volume.volume_id), what="DeleteVolume to succeed")
    print(f"DeleteVolume of a Retain volume: {time.monotonic() - started:.2f} s")
    assert api.kube.get(BACKEND_VOLUMES, volume.volume_id) is None
    assert [path.read_text() for path in root.glob("*/data")] == ["retained\n"]


def test_a_release_that_fails_is_an_event_and_goes_through_once_the_cause_is_removed(
    api: Api, services: tuple[Any, Any], backend: Callable[..., tuple[str, Path]], tmp_path: Path
) -> None:
    controller, _ = services
    name, root = backend("Archive")
    volume = written_volume(services, name, "new\n", tmp_path / "mount")
    (directory,) = root.iterdir()
    # An archive of the same name is in the way; it is never overwritten.
    in_the_way = root / f"archived-{directory.name}"
    in_the_way.mkdir()
    (in_the_way / "data").write_text("old\n")

    assert not deleted(controller, volume.volume_id)
    assert api.kube.get(BACKEND_VOLUMES, volume.volume_id) is not None
    assert (directory / "data").read_text() == "new\n"
    assert (in_the_way / "data").read_text() == "old\n"
    (event,) = wait_for(
        lambda: api.events("BackendVolume", volume.volume_id, "default"),
        what="the ReleaseFailed Event",
    )
    assert event["type"] == "Warning" and event["reason"] == "ReleaseFailed", event
    assert in_the_way.name in event["message"], event["message"]

    # The administrator moves the old archive away: the release is tried again by itself
    # (well before the node plugin's watch of 300 s starts over).
    in_the_way.rename(root / "moved-away")
    wait_for(lambda: deleted(controller, volume.volume_id), what="DeleteVolume to succeed")
    assert (in_the_way / "data").read_text() == "new\n"
    assert (root / "moved-away" / "data").read_text() == "old\n"
    assert len(api.events("BackendVolume", volume.volume_id, "default")) == 1


def test_the_volume_of_a_node_that_is_gone_is_deleted_with_it(
    api: Api, services: tuple[Any, Any], backend: Callable[..., tuple[str, Path]]
) -> None:
    controller, _ = services
    name, _ = backend("Delete", "emptyDir")
    gone = unique("gone-node")
    volume = create(controller, unique("lost"), name, 1 << 20, node=gone)
    record = api.kube.get(BACKEND_VOLUMES, volume.volume_id)
    assert record is not None and record["spec"]["node"] == gone
    # No node plugin will ever release it: DeleteVolume lets the record go at once.
    assert deleted(controller, volume.volume_id)
    assert api.kube.get(BACKEND_VOLUMES, volume.volume_id) is None


def test_a_backend_the_driver_would_refuse_is_refused_by_create_volume(
    api: Api, services: tuple[Any, Any], backend: Callable[..., tuple[str, Path]]
) -> None:
    controller, _ = services
    name, _ = backend("Archive", "emptyDir")  # an emptyDir volume is always deleted
    with pytest.raises(grpc.RpcError) as refused:
        create(controller, unique("refused"), name, 1 << 20)
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "provisioning.onDelete" in (refused.value.details() or "")


def test_what_the_driver_cannot_serve_is_refused_with_the_reason(
    api: Api, services: tuple[Any, Any]
) -> None:
    controller, _ = services
    nfs = unique("csi-nfs")
    api.kube.create(
        STORAGE_BACKENDS,
        storage_backend(nfs, {"nfs": {"servers": ["127.0.0.1"], "path": "/exports"}}),
    )
    try:
        with pytest.raises(grpc.RpcError) as not_yet:
            create(controller, unique("nfs"), nfs, 1 << 20)
        assert not_yet.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "is not served through CSI (provisioning.csi is not set" in (
            not_yet.value.details() or ""
        )
    finally:
        api.kube.delete(STORAGE_BACKENDS, nfs)

    with pytest.raises(grpc.RpcError) as missing:
        create(controller, unique("missing"), "no-such-backend", 1 << 20)
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    assert "StorageBackend no-such-backend does not exist" in (missing.value.details() or "")

    with pytest.raises(grpc.RpcError) as unnamed:
        controller.CreateVolume(
            csi_pb2.CreateVolumeRequest(
                name=unique("unnamed"), volume_capabilities=[mount_capability()]
            )
        )
    assert unnamed.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert BACKEND_PARAMETER in (unnamed.value.details() or "")


def test_a_csi_backend_names_the_driver_waits_for_it_and_for_its_volumes_on_deletion(
    api: Api,
    operator: OperatorProcess,
    services: tuple[Any, Any],
    backends: Callable[[str, dict[str, Any]], str],
    csi_driver: Callable[[str], None],
    tmp_path: Path,
) -> None:
    controller, _ = services
    spec = {
        "hostPath": {"path": str(tmp_path / "csi"), "nodes": [settings().node_name]},
        "provisioning": {"csi": True, "onDelete": "Retain"},
    }
    name = backends("csi-backend", spec)
    if api.get(CSI_DRIVERS, DRIVER_NAME) is None:
        missing = api.wait_condition(name, status="False", reason="CSIDriverMissing")
        assert DRIVER_NAME in missing["message"]
        csi_driver(DRIVER_NAME)
    api.wait_condition(name, status="True", reason="Available", timeout=30)
    storage_class = api.get(STORAGE_CLASSES, name)
    assert storage_class is not None
    assert storage_class["provisioner"] == DRIVER_NAME
    assert storage_class["parameters"] == {BACKEND_PARAMETER: name}

    volume = create(controller, unique("kept"), name, 1 << 20)
    wait_for(
        lambda: (api.backend(name) or {}).get("status", {}).get("volumes") == 1,
        timeout=30,
        what="status.volumes counting the CSI volume",
    )
    api.delete(STORAGE_BACKENDS, name)
    waiting = api.wait_condition(name, status="False", reason="DeletionWaitingForVolumes")
    assert volume.volume_id in waiting["message"]
    assert deleted(controller, volume.volume_id)
    wait_for(lambda: api.gone(STORAGE_BACKENDS, name), timeout=60, what="the backend deleted")


def test_a_type_without_a_csi_path_that_asks_for_csi_is_not_ready(
    api: Api, operator: OperatorProcess, backends: Callable[[str, dict[str, Any]], str]
) -> None:
    lvm = {"volumeGroup": "vg0", "nodes": [settings().node_name]}
    name = backends("csi-lvm", {"lvm": lvm, "provisioning": {"csi": True}})
    refused = api.wait_condition(name, status="False", reason="InvalidSpec")
    assert "provisioning.csi" in refused["message"]
    assert "does not serve lvm volumes" in refused["message"]


def test_an_in_memory_volume_is_a_tmpfs_of_its_size_that_outlasts_its_pods_until_released(
    api: Api,
    services: tuple[Any, Any],
    backend: Callable[..., tuple[str, Path]],
    tmp_path: Path,
) -> None:
    controller, node = services
    name, root = backend("Delete", "memory")
    with pytest.raises(grpc.RpcError) as refused:
        create(controller, unique("no-size"), name, 0)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "give the volume a size" in str(refused.value.details())

    volume = create(controller, unique("ram"), name, 8 << 20)
    record = api.kube.get(BACKEND_VOLUMES, volume.volume_id)
    assert record is not None
    assert record["spec"]["tmpfsBytes"] == 8 << 20
    directory = Path(record["spec"]["path"])
    assert directory.parent == root

    first = tmp_path / "pod" / "first"
    publish(node, volume, first)
    publish(node, volume, first)  # idempotent: still one tmpfs
    assert [e.source for e in mount_table() if e.mount_point == str(directory)] == ["tmpfs"]
    size = os.statvfs(first)
    assert size.f_blocks * size.f_frsize == 8 << 20
    (first / "data").write_text("in memory\n")
    with pytest.raises(OSError, match="No space left on device"):
        (first / "too-big").write_bytes(bytes(9 << 20))
    (first / "too-big").unlink()
    unpublish(node, volume, first)

    second = tmp_path / "pod" / "second"  # the next pod of the claim
    publish(node, volume, second)
    assert (second / "data").read_text() == "in memory\n"
    assert directory.stat().st_mode & 0o7777 == 0o750
    unpublish(node, volume, second)

    wait_for(lambda: deleted(controller, volume.volume_id), what="DeleteVolume to succeed")
    assert not is_mount_point(str(directory))
    assert not directory.exists()


def test_get_capacity_is_the_room_the_node_plugin_reports_and_create_volume_weighs_it(
    api: Api, services: tuple[Any, Any], backend: Callable[..., tuple[str, Path]], tmp_path: Path
) -> None:
    controller, _ = services
    name, _ = backend("Delete")
    node = settings().node_name

    def annotation() -> str | None:
        found = api.kube.get(NODES, node)
        assert found is not None
        return (found["metadata"].get("annotations") or {}).get(f"capacity.stowage.io/{name}")

    reported = int(wait_for(annotation, timeout=60, what="the node plugin's report of room"))
    stats = os.statvfs(tmp_path)  # the root is not made yet: the file system it will be on
    assert abs(reported - stats.f_bavail * stats.f_frsize) <= stats.f_blocks * stats.f_frsize / 20

    def capacity(**segments: str) -> Any:
        return controller.GetCapacity(
            csi_pb2.GetCapacityRequest(
                parameters={BACKEND_PARAMETER: name},
                accessible_topology=csi_pb2.Topology(segments=segments),
            )
        )

    on_this_node = capacity(**{TOPOLOGY_KEY: node})
    assert on_this_node.available_capacity == reported
    assert on_this_node.maximum_volume_size.value == reported
    assert capacity().available_capacity == reported  # the roomiest node: the only one here
    assert capacity(**{TOPOLOGY_KEY: "no-such-node"}).available_capacity == 0
    with pytest.raises(grpc.RpcError) as unknown:
        controller.GetCapacity(
            csi_pb2.GetCapacityRequest(parameters={BACKEND_PARAMETER: "no-such-backend"})
        )
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND

    with pytest.raises(grpc.RpcError) as too_big:
        create(controller, unique("too-big"), name, reported + (1 << 40))
    assert too_big.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert f"node {node} has" in str(too_big.value.details())
    assert api.kube.list(BACKEND_VOLUMES, label_selector=f"stowage.io/backend={name}") == []


def test_an_nfs_volume_is_a_directory_create_makes_on_its_server_and_delete_releases(
    api: Api,
    services: tuple[Any, Any],
    nfs_backend: Callable[[str], str],
    ganesha: NfsGanesha,
) -> None:
    """CreateVolume makes the volume's directory on the server (libnfs, from the controller:
    no node mounts the export), with the backend's mode; the volume names the server for the
    node to mount. DeleteVolume archives or deletes it as the backend says at that moment."""
    controller, _ = services
    name = nfs_backend("Archive")
    volume = create(controller, unique("nfs"), name, 1 << 20)
    assert volume.volume_context["server"] == ganesha.host.ip
    assert not volume.accessible_topology  # any node with an NFS client can mount it
    directory = PurePosixPath(volume.volume_context["path"])
    assert directory.parent == PurePosixPath("/export/claims")
    assert ganesha.list("/export/claims") == [directory.name]
    made = export_on_disk(ganesha.host.name) / "claims" / directory.name
    assert stat.S_IMODE(made.stat().st_mode) == 0o750
    again = create(controller, volume.volume_id, name, 1 << 20)  # the CO retries
    assert again.volume_context == volume.volume_context
    ganesha.write(f"{directory}/kept.txt", "kept\n")

    wait_for(lambda: deleted(controller, volume.volume_id), what="DeleteVolume to succeed")
    assert api.kube.get(BACKEND_VOLUMES, volume.volume_id) is None
    archived = f"archived-{directory.name}"
    assert ganesha.list("/export/claims") == [archived]
    assert ganesha.read(f"/export/claims/{archived}/kept.txt") == "kept\n"
    assert deleted(controller, volume.volume_id)  # deleted again: nothing to do

    patch = {"spec": {"provisioning": {"onDelete": "Delete"}}}
    api.kube.merge_patch(STORAGE_BACKENDS, name, patch)
    second = create(controller, unique("nfs"), name, 1 << 20)
    ganesha.write(f"{second.volume_context['path']}/gone.txt", "gone\n")
    wait_for(lambda: deleted(controller, second.volume_id), what="DeleteVolume to succeed")
    assert ganesha.list("/export/claims") == [archived]


def test_an_nfs_volume_whose_server_refuses_is_unavailable_until_it_answers(
    api: Api, services: tuple[Any, Any], nfs_backend: Callable[[str], str], ganesha: NfsGanesha
) -> None:
    """While the server does not answer, CreateVolume and DeleteVolume fail with the reason
    (the CO retries): a volume not made leaves no record (none would ever be deleted once its
    claim is gone), a volume made keeps its record. Once the server is back, both go through."""
    controller, _ = services
    name = nfs_backend("Delete")
    made = create(controller, unique("made"), name, 1 << 20)
    refused_name = unique("refused")
    ganesha.stop()
    with pytest.raises(grpc.RpcError) as refused:
        create(controller, refused_name, name, 1 << 20)
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    assert ganesha.host.ip in (refused.value.details() or "")
    assert "connection refused" in (refused.value.details() or "")
    assert api.kube.get(BACKEND_VOLUMES, refused_name) is None
    assert not deleted(controller, made.volume_id)
    assert api.kube.get(BACKEND_VOLUMES, made.volume_id) is not None

    exports = {str(export_on_disk(ganesha.host.name)): "/export"}
    ganesha.process = NfsGanesha.start(ganesha.host, exports).process  # the fixture stops it
    volume = create(controller, refused_name, name, 1 << 20)
    directories = {PurePosixPath(v.volume_context["path"]).name for v in (made, volume)}
    assert set(ganesha.list("/export/claims")) == directories
    for volume_id in (made.volume_id, refused_name):
        wait_for(partial(deleted, controller, volume_id), what="DeleteVolume to succeed")
        assert api.kube.get(BACKEND_VOLUMES, volume_id) is None
    assert ganesha.list("/export/claims") == []


@pytest.fixture
def smb_backend(api: Api) -> Iterator[tuple[str, Path]]:
    """A CSI cifs backend (its server, loopback, is never asked: no helper runs here) and its
    mount point on this node, where its helper would mount the share; the mount point and the
    node's mount label are removed after."""
    name = unique("csi-smb")
    spec = {
        "cifs": {
            "servers": ["127.0.0.1"],
            "share": "data",
            "secretRef": {"name": "smb-user", "namespace": "default"},
        },
        "provisioning": {"csi": True, "onDelete": "Delete", "directoryMode": "0750"},
    }
    api.kube.create(STORAGE_BACKENDS, storage_backend(name, spec))
    mount_point = Path("/var/lib/stowage/mounts") / name
    yield name, mount_point
    api.kube.merge_patch(
        NODES, settings().node_name, {"metadata": {"labels": {mount_label(name): None}}}
    )
    if is_mount_point(str(mount_point)):
        subprocess.run(["umount", str(mount_point)], check=True)
    if mount_point.exists():
        mount_point.rmdir()
    api.kube.delete(STORAGE_BACKENDS, name)


def test_a_volume_in_a_backend_mount_is_used_and_released_only_where_the_mount_is(
    api: Api, services: tuple[Any, Any], smb_backend: tuple[str, Path], tmp_path: Path
) -> None:
    """A cifs volume is a directory in the share its helpers mount on their nodes. Without
    that mount the node plugin refuses the publish (a directory made in the empty mount point
    would be the node's own) and DeleteVolume waits for a node that has it; a tmpfs stands in
    for the share the helper would mount, and the node's label for the helper's report."""
    controller, node = services
    name, mount_point = smb_backend
    volume = create(controller, unique("shared"), name, 1 << 20)
    assert [dict(t.segments) for t in volume.accessible_topology] == [
        {mount_label(name): MOUNT_READY}
    ]
    target = tmp_path / "pod" / "mount"
    with pytest.raises(grpc.RpcError) as refused:
        publish(node, volume, target)
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert f"StorageBackend {name} on node {settings().node_name}" in str(refused.value.details())
    assert "is not mounted" in str(refused.value.details())
    assert not mount_point.exists() or not list(mount_point.iterdir())

    mount_point.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "smb", str(mount_point)], check=True)
    publish(node, volume, target)
    (target / "hello.txt").write_text("in the share\n")
    unpublish(node, volume, target)
    relative = Path(volume.volume_context["path"]).relative_to(mount_point)
    directory = mount_point / relative
    assert (directory / "hello.txt").read_text() == "in the share\n"
    assert stat.S_IMODE(directory.stat().st_mode) == 0o750

    with pytest.raises(grpc.RpcError) as waiting:
        controller.DeleteVolume(csi_pb2.DeleteVolumeRequest(volume_id=volume.volume_id))
    assert waiting.value.code() == grpc.StatusCode.UNAVAILABLE
    assert f"no ready node has StorageBackend {name} mounted" in str(waiting.value.details())
    assert directory.exists() and api.kube.get(BACKEND_VOLUMES, volume.volume_id) is not None

    labels = {"metadata": {"labels": {mount_label(name): MOUNT_READY}}}
    api.kube.merge_patch(NODES, settings().node_name, labels)
    wait_for(lambda: deleted(controller, volume.volume_id), what="DeleteVolume to succeed")
    assert not directory.exists()
    assert api.kube.get(BACKEND_VOLUMES, volume.volume_id) is None
