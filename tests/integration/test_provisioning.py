"""The provisioning protocol with the real PV controller doing the binding."""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

import pytest
from itkit import Api, OperatorProcess, unique, wait_for

from stowage.kube import Json
from stowage.kube.resources import (
    NODES,
    PERSISTENT_VOLUME_CLAIMS,
    PERSISTENT_VOLUMES,
    SECRETS,
    STORAGE_BACKENDS,
    STORAGE_CLASSES,
)
from stowage_e2e.hosts import TestHost

pytestmark = pytest.mark.integration

IMMEDIATE = {"storageClass": {"volumeBindingMode": "Immediate"}}
SPEC_TYPES = ("hostPath", "iscsi")


@pytest.fixture
def specs(unreachable_host: TestHost) -> dict[str, dict[str, Any]]:
    """A backend per type whose servers never answer (a cut-off test host): the operator plans
    volumes without asking them, and no helper runs in this tier."""
    return {
        "iscsi": {
            "iscsi": {
                "portals": [f"{unreachable_host.ip}:3260"],
                "iqn": "iqn.2024-01.test.example:storage",
                "luns": [{"lun": 1, "size": "1Gi"}, {"lun": 2, "size": "2Gi"}],
            },
            **IMMEDIATE,
        },
        "hostPath": {"hostPath": {"path": "/srv/stowage"}},
    }


@pytest.fixture
def gluster(unreachable_host: TestHost) -> dict[str, Any]:
    return {"glusterfs": {"hosts": [unreachable_host.ip], "volume": "gv0"}, **IMMEDIATE}


def claim_manifest(
    name: str,
    namespace: str,
    storage_class: str,
    *,
    size: str = "1Gi",
    access_modes: tuple[str, ...] = ("ReadWriteOnce",),
    volume_mode: str = "Filesystem",
    **extra: Any,
) -> Json:
    metadata: Json = {"name": name, "namespace": namespace, **extra.pop("metadata", {})}
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": metadata,
        "spec": {
            "storageClassName": storage_class,
            "accessModes": list(access_modes),
            "volumeMode": volume_mode,
            "resources": {"requests": {"storage": size}},
            **extra,
        },
    }


@pytest.fixture
def node(api: Api) -> Iterator[str]:
    """A node for node-local claims: an existing one, else a Node object made for the test."""
    nodes = api.kube.list(NODES)
    if nodes:
        yield nodes[0]["metadata"]["name"]
        return
    name = unique("it-node")
    api.kube.create(
        NODES,
        {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
        },
    )
    yield name
    api.kube.delete(NODES, name)


@pytest.fixture
def mounted(api: Api) -> Iterator[Callable[[str, str], None]]:
    """Labels a node as a mount helper does where its backend is mounted (no helper runs in
    this tier: the e2e tier runs the real one against GlusterFS)."""
    labelled: list[tuple[str, str]] = []

    def label(node: str, backend: str, value: str | None = "ready") -> None:
        patch = {"metadata": {"labels": {f"mount.stowage.io/{backend}": value}}}
        api.kube.merge_patch(NODES, node, patch)
        labelled.append((node, backend))

    yield label
    for node, backend in labelled:
        if api.get(NODES, node) is not None:
            patch = {"metadata": {"labels": {f"mount.stowage.io/{backend}": None}}}
            api.kube.merge_patch(NODES, node, patch)


@pytest.fixture
def second_node(api: Api) -> Iterator[str]:
    name = unique("it-node")
    api.kube.create(
        NODES,
        {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}},
    )
    yield name
    api.kube.delete(NODES, name)


def claim_once(
    api: Api,
    namespace: str,
    claim: str,
    holds: Callable[[Json], bool],
    what: str,
    timeout: float = 30,
) -> Json:
    """The claim, once `holds` says yes of it."""
    return wait_for(
        lambda: (
            body
            if (body := api.get(PERSISTENT_VOLUME_CLAIMS, claim, namespace)) and holds(body)
            else None
        ),
        timeout=timeout,
        what=what,
    )


def annotation(body: Json, key: str) -> str | None:
    return (body["metadata"].get("annotations") or {}).get(key)


def asked_to_prepare(api: Api, namespace: str, claim: str) -> Json:
    """The claim once the operator has asked a helper to make its directory."""
    return claim_once(
        api,
        namespace,
        claim,
        lambda body: bool(annotation(body, "stowage.io/prepare-on")),
        f"a helper asked to prepare claim {claim}",
    )


