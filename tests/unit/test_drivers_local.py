"""Types served as local PVs: shared mounts (glusterfs, cephfs, cifs) and node-pinned volumes
(hostPath, emptyDir, gitRepo, lvm, rbd)."""

from __future__ import annotations

from typing import Any

import pytest

from stowage import objects
from stowage.api.backend import OnDelete, StorageBackend
from stowage.drivers import driver_for
from stowage.drivers.base import (
    BackendRef,
    CandidateNode,
    ClaimRequest,
    DataLocation,
    NodeRequirement,
    NodeRole,
    ProvisionContext,
    ProvisionedVolume,
    ReleasePlan,
    Unprovisionable,
)
from stowage.drivers.placement import rendezvous_order
from stowage.objects.helper_daemonset import HelperSettings
from stowage.reconcilers import driving

pytestmark = pytest.mark.unit

UID = "8f14e45f-ceea-467f-a0e6-7bdc2b1c9b33"
DIRECTORY = f"team-a-data-{UID}"
GI = 2**30
SECRET = {"name": "creds", "namespace": "storage"}


def backend(name: str, spec: dict[str, Any]) -> BackendRef:
    return BackendRef(name, StorageBackend.model_validate({"spec": spec}).spec)


def claim(size: int = 5 * GI, modes: tuple[str, ...] = ("ReadWriteOnce",), **facts: Any) -> Any:
    return ClaimRequest("team-a", "data", UID, size, modes, **facts)


def built_volume(ref: BackendRef, request: ClaimRequest, ctx: ProvisionContext) -> Any:
    driver = driver_for(ref.spec.storage_type)
    plan = driver.plan(ref, request, ctx)
    return objects.persistent_volume(ref, request, plan, driver.persistent_volume_source(ref, plan))


def affinity(volume: dict[str, Any]) -> list[dict[str, Any]]:
    terms: list[dict[str, Any]] = volume["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"]
    assert len(terms) == 1
    expressions: list[dict[str, Any]] = terms[0]["matchExpressions"]
    return expressions


def problems(ref: BackendRef) -> list[str]:
    return [str(problem) for problem in driver_for(ref.spec.storage_type).validate(ref)]


def node(name: str, free: str | None = None, backend_name: str = "", **labels: str) -> Any:
    annotations = {f"capacity.stowage.io/{backend_name}": free} if free else {}
    return CandidateNode(name, {"kubernetes.io/hostname": name, **labels}, annotations)


# --- shared mounts --------------------------------------------------------------

GLUSTER = {
    "glusterfs": {"hosts": ["10.0.0.11", "10.0.0.12", "10.0.0.13"], "volume": "gv0"},
    "provisioning": {"basePath": "/k8s"},
    "mount": {"options": ["log-level=WARNING"]},
}


def test_glusterfs_claim_is_a_directory_of_the_node_mount_where_it_is_ready() -> None:
    ref = backend("gluster-prod", GLUSTER)
    volume = built_volume(ref, claim(modes=("ReadWriteMany",)), ProvisionContext())
    path = f"/var/lib/stowage/mounts/gluster-prod/k8s/{DIRECTORY}"
    assert volume["spec"]["local"] == {"path": path}
    assert affinity(volume) == [
        {"key": "mount.stowage.io/gluster-prod", "operator": "In", "values": ["ready"]}
    ]
    assert "mountOptions" not in volume["spec"]  # the kubelet only bind-mounts a local PV
    assert volume["metadata"]["annotations"]["stowage.io/path"] == path


def test_glusterfs_host_mount_fails_over_in_rendezvous_order_of_the_node() -> None:
    ref = backend("gluster-prod", GLUSTER)
    mount = driver_for(ref.spec.storage_type).host_mount(ref, "node-7")
    assert mount is not None
    order = rendezvous_order("node-7", ["10.0.0.11", "10.0.0.12", "10.0.0.13"])
    assert mount.sources == tuple(f"{host}:/gv0" for host in order)
    assert (mount.fs_type, mount.options) == ("glusterfs", ("log-level=WARNING",))


