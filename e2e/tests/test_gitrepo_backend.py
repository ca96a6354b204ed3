"""gitRepo end to end: a git daemon on a test host, the in-cluster operator, the helper.

The helper on the claim's node fetches the repository at the backend's revision into a
checkout of its own, binds it read-only onto the volume's path before the PV exists, and
brings it up to date every syncPeriod; pods read the files and cannot write them.
"""

from __future__ import annotations

import base64
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from stowage.agent.mounting import mount_source
from stowage_e2e import scenario
from stowage_e2e.fixtures import TestHostFactory
from stowage_e2e.git_servers import HTTP_USER, GitServer
from stowage_e2e.helpers import (
    HELPERS_NAMESPACE,
    helper_pods,
    release_claim,
    wait_for_event,
    wait_for_label,
)
from stowage_e2e.install import Images
from stowage_e2e.kube import Kube

pytestmark = pytest.mark.e2e

SYNC_PERIOD = 10  # seconds, the least a backend may set


@pytest.fixture
def git_server(
    test_hosts: TestHostFactory, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[GitServer]:
    """`git daemon` on a test host; with a `password` fixture, git over HTTP instead, for
    user `robot` with that password only."""
    password = request.getfixturevalue("password") if "password" in request.fixturenames else None
    server = GitServer.start(test_hosts.one(), tmp_path / "repositories", password=password)
    yield server
    server.stop()


# Reads the checkout, tries to write into it, then waits for the upstream change.
READER = """
cat /data/index.html
touch /data/written 2>&1 && echo "write succeeded"
start=$(date +%s)
while [ $(( $(date +%s) - start )) -lt 120 ]; do
  if grep -q two /data/index.html; then echo "updated: $(cat /data/index.html)"; exit 0; fi
  sleep 1
done
echo "never updated"
exit 1
"""


def read_the_checkout_and_its_next_commit(
    kube: Kube, namespace: str, git_server: GitServer, work: Path, images: Images
) -> None:
    """A pod reads the claim `data`'s checkout of `work`'s repository, cannot write into it,
    and sees the commit pushed next within the backend's period."""
    pod = scenario.script_pod("writer", "data", images.operator, READER)
    kube.apply(pod, namespace)
    kube.wait_for_pod_phase("writer", namespace, phases=("Running", "Succeeded", "Failed"))
    kube.wait_for(
        "pod",
        "writer",
        namespace,
        lambda _: "one" in kube.logs("writer", namespace),
        timeout=60,
        what="the first commit read",
    )
    git_server.commit(work, "index.html", "two\n")
    committed = time.monotonic()
    finished = kube.wait_for_pod_phase("writer", namespace, timeout=150)
    seen_after = time.monotonic() - committed
    log = kube.logs("writer", namespace)
    print(f"\n{log}\nthe new commit reached the pod {seen_after:.0f} s after the push")
    assert finished["status"]["phase"] == "Succeeded", log
    assert log.splitlines()[0] == "one", "the first commit was not checked out"
    assert "write succeeded" not in log and "Read-only file system" in log
    assert "updated: two" in log
    assert seen_after < SYNC_PERIOD + 20  # the period, plus the sync's interval and polling


def test_a_pod_reads_the_checkout_read_only_and_sees_a_new_commit_after_the_period(
    kube: Kube,
    namespace: str,
    git_server: GitServer,
    backend_factory: Callable[..., str],
    stowage_images: Images,
) -> None:
    work = git_server.create("site.git")
    git_server.commit(work, "index.html", "one\n")
    spec = {
        "gitRepo": {
            "repository": git_server.url("site.git"),
            "revision": "main",
            "syncPeriod": f"{SYNC_PERIOD}s",
        }
    }
    name = backend_factory("site", spec)
    scenario.wait_ready(kube, name)
    wait_for_label(kube, name, "ready")
    kube.apply(scenario.claim("data", name, "10Mi", "ReadOnlyMany"), namespace)
    read_the_checkout_and_its_next_commit(kube, namespace, git_server, work, stowage_images)

    volume = scenario.bound_volume(kube, "data", namespace)
    directory = Path(volume["spec"]["local"]["path"])
    assert mount_source(str(directory)) is not None  # the read-only bind of the checkout
    release_claim(kube, namespace)
    assert mount_source(str(directory)) is None
    assert not directory.exists()
    assert not (directory.parent / ".checkouts" / directory.name).exists()


def test_a_wrong_repository_leaves_the_claim_pending_with_a_clear_event(
    kube: Kube,
    namespace: str,
    git_server: GitServer,
    backend_factory: Callable[..., str],
) -> None:
    url = git_server.url("no-such-repository.git")
    spec = {
        "gitRepo": {"repository": url},
        "storageClass": {"volumeBindingMode": "Immediate"},
    }
    name = backend_factory("wrong", spec)
    wait_for_label(kube, name, "ready")
    kube.apply(scenario.claim("data", name, "10Mi", "ReadOnlyMany"), namespace)
    event = wait_for_event(kube, namespace, "persistentvolumeclaim", "data", "PreparationFailed")
    print(f"\n{event['message']}")
    assert f"fetching {url}" in event["message"]
    claim = kube.get("persistentvolumeclaim", "data", namespace)
    assert claim["status"]["phase"] == "Pending"
    kube.delete("persistentvolumeclaim", "data", namespace, wait=True)


@pytest.fixture
def password() -> str:
    return f"pw-{uuid.uuid4().hex}"


def credentials_secret(name: str, password: str) -> dict[str, Any]:
    data = {"username": HTTP_USER, "password": password}
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name},
        "data": {key: base64.b64encode(value.encode()).decode() for key, value in data.items()},
    }


