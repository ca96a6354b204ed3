"""The real API server enforces the generated CRD schemas and CEL rules.

Invalid objects are sent as dry-run creates (full validation, nothing stored); each must be
refused with a message that names the offending field. The examples of every storage type
and the NASShare example must be accepted, and transition rules must refuse changes of
identity fields on stored objects.
"""

from __future__ import annotations

import copy
import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from stowage.api.backend import StorageBackend, StorageType
from stowage.api.common import GROUP, VERSION
from stowage.api.crds import all_crds
from stowage.api.nasshare import NASShare

pytestmark = pytest.mark.integration

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
FIELD_MANAGER = "stowage-crd-validation-test"
SHARE_NAMESPACE = "default"
MERGE_PATCH = "application/merge-patch+json"
Manifest = dict[str, Any]


def example(name: str) -> Manifest:
    """An example under a name of its own, so that it never meets the stored original."""
    manifest: Manifest = yaml.safe_load((EXAMPLES / name).read_text())
    manifest["metadata"] = {"name": f"{manifest['metadata']['name']}-{uuid.uuid4().hex[:6]}"}
    return manifest


class CustomResources:
    """StorageBackends and NASShares through the API server (dry-run by default)."""

    def __init__(self, api_client: client.ApiClient) -> None:
        self._objects = client.CustomObjectsApi(api_client)

    def create(self, manifest: Manifest, *, dry_run: bool = True) -> Manifest:
        dry = "All" if dry_run else None
        plural = _plural(manifest)
        if manifest["kind"] == NASShare.resource.kind:
            created = self._objects.create_namespaced_custom_object(
                GROUP, VERSION, SHARE_NAMESPACE, plural, manifest, dry_run=dry
            )
        else:
            created = self._objects.create_cluster_custom_object(
                GROUP, VERSION, plural, manifest, dry_run=dry
            )
        assert isinstance(created, dict)
        return created

    def patch(self, manifest: Manifest, change: Manifest) -> None:
        """A JSON merge patch: no resourceVersion, so an operator's writes cannot conflict."""
        name, plural = manifest["metadata"]["name"], _plural(manifest)
        if manifest["kind"] == NASShare.resource.kind:
            self._objects.patch_namespaced_custom_object(
                GROUP, VERSION, SHARE_NAMESPACE, plural, name, change, _content_type=MERGE_PATCH
            )
        else:
            self._objects.patch_cluster_custom_object(
                GROUP, VERSION, plural, name, change, _content_type=MERGE_PATCH
            )

    def delete(self, manifest: Manifest) -> None:
        name, plural = manifest["metadata"]["name"], _plural(manifest)
        try:
            if manifest["kind"] == NASShare.resource.kind:
                self._objects.delete_namespaced_custom_object(
                    GROUP, VERSION, SHARE_NAMESPACE, plural, name
                )
            else:
                self._objects.delete_cluster_custom_object(GROUP, VERSION, plural, name)
        except ApiException as error:
            if error.status != 404:
                raise

    @staticmethod
    def rejection(request: Callable[[], Any]) -> str:
        """The API server's message refusing the request (fails the test if it is accepted)."""
        with pytest.raises(ApiException) as refused:
            request()
        assert refused.value.status == 422, refused.value.body
        message: str = json.loads(refused.value.body or "{}")["message"]
        return message


def _plural(manifest: Manifest) -> str:
    if manifest["kind"] == NASShare.resource.kind:
        return NASShare.resource.plural
    return StorageBackend.resource.plural


def apply_crds(api_client: client.ApiClient) -> None:
    extensions = client.ApiextensionsV1Api(api_client)
    for crd in all_crds():
        extensions.patch_custom_resource_definition(
            crd["metadata"]["name"],
            crd,
            field_manager=FIELD_MANAGER,
            force=True,
            _content_type="application/apply-patch+yaml",
        )


def wait_until_served(resources: CustomResources, timeout: float = 60) -> None:
    """Established, and the new schema in force: a sample passes and a known-bad one fails."""
    sample, bad = example("storagebackends/nfs.yaml"), example("storagebackends/nfs.yaml")
    bad["spec"]["nfs"]["servers"] = []
    deadline = time.monotonic() + timeout
    while True:
        try:
            resources.create(sample)
            resources.create(bad)
        except ApiException as error:
            if error.status == 422 and "spec.nfs.servers" in (error.body or ""):
                return
            if time.monotonic() > deadline:
                raise
        if time.monotonic() > deadline:
            raise AssertionError("the CRDs were not served with the generated schema in time")
        time.sleep(0.5)