def test_shared_mounts_refuse_block_mode() -> None:
    ref = backend("gluster-prod", GLUSTER)
    with pytest.raises(Unprovisionable, match="cannot serve volumeMode Block: it offers"):
        built_volume(ref, claim(volume_mode="Block"), ProvisionContext())


def test_cephfs_mount_secret_and_validation() -> None:
    spec = {
        "cephfs": {
            "monitors": ["10.0.0.21:6789", "10.0.0.22:70000"],
            "fsName": "data",
            "path": "/volumes",
            "userSecretRef": SECRET,
        },
        "mount": {"options": ["secret=AQBx"]},
    }
    ref = backend("ceph", spec)
    driver = driver_for(ref.spec.storage_type)
    mount = driver.host_mount(ref, "node-1")
    assert mount is not None
    assert mount.sources == ("10.0.0.21:6789,10.0.0.22:70000:/volumes",)
    assert mount.fs_type == "ceph"
    assert mount.options == ("secret=AQBx",)
    assert mount.client_settings == (("client_fs", "data"),)
    [need] = driver.secret_requirements(ref)
    assert need.keys == ("userID", "userKey")
    found = problems(ref)
    assert found == [
        "cephfs.monitors[1]: port 70000 is not in 1-65535",
        "mount.options: option secret: credentials come from cephfs.userSecretRef",
    ]
    assert not any("AQBx" in problem for problem in found)  # a credential is never repeated


def test_cifs_mount_secret_and_validation() -> None:
    spec = {
        "cifs": {"servers": ["smb-1", "smb-2"], "share": "k8s", "secretRef": SECRET},
        "mount": {"options": ["password=hunter2", "vers=1.0"]},
    }
    ref = backend("smb", spec)
    driver = driver_for(ref.spec.storage_type)
    mount = driver.host_mount(ref, "node-1")
    assert mount is not None
    assert sorted(mount.sources) == ["//smb-1/k8s", "//smb-2/k8s"]
    assert mount.options[0] == "vers=3.0"
    [need] = driver.secret_requirements(ref)
    assert (need.keys, need.optional_keys) == (("username", "password"), ("domain",))
    found = problems(ref)
    assert found == [
        "mount.options: option password: credentials come from cifs.secretRef",
        "mount.options: option vers: set cifs.version instead",
    ]
    assert not any("hunter2" in problem for problem in found)


# --- node-pinned ----------------------------------------------------------------

HOST_PATH = {"hostPath": {"path": "/srv/stowage", "nodes": ["node-a", "node-b"]}}


def test_host_path_uses_the_node_the_scheduler_selected() -> None:
    ref = backend("local", HOST_PATH)
    ctx = ProvisionContext(nodes=(node("node-a"), node("node-b")))
    volume = built_volume(ref, claim(selected_node="node-b"), ctx)
    # The kubelet makes the directory itself: the claim works without a mount helper.
    assert volume["spec"]["hostPath"] == {
        "path": f"/srv/stowage/{DIRECTORY}",
        "type": "DirectoryOrCreate",
    }
    assert "local" not in volume["spec"]
    assert affinity(volume) == [
        {"key": "kubernetes.io/hostname", "operator": "In", "values": ["node-b"]}
    ]
    assert volume["metadata"]["annotations"]["stowage.io/node"] == "node-b"


def test_pinning_uses_the_hostname_label_not_the_node_name() -> None:
    ref = backend("local", {"hostPath": {"path": "/srv/stowage"}})
    ctx = ProvisionContext(
        nodes=(CandidateNode("ip-10-0-0-1.ec2", {"kubernetes.io/hostname": "ip-10-0-0-1"}),)
    )
    volume = built_volume(ref, claim(selected_node="ip-10-0-0-1.ec2"), ctx)
    assert affinity(volume)[0]["values"] == ["ip-10-0-0-1"]


def test_a_selected_node_that_does_not_offer_the_backend_is_explained() -> None:
    ref = backend("local", HOST_PATH)
    with pytest.raises(
        Unprovisionable,
        match=r"scheduler chose node node-c .* does not offer backend local: "
        r"it is not listed in hostPath\.nodes",
    ):
        built_volume(ref, claim(selected_node="node-c"), ProvisionContext())