def test_credentials_from_a_secret_reach_git_and_nowhere_else(
    kube: Kube,
    namespace: str,
    git_server: GitServer,
    password: str,
    backend_factory: Callable[..., str],
    stowage_images: Images,
) -> None:
    work = git_server.create("private.git")
    git_server.commit(work, "secret-plan.txt", "behind a password\n")
    url = git_server.url("private.git")
    anonymous = subprocess.run(
        ["git", "ls-remote", url],
        capture_output=True,
        text=True,
        env={"GIT_TERMINAL_PROMPT": "0", "PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert anonymous.returncode != 0, "the server serves without credentials"
    kube.apply(credentials_secret("git-credentials", password), namespace)
    spec = {
        "gitRepo": {
            "repository": url,
            "credentialsSecretRef": {"name": "git-credentials", "namespace": namespace},
        }
    }
    name = backend_factory("private", spec)
    scenario.wait_ready(kube, name)
    wait_for_label(kube, name, "ready")
    kube.apply(scenario.claim("data", name, "10Mi", "ReadOnlyMany"), namespace)
    reader = scenario.script_pod("writer", "data", stowage_images.operator, "cat /data/*.txt")
    kube.apply(reader, namespace)
    finished = kube.wait_for_pod_phase("writer", namespace, timeout=180)
    assert finished["status"]["phase"] == "Succeeded", finished["status"]
    assert kube.logs("writer", namespace).strip() == "behind a password"

    volume = scenario.bound_volume(kube, "data", namespace)
    checkout = Path(volume["spec"]["local"]["path"])
    places = {
        "the checkout's git config": (checkout / ".git" / "config").read_text(),
        "the backend": kube.text("get", "storagebackend", name, "--output", "json"),
        "the claim": kube.text("get", "pvc", "data", "-n", namespace, "--output", "json"),
        "the volume": kube.text("get", "pv", volume["metadata"]["name"], "--output", "json"),
        "the Events": kube.text("get", "events", "--all-namespaces", "--output", "json"),
        "the operator's log": kube.text(
            "logs", "deployment/stowage-operator", "--namespace", HELPERS_NAMESPACE
        ),
        "the helper's log": "".join(
            kube.text("logs", pod, "--namespace", HELPERS_NAMESPACE)
            for pod in helper_pods(kube, name)
        ),
    }
    assert url in places["the checkout's git config"]
    leaked = [place for place, text in places.items() if password in text]
    assert not leaked, f"the password is in {', '.join(leaked)}"
    release_claim(kube, namespace)


def test_through_csi_a_private_checkout_is_fetched_for_the_first_pod_kept_in_sync_and_removed(
    kube: Kube,
    namespace: str,
    git_server: GitServer,
    password: str,
    backend_factory: Callable[..., str],
    stowage_images: Images,
) -> None:
    """Through stowage's CSI driver there is no helper: the node plugin of the pod's node
    fetches the checkout with the Secret's credentials when the pod starts, binds it read-only,
    brings it up to date every syncPeriod, and removes it with the claim."""
    work = git_server.create("private.git")
    git_server.commit(work, "index.html", "one\n")
    url = git_server.url("private.git")
    kube.apply(credentials_secret("git-credentials", password), namespace)
    spec = {
        "gitRepo": {
            "repository": url,
            "revision": "main",
            "syncPeriod": f"{SYNC_PERIOD}s",
            "credentialsSecretRef": {"name": "git-credentials", "namespace": namespace},
        },
        "provisioning": {"csi": True},
    }
    name = backend_factory("csisite", spec)
    scenario.wait_ready(kube, name)
    assert not helper_pods(kube, name)
    kube.apply(scenario.claim("data", name, "10Mi", "ReadOnlyMany"), namespace)
    read_the_checkout_and_its_next_commit(kube, namespace, git_server, work, stowage_images)

    volume = scenario.bound_volume(kube, "data", namespace)
    assert volume["spec"]["csi"]["driver"] == "csi.stowage.io"
    attributes = volume["spec"]["csi"]["volumeAttributes"]
    directory, checkout = Path(attributes["path"]), Path(attributes["checkoutPath"])
    assert mount_source(str(directory)) is not None  # the read-only bind of the checkout
    config = (checkout / ".git" / "config").read_text()
    assert url in config and password not in config
    places = {
        "the volume": kube.text("get", "pv", volume["metadata"]["name"], "--output", "json"),
        "the Events": kube.text("get", "events", "--all-namespaces", "--output", "json"),
        "the node plugin's log": kube.text(
            "logs", "daemonset/stowage-csi-node", "--namespace", HELPERS_NAMESPACE
        ),
    }
    leaked = [place for place, text in places.items() if password in text]
    assert not leaked, f"the password is in {', '.join(leaked)}"
    release_claim(kube, namespace)
    assert mount_source(str(directory)) is None
    assert not directory.exists() and not checkout.exists()