@pytest.fixture(scope="module")
def resources(kubeconfig: Any) -> Iterator[CustomResources]:
    api_client = config.new_client_from_config(config_file=str(kubeconfig))  # type: ignore[no-untyped-call]
    try:
        apply_crds(api_client)
        custom_resources = CustomResources(api_client)
        wait_until_served(custom_resources)
        yield custom_resources
    finally:
        api_client.close()


# --- invalid objects --------------------------------------------------------


def backend(spec: Manifest, name: str = "sample") -> Manifest:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": StorageBackend.resource.kind,
        "metadata": {"name": name},
        "spec": spec,
    }


def edited(path: str, change: Callable[[Manifest], None]) -> Manifest:
    manifest = copy.deepcopy(example(path))
    change(manifest["spec"])
    return manifest


def share(change: Callable[[Manifest], None]) -> Manifest:
    return edited("nasshare.yaml", change)


SECRET = {"name": "creds", "namespace": "stowage-system"}
NFS = {"servers": ["10.0.0.21"], "path": "/exports"}
ISCSI = {
    "portals": ["10.0.0.31:3260"],
    "iqn": "iqn.2024-01.com.example:t",
    "luns": [{"lun": 1, "size": "1Gi"}],
}


def iscsi(**change: Any) -> Manifest:
    return backend({"iscsi": {**ISCSI, **change}})


def git(**change: Any) -> Manifest:
    return backend({"gitRepo": {"repository": "https://git.example.com/a.git", **change}})


def nas_spec(**change: Any) -> Callable[[Manifest], None]:
    return lambda spec: spec.update(change)


def set_in(key: str, **change: Any) -> Callable[[Manifest], None]:
    return lambda spec: spec[key].update(change)


def nfs_client(**change: Any) -> Callable[[Manifest], None]:
    return lambda spec: spec["nfs"]["clients"][0].update(change)


@dataclass(frozen=True)
class Invalid:
    id: str
    manifest: Manifest
    names: tuple[str, ...]  # every one must appear in the API server's message