def test_a_selected_node_outside_the_node_selector_is_refused() -> None:
    ref = backend("local", {**HOST_PATH, "mount": {"nodeSelector": {"disk": "ssd"}}})
    ctx = ProvisionContext(nodes=(node("node-a", disk="hdd"),))
    with pytest.raises(Unprovisionable, match=r"do not match mount\.nodeSelector"):
        built_volume(ref, claim(selected_node="node-a"), ctx)


def test_without_a_selected_node_the_least_allocated_offering_node_is_chosen() -> None:
    ref = backend("local", HOST_PATH)
    ctx = ProvisionContext(
        volumes=(
            ProvisionedVolume("pvc-1", 10 * GI, DataLocation(node="node-a")),
            ProvisionedVolume("pvc-2", 1 * GI, DataLocation(node="node-b")),
        ),
        nodes=(node("node-a"), node("node-b"), node("node-c")),  # node-c is not listed
    )
    plan = driver_for(ref.spec.storage_type).plan(ref, claim(), ctx)
    assert plan.location.node == "node-b"


def test_unschedulable_nodes_are_not_chosen() -> None:
    ref = backend("local", HOST_PATH)
    cordoned = CandidateNode("node-a", {}, {}, schedulable=False)
    ctx = ProvisionContext(nodes=(cordoned, node("node-b")))
    assert driver_for(ref.spec.storage_type).plan(ref, claim(), ctx).location.node == "node-b"


def test_no_offering_node_is_unprovisionable() -> None:
    ref = backend("local", HOST_PATH)
    with pytest.raises(Unprovisionable, match="no schedulable node offers backend local"):
        built_volume(ref, claim(), ProvisionContext(nodes=(node("node-z"),)))


@pytest.mark.parametrize("modes", [("ReadWriteMany",), ("ReadOnlyMany",)])
def test_host_path_refuses_multi_node_access(modes: tuple[str, ...]) -> None:
    ref = backend("local", HOST_PATH)
    with pytest.raises(Unprovisionable, match="its volumes live on one node"):
        built_volume(ref, claim(modes=modes, selected_node="node-a"), ProvisionContext())


@pytest.mark.parametrize("path", ["/", "/etc", "/var/lib/kubelet/pods", "/proc/1"])
def test_host_path_refuses_system_directories(path: str) -> None:
    ref = backend("local", {"hostPath": {"path": path}})
    assert problems(ref) == [
        f"hostPath.path: {path} is a system directory; choose a directory of its own, "
        "e.g. /srv/stowage"
    ]


def test_host_path_storage_class_restricts_the_scheduler_to_offering_nodes() -> None:
    ref = backend("local", {**HOST_PATH, "mount": {"nodeSelector": {"disk": "ssd"}}})
    manifest = objects.storage_class(ref, driver_for(ref.spec.storage_type))
    assert manifest["allowedTopologies"] == [
        {
            "matchLabelExpressions": [
                {"key": "disk", "values": ["ssd"]},
                {"key": "kubernetes.io/hostname", "values": ["node-a", "node-b"]},
            ]
        }
    ]


def test_a_csi_host_path_class_names_the_driver_and_only_its_topology_key() -> None:
    spec = {**HOST_PATH, "mount": {"nodeSelector": {"disk": "ssd"}}, "provisioning": {"csi": True}}
    ref = backend("local", spec)
    manifest = objects.storage_class(ref, driver_for(ref.spec.storage_type))
    assert manifest["provisioner"] == "csi.stowage.io"
    assert manifest["parameters"] == {"stowage.io/backend": "local"}
    # The provisioner refuses keys the driver does not report: the node key stands for the
    # listed nodes, and the node selector is left to CreateVolume's choice of node.
    assert manifest["allowedTopologies"] == [
        {
            "matchLabelExpressions": [
                {"key": "topology.stowage.io/node", "values": ["node-a", "node-b"]},
            ]
        }
    ]
    assert problems(ref) == []
    assert driver_for(ref.spec.storage_type).csi_driver_name(ref) == "csi.stowage.io"