def prepare_as_the_helper_would(api: Api, namespace: str, claim: str, node: str) -> None:
    """Waits until the helper of `node` is asked for the claim's directory, checks that there
    is no PV yet, then answers as the helper does once the directory is made."""
    asked = asked_to_prepare(api, namespace, claim)
    assert asked["metadata"]["annotations"]["stowage.io/prepare-on"] == node
    assert api.get(PERSISTENT_VOLUMES, f"pvc-{asked['metadata']['uid']}") is None
    patch = {"metadata": {"annotations": {"stowage.io/prepared-by": node}}}
    api.kube.merge_patch(PERSISTENT_VOLUME_CLAIMS, claim, patch, namespace=namespace)


def bound_volume(api: Api, namespace: str, claim: str, timeout: float = 60) -> Json:
    wait_for(
        lambda: api.claim_phase(namespace, claim) == "Bound",
        timeout=timeout,
        what=f"claim {namespace}/{claim} Bound",
    )
    body = api.get(PERSISTENT_VOLUME_CLAIMS, claim, namespace) or {}
    volume = api.get(PERSISTENT_VOLUMES, body["spec"]["volumeName"])
    assert volume is not None
    return volume


@pytest.mark.parametrize("storage_type", SPEC_TYPES)
def test_claim_is_provisioned_and_bound(
    api: Api,
    operator: OperatorProcess,
    backends: Callable[[str, dict[str, Any]], str],
    namespace: str,
    node: str,
    storage_type: str,
    specs: dict[str, dict[str, Any]],
) -> None:
    name = backends(storage_type, specs[storage_type])
    api.wait_condition(name, status="True", reason="Available")
    extra: dict[str, Any] = {}
    if storage_type == "hostPath":  # WaitForFirstConsumer: as the scheduler would, pick the node
        extra["metadata"] = {"annotations": {"volume.kubernetes.io/selected-node": node}}
    api.apply(claim_manifest("data", namespace, name, **extra))
    volume = bound_volume(api, namespace, "data")
    claim = api.get(PERSISTENT_VOLUME_CLAIMS, "data", namespace) or {}
    assert volume["metadata"]["name"] == f"pvc-{claim['metadata']['uid']}"
    assert volume["metadata"]["labels"]["stowage.io/backend"] == name
    assert volume["metadata"]["annotations"]["pv.kubernetes.io/provisioned-by"] == (
        "stowage.io/provisioner"
    )
    assert volume["spec"]["claimRef"]["uid"] == claim["metadata"]["uid"]
    events = api.events("PersistentVolumeClaim", "data", namespace)
    assert any(e["reason"] == "ProvisioningSucceeded" for e in events)
    wait_for(
        lambda: (api.backend(name) or {}).get("status", {}).get("volumes") == 1,
        timeout=30,
        what="status.volumes == 1",
    )
    api.delete(PERSISTENT_VOLUME_CLAIMS, "data", namespace)
    wait_for(
        lambda: api.gone(PERSISTENT_VOLUMES, volume["metadata"]["name"]),
        timeout=30,
        what="the released volume deleted (reclaim policy Delete)",
    )


def test_claim_waits_for_first_consumer_until_a_node_is_selected(
    api: Api,
    operator: OperatorProcess,
    backends: Callable[[str, dict[str, Any]], str],
    namespace: str,
    node: str,
) -> None:
    name = backends("wffc", {"hostPath": {"path": "/srv/wffc"}})
    api.wait_condition(name, status="True", reason="Available")
    api.apply(claim_manifest("later", namespace, name))
    time.sleep(4)
    assert api.claim_phase(namespace, "later") == "Pending"
    assert api.volumes_of(name) == []
    api.kubectl(
        "annotate", "-n", namespace, "pvc/later", f"volume.kubernetes.io/selected-node={node}"
    )
    bound_volume(api, namespace, "later")


def test_static_volume_of_a_csi_type_is_bound(
    api: Api,
    operator: OperatorProcess,
    backends: Callable[[str, dict[str, Any]], str],
    csi_driver: Callable[[str], None],
    namespace: str,
) -> None:
    csi_driver("pd.csi.storage.gke.io")
    name = backends(
        "disks", {"gcePersistentDisk": {"existingDisks": [{"pdName": "archive-1", "size": "10Gi"}]}}
    )
    api.wait_condition(name, status="True", reason="Available")
    [static] = wait_for(lambda: api.volumes_of(name), timeout=30, what="the static volume")
    assert static["spec"]["csi"]["driver"] == "pd.csi.storage.gke.io"
    api.apply(
        claim_manifest(
            "archive", namespace, name, size="10Gi", volumeName=static["metadata"]["name"]
        )
    )
    volume = bound_volume(api, namespace, "archive")
    assert volume["metadata"]["name"] == static["metadata"]["name"]
    # Released, the disk's PV stays (Retain); deleting the backend removes the PV object only.
    api.delete(PERSISTENT_VOLUME_CLAIMS, "archive", namespace)
    wait_for(
        lambda: (
            (api.get(PERSISTENT_VOLUMES, volume["metadata"]["name"]) or {})
            .get("status", {})
            .get("phase")
            == "Released"
        ),
        timeout=30,
        what="the static volume Released",
    )
    api.delete(STORAGE_BACKENDS, name)
    wait_for(lambda: api.gone(STORAGE_BACKENDS, name), timeout=30, what="the backend deleted")
    assert api.gone(PERSISTENT_VOLUMES, volume["metadata"]["name"])


