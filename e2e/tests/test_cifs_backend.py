"""CIFS end to end: a real Samba (smbd) on a test host, the in-cluster operator, its helper.

The helper (`stowage agent`) writes the user of the backend's Secret into a credentials file
(0600) in its private state, checks the share with smbclient (a user-space SMB client) as that
user, and only then mounts it with the kernel's `mount -t cifs ... -o credentials=<file>`.
A wrong password or a missing share is told by the check; the kernel mount itself needs a
kernel with a CIFS client: on this machine's node (which has none) the right credentials pass
the check and the helper reports the kernel's own refusal; on the VM node (Debian's kernel) the
helper mounts the share and a pod writes through its claim. The test looks at the share with
smbclient, as another client of the server.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from stowage.agent.cifs_mount import CREDENTIALS_FILE
from stowage.agent.runner import PRIVATE_STATE
from stowage_e2e import hosts, scenario
from stowage_e2e.cluster import settings
from stowage_e2e.helpers import (
    HELPERS_NAMESPACE,
    assert_secret_nowhere,
    backend_events,
    finished_log,
    helper_pods,
    kernel_has_client,
    release_claim,
    wait_for_condition,
    wait_for_label,
)
from stowage_e2e.kube import Kube
from stowage_e2e.servers import SERVERS_DIR, Samba
from stowage_e2e.vm_nodes import AnyNode, VmNode

pytestmark = pytest.mark.e2e

SHARE = "stowage"
USER = "stowage-cifs"  # the user the backend's Secret names
PASSWORD = f"right-{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="module")
def samba(cluster: object) -> Iterator[Samba]:
    """One Samba server for the module, on a test host of its own, with the share and user."""
    host = hosts.create_host()
    try:
        share = SERVERS_DIR / host.name / "samba-share"
        shutil.rmtree(share, ignore_errors=True)  # a share another run left
        started = Samba.start(host, {SHARE: str(share)}, {USER: PASSWORD})
        try:
            yield started
        finally:
            started.stop()
            shutil.rmtree(share, ignore_errors=True)
    finally:
        hosts.remove_host(host)


@pytest.fixture
def new_backend(samba: Samba, secret_backend_factory: Callable[..., str]) -> Callable[..., str]:
    """Creates cifs StorageBackends of the Samba server, each with its Secret."""

    def create(password: str, share: str = SHARE, mount: dict[str, Any] | None = None) -> str:
        def spec_of(secret: dict[str, str]) -> dict[str, Any]:
            return {
                "cifs": {"servers": [samba.host.ip], "share": share, "secretRef": secret},
                "provisioning": {"basePath": "/k8s", "onDelete": "Delete"},
                "storageClass": {"volumeBindingMode": "Immediate"},
                **({"mount": mount} if mount else {}),
            }

        return secret_backend_factory("cifs", {"username": USER, "password": password}, spec_of)

    return create


def mount_failure(kube: Kube, backend: str) -> str:
    """The message of the backend's first MountFailed Event, once the node is labelled failed
    and the backend Degraded for it."""
    wait_for_label(kube, backend, "failed", timeout=120)
    wait_for_condition(kube, backend, "Degraded", "MountFailed")
    (failed, *_) = backend_events(kube, backend, "MountFailed")
    message: str = failed["message"]
    print(f"\n{message}")
    return message


def test_a_wrong_password_is_told_as_a_logon_failure_and_never_shown(
    kube: Kube, samba: Samba, new_backend: Callable[..., str]
) -> None:
    wrong = f"wrong-{uuid.uuid4().hex[:12]}"
    name = new_backend(wrong)
    message = mount_failure(kube, name)
    assert (
        f"refused the logon of user '{USER}': wrong username or password in the backend's "
        "Secret (NT_STATUS_LOGON_FAILURE)"
    ) in message
    assert samba.smbclient(SHARE, USER, wrong, "ls").returncode != 0  # Samba refuses it too
    assert_secret_nowhere(kube, name, wrong, "the password")


def test_a_share_that_does_not_exist_is_named(
    kube: Kube, samba: Samba, new_backend: Callable[..., str]
) -> None:
    name = new_backend(PASSWORD, share="no-such-share")
    message = mount_failure(kube, name)
    assert "has no share named 'no-such-share' (NT_STATUS_BAD_NETWORK_NAME)" in message
    assert_secret_nowhere(kube, name, PASSWORD, "the password")


@pytest.mark.skipif(
    kernel_has_client("cifs", "smb3"),
    reason="this kernel has a CIFS client: the mount succeeds (see the test of a pod's data)",
)
def test_right_credentials_pass_the_check_and_reach_the_kernel_mount(
    kube: Kube, samba: Samba, new_backend: Callable[..., str]
) -> None:
    """Without a kernel CIFS client the kernel refuses the mount itself: the failure is the
    mount's, not the check's, and the credentials file is private to the helper."""
    name = new_backend(PASSWORD)
    message = mount_failure(kube, name)
    assert "mount failed: this node's kernel has no CIFS client" in message
    assert "mount error(19): No such device" in message  # mount.cifs's own words
    assert "NT_STATUS" not in message  # smbclient's check passed
    (pod,) = helper_pods(kube, name)
    path = PRIVATE_STATE / name / CREDENTIALS_FILE
    mode = kube.text(
        "--namespace", HELPERS_NAMESPACE, "exec", pod, "--", "stat", "-c", "%a %U", str(path)
    )
    assert mode.split() == ["600", "root"]
    assert samba.list(SHARE, USER, PASSWORD) is not None  # the server itself is fine
    assert_secret_nowhere(kube, name, PASSWORD, "the password")


WRITE_AND_READ = """
echo "{text}" > /data/hello.txt && cat /data/hello.txt
"""


def test_a_pod_writes_through_a_claim_and_delete_removes_its_directory(
    kube: Kube,
    namespace: str,
    samba: Samba,
    new_backend: Callable[..., str],
    kernel_node: VmNode | AnyNode,
) -> None:
    """The backend's helper runs on the node with Debian's kernel, whose CIFS client mounts the
    share; a pod there writes through its claim, another SMB client reads it."""
    name = new_backend(PASSWORD, mount=kernel_node.mount_settings())
    scenario.wait_ready(kube, name, timeout=120)
    wait_for_label(kube, name, "ready", node=kernel_node.name)

    kube.apply(scenario.claim("data", name, "10Mi", "ReadWriteMany"), namespace)
    volume = scenario.bound_volume(kube, "data", namespace)
    directory = Path(volume["spec"]["local"]["path"]).name
    assert directory in samba.list(SHARE, USER, PASSWORD, "k8s")

    text = f"through the kernel's cifs {uuid.uuid4()}"
    script = WRITE_AND_READ.format(text=text)
    writer = scenario.script_pod("writer", "data", settings().base_image, script)
    kube.apply(kernel_node.place(writer), namespace)
    log = finished_log(kube, namespace, "writer", timeout=300)
    assert log.splitlines()[0] == text
    # Another SMB client of the server reads what the pod wrote.
    assert samba.read(SHARE, USER, PASSWORD, f"k8s/{directory}/hello.txt").strip() == text

    release_claim(kube, namespace)
    assert directory not in samba.list(SHARE, USER, PASSWORD, "k8s")
    assert_secret_nowhere(kube, name, PASSWORD, "the password")