def test_a_csi_empty_dir_backend_runs_no_helper_on_disk_or_in_memory() -> None:
    on_disk = backend(
        "scratch", {"emptyDir": {"basePath": "/srv/scratch"}, "provisioning": {"csi": True}}
    )
    driver = driver_for(on_disk.spec.storage_type)
    assert driver.csi_directory_root(on_disk) == "/srv/scratch"
    # The CSI node plugin makes and wipes its directories: no mount helper for it.
    assert driver.node_role(on_disk) is NodeRole.NONE
    assert problems(on_disk) == []
    in_tree = backend("scratch", {"emptyDir": {"basePath": "/srv/scratch"}})
    assert driver.node_role(in_tree) is NodeRole.NODE_WORK
    # In memory, the node plugin mounts each volume's tmpfs where a helper would have.
    memory = backend("ram", {"emptyDir": {"medium": "Memory"}, "provisioning": {"csi": True}})
    assert driver.csi_directory_root(memory) == "/var/lib/stowage/volumes/ram"
    assert driver.node_role(memory) is NodeRole.NONE
    assert problems(memory) == []


def test_a_csi_shared_mount_backend_keeps_its_helpers_mount_and_has_its_directories_there() -> None:
    ref = backend("gv", {**GLUSTER, "provisioning": {"csi": True, "basePath": "k8s"}})
    driver = driver_for(ref.spec.storage_type)
    assert driver.served_by_csi(ref)
    assert problems(ref) == []
    # The helpers keep mounting the backend on the nodes; the node plugin works in the mount.
    assert driver.node_role(ref) is NodeRole.SHARED_MOUNT
    assert driver.csi_backend_mount(ref) == "/var/lib/stowage/mounts/gv"
    assert driver.csi_directory_root(ref) == "/var/lib/stowage/mounts/gv/k8s"
    host_path = backend("local", {**HOST_PATH, "provisioning": {"csi": True}})
    assert driver_for(host_path.spec.storage_type).csi_backend_mount(host_path) is None


def test_csi_is_refused_where_the_driver_has_no_csi_path() -> None:
    quota = backend("q", {**HOST_PATH, "provisioning": {"csi": True, "enforceQuota": True}})
    assert any(
        "provisioning.csi: stowage's CSI driver does not serve hostPath volumes of this spec"
        in problem
        for problem in problems(quota)
    )


def test_empty_dir_is_always_deleted_on_release() -> None:
    ref = backend("scratch", {"emptyDir": {"medium": "Memory"}})
    driver = driver_for(ref.spec.storage_type)
    volume = built_volume(ref, claim(selected_node="node-a"), ProvisionContext())
    assert volume["spec"]["local"] == {"path": f"/var/lib/stowage/volumes/scratch/{DIRECTORY}"}
    released = driver.release(ref, ProvisionedVolume.from_manifest(volume))
    assert released.action is OnDelete.DELETE
    retained = backend("scratch", {"emptyDir": {}, "provisioning": {"onDelete": "Retain"}})
    assert problems(retained)[0].startswith("provisioning.onDelete: emptyDir volumes are")


def test_host_path_release_archives_the_claim_directory() -> None:
    ref = backend("local", {**HOST_PATH, "provisioning": {"onDelete": "Archive"}})
    driver = driver_for(ref.spec.storage_type)
    volume = built_volume(ref, claim(selected_node="node-a"), ProvisionContext())
    released = driver.release(ref, ProvisionedVolume.from_manifest(volume))
    assert released.action is OnDelete.ARCHIVE
    assert released.archive_name == f"archived-{DIRECTORY}"
    assert released.location.path == f"/srv/stowage/{DIRECTORY}"
    assert released.location.node == "node-a"