def test_block_volume_cannot_be_shared_read_write_many(
    api: Api,
    operator: OperatorProcess,
    backends: Callable[[str, dict[str, Any]], str],
    namespace: str,
    specs: dict[str, dict[str, Any]],
) -> None:
    name = backends("iscsi", specs["iscsi"])
    api.wait_condition(name, status="True", reason="Available")
    api.apply(claim_manifest("shared", namespace, name, access_modes=("ReadWriteMany",)))
    failed = wait_for(
        lambda: [
            e
            for e in api.events("PersistentVolumeClaim", "shared", namespace)
            if e["reason"] == "ProvisioningFailed"
        ],
        timeout=30,
        what="a ProvisioningFailed Event",
    )
    assert failed[0]["type"] == "Warning"
    assert failed[0]["message"]
    assert api.volumes_of(name) == []
    assert api.claim_phase(namespace, "shared") == "Pending"


def test_claim_of_a_backend_that_is_not_ready_is_retried(
    api: Api,
    operator: OperatorProcess,
    backends: Callable[[str, dict[str, Any]], str],
    namespace: str,
    node: str,
    mounted: Callable[[str, str], None],
    unreachable_host: TestHost,
) -> None:
    secret = unique("smb")
    name = backends(
        "cifs",
        {
            "cifs": {
                "servers": [unreachable_host.ip],
                "share": "k8s",
                "secretRef": {"name": secret, "namespace": namespace},
            },
            **IMMEDIATE,
        },
    )
    api.wait_condition(name, status="False", reason="SecretMissing")
    api.apply(claim_manifest("early", namespace, name, access_modes=("ReadWriteMany",)))
    wait_for(
        lambda: [
            e
            for e in api.events("PersistentVolumeClaim", "early", namespace)
            if e["reason"] == "ProvisioningFailed" and "not ready" in e["message"]
        ],
        timeout=30,
        what="a ProvisioningFailed Event saying the backend is not ready",
    )
    api.apply(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": secret, "namespace": namespace},
            "data": {
                "username": base64.b64encode(b"bob").decode(),
                "password": base64.b64encode(b"pw").decode(),
            },
        }
    )
    mounted(node, name)
    prepare_as_the_helper_would(api, namespace, "early", node)
    volume = bound_volume(api, namespace, "early", timeout=60)
    api.delete(SECRETS, secret, namespace)
    api.delete(PERSISTENT_VOLUME_CLAIMS, "early", namespace)
    release_as_the_helper_would(api, volume["metadata"]["name"], "Delete")


def release_as_the_helper_would(api: Api, volume: str, action: str) -> None:
    """Waits for the operator to hand the released volume's directory to the mount helpers,
    checks that it waits for them, then marks the work done as a helper does (no helper runs in
    this tier: the e2e tier runs the real one against GlusterFS)."""
    handed = wait_for(
        lambda: (
            pv
            if (pv := api.get(PERSISTENT_VOLUMES, volume))
            and (pv["metadata"].get("annotations") or {}).get("stowage.io/release") == action
            else None
        ),
        timeout=30,
        what=f"{volume} handed to the helpers for {action}",
    )
    assert handed["status"]["phase"] == "Released"
    time.sleep(2)
    assert api.get(PERSISTENT_VOLUMES, volume) is not None, "deleted before a helper released it"
    api.kube.merge_patch(
        PERSISTENT_VOLUMES,
        volume,
        {"metadata": {"annotations": {"stowage.io/released-by": "test-node"}}},
    )
    wait_for(partial(api.gone, PERSISTENT_VOLUMES, volume), timeout=30, what=f"{volume} deleted")


