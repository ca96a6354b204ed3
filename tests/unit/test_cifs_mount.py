"""The helper's CIFS client: the Secret's user in a private credentials file for mount(8) and
smbclient, and the reasons smbclient's check of the share gives (never the password)."""

from __future__ import annotations

import shutil
import stat
from pathlib import Path
from typing import Any

import pytest

from stowage.agent import cifs_mount, mounting, smb_check
from stowage.agent.credentials import CredentialsError
from stowage.agent.runner import Agent, AgentSettings
from stowage.api.backend import StorageBackend
from stowage.drivers.base import HostMount
from stowage.objects.helper_daemonset import CREDENTIALS_DIR, HelperSettings
from stowage.reconcilers import driving

pytestmark = pytest.mark.unit

PASSWORD = "s3cret pass=word"
SECRET = {"name": "smb-user", "namespace": "storage"}
CIFS = {"servers": ["smb1", "smb2"], "share": "data", "secretRef": SECRET}
HELPERS = HelperSettings("stowage-helpers", "localhost/stowage/helper:dev", "Never", "helper-sa")


def model(**more: Any) -> StorageBackend:
    return StorageBackend.model_validate({"spec": {"cifs": {**CIFS, **more}}})


def cifs_host_mount(**more: Any) -> HostMount:
    """The backend's mount on node-1, with `more` fields of its `cifs`."""
    mount = driving.host_mount("smb", model(**more), "node-1")
    assert mount is not None
    return mount


def credentials(tmp_path: Path, **keys: str) -> Path:
    directory = tmp_path / "credentials"
    directory.mkdir()
    for key, value in (keys or {"username": "stowage", "password": PASSWORD + "\n"}).items():
        (directory / key).write_text(value)
    return directory


def test_the_password_goes_into_a_private_file_never_onto_the_command_line(
    tmp_path: Path,
) -> None:
    mount = cifs_host_mount()
    state = tmp_path / "state" / "smb"
    client = cifs_mount.client(mount, credentials(tmp_path), state, mount_timeout=30)
    source = mount.sources[0]
    command = client.command(mount, source)
    file = state / cifs_mount.CREDENTIALS_FILE
    assert command == [
        "mount",
        "-t",
        "cifs",
        "-o",
        f"vers=3.0,credentials={file}",
        source,
        "/var/lib/stowage/mounts/smb",
    ]
    assert not any(PASSWORD in word for word in command)
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    assert stat.S_IMODE(file.stat().st_mode) == 0o600
    assert file.read_text() == f"username=stowage\npassword={PASSWORD}\n"
    check = smb_check.check_command(source, file, "3.0", 30)
    assert check[:2] == ["smbclient", source]
    assert f"--authentication-file={file}" in check
    assert "--max-protocol=SMB3_00" in check
    assert not any(PASSWORD in word for word in check)


def test_the_domain_is_written_when_the_secret_has_one(tmp_path: Path) -> None:
    user = cifs_mount.read_user(
        credentials(tmp_path, username="alice", password="pw", domain="CORP")
    )
    assert cifs_mount.credentials_text(user) == "username=alice\npassword=pw\ndomain=CORP\n"
    assert "pw" not in repr(user)


@pytest.mark.parametrize(
    ("keys", "reason"),
    [
        ({"username": "alice"}, "no password in the helper's copy of the backend's Secret"),
        ({"username": "", "password": "pw"}, "the username of the backend's Secret is empty"),
        ({"username": "alice", "password": "p\nw"}, "the password of the backend's Secret spans"),
    ],
)
def test_unusable_credentials_are_refused_without_repeating_them(
    tmp_path: Path, keys: dict[str, str], reason: str
) -> None:
    with pytest.raises(CredentialsError, match=reason) as raised:
        cifs_mount.read_user(credentials(tmp_path, **keys))
    assert "p\nw" not in str(raised.value)