def test_host_path_with_quota_is_a_limited_subvolume_the_helper_makes() -> None:
    spec = {**HOST_PATH, "provisioning": {"enforceQuota": True, "onDelete": "Archive"}}
    ref = backend("local", spec)
    driver = driver_for(ref.spec.storage_type)
    assert driver.prepares_on_node(ref)
    ctx = ProvisionContext(nodes=(ready_node("node-a", "local"),))
    volume = built_volume(ref, claim(size=16 * 2**20, selected_node="node-a"), ctx)
    assert volume["spec"]["hostPath"]["path"] == f"/srv/stowage/{DIRECTORY}"
    work = driver.node_volume(ref, ProvisionedVolume.from_manifest(volume))
    assert work is not None
    assert (work.root, work.path) == ("/srv/stowage", f"/srv/stowage/{DIRECTORY}")
    assert (work.quota_bytes, work.persistent) == (16 * 2**20, True)
    assert driver.host_directories(ref) == ("/srv/stowage",)
    requirement = NodeRequirement("mount.stowage.io/local", ("ready",))
    assert requirement in driver.storage_class(ref).allowed_topology
    # Unset or false: the kubelet makes a plain directory, no helper is involved.
    for setting in ({}, {"enforceQuota": False}):
        plain = backend("local", {**HOST_PATH, "provisioning": setting})
        assert not driver.prepares_on_node(plain)
        assert driver.node_volume(plain, ProvisionedVolume.from_manifest(volume)) is None


GIT = {"gitRepo": {"repository": "https://git.example.com/team/config.git"}}


def test_git_repo_checkout_is_read_only_many_on_one_node() -> None:
    ref = backend("config", GIT)
    volume = built_volume(
        ref, claim(modes=("ReadOnlyMany",), selected_node="n1"), ProvisionContext()
    )
    assert volume["spec"]["local"] == {"path": f"/var/lib/stowage/volumes/config/{DIRECTORY}"}
    assert volume["metadata"]["annotations"]["stowage.io/read-only"] == "true"
    assert volume["spec"]["mountOptions"] == ["ro"]  # the kubelet's bind mount is read-only
    with pytest.raises(Unprovisionable, match="request ReadOnlyMany"):
        built_volume(ref, claim(selected_node="n1"), ProvisionContext())


def test_git_repo_through_csi_is_a_checkout_the_node_plugin_binds_with_a_copy_of_the_secret() -> (
    None
):
    spec = {
        "gitRepo": {**GIT["gitRepo"], "credentialsSecretRef": SECRET},
        "provisioning": {"csi": True},
    }
    ref = backend("config", spec)
    driver = driver_for(ref.spec.storage_type)
    assert driver.served_by_csi(ref)
    assert driver.node_role(ref) is NodeRole.NONE  # no helpers: the node plugin does it
    root = "/var/lib/stowage/volumes/config"
    assert driver.csi_directory_root(ref) == root
    location = DataLocation(path=f"{root}/{DIRECTORY}", node="n1", read_only=True)
    work = driver.node_volume(ref, ProvisionedVolume("v", 0, location))
    assert work is not None and work.checkout is not None
    assert work.checkout.path == f"{root}/.checkouts/{DIRECTORY}"
    model = StorageBackend.model_validate({"spec": spec})
    helpers = HelperSettings("stowage-helpers", "helper:dev", "Never", "helper-sa")
    assert driving.helper("config", model, helpers) is None
    copy = driving.helper_credentials("config", model, helpers, {"password": "cHc="})
    assert copy is not None and copy["metadata"]["namespace"] == "stowage-helpers"
    in_tree = StorageBackend.model_validate({"spec": {**spec, "provisioning": {}}})
    assert driving.helper("config", in_tree, helpers) is not None  # its helper fetches


def test_git_repo_credentials_depend_on_the_url() -> None:
    https = backend("config", {"gitRepo": {**GIT["gitRepo"], "credentialsSecretRef": SECRET}})
    ssh = backend(
        "config",
        {
            "gitRepo": {
                "repository": "git@git.example.com:team/config.git",
                "credentialsSecretRef": SECRET,
            }
        },
    )
    assert driver_for(https.spec.storage_type).secret_requirements(https)[0].keys == (
        "username",
        "password",
    )
    assert driver_for(ssh.spec.storage_type).secret_requirements(ssh)[0].keys == ("ssh-privatekey",)
    assert driver_for(https.spec.storage_type).secret_requirements(backend("c", GIT)) == []