def test_the_claims_directory_is_made_by_a_helper_before_its_volume_exists(
    api: Api,
    operator: OperatorProcess,
    backends: Callable[[str, dict[str, Any]], str],
    namespace: str,
    node: str,
    mounted: Callable[[str, str], None],
    gluster: dict[str, Any],
) -> None:
    name = backends("gluster", gluster)
    api.wait_condition(name, status="True", reason="Available")
    api.apply(claim_manifest("data", namespace, name, access_modes=("ReadWriteMany",)))
    pending = wait_for(
        lambda: [
            e
            for e in api.events("PersistentVolumeClaim", "data", namespace)
            if e["reason"] == "ProvisioningFailed" and "mounted" in e["message"]
        ],
        timeout=30,
        what="a ProvisioningFailed Event saying no node has the backend mounted",
    )
    assert f"mount.stowage.io/{name}=ready" in pending[0]["message"]
    mounted(node, name)
    asked = asked_to_prepare(api, namespace, "data")
    assert asked["metadata"]["labels"]["stowage.io/prepare"] == name
    time.sleep(3)  # a helper that has not answered holds the volume back
    assert api.claim_phase(namespace, "data") == "Pending"
    prepare_as_the_helper_would(api, namespace, "data", node)
    volume = bound_volume(api, namespace, "data")
    claim = claim_once(
        api,
        namespace,
        "data",
        lambda body: "stowage.io/prepare" not in (body["metadata"].get("labels") or {}),
        "the preparation label taken off the bound claim",
    )
    assert not {"stowage.io/prepare-on", "stowage.io/prepared-by"} & set(
        claim["metadata"].get("annotations") or {}
    )
    api.delete(PERSISTENT_VOLUME_CLAIMS, "data", namespace)
    release_as_the_helper_would(api, volume["metadata"]["name"], "Delete")


def test_a_helper_that_does_not_answer_is_replaced_by_the_next_mounted_node(
    api: Api,
    operator: OperatorProcess,
    backends: Callable[[str, dict[str, Any]], str],
    namespace: str,
    node: str,
    second_node: str,
    mounted: Callable[[str, str], None],
    gluster: dict[str, Any],
) -> None:
    name = backends("gluster", gluster)
    api.wait_condition(name, status="True", reason="Available")
    mounted(node, name)
    mounted(second_node, name)
    api.apply(claim_manifest("data", namespace, name, access_modes=("ReadWriteMany",)))
    first = asked_to_prepare(api, namespace, "data")["metadata"]["annotations"]
    silent = first["stowage.io/prepare-on"]
    assert silent in (node, second_node)
    other = second_node if silent == node else node
    # The operator waits 20 s for an answer, then asks the other node.
    reasked = claim_once(
        api,
        namespace,
        "data",
        lambda body: annotation(body, "stowage.io/prepare-on") == other,
        f"the helper on {other} asked after {silent} stayed silent",
        timeout=90,
    )
    assert api.claim_phase(namespace, "data") == "Pending"
    assert reasked["metadata"]["labels"]["stowage.io/prepare"]
    prepare_as_the_helper_would(api, namespace, "data", other)
    volume = bound_volume(api, namespace, "data")
    api.delete(PERSISTENT_VOLUME_CLAIMS, "data", namespace)
    release_as_the_helper_would(api, volume["metadata"]["name"], "Delete")


def test_a_released_archive_volume_is_handed_to_the_helpers_with_its_archive_name(
    api: Api,
    operator: OperatorProcess,
    backends: Callable[[str, dict[str, Any]], str],
    namespace: str,
    node: str,
    mounted: Callable[[str, str], None],
    gluster: dict[str, Any],
) -> None:
    name = backends("gluster", {**gluster, "provisioning": {"onDelete": "Archive"}})
    api.wait_condition(name, status="True", reason="Available")
    mounted(node, name)
    api.apply(claim_manifest("kept", namespace, name, access_modes=("ReadWriteMany",)))
    prepare_as_the_helper_would(api, namespace, "kept", node)
    volume = bound_volume(api, namespace, "kept")
    directory = volume["spec"]["local"]["path"].rsplit("/", 1)[1]
    api.delete(PERSISTENT_VOLUME_CLAIMS, "kept", namespace)
    handed = wait_for(
        lambda: (
            (api.get(PERSISTENT_VOLUMES, volume["metadata"]["name"]) or {})
            .get("metadata", {})
            .get("annotations", {})
            .get("stowage.io/archive-as")
        ),
        timeout=30,
        what="the archive name on the PV",
    )
    assert handed == f"archived-{directory}"
    release_as_the_helper_would(api, volume["metadata"]["name"], "Archive")


