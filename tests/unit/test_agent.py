"""The mount helper's own logic: its DaemonSet, the failover order, and safe directories."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from stowage.agent import capacity, mounting, quota, runner
from stowage.agent.claim_data import (
    archive_directory_below,
    make_directory_below,
    remove_directory_below,
)
from stowage.agent.metrics import AgentMetrics
from stowage.api.backend import StorageBackend
from stowage.clients.network import probe
from stowage.drivers.base import BackendRef, FileSystemSpace, HostMount, NewDirectory, NodeVolume
from stowage.drivers.placement import rendezvous_order
from stowage.objects.helper_daemonset import HelperSettings, helper_daemonset
from stowage.reconcilers import driving

pytestmark = pytest.mark.unit

GLUSTER = {"glusterfs": {"hosts": ["g1", "g2", "g3"], "volume": "gv0"}}
HELPERS = HelperSettings("stowage-helpers", "localhost/stowage/helper:dev", "Never", "helper-sa")


def model(spec: dict[str, Any]) -> StorageBackend:
    return StorageBackend.model_validate({"spec": spec})


def test_backends_whose_directories_the_helpers_make_get_a_helper() -> None:
    assert driving.helper("gluster", model(GLUSTER), HELPERS) is not None
    nfs = {"nfs": {"servers": ["n1"], "path": "/export"}}
    assert driving.helper("nfs", model(nfs), HELPERS) is not None
    iscsi = {
        "iscsi": {
            "portals": ["t1"],
            "iqn": "iqn.2026-01.io.example:t",
            "luns": [{"lun": 1, "size": "1Gi"}],
        }
    }
    assert driving.helper("iscsi", model(iscsi), HELPERS) is None


def test_helper_daemonset_is_privileged_with_bidirectional_stowage_root() -> None:
    spec = {
        **GLUSTER,
        "mount": {
            "nodeSelector": {"storage": "gluster"},
            "tolerations": [{"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}],
        },
    }
    daemonset = helper_daemonset(BackendRef("gluster", model(spec).spec), HELPERS)
    assert daemonset["metadata"]["namespace"] == "stowage-helpers"
    pod = daemonset["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "helper-sa"
    assert pod["nodeSelector"] == {"storage": "gluster"}
    assert pod["tolerations"] == [
        {"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}
    ]
    (container,) = pod["containers"]
    assert container["args"] == ["agent", "--backend", "gluster"]
    assert container["securityContext"] == {"privileged": True}
    assert container["volumeMounts"] == [
        {"name": "stowage", "mountPath": "/var/lib/stowage", "mountPropagation": "Bidirectional"},
        {"name": "host-cgroups", "mountPath": "/host/sys/fs/cgroup"},
    ]
    selector = daemonset["spec"]["selector"]["matchLabels"]
    assert daemonset["spec"]["template"]["metadata"]["labels"] == selector
    assert selector["stowage.io/backend"] == "gluster"


def test_the_helper_of_a_backend_that_lists_its_nodes_runs_on_those_nodes_alone() -> None:
    spec = {
        "hostPath": {"path": "/srv", "nodes": ["n2", "n1"]},
        "provisioning": {"enforceQuota": True},
    }
    daemonset = driving.helper("listed", model(spec), HELPERS)
    assert daemonset is not None
    affinity = daemonset["spec"]["template"]["spec"]["affinity"]["nodeAffinity"]
    assert affinity["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"] == [
        {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node]}]}
        for node in ("n1", "n2")
    ]
    unlisted = driving.helper("all", model(GLUSTER), HELPERS)
    assert unlisted is not None and "affinity" not in unlisted["spec"]["template"]["spec"]


def test_a_long_backend_name_still_makes_a_valid_daemonset_name() -> None:
    daemonset = helper_daemonset(BackendRef("b" * 63, model(GLUSTER).spec), HELPERS)
    assert len(daemonset["metadata"]["name"]) <= 57


def test_gluster_mount_tries_the_nodes_order_and_names_the_others_as_backups() -> None:
    mount = driving.host_mount("gluster", model(GLUSTER), "node-7")
    assert mount is not None
    assert [mounting.server_of("glusterfs", s) for s in mount.sources] == rendezvous_order(
        "node-7", ["g1", "g2", "g3"]
    )
    first, *others = mount.sources
    command = mounting.mount_command(mount, first)
    backups = ":".join(mounting.server_of("glusterfs", s) for s in others)
    assert command == [
        "mount",
        "-t",
        "glusterfs",
        "-o",
        f"backup-volfile-servers={backups}",
        first,
        "/var/lib/stowage/mounts/gluster",
    ]


@pytest.fixture
def listening_port() -> Iterator[int]:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        yield server.getsockname()[1]


def test_probe_tells_a_listening_server_from_a_refusing_one(listening_port: int) -> None:
    assert probe("127.0.0.1", listening_port, timeout=2) == "ok"
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        free_port = closed.getsockname()[1]
    assert probe("127.0.0.1", free_port, timeout=2) == "refused"


def test_refused_servers_are_passed_over_without_mounting(tmp_path: Path) -> None:
    mount = HostMount("glusterfs", ("127.0.0.1:/gv0",), (), str(tmp_path / "mnt"))
    # Nothing listens on glusterd's port here: refused at once, nothing mounted.
    result = mounting.mount_with_failover(mount, probe_timeout=2, mount_timeout=5)
    assert result.mounted_from is None
    assert [attempt.outcome for attempt in result.attempts] == ["refused"]
    assert not mounting.is_mount_point(mount.mount_point)


def test_claim_directories_are_made_below_the_mount_only(tmp_path: Path) -> None:
    root = tmp_path / "mount"
    root.mkdir()
    assert make_directory_below(str(root), str(root / "base" / "ns-claim-uid"), NewDirectory())
    made = root / "base" / "ns-claim-uid"
    assert made.is_dir()
    assert made.stat().st_mode & 0o7777 == 0o777
    assert (root / "base").stat().st_mode & 0o7777 == 0o755
    with pytest.raises(ValueError, match="is not below"):
        make_directory_below(str(root), str(root / ".." / "elsewhere"), NewDirectory())
    assert not (tmp_path / "elsewhere").exists()


def test_claim_directories_get_the_backends_mode_and_owner_once(tmp_path: Path) -> None:
    root = tmp_path / "mount"
    root.mkdir()
    path = root / "ns-claim-uid"
    wanted = NewDirectory(mode=0o2770, uid=1000, gid=2000)
    assert make_directory_below(str(root), str(path), wanted)
    made = path.stat()
    assert (made.st_mode & 0o7777, made.st_uid, made.st_gid) == (0o2770, 1000, 2000)
    os.chmod(path, 0o700)  # a later change by the claim's owner is kept
    assert not make_directory_below(str(root), str(path), wanted)
    assert path.stat().st_mode & 0o7777 == 0o700


def test_a_planted_symlink_does_not_lead_the_agent_out(tmp_path: Path) -> None:
    root = tmp_path / "mount"
    outside = tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    os.symlink(outside, root / "base")
    with pytest.raises(OSError):
        make_directory_below(str(root), str(root / "base" / "ns-claim-uid"), NewDirectory())
    assert list(outside.iterdir()) == []


MOUNTINFO = """\
22 1 0:21 / / rw,relatime shared:1 - ext4 /dev/vda rw
95 22 0:50 / /var/lib/stowage/mounts/files rw shared:40 - nfs4 10.0.0.5:/export rw,vers=4.1
96 95 0:50 / /var/lib/stowage/mounts/files rw shared:41 - nfs4 10.0.0.6:/export rw,vers=4.1
97 22 0:21 /data/my\\040claim /pods/with\\040space/mount rw master:1 shared:42 - ext4 /dev/vda rw
"""


def test_the_mount_table_names_each_mount_s_source_root_and_point_with_spaces_unescaped() -> None:
    entries = mounting.mount_entries(MOUNTINFO)
    assert [(e.device, e.root, e.mount_point, e.source) for e in entries] == [
        ("0:21", "/", "/", "/dev/vda"),
        ("0:50", "/", "/var/lib/stowage/mounts/files", "10.0.0.5:/export"),
        ("0:50", "/", "/var/lib/stowage/mounts/files", "10.0.0.6:/export"),
        ("0:21", "/data/my claim", "/pods/with space/mount", "/dev/vda"),
    ]


def test_this_process_s_root_is_a_mount_point_and_a_plain_directory_is_not(
    tmp_path: Path,
) -> None:
    assert mounting.is_mount_point("/")
    assert not mounting.is_mount_point(str(tmp_path / "plain"))


def test_fuse_clients_are_found_by_their_mount_point_argument(tmp_path: Path) -> None:
    def process(pid: int, *arguments: str) -> None:
        (tmp_path / str(pid)).mkdir()
        (tmp_path / str(pid) / "cmdline").write_bytes(b"\0".join(a.encode() for a in arguments))

    process(10, "/usr/sbin/glusterfs", "--volfile-id=/gv0", "/var/lib/stowage/mounts/a")
    process(11, "/usr/sbin/glusterfs", "--volfile-id=/gv0", "/var/lib/stowage/mounts/ab")
    process(12, "/usr/bin/tail", "/var/lib/stowage/mounts/a")
    process(13, "ceph-fuse", "/var/lib/stowage/mounts/a")
    (tmp_path / "self").mkdir()

    assert mounting.fuse_client_pids("/var/lib/stowage/mounts/a", tmp_path) == [10, 13]


def test_helper_pods_share_the_host_pid_namespace_so_fuse_clients_can_leave() -> None:
    daemonset = helper_daemonset(BackendRef("gluster", model(GLUSTER).spec), HELPERS)
    pod = daemonset["spec"]["template"]["spec"]
    assert pod["hostPID"] is True


def test_fuse_clients_are_moved_to_the_root_of_every_cgroup_hierarchy(tmp_path: Path) -> None:
    for hierarchy in ("memory", "pids", "systemd"):
        (tmp_path / hierarchy).mkdir()
        (tmp_path / hierarchy / "cgroup.procs").write_text("")
    (tmp_path / "memory" / "kubepods").mkdir()

    assert mounting.detach_from_container([41], tmp_path) is None
    for hierarchy in ("memory", "pids", "systemd"):
        assert (tmp_path / hierarchy / "cgroup.procs").read_text() == "41\n"
    assert mounting.detach_from_container([41], tmp_path / "memory" / "kubepods") is not None


@pytest.fixture
def claim_tree(tmp_path: Path) -> tuple[Path, Path]:
    """A mount with one claim directory holding a file, and a directory outside the mount."""
    root, outside = tmp_path / "mount", tmp_path / "outside"
    (root / "base" / "ns-claim-uid").mkdir(parents=True)
    (root / "base" / "ns-claim-uid" / "data.txt").write_text("claim data")
    outside.mkdir()
    (outside / "keep.txt").write_text("not the agent's")
    return root, outside


def test_release_delete_removes_only_the_claim_directory(claim_tree: tuple[Path, Path]) -> None:
    root, outside = claim_tree
    os.symlink(outside, root / "base" / "ns-claim-uid" / "link")  # planted by a pod
    (root / "base" / "ns-other-uid").mkdir()

    assert remove_directory_below(str(root), str(root / "base" / "ns-claim-uid")) is True
    assert sorted(p.name for p in (root / "base").iterdir()) == ["ns-other-uid"]
    assert (outside / "keep.txt").read_text() == "not the agent's"
    assert remove_directory_below(str(root), str(root / "base" / "ns-claim-uid")) is False


def test_release_never_leaves_the_mount(claim_tree: tuple[Path, Path]) -> None:
    root, outside = claim_tree
    with pytest.raises(ValueError, match="is not below"):
        remove_directory_below(str(root), str(root / ".." / "outside"))
    with pytest.raises(ValueError, match="is not below"):
        remove_directory_below(str(root), str(root))
    os.symlink(outside, root / "base" / "planted")
    with pytest.raises(OSError):
        remove_directory_below(str(root), str(root / "base" / "planted" / "keep.txt"))
    with pytest.raises(ValueError, match="not a directory name"):
        archive_directory_below(str(root), str(root / "base" / "ns-claim-uid"), "../outside")
    assert (outside / "keep.txt").exists()
    assert (root / "base" / "ns-claim-uid" / "data.txt").exists()


def test_release_archive_renames_beside_and_never_overwrites(
    claim_tree: tuple[Path, Path],
) -> None:
    root, _ = claim_tree
    claim = str(root / "base" / "ns-claim-uid")

    assert archive_directory_below(str(root), claim, "archived-ns-claim-uid") is True
    archived = root / "base" / "archived-ns-claim-uid" / "data.txt"
    assert archived.read_text() == "claim data"
    assert archive_directory_below(str(root), claim, "archived-ns-claim-uid") is False

    (root / "base" / "ns-claim-uid").mkdir()
    with pytest.raises(FileExistsError):
        archive_directory_below(str(root), claim, "archived-ns-claim-uid")
    assert archived.read_text() == "claim data"


def test_agent_metrics_file_tells_the_server_and_the_failovers(tmp_path: Path) -> None:
    def samples() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        text = (tmp_path / "gluster.prom").read_text()
        return {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        }

    metrics = AgentMetrics("gluster")
    metrics.mounted("g2", failovers=1, seconds=2.1)
    metrics.write(str(tmp_path))
    seen = samples()
    assert seen[("stowage_agent_mounted", (("backend", "gluster"), ("server", "g2")))] == 1
    assert seen[("stowage_agent_failovers_total", (("backend", "gluster"),))] == 1

    metrics.stale()
    metrics.mounted("g3", failovers=0, seconds=0.1)
    metrics.write(str(tmp_path))
    seen = samples()
    assert seen[("stowage_agent_mounted", (("backend", "gluster"), ("server", "g2")))] == 0
    assert seen[("stowage_agent_mounted", (("backend", "gluster"), ("server", "g3")))] == 1
    assert seen[("stowage_agent_remounts_total", (("backend", "gluster"),))] == 1
    assert seen[("stowage_agent_mount_duration_seconds_count", (("backend", "gluster"),))] == 2

    metrics.remove(str(tmp_path))
    assert not (tmp_path / "gluster.prom").exists()


def test_the_gluster_limit_is_written_as_glusterd_writes_it() -> None:
    # `gluster volume quota gv0 limit-usage / 100MB` left this value on the brick (10.3).
    assert quota.gluster_limit_value(100 * 2**20).hex() == "0000000006400000ffffffffffffffff"


def test_quota_is_kept_where_the_type_has_it_unless_the_backend_turns_it_off() -> None:
    assert driving.has_directory_quota(model(GLUSTER))
    assert not driving.has_directory_quota(
        model({**GLUSTER, "provisioning": {"enforceQuota": False}})
    )
    cifs = {
        "cifs": {"servers": ["s1"], "share": "k8s", "secretRef": {"name": "s", "namespace": "n"}}
    }
    assert not driving.has_directory_quota(model(cifs))


def mounted_node(name: str, backend: str, value: str = "ready") -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": {f"mount.stowage.io/{backend}": value}},
        "status": {"conditions": [{"type": "Ready", "status": "True"}]},
    }


def test_the_directory_is_asked_of_a_mounted_node_and_then_of_the_next() -> None:
    nodes = [
        mounted_node("n1", "gluster"),
        mounted_node("n2", "gluster", "failed"),
        mounted_node("n3", "gluster"),
        mounted_node("n4", "other"),
    ]
    order = rendezvous_order("pvc-1", ["n1", "n3"])
    volume = {"metadata": {"name": "pvc-1"}}
    asked = [
        driving.helper_prepare_request("gluster", model(GLUSTER), volume, nodes, attempt)
        for attempt in range(3)
    ]
    assert [request and request["stowage.io/prepare-on"] for request in asked] == [
        order[0],
        order[1],
        order[0],
    ]
    with pytest.raises(driving.Unprovisionable, match=r"mount\.stowage\.io/gluster=ready"):
        driving.helper_prepare_request("gluster", model(GLUSTER), volume, nodes[1:2], 0)
    hostpath = {"hostPath": {"path": "/srv/stowage"}}
    assert driving.helper_prepare_request("h", model(hostpath), volume, nodes, 0) is None


def claim(storage_class: str, name: str = "data") -> dict[str, Any]:
    return {
        "metadata": {"namespace": "apps", "name": name, "uid": "1234-abcd"},
        "spec": {
            "storageClassName": storage_class,
            "accessModes": ["ReadWriteMany"],
            "resources": {"requests": {"storage": "10Mi"}},
        },
    }


def test_the_helper_works_out_a_claims_directory_as_the_operator_does() -> None:
    backend = model(GLUSTER)
    storage_class = driving.storage_class("gluster", backend)["metadata"]["name"]
    volume = driving.claim_volume("gluster", backend, claim(storage_class))
    assert volume["spec"]["local"]["path"].startswith("/var/lib/stowage/mounts/gluster/")
    assert volume["spec"]["capacity"]["storage"] == "10Mi"
    # A claim of another class is none of this helper's business, whatever it is labelled.
    with pytest.raises(driving.Unprovisionable, match="not of StorageClass"):
        driving.claim_volume("gluster", backend, claim("someone-elses"))


def test_the_operators_order_decides_which_server_is_tried_first() -> None:
    mount = HostMount("glusterfs", ("g1:/gv0", "g2:/gv0", "g3:/gv0"), (), "/mnt")
    assert mounting.in_order(mount, ["g3", "g1", "g2"]).sources == ("g3:/gv0", "g1:/gv0", "g2:/gv0")
    assert mounting.in_order(mount, ["g2"]).sources == ("g2:/gv0", "g1:/gv0", "g3:/gv0")
    assert mounting.in_order(mount, []) == mount


def test_the_server_order_covers_the_nodes_the_backend_mounts_on() -> None:
    spec = {**GLUSTER, "mount": {"nodeSelector": {"storage": "yes"}}}
    nodes = [
        {"metadata": {"name": "a", "labels": {"storage": "yes"}}},
        {"metadata": {"name": "b", "labels": {"storage": "no"}}},
        {"metadata": {"name": "c", "labels": {"storage": "yes", "zone": "z"}}},
    ]
    config_map = driving.mount_order("gluster", model(spec), HELPERS, nodes)
    assert config_map is not None
    assert config_map["metadata"]["namespace"] == HELPERS.namespace
    assert set(config_map["data"]) == {"a", "c"}
    assert all(
        sorted(order.split(",")) == ["g1", "g2", "g3"] for order in config_map["data"].values()
    )
    one_host = {"glusterfs": {"hosts": ["g1"], "volume": "gv0"}}
    assert driving.mount_order("gluster", model(one_host), HELPERS, nodes) is None


# --- volumes the helper makes on the chosen node (emptyDir, gitRepo) ------------

SCRATCH = {"emptyDir": {"basePath": "/srv/scratch"}}


def scratch_claim(backend: StorageBackend, **annotations: str) -> dict[str, Any]:
    made = claim(driving.storage_class("scratch", backend)["metadata"]["name"])
    made["spec"]["accessModes"] = ["ReadWriteOnce"]
    made["metadata"]["annotations"] = annotations
    if "stowage.io/prepare-on" in annotations:
        made["metadata"]["labels"] = {"stowage.io/prepare": "scratch"}
    return made


def test_emptydir_and_gitrepo_backends_get_a_helper_with_the_node_directories_it_needs() -> None:
    git = {"gitRepo": {"repository": "git://10.0.0.5/site.git"}}
    assert driving.helper("config", model(git), HELPERS) is not None
    daemonset = driving.helper("scratch", model(SCRATCH), HELPERS)
    assert daemonset is not None
    pod = daemonset["spec"]["template"]["spec"]
    assert {"name": "host-directory-0", "mountPath": "/srv/scratch"} in pod["containers"][0][
        "volumeMounts"
    ]
    assert {
        "name": "host-directory-0",
        "hostPath": {"path": "/srv/scratch", "type": "DirectoryOrCreate"},
    } in pod["volumes"]


def test_a_node_pinned_volume_is_made_by_the_helper_of_its_node_and_only_that_one() -> None:
    backend = model(SCRATCH)
    nodes = [mounted_node("n1", "scratch"), mounted_node("n2", "scratch")]
    volume = driving.volume_for_claim(
        "scratch", backend, scratch_claim(backend), volumes=(), nodes=nodes
    )
    planned = volume["metadata"]["annotations"]["stowage.io/node"]
    for attempt in range(3):  # no other node can make it
        request = driving.helper_prepare_request("scratch", backend, volume, nodes, attempt)
        assert request == {"stowage.io/prepare-on": planned}
    other = "n2" if planned == "n1" else "n1"
    made_elsewhere = scratch_claim(backend, **{"stowage.io/prepared-by": other})
    assert not driving.is_prepared(backend, made_elsewhere, volume)
    made_there = scratch_claim(backend, **{"stowage.io/prepared-by": planned})
    assert driving.is_prepared(backend, made_there, volume)


def test_node_pinned_volumes_go_only_where_the_helper_is_ready() -> None:
    backend = model(SCRATCH)
    nodes = [mounted_node("n1", "scratch", "failed"), mounted_node("n2", "scratch")]
    volume = driving.volume_for_claim(
        "scratch", backend, scratch_claim(backend), volumes=(), nodes=nodes
    )
    assert volume["metadata"]["annotations"]["stowage.io/node"] == "n2"
    chosen_by_scheduler = scratch_claim(backend, **{"volume.kubernetes.io/selected-node": "n1"})
    with pytest.raises(driving.HelperNotReady, match="not ready on node n1"):
        driving.volume_for_claim("scratch", backend, chosen_by_scheduler, volumes=(), nodes=nodes)
    with pytest.raises(driving.HelperNotReady, match="no node runs a ready mount helper"):
        driving.volume_for_claim(
            "scratch", backend, scratch_claim(backend), volumes=(), nodes=nodes[:1]
        )


def test_a_node_asked_to_make_the_volume_keeps_it_and_its_helper_works_out_the_same() -> None:
    backend = model(SCRATCH)
    nodes = [mounted_node(f"n{index}", "scratch") for index in range(1, 6)]
    for asked in ("n1", "n4"):
        claimed = scratch_claim(backend, **{"stowage.io/prepare-on": asked})
        volume = driving.volume_for_claim("scratch", backend, claimed, volumes=(), nodes=nodes)
        assert volume["metadata"]["annotations"]["stowage.io/node"] == asked
        on_the_node = driving.claim_volume("scratch", backend, claimed, asked)
        assert on_the_node["spec"]["local"] == volume["spec"]["local"]
        work = driving.node_volume("scratch", backend, on_the_node)
        assert work is not None and work.root == "/srv/scratch"


def test_a_released_node_volume_is_wiped_by_its_node_unless_the_node_is_gone() -> None:
    backend = model(SCRATCH)
    nodes = [mounted_node("n1", "scratch")]
    volume = driving.volume_for_claim(
        "scratch", backend, scratch_claim(backend), volumes=(), nodes=nodes
    )
    plan = driving.release_volume("scratch", backend, volume)
    assert driving.helper_release_request(plan, backend, nodes) == {"stowage.io/release": "Delete"}
    # The node was deleted: nothing of the volume is left to wipe, the PV just goes.
    assert driving.helper_release_request(plan, backend, [mounted_node("n2", "scratch")]) is None


HOST_PATH_QUOTA = {
    "hostPath": {"path": "/srv/stowage"},
    "provisioning": {"enforceQuota": True, "onDelete": "Archive"},
}


def test_host_path_gets_helpers_only_with_quota_and_they_archive_its_directories() -> None:
    assert not driving.has_helpers(model({"hostPath": {"path": "/srv/stowage"}}))
    backend = model(HOST_PATH_QUOTA)
    assert driving.has_helpers(backend)
    nodes = [mounted_node("n1", "local")]
    claim_of_class = claim(driving.storage_class("local", backend)["metadata"]["name"])
    claim_of_class["spec"]["accessModes"] = ["ReadWriteOnce"]
    volume = driving.volume_for_claim("local", backend, claim_of_class, volumes=(), nodes=nodes)
    plan = driving.release_volume("local", backend, volume)
    request = driving.helper_release_request(plan, backend, nodes)
    assert request is not None and request["stowage.io/release"] == "Archive"


def test_host_path_with_quota_reports_the_free_bytes_of_its_base_path(tmp_path: Path) -> None:
    assert driving.capacity_source("local", model({"hostPath": {"path": "/srv/s"}})) is None
    source = driving.capacity_source("local", model(HOST_PATH_QUOTA))
    assert source == FileSystemSpace("/srv/stowage")
    stats = os.statvfs(tmp_path)
    measured = capacity.free_bytes(FileSystemSpace(str(tmp_path)))
    # What a user's `df` shows as available there, give or take what changed in between.
    assert abs(measured - stats.f_bavail * stats.f_frsize) < 64 * 2**20
    with pytest.raises(OSError):
        capacity.free_bytes(FileSystemSpace(str(tmp_path / "missing")))


def test_a_persistent_directory_is_archived_beside_a_scratch_one_only_deleted(
    claim_tree: tuple[Path, Path],
) -> None:
    root, _ = claim_tree
    path = str(root / "base" / "ns-claim-uid")
    archive = {"stowage.io/archive-as": "archived-ns-claim-uid"}
    with pytest.raises(ValueError, match="can only be deleted"):
        runner.wipe(NodeVolume(str(root), path), archive, "Archive")
    assert runner.wipe(NodeVolume(str(root), path, persistent=True), archive, "Archive")
    assert (root / "base" / "archived-ns-claim-uid" / "data.txt").read_text() == "claim data"
