"""rbd backends without a node or a Ceph: the image the helper makes for each claim, the
commands it runs (with no key on any command line), how it finds an image's device, and its
helper's DaemonSet. The commands themselves run against a real Ceph in
e2e/tests/test_rbd_backend.py.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from stowage.agent import ceph_fuse, mounting, rbd, runner
from stowage.agent.credentials import CredentialsError
from stowage.api.backend import StorageBackend
from stowage.drivers.base import NodeVolume, RbdImage
from stowage.objects.helper_daemonset import HelperSettings
from stowage.reconcilers import driving

pytestmark = pytest.mark.unit

HELPERS = HelperSettings("stowage-helpers", "localhost/stowage/helper:dev", "Never", "helper-sa")
MiB = 2**20
KEY = "AQBY8Qdrie8iDhAAVFCEiQ3VK07wvaX/QHAf8Q=="


def model(**rbd_spec: Any) -> StorageBackend:
    spec = {
        "rbd": {
            "monitors": ["10.0.0.21", "10.0.0.22:3300"],
            "pool": "k8s",
            "userSecretRef": {"name": "ceph-user", "namespace": "stowage-system"},
            **rbd_spec,
        }
    }
    return StorageBackend.model_validate({"spec": spec})


def claim(backend: StorageBackend, size: str) -> dict[str, Any]:
    storage_class = driving.storage_class("ceph-rbd", backend)["metadata"]["name"]
    resources = {"requests": {"storage": size}}
    spec = {"storageClassName": storage_class, "accessModes": ["ReadWriteOnce"]}
    metadata = {"namespace": "apps", "name": "db", "uid": "1234-abcd"}
    return {"metadata": metadata, "spec": {**spec, "resources": resources}}


def work_for(backend: StorageBackend, size: str = "10M") -> tuple[dict[str, Any], NodeVolume]:
    volume = driving.claim_volume("ceph-rbd", backend, claim(backend, size), "node-a")
    work = driving.node_volume("ceph-rbd", backend, volume)
    assert work is not None
    return volume, work


def test_a_claim_is_an_image_of_its_size_in_whole_mib_formatted_as_the_spec_says() -> None:
    volume, work = work_for(model(fsType="xfs", imageFeatures=["layering", "exclusive-lock"]))
    path = volume["spec"]["local"]["path"]
    assert path == "/var/lib/stowage/volumes/ceph-rbd/apps-db-1234-abcd"
    # 10M (10,000,000 bytes) is 9.54 MiB: the image and the PV's capacity are 10 MiB.
    assert volume["spec"]["capacity"]["storage"] == "10Mi"
    assert work == NodeVolume(
        "/var/lib/stowage/volumes/ceph-rbd",
        path,
        rbd_image=RbdImage(
            "10.0.0.21,10.0.0.22:3300",
            "k8s",
            "apps-db-1234-abcd",
            10 * MiB,
            ("layering", "exclusive-lock"),
            "xfs",
        ),
    )
    terms = volume["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"]
    assert terms[0]["matchExpressions"][0]["values"] == ["node-a"]


def test_the_rbd_helper_gets_the_nodes_dev_and_the_ceph_users_secret() -> None:
    daemonset = driving.helper("ceph-rbd", model(), HELPERS)
    assert daemonset is not None
    pod = daemonset["spec"]["template"]["spec"]
    mounts = pod["containers"][0]["volumeMounts"]
    assert {"name": "host-directory-0", "mountPath": "/dev"} in mounts
    assert any(mount["mountPath"] == "/etc/stowage/credentials" for mount in mounts)


def client(tmp_path: Path) -> rbd.RbdClient:
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / "userID").write_text("client.stowage")
    (credentials / "userKey").write_text(KEY)
    return rbd.client(
        "10.0.0.21", credentials, tmp_path / "state", "/var/lib/stowage/mounts/ceph-rbd", 30
    )


IMAGE = RbdImage("10.0.0.21", "k8s", "apps-db-1", 10 * MiB + 1, ("layering",), "ext4")


def test_the_client_writes_config_and_a_private_keyring_and_no_key_on_a_command_line(
    tmp_path: Path,
) -> None:
    ceph = client(tmp_path)
    state = tmp_path / "state"
    assert ceph.config == state / "ceph.conf"
    assert "mon host = 10.0.0.21" in ceph.config.read_text()
    assert os.stat(state / "keyring").st_mode & 0o777 == 0o600
    assert KEY in (state / "keyring").read_text()
    create = rbd.create_command(ceph, IMAGE)
    assert create == [
        "rbd", "-c", str(ceph.config), "--id", "stowage",
        "create", "k8s/apps-db-1", "--size", "11M", "--image-feature", "layering",
    ]  # fmt: skip
    fuse = rbd.fuse_command(ceph, "k8s")
    assert fuse == [
        "rbd-fuse", "-c", str(ceph.config), "--id", "stowage", "-p", "k8s",
        "/var/lib/stowage/mounts/ceph-rbd",
    ]  # fmt: skip
    assert not any(KEY in argument for argument in [*create, *fuse])
    assert KEY not in repr(ceph)
    assert rbd.image_file(ceph, IMAGE) == "/var/lib/stowage/mounts/ceph-rbd/apps-db-1"


def test_a_missing_secret_key_is_told_by_name(tmp_path: Path) -> None:
    with pytest.raises(CredentialsError, match="no userID"):
        rbd.client("10.0.0.21", tmp_path, tmp_path / "state", "/mnt/x", 30)
    assert CredentialsError in runner.PREPARATION_ERRORS
    assert rbd.RbdError in runner.PREPARATION_ERRORS


def test_the_device_of_an_image_is_found_in_what_losetup_and_rbd_list() -> None:
    listed = "/dev/loop3: [0052]:2 (/var/lib/stowage/mounts/ceph-rbd/apps-db-1)\n"
    assert rbd.parse_loop_of(listed) == "/dev/loop3"
    assert rbd.parse_loop_of("") is None
    mapped = (
        '[{"id":"0","pool":"k8s","namespace":"","name":"other","snap":"-","device":"/dev/rbd0"},'
        '{"id":"1","pool":"k8s","namespace":"","name":"apps-db-1","snap":"-","device":"/dev/rbd1"}]'
    )
    assert rbd.parse_mapped(mapped, IMAGE) == "/dev/rbd1"
    assert rbd.parse_mapped("[]", IMAGE) is None


def test_the_kernel_path_is_taken_only_where_the_rbd_bus_exists(tmp_path: Path) -> None:
    assert rbd.kernel_rbd_present(tmp_path) is True
    assert rbd.kernel_rbd_present(tmp_path / "absent") is False


def test_rbd_fuse_is_a_client_kept_beyond_a_helper_restart() -> None:
    assert "rbd-fuse" in mounting.FUSE_CLIENTS


def test_an_rbd_error_never_repeats_a_line_that_could_hold_the_key(tmp_path: Path) -> None:
    ceph = client(tmp_path)
    said = f"auth: error parsing key {KEY}\nrbd: couldn't connect to the cluster!\n"
    assert ceph_fuse.last_safe_line(said, ceph.user) == "rbd: couldn't connect to the cluster!"
