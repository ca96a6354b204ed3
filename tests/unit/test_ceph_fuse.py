"""The helper's CephFS client: ceph-fuse with the key in a private keyring, and the reasons it
gives when a mount fails (never the key)."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import pytest

from stowage.agent import ceph_fuse, mounting
from stowage.agent.credentials import CredentialsError
from stowage.agent.runner import Agent, AgentSettings
from stowage.api.backend import StorageBackend
from stowage.drivers.base import BackendRef, HostMount
from stowage.objects.helper_daemonset import CREDENTIALS_DIR, HelperSettings, helper_daemonset
from stowage.reconcilers import driving

pytestmark = pytest.mark.unit

KEY = "AQBSdFRjAAAAABAAm0m4iS3d1YbYxWkXyq9TvA=="
SECRET = {"name": "ceph-user", "namespace": "ceph"}
CEPHFS = {
    "cephfs": {
        "monitors": ["10.0.0.21:3300", "10.0.0.22"],
        "fsName": "data",
        "path": "/k8s",
        "userSecretRef": SECRET,
    }
}
HELPERS = HelperSettings("stowage-helpers", "localhost/stowage/helper:dev", "Never", "helper-sa")


def model(spec: dict[str, Any]) -> StorageBackend:
    return StorageBackend.model_validate({"spec": spec})


def cephfs_mount() -> HostMount:
    mount = driving.host_mount("ceph", model(CEPHFS), "node-1")
    assert mount is not None
    return mount


def credentials(tmp_path: Path, user: str = "stowage", key: str = KEY) -> Path:
    directory = tmp_path / "credentials"
    directory.mkdir()
    (directory / "userID").write_text(user)
    (directory / "userKey").write_text(key + "\n")
    return directory


def test_the_key_goes_into_a_private_keyring_never_onto_the_command_line(tmp_path: Path) -> None:
    mount = cephfs_mount()
    state = tmp_path / "state" / "ceph"
    client = ceph_fuse.client(mount, credentials(tmp_path), state, mount_timeout=30)
    command = client.command(mount, mount.sources[0])
    assert command == [
        "ceph-fuse",
        "-c",
        f"{state}/ceph.conf",
        "--id",
        "stowage",
        "--client_fs=data",
        "-r",
        "/k8s",
        "/var/lib/stowage/mounts/ceph",
    ]
    assert all(Path(word).is_absolute() for word in (command[2], command[-1]))
    assert not any(KEY in word for word in command)
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    keyring = state / "keyring"
    assert stat.S_IMODE(keyring.stat().st_mode) == 0o600
    assert keyring.read_text() == f"[client.stowage]\n\tkey = {KEY}\n"
    config = (state / "ceph.conf").read_text()
    assert "mon host = 10.0.0.21:3300,10.0.0.22\n" in config
    assert f"keyring = {state}/keyring\n" in config
    assert "client mount timeout = 20\n" in config  # gives up before the helper's 30 s
    assert KEY not in config


def test_a_user_given_with_its_client_prefix_is_taken_as_the_user(tmp_path: Path) -> None:
    user = ceph_fuse.read_user(credentials(tmp_path, user="client.k8s"))
    assert user.name == "k8s"
    assert KEY not in repr(user)


@pytest.mark.parametrize(
    ("user", "key", "reason"),
    [
        ("stowage", "not-a-key", "userKey is not a cephx key"),
        ("two words", KEY, "userID is not a Ceph user name"),
    ],
)
def test_unusable_credentials_are_refused_without_repeating_them(
    tmp_path: Path, user: str, key: str, reason: str
) -> None:
    with pytest.raises(CredentialsError, match=reason) as raised:
        ceph_fuse.read_user(credentials(tmp_path, user, key))
    assert key not in str(raised.value)


def test_missing_credentials_name_the_missing_key(tmp_path: Path) -> None:
    directory = tmp_path / "empty"
    directory.mkdir()
    with pytest.raises(CredentialsError, match="no userID in the helper's copy"):
        ceph_fuse.read_user(directory)


# What ceph-fuse 16.2 prints in each case (seen against the e2e cluster).
WRONG_KEY = """2026-11-26T07:52:11.417+0000 7f97098456c0 -1 monclient(hunting): \
handle_auth_bad_method server allowed_methods [2] but i only support [2,1]
failed to fetch mon config (--no-mon-config to skip)
"""
NO_FS = """ceph-fuse[14948]: starting ceph client
ceph-fuse[14948]: ceph mount failed with (2) No such file or directory
2026-11-26T07:52:11.497+0000 7f92b5037240 -1 client.4160 mdsmap subscription failed: \
(2) No such file or directory
"""
NO_PATH = """ceph-fuse[15696]: starting ceph client
ceph-fuse[15696]: ceph mount failed with (2) No such file or directory
"""
NO_MONITOR = "failed to fetch mon config (--no-mon-config to skip)\n"
BAD_KEYRING = f"""auth: error parsing file /run/stowage/ceph/keyring: error setting modifier \
for [client.stowage] type=key val={KEY}: Malformed input
something else went wrong
"""


@pytest.mark.parametrize(
    ("output", "reason"),
    [
        (WRONG_KEY, "the Ceph monitors refused client.stowage: wrong userKey or userID"),
        (NO_FS, "the Ceph cluster has no CephFS named 'data'"),
        (NO_PATH, "/k8s does not exist in CephFS data"),
        (NO_MONITOR, "no Ceph monitor answered (10.0.0.21:3300,10.0.0.22)"),
        (BAD_KEYRING, "ceph-fuse: something else went wrong"),
    ],
)
def test_failures_are_told_in_words_an_administrator_acts_on(output: str, reason: str) -> None:
    mount = cephfs_mount()
    user = ceph_fuse.CephUser("stowage", KEY)
    explained = ceph_fuse.explain(output, mount, mount.sources[0], user)
    assert explained.startswith(reason), explained
    assert KEY not in explained


def test_the_agent_mounts_cephfs_through_ceph_fuse_and_the_rest_through_mount(
    tmp_path: Path,
) -> None:
    settings = AgentSettings(
        backend="ceph", node="node-1", credentials=credentials(tmp_path), state=tmp_path / "run"
    )
    agent = Agent(kube=None, settings=settings)  # type: ignore[arg-type]  # no API calls here
    mount = cephfs_mount()
    assert agent.mount_client(mount).command(mount, mount.sources[0])[0] == "ceph-fuse"
    assert (tmp_path / "run" / "ceph" / "keyring").exists()
    gluster = HostMount("glusterfs", ("g1:/gv0",), (), "/var/lib/stowage/mounts/g")
    assert agent.mount_client(gluster) is mounting.MOUNT


def test_cephfs_helpers_get_the_copy_of_the_key_and_gluster_helpers_do_not() -> None:
    daemonset = driving.helper("ceph", model(CEPHFS), HELPERS)
    assert daemonset is not None
    pod = daemonset["spec"]["template"]["spec"]
    name = daemonset["metadata"]["name"]
    assert {"name": "credentials", "mountPath": CREDENTIALS_DIR, "readOnly": True} in pod[
        "containers"
    ][0]["volumeMounts"]
    secret = {"secretName": name, "optional": True, "defaultMode": 0o400}
    assert {"name": "credentials", "secret": secret} in pod["volumes"]
    copy = driving.helper_credentials("ceph", model(CEPHFS), HELPERS, {"userKey": "QQ=="})
    assert copy is not None
    assert copy["metadata"]["name"] == name
    assert copy["metadata"]["namespace"] == "stowage-helpers"
    assert copy["data"] == {"userKey": "QQ=="}
    gluster = {"glusterfs": {"hosts": ["g1"], "volume": "gv0"}}
    plain = helper_daemonset(BackendRef("g", model(gluster).spec), HELPERS)
    assert "credentials" not in str(plain)
    assert driving.helper_credentials("g", model(gluster), HELPERS, {}) is None