def test_git_repo_refuses_a_password_in_the_url_without_repeating_it() -> None:
    ref = backend("config", {"gitRepo": {"repository": "https://bot:s3cret@git.example.com/x.git"}})
    assert problems(ref) == [
        "gitRepo.repository: the URL carries a password; put credentials in "
        "gitRepo.credentialsSecretRef"
    ]


LVM = {"lvm": {"volumeGroup": "vg-data", "nodes": ["node-a", "node-b", "node-c"]}}


def test_lvm_chooses_a_node_with_room_and_rounds_to_extents() -> None:
    ref = backend("fast", LVM)
    ctx = ProvisionContext(
        nodes=(
            node("node-a", free="2Gi", backend_name="fast"),
            node("node-b", free="100Gi", backend_name="fast"),
            node("node-c", free="3Gi", backend_name="fast"),
        )
    )
    volume = built_volume(ref, claim(size=3 * GI - 1), ctx)
    assert volume["spec"]["capacity"] == {"storage": "3Gi"}  # whole 4MiB extents
    assert volume["metadata"]["annotations"]["stowage.io/block-volume"] == DIRECTORY
    assert volume["metadata"]["annotations"]["stowage.io/node"] in {"node-b", "node-c"}


def test_lvm_says_when_no_node_has_room() -> None:
    ref = backend("fast", LVM)
    ctx = ProvisionContext(
        nodes=(
            node("node-a", free="2Gi", backend_name="fast"),
            node("node-b", free="3Gi", backend_name="fast"),
        )
    )
    with pytest.raises(
        Unprovisionable,
        match="no node has 5Gi free in backend fast: the largest free is 3Gi on node node-b",
    ):
        built_volume(ref, claim(), ctx)


def test_lvm_refuses_a_selected_node_without_room() -> None:
    ref = backend("fast", LVM)
    ctx = ProvisionContext(nodes=(node("node-a", free="1Gi", backend_name="fast"),))
    with pytest.raises(Unprovisionable, match=r"node node-a has 1Gi free .* the claim needs 5Gi"):
        built_volume(ref, claim(selected_node="node-a"), ctx)


def test_lvm_block_claims_get_the_logical_volume_device() -> None:
    ref = backend("fast", LVM)
    volume = built_volume(
        ref, claim(volume_mode="Block", selected_node="node-a"), ProvisionContext()
    )
    assert volume["spec"]["volumeMode"] == "Block"
    assert volume["spec"]["local"] == {"path": f"/dev/vg-data/{DIRECTORY}"}


def test_rbd_image_per_claim_pinned_to_a_node_filesystem_only() -> None:
    spec = {"rbd": {"monitors": ["10.0.0.21"], "pool": "k8s", "userSecretRef": SECRET}}
    ref = backend("ceph-rbd", spec)
    volume = built_volume(ref, claim(selected_node="node-a"), ProvisionContext())
    assert volume["spec"]["local"] == {"path": f"/var/lib/stowage/volumes/ceph-rbd/{DIRECTORY}"}
    assert volume["metadata"]["annotations"]["stowage.io/block-volume"] == DIRECTORY
    assert affinity(volume)[0]["key"] == "kubernetes.io/hostname"
    with pytest.raises(Unprovisionable, match="cannot serve volumeMode Block"):
        built_volume(ref, claim(volume_mode="Block", selected_node="node-a"), ProvisionContext())
    with pytest.raises(Unprovisionable, match="single-node filesystem"):
        built_volume(ref, claim(modes=("ReadWriteMany",)), ProvisionContext())
    assert driver_for(ref.spec.storage_type).secret_requirements(ref)[0].keys == (
        "userID",
        "userKey",
    )


# --- volumes the helper makes on the chosen node (emptyDir, gitRepo) ------------


def ready_node(name: str, backend_name: str) -> Any:
    return node(name, **{f"mount.stowage.io/{backend_name}": "ready"})


