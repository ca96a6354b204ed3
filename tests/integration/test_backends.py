"""StorageBackend reconciler against the real API server: conditions, StorageClass, Secrets."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import pytest
import yaml
from itkit import Api, OperatorProcess, storage_backend, unique, wait_for

from stowage.kube.resources import CSI_DRIVERS, SECRETS, STORAGE_BACKENDS, STORAGE_CLASSES
from stowage_e2e.hosts import TestHost

pytestmark = pytest.mark.integration

# One spec per type that is Ready as soon as its StorageClass exists (no helper runs in this
# tier, so these types do not wait for node mounts here). Their servers are a cut-off test host.
READY_TYPES = ("emptyDir", "gitRepo", "glusterfs", "hostPath", "iscsi", "lvm", "nfs")


def ready_spec(storage_type: str, server: str) -> dict[str, Any]:
    specs: dict[str, dict[str, Any]] = {
        "emptyDir": {"emptyDir": {}},
        "hostPath": {"hostPath": {"path": "/srv/stowage"}},
        "gitRepo": {"gitRepo": {"repository": f"git://{server}/config.git"}},
        "nfs": {"nfs": {"servers": [server], "path": "/exports/k8s"}},
        "iscsi": {
            "iscsi": {
                "portals": [f"{server}:3260"],
                "iqn": "iqn.2024-01.test.example:storage",
                "luns": [{"lun": 1, "size": "1Gi"}, {"lun": 2, "size": "2Gi"}],
            }
        },
        "glusterfs": {"glusterfs": {"hosts": [server], "volume": "gv0"}},
        "lvm": {"lvm": {"volumeGroup": "vg0"}},
    }
    return specs[storage_type]


CLOUD_SPECS: dict[str, tuple[dict[str, Any], str]] = {
    "gcePersistentDisk": (
        {"gcePersistentDisk": {"existingDisks": [{"pdName": "data-1", "size": "10Gi"}]}},
        "pd.csi.storage.gke.io",
    ),
    "awsElasticBlockStore": ({"awsElasticBlockStore": {}}, "ebs.csi.aws.com"),
    "cinder": ({"cinder": {}}, "cinder.csi.openstack.org"),
}


def test_crds_are_established(api: Api, crds: list[str]) -> None:
    assert "storagebackends.stowage.io" in crds
    output = api.kubectl(
        "get",
        "crd",
        "storagebackends.stowage.io",
        "-o",
        "jsonpath={.status.conditions[?(@.type=='Established')].status}",
    )
    assert output.strip() == "True"


@pytest.mark.parametrize("storage_type", READY_TYPES)
def test_backend_of_each_type_becomes_ready_with_its_storage_class(
    api: Api,
    operator: OperatorProcess,
    backends: Callable[[str, dict[str, Any]], str],
    unreachable_host: TestHost,
    storage_type: str,
) -> None:
    name = backends(storage_type, ready_spec(storage_type, unreachable_host.ip))
    ready = api.wait_condition(name, status="True", reason="Available")
    body = api.backend(name)
    assert body is not None
    assert ready["observedGeneration"] == body["metadata"]["generation"]
    assert body["status"]["storageType"] == storage_type
    assert body["status"]["volumes"] == 0
    storage_class = api.get(STORAGE_CLASSES, name)
    assert storage_class is not None
    owners = storage_class["metadata"]["ownerReferences"]
    assert [(o["kind"], o["uid"]) for o in owners] == [("StorageBackend", body["metadata"]["uid"])]
    assert "kopf.zalando.org" not in str(body["metadata"].get("annotations"))


@pytest.mark.parametrize("storage_type", sorted(CLOUD_SPECS))
def test_cloud_backend_waits_for_its_csi_driver(
    api: Api,
    operator: OperatorProcess,
    backends: Callable[[str, dict[str, Any]], str],
    csi_driver: Callable[[str], None],
    storage_type: str,
) -> None:
    spec, driver = CLOUD_SPECS[storage_type]
    if api.get(CSI_DRIVERS, driver):
        pytest.skip(f"CSIDriver {driver} is installed in this cluster")
    name = backends(storage_type, spec)
    missing = api.wait_condition(name, status="False", reason="CSIDriverMissing")
    assert driver in missing["message"]
    storage_class = api.get(STORAGE_CLASSES, name)
    assert storage_class is not None and storage_class["provisioner"] == driver
    events = api.events("StorageBackend", name, "default")
    assert any(e["reason"] == "CSIDriverMissing" and e["type"] == "Warning" for e in events)
    csi_driver(driver)
    api.wait_condition(name, status="True", reason="Available", timeout=30)
    for disk in spec[storage_type].get("existingDisks", []):
        volumes = api.volumes_of(name)
        assert any(disk["pdName"] in v["metadata"]["name"] for v in volumes), volumes


def test_missing_secret_then_missing_key_then_ready(
    api: Api,
    operator: OperatorProcess,
    backends: Callable[[str, dict[str, Any]], str],
    namespace: str,
    unreachable_host: TestHost,
) -> None:
    secret = unique("smb-credentials")
    spec = {
        "cifs": {
            "servers": [unreachable_host.ip],
            "share": "k8s",
            "secretRef": {"name": secret, "namespace": namespace},
        }
    }
    name = backends("cifs", spec)
    condition = api.wait_condition(name, status="False", reason="SecretMissing")
    assert f"{namespace}/{secret}" in condition["message"]

    def write_secret(data: dict[str, str]) -> None:
        api.apply(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": secret, "namespace": namespace},
                "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
            }
        )

    write_secret({"username": "alice"})
    condition = api.wait_condition(name, status="False", reason="SecretKeyMissing")
    assert "password" in condition["message"]
    write_secret({"username": "alice", "password": "s3cr3t-value"})
    api.wait_condition(name, status="True", reason="Available")
    assert "s3cr3t-value" not in operator.log()
    assert all(
        "s3cr3t" not in e.get("message", "") for e in api.events("StorageBackend", name, "default")
    )
    api.delete(SECRETS, secret, namespace)


def test_storage_class_follows_the_backend(
    api: Api,
    operator: OperatorProcess,
    backends: Callable[[str, dict[str, Any]], str],
    unreachable_host: TestHost,
) -> None:
    spec: dict[str, Any] = {"nfs": {"servers": [unreachable_host.ip], "path": "/exports/a"}}
    name = backends("nfs", spec)
    api.wait_condition(name, status="True", reason="Available")
    default_annotation = "storageclass.kubernetes.io/is-default-class"

    def annotation() -> str | None:
        storage_class = api.get(STORAGE_CLASSES, name) or {}
        value: str | None = (
            (storage_class.get("metadata") or {}).get("annotations", {}).get(default_annotation)
        )
        return value

    assert annotation() != "true"
    first_uid = (api.get(STORAGE_CLASSES, name) or {})["metadata"]["uid"]
    api.apply(storage_backend(name, {**spec, "storageClass": {"isDefault": True}}))
    wait_for(lambda: annotation() == "true", timeout=30, what="isDefault=true on the class")
    assert (api.get(STORAGE_CLASSES, name) or {})["metadata"]["uid"] == first_uid
    # reclaimPolicy is immutable on a StorageClass: the class is replaced.
    api.apply(
        storage_backend(
            name, {**spec, "storageClass": {"isDefault": True, "reclaimPolicy": "Retain"}}
        )
    )
    replaced = wait_for(
        lambda: (c := api.get(STORAGE_CLASSES, name)) and c.get("reclaimPolicy") == "Retain" and c,
        timeout=30,
        what="the class recreated with Retain",
    )
    assert replaced["metadata"]["uid"] != first_uid
    api.delete(STORAGE_BACKENDS, name)
    wait_for(lambda: api.gone(STORAGE_CLASSES, name), timeout=30, what="the class removed")


def test_server_side_apply_twice_changes_nothing_and_spec_is_never_written(
    api: Api, operator: OperatorProcess, backends: Callable[[str, dict[str, Any]], str]
) -> None:
    spec = {"hostPath": {"path": "/srv/gitops"}}
    name = backends("gitops", spec)
    api.wait_condition(name, status="True", reason="Available")
    before = api.backend(name) or {}
    manifest = storage_backend(name, spec)
    diff = api.kubectl(
        "diff",
        "--server-side",
        "--field-manager=integration-tests",
        "-f",
        "-",
        stdin=yaml.safe_dump(manifest),
        check=False,
    )
    assert diff.strip() == "", diff
    api.apply(manifest)
    after = api.backend(name) or {}
    assert after["metadata"]["generation"] == before["metadata"]["generation"]
    assert after["spec"] == before["spec"]
    spec_managers = {
        entry["manager"]
        for entry in after["metadata"]["managedFields"]
        if "f:spec" in (entry.get("fieldsV1") or {})
    }
    assert spec_managers == {"integration-tests"}
    assert not any(key.startswith("kopf.") for key in after["metadata"].get("annotations") or {})