def test_deletion_waits_for_volumes_then_completes(
    api: Api,
    operator: OperatorProcess,
    backends: Callable[[str, dict[str, Any]], str],
    namespace: str,
    specs: dict[str, dict[str, Any]],
) -> None:
    name = backends("iscsi", specs["iscsi"])
    api.wait_condition(name, status="True", reason="Available")
    api.apply(claim_manifest("keep", namespace, name))
    volume = bound_volume(api, namespace, "keep")
    api.delete(STORAGE_BACKENDS, name)
    waiting = api.wait_condition(name, status="False", reason="DeletionWaitingForVolumes")
    assert volume["metadata"]["name"] in waiting["message"]
    assert "1 PersistentVolume" in waiting["message"]
    events = api.events("StorageBackend", name, "default")
    assert any(e["reason"] == "DeletionWaitingForVolumes" for e in events)
    time.sleep(3)
    assert api.backend(name) is not None
    assert api.get(STORAGE_CLASSES, name) is not None
    api.delete(PERSISTENT_VOLUME_CLAIMS, "keep", namespace)
    wait_for(lambda: api.gone(STORAGE_BACKENDS, name), timeout=60, what="the backend deleted")
    assert api.gone(STORAGE_CLASSES, name)
    assert api.gone(PERSISTENT_VOLUMES, volume["metadata"]["name"])


def test_killed_operator_restarts_without_duplicate_volumes(
    api: Api,
    operator: OperatorProcess,
    backends: Callable[[str, dict[str, Any]], str],
    namespace: str,
    specs: dict[str, dict[str, Any]],
) -> None:
    count = 30
    luns = [{"lun": lun, "size": "1Gi"} for lun in range(1, count + 1)]
    name = backends("burst", {"iscsi": {**specs["iscsi"]["iscsi"], "luns": luns}, **IMMEDIATE})
    api.wait_condition(name, status="True", reason="Available")
    manifests = [claim_manifest(f"burst-{i:02d}", namespace, name) for i in range(count)]
    first, rest = manifests[: count // 3], manifests[count // 3 :]
    # The kill lands while the first third is being provisioned; the rest arrive while the
    # operator is down, so the restarted operator must finish the burst it was in.
    for manifest in first:
        api.kube.create(PERSISTENT_VOLUME_CLAIMS, manifest)
    wait_for(lambda: len(api.volumes_of(name)) >= 3, timeout=30, what="the first volumes")
    operator.kill()
    for manifest in rest:
        api.kube.create(PERSISTENT_VOLUME_CLAIMS, manifest)
    operator.start()

    def all_bound() -> list[Json] | None:
        listed = api.kube.list(PERSISTENT_VOLUME_CLAIMS, namespace=namespace)
        phases = {(c.get("status") or {}).get("phase") for c in listed}
        return listed if len(listed) == count and phases == {"Bound"} else None

    claims = wait_for(all_bound, timeout=120, what=f"all {count} claims Bound after the restart")
    volumes = api.volumes_of(name)
    assert len(volumes) == count, f"{len(volumes)} volumes for {count} claims"
    claim_uids = {c["metadata"]["uid"] for c in claims}
    assert {v["spec"]["claimRef"]["uid"] for v in volumes} == claim_uids
    assert {v["metadata"]["name"] for v in volumes} == {f"pvc-{uid}" for uid in claim_uids}
    for manifest in manifests:
        api.delete(PERSISTENT_VOLUME_CLAIMS, manifest["metadata"]["name"], namespace)
    wait_for(lambda: not api.volumes_of(name), timeout=60, what="all burst volumes reclaimed")


def test_a_burst_of_iscsi_claims_never_shares_a_lun(
    api: Api,
    operator: OperatorProcess,
    backends: Callable[[str, dict[str, Any]], str],
    namespace: str,
    specs: dict[str, dict[str, Any]],
) -> None:
    count = 12
    luns = [{"lun": number, "size": "1Gi"} for number in range(1, count + 1)]
    spec = {"iscsi": {**specs["iscsi"]["iscsi"], "luns": luns}, **IMMEDIATE}
    name = backends("lun-burst", spec)
    api.wait_condition(name, status="True", reason="Available")
    # All at once, from several connections: the operator plans each claim before it has
    # seen the volumes of the others.
    with ThreadPoolExecutor(max_workers=count) as pool:
        list(
            pool.map(
                lambda index: api.apply(claim_manifest(f"lun-{index:02d}", namespace, name)),
                range(count),
            )
        )
    volumes = [bound_volume(api, namespace, f"lun-{index:02d}") for index in range(count)]
    assigned = sorted(volume["spec"]["iscsi"]["lun"] for volume in volumes)
    assert assigned == list(range(1, count + 1)), f"LUNs handed out: {assigned}"