INVALID = [
    Invalid("no-type", backend({}), ("spec", "exactly one storage type")),
    Invalid(
        "two-types", backend({"nfs": NFS, "emptyDir": {}}), ("spec", "exactly one storage type")
    ),
    Invalid("nfs-no-servers", backend({"nfs": {**NFS, "servers": []}}), ("spec.nfs.servers",)),
    Invalid(
        "nfs-duplicate-servers",
        backend({"nfs": {**NFS, "servers": ["a.example", "a.example"]}}),
        ("spec.nfs.servers[1]", "Duplicate"),
    ),
    Invalid("nfs-relative-path", backend({"nfs": {**NFS, "path": "exports"}}), ("spec.nfs.path",)),
    Invalid("nfs-dotdot-path", backend({"nfs": {**NFS, "path": "/a/../b"}}), ("spec.nfs.path",)),
    Invalid("nfs-version", backend({"nfs": {**NFS, "version": "5"}}), ("spec.nfs.version",)),
    Invalid(
        "glusterfs-bad-host",
        backend({"glusterfs": {"hosts": ["bad host!"], "volume": "gv0"}}),
        ("spec.glusterfs.hosts[0]", "IP address or a DNS name"),
    ),
    Invalid(
        "glusterfs-no-hosts",
        backend({"glusterfs": {"hosts": [], "volume": "gv0"}}),
        ("spec.glusterfs.hosts",),
    ),
    Invalid(
        "glusterfs-no-volume",
        backend({"glusterfs": {"hosts": ["10.0.0.11"]}}),
        ("spec.glusterfs.volume", "Required"),
    ),
    Invalid(
        "directory-mode-not-octal",
        backend({"nfs": NFS, "provisioning": {"directoryMode": "0789"}}),
        ("spec.provisioning.directoryMode",),
    ),
    Invalid(
        "directory-owner-negative",
        backend({"nfs": NFS, "provisioning": {"directoryOwner": {"uid": -1, "gid": 0}}}),
        ("spec.provisioning.directoryOwner.uid",),
    ),
    Invalid("iscsi-no-portals", iscsi(portals=[]), ("spec.iscsi.portals",)),
    Invalid("iscsi-bad-portal", iscsi(portals=["host:port"]), ("spec.iscsi.portals[0]",)),
    Invalid("iscsi-bad-iqn", iscsi(iqn="storage-target"), ("spec.iscsi.iqn",)),
    Invalid("iscsi-empty-pool", iscsi(luns=[]), ("spec.iscsi.luns",)),
    Invalid(
        "iscsi-zero-size",
        iscsi(luns=[{"lun": 1, "size": 0}]),
        ("spec.iscsi.luns[0].size", "greater than zero"),
    ),
    Invalid(
        "iscsi-garbage-size",
        iscsi(luns=[{"lun": 1, "size": "ten gigs"}]),
        ("spec.iscsi.luns[0].size", "must be a quantity"),
    ),
    Invalid(
        "iscsi-duplicate-lun",
        iscsi(luns=[{"lun": 1, "size": "1Gi"}, {"lun": 1, "size": "2Gi"}]),
        ("spec.iscsi.luns[1]", "Duplicate"),
    ),
    Invalid(
        "iscsi-lun-range", iscsi(luns=[{"lun": 20000, "size": "1Gi"}]), ("spec.iscsi.luns[0].lun",)
    ),
    Invalid(
        "rbd-no-monitors",
        backend({"rbd": {"monitors": [], "pool": "kube", "userSecretRef": SECRET}}),
        ("spec.rbd.monitors",),
    ),
    Invalid(
        "rbd-no-secret",
        backend({"rbd": {"monitors": ["10.0.0.41:6789"], "pool": "kube"}}),
        ("spec.rbd.userSecretRef", "Required"),
    ),
    Invalid(
        "rbd-image-feature",
        backend(
            {
                "rbd": {
                    "monitors": ["m:6789"],
                    "pool": "kube",
                    "userSecretRef": SECRET,
                    "imageFeatures": ["journaling"],
                }
            }
        ),
        ("spec.rbd.imageFeatures[0]",),
    ),
    Invalid(
        "cephfs-no-monitors",
        backend({"cephfs": {"monitors": [], "userSecretRef": SECRET}}),
        ("spec.cephfs.monitors",),
    ),
    Invalid(
        "cifs-share-with-slash",
        backend({"cifs": {"servers": ["files"], "share": "a/b", "secretRef": SECRET}}),
        ("spec.cifs.share",),
    ),
    Invalid(
        "cifs-secret-without-namespace",
        backend({"cifs": {"servers": ["files"], "share": "k8s", "secretRef": {"name": "c"}}}),
        ("spec.cifs.secretRef.namespace", "Required"),
    ),
    Invalid(
        "git-option-injection", git(repository="-oProxyCommand=x"), ("spec.gitRepo.repository",)
    ),
    Invalid(
        "git-sync-too-often", git(syncPeriod="1s"), ("spec.gitRepo.syncPeriod", "at least 10s")
    ),
    Invalid("git-sync-not-duration", git(syncPeriod="1d"), ("spec.gitRepo.syncPeriod",)),
    Invalid("git-negative-depth", git(depth=-1), ("spec.gitRepo.depth",)),
    Invalid("git-revision-option", git(revision="--upload-pack=x"), ("spec.gitRepo.revision",)),
    Invalid(
        "emptydir-medium", backend({"emptyDir": {"medium": "HugePages"}}), ("spec.emptyDir.medium",)
    ),
    Invalid("hostpath-relative", backend({"hostPath": {"path": "srv"}}), ("spec.hostPath.path",)),
    Invalid("lvm-bad-vg", backend({"lvm": {"volumeGroup": "-vg"}}), ("spec.lvm.volumeGroup",)),
    Invalid(
        "aws-iops-on-st1",
        backend({"awsElasticBlockStore": {"type": "st1", "iops": 3000}}),
        ("spec.awsElasticBlockStore", "awsElasticBlockStore.iops"),
    ),
    Invalid(
        "aws-kms-unencrypted",
        backend({"awsElasticBlockStore": {"kmsKeyId": "alias/k8s"}}),
        ("spec.awsElasticBlockStore", "awsElasticBlockStore.kmsKeyId"),
    ),
    Invalid(
        "gce-disk-type",
        backend({"gcePersistentDisk": {"type": "pd-ultra"}}),
        ("spec.gcePersistentDisk.type",),
    ),
    Invalid(
        "gce-negative-disk-size",
        backend({"gcePersistentDisk": {"existingDisks": [{"pdName": "d", "size": "-5Gi"}]}}),
        ("spec.gcePersistentDisk.existingDisks[0].size", "greater than zero"),
    ),
    Invalid(
        "cinder-volume-without-id",
        backend({"cinder": {"existingVolumes": [{"size": "1Gi"}]}}),
        ("spec.cinder.existingVolumes[0].volumeID", "Required"),
    ),
    Invalid(
        "on-delete",
        backend({"nfs": NFS, "provisioning": {"onDelete": "Shred"}}),
        ("spec.provisioning.onDelete",),
    ),
    Invalid(
        "reclaim-policy",
        backend({"nfs": NFS, "storageClass": {"reclaimPolicy": "Recycle"}}),
        ("spec.storageClass.reclaimPolicy",),
    ),
    Invalid(
        "toleration-exists-with-value",
        backend({"nfs": NFS, "mount": {"tolerations": [{"operator": "Exists", "value": "x"}]}}),
        ("spec.mount.tolerations[0]", "value must be empty"),
    ),
    Invalid(
        "mount-option-injection",
        backend({"nfs": NFS, "mount": {"options": ["ro;rm -rf /"]}}),
        ("spec.mount.options[0]",),
    ),
    Invalid(
        "backend-name-too-long",
        backend({"nfs": NFS}, name="b" * 64),
        ("metadata.name", "at most 63"),
    ),
    Invalid("share-no-protocols", share(nas_spec(protocols=[])), ("spec.protocols",)),
    Invalid(
        "share-duplicate-protocol",
        share(nas_spec(protocols=["nfs", "nfs"])),
        ("spec.protocols[1]", "Duplicate"),
    ),
    Invalid("share-unknown-protocol", share(nas_spec(protocols=["afp"])), ("spec.protocols[0]",)),
    Invalid("share-three-replicas", share(nas_spec(replicas=3)), ("spec.replicas",)),
    Invalid("share-no-replicas", share(nas_spec(replicas=0)), ("spec.replicas",)),
    Invalid("share-zero-size", share(nas_spec(size="0Gi")), ("spec.size", "greater than zero")),
    Invalid("share-garbage-size", share(nas_spec(size="lots")), ("spec.size", "quantity")),
    Invalid(
        "share-cidr-prefix",
        share(nfs_client(cidr="10.0.0.0/33")),
        ("spec.nfs.clients[0].cidr", "CIDR"),
    ),
    Invalid(
        "share-cidr-garbage", share(nfs_client(cidr="everyone")), ("spec.nfs.clients[0].cidr",)
    ),
    Invalid("share-nfs-access", share(nfs_client(access="Write")), ("spec.nfs.clients[0].access",)),
    Invalid(
        "share-nfs-without-settings",
        share(lambda spec: spec.pop("nfs")),
        ("spec.nfs is required",),
    ),
    Invalid(
        "share-smb-without-settings",
        share(lambda spec: spec.pop("smb")),
        ("spec.smb is required",),
    ),
    Invalid("share-no-clients", share(set_in("nfs", clients=[])), ("spec.nfs.clients",)),
    Invalid(
        "share-smb-no-secret",
        share(lambda spec: spec["smb"].pop("usersSecretRef")),
        ("spec.smb.usersSecretRef", "Required"),
    ),
    Invalid(
        "share-service-type",
        share(set_in("service", type="ExternalName")),
        ("spec.service.type",),
    ),
    Invalid("share-backend-name", share(nas_spec(backend="Gluster_Prod")), ("spec.backend",)),
]