# What smbclient 4.17 prints (seen against the e2e kit's Samba).
@pytest.mark.parametrize(
    ("output", "reason"),
    [
        (
            "session setup failed: NT_STATUS_LOGON_FAILURE\n",
            "smb1 refused the logon of user 'stowage': wrong username or password",
        ),
        (
            "tree connect failed: NT_STATUS_BAD_NETWORK_NAME\n",
            "smb1 has no share named 'data' (NT_STATUS_BAD_NETWORK_NAME)",
        ),
        (
            "tree connect failed: NT_STATUS_ACCESS_DENIED\n",
            "user 'stowage' may not use share 'data' on smb1",
        ),
        (
            "do_connect: Connection to smb1 failed (Error NT_STATUS_CONNECTION_REFUSED)\n",
            "the SMB server smb1 cannot be reached (NT_STATUS_CONNECTION_REFUSED)",
        ),
        (
            "do_connect: Connection to smb1 failed (Error NT_STATUS_IO_TIMEOUT)\n",
            "the SMB server smb1 cannot be reached (NT_STATUS_IO_TIMEOUT)",
        ),
        (
            "protocol negotiation failed: NT_STATUS_INVALID_NETWORK_RESPONSE\n",
            "smb1 does not speak SMB 3.0",
        ),
        ("session setup failed: NT_STATUS_ACCOUNT_DISABLED\n", "smb1 refused the account"),
        ("something odd\n", "smbclient: something odd"),
    ],
)
def test_check_failures_are_told_in_words_an_administrator_acts_on(
    output: str, reason: str
) -> None:
    explained = smb_check.explain(output, "//smb1/data", "stowage", "3.0")
    assert explained.startswith(reason), explained


@pytest.mark.parametrize(
    ("version", "dialect"), [("2.1", "SMB2_10"), ("3.0", "SMB3_00"), ("3.1.1", "SMB3_11")]
)
def test_smbclient_speaks_the_dialect_the_kernel_will(version: str, dialect: str) -> None:
    mount = cifs_host_mount(version=version)
    assert smb_check.protocol(smb_check.version_of(mount.options)) == dialect


@pytest.mark.skipif(shutil.which("smbclient") is None, reason="smbclient is not installed")
def test_the_check_runs_smbclient_and_tells_a_closed_port(tmp_path: Path) -> None:
    # Nothing listens on 127.0.0.1:445 here: smbclient itself says it was refused.
    file = tmp_path / "auth"
    file.write_text("username=stowage\npassword=pw\n")
    reason = smb_check.check("//127.0.0.1/data", file, "stowage", "3.0", timeout=10)
    assert reason == "the SMB server 127.0.0.1 cannot be reached (NT_STATUS_CONNECTION_REFUSED)"


def test_a_refused_check_skips_the_mount_and_is_the_attempts_outcome(tmp_path: Path) -> None:
    mount = HostMount("tmpfs", ("one", "two"), (), str(tmp_path / "mnt"))
    refusing = mounting.MountClient(check=lambda mount, source: f"{source} has no share")
    result = mounting.mount_with_failover(mount, probe_timeout=1, mount_timeout=5, client=refusing)
    assert result.mounted_from is None
    assert [a.outcome for a in result.attempts] == ["one has no share", "two has no share"]
    assert not mounting.is_mount_point(mount.mount_point)


def test_the_agent_mounts_cifs_with_the_credentials_file(tmp_path: Path) -> None:
    settings = AgentSettings(
        backend="smb", node="node-1", credentials=credentials(tmp_path), state=tmp_path / "run"
    )
    agent = Agent(kube=None, settings=settings)  # type: ignore[arg-type]  # no API calls here
    mount = cifs_host_mount()
    command = agent.mount_client(mount).command(mount, mount.sources[0])
    assert f"credentials={tmp_path}/run/smb/{cifs_mount.CREDENTIALS_FILE}" in command[4]


def test_cifs_helpers_get_the_copy_of_the_secret() -> None:
    daemonset = driving.helper("smb", model(), HELPERS)
    assert daemonset is not None
    pod = daemonset["spec"]["template"]["spec"]
    mount = {"name": "credentials", "mountPath": CREDENTIALS_DIR, "readOnly": True}
    assert mount in pod["containers"][0]["volumeMounts"]
    copy = driving.helper_credentials("smb", model(), HELPERS, {"username": "YQ=="})
    assert copy is not None and copy["data"] == {"username": "YQ=="}


# mount.cifs (cifs-utils 7.0) on a kernel without CIFS, as the e2e test on this VM sees it.
NO_CIFS = """mount error: cifs filesystem not supported by the system
mount error(19): No such device
Refer to the mount.cifs(8) manual page (e.g. man mount.cifs) and kernel log messages (dmesg)
"""


def test_a_kernel_mount_failure_is_told_on_one_line_with_its_meaning() -> None:
    assert cifs_mount.explain(NO_CIFS) == (
        "this node's kernel has no CIFS client (load the cifs module): mount error: cifs "
        "filesystem not supported by the system; mount error(19): No such device"
    )
    assert cifs_mount.explain("mount error(22): Invalid argument\n") == (
        "mount error(22): Invalid argument"
    )