def test_empty_dir_claims_are_directories_of_the_base_path_or_tmpfs_of_the_claims_size() -> None:
    on_disk = backend("scratch", {"emptyDir": {"basePath": "/srv/scratch"}})
    in_memory = backend("scratch", {"emptyDir": {"medium": "Memory"}})
    ctx = ProvisionContext(nodes=(ready_node("node-a", "scratch"),))
    for ref, path, tmpfs in [
        (on_disk, f"/srv/scratch/{DIRECTORY}", None),
        (in_memory, f"/var/lib/stowage/volumes/scratch/{DIRECTORY}", 64 * 2**20),
    ]:
        driver = driver_for(ref.spec.storage_type)
        volume = built_volume(ref, claim(size=64 * 2**20), ctx)
        assert volume["spec"]["local"] == {"path": path}
        work = driver.node_volume(ref, ProvisionedVolume.from_manifest(volume))
        assert work is not None
        assert (work.path, work.tmpfs_bytes, work.checkout) == (path, tmpfs, None)
        assert path.startswith(work.root + "/")
    # The helper needs the disk base path from the node; a tmpfs is made below its own root.
    assert driver_for(on_disk.spec.storage_type).host_directories(on_disk) == ("/srv/scratch",)
    assert driver_for(in_memory.spec.storage_type).host_directories(in_memory) == ()
    default = backend("scratch", {"emptyDir": {}})
    assert driver_for(default.spec.storage_type).host_directories(default) == ()


def test_helper_made_volumes_are_only_scheduled_where_the_helper_runs() -> None:
    for ref in (backend("scratch", {"emptyDir": {}}), backend("config", GIT)):
        topology = driver_for(ref.spec.storage_type).storage_class(ref).allowed_topology
        requirement = NodeRequirement(f"mount.stowage.io/{ref.name}", ("ready",))
        assert requirement in topology
    host_path = backend("local", HOST_PATH)  # the kubelet makes those directories itself
    topology = driver_for(host_path.spec.storage_type).storage_class(host_path).allowed_topology
    assert [requirement.key for requirement in topology] == ["kubernetes.io/hostname"]


def test_git_repo_checkout_lives_beside_the_claims_and_follows_the_backends_revision() -> None:
    spec = {
        "gitRepo": {
            "repository": "ssh://git@git.example.com/team/config.git",
            "revision": "release-2",
            "depth": 3,
            "syncPeriod": "1m30s",
            "credentialsSecretRef": SECRET,
        }
    }
    ref = backend("config", spec)
    volume = built_volume(
        ref, claim(modes=("ReadOnlyMany",), selected_node="n1"), ProvisionContext()
    )
    work = driver_for(ref.spec.storage_type).node_volume(
        ref, ProvisionedVolume.from_manifest(volume)
    )
    assert work is not None and work.checkout is not None
    assert work.root == "/var/lib/stowage/volumes/config"
    assert work.path == f"/var/lib/stowage/volumes/config/{DIRECTORY}"
    assert work.checkout.path == f"/var/lib/stowage/volumes/config/.checkouts/{DIRECTORY}"
    assert (work.checkout.revision, work.checkout.depth, work.checkout.sync_seconds) == (
        "release-2",
        3,
        90.0,
    )
    assert work.checkout.ssh and work.checkout.credentials is not None
    assert work.tmpfs_bytes is None


def test_empty_dir_medium_and_base_path_cannot_change() -> None:
    schema = StorageBackend.model_json_schema()
    empty_dir = schema["$defs"]["EmptyDirSpec"]["properties"]
    for field in ("medium", "basePath"):
        rules = empty_dir[field]["x-kubernetes-validations"]
        assert {"rule": "self == oldSelf", "message": f"emptyDir.{field} is immutable"} in rules


@pytest.mark.parametrize(
    ("action", "calls", "done"),
    [
        (OnDelete.DELETE, ["remove"], True),
        (OnDelete.ARCHIVE, ["archive archived-x"], True),
        (OnDelete.RETAIN, [], False),
    ],
)
def test_a_release_plan_deletes_archives_or_keeps_the_data(
    action: OnDelete, calls: list[str], done: bool
) -> None:
    made: list[str] = []

    def remove() -> bool:
        made.append("remove")
        return True

    def archive(name: str) -> bool:
        made.append(f"archive {name}")
        return True

    plan = ReleasePlan(action=action, location=DataLocation(path="/x"), archive_name="archived-x")
    assert plan.carry_out(remove, archive) is done
    assert made == calls