def test_there_are_at_least_thirty_distinct_invalid_objects() -> None:
    assert len({case.id for case in INVALID}) == len(INVALID) >= 30


@pytest.mark.parametrize("case", INVALID, ids=[case.id for case in INVALID])
def test_invalid_objects_are_refused_naming_the_field(
    resources: CustomResources, case: Invalid
) -> None:
    message = resources.rejection(lambda: resources.create(case.manifest))
    for name in case.names:
        assert name in message, message


def test_a_share_name_that_cannot_name_its_objects_is_refused(resources: CustomResources) -> None:
    manifest = example("nasshare.yaml")
    manifest["metadata"]["name"] = "s" * 52
    message = resources.rejection(lambda: resources.create(manifest))
    assert "metadata.name" in message and "at most 51" in message, message


# --- valid objects ----------------------------------------------------------

VALID = [
    *sorted(str(path.relative_to(EXAMPLES)) for path in EXAMPLES.glob("storagebackends/*.yaml")),
    "nasshare.yaml",
]


def test_there_is_a_valid_example_of_every_type_and_a_share() -> None:
    kinds_and_types = {
        (manifest["kind"], next(iter(manifest["spec"]))) for manifest in map(example, VALID)
    }
    assert len(kinds_and_types) == len(VALID) == len(StorageType) + 1


@pytest.mark.parametrize("path", VALID)
def test_the_examples_are_accepted(resources: CustomResources, path: str) -> None:
    manifest = example(path)
    created = resources.create(manifest)
    assert kept(manifest["spec"], created["spec"])


def kept(sent: Any, stored: Any) -> bool:
    """Everything sent is in the stored object (which also has the defaults)."""
    if isinstance(sent, dict):
        return isinstance(stored, dict) and all(
            key in stored and kept(value, stored[key]) for key, value in sent.items()
        )
    return bool(sent == stored)


def test_defaults_are_filled_in_by_the_api_server(resources: CustomResources) -> None:
    created = resources.create(backend({"nfs": NFS}, name="defaults"))
    assert created["spec"]["nfs"]["version"] == "4.1"
    assert created["spec"]["provisioning"] == {
        "basePath": "/",
        "onDelete": "Delete",
        "directoryMode": "0777",
        # Stored: a backend made now stays with the stowage.io/provisioner if the default
        # ever changes.
        "csi": False,
    }
    assert created["spec"]["storageClass"]["volumeBindingMode"] == "WaitForFirstConsumer"


def test_integer_sizes_are_accepted(resources: CustomResources) -> None:
    manifest = iscsi(luns=[{"lun": 0, "size": 1073741824}])
    assert resources.create(manifest)["spec"]["iscsi"]["luns"][0]["size"] == 1073741824


# --- transition rules on stored objects -------------------------------------


@pytest.fixture
def stored_backend(resources: CustomResources) -> Iterator[Manifest]:
    """An nfs backend that exists for the test (nfs needs no helper pods)."""
    manifest = backend({"nfs": NFS}, name=f"immutable-{uuid.uuid4().hex[:8]}")
    stored = resources.create(manifest, dry_run=False)
    try:
        yield stored
    finally:
        resources.delete(manifest)


def test_the_export_path_cannot_change(
    resources: CustomResources, stored_backend: Manifest
) -> None:
    change = {"spec": {"nfs": {"path": "/elsewhere"}}}
    message = resources.rejection(lambda: resources.patch(stored_backend, change))
    assert "spec.nfs.path" in message and "nfs.path is immutable" in message, message


def test_the_storage_type_cannot_change(
    resources: CustomResources, stored_backend: Manifest
) -> None:
    change = {"spec": {"nfs": None, "glusterfs": {"hosts": ["10.0.0.11"], "volume": "gv0"}}}
    message = resources.rejection(lambda: resources.patch(stored_backend, change))
    assert "spec" in message and "storage type is immutable" in message, message


def test_mutable_settings_can_change(resources: CustomResources, stored_backend: Manifest) -> None:
    change = {
        "spec": {
            "nfs": {"servers": ["10.0.0.22", "10.0.0.21"]},
            "provisioning": {"onDelete": "Retain"},
        }
    }
    resources.patch(stored_backend, change)


def test_an_empty_dir_backend_keeps_its_medium_and_base_path(resources: CustomResources) -> None:
    manifest = backend({"emptyDir": {}}, name=f"immutable-{uuid.uuid4().hex[:8]}")
    resources.create(manifest, dry_run=False)
    try:
        to_memory = {"spec": {"emptyDir": {"medium": "Memory"}}}
        message = resources.rejection(lambda: resources.patch(manifest, to_memory))
        assert "emptyDir.medium is immutable" in message, message
        elsewhere = {"spec": {"emptyDir": {"basePath": "/srv/scratch"}}}
        message = resources.rejection(lambda: resources.patch(manifest, elsewhere))
        assert "emptyDir.basePath is immutable" in message, message
    finally:
        resources.delete(manifest)


def test_a_share_cannot_move_to_another_backend(resources: CustomResources) -> None:
    manifest = example("nasshare.yaml")
    manifest["spec"]["backend"] = "no-such-backend"  # nothing for an operator to serve
    resources.create(manifest, dry_run=False)
    try:
        change = {"spec": {"backend": "another-backend"}}
        message = resources.rejection(lambda: resources.patch(manifest, change))
        assert "spec.backend" in message and "backend is immutable" in message, message
    finally:
        resources.delete(manifest)


def test_ipv6_servers_and_networks_are_accepted(resources: CustomResources) -> None:
    resources.create(backend({"glusterfs": {"hosts": ["fd00::11", "10.0.0.12"], "volume": "gv0"}}))
    resources.create(iscsi(portals=["[fd00::31]:3260", "[fd00::32]"]))
    ipv6_share = share(nfs_client(cidr="fd00:10::/64"))
    assert resources.create(ipv6_share)["spec"]["nfs"]["clients"][0]["cidr"] == "fd00:10::/64"
